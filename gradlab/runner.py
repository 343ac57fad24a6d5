"""Build a model and run its checks: in-process for the built-in models, in a worker for files.

:func:`open_model` is what ``gradlab check`` and the sweep call. Both runners have the same
interface: :meth:`build` (the parameter blocks and the ground truth), :meth:`check` (one
:class:`~gradlab.result.CheckResult` and the CPU seconds it took) and :meth:`close`. A model
file's import, ``init``, ``cost``, ``gradients`` and ``cost_batch`` run in a
:class:`~gradlab.isolate.Worker`, so a crash, an exit, a signal, a hang or a memory blow-up
fails that model's checks (:class:`~gradlab.isolate.WorkerDied`, a ``ModelError`` with the
one-line reason) and nothing else. The built-in models are not isolated: they run exactly as
before, at the same speed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from .result import CheckResult
from .spec import BUILTIN_MODELS, ModelSpec, build_problem, truth_of

__all__ = ["open_model", "InProcess", "Isolated", "is_file_model", "probe_import"]

if TYPE_CHECKING:  # the worker machinery is imported only when a model file is run
    from .isolate import Limits

Blocks = list[tuple[str, int]]


def is_file_model(spec: ModelSpec) -> bool:
    """Whether the spec names a model file (the models that run in a worker)."""
    return spec.model not in BUILTIN_MODELS and (
        spec.model.endswith(".py") or Path(spec.model).is_file())


def _summary(problem) -> tuple[Blocks, dict[str, float]]:
    blocks = [(name, int(np.size(value))) for name, value in problem.params.items()]
    return blocks, truth_of(problem)


class InProcess:
    """Build and check in this process (the built-in models).

    Args:
        spec: the model.
        estimates: shared by checks of the same cost at the same point (see
            :func:`gradlab.check.check_problem`).
    """

    def __init__(self, spec: ModelSpec, estimates: dict | None = None):
        self.spec, self.estimates, self.problem = spec, estimates, None

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> tuple[Blocks, dict[str, float]]:
        """Build the problem.

        Returns:
            ``(blocks, truth)``: ``[(name, size)]`` of the parameter blocks, and the ground
            truth (changed blocks of a catalogue bug; empty for other models).

        Raises:
            UsageError, ModelError: as :func:`gradlab.spec.build_problem`.
        """
        self.problem = build_problem(self.spec)
        return _summary(self.problem)

    def check(self, **options: Any) -> tuple[CheckResult, float]:
        """One check (``options`` as :func:`gradlab.check.check_problem`'s keywords).

        Returns:
            ``(result, cpu_seconds)``.
        """
        from .check import check_problem

        started = time.process_time()
        with np.errstate(all="ignore"):
            result = check_problem(self.problem, estimates=self.estimates, **options)
        return result, time.process_time() - started

    def check_mutated(self, variant: str, trusted: bool, **options: Any
                      ) -> tuple[tuple[CheckResult, dict[str, float], dict[str, float]], float]:
        """One check of a mutation of the model's reference gradient (:mod:`gradlab.mutations`).

        Args:
            variant: ``mut:reference`` or a mutation's variant name.
            trusted: the model's own backprop is the reference (verified correct).
            options: as :func:`gradlab.check.check_problem`'s keywords (``seed`` also draws
                the mutated block).

        Returns:
            ``((result, truth, reference_error), cpu_seconds)``.
        """
        started = time.process_time()
        out = _mutated(self.__dict__, self.problem, variant, trusted, options)
        return out, time.process_time() - started

    def close(self) -> None:
        """Nothing to release."""


def _build_in_worker(spec: ModelSpec) -> tuple[dict, tuple[Blocks, dict[str, float]]]:
    problem = build_problem(spec)
    return {"problem": problem, "estimates": {}}, _summary(problem)


def _check_in_worker(state: dict, options: dict[str, Any]) -> CheckResult:
    from .check import check_problem

    with np.errstate(all="ignore"):
        return check_problem(state["problem"], estimates=state["estimates"], **options)


def _mutated(state: dict, problem, variant: str, trusted: bool, options: dict[str, Any]):
    """Check a mutated reference; the reference is computed once per runner (in ``state``)."""
    from .check import check_problem
    from .mutations import as_checked, mutate, mutated_problem, parse_variant, reference_gradient

    if "reference" not in state:
        state["reference"] = reference_gradient(problem, trusted)
    grads, errors = state["reference"]
    mutation = parse_variant(variant)
    truth: dict[str, float] = {}
    if mutation is not None:
        mutated, truth = mutate(mutation, grads, int(options.get("seed", 0)))
        truth, grads = as_checked(problem, grads, mutated, truth), mutated
    with np.errstate(all="ignore"):
        result = check_problem(mutated_problem(problem, grads), estimates=state["estimates"],
                               **options)
    return result, truth, errors


def _mutated_in_worker(state: dict, variant: str, trusted: bool, options: dict[str, Any]):
    return _mutated(state, state["problem"], variant, trusted, options)


class Isolated:
    """Build and check a model file in a worker process (see :mod:`gradlab.isolate`).

    Args:
        spec: the model (a file).
        limits: wall time per call (the build, or one check) and memory.
        echo: where to copy the model's printed output (default: discarded).
    """

    def __init__(self, spec: ModelSpec, limits: Limits, echo: BinaryIO | None = None):
        # imported here once, not again in every worker (a model's init() draws with
        # numpy.random; the parallel loop asks multiprocessing whether it can fork)
        import multiprocessing  # noqa: F401

        import numpy.random  # noqa: F401

        from . import check, fast  # noqa: F401
        from .isolate import Worker

        self.worker = Worker(_build_in_worker, (spec,), spec.model, limits, echo)

    def __enter__(self) -> Isolated:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> tuple[Blocks, dict[str, float]]:
        """Start the worker and build the problem in it; as :meth:`InProcess.build`.

        Raises:
            WorkerError: the model file failed to load or ``init`` failed (one line).
            WorkerDied: the worker crashed, exited or hung while doing so.
        """
        return self.worker.start()

    def check(self, **options: Any) -> tuple[CheckResult, float]:
        """One check in the worker; as :meth:`InProcess.check`.

        Raises:
            WorkerError: the check raised (the next check still runs in the same worker).
            WorkerDied: the worker crashed, exited, hung or ran out of memory now or before.
        """
        return self.worker.call(_check_in_worker, options)

    def check_mutated(self, variant: str, trusted: bool, **options: Any):
        """As :meth:`InProcess.check_mutated`, in the worker."""
        return self.worker.call(_mutated_in_worker, variant, trusted, options)

    def close(self) -> None:
        """Stop the worker."""
        self.worker.close()


def open_model(spec: ModelSpec, limits: Limits | None = None, estimates: dict | None = None,
               echo: BinaryIO | None = None) -> InProcess | Isolated:
    """The runner for a model: a worker for a model file (where fork is available), else
    in-process.

    Args:
        spec: the model.
        limits: the worker's limits (default :class:`~gradlab.isolate.Limits`()).
        estimates: the in-process runner's shared estimates (see :class:`InProcess`).
        echo: where a worker copies the model's output.
    """
    if is_file_model(spec):
        from .isolate import Limits, can_isolate

        if can_isolate():
            return Isolated(spec, limits or Limits(), echo)
    return InProcess(spec, estimates)


def _import_only(path: Path) -> tuple[None, None]:
    from .models.byo import load_module

    load_module(path)
    return None, None


def probe_import(path: str | Path, seconds: float, memory_mb: int | None = None) -> None:
    """Import a model file in a worker process (in-process where fork is unavailable).

    Raises:
        ModelError: the file does not import or lacks a function; or the import crashed,
            exited, hung past ``seconds`` or exceeded ``memory_mb`` (one line saying which).
    """
    from .isolate import Limits, Worker, can_isolate

    if not can_isolate():
        _import_only(Path(path))
        return
    with Worker(_import_only, (Path(path),), str(path), Limits(seconds, memory_mb)) as worker:
        worker.start()
