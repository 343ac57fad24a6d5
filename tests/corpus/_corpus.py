"""Shared pieces of the corpus model files: random draws, dyadic grids, declaring bugs.

Each model writes its backward once, as ``gradients(params, X, Y, bug=None)``; a bug is a flag
that switches one realistic mistake on. :func:`declare` turns ``{bug name: blocks}`` into the
``BUGS`` table ``{name: (blocks, fn)}`` with ``fn(params, X, Y, r)``: ``r=None`` gives the
mistake at its natural size; a number ``r`` keeps the mistake's direction in each declared block
and rescales it to ``||g_bug - g|| = r * ||g||`` there (so one bug can be made at 1e-1 ... 1e-6).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["declare", "dyadic", "rng"]


def rng(seed: int) -> np.random.Generator:
    """The model's random generator for ``init(seed)``."""
    return np.random.default_rng(seed)


def dyadic(gen: np.random.Generator, shape, lo: int = -4, hi: int = 4, den: int = 4):
    """Values k/den (k an integer in [lo, hi]): sums and products of a few of them are exact,
    so ties and exact zeros survive any summation order (and float32 and long double)."""
    return gen.integers(lo, hi + 1, size=shape).astype(np.float64) / den


def _at_size(gradients: Callable, name: str, blocks: list[str]) -> Callable:
    def fn(params, X, Y, r=None):
        good = gradients(params, X, Y)
        bad = gradients(params, X, Y, bug=name)
        if r is None:
            return bad
        out = dict(good)
        for b in blocks:
            g, e = good["d" + b], bad["d" + b] - good["d" + b]
            size = np.linalg.norm(np.asarray(e, np.float64))
            if size == 0:
                raise ValueError(f"bug {name} does not change d{b} at this point")
            scale = r * np.linalg.norm(np.asarray(g, np.float64)) / size
            out["d" + b] = (g + scale * e).astype(g.dtype)
        return out

    return fn


def declare(gradients: Callable, table: dict[str, list[str]]) -> dict[str, tuple]:
    """``BUGS`` for a model: ``{name: (blocks, fn(params, X, Y, r=None))}``."""
    return {name: (list(blocks), _at_size(gradients, name, list(blocks)))
            for name, blocks in table.items()}
