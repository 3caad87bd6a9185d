"""The report reads only the store: building one must never import torch or transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURE_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "report_store.py"


def test_report_never_imports_torch_or_transformers(tmp_path):
    code = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("fx", {str(FIXTURE_FILE)!r})
fx = importlib.util.module_from_spec(spec); spec.loader.exec_module(fx)
import tamperlab.report as report
from rich.console import Console
store, run_id = fx.build_report_store({str(tmp_path / "store.db")!r})
report.write_report(store, run_id, {str(tmp_path / "r.html")!r})
report.render_terminal_summary(store, run_id, Console(file=open("/dev/null", "w")))
report.export_run(store, run_id, {str(tmp_path)!r}, formats=("csv",))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "peft", "accelerate"))
print(json.dumps(heavy))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert Path(tmp_path / "r.html").stat().st_size > 10_000
