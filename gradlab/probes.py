"""Per-block probes of the cost: its measured noise and the step at the bottom of the "V".

Both are measured *per parameter block* and combined robustly, so that a kink or a noisy
coordinate in one block can never raise another block's threshold or shrink its step:

- :func:`block_noise`: the round-off noise of the cost along a few coordinates of each block
  (Moré & Wild's ECnoise on 9 equally spaced values), with difference tables that show a kink
  (one isolated jump in the second differences) set aside as kinks, not noise;
- :func:`choose_steps`: one step per block, where that block's estimates agree best with their
  neighbours on a one-per-decade scan, the median over the block's probe coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .finite_diff import Evaluator, Method, estimate, machine_eps

__all__ = [
    "block_noise", "choose_steps", "probe_coordinates", "table_has_kink", "ecnoise",
]

#: probe coordinates per block (noise and step choice); blocks probed at most
PROBES_PER_BLOCK = 3
#: a second difference this many times the spread of the others (and above rounding) is a kink
KINK_SPIKE = 20.0

Radius = Callable[[np.ndarray, np.ndarray], np.ndarray]


def probe_coordinates(
    blocks: list[slice],
    theta: np.ndarray,
    seed: int,
    radius: Radius | None = None,
    per_block: int = PROBES_PER_BLOCK,
) -> list[np.ndarray]:
    """Up to ``per_block`` coordinates of each block, drawn from ``seed``.

    When the model knows its kink ``radius`` (the built-in networks), they are drawn from the
    half of a random sample of 64 that lies farthest from a kink.
    """
    rng = np.random.default_rng(seed)
    out = []
    for b in blocks:
        span = np.arange(b.start, b.stop)
        if radius is not None and span.size > per_block:
            if span.size > 64:
                span = np.sort(rng.choice(span, size=64, replace=False))
            # away from kinks, but not only the farthest (often units that do nothing)
            r = radius(theta, span)
            far = span[r >= np.sort(r)[r.size // 2]]
            out.append(np.sort(rng.choice(far, size=min(per_block, far.size), replace=False)))
        elif span.size > per_block:
            out.append(np.sort(rng.choice(span, size=per_block, replace=False)))
        else:
            out.append(span)
    return out


def ecnoise(values: np.ndarray) -> float:
    """Noise of equally spaced function values from their 3rd-6th differences (ECnoise)."""
    estimates = []
    diff = values.astype(np.float64)
    for k in range(1, 7):
        diff = np.diff(diff)
        if k < 3:
            continue
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        estimates.append(math.sqrt(gamma * float(np.mean(diff**2))))
    estimates.sort()  # the median, without np.median (which imports numpy.ma: slow start-up)
    mid = len(estimates) // 2
    return float(estimates[mid] if len(estimates) % 2 else 0.5 * sum(estimates[mid - 1:mid + 1]))


def table_has_kink(values: np.ndarray, floor: float) -> bool:
    """True when equally spaced cost values show a kink: one isolated jump in slope.

    Smooth cost plus noise gives second differences that are a constant (the curvature) plus
    noise of similar size everywhere; a kink between two points adds one large spike (two
    adjacent entries when it falls between grid points). ``floor`` is the rounding level below
    which nothing counts as a spike.
    """
    d2 = np.diff(values.astype(np.float64), 2)
    dev = np.sort(np.abs(d2 - np.sort(d2)[d2.size // 2]))
    return bool(dev[-1] > KINK_SPIKE * max(dev[-3], floor))


def block_noise(
    costs: Evaluator,
    theta: np.ndarray,
    j0: float,
    coords: list[np.ndarray],
    steps: np.ndarray,
    radius: Radius | None = None,
) -> np.ndarray:
    """Measured absolute noise of one cost evaluation, one value per block.

    Each probe coordinate is evaluated at 9 points ``theta_i + k d`` (k = -4..4), spaced like
    the block's step (capped at ``sqrt(eps_machine)`` times the parameters' scale, far below the
    scale on which J curves); ECnoise reads the noise off their high-order differences.
    Tables that show a kink are set aside. A block's noise is the larger of the largest over
    its own clean probes (coordinates that barely move the computation see less rounding: the
    block's noisiest probe speaks for it) and the median over all clean probes (no block
    claims less than the typical level; one noisy or kinked probe never raises another
    block). The result is at least ``eps_machine * |J|``.
    """
    u = machine_eps(theta.dtype)
    floor = u * abs(float(np.real(j0)))
    scale = max(1.0, float(np.max(np.abs(np.real(theta))))) if theta.size else 1.0
    per_block: list[list[float]] = []
    for idx, h in zip(coords, steps, strict=True):
        spacing = np.full(idx.size, min(float(h), math.sqrt(u) * scale))
        if radius is not None and idx.size:
            spacing = np.minimum(spacing, radius(theta, idx) / 5)
        clean = []
        for d in np.unique(spacing[spacing > 0]):
            cols = idx[spacing == d]
            table = np.real(costs(theta, np.arange(-4, 5) * d, cols)).astype(np.float64)
            clean += [ecnoise(col) for col in table.T
                      if np.all(np.isfinite(col)) and not table_has_kink(col, 4 * floor)]
        per_block.append(clean)
    every = sorted(v for found in per_block for v in found)
    typical = every[len(every) // 2] if every else floor
    out = np.empty(len(coords))
    for b, found in enumerate(per_block):
        own = max(found) if found else typical
        out[b] = max(own, typical, floor)
    return out


def choose_steps(
    method: Method,
    costs: Evaluator,
    theta: np.ndarray,
    j0: float,
    coords: list[np.ndarray],
) -> np.ndarray:
    """One step per block at the bottom of the error-vs-eps "V" (truncation vs round-off).

    Scans one step per decade (1e-1 down to ~1e4 x eps_machine) on the block's probe
    coordinates; for each coordinate, a step scores the larger relative jump of its estimate to
    the neighbouring steps; the block takes the step with the smallest median score, so a
    coordinate that sits on a kink (jumps at every step larger than its distance to the kink)
    does not drag the step down; a score is never below the rounding of J over the step. The
    complex step has no round-off arm: ``default_eps``.
    """
    if method.is_complex:
        return np.full(len(coords), method.default_eps)
    u = machine_eps(theta.dtype)
    smallest = int(math.floor(math.log10(u))) + 4  # -12 for float64, -3 for float32
    grid = np.array([10.0**-k for k in range(1, -smallest + 1)])
    idx = np.concatenate(coords) if coords else np.zeros(0, np.int64)
    if idx.size == 0:
        return np.full(len(coords), method.default_eps)
    rows = np.array([estimate(method, h, costs, theta, idx, j0) for h in grid])
    good = np.all(np.isfinite(rows), axis=1)
    if good.sum() < 3:
        return np.full(len(coords), float(grid[good][-1]) if good.any() else method.default_eps)
    grid, rows = grid[good], rows[good]
    scale = np.sort(np.abs(rows), axis=0)[(len(rows) - 1) // 2]
    informative = scale > 0  # a coordinate with an exactly zero derivative says nothing
    jumps = np.abs(np.diff(rows, axis=0)) / np.where(informative, scale, 1.0)
    score = np.maximum(jumps[:-1], jumps[1:])  # interior steps x coordinates
    # the round-off arm is at least one rounding of J over the step: estimates that agree
    # exactly at tiny steps (the cost's change quantised to the same few ulps) score no better
    floor = u * max(abs(float(j0)), 1e-300) / grid[1:-1, None]
    score = np.maximum(score, floor / np.where(informative, scale, 1.0))
    every = _v_bottom(grid, score[:, informative], method.default_eps)
    out = np.full(len(coords), every)
    start = 0
    for b, c in enumerate(coords):
        cols = np.arange(start, start + c.size)
        start += c.size
        cols = cols[informative[cols]]
        if cols.size:
            out[b] = _v_bottom(grid, score[:, cols], every)
    return out


def _v_bottom(grid: np.ndarray, score: np.ndarray, fallback: float) -> float:
    """The interior step of ``grid`` with the smallest median score over the coordinates.

    The upper median: with two coordinates the worse one counts, so that a chance exact
    agreement of two tiny-step estimates cannot pull the step down.
    """
    if score.shape[1] == 0:
        return fallback
    median = np.sort(score, axis=1)[:, score.shape[1] // 2]
    return float(grid[1 + int(np.argmin(median))])
