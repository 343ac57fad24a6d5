"""The corpus against its ground truth (tests/corpus/_truth.py), without any gradlab code.

Every correct ``gradients()`` must match the long-double Richardson truth (and the complex step
for COMPLEX_SAFE models) away from kinks and lie between the one-sided slopes at kinks; every
declared bug must change exactly its declared blocks, by the relative size it was asked for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpus"))
from _truth import case, load, model_names  # noqa: E402

MODELS = model_names()
SEEDS = range(10)
# float64 backprop vs truth: round-off of a few hundred flops, far below this
TOL64 = 1e-7
# float32: forward and backward both round at 6e-8 per flop and the truth is of the exact
# function of the float32 data, so agreement is at the float32 level (measured <= 2e-7)
TOL32 = 1e-5
SIZES = (1e-1, 1e-3, 1e-6)


def _setup(name: str, seed: int):
    c = case(name, seed)
    return c.module, c.params, c.X, c.Y, c.truth


def _tol(params) -> float:
    return TOL32 if any(np.asarray(v).dtype == np.float32 for v in params.values()) else TOL64


def test_corpus_is_broad():
    families = {load(n).FAMILY for n in MODELS}
    assert len(MODELS) >= 30 and len(families) >= 12, (len(MODELS), sorted(families))
    for name in MODELS:
        assert load(name).BUGS, f"{name} declares no bugs"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", MODELS)
def test_correct_gradients_match_truth(name, seed):
    module, params, X, Y, t = _setup(name, seed)
    grads = module.gradients(params, X, Y)
    tol = _tol(params)
    for block, bt in t.items():
        g = np.asarray(grads["d" + block], np.float64)
        assert g.shape == np.shape(params[block]), block
        assert bt.relative_error(g) < tol, (block, bt.relative_error(g))
        # at kinks: inside [lo, hi] up to the same relative tolerance of the block
        slack = tol * np.linalg.norm(bt.value)
        assert np.all(bt.distance(g)[bt.kink] <= slack), block
        if bt.complex_step is not None:  # cross-check of the truth itself
            smooth = ~bt.kink
            gap = np.linalg.norm((bt.complex_step - bt.value)[smooth])
            assert gap <= 1e-9 * max(np.linalg.norm(bt.value), 1e-300), (block, gap)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", MODELS)
def test_bugs_change_exactly_their_blocks(name, seed):
    module, params, X, Y, t = _setup(name, seed)
    good = module.gradients(params, X, Y)
    tol = _tol(params)
    for bug, (blocks, fn) in module.BUGS.items():
        for r in (None, *SIZES):
            bad = fn(params, X, Y, r)
            changed = sorted(b for b in t if not np.array_equal(bad["d" + b], good["d" + b]))
            assert changed == sorted(blocks), (bug, r, changed)
            sizes = case(name, seed).sizes(bad)
            for b in t:
                if b not in blocks:
                    assert sizes[b] < tol, (bug, r, b, sizes[b])
                elif r is None and not t[b].kink.all():
                    assert sizes[b] > 10 * tol, (bug, b, sizes[b])  # a real mistake
                elif r is None:  # all on kinks: the mistake may still be a valid subgradient
                    continue
                elif t[b].kink.any():  # part of the change may stay inside the kink interval
                    ratio = np.linalg.norm(good["d" + b]) / np.linalg.norm(t[b].value)
                    assert sizes[b] <= 1.01 * r * ratio + 2 * tol, (bug, r, b, sizes[b])
                else:  # the size asked for, up to the correct gradient's own error
                    assert abs(sizes[b] - r) <= 0.01 * r + 2 * tol, (bug, r, b, sizes[b])
