"""Bring your own model: a Python file with ``init``, ``cost`` and ``gradients``.

The file must define::

    def init(seed) -> (params, X, Y)        # params: dict of numpy arrays
    def cost(params, X, Y) -> float
    def gradients(params, X, Y) -> dict     # keys "dW1" or "W1", one per parameter

Optional: ``cost_batch(list_of_params, X, Y) -> array`` (a vectorised cost the fast engine may
use) and ``COMPLEX_SAFE = True`` (the cost accepts complex parameters).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..problem import Problem

__all__ = ["load_module", "byo_problem", "REQUIRED", "PHASE_HOOK"]

REQUIRED = ("init", "cost", "gradients")
#: set by :mod:`gradlab.isolate` in a worker process: called with ``"import"``, ``"init()"``,
#: ``"cost()"``, ... before the model's code runs and with ``""`` after (to name the function
#: a crash or a hang happened in)
PHASE_HOOK: Callable[[str], None] | None = None


def _enter(phase: str) -> None:
    if PHASE_HOOK is not None:
        PHASE_HOOK(phase)


def load_module(path: str | Path):
    """Import a model file, with one-line errors that name the file.

    Raises:
        ModelError: the file is missing, does not import, or lacks a required function.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist (give a .py file or a built-in model)")
    name = f"gradlab_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"model file {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    _enter("import")
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # anything the user's file raises on import
        raise ModelError(
            f"model file {path} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        _enter("")
    sys.modules.setdefault(name, module)
    missing = [f for f in REQUIRED if not callable(getattr(module, f, None))]
    if missing:
        raise ModelError(
            f"model file {path} does not define {', '.join(f + '()' for f in missing)}; "
            "it needs init(seed), cost(params, X, Y) and gradients(params, X, Y)"
        )
    return module


def _guard(fn: Callable[..., Any], where: str) -> Callable[..., Any]:
    """Wrap a user function so its exceptions become ModelErrors naming file and function."""
    phase = where.rsplit(": ", 1)[-1]

    def call(*args: Any) -> Any:
        _enter(phase)
        try:
            return fn(*args)
        except ModelError:
            raise
        except (Exception, SystemExit) as exc:  # sys.exit() in a model is a model error too
            raise ModelError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        finally:
            _enter("")

    return call


def byo_problem(path: str | Path, seed: int = 0) -> Problem:
    """Load a model file and build the problem at ``init(seed)``.

    Raises:
        ModelError: import problems, or ``init`` does not return ``(params, X, Y)`` with params
            a non-empty dict of numeric arrays.
    """
    module = load_module(path)
    where = str(path)
    out = _guard(module.init, f"{where}: init()")(seed)
    if not isinstance(out, tuple) or len(out) != 3:
        raise ModelError(
            f"{where}: init() must return (params, X, Y); it returned {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, tuple) else "")
        )
    params, X, Y = out
    if not isinstance(params, dict) or not params:
        raise ModelError(f"{where}: init() must return a non-empty dict of arrays as params")
    from ..frameworks import detect, framework_problem  # numpy-only; imports no framework

    kind = detect(params)
    if kind is not None:  # torch tensors or JAX arrays: the adapter hands the core numpy
        return framework_problem(Path(path).stem, params, X, Y,
                                 _guard(module.cost, f"{where}: cost()"),
                                 _guard(module.gradients, f"{where}: gradients()"),
                                 source=where, kind=kind)
    clean = {}
    for key, value in params.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiuc":
            raise ModelError(
                f"{where}: init() parameter {key!r} is {type(value).__name__} "
                f"(dtype {arr.dtype}); numeric arrays are required"
            )
        clean[str(key)] = arr.astype(np.float64) if arr.dtype.kind in "iu" else arr
    batch = getattr(module, "cost_batch", None)
    return Problem(
        name=Path(path).stem,
        params=clean,
        X=X,
        Y=Y,
        cost=_guard(module.cost, f"{where}: cost()"),
        gradients=_guard(module.gradients, f"{where}: gradients()"),
        cost_batch=_guard(batch, f"{where}: cost_batch()") if callable(batch) else None,
        complex_safe=True if getattr(module, "COMPLEX_SAFE", None) is True else None,
        source=where,
    )
