"""lm-evaluation-harness's default task formats: benchmark documents to scoring requests.

Each builder reproduces the task definition of lm-eval 0.4.x (``lm_eval/tasks/*/*.yaml`` and their
``utils.py``) in plain Python: prompt text, choices, target delimiter (" "), few-shot delimiter ("\\n\\n"),
description and few-shot sampling, so that a model's per-item choice here is the one lm-eval would make.

The prompt of a document is lm-eval's ``fewshot_context`` rendered as plain text (no chat template)::

    description + "".join(text(ex) + " " + answer(ex) + "\\n\\n" for ex in fewshot) + text(doc)

and a multiple-choice item scores ``(prompt, " " + choice)`` per choice. WinoGrande is lm-eval's "multiple
input" task: each option fills the blank to make its own context (the few-shot examples use the correct one)
and the rest of the sentence is the continuation shared by both.

Few-shot examples are drawn as lm-eval draws them: MMLU the first k dev examples of the subject
(``first_n``); every other task ``random.Random(fewshot_seed).sample`` over the pool, one generator for the
whole task, advanced document by document in the split's order (lm-eval's default sampler with
``--fewshot_seed``, default 1234). Where lm-eval passes the evaluated document to the sampler (tasks whose
few-shot split equals their ``test_split``, both unset included: HellaSwag, PIQA, WinoGrande, BoolQ,
TruthfulQA) it samples k + 1 and drops the document itself, which also changes the generator's state; that
is reproduced. Items are built for the whole split, so a subset chosen later with :func:`select_items` keeps
the prompts of a full lm-eval run.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tamperlab.errors import DataError

if TYPE_CHECKING:
    from tamperlab.data.capability import CapabilityData


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question as lm-eval scores it: a (context, continuation) pair per choice.

    ``contexts`` are identical across choices except for partial evaluation (WinoGrande), where each choice
    has its own context and the continuation is shared. ``continuations`` include the target delimiter (" A").
    ``choice_texts`` are lm-eval's ``doc_to_choice`` strings, whose lengths normalise ``acc_norm``. ``gold``
    holds the correct choices' indices: one for every task but TruthfulQA MC2, where every true answer counts.
    """

    item_id: str
    subject: str | None
    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    choice_texts: tuple[str, ...]
    gold: tuple[int, ...]


@dataclass(frozen=True)
class GenItem:
    """One generative question (GSM8K): the raw-text prompt, the reference answer, the stop strings."""

    item_id: str
    subject: str | None
    prompt: str
    target: str
    until: tuple[str, ...]


TASK_METRICS: dict[str, tuple[str, ...]] = {
    "mmlu": ("acc",),
    "arc_easy": ("acc", "acc_norm"),
    "arc_challenge": ("acc", "acc_norm"),
    "hellaswag": ("acc", "acc_norm"),
    "piqa": ("acc", "acc_norm"),
    "winogrande": ("acc",),
    "boolq": ("acc",),
    "truthfulqa_mc1": ("acc",),
    "truthfulqa_mc2": ("acc",),
    "gsm8k": ("exact_match", "exact_match_flexible"),
}
"""The metrics lm-eval reports per task. TruthfulQA MC2's ``acc`` is the mean probability mass on the true
answers; GSM8K's ``exact_match`` is lm-eval's strict-match filter, ``exact_match_flexible`` its
flexible-extract filter."""

LM_EVAL_RESULT_KEYS: dict[str, str] = {
    "acc": "acc,none",
    "acc_norm": "acc_norm,none",
    "exact_match": "exact_match,strict-match",
    "exact_match_flexible": "exact_match,flexible-extract",
}
"""Where each metric of :data:`TASK_METRICS` sits in lm-eval's results (``results[task][key]``)."""

DEFAULT_SHOTS: dict[str, int] = {
    "mmlu": 0,
    "arc_easy": 0,
    "arc_challenge": 0,
    "hellaswag": 0,
    "piqa": 0,
    "winogrande": 0,
    "boolq": 0,
    "truthfulqa_mc1": 0,
    "truthfulqa_mc2": 0,
    "gsm8k": 5,
}
"""lm-eval's ``num_fewshot`` when none is given (only GSM8K's YAML sets one); ``build_items(shots=None)``."""

GSM8K_UNTIL: tuple[str, ...] = ("Question:", "</s>", "<|im_end|>")
"""lm-eval gsm8k's ``generation_kwargs.until``."""

MMLU_DESCRIPTION = "The following are multiple choice questions (with answers) about {}.\n\n"
"""lm-eval's MMLU description; the subject's underscores become spaces."""

