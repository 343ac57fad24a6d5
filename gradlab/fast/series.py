"""The per-example loss of the sigmoid + cross-entropy output, and its Taylor series.

The per-example loss of the seed's cost, as a function of the output pre-activation ``z``, is
``s(z) = -y log(sigmoid z) - (1-y) log(1 - sigmoid z) = softplus(z) - y z``. Its derivatives are
``s'(z) = sigmoid(z) - y`` and ``s^(k)(z) = sigmoid^(k-1)(z)`` for ``k >= 2``: polynomials in
``a = sigmoid(z)`` and ``b = sigmoid(-z) = 1 - a`` (computed separately, so both stay accurate
near saturation).

Bounds: ``|s^(k)(z)| / k! <= C_k`` for every real ``z``. ``C_1..C_12`` were computed once with
60-digit arithmetic (the maximum of ``|sigmoid^(k-1)|`` over z, refined on a fine grid, rounded
up); for ``k > 12`` the bound is ``2.001 / (k pi^k)`` (``k pi^k C_k`` tends to 2 from above on
even k and stays below 2 on odd k; the table shows ``k pi^k C_k <= 2.0000038`` from ``k = 12``
on). Since softplus is analytic in the strip ``|Im z| < pi``, the Taylor series at a real point
converges for ``|d| < pi``, and the tail from order K on is at most ``sum_{k>=K} C_k |d|^k``,
for real and complex ``d`` alike. That is what makes a truncated series "exact up to rounding":
the engine uses K terms only where this tail is below a fraction of the cost's own rounding.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["KMAX", "coef_bound", "tail_bound", "order_thresholds", "derivatives", "dsoftplus",
           "saturation_band"]

#: highest number of Taylor terms (orders 0..KMAX-1); beyond it the loss is evaluated directly
KMAX = 20

_C = (1.0, 0.125, 0.016037507477467853, 0.005208333333333333, 0.0010640326830606763,
      0.00034722222222222224, 8.101741247021471e-05, 2.635168650793651e-05,
      6.586417387479618e-06, 2.1356922398589067e-06, 5.574587741864214e-07,
      1.803229884827107e-07)


def coef_bound(k: int) -> float:
    """Upper bound of ``|s^(k)(z)| / k!`` over all real z (k >= 1)."""
    if k <= len(_C):
        return _C[k - 1] * (1 + 1e-6)
    return 2.001 / (k * math.pi**k)


#: ``C_{k+1} / C_k <= RATIO`` for every k >= 1 (table: at most 0.3264; formula: k/((k+1) pi))
RATIO = 0.33


def tail_bound(order: int, d: np.ndarray) -> np.ndarray:
    """Bound of the Taylor remainder from ``order`` on, for steps of size ``d < 1/RATIO``.

    ``sum_{k >= K} C_k d^k <= C_K d^K / (1 - RATIO d)`` since the ``C_k`` fall at least
    geometrically with ratio :data:`RATIO`.
    """
    d = np.asarray(d, dtype=np.float64)
    return coef_bound(order) * d**order / (1 - RATIO * d)


@lru_cache(maxsize=64)
def order_thresholds(tol: float, relative: bool = False) -> np.ndarray:
    """``dstar[K-1]``: a step size ``|d|`` up to which K terms leave a remainder <= ``tol``.

    Increasing in K; a coordinate whose largest per-example change of z_L is ``dm`` needs the
    first K with ``dstar[K-1] >= dm``. Capped at 1 (the series is used only for ``|d| <= 1``).
    With ``relative``, the remainder must be below ``tol * d`` instead (the complex step, whose
    imaginary part is itself of the size of the step).
    """
    out = np.zeros(KMAX)
    for order in range(1, KMAX + 1):
        c = coef_bound(order)
        power = order - 1 if relative else order
        if power == 0:
            continue  # K = 1 drops the first order: never good enough relative to d

        def tail(d, order=order):
            return tail_bound(order, d) / (d if relative else 1.0)

        d = 0.0
        for _ in range(60):  # d = (tol (1 - RATIO d) / C_K)^(1/power) is a contraction
            d = min(1.0, (tol * (1 - RATIO * d) / c) ** (1 / power))
        d *= 1 - 1e-6
        while d > 0 and tail(d) > tol:
            d *= 0.99
        out[order - 1] = d
    return np.maximum.accumulate(out)


@lru_cache(maxsize=1)
def _sigmoid_polys() -> tuple[tuple[tuple[int, int, float], ...], ...]:
    """``sigmoid^(n) = sum c a^p b^q`` for n = 1..KMAX, as tuples (p, q, c)."""
    polys = [{(1, 1): 1}]
    for _ in range(2, KMAX + 1):
        new: dict[tuple[int, int], int] = {}
        for (p, q), c in polys[-1].items():
            # d/dz a^p b^q = p a^p b^(q+1) - q a^(p+1) b^q   (a' = ab, b' = -ab)
            new[(p, q + 1)] = new.get((p, q + 1), 0) + p * c
            new[(p + 1, q)] = new.get((p + 1, q), 0) - q * c
        polys.append({k: v for k, v in new.items() if v})
    return tuple(tuple((p, q, float(c)) for (p, q), c in poly.items()) for poly in polys)


def derivatives(a: np.ndarray, b: np.ndarray, y: np.ndarray, upto: int) -> list[np.ndarray]:
    """``[s^(1), ..., s^(upto)]`` at the points with ``a = sigmoid(z)``, ``b = sigmoid(-z)``."""
    out = [np.where(y == 1, -b, np.where(y == 0, a, a - y))]
    if upto < 2:
        return out
    polys = _sigmoid_polys()
    apow, bpow = [np.ones_like(a)], [np.ones_like(b)]
    for _ in range(upto + 1):
        apow.append(apow[-1] * a)
        bpow.append(bpow[-1] * b)
    for k in range(2, upto + 1):
        val = np.zeros_like(a)
        for p, q, c in polys[k - 2]:
            val += c * apow[p] * bpow[q]
        out.append(val)
    return out


def _expm1(d: np.ndarray) -> np.ndarray:
    if not np.iscomplexobj(d):
        return np.expm1(d)
    x, t = d.real, d.imag
    return (np.expm1(x) * np.cos(t) - 2 * np.sin(t / 2) ** 2) + 1j * (np.exp(x) * np.sin(t))


def dsoftplus(a: np.ndarray, b: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``s(z + d) - s(z)`` without cancellation (a, b, y broadcast against d).

    ``softplus(z+d) - softplus(z) = log1p(a expm1(d))`` and, for y = 1,
    ``softplus(-z-d) - softplus(-z) = log1p(b expm1(-d))``: both accurate to a few ulps of the
    result for real d, and the analytic continuation for complex d with ``|Im d| < pi``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        one = y == 1
        binary = one | (y == 0)
        w = np.where(one, b, a) * _expm1(np.where(one, -d, d))
        out = np.log1p(w)
        if not np.all(binary):
            general = np.log1p(a * _expm1(d)) - y * d
            out = np.where(binary, out, general)
    return out


_BANDS = {  # saturation_band() of the two dtypes the built-in models use, precomputed
    "float64": (-709.0719301804907, 36.699063769107426),
    "float32": (-88.63311270523069, 16.617895894050594),
}


@lru_cache(maxsize=8)
def saturation_band(dtype: str) -> tuple[float, float]:
    """The z interval in which the seed's expression stays finite in ``dtype``.

    The seed computes ``a = 1/(1+exp(-z))`` then ``log(a)`` and ``log(1-a)``: ``a`` rounds to 1
    (log(1-a) = -inf, and 0 * inf = nan) above some z, and to 0 (exp overflows) below some z.
    Returns (lo, hi), found by bisection in that dtype, shrunk by a small margin.
    """
    if dtype in _BANDS:
        return _BANDS[dtype]
    return _find_band(dtype)


def _find_band(dtype: str) -> tuple[float, float]:
    dt = np.dtype(dtype)
    real = np.empty(0, dt).real.dtype

    def finite(z: float) -> bool:
        with np.errstate(all="ignore"):
            zz = np.array([z], dtype=real)
            a = 1 / (1 + np.exp(-zz))
            return bool(np.isfinite(np.log(a)).all() and np.isfinite(np.log(1 - a)).all())

    def edge(inside: float, outside: float) -> float:
        for _ in range(200):
            mid = (inside + outside) / 2
            if finite(mid):
                inside = mid
            else:
                outside = mid
        return inside

    hi = edge(0.0, 1e4)
    lo = edge(0.0, -1e4)
    return lo + 1e-3 * abs(lo) + 1e-3, hi - 1e-3 * abs(hi) - 1e-3
