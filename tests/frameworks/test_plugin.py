"""The pytest plugin (installed with gradlab) and the promise that the core imports no
framework: run in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from needs import need

ROOT = Path(__file__).resolve().parents[2]

USER_TESTS = '''
import torch

class Mul(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, w):
        return x * w

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, BACKWARD_W

def test_float32_correct(gradcheck):
    x = torch.randn(3, 4, dtype=torch.float32)
    w = torch.randn(3, 4, dtype=torch.float32)
    gradcheck(Mul.apply, (x, w))
'''


def run_pytest(tmp_path: Path, backward_w: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_user.py").write_text(USER_TESTS.replace("BACKWARD_W", backward_w))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_user.py")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_gradcheck_fixture_passes_a_correct_float32_backward(tmp_path):
    need("torch")
    done = run_pytest(tmp_path, "g * x")
    assert done.returncode == 0, done.stdout + done.stderr


def test_gradcheck_fixture_names_input_element_values_and_diagnosis(tmp_path):
    need("torch")
    done = run_pytest(tmp_path, "-g * x")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "gradient check of Mul.apply failed (bug)" in out
    assert "input 'input1' [bug] element [" in out and "input 'input0'" not in out
    assert "backward " in out and " vs numerical " in out
    assert "wrong sign" in out


def test_core_and_plugin_import_no_framework():
    code = (
        "import sys, gradlab, gradlab.pytest_plugin, gradlab.cli\n"
        "from gradlab.models.byo import byo_problem\n"
        "r = gradlab.check_problem(byo_problem('examples/my_model.py'))\n"
        "assert r.verdict == 'ok'\n"
        "bad = [m for m in ('torch', 'jax', 'jaxlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr


def test_missing_framework_skips_locally_and_fails_under_ci(monkeypatch):
    import pytest

    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        need("gradlab_no_such_framework")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(ImportError):
        need("gradlab_no_such_framework")
