"""The terminal summary says what the HTML headline says."""

from __future__ import annotations

from rich.console import Console

from tamperlab.report import render_terminal_summary


def test_terminal_summary_shows_break_costs_bounds_ratios_and_method(report_store):
    store, run_id = report_store
    console = Console(record=True, width=220, color_system=None)
    render_terminal_summary(store, run_id, console)
    text = console.export_text()
    for arm in (
        "undefended/harmful-sft-full",
        "undefended/harmful-sft-lora",
        "repnoise/harmful-sft-full",
        "repnoise/harmful-sft-lora",
    ):
        assert arm in text
    assert "3.1" in text and "2.3–3.7" in text  # median steps and spread of the undefended full arm
    assert "≥ 32" in text and "not broken within budget" in text
    assert "≥ 10.2× FLOPs" in text
    assert "incoherent: not resistance" in text
    assert "judge: embedding" in text and "threshold" in text and "n=20 prompts" in text
