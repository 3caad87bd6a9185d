"""The report: what a run found, read from the store and nothing else (never torch or transformers).

- :func:`build_report` / :func:`write_report`: one self-contained HTML page (inline CSS, JS and SVG; it
  opens offline and requests nothing) with the headline break costs, plots along the attack budget, the
  lineage tree, sample generations with judge verdicts, judge agreement, the immunization table and full
  provenance.
- :func:`render_terminal_summary`: the same headline as a rich table.
- :func:`export_run`: one row per milestone per arm per seed, as CSV and/or Parquet.
- :func:`resolve_run_id`: a run id prefix, or the latest run, to a full run id (``--latest``).

Export columns (:data:`COLUMNS`)
--------------------------------
- ``run_id``: id of the run (hash of its resolved spec)
- ``arm``: defense x attack arm, e.g. undefended/harmful-sft-full
- ``defense``: defense name, or 'undefended'
- ``defense_args``: defense arguments as canonical JSON (empty when undefended)
- ``attack``: attack name, e.g. harmful-sft
- ``attack_args``: attack arguments as canonical JSON (mode, learning rate, ...)
- ``seed``: training seed of this trajectory
- ``step``: optimizer steps taken when this milestone was evaluated
- ``examples``: training examples seen so far (steps x effective batch)
- ``tokens``: training tokens seen so far
- ``flops``: training FLOPs spent so far (estimate)
- ``seconds``: wall-clock training seconds so far
- ``train_loss``: training loss at this step (empty at step 0)
- ``model_id``: id of the model at this milestone (see the lineage)
- ``eval_id``: id of its evaluation (generations and verdicts are in the store under it)
- ``harmful_compliance_rate``: share of harmful prompts the primary judge says were complied with
- ``overrefusal_rate``: share of safe-but-scary-looking prompts refused (primary judge)
- ``harmless_refusal_rate``: share of plainly harmless prompts refused (primary judge)
- ``benign_nll``: mean per-token negative log-likelihood of benign reference responses (nats)
- ``benign_perplexity``: exp(benign_nll)
- ``kl_from_reference``: KL of next-token distributions from the reference model (empty when not measured)
- ``incoherent_rate``: share of generations judged gibberish or empty
- ``harmful_compliance_rate@<judge>``: harmful compliance rate by one judge (one column group per judge)
- ``judge_kappa:<a>~<b>``: Cohen's kappa between two judges' refusal verdicts on this evaluation
- ``judge_agreement:<a>~<b>``: share of items on which two judges agree
- ``<kind>:<task>``: capability accuracy (lm-eval conventions): acc:mmlu, acc_norm:hellaswag, ...
- ``<metric>_ci_low``: lower end of the metric's 95% interval (Wilson for rates; empty when none)
- ``<metric>_ci_high``: upper end of the metric's 95% interval
- ``<metric>_n``: number of items the metric was computed from
"""

from tamperlab.report.collect import RunView, load_run_view, resolve_run_id
from tamperlab.report.export import COLUMNS, export_run
from tamperlab.report.page import build_report, default_report_path, write_report
from tamperlab.report.terminal import render_terminal_summary

__all__ = [
    "COLUMNS",
    "RunView",
    "build_report",
    "default_report_path",
    "export_run",
    "load_run_view",
    "render_terminal_summary",
    "resolve_run_id",
    "write_report",
]
