"""A misbehaving model file never takes gradlab down: it runs in a worker process with limits.

Model files in ``tests/models/`` hang, call ``os._exit``, ``sys.exit``, kill themselves with
SIGKILL, segfault, allocate 64 GB, or print megabytes. Each goes through ``gradlab check`` (exit
2 with the one-line reason, well within the limit plus a few seconds) and through a real
Snakemake sweep next to well-behaved models (Snakemake exits 0, their cells fail with the
reason, and every other cell is identical to an in-process sweep without them).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_faults import visible_text
from test_workflow import make_copy, snake

from gradlab import isolate
from gradlab import runner as runner_mod
from gradlab.check import check_problem
from gradlab.config import normalise
from gradlab.errors import ModelError
from gradlab.fast import byo as fast_byo
from gradlab.isolate import Limits, WorkerDied
from gradlab.spec import ModelSpec, build_problem
from gradlab.sweep import run_group

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(__file__).resolve().parent / "models"
TIMEOUT = 3
MEMORY_MB = 300
# model -> the reason its check fails with (after "<path>: ")
REASONS = {
    "hang": f"cost() did not return within {TIMEOUT} s",
    "os_exit": "os._exit(7) in cost()",
    "sys_exit": "cost() raised SystemExit: giving up",
    "kill9": "killed by signal 9 (SIGKILL: kill -9 or the out-of-memory killer) in cost()",
    "segfault": "killed by signal 11 (SIGSEGV: segmentation fault) in cost()",
    "memory_hog": f"exceeded {MEMORY_MB} MB in cost()",
}
LIMITS = ("--timeout", str(TIMEOUT), "--memory-mb", str(MEMORY_MB))


def gradlab(*args: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "gradlab.cli", *args], capture_output=True,
                         text=True, cwd=cwd, timeout=120)
    return res, time.perf_counter() - started


def in_process(path: Path, **options) -> dict:
    """The check of a model file in this process, the independent reference."""
    problem = build_problem(ModelSpec(str(path)))
    return check_problem(problem, **options).to_dict()


def without_timing(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in ("seconds", "model", "variant")}


# ----------------------------------------------------------------------------- gradlab check
@pytest.mark.parametrize("name", sorted(REASONS))
def test_check_of_a_misbehaving_model_exits_2_with_the_reason(name):
    path = MODELS / f"{name}.py"
    res, seconds = gradlab("check", str(path), *LIMITS)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert res.stderr == f"gradlab: error: {path}: {REASONS[name]}\n"
    assert res.stdout == ""
    assert seconds < TIMEOUT + 20  # stopped at the limit, not hung (generous: shared CPUs)


def test_debug_shows_the_traceback_from_inside_the_worker():
    res, _ = gradlab("--debug", "check", str(MODELS / "sys_exit.py"))
    assert res.returncode != 0
    # the model's own frame, from the worker process (not just the parent's re-raise)
    assert f'File "{MODELS / "sys_exit.py"}", line' in res.stderr, res.stderr
    assert "SystemExit: giving up" in res.stderr


def test_chatty_model_does_not_touch_gradlab_output():
    path = MODELS / "chatty.py"
    res, _ = gradlab("check", str(path), "--json", "--method", "central", "--eps", "1e-6")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    data = json.loads(res.stdout)  # one JSON object: nothing the model printed got in
    import contextlib
    import io

    sink = io.StringIO()  # the reference check, in-process, with its output caught
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        expected = in_process(path, method="central", eps=1e-6)
    assert len(sink.getvalue()) > 2_000_000, "the model really prints megabytes"
    assert without_timing(data) == json.loads(json.dumps(without_timing(expected),
                                                         default=float))


def test_debug_echoes_the_model_output_to_stderr():
    res, _ = gradlab("--debug", "check", str(MODELS / "chatty.py"), "--json", "--eps", "1e-6")
    assert res.returncode == 0
    json.loads(res.stdout)
    assert res.stderr.count("debug yyyy") == res.stderr.count("cost at [") > 10


@pytest.mark.parametrize("where, body, reason", [
    ("init", "    os._exit(5)\n", "os._exit(5) in init()"),
    ("gradients", "    ctypes.string_at(0)\n",
     "killed by signal 11 (SIGSEGV: segmentation fault) in gradients()"),
    ("import", "", "os._exit(4) during import"),
    ("cost_batch", "    while True:\n        time.sleep(0.05)\n",
     "cost_batch() did not return within 3 s"),
])
def test_the_reason_names_the_function_that_was_running(tmp_path, where, body, reason):
    funcs = {
        "init": "def init(seed):\n    return {'w': np.ones(3)}, None, None\n",
        "cost": "def cost(p, X, Y):\n    return float(np.sum(p['w'] ** 2))\n",
        "gradients": "def gradients(p, X, Y):\n    return {'dw': 2 * p['w']}\n",
    }
    head = "import ctypes, os, time\nimport numpy as np\n"
    if where == "import":
        head += "os._exit(4)\n"
    elif where == "cost_batch":
        funcs["cost_batch"] = "def cost_batch(ps, X, Y):\n" + body
    else:
        funcs[where] = funcs[where].split("\n")[0] + "\n" + body
    path = tmp_path / f"{where}_fails.py"
    path.write_text(head + "\n".join(funcs.values()))
    res, _ = gradlab("check", str(path), *LIMITS)
    assert res.returncode == 2, res.stdout
    assert res.stderr == f"gradlab: error: {path}: {reason}\n"


def test_a_slow_check_is_not_blamed_on_one_call(tmp_path):
    path = tmp_path / "slow.py"
    path.write_text(textwrap.dedent("""\
        import time
        import numpy as np
        def init(seed):
            return {"w": np.ones(400)}, None, None
        def cost(p, X, Y):
            time.sleep(0.01)
            return float(np.sum(p["w"] ** 2))
        def gradients(p, X, Y):
            return {"dw": 2 * p["w"]}
        """))
    res, _ = gradlab("check", str(path), "--engine", "loop", "--timeout", "1")
    assert res.returncode == 2
    assert res.stderr == (f"gradlab: error: {path}: the check did not finish within 1 s (it was "
                          "in cost(), called many times: a slow model needs a larger time "
                          "limit)\n")


# ----------------------------------------------------------------------------- the worker
def test_parallel_loop_works_inside_the_worker_and_dies_with_it(tmp_path, monkeypatch):
    if fast_byo._usable_cpus() < 2:
        pytest.skip("needs two CPUs for the parallel loop")
    log = tmp_path / "pids"
    path = tmp_path / "logs_pids.py"
    path.write_text(textwrap.dedent(f"""\
        import os, time
        import numpy as np
        HANG = os.environ.get("GRADLAB_TEST_HANG") == "1"
        def init(seed):
            return {{"w": np.linspace(-1, 1, 64)}}, None, None
        def cost(p, X, Y):
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{os.getpid()}}\\n")
            if HANG and os.getpid() != INIT_PID:
                time.sleep(1000)
            return float(np.sum(np.sin(p["w"])))
        def gradients(p, X, Y):
            return {{"dw": np.cos(p["w"])}}
        INIT_PID = os.getpid()
        """))
    spec = ModelSpec(str(path))
    expected = in_process(path, method="central", eps=1e-6)  # the plain loop, in-process
    log.unlink()
    monkeypatch.setattr(fast_byo, "PARALLEL_MIN_SECONDS", 0.0)  # the fork inherits it
    with runner_mod.open_model(spec, Limits(60)) as run:
        assert isinstance(run, runner_mod.Isolated)
        run.build()
        result, _ = run.check(method="central", eps=1e-6)
    assert without_timing(result.to_dict()) == without_timing(expected)
    pids = set(log.read_text().split())
    assert len(pids) >= 3, "the worker and at least two pool processes evaluated the cost"
    # a cost that hangs in the pool processes: the time limit kills them all
    monkeypatch.setenv("GRADLAB_TEST_HANG", "1")
    log.unlink()
    with runner_mod.open_model(spec, Limits(2)) as run:
        run.build()
        group = run.worker.pid
        with pytest.raises(WorkerDied, match="did not"):
            run.check(method="central", eps=1e-6)
        with pytest.raises(WorkerDied):  # the same reason at once, no second wait
            run.check(method="forward", eps=1e-6)
    pids = [int(p) for p in set(log.read_text().split())]
    assert len(pids) >= 3
    assert gone(lambda: os.killpg(group, 0)), "a process of the worker's group lives on"
    for pid in pids:
        assert gone(lambda pid=pid: os.kill(pid, 0)), pid


def gone(probe, wait: float = 10.0) -> bool:
    """Whether ``probe`` raises ProcessLookupError within ``wait`` s (killed processes are
    reaped by init a moment later)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            probe()
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_an_ordinary_exception_keeps_the_worker(tmp_path):
    with runner_mod.open_model(ModelSpec(str(MODELS / "sys_exit.py")), Limits(30)) as run:
        run.build()
        pid = run.worker.pid
        for method in ("central", "forward"):
            with pytest.raises(ModelError, match="SystemExit: giving up"):
                run.check(method=method)
        assert run.worker.pid == pid and not run.worker.dead


