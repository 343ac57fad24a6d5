"""The shared vocabulary (gradlab.vocab) and the one atomic write (gradlab.atomic)."""

from __future__ import annotations

import math
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from gradlab.atomic import atomic_write_bytes
from gradlab.config import normalise
from gradlab.finite_diff import METHODS
from gradlab.spec import DTYPES, ModelSpec, build_problem
from gradlab.vocab import (
    DTYPE_NAMES,
    METHOD_NAMES,
    default_method,
    eps_label,
    method_sort_key,
    model_spec,
    step_problem,
)


def test_one_spelling_of_methods_and_dtypes():
    assert tuple(METHODS) == METHOD_NAMES
    assert all(METHODS[n].name == n for n in METHOD_NAMES)
    assert tuple(sorted(DTYPES)) == DTYPE_NAMES
    assert all(np.dtype(DTYPES[n]).name == n for n in DTYPE_NAMES)
    assert normalise({}, load_models=False)["methods"] == list(METHOD_NAMES)


@pytest.mark.parametrize("value, step", [("auto", "auto"), (1e-7, 1e-7), ("1e-3", 1e-3),
                                         (" 2.5e-07 ", 2.5e-7), (3, 3.0), (np.float32(0.5), 0.5)])
def test_steps_allowed(value, step):
    got, problem = step_problem(value)
    assert problem == "" and got == step


@pytest.mark.parametrize("value, reason", [
    (0, "must be > 0"), (-1e-3, "must be > 0"), ("-1e-3", "must be > 0"),
    (math.inf, "not finite"), (math.nan, "not finite"), ("inf", "not a number"),
    ("abc", "not a number"), (True, "boolean"), (None, "not a number"), ([1e-3], "not a number"),
    ("AUTO", "not a number"),
])
def test_steps_refused_with_a_reason(value, reason):
    _, problem = step_problem(value)
    assert reason in problem


def test_eps_label_reads_back_and_auto():
    for eps in (1e-1, 1e-7, 2.5e-7, 0.1 + 0.2, np.float64(3e-5)):
        assert float(eps_label(eps)) == eps
    assert eps_label(None) == eps_label(math.nan) == eps_label("auto") == "auto"


def test_default_method_is_central_else_the_first_in_method_order():
    assert default_method(["complex-step", "central", "forward"]) == "central"
    # method order, not the alphabet (which would give complex-step)
    assert default_method(["complex-step", "five-point"]) == "five-point"
    assert default_method(["forward", "five-point"]) == "forward"
    assert sorted(["x", "complex-step", "forward"], key=method_sort_key) == \
        ["forward", "complex-step", "x"]
    with pytest.raises(ValueError):
        default_method([])


def test_model_spec_of_config_entries_builds_the_model_the_entry_describes():
    cfg = normalise({"models": [{"name": "m", "kind": "mlp", "dims": [3, 4, 1], "examples": 5,
                                 "lambda": 0.5, "keep_prob": 0.9},
                                {"name": "s", "kind": "seed-net"},
                                {"name": "l", "kind": "linear1d"}]}, load_models=False)
    entries = {m["name"]: m for m in cfg["models"]}
    spec = model_spec(entries["m"], "sign-flip", 3, "float32")
    assert spec == ModelSpec("mlp", variant="sign-flip", seed=3, dims=(3, 4, 1), examples=5,
                             lambd=0.5, keep_prob=0.9, dtype="float32")
    problem = build_problem(spec)
    assert problem.params["W1"].shape == (4, 3) and problem.X.shape == (3, 5)
    assert problem.params["W1"].dtype == np.float32
    assert model_spec(entries["s"], "correct", 0, "float64") == ModelSpec("seed-net")
    assert model_spec(entries["l"], "correct", 0, "float64").model == "linear1d"


def test_atomic_write_gives_the_default_mode_and_keeps_the_umask(tmp_path):
    """The page and figures get 0666 less the umask, and writing them leaves the umask as it
    was (checked in a child process with its own umask)."""
    code = (
        "import os, sys\n"
        "from gradlab.atomic import atomic_write_bytes\n"
        "os.umask(0o027)\n"
        "atomic_write_bytes(sys.argv[1], b'x')\n"
        "import gradlab.report.build\n"
        "print(oct(os.umask(0)))\n"
    )
    target = tmp_path / "a.html"
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "0o27"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    atomic_write_bytes(target, b"y")
    assert target.read_bytes() == b"y" and os.listdir(tmp_path) == ["a.html"]
