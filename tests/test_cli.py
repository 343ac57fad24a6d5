"""The command line as a user runs it: output, JSON, exit codes, error messages."""

from __future__ import annotations

import json

import numpy as np


def test_linear1d_json_reproduces_seed(cli):
    out = cli("check", "linear1d", "--method", "central", "--eps", "1e-7", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["difference"] == 2.919335883291695e-10
    assert {"verdict", "difference", "method", "eps", "threshold", "blocks"} <= set(data)
    assert data["blocks"][0]["name"] == "theta"


def test_seed_bugs_json(cli):
    out = cli("check", "seed-net", "--variant", "seed-bugs", "--method", "central",
              "--eps", "1e-7", "--json")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert np.isclose(data["difference"], 0.2850931567761623, rtol=1e-8)
    failing = {b["name"]: b for b in data["blocks"] if b["verdict"] == "bug"}
    assert set(failing) == {"W2", "b1"}
    assert "2x too large" in failing["W2"]["diagnosis"]
    assert "4x too large" in failing["b1"]["diagnosis"]
    for b in data["blocks"]:
        assert {"name", "difference", "verdict", "diagnosis"} <= set(b)


def test_seed_fixed_text_output(cli):
    out = cli("check", "seed-net", "--method", "central", "--eps", "1e-7")
    assert out.returncode == 0
    first = out.stdout.splitlines()[0]
    assert first.startswith("Your backward propagation works perfectly fine! difference = ")
    assert np.isclose(float(first.rsplit("= ", 1)[1]), 1.1890913024229996e-07, rtol=1e-6)
    assert "W1" in out.stdout and "threshold" in out.stdout


def test_default_settings_ok_and_bug_exit_codes(cli):
    assert cli("check", "seed-net").returncode == 0
    out = cli("check", "mlp", "--dims", "5,4,1", "--examples", "6", "--variant", "sign-flip")
    assert out.returncode == 1
    assert "wrong sign" in out.stdout


def test_bring_your_own_model(cli, models_dir):
    ok = cli("check", str(models_dir / "softmax_ok.py"), "--json")
    assert ok.returncode == 0, ok.stderr
    bad = cli("check", str(models_dir / "softmax_bug.py"))
    assert bad.returncode == 1
    assert "W[1, 0]" in bad.stdout


def test_inconclusive_exit_code(cli, models_dir):
    out = cli("check", str(models_dir / "nan_cost.py"), "--json")
    assert out.returncode == 3
    assert json.loads(out.stdout)["verdict"] == "inconclusive"


def test_bad_input_is_one_line_exit_2(cli, models_dir, tmp_path):
    cases = [
        (["check", "resnet"], "unknown model 'resnet'"),
        (["check", "seed-net", "--variant", "nope"], "unknown variant 'nope'"),
        (["check", "seed-net", "--eps", "0"], "positive"),
        (["check", "seed-net", "--eps", "small"], "not a number"),
        (["check", "seed-net", "--method", "backward"], "invalid choice"),
        (["check", "mlp", "--dims", "4,0,1"], "impossible"),
        (["check", "mlp", "--dims", "4,5,2"], "last layer must have size 1"),
        (["check", "mlp", "--keep-prob", "1.5"], "keep_prob"),
        (["check", str(tmp_path / "missing.py")], "does not exist"),
        (["check", str(models_dir / "no_gradients.py")], "does not define gradients()"),
        (["check", str(models_dir / "raises.py")], "cost() raised ZeroDivisionError"),
        (["check", "linear1d", "--variant", "seed-bugs"], "built-in networks"),
    ]
    for args, text in cases:
        out = cli(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert text in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr, args


def test_debug_shows_traceback(cli, models_dir):
    out = cli("--debug", "check", str(models_dir / "raises.py"))
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_help_and_variants(cli):
    out = cli("check", "--help")
    assert out.returncode == 0 and "--engine" in out.stdout and "Exit codes" in out.stdout
    out = cli("variants", "--json")
    names = [v["name"] for v in json.loads(out.stdout)]
    assert "seed-bugs" in names and len(names) >= 13
