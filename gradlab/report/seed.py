"""Section 2: the seed exercise, recomputed with gradlab's core at report time.

The seed document (a write-up of the classic gradient-checking exercise) prints three numbers;
gradlab reproduces them and shows why the seed's fixed threshold of 1e-7 is a trap: the correct
network's difference at eps = 1e-7 is about 1.19e-7, and it grows like 1/eps as eps shrinks
(round-off), while gradlab's threshold follows the measured noise floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..check import check_problem
from ..result import CheckResult
from ..spec import ModelSpec, build_problem, truth_of

__all__ = ["SeedRow", "SeedSection", "seed_section", "SEED_PUBLISHED", "SEED_EPS", "TRAP_EPS"]

SEED_EPS = 1e-7
SEED_THRESHOLD = 1e-7
#: what the seed document prints (the buggy value comes from an older numpy/BLAS)
SEED_PUBLISHED = {
    "linear1d": 2.919335883291695e-10,
    "seed-bugs": 0.2850931566540251,
    "correct": 1.1890913024229996e-07,
}
TRAP_EPS = tuple(10.0 ** -k for k in range(1, 13))


@dataclass
class SeedRow:
    """One line of the seed comparison table."""

    case: str
    published: float
    gradlab: float
    agrees: bool
    seed_verdict: str  # what the seed's "below 1e-7 is correct" rule says
    gradlab_verdict: str
    gradlab_threshold: float
    expected: str


@dataclass
class SeedSection:
    """Everything section 2 shows."""

    rows: list[SeedRow]
    buggy: CheckResult
    truth: dict[str, float]
    trap_eps: list[float] = field(default_factory=list)
    trap_correct: list[float] = field(default_factory=list)
    trap_buggy: list[float] = field(default_factory=list)
    trap_threshold: list[float] = field(default_factory=list)
    error: str = ""


def _verdict(diff: float, threshold: float) -> str:
    return "bug" if diff > threshold else "ok"


@lru_cache(maxsize=1)
def seed_section() -> SeedSection:
    """Recompute the seed's numbers and the difference-vs-eps curve (about 1 s; cached per
    process, since it depends on gradlab's code only)."""
    one_d = check_problem(build_problem(ModelSpec("linear1d")), method="central", eps=SEED_EPS,
                          engine="loop")
    buggy_problem = build_problem(ModelSpec("seed-net", variant="seed-bugs"))
    buggy = check_problem(buggy_problem, method="central", eps=SEED_EPS,
                          engine="loop")
    fixed = check_problem(build_problem(ModelSpec("seed-net")), method="central", eps=SEED_EPS,
                          engine="loop")
    rows = []
    for case, res, expected in (
        ("1-D: J = theta * x (x = 2, theta = 4)", one_d, "ok"),
        ("seed net with its two bugs (dW2 x2, db1 x4)", buggy, "bug"),
        ("seed net, both bugs fixed", fixed, "ok"),
    ):
        key = "linear1d" if case.startswith("1-D") else ("seed-bugs" if expected == "bug"
                                                         else "correct")
        pub = SEED_PUBLISHED[key]
        rows.append(SeedRow(
            case=case, published=pub, gradlab=res.difference,
            agrees=bool(np.isclose(res.difference, pub, rtol=1e-6, atol=0.0)),
            seed_verdict=_verdict(res.difference, SEED_THRESHOLD),
            gradlab_verdict=res.verdict, gradlab_threshold=res.threshold, expected=expected,
        ))
    section = SeedSection(rows=rows, buggy=buggy, truth=truth_of(buggy_problem))
    correct_problem = build_problem(ModelSpec("seed-net"))
    for eps in TRAP_EPS:
        good = check_problem(correct_problem, method="central", eps=eps, engine="loop")
        bad = check_problem(buggy_problem, method="central", eps=eps, engine="loop")
        section.trap_eps.append(eps)
        section.trap_correct.append(good.difference)
        section.trap_buggy.append(bad.difference)
        section.trap_threshold.append(good.threshold)
    return section
