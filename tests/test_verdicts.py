"""Verdicts on models gradlab does not ship, against derivatives written out by hand.

Each model here has an exact gradient computed independently of gradlab (closed form), so a
verdict is judged against the truth, not against gradlab's own estimate.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import gradlab
from gradlab.diagnose import element_name, rearrangement

LAM = 0.1


def _logistic_l1(seed: int, at_zero: int = 3):
    """Logistic regression with an L1 penalty; the first ``at_zero`` weights sit on the kink."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(6) * 0.5
    w[:at_zero] = 0.0
    X = rng.standard_normal((6, 20))
    Y = (rng.random(20) > 0.5).astype(float)
    return {"w": w, "b": np.array([0.3])}, X, Y


def _l1_cost(p, X, Y):
    z = p["w"] @ X + p["b"][0]
    return float(np.mean(np.logaddexp(0, z) - Y * z) + LAM * np.sum(np.abs(p["w"])))


def _l1_exact(p, X, Y):
    """The exact gradient (sign(0) = 0 at the kink: a valid subgradient)."""
    z = p["w"] @ X + p["b"][0]
    s = 1 / (1 + np.exp(-z))
    return {"dw": X @ (s - Y) / X.shape[1] + LAM * np.sign(p["w"]),
            "db": np.array([np.mean(s - Y)])}


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("method", ["forward", "central", "five-point"])
def test_l1_kink_neither_blinds_other_blocks_nor_is_a_bug(seed, method):
    params, X, Y = _logistic_l1(seed)
    right = gradlab.check(_l1_cost, _l1_exact, params, X, Y, method=method, seed=seed)
    assert right.verdict == "ok", right.table()
    assert right.block("w").verdict in ("ok", "kink")

    def bias_off(p, X, Y):  # a bias gradient 1e-4 relative too large
        g = _l1_exact(p, X, Y)
        return {**g, "db": g["db"] * (1 + 1e-4)}

    r = gradlab.check(_l1_cost, bias_off, params, X, Y, method=method, seed=seed)
    assert [b.name for b in r.failing()] == ["b"], r.table()
    assert r.block("b").detection_limit < 1e-4

    def no_l1(p, X, Y):  # the penalty's gradient forgotten
        g = _l1_exact(p, X, Y)
        return {**g, "dw": g["dw"] - LAM * np.sign(p["w"])}

    r = gradlab.check(_l1_cost, no_l1, params, X, Y, method=method, seed=seed)
    assert [b.name for b in r.failing()] == ["w"], r.table()


def test_a_value_outside_the_subgradient_interval_is_a_bug():
    params, X, Y = _logistic_l1(0, at_zero=1)

    def outside(p, X, Y):  # at w[0] = 0 the valid values are smooth part +- LAM; 3 LAM is not
        g = _l1_exact(p, X, Y)
        g["dw"] = g["dw"].copy()
        g["dw"][0] += 3 * LAM
        return g

    for method in ("forward", "central"):
        r = gradlab.check(_l1_cost, outside, params, X, Y, method=method)
        assert r.block("w").verdict == "bug", r.table()
        assert r.block("w").bug_elements == 1


@pytest.mark.parametrize("dtype, eps", [("float64", 1e-15), ("float32", 1e-7)])
def test_a_step_below_the_precision_is_inconclusive_not_ok(cli, dtype, eps):
    out = cli("check", "seed-net", "--dtype", dtype, "--eps", str(eps), "--json")
    assert out.returncode == 3, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "inconclusive"
    for b in data["blocks"]:
        assert b["verdict"] == "inconclusive"
        assert b["detection_limit"] > 0.1
        assert "too small for " + dtype in b["diagnosis"]
    text = cli("check", "seed-net", "--dtype", dtype, "--eps", str(eps))
    assert text.returncode == 3 and "detects >" in text.stdout
    assert text.stdout.startswith("The check is inconclusive")


def test_default_settings_state_a_small_detection_limit(cli):
    data = json.loads(cli("check", "seed-net", "--json").stdout)
    assert data["verdict"] == "ok"
    for b in data["blocks"]:
        assert 0 < b["detection_limit"] < 1e-6
        assert "taylor_rate" in b


