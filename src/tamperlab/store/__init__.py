"""The SQLite store: runs, models and their lineage, evaluations, generations, verdicts, metrics, milestones.

It never imports torch: the report and the scorecard read it with nothing but the standard library.
"""

from tamperlab.store.factory import open_store, store_target
from tamperlab.store.store import SCHEMA_VERSION, Store

__all__ = ["SCHEMA_VERSION", "Store", "open_store", "store_target"]
