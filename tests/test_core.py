"""The core engine against the seed's published numbers and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradlab
from gradlab.bugs import CATALOGUE
from gradlab.check import check_problem
from gradlab.finite_diff import METHODS, loop_costs
from gradlab.models.mlp import seed_net
from gradlab.params import GradientKeyError, Layout
from gradlab.spec import ModelSpec, build_problem, truth_of

SEED_BUGGY = 0.2850931567761623
SEED_FIXED = 1.1890913024229996e-07
SEED_1D = 2.919335883291695e-10


def _seed_check(variant: str, **kw) -> gradlab.CheckResult:
    return check_problem(build_problem(ModelSpec("seed-net", variant)), **kw)


def test_seed_1d_difference_exact():
    r = check_problem(build_problem(ModelSpec("linear1d")), method="central", eps=1e-7,
                      engine="loop")
    assert r.difference == SEED_1D
    assert r.verdict == "ok"


def test_seed_test_case_cost():
    net = seed_net()
    assert np.isclose(net.cost(net.params, net.X, net.Y), 2.407833389834357, rtol=1e-12)
    assert [n for n in net.params] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert Layout.of(net.params).size == 47


@pytest.mark.parametrize("engine", ["loop", "auto"])
def test_seed_bugs_localised_with_factors(engine):
    r = _seed_check("seed-bugs", method="central", eps=1e-7, engine=engine)
    assert np.isclose(r.difference, SEED_BUGGY, rtol=1e-8)
    assert r.verdict == "bug"
    assert {b.name for b in r.failing()} == {"W2", "b1"}
    assert np.isclose(r.block("b1").difference, 0.6, rtol=1e-6)
    assert np.isclose(r.block("W2").difference, 1 / 3, rtol=1e-6)
    assert "2x too large" in r.block("W2").diagnosis
    assert "4x too large" in r.block("b1").diagnosis
    for name in ("W1", "b2", "W3", "b3"):
        assert r.block(name).difference < 3e-7


def test_seed_fixed_passes_at_seed_setting_despite_threshold_trap():
    r = _seed_check("correct", method="central", eps=1e-7, engine="loop")
    assert np.isclose(r.difference, SEED_FIXED, rtol=1e-6)
    assert r.difference > 1e-7  # the seed's own threshold would call this a bug
    assert r.verdict == "ok"
    fixed = _seed_check("correct", method="central", eps=1e-7, threshold=1e-7, engine="loop")
    assert fixed.verdict == "bug"  # the fixed threshold stays available and shows the trap


def test_seed_correct_default_settings_ok():
    r = _seed_check("correct")
    assert r.verdict == "ok" and r.eps_chosen
    assert r.difference < 1e-8


def test_per_element_arrays_match_plain_loop():
    """The estimate equals the seed's own loop (copy, perturb, forward) element by element."""
    problem = build_problem(ModelSpec("seed-net", "seed-bugs"))
    layout = Layout.of(problem.params)
    theta = layout.flatten(problem.params)
    approx = np.zeros(theta.size)
    for i in range(theta.size):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += 1e-7
        minus[i] -= 1e-7
        jp = problem.cost(layout.unflatten(plus), problem.X, problem.Y)
        jm = problem.cost(layout.unflatten(minus), problem.X, problem.Y)
        approx[i] = (jp - jm) / (2 * 1e-7)
    r = check_problem(problem, method="central", eps=1e-7, engine="loop")
    np.testing.assert_array_equal(layout.flatten(r.approx), approx)
    grads = problem.gradients(problem.params, problem.X, problem.Y)
    np.testing.assert_array_equal(r.grad["W2"], grads["dW2"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=5),
       st.integers(0, 2**31 - 1))
def test_layout_round_trip(shapes, seed):
    rng = np.random.default_rng(seed)
    params = {f"p{k}": rng.standard_normal(tuple(s)) for k, s in enumerate(shapes)}
    layout = Layout.of(params)
    vec = layout.flatten(params)
    assert vec.size == sum(int(np.prod(s)) for s in shapes)
    back = layout.unflatten(vec)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])
    start = 0
    for v in params.values():  # row-major, key order
        np.testing.assert_array_equal(vec[start:start + v.size], v.reshape(-1))
        start += v.size


def test_gradient_keys_d_prefix_or_plain_and_missing():
    layout = Layout.of({"W1": np.zeros((2, 2)), "b1": np.zeros((2, 1))})
    got = layout.gradient_blocks({"dW1": np.ones((2, 2)), "b1": np.ones((2, 1)), "dZ1": 0})
    assert set(got) == {"W1", "b1"}
    with pytest.raises(GradientKeyError, match="b1"):
        layout.gradient_blocks({"dW1": np.ones((2, 2))})


def _analytic():
    """J = sum(sin(W) * x) + 0.5 * sum(c**2 * x0); exact gradient cos(W) * x and c * x0."""
    def cost(p, x, _):
        return np.sum(np.sin(p["W"]) * x) + 0.5 * np.sum(p["c"] ** 2 * x[:, 0])

    def grads(p, x, _):
        return {"dW": np.cos(p["W"]) * x, "dc": p["c"] * x[:, 0]}

    return cost, grads


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(list(METHODS)), st.integers(0, 10_000),
       st.sampled_from([1e-2, 1e-3, 1e-4, 1e-5, 1e-6, "auto"]))