def test_detection_limit_is_honest_for_scale_bugs():
    """A scale error above the stated limit is always caught, on a smooth model."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 5))

    def cost(p, X, Y):
        return float(np.sum(np.tanh(A @ p["v"]) ** 2))

    def exact(p, X, Y):
        t = np.tanh(A @ p["v"])
        return {"dv": A.T @ (2 * t * (1 - t**2))}

    params = {"v": rng.standard_normal(5)}
    for eps in (1e-2, 1e-5, 1e-8, 1e-11):
        ok = gradlab.check(cost, exact, params, eps=eps)
        limit = ok.block("v").detection_limit
        assert ok.verdict in ("ok", "inconclusive")
        if limit < 0.05:
            def scaled_grad(p, X, Y, k=1 + 10 * limit):
                return {"dv": exact(p, X, Y)["dv"] * k}

            scaled = gradlab.check(cost, scaled_grad, params, eps=eps)
            assert scaled.verdict == "bug", (eps, limit, scaled.table())


def test_rearranged_axes_are_named():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 4))
    assert rearrangement(np.transpose(a, (0, 2, 1)), a) == "axes permuted as (0, 2, 1)"
    k = rng.standard_normal((3, 3))
    assert rearrangement(k[::-1, ::-1], k) == "flipped along every axis"
    assert rearrangement(k.T, k) == "transposed"
    # size-1 axes: moving or flipping them changes nothing and must not be "found"
    b = rng.standard_normal((5, 1))
    assert rearrangement(b * (1 + 1e-6), b) is None


def test_3d_axis_swap_and_flipped_kernel_diagnosed_in_a_check():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(12)

    def conv_cost(p, X, Y):  # 1-D valid convolution of x with kernel k, then a square
        return float(np.sum(np.convolve(x, p["k"], mode="valid") ** 2) + np.sum(p["T"] ** 3))

    def grads(p, X, Y, flip=False, swap=False):
        y = np.convolve(x, p["k"], mode="valid")
        n = p["k"].size
        dk = np.array([2 * np.sum(y * x[n - 1 - j:n - 1 - j + y.size]) for j in range(n)])
        dT = 3 * p["T"] ** 2
        return {"dk": dk[::-1] if flip else dk,
                "dT": np.transpose(dT, (0, 2, 1)) if swap else dT}

    params = {"k": rng.standard_normal(4), "T": rng.standard_normal((2, 3, 3))}
    assert gradlab.check(conv_cost, grads, params).verdict == "ok"
    r = gradlab.check(conv_cost, lambda p, X, Y: grads(p, X, Y, flip=True, swap=True), params)
    assert "dk is reversed" in r.block("k").diagnosis
    assert "dT is axes permuted as (0, 2, 1)" in r.block("T").diagnosis


def test_one_element_and_scalar_blocks_described_by_value():
    def cost(p, X, Y):
        return float(p["s"] ** 2 + np.sum(p["c"] ** 2))

    def wrong(p, X, Y):
        return {"ds": np.asarray(2.447 * 2 * p["s"]), "dc": 2 * p["c"]}

    params = {"s": np.array(1.5), "c": np.array([0.5])}
    r = gradlab.check(cost, wrong, params)
    text = r.block("s").diagnosis
    assert "scale" not in text and "backprop 7.341" in text and "numerical 3" in text
    assert element_name("s", (), 0) == "s"


def test_factor_equal_to_the_number_of_examples_is_pointed_out():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3, 16))

    def cost(p, X, Y):
        return float(np.mean((p["w"] @ X) ** 2))

    def missing_mean(p, X, Y):  # the sum's gradient, without the 1/m of the mean
        return {"dw": 2 * (p["w"] @ X) @ X.T}

    r = gradlab.check(cost, missing_mean, {"w": rng.standard_normal((1, 3))}, X)
    assert "16x too large" in r.block("w").diagnosis
    assert "X.shape[1]" in r.block("w").diagnosis


def test_gradients_changing_its_inputs_is_named_not_blamed():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 8))

    def cost(p, X, Y):
        return float(np.sum((p["w"] @ X) ** 2))

    def in_place(p, X, Y):
        g = {"dw": 2 * (p["w"] @ X) @ X.T}
        X *= 2  # a backward that scribbles on its cache
        return g

    r = gradlab.check(cost, in_place, {"w": rng.standard_normal((1, 3))}, X)
    assert r.verdict == "ok", r.table()
    assert any("gradients() changed X in place" in n for n in r.notes)


def test_cost_changing_its_inputs_is_an_error():
    def cost(p, X, Y):
        X += 1
        return float(np.sum(p["w"] * X))

    with pytest.raises(gradlab.ModelError, match="changes X in place"):
        gradlab.check(cost, lambda p, X, Y: {"dw": X}, {"w": np.ones(3)}, np.ones(3))
