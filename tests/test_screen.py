"""The screen for large blocks of a user's model: found where the full check finds it, and the
stated power holds (errors 10x above the screen's limit are never missed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import gradlab
from gradlab.finite_diff import METHODS, machine_eps
from gradlab.screen import miss_probability, power_constant, screen
from gradlab.verdict import TOLERANCES

DIMS = (20, 24, 24, 1)  # W1 480 and W2 576 elements: over screen_min_block, so screened
ROOT = Path(__file__).resolve().parents[1]


def _load():
    """The benchmark's tanh network (benchmarks/models/tanh_net.py) at test size."""
    spec = importlib.util.spec_from_file_location(
        "screen_net", ROOT / "benchmarks" / "models" / "tanh_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.DIMS, module.M = DIMS, 32
    return module


NET = _load()
cost, exact = NET.cost, NET.gradients


def _net(seed: int = 0):
    return NET.init(seed)


def _mutated(kind: str):
    def grads(p, X, Y):
        g = {k: v.copy() for k, v in exact(p, X, Y).items()}
        w = g["dW2"]
        if kind == "scale":
            g["dW2"] = w * 1.001
        elif kind == "sign":
            g["dW2"] = -w
        elif kind == "transpose":
            g["dW2"] = w.T.copy()
        elif kind == "one":
            w[5, 7] += 0.05 * np.abs(w).max()
        elif kind == "half":
            w[:12] *= 1.01
        return g
    return grads


def test_exact_gradient_matches_complex_step():
    p, X, Y = _net()
    g = exact(p, X, Y)
    for name in ("W1", "W2"):
        for idx in [(0, 0), (3, 5), (10, 11)]:
            q = {k: v.astype(complex) for k, v in p.items()}
            q[name][idx] += 1e-30j
            A = [X.astype(complex)]
            for i in range(1, len(DIMS)):
                Z = q[f"W{i}"] @ A[-1] + q[f"b{i}"]
                A.append(np.tanh(Z) if i < len(DIMS) - 1 else Z)
            deriv = np.imag(np.sum((A[-1] - Y) ** 2) / (2 * X.shape[1])) / 1e-30
            assert np.isclose(g["d" + name][idx], deriv, rtol=1e-12, atol=1e-15)


def test_correct_model_screened_ok():
    p, X, Y = _net()
    r = gradlab.check(cost, exact, p, X, Y)
    assert r.verdict == "ok", r.table()
    assert r.localise == "failing"
    assert r.block("W1").checked_by.endswith("directions")
    assert r.block("b1").checked_by == "elements"
    full = gradlab.check(cost, exact, p, X, Y, localise="all")
    assert r.evaluations < full.evaluations / 2


@pytest.mark.parametrize("kind", ["scale", "sign", "transpose", "one", "half"])
def test_bug_found_in_exactly_its_block_with_the_full_checks_diagnosis(kind):
    p, X, Y = _net()
    fast = gradlab.check(cost, _mutated(kind), p, X, Y)
    full = gradlab.check(cost, _mutated(kind), p, X, Y, localise="all")
    assert [b.name for b in fast.failing()] == ["W2"], fast.table()
    assert [b.name for b in full.failing()] == ["W2"], full.table()
    # the same words up to the evidence (the worst element differs: a sample vs every element)
    assert fast.block("W2").diagnosis.split(";")[0] == full.block("W2").diagnosis.split(";")[0]
    if kind == "one":
        assert "W2[5, 7]" in fast.block("W2").diagnosis


def test_localise_none_says_so_and_all_checks_every_element():
    p, X, Y = _net()
    r = gradlab.check(cost, _mutated("scale"), p, X, Y, localise="none")
    assert r.verdict == "bug" and "not localised" in r.block("W2").diagnosis
    with pytest.raises(gradlab.UsageError, match="unknown localise"):
        gradlab.check(cost, exact, p, X, Y, localise="some")


def test_power_statement_holds_over_many_random_trials():
    """Errors of random direction, 10x the screen's limit in relative size, 200 trials: the
    stated miss probability is ~1e-18 there, so no miss may be seen."""
    p, X, Y = _net(1)
    ref = gradlab.check(cost, exact, p, X, Y)
    b = ref.block("W1")
    layout = gradlab.params.Layout.of(p)
    theta = layout.flatten(p)
    sl = layout.slices()["W1"]
    g_true = exact(p, X, Y)["dW1"].reshape(-1)

    def flat_cost(v):
        return cost(layout.unflatten(v), X, Y)

    class Count:
        count = 0

    rng = np.random.default_rng(5)
    misses = 0
    for _ in range(200):
        e = rng.standard_normal(g_true.size)
        e *= 10 * b.detection_limit * np.linalg.norm(g_true) / np.linalg.norm(e)
        vectors = rng.standard_normal((int(TOLERANCES["screen_directions"]), g_true.size))
        scr = screen(METHODS["central"], b.eps, b.noise, flat_cost, theta, ref.cost, sl,
                     g_true + e, vectors, Count)
        misses += not scr.classes.bug.any()
    assert misses == 0
    assert miss_probability(10 * b.detection_limit, b.detection_limit, 12, 1e-6) < 1e-12
    assert np.isclose(miss_probability(1.0, 1.0, 12, 1e-6), 1e-6, rtol=1e-6)
    assert 0 < power_constant(12, 1e-6) < 1
    assert machine_eps(theta.dtype) < b.detection_limit < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_catalogue_as_user_models_same_verdicts_as_the_full_check(seed):
    """Every catalogue variant of a built-in network, checked as a user model would be (no
    fast engine, so its large blocks are screened): the same verdict and the same failing
    blocks as ``--localise all``."""
    from gradlab.bugs import CATALOGUE
    from gradlab.check import check_problem
    from gradlab.spec import ModelSpec, build_problem

    wrong, screened = [], 0
    for variant in CATALOGUE:
        spec = ModelSpec(model="mlp", variant=variant, seed=seed, dims=(20, 32, 16, 1),
                         examples=64, lambd=0.3, keep_prob=0.8)
        results = {}
        for localise in ("failing", "all"):
            problem = build_problem(spec)
            problem.fast = None  # the model-file form: no fast engine
            results[localise] = check_problem(problem, seed=seed, localise=localise)
        fast, full = results["failing"], results["all"]
        screened += any(b.checked_by != "elements" for b in fast.blocks)
        if fast.verdict != full.verdict or \
                {b.name for b in fast.failing()} != {b.name for b in full.failing()}:
            wrong.append(f"{variant}: {fast.verdict} {[b.name for b in fast.failing()]} vs "
                         f"{full.verdict} {[b.name for b in full.failing()]}")
    assert not wrong, "\n".join(wrong)
    assert screened >= len(CATALOGUE) // 2  # the screen settled most of them by itself
