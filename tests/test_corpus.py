"""gradlab's verdicts on the model-family corpus (tests/corpus), judged by the independent truth.

a. default settings, seeds 0-9: no false alarm on a correct model; every bug the defaults
   should see (true relative size >= 1e-6 in float64, >= 1e-2 in float32) flagged ``bug`` in
   exactly its blocks.                                                            (slow)
b. every method x steps 1e-1 ... 1e-12, seeds 0-2: no false alarm, and no block called ``ok``
   (or ``kink``) whose true error exceeds the ``detection_limit`` the block states. (slow)
c. the files work as model files for ``gradlab check FILE --json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import gradlab

CORPUS = Path(__file__).resolve().parent / "corpus"
sys.path.insert(0, str(CORPUS))
from _truth import case, model_names  # noqa: E402

MODELS = model_names()
METHODS = ("forward", "central", "five-point", "complex-step")
STEPS = tuple(10.0**-k for k in range(1, 13))
VISIBLE = {False: 0.9e-6, True: 0.9e-2}  # what the defaults must see: 1e-6 / 1e-2, less rounding
SIZES = {False: (None, 1e-1, 1e-3, 1e-6), True: (None, 1e-1, 1e-2)}


def _variants(c):
    """(bug, size, gradient dict): the correct gradients first, then every bug at every size."""
    yield None, None, c.module.gradients(c.params, c.X, c.Y)
    for bug in c.module.BUGS:
        for r in SIZES[c.float32]:
            yield bug, r, c.bug_gradients(bug, r)


def _check(c, grads, **options):
    return gradlab.check(c.module.cost, lambda *_: grads, c.params, c.X, c.Y, **options)


def _true_error(c, block: str, grads: dict, approx: np.ndarray) -> float:
    """``||e|| / ||numerical||`` with ``e`` the true error (distance to the truth interval)."""
    e = np.linalg.norm(c.truth[block].distance(grads["d" + block]))
    return float(e / max(np.linalg.norm(approx), 1e-300))


def _default_failures(name: str, seed: int) -> list[str]:
    c = case(name, seed)
    out = []
    for bug, r, grads in _variants(c):
        res = _check(c, grads)
        sizes = c.sizes(grads)
        declared = c.module.BUGS[bug][0] if bug else []
        for b in res.blocks:
            where = f"{name} seed {seed} {bug or 'correct'}@{r} d{b.name}: {b.verdict}"
            if b.name not in declared and b.verdict in ("bug", "shape-mismatch"):
                out.append(f"false alarm {where} ({b.diagnosis})")
            elif b.name in declared and sizes[b.name] >= VISIBLE[c.float32] \
                    and b.verdict != "bug":
                out.append(f"missed {where}, true size {sizes[b.name]:.2e}, "
                           f"difference {b.difference:.2e} threshold {b.threshold:.2e}")
    return out


def test_no_false_alarm_seed0_defaults():
    """Quick guard: every correct corpus model passes gradlab's defaults at seed 0."""
    bad = []
    for name in MODELS:
        c = case(name, 0)
        res = _check(c, c.module.gradients(c.params, c.X, c.Y))
        bad += [f"{name} d{b.name}: {b.diagnosis}" for b in res.blocks if b.verdict == "bug"]
    assert not bad, "\n".join(bad)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_defaults(name):
    failures = [f for seed in range(10) for f in _default_failures(name, seed)]
    assert not failures, f"{len(failures)} wrong block verdicts:\n" + "\n".join(failures[:40])


def _grid_failures(name: str, method: str, seed: int) -> list[str]:
    c = case(name, seed)
    out = []
    for eps in STEPS:
        for bug, r, grads in _variants(c):
            res = _check(c, grads, method=method, eps=eps)
            declared = c.module.BUGS[bug][0] if bug else []
            for b in res.blocks:
                assert b.taylor_rate is None or np.isfinite(b.taylor_rate)
                where = (f"{name} seed {seed} {method} eps {eps:.0e} {bug or 'correct'}@{r} "
                         f"d{b.name}")
                if b.name not in declared:
                    if b.verdict in ("bug", "shape-mismatch"):
                        out.append(f"false alarm {where}: {b.diagnosis}")
                    continue
                if b.verdict not in ("ok", "kink"):
                    continue
                err = _true_error(c, b.name, grads, res.approx[b.name])
                if not err <= b.detection_limit:  # NaN limit on an ok block fails too
                    out.append(f"{b.verdict} {where}: true error {err:.2e} > detection limit "
                               f"{b.detection_limit:.2e}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", MODELS)
def test_all_methods_and_steps(name, method):
    failures = [f for seed in range(3) for f in _grid_failures(name, method, seed)]
    assert not failures, f"{len(failures)} wrong block verdicts:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("name", ["attention", "conv1d", "float32_mlp", "maxpool_first"])
def test_cli_json(name, cli):
    """``gradlab check tests/corpus/FILE.py --json``: exit 0 and one JSON object per model."""
    proc = cli("check", str(CORPUS / f"{name}.py"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"] == "ok"
    assert [b["name"] for b in out["blocks"]] == list(case(name, 0).params)


@pytest.mark.slow
def test_screen_gives_the_full_checks_verdicts(monkeypatch):
    """With every block over 4 elements screened (not just those over 64), the default
    ``--localise failing`` gives the same verdict and failing blocks as ``--localise all`` on
    every corpus model, correct and with each bug at its natural size, seeds 0-1."""
    from gradlab.verdict import TOLERANCES

    monkeypatch.setitem(TOLERANCES, "screen_min_block", 4)
    wrong, screened = [], 0
    for name in MODELS:
        for seed in range(2):
            c = case(name, seed)
            variants = [(None, c.module.gradients(c.params, c.X, c.Y))] + [
                (bug, c.bug_gradients(bug, None)) for bug in c.module.BUGS]
            for bug, grads in variants:
                fast, full = (_check(c, grads, localise=mode) for mode in ("failing", "all"))
                screened += any(b.checked_by != "elements" for b in fast.blocks)
                if fast.verdict != full.verdict or \
                        {b.name for b in fast.failing()} != {b.name for b in full.failing()}:
                    wrong.append(f"{name} seed {seed} {bug}: {fast.verdict} vs {full.verdict}")
    assert not wrong, "\n".join(wrong)
    assert screened > 100
