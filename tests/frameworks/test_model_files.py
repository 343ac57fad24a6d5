"""Model files in torch and JAX: the CLI, the sweep, the vmap evaluator against the loop, the
loop fallback, dtype preservation; truth from the frameworks' own autograd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from needs import need

from gradlab.check import check_problem
from gradlab.config import normalise
from gradlab.errors import ModelError
from gradlab.finite_diff import loop_costs
from gradlab.models.byo import byo_problem, load_module
from gradlab.params import Layout
from gradlab.sweep import run_group

ROOT = Path(__file__).resolve().parents[2]
TORCH_MODEL = ROOT / "examples" / "torch_model.py"
JAX_MODEL = ROOT / "examples" / "jax_model.py"
# (file, text to replace, bug, blocks whose gradient changes)
BUGS = {
    "torch": (TORCH_MODEL, "dz.sum(dim=1, keepdim=True)", "dz.mean(dim=1, keepdim=True)"),
    "jax": (JAX_MODEL, "return W.T @ dz, dz @ x.T", "return W.T @ dz, -(dz @ x.T)"),
}


@pytest.fixture(autouse=True)
def frameworks():
    """Every test here needs torch and jax (imported when the test runs, not at collection)."""
    need("torch")
    need("jax")


def variant(tmp_path: Path, kind: str, bug: bool, float32: bool = False) -> Path:
    """The example model file of ``kind``, optionally with its bug and/or in float32."""
    source, good, bad = BUGS[kind]
    text = source.read_text()
    assert good in text
    if bug:
        text = text.replace(good, bad)
    if float32:
        text = text.replace("torch.float64", "torch.float32").replace("jnp.float64", "jnp.float32")
    path = tmp_path / f"{kind}_{'bug' if bug else 'ok'}_{'32' if float32 else '64'}.py"
    path.write_text(text)
    return path


def truth(path: Path) -> set[str]:
    """Blocks whose file gradients differ from autograd of the plain forward (no custom rule)."""
    torch, jax = need("torch"), need("jax")
    module = load_module(path)
    params, X, Y = module.init(0)
    if "torch" in path.name:
        def plain(p):
            h = torch.tanh(p["W1"] @ X + p["b1"])
            out = torch.tanh(p["W2"] @ h + p["b2"])
            return ((out - Y) ** 2).sum() / (2 * X.shape[1])

        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        want = dict(zip(leaves, torch.autograd.grad(plain(leaves), list(leaves.values())),
                        strict=True))
    else:
        jnp = jax.numpy

        def plain(p):
            h = jnp.tanh(p["W1"] @ X + p["b1"])
            out = jnp.tanh(p["W2"] @ h + p["b2"])
            return jnp.sum((out - Y) ** 2) / (2 * X.shape[1])

        want = jax.grad(plain)(params)
    got = module.gradients(params, X, Y)
    return {k for k in params if not np.allclose(np.asarray(got["d" + k]),
                                                 np.asarray(want[k]), rtol=1e-4, atol=1e-7)}


@pytest.mark.parametrize("float32", [False, True], ids=["float64", "float32"])
@pytest.mark.parametrize("bug", [False, True], ids=["correct", "bug"])
@pytest.mark.parametrize("kind", ["torch", "jax"])
def test_model_file_blocks_match_autograd(tmp_path, kind, bug, float32):
    path = variant(tmp_path, kind, bug, float32)
    problem = byo_problem(path)
    dtype = np.float32 if float32 else np.float64
    assert all(v.dtype == dtype for v in problem.params.values())
    result = check_problem(problem)
    assert result.engine == f"{kind}-vmap"
    expected = truth(path)
    assert bool(expected) == bug
    assert {b.name for b in result.failing()} == expected, result.table()


@pytest.mark.parametrize("float32", [False, True], ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ["torch", "jax"])
def test_vmap_evaluator_gives_the_loops_costs_and_estimates(tmp_path, kind, float32):
    problem = byo_problem(variant(tmp_path, kind, bug=True, float32=float32))
    layout = Layout.of(problem.params)
    theta = layout.flatten(problem.params)
    steps, idx = np.array([1e-3, -1e-3, 1e-1]), np.arange(theta.size)
    fast = problem.fast.costs(theta, steps, idx)
    loop = loop_costs(lambda t: problem.cost(layout.unflatten(t), problem.X, problem.Y),
                      theta, steps, idx)
    assert fast.shape == loop.shape
    j0 = abs(float(problem.cost(problem.params, problem.X, problem.Y)))
    np.testing.assert_allclose(fast, loop, rtol=0, atol=64 * np.finfo(theta.dtype).eps * j0)
    if float32:
        return
    by_loop, by_vmap = check_problem(problem, engine="loop"), check_problem(problem)
    assert (by_loop.engine, by_vmap.engine) == ("loop", f"{kind}-vmap")
    assert [b.verdict for b in by_loop.blocks] == [b.verdict for b in by_vmap.blocks]
    assert by_loop.eps == by_vmap.eps
    for name, approx in by_loop.approx.items():  # rounding of J only: ~noise/eps apart
        np.testing.assert_allclose(by_vmap.approx[name], approx, rtol=0,
                                   atol=64 * by_loop.cost_noise / by_loop.eps)


OLD_STYLE = '''
import torch

class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return w ** 3

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * 3 * w ** 2 * SCALE

SCALE = 1.0

def init(seed):
    g = torch.Generator().manual_seed(seed)
    return ({"w": torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True),
             "v": torch.randn(3, generator=g, dtype=torch.float64)}, None, None)

def cost(p, X, Y):
    assert p["w"].dtype == torch.float64
    return Cube.apply(p["w"]).sum() + (p["v"] ** 2).sum()

def gradients(p, X, Y):
    assert p["w"].requires_grad and not p["v"].requires_grad
    w = p["w"]
    v = p["v"].detach().requires_grad_(True)
    dw, dv = torch.autograd.grad(cost({"w": w, "v": v}, X, Y), [w, v])
    return {"dw": dw, "dv": dv}
'''


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_old_style_function_falls_back_to_the_loop_with_a_note(tmp_path, scale):
    path = tmp_path / "old_style.py"
    path.write_text(OLD_STYLE.replace("SCALE = 1.0", f"SCALE = {scale}"))
    problem = byo_problem(path)
    assert problem.fast is None
    result = check_problem(problem)
    assert result.engine == "loop"
    assert any("could not be vectorised with torch.func.vmap" in n for n in result.notes)
    assert {b.name for b in result.failing()} == ({"w"} if scale != 1.0 else set())


@pytest.mark.parametrize("path", [TORCH_MODEL, JAX_MODEL], ids=["torch", "jax"])
def test_cli_checks_framework_model_files(path, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "gradlab.cli", "check", str(path)],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "works perfectly fine" in ok.stdout and "-vmap" in ok.stdout
    kind = "torch" if path == TORCH_MODEL else "jax"
    bad = subprocess.run([sys.executable, "-m", "gradlab.cli", "check",
                          str(variant(tmp_path, kind, bug=True))],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode != 0 and "mistake" in bad.stdout
    assert "Traceback" not in bad.stderr


def test_sweep_runs_torch_and_jax_model_files(tmp_path):
    cfg = normalise({
        "models": [{"name": "torch-ok", "kind": "file", "path": str(TORCH_MODEL)},
                   {"name": "jax-bug", "kind": "file",
                    "path": str(variant(tmp_path, "jax", bug=True))}],
        "variants": ["correct"], "seeds": [0], "methods": ["central"], "epsilons": [1e-6],
        "dtypes": ["float64"], "mutations": "none",
    })
    cells = run_group(cfg, "float64", 0, "auto")["cells"]
    rows = list(zip(cells["model"], cells["block"], cells["status"], cells["flagged"],
                    strict=True))
    assert {r[2] for r in rows} == {"done"}
    assert {(m, b) for m, b, _, f in rows if f} == {("jax-bug", "W1"), ("jax-bug", "W2")}


def test_mixed_numpy_and_torch_parameters_are_one_clear_error(tmp_path):
    path = tmp_path / "mixed.py"
    path.write_text(OLD_STYLE.replace('"v": torch.randn(3, generator=g, dtype=torch.float64)',
                                      '"v": __import__("numpy").ones(3)'))
    with pytest.raises(ModelError, match="parameter 'v' is ndarray, the others are torch arrays"):
        byo_problem(path)
