"""Progress bars for every loop a person waits for (rich), quiet when asked or when not on a terminal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def enabled() -> bool:
    """Progress bars are on unless TAMPERLAB_QUIET is set."""
    return not os.environ.get("TAMPERLAB_QUIET")


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """Yield ``advance(n)``: a callable that moves a rich progress bar (a no-op when bars are off)."""
    if not enabled():
        yield lambda n=1: None
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def stage(text: str) -> None:
    """One line saying which part of a long run starts now, above its progress bars (nothing when bars are
    off): a study's bars alone all read "train" or "generating"."""
    if enabled():
        from rich.markup import escape

        console.print(f"[bold]>[/bold] {escape(text)}", highlight=False, soft_wrap=True)


def silence_library_bars() -> None:
    """Turn off transformers' own tqdm bars (weight loading, GGUF conversion): tamperlab shows its own."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
