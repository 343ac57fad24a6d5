"""gradlab.sweep and the sweep commands, without Snakemake: grid, groups, failures, tables."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gradlab.atomic import atomic_write
from gradlab.config import normalise
from gradlab.errors import GradlabError
from gradlab.sweep import (
    CELL_COLUMNS,
    TIMING_COLUMNS,
    cells_of_group,
    check_params,
    count_cells,
    group_keys,
    group_path,
    read_group,
    run_group,
    write_group,
)
from gradlab.sweep_cli import parse_group_args
from gradlab.tables import aggregate

ROOT = Path(__file__).resolve().parents[1]

RAISES = (Path(__file__).resolve().parent / "models" / "raises.py").read_text()
NAN_COST = """import numpy as np
def init(seed):
    return {"w": -np.ones(2)}, None, None
def cost(p, X, Y):
    return float(np.sum(np.log(p["w"])))
def gradients(p, X, Y):
    return {"dw": 1 / p["w"]}
"""
BAD_INIT = """def init(seed):
    return 42
def cost(p, X, Y):
    return 0.0
def gradients(p, X, Y):
    return {}
"""


def tiny(tmp_path: Path, **extra) -> dict:
    (tmp_path / "raises.py").write_text(RAISES)
    (tmp_path / "nan_cost.py").write_text(NAN_COST)
    (tmp_path / "bad_init.py").write_text(BAD_INIT)
    raw = {
        "models": [
            {"kind": "seed-net"},
            {"name": "mlp-small", "kind": "mlp", "dims": [4, 5, 3, 1], "examples": 3},
            {"name": "raises", "kind": "file", "path": str(tmp_path / "raises.py")},
            {"name": "nan", "kind": "file", "path": str(tmp_path / "nan_cost.py")},
            {"name": "bad-init", "kind": "file", "path": str(tmp_path / "bad_init.py")},
        ],
        "variants": ["correct", "seed-bugs"],
        "seeds": [0, 1],
        "methods": ["central", "forward"],
        "epsilons": [1e-7, 1e-3],
        "mutations": "none",  # the mutations have their own tests (tests/test_mutations.py)
    } | extra
    return normalise(raw)


def run_all(cfg: dict, out: Path, order=None) -> list[Path]:
    keys = group_keys(cfg)
    if order is not None:
        keys = order(keys)
    files = []
    for dtype, seed in keys:
        payload = run_group(cfg, dtype, seed)
        payload |= {"dtype": dtype, "seed": seed, "started": 1.0}
        files.append(write_group(out / group_path(dtype, seed), payload))
    return files


def test_grid_counts_and_groups(tmp_path):
    cfg = tiny(tmp_path)
    assert group_keys(cfg) == [("float64", 0), ("float64", 1)]
    per_step = cells_of_group(cfg, "float64")
    # networks x variants x methods + files x correct x methods
    assert len(per_step) == 2 * 2 * 2 + 3 * 1 * 2
    assert count_cells(cfg) == 2 * 2 * len(per_step)  # seeds x steps
    payload = run_group(cfg, "float64", 1)
    assert payload["epsilons"] == ["1e-03", "1e-07"]  # the config, normalised (sorted)
    assert len(payload["timing"]["seconds"]) == 2 * len(per_step) == payload["computed"]
    f32 = normalise({"models": [{"kind": "seed-net"}], "dtypes": ["float32", "float64"],
                     "seeds": [0], "epsilons": [1e-3]})
    assert [k[0] for k in group_keys(f32)] == ["float32", "float64"]


def test_default_grid_size(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = normalise({})
    assert len(group_keys(cfg)) == 10
    # 12 steps x 4 methods x (10 seeds x (18 + 18 catalogue variants + linear1d + my_model)
    # + 3 mutated seeds x 4 models x (reference + scale, element at 4 sizes + sign))
    assert count_cells(cfg) == 12 * 4 * (10 * (18 + 18 + 1 + 1) + 3 * 4 * (1 + 2 * 4 + 1))


def test_run_group_records_failures_and_keeps_going(tmp_path):
    cfg = tiny(tmp_path)
    lines: list[str] = []
    payload = run_group(cfg, "float64", 0, 1e-7, log=lines.append)
    cells = pd.DataFrame(payload["cells"])
    assert set(cells.columns) == set(CELL_COLUMNS)
    assert set(payload["timing"]) == set(TIMING_COLUMNS)
    raises = cells[cells["model"] == "raises"]
    assert (raises["status"] == "failed").all() and (raises["block_verdict"] == "failed").all()
    assert raises["error"].str.contains("ZeroDivisionError: division by zero in my layer",
                                        regex=False).all()
    assert raises["error"].str.contains("raises.py: cost()", regex=False).all()
    assert list(raises["block"].unique()) == ["w"]
    bad = cells[cells["model"] == "bad-init"]
    assert (bad["status"] == "failed").all() and list(bad["block"]) == ["", ""]
    assert bad["error"].str.contains("init() must return", regex=False).all()
    nan = cells[cells["model"] == "nan"]
    assert (nan["status"] == "done").all()
    assert (nan["block_verdict"] == "non-finite").all()
    assert (nan["cell_verdict"] == "inconclusive").all()
    assert nan["diagnosis"].str.len().gt(0).all()
    assert len(lines) == 4, lines
    assert all(line.startswith("failed: ") for line in lines)
    good = cells[cells["model"].isin(["seed-net", "mlp-small"])]
    assert (good["status"] == "done").all()


def test_seed_bugs_found_in_w2_and_b1_and_correct_is_clean(tmp_path):
    cfg = tiny(tmp_path)
    cells = pd.DataFrame(run_group(cfg, "float64", 0, 1e-7)["cells"])
    buggy = cells[(cells["model"] == "seed-net") & (cells["variant"] == "seed-bugs")
                  & (cells["method"] == "central")]
    assert set(buggy.loc[buggy["flagged"], "block"]) == {"W2", "b1"}
    assert set(buggy.loc[buggy["in_truth"], "block"]) == {"W2", "b1"}
    assert (buggy["expected"] == "bug").all() and (buggy["cell_verdict"] == "bug").all()
    right = cells[(cells["variant"] == "correct") & cells["model"].isin(["seed-net", "mlp-small"])]
    assert not right["flagged"].any()
    assert (right["expected"] == "ok").all()


def test_aggregate_tables_types_and_determinism(tmp_path):
    cfg = tiny(tmp_path)
    files = run_all(cfg, tmp_path / "a")
    run = aggregate(files, cfg, tmp_path / "a" / "tables", state=tmp_path / "a" / "state.json")
    again = aggregate(list(reversed(files)), cfg, tmp_path / "b")
    shuffled = run_all(cfg, tmp_path / "c", order=lambda k: random.Random(3).sample(k, len(k)))
    aggregate(shuffled, cfg, tmp_path / "c" / "tables")
    for name in ("cells", "detection", "localisation", "best_eps"):
        first = (tmp_path / "a" / "tables" / f"{name}.parquet").read_bytes()
        assert first == (tmp_path / "b" / f"{name}.parquet").read_bytes(), name
        assert first == (tmp_path / "c" / "tables" / f"{name}.parquet").read_bytes(), name
    cells = pd.read_parquet(tmp_path / "b" / "cells.parquet")
    assert list(cells.columns) == list(CELL_COLUMNS)
    assert "seconds" not in cells.columns
    assert cells["seed"].dtype == "int64" and cells["block_size"].dtype == "int64"
    assert cells["flagged"].dtype == bool and cells["eps"].dtype == "float64"
    keys = ["model", "dtype", "variant", "seed", "method", "eps", "block"]
    assert not cells.duplicated(keys).any()
    assert cells.equals(cells.sort_values(keys).reset_index(drop=True))
    timing = pd.read_parquet(tmp_path / "b" / "timing.parquet")
    assert list(timing.columns) == list(TIMING_COLUMNS)
    assert len(timing) == count_cells(cfg) == run["cells"]["planned"]
    assert run["cells"]["failed"] == 4 * 2 * 2  # raises + bad-init, 2 methods, 4 groups
    assert run["cells"]["computed"] == count_cells(cfg) and run["cells"]["reused"] == 0
    again = aggregate(files, cfg, tmp_path / "a" / "tables", state=tmp_path / "a" / "state.json")
    assert again["cells"]["computed"] == 0 and again["cells"]["reused"] == count_cells(cfg)


def test_summaries(tmp_path):
    cfg = tiny(tmp_path)
    files = run_all(cfg, tmp_path)
    aggregate(files, cfg, tmp_path / "t")
    det = pd.read_parquet(tmp_path / "t" / "detection.parquet")
    assert list(det.columns) == ["model", "dtype", "variant", "method", "eps", "eps_label",
                                 "n_seeds", "detection_rate", "false_alarm_rate", "failed"]
    row = det[(det["model"] == "seed-net") & (det["variant"] == "seed-bugs")
              & (det["method"] == "central") & (det["eps_label"] == "1e-07")].iloc[0]
    assert row["detection_rate"] == 1.0 and math.isnan(row["false_alarm_rate"])
    assert row["n_seeds"] == 2 and row["failed"] == 0
    ok = det[(det["variant"] == "correct") & det["model"].isin(["seed-net", "mlp-small"])]
    assert (ok["false_alarm_rate"] == 0).all() and ok["detection_rate"].isna().all()
    assert (det.loc[det["model"] == "raises", "failed"] == 2).all()
    loc = pd.read_parquet(tmp_path / "t" / "localisation.parquet")
    hit = loc[(loc["model"] == "seed-net") & (loc["variant"] == "seed-bugs")]
    assert (hit["precision"] == 1).all() and (hit["recall"] == 1).all()
    best = pd.read_parquet(tmp_path / "t" / "best_eps.parquet")
    assert list(best.columns) == ["model", "dtype", "method", "eps", "eps_label",
                                  "detection_rate", "false_alarm_rate"]
    assert not best.duplicated(["model", "dtype", "method"]).any()
    # ties (both steps catch everything) go to the step with the smallest median difference
    # on correct code: recomputed here from the cells table
    cells = pd.read_parquet(tmp_path / "t" / "cells.parquet")
    correct = cells[(cells["model"] == "seed-net") & (cells["variant"] == "correct")]
    median = correct.drop_duplicates(["method", "eps", "seed"]).groupby(
        ["method", "eps"])["cell_difference"].median()
    for method in ("central", "forward"):
        want = median[method].idxmin()
        got = best.loc[(best["model"] == "seed-net") & (best["method"] == method), "eps"]
        assert got.tolist() == [want], method


def test_aggregate_refuses_missing_or_foreign_groups(tmp_path):
    cfg = tiny(tmp_path)
    files = run_all(cfg, tmp_path)
    with pytest.raises(GradlabError, match="missing"):
        aggregate(files[:-1], cfg, tmp_path / "t")
    other = normalise(cfg | {"seeds": [0]}, load_models=False)
    with pytest.raises(GradlabError, match="not part of the config's grid"):
        aggregate(files, other, tmp_path / "t")
    files[0].write_text('{"cells": ')
    with pytest.raises(GradlabError, match="cannot be read"):
        read_group(files[0])
    assert not (tmp_path / "t").exists()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")

    def boom(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(GradlabError, match="cannot write .*x.json: No space left"):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_unwritable_path_is_a_clear_error(tmp_path):
    # a file where a directory should be: fails even for root (CI runs as root, where a
    # read-only directory would not stop the write)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(GradlabError, match="cannot write"):
        write_group(blocker / "sub" / "g.json", {"cells": {}})


@pytest.mark.parametrize("args, fragment", [
    (("float16", "0", "1e-07"), "--dtype 'float16'"),
    (("float64", "-1", "1e-07"), "--seed '-1'"),
    (("float64", "x", "1e-07"), "--seed 'x'"),
    (("float64", "0", "abc"), "--eps 'abc'"),
    (("float64", "0", "-1e-07"), "--eps '-1e-07'"),
    (("float64", "0", "1e-07,,auto"), "--eps '1e-07,,auto'"),
])
def test_group_arguments_are_validated(args, fragment):
    with pytest.raises(GradlabError, match="^" + fragment.replace("(", r"\(")):
        parse_group_args(*args)
    assert parse_group_args("float64", "3", "auto") == ("float64", 3, ["auto"])
    assert parse_group_args("float64", "3", "1e-07,auto") == ("float64", 3, [1e-07, "auto"])
    assert parse_group_args("float64", "3") == ("float64", 3, None)


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "gradlab.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_cli_run_and_aggregate(tmp_path):
    cfg = tiny(tmp_path, seeds=[0], epsilons=[1e-7])
    grid = check_params(cfg)
    out = tmp_path / "g.json"
    res = cli("sweep-run", "--config-json", grid, "--dtype", "float64", "--seed", "0",
              "--eps", "1e-07", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "failed: raises correct seed 0 central eps 1e-07" in res.stderr
    assert "(14 computed, 0 reused, 4 failed)" in res.stdout
    assert read_group(out)["epsilons"] == ["1e-07"]
    res = cli("sweep-aggregate", "--config-json", json.dumps(cfg), "--out-dir",
              str(tmp_path / "t"), str(out))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "t" / "cells.parquet").is_file()
    assert json.loads((tmp_path / "t" / "run.json").read_text())["cells"]["failed"] == 4


@pytest.mark.parametrize("args, fragment", [
    (["sweep-run", "--config-json", "{", "--dtype", "float64", "--seed", "0", "--eps",
      "1e-07", "--out", "x.json"], "--config-json is not JSON"),
    (["sweep-run", "--config-json", '{"seeds": []}', "--dtype", "float64", "--seed", "0",
      "--eps", "1e-07", "--out", "x.json"], "config key 'seeds': the list is empty"),
    (["sweep-aggregate", "--config-json", "{}", "--out-dir", "t", "nope.json"],
     "group file nope.json cannot be read"),
    (["report", "--tables", "nowhere", "--out", "r.html", "--title", "t"],
     "--tables nowhere: no cells.parquet there"),
])
def test_cli_errors_are_one_line(args, fragment, tmp_path):
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and fragment in res.stderr, res.stderr
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "t").exists()


def test_help_documents_the_sweep_commands():
    res = cli("--help")
    for name in ("sweep-config", "sweep-run", "sweep-aggregate", "report"):
        assert name in res.stdout