TRUTHFULQA_PRIMER = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)
"""The six QA pairs lm-eval's truthfulqa_mc1/mc2 ``doc_to_text`` puts before every question."""

TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


# ------------------------------------------------------------------------------------- lm-eval's task formats


@dataclass(frozen=True)
class _Format:
    """One lm-eval task: ``doc_to_text``, ``doc_to_choice``, ``doc_to_target`` and few-shot configuration.

    ``text`` returns an int for a multiple-input task (the index of the correct context among the choices).
    ``sampler`` is lm-eval's: "first_n" or "default" (seeded random). ``pass_eval_doc`` says whether lm-eval
    hands the evaluated document to the sampler (its few-shot split equals its ``test_split``).
    """

    text: Callable[[dict], str | int]
    choices: Callable[[dict], list[str]] | None
    target: Callable[[dict], int | str]
    description: Callable[[dict], str] = lambda doc: ""
    sampler: str = "default"
    pass_eval_doc: bool = False
    multiple_input: bool = False


def _mmlu_text(doc: dict) -> str:
    c = doc["choices"]
    return f"{doc['question'].strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"


def _mmlu_description(doc: dict) -> str:
    return MMLU_DESCRIPTION.format(" ".join(doc["subject"].split("_")))


def _hellaswag_preprocess(text: str) -> str:
    """lm-eval ``hellaswag/utils.py::preprocess``: WikiHow's bracket artefacts out, double spaces single."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def _hellaswag_query(doc: dict) -> str:
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return _hellaswag_preprocess(doc["activity_label"] + ": " + ctx)


def _winogrande_choices(doc: dict) -> list[str]:
    idx = doc["sentence"].index("_")
    return [doc["sentence"][:idx] + opt for opt in (doc["option1"], doc["option2"])]


def _winogrande_target(doc: dict) -> str:
    idx = doc["sentence"].index("_") + 1
    return doc["sentence"][idx:].strip()


_FORMATS: dict[str, _Format] = {
    "mmlu": _Format(
        text=_mmlu_text,
        choices=lambda doc: ["A", "B", "C", "D"],
        target=lambda doc: doc["answer"],
        description=_mmlu_description,
        sampler="first_n",
    ),
    "arc": _Format(
        text=lambda doc: f"Question: {doc['question']}\nAnswer:",
        choices=lambda doc: list(doc["choices"]["text"]),
        target=lambda doc: doc["choices"]["label"].index(doc["answerKey"]),
    ),
    "hellaswag": _Format(
        text=_hellaswag_query,
        choices=lambda doc: [_hellaswag_preprocess(e) for e in doc["endings"]],
        target=lambda doc: int(doc["label"]),
        pass_eval_doc=True,
    ),
    "piqa": _Format(
        text=lambda doc: f"Question: {doc['goal']}\nAnswer:",
        choices=lambda doc: [doc["sol1"], doc["sol2"]],
        target=lambda doc: doc["label"],
        pass_eval_doc=True,
    ),
    "winogrande": _Format(
        text=lambda doc: {"1": 0, "2": 1}[doc["answer"]],
        choices=_winogrande_choices,
        target=_winogrande_target,
        pass_eval_doc=True,
        multiple_input=True,
    ),
    "boolq": _Format(
        text=lambda doc: f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:",
        choices=lambda doc: ["no", "yes"],
        target=lambda doc: doc["label"],
        pass_eval_doc=True,
    ),
    "truthfulqa_mc1": _Format(
        text=lambda doc: TRUTHFULQA_PRIMER + "\n\nQ: " + doc["question"] + "\nA:",
        choices=lambda doc: list(doc["mc1_targets"]["choices"]),
        target=lambda doc: 0,
        pass_eval_doc=True,
    ),
    "truthfulqa_mc2": _Format(
        text=lambda doc: TRUTHFULQA_PRIMER + "\n\nQ: " + doc["question"] + "\nA:",
        choices=lambda doc: list(doc["mc2_targets"]["choices"]),
        target=lambda doc: 0,
        pass_eval_doc=True,
    ),
    "gsm8k": _Format(
        text=lambda doc: f"Question: {doc['question']}\nAnswer:",
        choices=None,
        target=lambda doc: doc["answer"],
    ),
}
_TASK_FORMAT = {"arc_easy": "arc", "arc_challenge": "arc"}


def _format(task: str) -> _Format:
    return _FORMATS[_TASK_FORMAT.get(task, task)]


def _fewshot_turn(fmt: _Format, doc: dict) -> str:
    """lm-eval ``build_qa_turn`` for one labelled example, as plain text."""
    q = fmt.text(doc)
    c = fmt.choices(doc) if fmt.choices is not None else None
    a = fmt.target(doc)
    if fmt.multiple_input:
        assert c is not None and isinstance(q, int)
        q, c = c[q], None
    assert isinstance(q, str)
    if a is None or a == "":
        return q
    answer = c[a] if (c and isinstance(a, int)) else a
    return q + TARGET_DELIMITER + str(answer) + FEWSHOT_DELIMITER


class _Sampler:
    """lm-eval's ``ContextSampler`` (seeded random) and ``FirstNSampler``, over one task's pool."""

    def __init__(self, kind: str, pool: Sequence[dict], seed: int):
        self.kind, self.pool, self.rnd = kind, list(pool), random.Random(seed)

    def sample(self, n: int, eval_doc: dict | None) -> list[dict]:
        if self.kind == "first_n":
            pool = [x for x in self.pool if x != eval_doc] if eval_doc is not None else self.pool
            return pool[:n]
        if eval_doc is None:
            res = self.rnd.sample(self.pool, n)
        else:
            res = [x for x in self.rnd.sample(self.pool, n + 1) if x != eval_doc][:n]
        if len(res) < n:
            res = self.rnd.sample([x for x in self.pool if x != eval_doc], n)
        return res


def _item_ids(task: str, docs: Sequence[dict]) -> list[str]:
    """MMLU: subject/index within the subject (lm-eval's doc_id in mmlu_<subject>); ARC: the question id;
    every other task: the document's index in the split (lm-eval's doc_id)."""
    if task == "mmlu":
        seen: dict[str, int] = {}
        out = []
        for d in docs:
            k = seen.get(d["subject"], 0)
            seen[d["subject"]] = k + 1
            out.append(f"{d['subject']}/{k}")
        return out
    if task in ("arc_easy", "arc_challenge") and all("id" in d for d in docs):
        return [str(d["id"]) for d in docs]
    return [str(i) for i in range(len(docs))]


def build_items(
    data: CapabilityData, *, shots: int | None = 0, fewshot_seed: int = 1234
) -> list[MCItem] | list[GenItem]:
    """lm-eval's requests for every document of ``data``: MCItems, or GenItems for GSM8K.

    Args:
        data: Documents from :func:`tamperlab.data.capability.load_capability_data`.
        shots: Few-shot examples per prompt (lm-eval's ``num_fewshot``); None: lm-eval's default for the task
            (:data:`DEFAULT_SHOTS`: 5 for GSM8K, else 0).
        fewshot_seed: lm-eval's ``fewshot_random_seed`` (its default 1234).

    Returns:
        One item per document, in the documents' order.

    Raises:
        DataError: ``shots`` > 0 and the source lacks the few-shot split (or has too few examples in it).
    """
    task = data.task
    if task not in _FORMATS and task not in _TASK_FORMAT:
        raise DataError(f"{data.source}: no lm-eval format for task {task!r}")
    if shots is None:
        shots = DEFAULT_SHOTS[task]
    if shots < 0:
        raise DataError(f"{data.source}: shots must be >= 0, got {shots}")
    fmt = _format(task)
    pools = _fewshot_pools(data, fmt, shots)
    ids = _item_ids(task, data.docs)
    samplers: dict[str | None, _Sampler] = {}
    items: list[Any] = []
    for item_id, doc in zip(ids, data.docs, strict=True):
        subject = doc["subject"] if task == "mmlu" else None
        prefix = fmt.description(doc)
        if shots:
            # MMLU is 57 lm-eval tasks, one per subject, each with its own sampler over its own dev split.
            key = subject
            if key not in samplers:
                samplers[key] = _Sampler(fmt.sampler, pools[key], fewshot_seed)
            examples = samplers[key].sample(shots, doc if fmt.pass_eval_doc else None)
            prefix += "".join(_fewshot_turn(fmt, ex) for ex in examples)
        items.append(_item(task, fmt, item_id, subject, prefix, doc))
    return items


def _fewshot_pools(data: CapabilityData, fmt: _Format, shots: int) -> dict[str | None, list[dict]]:
    if shots == 0:
        return {}
    split = data.fewshot_split or "train"
    if not data.fewshot_docs:
        raise DataError(
            f"{data.source}: {data.task} with {shots} shots needs lm-eval's few-shot split ({split!r}), "
            f"which this source lacks; pass FORMAT:PATH with a {split} file beside the {data.split} file"
        )
    if data.task != "mmlu":
        pool = list(data.fewshot_docs)
        need = shots + 1 if fmt.pass_eval_doc and fmt.sampler != "first_n" else shots
        if len(pool) < need:
            raise DataError(
                f"{data.source}: {data.task} with {shots} shots needs {need} examples in its "
                f"{split!r} split, which has {len(pool)}"
            )
        return {None: pool}
    pools: dict[str | None, list[dict]] = {}
    for d in data.fewshot_docs:
        pools.setdefault(d["subject"], []).append(d)
    for subject in dict.fromkeys(d["subject"] for d in data.docs):
        have = len(pools.get(subject, []))
        if have < shots:
            raise DataError(
                f"{data.source}: mmlu {subject} with {shots} shots needs {shots} {split} examples, "
                f"the {split} split has {have}"
            )
    return pools


def _item(task: str, fmt: _Format, item_id: str, subject: str | None, prefix: str, doc: dict) -> Any:
    text = fmt.text(doc)
    if fmt.choices is None:
        assert isinstance(text, str)
        return GenItem(item_id, subject, prefix + text, str(fmt.target(doc)), GSM8K_UNTIL)
    choices = fmt.choices(doc)
    if fmt.multiple_input:
        assert isinstance(text, int)
        cont = TARGET_DELIMITER + str(fmt.target(doc))
        contexts = tuple(prefix + c for c in choices)
        continuations = (cont,) * len(choices)
        gold: tuple[int, ...] = (text,)
    else:
        assert isinstance(text, str)
        contexts = (prefix + text,) * len(choices)
        continuations = tuple(TARGET_DELIMITER + c for c in choices)
        if task == "truthfulqa_mc2":
            gold = tuple(i for i, label in enumerate(doc["mc2_targets"]["labels"]) if label == 1)
        else:
            target = fmt.target(doc)
            assert isinstance(target, int)
            gold = (target,)
    return MCItem(item_id, subject, contexts, continuations, tuple(choices), gold)


# ------------------------------------------------------------------------------------------------ subsets

_T = TypeVar("_T", MCItem, GenItem)


def _rank(seed: int, item_id: str) -> str:
    return hashlib.sha256(f"tamperlab-subset-v1:{seed}:{item_id}".encode()).hexdigest()


def select_items(
    items: Sequence[_T], *, limit: int | None = None, per_subject: int | None = None, seed: int = 0
) -> list[_T]:
    """A fixed, seeded subset of ``items``, stratified by subject, in the items' own order.

    Items are ranked by a salted sha256 of (seed, item id), so the subset is the same on every machine and in
    every Python, and adding items elsewhere never reshuffles a subject's choice. ``per_subject`` keeps the N
    best-ranked items of each subject (all of a smaller one); ``limit`` then keeps N overall: one per subject
    first when N allows, the rest shared in proportion to what each subject has left (largest remainder, ties
    by subject name). Items without a subject (every task but MMLU) form one group.

    Args:
        items: From :func:`build_items`.
        limit: At most this many items in all; None: no limit.
        per_subject: At most this many items per subject; None: no limit.
        seed: Which subset (any int).

    Returns:
        The chosen items, in their original order.
    """
    for name, value in (("limit", limit), ("per_subject", per_subject)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    groups: dict[str | None, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.subject, []).append(i)
    for g, idx in groups.items():
        idx.sort(key=lambda i: _rank(seed, items[i].item_id))
        if per_subject is not None:
            groups[g] = idx[:per_subject]
    if limit is not None:
        sizes = {g: len(idx) for g, idx in groups.items()}
        quota = _allocate(sizes, limit)
        groups = {g: idx[: quota[g]] for g, idx in groups.items()}
    keep = sorted(i for idx in groups.values() for i in idx)
    return [items[i] for i in keep]


def _allocate(sizes: dict[str | None, int], limit: int) -> dict[str | None, int]:
    """``limit`` shared among groups: one each when limit allows, the rest in proportion to what is left."""
    total = sum(sizes.values())
    if limit >= total:
        return dict(sizes)
    names = sorted(sizes, key=lambda g: "" if g is None else g)
    floor = 1 if limit >= len(names) else 0
    alloc = {g: min(floor, sizes[g]) for g in names}
    rest = limit - sum(alloc.values())
    spare = {g: sizes[g] - alloc[g] for g in names}
    spare_total = sum(spare.values())
    shares = {g: rest * spare[g] / spare_total for g in names} if spare_total else dict.fromkeys(names, 0.0)
    for g in names:
        alloc[g] += int(shares[g])
    left = limit - sum(alloc.values())
    by_remainder = sorted(names, key=lambda g: (-(shares[g] - int(shares[g])), "" if g is None else g))
    for g in by_remainder:
        if left <= 0:
            break
        if alloc[g] < sizes[g]:
            alloc[g] += 1
            left -= 1
    return alloc
