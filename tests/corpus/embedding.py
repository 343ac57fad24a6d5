"""Embedding lookup with repeated indices, then a linear readout."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "embedding"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    idx = np.array([0, 2, 2, 5, 1, 2, 0, 4])  # rows 0 and 2 repeat; row 3 unused
    return {"E": g.normal(size=(6, 3)), "w": g.normal(size=3)}, idx, g.normal(size=8)


def cost(p, idx, Y):
    return 0.5 * np.sum((p["E"][idx] @ p["w"] - Y) ** 2) / len(idx)


def gradients(p, idx, Y, bug=None):
    r = (p["E"][idx] @ p["w"] - Y) / len(idx)
    dE = np.zeros_like(p["E"])
    if bug == "assign_not_accumulate":
        dE[idx] += np.outer(r, p["w"])  # repeated rows keep only one contribution
    elif bug == "row_off_by_one":
        np.add.at(dE, (idx + 1) % 6, np.outer(r, p["w"]))
    else:
        np.add.at(dE, idx, np.outer(r, p["w"]))
    return {"dE": dE, "dw": p["E"][idx].T @ r}


BUGS = declare(gradients, {"assign_not_accumulate": ["E"], "row_off_by_one": ["E"]})
