"""What a check returns: :class:`CheckResult` with one :class:`BlockResult` per parameter block."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .verdict import TOLERANCES

__all__ = ["BlockResult", "CheckResult", "BLOCK_VERDICTS", "VERDICTS", "relative_difference"]

BLOCK_VERDICTS = ("ok", "bug", "kink", "inconclusive", "shape-mismatch", "non-finite")
VERDICTS = ("ok", "bug", "inconclusive")


def relative_difference(grad: np.ndarray, approx: np.ndarray) -> float:
    """The seed's metric: ``||grad - approx|| / (||grad|| + ||approx||)`` (0 when both are 0)."""
    grad = np.asarray(grad, dtype=np.float64).reshape(-1)
    approx = np.asarray(approx, dtype=np.float64).reshape(-1)
    numerator = np.linalg.norm(grad - approx)
    denominator = np.linalg.norm(grad) + np.linalg.norm(approx)
    if denominator == 0:
        return 0.0
    return float(numerator / denominator)


@dataclass
class BlockResult:
    """The check of one parameter block.

    Attributes:
        name: parameter name (``W1``; the gradient is ``dW1``).
        shape: parameter shape.  grad_shape: shape of the gradient backprop returned.
        difference: the seed's relative difference for this block.
        threshold: the relative difference the measured noise allows (safety x noise floor),
            or the fixed threshold when one was given.
        max_error: largest ``|grad - approx|`` over the block's elements.
        worst_index: index of that element.  worst_grad / worst_approx: its two values.
        verdict: one of :data:`BLOCK_VERDICTS`.  diagnosis: the explanation in words.
        bug_elements / kink_elements: how many elements were classified so.
        eps: the step used for this block.  noise: the measured noise of one cost evaluation.
        detection_limit: the smallest relative error ``||e|| / ||numerical||`` of this block the
            check was sure to see at these settings (above ``useful_limit``: ``inconclusive``).
        taylor_rate: the Taylor remainder's convergence rate along a random direction in the
            block (about 2 when right, 1 when wrong), when that second opinion was used.
        checked_by: ``elements`` (every element estimated) or ``N directions`` (the screen of
            :mod:`gradlab.screen`).
    """

    name: str
    shape: tuple[int, ...]
    grad_shape: tuple[int, ...]
    difference: float
    threshold: float
    max_error: float
    worst_index: tuple[int, ...]
    worst_grad: float
    worst_approx: float
    verdict: str
    diagnosis: str
    bug_elements: int = 0
    kink_elements: int = 0
    truncation_elements: int = 0
    eps: float = float("nan")
    noise: float = float("nan")
    detection_limit: float = float("nan")
    taylor_rate: float | None = None
    checked_by: str = "elements"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "grad_shape": list(self.grad_shape),
            "difference": self.difference,
            "threshold": self.threshold,
            "max_error": self.max_error,
            "worst_index": list(self.worst_index),
            "worst_grad": self.worst_grad,
            "worst_approx": self.worst_approx,
            "verdict": self.verdict,
            "diagnosis": self.diagnosis,
            "bug_elements": self.bug_elements,
            "kink_elements": self.kink_elements,
            "eps": self.eps,
            "noise": self.noise,
            "detection_limit": self.detection_limit,
            "taylor_rate": self.taylor_rate,
            "checked_by": self.checked_by,
        }


@dataclass
class CheckResult:
    """The outcome of a gradient check.

    Attributes:
        verdict: ``bug`` when a block is ``bug`` or ``shape-mismatch``, else ``inconclusive``
            when a block is ``inconclusive`` or ``non-finite``, else ``ok`` (kinks are
            reported, not failed).
        difference: the seed's relative difference over all comparable blocks.
        threshold: the overall relative difference the measured noise allows.
        method, eps: the finite-difference method and the step used (chosen when "auto").
        eps_chosen: True when eps was chosen automatically.
        cost: J at the checked point.  cost_noise: measured noise of one cost evaluation.
        blocks: one :class:`BlockResult` per parameter block, in flattening order.
        grad, approx: per-block arrays (backprop as returned; numerical in parameter shape).
        engine: the evaluator used (``loop`` or the fast engine's name).
        evaluations: number of perturbed cost evaluations.  seconds: wall time.
        notes: remarks a user should read (fallbacks, truncation-limited steps, ...).
        localise: ``all``, ``failing`` or ``none`` (see :func:`gradlab.check.check_problem`).
    """

    verdict: str
    difference: float
    threshold: float
    method: str
    eps: float
    eps_chosen: bool
    cost: float
    cost_noise: float
    blocks: list[BlockResult]
    grad: dict[str, np.ndarray] = field(repr=False)
    approx: dict[str, np.ndarray] = field(repr=False)
    engine: str = "loop"
    evaluations: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    localise: str = "all"

    @property
    def ok(self) -> bool:
        """True when the verdict is ``ok``."""
        return self.verdict == "ok"

    def block(self, name: str) -> BlockResult:
        """The result of one block, by parameter name (``W1`` or ``dW1``)."""
        for b in self.blocks:
            if b.name == name or "d" + b.name == name:
                return b
        raise KeyError(f"no block {name!r}; blocks: {', '.join(b.name for b in self.blocks)}")

    def failing(self) -> list[BlockResult]:
        """Blocks whose verdict is ``bug`` or ``shape-mismatch``."""
        return [b for b in self.blocks if b.verdict in ("bug", "shape-mismatch")]

    def sentence(self) -> str:
        """The seed-style one-line summary."""
        if self.verdict == "bug":
            return f"There is a mistake in the backward propagation! difference = {self.difference}"
        if self.verdict == "inconclusive":
            why = "non-finite values" if any(b.verdict == "non-finite" for b in self.blocks) \
                else "these settings cannot see a bug"
            return f"The check is inconclusive ({why})! difference = {self.difference}"
        return f"Your backward propagation works perfectly fine! difference = {self.difference}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the CLI's ``--json`` output)."""
        return {
            "verdict": self.verdict,
            "difference": self.difference,
            "method": self.method,
            "eps": self.eps,
            "eps_chosen": self.eps_chosen,
            "threshold": self.threshold,
            "cost": self.cost,
            "cost_noise": self.cost_noise,
            "engine": self.engine,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "notes": list(self.notes),
            "localise": self.localise,
            "screen_miss_probability": TOLERANCES["screen_miss"],
            "blocks": [b.to_dict() for b in self.blocks],
        }

    def table(self) -> str:
        """A per-block table for people: difference, threshold, detection limit, verdict."""
        head = (f"{'block':<8}{'shape':<12}{'difference':>12}{'threshold':>12}"
                f"{'detects >':>11}  {'verdict':<12}")
        lines = [head, "-" * len(head)]
        for b in self.blocks:
            shape = "x".join(map(str, b.shape)) or "scalar"
            lines.append(
                f"{b.name:<8}{shape:<12}{b.difference:>12.3e}{b.threshold:>12.3e}"
                f"{b.detection_limit:>11.1e}  {b.verdict:<12}"
            )
            extra = f" (Taylor rate {b.taylor_rate:.2f})" if b.taylor_rate is not None else ""
            if b.verdict != "ok":
                lines.append(f"        -> {b.diagnosis}{extra}")
            elif extra:
                lines.append(f"        ->{extra}")
        return "\n".join(lines)

    def steps_text(self) -> str:
        """The step(s) used: one value, or the range when blocks used different steps."""
        steps = sorted({b.eps for b in self.blocks if np.isfinite(b.eps)})
        if len(steps) <= 1:
            return f"eps {self.eps:g}"
        return f"eps per block {steps[0]:g} to {steps[-1]:g}"