# ----------------------------------------------------------------------------- the sweep
GOOD = [{"kind": "seed-net"}, {"name": "my_model", "kind": "file",
                               "path": "examples/my_model.py"},
        {"name": "chatty", "kind": "file", "path": "chatty.py"}]
SWEEP = {"variants": ["correct", "seed-bugs"], "seeds": [0], "methods": ["central", "forward"],
         "epsilons": [1.0e-7], "dtypes": ["float64"], "mutations": "none",
         "limits": {"seconds_per_check": TIMEOUT, "memory_mb": MEMORY_MB},
         "report": {"title": "misbehaving models"}}
KEYS = ["model", "variant", "method", "block"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep through Snakemake with every misbehaving model next to good ones."""
    wf = tmp_path_factory.mktemp("iso")
    env = make_copy(wf)
    for name in [*REASONS, "chatty"]:
        (wf / f"{name}.py").write_text((MODELS / f"{name}.py").read_text())
    bad = [{"name": n, "kind": "file", "path": f"{n}.py"} for n in REASONS]
    (wf / "iso.yaml").write_text(yaml.safe_dump(SWEEP | {"models": GOOD + bad}))
    out = snake(wf, env, "--cores", "2", config="iso.yaml", check=False)
    return wf, out


@pytest.mark.slow
def test_sweep_completes_and_fails_only_the_misbehaving_cells(sweep):
    wf, out = sweep
    assert out.returncode == 0, out.stderr[-3000:]
    tables = wf / "results" / "tables"
    cells = pd.read_parquet(tables / "cells.parquet")
    timing = pd.read_parquet(tables / "timing.parquet")
    for name, reason in REASONS.items():
        rows = cells[cells["model"] == name]
        assert sorted(rows["method"]) == ["central", "forward"]  # one block "w" each
        assert (rows["status"] == "failed").all()
        assert set(rows["error"]) == {f"{name}.py: {reason}"}, set(rows["error"])
    # hung once: the second cell is failed without waiting for the limit again
    hang = timing[timing["model"] == "hang"].set_index("method")["seconds"]
    assert max(hang) >= TIMEOUT and min(hang) < TIMEOUT
    run = json.loads((tables / "run.json").read_text())
    assert run["cells"]["failed"] == 2 * len(REASONS)
    text = visible_text((wf / "reports" / "gradlab-report.html").read_text())
    for name, reason in REASONS.items():
        assert f"{name}.py: {reason}" in text, reason
    log = wf / "results" / "logs" / "check_group" / "float64" / "seed0.log"
    assert log.read_text().count("failed: ") == 2 * len(REASONS)


@pytest.mark.slow
def test_other_cells_are_identical_to_an_in_process_sweep_without_them(sweep, monkeypatch):
    wf, out = sweep
    assert out.returncode == 0
    cells = pd.read_parquet(wf / "results" / "tables" / "cells.parquet")
    monkeypatch.chdir(wf)
    monkeypatch.setattr(isolate, "can_isolate", lambda: False)  # the old in-process way
    cfg = normalise(SWEEP | {"models": GOOD}, load_models=False)
    alone = pd.DataFrame(run_group(cfg, "float64", 0, 1e-7)["cells"])
    good = cells[cells["model"].isin(alone["model"])]
    assert len(good) == len(alone) > 0
    assert (good["status"] == "done").all()
    left = good.sort_values(KEYS).reset_index(drop=True)
    right = alone.sort_values(KEYS).reset_index(drop=True)[left.columns]
    for col in left.columns:
        a, b = left[col].tolist(), right[col].tolist()
        same = [x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
                for x, y in zip(a, b, strict=True)]
        assert all(same), (col, a, b)
