"""Where a sweep runs: in this process, on local worker processes, or on a Ray cluster.

Scenarios are independent (each jump-diffusion path draws from its own seeded stream, see
``paths.py``), so a sweep splits into contiguous scenario ranges (``split_ranges``), each range runs
``engine.run_sweep(inputs, scenario_set, indices=range(a, b))`` wherever it is sent, and the pieces
are merged back **in scenario order** whatever order they finish in. The results, and so the report
bytes, are the same for one process, N processes and a Ray cluster (tested).

* ``workers == 1`` and no Ray: the ranges run here, one after the other (no pickling);
* ``workers > 1``: a ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method (a
  clean interpreter per worker: no forked locks or threads, the same on Linux and macOS);
* ``ray_address``: Ray tasks (the optional extra ``bastion[ray]``). ``"auto"`` joins the cluster
  this machine belongs to, ``"host:port"`` (or ``ray://host:port``) a given one, ``"local"`` starts
  a private instance for this sweep. An already initialised Ray (``ray.init`` by the caller) is
  used as it is and left running; one this function started is shut down at the end. The cluster's
  workers must import the same Bastion, numpy and scenario data (the report records their versions
  and hashes, so a mismatch shows in the report rather than passing silently).

``on_progress(done)`` is called with the number of scenarios finished so far (for a progress bar).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

from bastion.stress.engine import ScenarioResult, run_sweep
from bastion.stress.inputs import StressInputs
from bastion.stress.scenarios import ScenarioSet

RANGES_PER_WORKER = 8  # more ranges than workers: balances uneven scenarios and moves the progress bar

Progress = Callable[[int], None]


def default_workers() -> int:
    return os.cpu_count() or 1


def split_ranges(count: int, parts: int) -> list[range]:
    """``count`` scenario indices as at most ``parts`` contiguous ranges of near-equal size, in order."""
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    ranges, start = [], 0
    for part in range(parts):
        stop = start + size + (1 if part < extra else 0)
        ranges.append(range(start, stop))
        start = stop
    return [r for r in ranges if len(r)]


def run_range(inputs: StressInputs, scenario_set: ScenarioSet, start: int, stop: int) -> list[ScenarioResult]:
    """One range of a sweep (what a worker process or a Ray task runs)."""
    return run_sweep(inputs, scenario_set, indices=range(start, stop))


def execute_sweep(inputs: StressInputs, scenario_set: ScenarioSet, *, workers: int | None = None,
                  ray_address: str | None = None, on_progress: Progress | None = None) -> list[ScenarioResult]:
    """Every scenario's result, in index order, computed where the module docstring says."""
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError("workers must be at least 1")
    count = len(scenario_set.scenarios())
    ranges = split_ranges(count, workers * RANGES_PER_WORKER)
    report = on_progress or (lambda done: None)
    if ray_address is not None:
        pieces = _on_ray(inputs, scenario_set, ranges, ray_address, report)
    elif workers == 1:
        pieces, done = {}, 0
        for r in ranges:
            pieces[r.start] = run_range(inputs, scenario_set, r.start, r.stop)
            done += len(r)
            report(done)
    else:
        pieces = _on_processes(inputs, scenario_set, ranges, workers, report)
    return merge_pieces(pieces, count)


def merge_pieces(pieces: dict[int, list[ScenarioResult]], count: int) -> list[ScenarioResult]:
    """The ranges' results (keyed by their first index) concatenated in scenario order; every index
    exactly once."""
    results = [result for start in sorted(pieces) for result in pieces[start]]
    if [r.index for r in results] != list(range(count)):
        raise RuntimeError("a sweep's pieces do not cover every scenario exactly once")
    return results


def _on_processes(inputs: StressInputs, scenario_set: ScenarioSet, ranges: list[range], workers: int,
                  report: Progress) -> dict[int, list[ScenarioResult]]:
    pieces: dict[int, list[ScenarioResult]] = {}
    done = 0
    with ProcessPoolExecutor(max_workers=min(workers, len(ranges)), mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(run_range, inputs, scenario_set, r.start, r.stop): r for r in ranges}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                r = pending.pop(future)
                pieces[r.start] = future.result()
                done += len(r)
                report(done)
    return pieces


def _on_ray(inputs: StressInputs, scenario_set: ScenarioSet, ranges: list[range], address: str,
            report: Progress) -> dict[int, list[ScenarioResult]]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("Ray is not installed: pip install 'bastion[ray]'") from None
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"include_dashboard": False} if address == "local" else {}
        ray.init(address=address, log_to_driver=False, **options)
    try:
        task = ray.remote(run_range)
        shared_inputs, shared_set = ray.put(inputs), ray.put(scenario_set)
        pending = {task.remote(shared_inputs, shared_set, r.start, r.stop): r for r in ranges}
        pieces: dict[int, list[ScenarioResult]] = {}
        done = 0
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for reference in finished:
                r = pending.pop(reference)
                pieces[r.start] = ray.get(reference)
                done += len(r)
                report(done)
        return pieces
    finally:
        if started:
            ray.shutdown()


def describe_execution(workers: int | None, ray_address: str | None) -> str:
    """A short human description (``4 local processes``, ``Ray at auto``) for progress output."""
    if ray_address is not None:
        return f"Ray at {ray_address}"
    workers = default_workers() if workers is None else workers
    return "this process" if workers == 1 else f"{workers} local processes"
