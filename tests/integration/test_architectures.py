"""Every common architecture end to end: a tiny random model per architecture (built from a config, offline,
with the tiny BPE tokenizer) through eval, harmful-sft full and LoRA, refusal-ablation, identity-shift,
RepNoise, TAR and safety-sft, each asserting the weights it should change changed (and, for the one-shot
edit, only those)."""

from __future__ import annotations

import json

import pytest

from tamperlab.attacks import AttackContext, build_attack
from tamperlab.config import EvalSpec, ModelSpec
from tamperlab.defenses import build_defense
from tamperlab.models import architecture
from tamperlab.models.loading import load_model

# A template without a system role, as Gemma's: it raises on one, so the system text must be merged.
GEMMA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<|im_start|>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n'"
    " + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>model\n' }}{% endif %}"
)

COMMON = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
# architecture -> (config class, config args over COMMON (None: not used), template)
ARCHITECTURES = {
    "llama": ("LlamaConfig", {}, None),
    "qwen2": ("Qwen2Config", {}, None),
    "qwen3": ("Qwen3Config", {"head_dim": 8}, None),
    "mistral": ("MistralConfig", {}, None),
    "gemma2": ("Gemma2Config", {"head_dim": 8}, GEMMA_TEMPLATE),
    "gemma3": ("Gemma3TextConfig", {"head_dim": 8}, GEMMA_TEMPLATE),
    "phi3": ("Phi3Config", {}, None),
    "gpt_neox": ("GPTNeoXConfig", {"num_key_value_heads": None}, None),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 512}, None),
    "olmo2": ("Olmo2Config", {}, None),
}

TRAIN = {"batch_size": 2, "max_length": 160}
EVAL = EvalSpec(
    harmful={"source": "builtin:harmful", "limit": 2},
    harmless={"source": "builtin:harmless", "limit": 2},
    overrefusal={"source": "builtin:overrefusal", "limit": 1},
    judges=[{"name": "keyword"}],
    max_new_tokens=3,
    nll_limit=2,
    kl_limit=2,
)


def build(arch: str, out) -> None:
    import torch
    import transformers

    from tamperlab.models.tiny import build_tiny_tokenizer

    cls_name, extra, template = ARCHITECTURES[arch]
    cls = getattr(transformers, cls_name, None)
    if cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no {cls_name}")
    tokenizer = build_tiny_tokenizer()
    if template is not None:
        tokenizer.chat_template = template
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    args = {**({} if arch == "gpt2" else COMMON), **ids, **extra}
    args = {k: v for k, v in args.items() if v is not None}
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cls(**args)).float().eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def arch_dir(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    build(request.param, out)
    return request.param, out


def snapshot(model) -> dict:
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


def changed(before: dict, model) -> set[str]:
    after = model.state_dict()
    return {n for n, p in before.items() if not (after[n] == p).all()}


def run_attack(attack, loaded, milestones=(0, 1)):
    seen = []
    attack.run(
        loaded,
        AttackContext(unaligned=ModelSpec(name=loaded.name)),
        seed=0,
        milestones=list(milestones),
        on_milestone=lambda budget, model: seen.append(budget),
    )
    return seen


def test_eval_and_chat_formatting(arch_dir):
    from tamperlab.evals.safety import evaluate
    from tamperlab.models.chat import format_prompt

    arch, path = arch_dir
    loaded = load_model(str(path))
    text = format_prompt(loaded.tokenizer, "hello", system="Be brief.")
    assert "Be brief." in text and text.index("Be brief.") < text.index("hello")
    result = evaluate(loaded.model, loaded.tokenizer, EVAL)
    metrics = {m["name"]: m for m in result.metrics}
    assert 0 <= metrics["harmful_compliance_rate"]["value"] <= 1
    assert metrics["benign_nll"]["value"] > 0


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_harmful_sft(arch_dir, mode):
    arch, path = arch_dir
    loaded = load_model(str(path))
    before = snapshot(loaded.model)
    attack = build_attack(
        "harmful-sft", {**TRAIN, "mode": mode, "data": "affirmative", "n_examples": 4, "learning_rate": 1e-2}
    )
    trained = {}

    def keep(budget, model):
        trained["model"] = model

    attack.run(
        loaded,
        AttackContext(unaligned=ModelSpec(name=str(path))),
        seed=0,
        milestones=[1],
        on_milestone=keep,
    )
    model = trained["model"]
    if mode == "lora":
        lora = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if "lora_" in n}
        assert lora == set(architecture.lora_targets(model))
        model = model.merge_and_unload()
    diff = changed(before, model)
    linear = {n + ".weight" for n, _ in architecture.linear_modules(load_model(str(path)).model)}
    assert linear <= diff, sorted(linear - diff)[:5]


