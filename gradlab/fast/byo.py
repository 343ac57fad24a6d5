"""Evaluators for bring-your-own models: a declared ``cost_batch``, or the loop on all cores.

Both return exactly the array :func:`gradlab.finite_diff.loop_costs` returns (same order, same
perturbed points: each point is a perturbed copy of theta in the same dtype as the loop's).
"""

from __future__ import annotations

import os
import time

import numpy as np

from ..errors import ModelError
from ..finite_diff import loop_costs, perturbed_dtype
from .blas import single_thread

__all__ = ["generic_evaluator", "BatchEvaluator", "ParallelLoop"]

#: points per cost_batch call: bounded so the perturbed copies stay below ~64 MB
_BATCH_BYTES = 64 << 20
#: use the process pool only when the loop is predicted to take longer than this (seconds)
PARALLEL_MIN_SECONDS = 1.0

_WORK: dict = {}  # what the forked workers read (inherited, never pickled)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class BatchEvaluator:
    """Perturbed costs through the model's ``cost_batch(list_of_params, X, Y) -> array``."""

    name = "batch"

    def __init__(self, problem, layout):
        self.problem, self.layout = problem, layout

    def costs(self, theta, steps, indices):
        """``J(theta + steps[k] e_i)`` for all k, i, in the loop's order and dtype."""
        steps = np.asarray(steps).reshape(-1)
        indices = np.asarray(indices, dtype=np.intp).reshape(-1)
        is_c = np.iscomplexobj(steps)
        dtype = perturbed_dtype(theta.dtype, is_c)
        out = np.empty((len(steps), len(indices)), np.complex128 if is_c else np.float64)
        base = theta.astype(dtype)
        per = max(1, _BATCH_BYTES // max(1, base.nbytes))
        pairs = [(r, c) for c in range(len(indices)) for r in range(len(steps))]
        for start in range(0, len(pairs), per):
            chunk = pairs[start:start + per]
            points = []
            for r, c in chunk:
                t = base.copy()
                i = indices[c]
                t[i] = t[i] + steps[r]
                points.append(self.layout.unflatten(t))
            values = np.asarray(self.problem.cost_batch(points, self.problem.X, self.problem.Y))
            if values.shape[:1] != (len(points),) or values.size != len(points):
                raise ModelError(
                    f"{self.problem.source or self.problem.name}: cost_batch() must return one "
                    f"number per parameter set ({len(points)}); it returned shape {values.shape}"
                )
            values = values.reshape(-1)
            for (r, c), v in zip(chunk, values, strict=True):
                out[r, c] = v if is_c else np.real(v)
        return out


def _work_chunk(cols: np.ndarray) -> np.ndarray:
    f, theta, steps = _WORK["f"], _WORK["theta"], _WORK["steps"]
    with single_thread():  # one BLAS thread per worker process: no oversubscription
        return loop_costs(f, theta, steps, cols)


class ParallelLoop:
    """The plain loop, split over a pool of forked processes when it is long enough to pay.

    The first coordinates run in-process and are timed; if the rest is predicted to take more
    than :data:`PARALLEL_MIN_SECONDS` and the machine has more than one core, the remaining
    coordinates are split into contiguous chunks evaluated by one forked worker per CPU this
    process may use (``os.sched_getaffinity``: a SLURM allocation, not the whole node), one
    BLAS thread each, and the results are put back in order. Not where fork()
    is unavailable or unsafe (torch, tensorflow or jax imported: their thread pools can hang
    a forked child).
    """

    name = "loop"

    def __init__(self, flat_cost, workers: int | None = None):
        self.f = flat_cost
        self.workers = workers or _usable_cpus()
        self.parallel_calls = 0

    def costs(self, theta, steps, indices):
        """Same as :func:`gradlab.finite_diff.loop_costs`."""
        steps = np.asarray(steps).reshape(-1)
        indices = np.asarray(indices, dtype=np.intp).reshape(-1)
        n = len(indices)
        if self.workers < 2 or n < 8 or not _can_fork():
            return loop_costs(self.f, theta, steps, indices)
        probe = max(1, min(n // 16, 32))
        started = time.perf_counter()
        head = loop_costs(self.f, theta, steps, indices[:probe])
        per_col = (time.perf_counter() - started) / probe
        if per_col * (n - probe) < PARALLEL_MIN_SECONDS:
            rest = loop_costs(self.f, theta, steps, indices[probe:])
            return np.concatenate([head, rest], axis=1)
        self.parallel_calls += 1
        chunks = [c for c in np.array_split(indices[probe:], self.workers * 4) if c.size]
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        _WORK.update(f=self.f, theta=theta, steps=steps)
        try:
            with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("fork")) as pool:
                parts = list(pool.map(_work_chunk, chunks))
        finally:
            _WORK.clear()
        return np.concatenate([head, *parts], axis=1)


#: libraries whose thread pools do not survive fork() (a forked worker can hang in them)
FORK_UNSAFE = ("torch", "tensorflow", "jax")


def _can_fork() -> bool:
    import multiprocessing as mp
    import sys

    if any(name in sys.modules for name in FORK_UNSAFE):
        return False
    return "fork" in mp.get_all_start_methods()


def generic_evaluator(problem, layout, flat_cost):
    """The evaluator for a problem without a model-specific engine.

    Returns a :class:`BatchEvaluator` when the problem declares ``cost_batch``, else a
    :class:`ParallelLoop` (the loop, on all cores when that pays).
    """
    if getattr(problem, "cost_batch", None) is not None:
        return BatchEvaluator(problem, layout)
    return ParallelLoop(flat_cost)