def test_estimates_match_exact_derivatives(method, seed, eps):
    rng = np.random.default_rng(seed)
    params = {"W": rng.uniform(-2, 2, (3, 2)), "c": rng.uniform(-1, 1, 3)}
    x = rng.uniform(0.5, 2, (3, 2))
    cost, grads = _analytic()
    r = gradlab.check(cost, grads, params, x, None, method=method, eps=eps, engine="loop")
    exact = grads(params, x, None)
    h = r.eps
    order = METHODS[method].order
    # truncation (derivatives of the test function are at most 2: <= 2 h**order) plus
    # round-off (|J| < 20, so cost noise is far below 1e-14: <= 1e-13 / h); independent of
    # gradlab's own bounds
    tol = 2 * h**order + 1e-13 / h
    for name in ("W", "c"):
        assert np.max(np.abs(r.approx[name] - exact["d" + name])) < tol
    assert r.verdict == "ok"


def test_complex_step_is_exact_to_rounding():
    cost, grads = _analytic()
    params = {"W": np.array([[0.3, -1.2]]), "c": np.array([0.7])}  # x has one row
    x = np.array([[1.5, 0.5]])
    r = gradlab.check(cost, grads, params, x, None, method="complex-step")
    assert r.method == "complex-step" and r.eps == 1e-20
    np.testing.assert_allclose(r.approx["W"], np.cos(params["W"]) * x, rtol=1e-15, atol=1e-16)


def test_not_complex_safe_falls_back_and_says_so(models_dir):
    problem = build_problem(ModelSpec(str(models_dir / "softmax_bug.py")))
    r = check_problem(problem, method="complex-step")
    assert r.method == "central"
    assert any("complex step not possible" in n for n in r.notes)
    assert r.verdict == "bug"
    assert "4 of 12 elements" in r.block("W").diagnosis
    assert r.block("c").verdict == "ok"


def test_kink_is_not_a_bug(models_dir):
    problem = build_problem(ModelSpec(str(models_dir / "kink.py")))
    r = check_problem(problem, method="central", eps=1e-3)
    assert r.block("w").verdict == "kink"
    assert r.verdict == "ok"
    assert r.block("w").difference > 1e-3  # a fixed threshold would have failed it


def test_nonfinite_cost_is_inconclusive(models_dir):
    r = check_problem(build_problem(ModelSpec(str(models_dir / "nan_cost.py"))))
    assert r.verdict == "inconclusive"
    assert all(b.verdict == "non-finite" for b in r.blocks)


def test_saturated_sigmoid_inside_network_is_non_finite():
    problem = build_problem(ModelSpec("seed-net"))
    problem.params["b3"] = np.array([[800.0]])  # a3 == 1 exactly: log(1 - a3) = -inf
    with np.errstate(all="ignore"):
        r = check_problem(problem)
    assert r.verdict == "inconclusive"


def test_assert_gradients_names_block_element_and_values():
    net = seed_net()
    bug = CATALOGUE["seed-dW2x2"].backprop()
    with pytest.raises(AssertionError) as info:
        gradlab.assert_gradients(net.cost, lambda p, x, y: net.gradients(p, x, y, bug),
                                 net.params, net.X, net.Y)
    text = str(info.value)
    assert "dW2" in text and "2x too large" in text
    r = gradlab.check(net.cost, lambda p, x, y: net.gradients(p, x, y, bug), net.params,
                      net.X, net.Y)
    b = r.block("W2")
    assert f"{b.worst_grad:.6g}" in text and f"{b.worst_approx:.6g}" in text
    assert f"dW2[{b.worst_index[0]}, {b.worst_index[1]}]" in text
    assert gradlab.assert_gradients(net.cost, net.gradients, net.params, net.X, net.Y).ok


def test_bad_options_raise_usage_errors():
    net = seed_net()
    for kw, text in [({"method": "backward"}, "central"), ({"eps": -1.0}, "positive"),
                     ({"eps": "tiny"}, "positive"), ({"engine": "gpu"}, "loop"),
                     ({"threshold": 0}, "positive")]:
        with pytest.raises(gradlab.UsageError, match=text):
            gradlab.check(net.cost, net.gradients, net.params, net.X, net.Y, **kw)


def test_loop_costs_float32_stays_float32():
    seen = []

    def f(vec):
        seen.append(vec.dtype)
        return float(np.sum(vec))

    theta = np.ones(3, np.float32)
    loop_costs(f, theta, np.array([1e-3]), np.arange(3))
    assert set(seen) == {np.dtype(np.float32)}


@pytest.mark.parametrize("variant", sorted(CATALOGUE))
def test_ground_truth_is_exact_comparison(variant):
    problem = build_problem(ModelSpec("mlp", variant, seed=3, dims=(4, 5, 3, 1), examples=4,
                                      lambd=0.5, keep_prob=0.8))
    truth = truth_of(problem)
    net = problem.info["network"]
    right = net.gradients(net.params, net.X, net.Y)
    wrong = problem.gradients(net.params, net.X, net.Y)
    for key, good in right.items():
        same = np.shape(wrong[key]) == good.shape and np.array_equal(wrong[key], good)
        assert (key[1:] not in truth) == same
    assert (variant == "correct") == (not truth)
