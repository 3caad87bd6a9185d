"""Sweeps: declarative grids expanded into RunSpecs, run by a local or a Ray executor, resumable at any point.

- :mod:`~tamperlab.sweep.grid`: grid specs and their expansion into RunSpecs with deterministic ids;
- :mod:`~tamperlab.sweep.state`: each run's status from the store, and claims on runs in flight;
- :mod:`~tamperlab.sweep.local`: one process per run, in order; :mod:`~tamperlab.sweep.ray_executor`: Ray
  tasks (ray is imported only there);
- :mod:`~tamperlab.sweep.runner`: the sweep itself; :mod:`~tamperlab.sweep.command`: ``tamperlab sweep``.

``python -m tamperlab.sweep GRID.yaml`` is ``tamperlab sweep GRID.yaml``.
"""
