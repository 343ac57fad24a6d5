"""High-accuracy derivatives of corpus models, computed without any gradlab code.

For every element the one-sided slopes ``(J(theta + s h e_i) - J(theta)) / (s h)``, s = +-1, are
evaluated in ``np.longdouble`` (x87 80-bit: unit round-off 1.1e-19) at h = h0, h0/2, ... h0/16
and Richardson-extrapolated (error O(h0**5)); h0 = 2**-8 x max(1, |theta_i|), or 2**-14, 2**-20
when the extrapolation does not settle (a kink within the larger steps). Where the two
extrapolated one-sided slopes agree the element is smooth and its derivative is their mean;
for models that declare
``COMPLEX_SAFE = True`` it is also computed by the complex step (h = 1e-30, float64) as a cross
check. Where they differ the element sits on a kink and its truth is the interval between them.
An element whose extrapolation does not settle (a kink inside the steps but not at the point)
raises: the model file must move its data.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LEVELS = 5
SMOOTH_TOL = 1e-9  # one-sided slopes closer than this (relative to the block) are one value
SETTLE_TOL = 1e-9  # last two Richardson columns must agree to this (relative to the block)
H0_POWERS = (-8, -14, -20)  # first steps h0 = 2**power * max(1, |theta_i|), tried in turn


def model_names() -> list[str]:
    """Names of the corpus model files (``tests/corpus/*.py`` not starting with ``_``)."""
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_")
                  and p.stem != "survey")


def load(name: str):
    """Import ``tests/corpus/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"corpus_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class BlockTruth:
    """Truth for one block: ``lo <= derivative <= hi`` per element (equal where smooth)."""

    value: np.ndarray  # mean of the one-sided slopes (the derivative where smooth)
    lo: np.ndarray
    hi: np.ndarray
    kink: np.ndarray  # bool: one-sided slopes differ
    complex_step: np.ndarray | None  # complex-step derivative (COMPLEX_SAFE models), NaN at kinks

    def distance(self, g: np.ndarray) -> np.ndarray:
        """Per-element distance of ``g`` from the truth interval (0 inside it)."""
        g = np.asarray(g, np.float64)
        return np.maximum(self.lo - g, 0.0) + np.maximum(g - self.hi, 0.0)

    def relative_error(self, g: np.ndarray) -> float:
        """``||dist(g, truth)|| / ||truth||``: the smallest error consistent with the truth."""
        return float(np.linalg.norm(self.distance(g)) / max(np.linalg.norm(self.value), 1e-300))


def _richardson(d: list) -> tuple[float, float]:
    """Extrapolate D(h0 / 2**k) = D + c1 h + c2 h**2 + ...; the estimate and its change."""
    col = list(d)
    prev = col[-1]
    for j in range(1, len(d)):
        prev = col[-1]
        col = [(2**j * col[k + 1] - col[k]) / (2**j - 1) for k in range(len(col) - 1)]
    return col[-1], abs(col[-1] - prev)


def _one_sided(module, params, X, Y, name, idx, side) -> tuple[float, float]:
    p = {k: np.asarray(v, np.longdouble).copy() for k, v in params.items()}
    j0 = np.longdouble(module.cost(p, X, Y))
    x0 = p[name][idx]
    for power in H0_POWERS:  # a smaller h0 when a kink lies within the larger one
        h0 = np.longdouble(2.0**power) * max(np.longdouble(1), abs(x0))
        slopes = []
        for k in range(LEVELS):
            p[name][idx] = x0 + side * h0 / 2**k
            step = p[name][idx] - x0
            slopes.append((np.longdouble(module.cost(p, X, Y)) - j0) / step)
        p[name][idx] = x0
        est, change = _richardson(slopes)
        if change <= SETTLE_TOL * 1e-2 * abs(est):
            break
    return float(est), float(change)


def _complex_step(module, params, X, Y, name, idx) -> float:
    p = {k: np.asarray(v, np.complex128).copy() for k, v in params.items()}
    p[name][idx] += 1e-30j
    return float(np.imag(module.cost(p, X, Y)) / 1e-30)


def truth(module, params, X, Y) -> dict[str, BlockTruth]:
    """The truth per block of ``module`` at ``params``.

    Raises:
        ValueError: an element's extrapolation did not settle (a kink near, not at, the point).
    """
    out = {}
    for name, arr in params.items():
        arr = np.asarray(arr)
        fwd, bwd = np.zeros(arr.shape), np.zeros(arr.shape)
        chg = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            fwd[idx], c1 = _one_sided(module, params, X, Y, name, idx, 1)
            bwd[idx], c2 = _one_sided(module, params, X, Y, name, idx, -1)
            chg[idx] = max(c1, c2)
        scale = max(float(np.max(np.abs(fwd), initial=0)), float(np.max(np.abs(bwd), initial=0)),
                    1e-300)
        if np.max(chg, initial=0) > SETTLE_TOL * scale:
            bad = np.unravel_index(int(np.argmax(chg)), arr.shape)
            raise ValueError(f"{module.__name__}: d{name}{list(bad)} did not settle "
                             f"(change {np.max(chg):.2e} vs scale {scale:.2e})")
        kink = np.abs(fwd - bwd) > SMOOTH_TOL * scale
        cs = None
        if getattr(module, "COMPLEX_SAFE", False):
            cs = np.full(arr.shape, np.nan)
            for idx in np.ndindex(arr.shape):
                if not kink[idx]:
                    cs[idx] = _complex_step(module, params, X, Y, name, idx)
        out[name] = BlockTruth((fwd + bwd) / 2, np.minimum(fwd, bwd), np.maximum(fwd, bwd), kink,
                               cs)
    return out


@dataclass
class Case:
    """One corpus model at one seed, with its truth."""

    name: str
    seed: int
    module: object
    params: dict
    X: object
    Y: object
    truth: dict[str, BlockTruth]

    @property
    def float32(self) -> bool:
        """True when the parameters are single precision."""
        return any(np.asarray(v).dtype == np.float32 for v in self.params.values())

    def bug_gradients(self, bug: str, r: float | None) -> dict:
        """The gradients with ``bug`` at relative size ``r`` (None: its natural size)."""
        return self.module.BUGS[bug][1](self.params, self.X, self.Y, r)

    def sizes(self, grads: dict) -> dict[str, float]:
        """True relative error per block of a gradient dict (0 inside kink intervals)."""
        return {b: bt.relative_error(grads["d" + b]) for b, bt in self.truth.items()}


_CASES: dict[tuple[str, int], Case] = {}


def case(name: str, seed: int) -> Case:
    """The (cached) :class:`Case` of model ``name`` at ``seed``."""
    if (name, seed) not in _CASES:
        module = load(name)
        params, X, Y = module.init(seed)
        _CASES[(name, seed)] = Case(name, seed, module, params, X, Y,
                                    truth(module, params, X, Y))
    return _CASES[(name, seed)]