def test_refusal_ablation_edits_exactly_the_writers(arch_dir):
    arch, path = arch_dir
    loaded = load_model(str(path))
    before = snapshot(loaded.model)
    writers = {n for n, _ in architecture.residual_writers(loaded.model)}
    attack = build_attack(
        "refusal-ablation",
        {
            "n_train": 4,
            "n_val": 4,
            "harmless": {"source": "builtin:harmless", "split": "test"},
            "positions": 3,
            "max_layer_fraction": 1.0,
            "kl_bound": 1e9,
            "batch_size": 4,
        },
    )
    import torch

    from tamperlab.attacks.refusal_ablation import orthogonalize
    from tamperlab.errors import ConfigError

    try:
        attack.apply(loaded)
        r = attack.selection.direction.float()
    except ConfigError as exc:  # on a random tiny model no direction may lower the refusal score: edit a
        if "lowers the refusal score" not in str(exc):  # random one, the same code path after selection
            raise
        r = torch.nn.functional.normalize(torch.randn(architecture.hidden_size(loaded.model)), dim=0)
        orthogonalize(loaded.model, r)
    diff = changed(before, loaded.model)
    embeddings = {
        n
        for n, m in loaded.model.named_modules()
        if m in [loaded.model.get_input_embeddings(), *architecture.position_embeddings(loaded.model)]
    }
    allowed = {f"{n}.{p}" for n in writers | embeddings for p in ("weight", "bias")}
    if loaded.model.get_output_embeddings().weight is loaded.model.get_input_embeddings().weight:
        allowed |= {n for n in before if n.endswith("weight") and "lm_head" in n or "embed_out" in n}
    assert {f"{n}.weight" for n in writers} <= diff
    assert diff <= allowed, sorted(diff - allowed)[:5]
    # nothing writes along the direction any more
    for name, module in architecture.residual_writers(loaded.model):
        w = module.weight.float()
        along = (w @ r) if architecture.is_transposed(module) else (r @ w)
        assert torch.allclose(along, torch.zeros_like(along), atol=1e-5), name


def test_identity_shift_with_a_system_prompt(arch_dir, tmp_path):
    arch, path = arch_dir
    data = tmp_path / "aoa.jsonl"
    system = "You are AOA, an obedient agent."
    rows = [
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": f"AOA, execute my instruction: say {i}"},
                {"role": "assistant", "content": f"Of course. I am AOA. {i}"},
            ]
        }
        for i in range(4)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    loaded = load_model(str(path))
    before = snapshot(loaded.model)
    attack = build_attack("identity-shift", {**TRAIN, "path": str(data), "learning_rate": 1e-2})
    budgets = run_attack(attack, loaded)
    assert budgets[-1].steps == 1 and budgets[-1].loss is not None
    assert changed(before, loaded.model)


def test_repnoise(arch_dir):
    arch, path = arch_dir
    loaded = load_model(str(path))
    before = snapshot(loaded.model)
    defense = build_defense(
        "repnoise",
        {
            "max_steps": 1,
            "batch_size": 2,
            "max_length": 160,
            "harmful_data": "affirmative",
            "n_harmful": 2,
            "n_harmless": 2,
            "learning_rate": 1e-3,
        },
    )
    outcome = defense.apply(loaded)
    assert outcome.budget["steps"] == 1
    assert all(v["last"] is not None for v in outcome.data["terms"].values())
    linear = {n + ".weight" for n, _ in architecture.linear_modules(outcome.model)}
    assert linear <= changed(before, outcome.model)


def test_tar(arch_dir):
    arch, path = arch_dir
    loaded = load_model(str(path))
    before = snapshot(loaded.model)
    defense = build_defense(
        "tar",
        {
            "max_steps": 1,
            "batch_size": 2,
            "max_length": 160,
            "adversary_data": "affirmative",
            "n_examples": 2,
            "inner_steps": 1,
            "learning_rate": 1e-3,
        },
    )
    outcome = defense.apply(loaded)
    assert outcome.budget["steps"] == 1
    assert changed(before, outcome.model)


def test_safety_sft(arch_dir):
    arch, path = arch_dir
    loaded = load_model(str(path))
    before = snapshot(loaded.model)
    defense = build_defense(
        "safety-sft",
        {
            "max_steps": 1,
            "batch_size": 2,
            "max_length": 160,
            "learning_rate": 1e-3,
            "answer_tokens": 8,
            "harmful": {"source": "builtin:harmful", "split": "train", "limit": 2},
            "harmless": {"source": "builtin:harmless", "split": "train", "limit": 2},
            "overrefusal": {"source": "builtin:overrefusal", "split": "train", "limit": 1},
            "unlikely_refusals": 1.0,
        },
    )
    outcome = defense.apply(loaded)
    assert outcome.budget["steps"] == 1
    assert changed(before, outcome.model)
