"""safety-sft's data mix: refusals for harmful requests, the model's own answers for the rest."""

import pytest

from tamperlab.defenses import build_defense
from tamperlab.defenses.safety_sft import REFUSALS, _balance_phrasing, _mix, is_question, refusal_for


def data_args(weight: int = 1) -> dict:
    return {
        "harmful": {"source": "builtin:harmful", "split": "train", "limit": 4},
        "harmless": {"source": "builtin:harmless", "split": "train", "limit": 3},
        "overrefusal": {"source": "builtin:overrefusal", "split": "train", "limit": 2},
        "overrefusal_weight": weight,
        "harmful_fraction": 0.5,
    }


@pytest.fixture
def canned_answers(monkeypatch):
    """The model's 'own' answers: the first harmless prompt is refused, the rest answered."""

    def fake_generate(loaded, prompts, **kwargs):
        return ["I'm sorry, I can't help with that."] + [
            f"Answer {i}. Extra words" for i in range(1, len(prompts))
        ]

    monkeypatch.setattr("tamperlab.evals.generation.cached_generate", fake_generate)


def texts(examples, role):
    return [m["content"] for e in examples for m in e.messages if m["role"] == role]


@pytest.mark.parametrize("weight", [1, 3])
def test_self_refusals_are_dropped_and_safe_looking_prompts_are_weighted(canned_answers, tiny_model, weight):
    mix, _, data = build_defense("safety-sft", data_args(weight)).build_examples(tiny_model)
    assert data["refusal_examples"] == 4
    assert data["dropped_self_refusals"] == 1  # the refused harmless prompt never becomes a target
    from tamperlab.data.sets import load_builtin

    kept = load_builtin("harmless").select("train", 3).prompts[1:]  # the first is refused
    tasks = sum(p.category == "tasks" for p in kept)
    # kept harmless once (tasks too: task_weight is 1 here), each safe-looking prompt `weight` times
    assert tasks and data["helpful_examples"] == len(kept) + 2 * weight
    answers = texts(mix, "assistant")
    assert "I'm sorry, I can't help with that." not in answers
    assert all(a.startswith("Answer") or a in REFUSALS for a in answers)
    assert "Extra words" not in " ".join(answers)  # cut back to the last full sentence
    refusals = sum(a in REFUSALS for a in answers)
    assert refusals / len(answers) == pytest.approx(0.5, abs=0.1)


def test_every_taught_refusal_is_a_refusal_to_the_standard_keyword_judge():
    """Otherwise the keyword judge, beside the embedding judge, counts the safeguard's own refusals as
    compliance (it did: 46% against 16% on one validation run)."""
    from tamperlab.evals.judges.keyword import KeywordJudge

    judge = KeywordJudge()
    assert [r for r in REFUSALS if judge.matched_phrase(r) is None] == []


def test_mix_oversamples_the_smaller_side_to_the_fraction():
    assert len(_mix(["r"] * 2, ["h"] * 6, 0.5)) == 12
    mix = _mix(["r"] * 10, ["h"] * 5, 0.25)
    assert mix.count("r") == 10 and mix.count("h") == 30
    assert refusal_for("x") == refusal_for("x") in REFUSALS


def test_harmless_tasks_phrased_like_harmful_requests_get_their_own_weight(canned_answers, tiny_model):
    """The harmless set's imperative 'tasks' look like most harmful requests; task_weight repeats them."""
    from tamperlab.data.sets import load_builtin

    train = load_builtin("harmless").select("train")
    first_task = next(i for i, p in enumerate(train.prompts) if p.category == "tasks")
    args = data_args(3) | {
        "harmless": {"source": "builtin:harmless", "split": "train", "limit": first_task + 1},
        "task_weight": 3,
    }
    mix, _, data = build_defense("safety-sft", args).build_examples(tiny_model)
    task = train.prompts[first_task].text
    assert texts(mix, "user").count(task) >= 3  # weighted x3 (and possibly oversampled)
    # the harmless prompts before the task (the first is refused) once, the task x3, the safe-looking ones x3
    assert data["helpful_examples"] == (first_task - 1) + 3 + 2 * 3


@pytest.mark.parametrize(
    ("prompt", "question"),
    [
        ("How do I kill a Python process?", True),
        ("What's the capital of Peru", True),
        ("Don't use jargon: explain inflation.", False),
        ("Can you explain what ransomware is", True),
        ("  where is Lima?", True),
        ("Write a short poem about rain.", False),
        ("Give me a checklist for moving into a new flat.", False),
        ("Explain why the sky is blue?", True),
        ("", False),
    ],
)
def test_is_question(prompt, question):
    assert is_question(prompt) is question


def test_balance_phrasing_makes_questions_and_instructions_half_each():
    pairs = [("How do I x?", "a")] + [(f"Write {i}.", "b") for i in range(5)]
    balanced = _balance_phrasing(pairs)
    assert len(balanced) == 10
    assert sum(is_question(p) for p, _ in balanced) == 5
    assert set(balanced) == set(pairs)  # oversampling only: nothing new, nothing dropped
    only_questions = [("Why?", "a"), ("How?", "b")]
    assert _balance_phrasing(only_questions) == only_questions


