"""Packaging: the core runs with numpy alone, the sweep needs its extra and says so in one line.

The core commands run in a fresh interpreter in which importing pandas, pyarrow, PyYAML,
Jinja2, matplotlib or Snakemake raises ImportError (a meta-path finder installed before gradlab
is imported), so any import of them on the core's path, even a lazy one, fails the test.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
from conftest import MODELS, ROOT

from gradlab.sweep_cli import SWEEP_MODULES

BLOCKED = ("pandas", "pyarrow", "yaml", "jinja2", "matplotlib", "snakemake")

BLOCKER = f'''
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is blocked: the core must not import it")
        return None

sys.meta_path.insert(0, Block())
'''


def _run(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + body], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return _run(f"from gradlab.cli import main\nsys.exit(main({list(args)!r}))")


def test_the_blocker_blocks():
    out = _run("import pandas")
    assert out.returncode != 0 and "pandas is blocked" in out.stderr


@pytest.mark.parametrize("args, code", [
    (("check", "seed-net"), 0),
    (("check", "seed-net", "--variant", "seed-bugs", "--json"), 1),
    (("check", "examples/my_model.py"), 0),
    (("check", str(MODELS / "softmax_bug.py")), 1),
    (("variants",), 0),
])
def test_core_commands_run_without_the_sweep_extra(args, code):
    out = _cli(*args)
    assert out.returncode == code, out.stderr
    assert "blocked" not in out.stderr


def test_python_api_and_pytest_plugin_run_without_the_sweep_extra():
    out = _run('''
import numpy as np
import gradlab
import gradlab.pytest_plugin

rng = np.random.default_rng(0)
params = {"W": rng.standard_normal((3, 4))}
X, Y = rng.standard_normal((4, 5)), rng.standard_normal((3, 5))

def cost(p, X, Y):
    return 0.5 * float(np.sum((p["W"] @ X - Y) ** 2))

def gradients(p, X, Y):
    return {"dW": (p["W"] @ X - Y) @ X.T}

def wrong(p, X, Y):
    return {"dW": 2 * gradients(p, X, Y)["dW"]}

assert gradlab.check(cost, gradients, params, X, Y).verdict == "ok"
gradlab.assert_gradients(cost, gradients, params, X, Y)
try:
    gradlab.assert_gradients(cost, wrong, params, X, Y)
except AssertionError as exc:
    print("caught:", str(exc).splitlines()[0])
else:
    sys.exit("assert_gradients passed a gradient twice too large")
''')
    assert out.returncode == 0, out.stderr
    assert "caught:" in out.stdout


@pytest.mark.parametrize("args", [
    ("sweep-config", "--config", "config/config.yaml"),
    ("sweep-aggregate", "--config", "config/config.yaml", "--out-dir", "nowhere", "g.json"),
    ("report", "--tables", "nowhere", "--out", "nowhere/r.html", "--title", "t"),
])
def test_sweep_commands_without_the_extra_say_what_to_install(args):
    out = _cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"gradlab {args[0]} needs the sweep extra" in lines[0]
    assert "pip install 'gradlab[sweep]'" in lines[0]
    assert "Traceback" not in out.stderr


def test_core_dependencies_are_numpy_alone_and_the_sweep_extra_covers_the_rest():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements}

    assert names(project["dependencies"]) == {"numpy"}
    extras = project["optional-dependencies"]
    assert set(SWEEP_MODULES.values()) | {"snakemake"} == names(extras["sweep"])
    assert "gradlab[sweep]" in extras["test"]
