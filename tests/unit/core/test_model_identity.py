"""A model's identity (and so its run ids) comes from its files' content, never from their times or path."""

from __future__ import annotations

import json
import os
import shutil

from tamperlab import paths, provenance
from tamperlab.config import ModelSpec, RunSpec, validate
from tamperlab.evals.run_eval import EvalRunSpec, eval_run_id
from tamperlab.pipeline import model_key, run_id_for


def _copy(src, dst):
    """A copy with fresh file times (shutil.copy, not copy2): what cp -r or a download does."""
    shutil.copytree(src, dst, copy_function=shutil.copy)
    for f in dst.iterdir():
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))
    return dst


def _run_id(path) -> str:
    return run_id_for(validate(RunSpec, {"model": {"name": str(path)}, "attacks": [{"name": "prefill"}]}))


def test_a_copied_directory_keeps_its_run_ids(tiny_model_dir, tmp_path):
    copy = _copy(tiny_model_dir, tmp_path / "copied")
    weights = next(copy.glob("*.safetensors"))
    assert weights.stat().st_mtime_ns != next(tiny_model_dir.glob("*.safetensors")).stat().st_mtime_ns
    assert model_key(ModelSpec(name=str(copy))) == model_key(ModelSpec(name=str(tiny_model_dir)))
    assert _run_id(copy) == _run_id(tiny_model_dir)
    evals = [eval_run_id(validate(EvalRunSpec, {"model": {"name": str(p)}})) for p in (copy, tiny_model_dir)]
    assert evals[0] == evals[1]


def test_new_weights_config_or_tokenizer_give_a_new_id(tiny_model_dir, tmp_path):
    original = model_key(ModelSpec(name=str(tiny_model_dir)))
    for changed_file in ("model.safetensors", "config.json", "tokenizer_config.json"):
        copy = _copy(tiny_model_dir, tmp_path / changed_file)
        target = copy / changed_file
        if target.suffix == ".json":
            data = json.loads(target.read_text())
            data["tamperlab_test_marker"] = 1
            target.write_text(json.dumps(data))
        else:
            raw = bytearray(target.read_bytes())
            raw[-1] ^= 0x01  # one bit of the last weight
            target.write_bytes(bytes(raw))
        assert model_key(ModelSpec(name=str(copy))) != original, changed_file


def test_file_hashes_are_cached_by_path_size_and_mtime(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"a" * 4096)
    first = provenance.file_sha256(f)
    assert (paths.home() / provenance.HASH_CACHE_FILE).is_file()
    st = f.stat()
    f.write_bytes(b"b" * 4096)  # same size; restore the time: the cache answers without reading
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert provenance.file_sha256(f) == first
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new time: read again
    assert provenance.file_sha256(f) != first
