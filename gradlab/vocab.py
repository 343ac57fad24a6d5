"""The words every layer shares: method and dtype names, cell keys, step labels, the default method,
the rule for a step, and the model spec of a config entry.

One home for each, so that the config, the command line, the sweep's tables and the report
cannot drift apart (a table join on ``eps_label`` breaks silently if two spellings differ).
This module imports nothing heavy (no numpy); :func:`model_spec` imports :mod:`gradlab.spec`
when called.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .spec import ModelSpec

__all__ = [
    "METHOD_NAMES", "DEFAULT_METHOD", "DTYPE_NAMES", "CELL_KEYS", "NUMBER_TEXT", "eps_label",
    "parse_eps_label", "step_problem", "method_sort_key", "default_method", "model_spec",
]

#: the finite-difference methods, in their natural order (:data:`gradlab.finite_diff.METHODS`
#: defines each stencil under these names)
METHOD_NAMES = ("forward", "central", "five-point", "complex-step")
#: the method used when none is chosen, and the one the report shows first
DEFAULT_METHOD = "central"
#: the floating-point precisions the built-in models are checked in
DTYPE_NAMES = ("float32", "float64")
#: the columns that identify one cell (one check) in the sweep's tables
CELL_KEYS = ["model", "dtype", "variant", "seed", "method", "eps"]

#: how a number may be written as text (what YAML 1.1 leaves as text, such as ``1e-3``)
NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@lru_cache(maxsize=4096)
def eps_label(eps: float | str | None) -> str:
    """The text of a step in file names and tables: ``1e-07``; ``auto`` for the automatic step.

    Args:
        eps: a step, ``"auto"``, or NaN / ``None`` (how the tables store ``auto``).

    Returns:
        The shortest ``%.Ne`` form that reads back as exactly the same float, or ``auto``.
    """
    if eps is None or eps == "auto":
        return "auto"
    eps = float(eps)
    if math.isnan(eps):
        return "auto"
    for digits in range(17):
        text = f"{eps:.{digits}e}"
        if float(text) == eps:
            return text
    return repr(eps)  # pragma: no cover - 17 digits always round-trip


def parse_eps_label(text: str) -> float | str:
    """Inverse of :func:`eps_label`.

    Raises:
        ValueError: ``text`` is neither ``auto`` nor a number.
    """
    return "auto" if text == "auto" else float(text)


def step_problem(value: Any) -> tuple[float | str, str]:
    """The one rule for a step (``eps``), wherever it enters (config, command line, Python API).

    A step is ``"auto"`` or a finite number > 0; text is read as the number it spells (YAML 1.1
    reads ``1e-3`` as text).

    Args:
        value: the step as given.

    Returns:
        ``(step, "")`` when allowed, else ``(value, reason)`` with the reason as a phrase to
        follow the value in a message (``"is not a number"``, ``"is not allowed: a step must be
        > 0"``); the caller names where the value came from.
    """
    if isinstance(value, str) and value == "auto":
        return "auto", ""
    if isinstance(value, bool):
        return value, "is a boolean, not a number"
    if isinstance(value, str):
        if not NUMBER_TEXT.match(value.strip()):
            return value, "is not a number"
        value = float(value)
    if not isinstance(value, int | float):
        try:  # numpy scalars
            value = float(value)
        except (TypeError, ValueError):
            return value, "is not a number"
    value = float(value)
    if not math.isfinite(value):
        return value, "is not finite"
    if value <= 0:
        return value, "is not allowed: a step must be > 0"
    return value, ""


def method_sort_key(method: str) -> tuple[int, str]:
    """Methods in their natural order (:data:`METHOD_NAMES`), unknown names after them."""
    n = len(METHOD_NAMES)
    return (METHOD_NAMES.index(method) if method in METHOD_NAMES else n, method)


def default_method(methods: Iterable[str]) -> str:
    """``central`` when among ``methods``, else the first of them in the natural order.

    Raises:
        ValueError: ``methods`` is empty.
    """
    methods = list(methods)
    if not methods:
        raise ValueError("no method to choose from")
    return DEFAULT_METHOD if DEFAULT_METHOD in methods else min(methods, key=method_sort_key)


def model_spec(entry: Mapping[str, Any], variant: str, seed: int, dtype: str) -> ModelSpec:
    """The :class:`~gradlab.spec.ModelSpec` of a normalised config's model entry.

    Args:
        entry: one of ``cfg["models"]`` (``kind``, ``path``, ``dims``, ``examples``,
            ``lambda``, ``keep_prob``).
        variant, seed, dtype: the cell's.

    Returns:
        The spec that builds the entry's model for that cell.
    """
    from .spec import ModelSpec

    kind = entry["kind"]
    name = {"file": entry.get("path"), "linear1d": "linear1d"}.get(kind, kind)
    extra: dict[str, Any] = {}
    if kind == "mlp":
        extra = {"dims": tuple(entry["dims"]), "examples": entry["examples"]}
    return ModelSpec(model=name, variant=variant, seed=seed, dtype=dtype,
                     lambd=entry.get("lambda") or 0.0, keep_prob=entry.get("keep_prob") or 1.0,
                     **extra)