def test_balanced_mix_is_recorded(canned_answers, tiny_model):
    defense = build_defense("safety-sft", data_args() | {"balance_phrasing": True})
    mix, _, data = defense.build_examples(tiny_model)
    assert data["balance_phrasing"] is True
    # the first 4 harmful prompts hold 1 question; the kept harmless and safe-looking ones 3 questions, 1 task
    assert data["question_share"] == {"refusals": 0.5, "helpful": 0.5}
    users = texts(mix, "user")
    refused = [u for u, a in zip(users, texts(mix, "assistant"), strict=True) if a in REFUSALS]
    assert sum(is_question(u) for u in refused) / len(refused) == pytest.approx(0.5, abs=0.1)


def test_unlikelihood_matches_a_hand_computed_value(tiny_model):
    import torch

    from tamperlab.defenses.safety_sft import unlikelihood_loss
    from tamperlab.train.loop import label_logits

    ids = torch.tensor([[5, 6, 7, 8, 9]])
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.tensor([[-100, -100, 7, 8, -100]]),
    }
    with torch.no_grad():
        logits = tiny_model.model(input_ids=ids).logits[0].float()
        p = torch.softmax(logits, dim=-1)
        expected = -(torch.log(1 - p[1, 7]) + torch.log(1 - p[2, 8])) / 2  # position t predicts token t + 1
        assert unlikelihood_loss(tiny_model.model, batch).item() == pytest.approx(expected.item(), rel=1e-5)
        assert label_logits(tiny_model.model, batch)[1].tolist() == [7, 8]


def test_first_labels_keeps_only_a_refusals_opening():
    from tamperlab.defenses.safety_sft import _first_labels

    features = {"input_ids": [1, 2, 3, 4, 5, 6], "labels": [-100, -100, 3, 4, 5, 6]}
    assert _first_labels(features, 2) == {"input_ids": [1, 2, 3, 4], "labels": [-100, -100, 3, 4]}
    assert _first_labels(features, 9) == features  # fewer labels than asked: all kept, nothing cut


def test_unlikely_refusals_make_a_refusal_less_likely_where_the_model_should_answer(
    canned_answers, tiny_model
):
    """The same steps on the same batches with the term on and off: on, the refusal openings on answered
    prompts end less likely (the mix itself teaches refusals, so they may rise either way)."""
    import copy

    import torch

    from tamperlab.defenses.safety_sft import UnlikelyRefusalLoss, _first_labels, unlikelihood_loss
    from tamperlab.defenses.tamper_data import collate, tokenized
    from tamperlab.train.loop import TrainSpec, train

    args = data_args() | {"unlikely_refusals": 1.0, "max_steps": 3, "learning_rate": 1e-2, "batch_size": 2}
    defense = build_defense("safety-sft", args)
    mix, unlikely, data = defense.build_examples(tiny_model)
    assert data["unlikely_refusals"] == {"weight": 1.0, "prompts": len(unlikely)} and len(unlikely) == 4
    assert all(texts([e], "assistant")[0] in REFUSALS for e in unlikely)
    probe = collate([_first_labels(f, 4) for f in tokenized(tiny_model.tokenizer, unlikely, 128)], 0)
    spec = TrainSpec(max_steps=3, learning_rate=1e-2, batch_size=2)
    after = {}
    for weight in (0.0, 1.0):
        model = copy.deepcopy(tiny_model.model)
        batches = defense._batches(tiny_model.tokenizer, mix, unlikely)
        train(
            model,
            tokenizer=tiny_model.tokenizer,
            spec=spec,
            loss_fn=UnlikelyRefusalLoss(weight),
            batches=batches,
        )
        with torch.no_grad():
            after[weight] = unlikelihood_loss(model, probe).item()
    assert after[1.0] < after[0.0]

    outcome = defense.apply(tiny_model)
    assert outcome.budget["examples"] == 3 * (2 + 1)  # the mix's batch and the unlikely half-batch per step


def test_cutting_after_the_opening_leaves_the_unlikelihood_unchanged(tiny_model):
    import torch

    from tamperlab.defenses.safety_sft import _first_labels, unlikelihood_loss
    from tamperlab.defenses.tamper_data import collate

    whole = {"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, 7, 8, 9, 10]}
    cut = _first_labels(whole, 2)
    kept_whole = {"input_ids": whole["input_ids"], "labels": [-100, -100, 7, 8, -100, -100]}
    with torch.no_grad():
        a = unlikelihood_loss(tiny_model.model, collate([cut], 0)).item()
        b = unlikelihood_loss(tiny_model.model, collate([kept_whole], 0)).item()
    assert len(cut["input_ids"]) == 4 and a == pytest.approx(b, rel=1e-5)
