"""The sweep: config -> groups of cells -> rows -> tables and summaries.

A *cell* is one model x dtype x variant x seed x method x eps check. Cells are run in *groups*,
one group per dtype x seed x eps (every model, variant and method inside), so that adding a
seed or a step to the config adds new groups and leaves the finished ones alone. A group is
written as one JSON file of columns (:func:`run_group`, :func:`write_group`); the aggregation
(:func:`aggregate`) turns all groups into the Parquet tables of ``docs/tables.md``.

A cell whose model raises or misbehaves is recorded with ``status == "failed"`` and the reason;
every other cell still runs. All files are written atomically (temp file + ``os.replace``) and
every table is sorted by its key columns, so the bytes do not depend on job order.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import dumps, eps_label, normalise
from .errors import GradlabError, one_line

__all__ = [
    "CELL_COLUMNS", "TIMING_COLUMNS", "CELL_KEYS", "GROUP_PATTERN", "group_keys", "group_path",
    "check_params", "worker_limits", "cells_of_group", "count_cells", "run_group", "write_group",
    "read_group", "aggregate", "summarise", "atomic_write", "ensure_writable",
]

GROUP_PATTERN = "results/cells/{dtype}/seed{seed}/eps{eps}.json"
CELL_KEYS = ["model", "dtype", "variant", "seed", "method", "eps"]
CELL_COLUMNS = {  # name -> pandas dtype, in table order (docs/tables.md)
    "model": "string", "model_kind": "string", "dtype": "string", "variant": "string",
    "seed": "int64", "method": "string", "eps": "float64", "eps_used": "float64",
    "block": "string", "block_size": "int64", "difference": "float64", "threshold": "float64",
    "block_verdict": "string", "diagnosis": "string", "flagged": "bool", "in_truth": "bool",
    "truth_change": "float64", "cell_verdict": "string", "cell_difference": "float64",
    "expected": "string", "status": "string", "error": "string",
}
TIMING_COLUMNS = {k: CELL_COLUMNS[k] for k in CELL_KEYS} | {"seconds": "float64"}
NETWORKS = ("seed-net", "mlp")


# ----------------------------------------------------------------------------- the grid
def check_params(cfg: Mapping[str, Any]) -> str:
    """The part of the config a check group uses, as stable JSON (a Snakemake param)."""
    return dumps({k: cfg[k] for k in ("limits", "methods", "models", "variants", "verdict")})


def group_keys(cfg: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """``(dtype, seed, eps_label)`` of every group, sorted."""
    return sorted((d, s, eps_label(e)) for d in cfg["dtypes"] for s in cfg["seeds"]
                  for e in cfg["epsilons"])


def group_path(dtype: str, seed: int, label: str) -> str:
    """Where a group's JSON file goes, relative to the workflow directory."""
    return GROUP_PATTERN.format(dtype=dtype, seed=seed, eps=label)


def _model_cases(grid: Mapping[str, Any], dtype: str) -> list[tuple[dict, str]]:
    """(model, variant) pairs a group of this dtype checks: networks get every variant;
    linear1d and files only ``correct`` (they have their own backward); files only in float64."""
    cases = []
    for model in grid["models"]:
        if model["kind"] == "file" and dtype != "float64":
            continue
        variants = grid["variants"] if model["kind"] in NETWORKS else ["correct"]
        cases += [(model, v) for v in variants]
    return cases


def cells_of_group(grid: Mapping[str, Any], dtype: str) -> list[tuple[str, str, str]]:
    """(model name, variant, method) of every cell in a group of this dtype."""
    return [(m["name"], v, meth) for m, v in _model_cases(grid, dtype) for meth in grid["methods"]]


def count_cells(cfg: Mapping[str, Any]) -> int:
    """Number of cells the config plans."""
    per_dtype = {d: len(cells_of_group(cfg, d)) for d in cfg["dtypes"]}
    return sum(per_dtype[d] for d, _, _ in group_keys(cfg))


# ----------------------------------------------------------------------------- running
def worker_limits(cfg: Mapping[str, Any]):
    """The :class:`~gradlab.isolate.Limits` of a normalised config's ``limits`` section."""
    from .isolate import DEFAULT_SECONDS, Limits

    limits = cfg.get("limits") or {}
    return Limits(limits.get("seconds_per_check") or DEFAULT_SECONDS, limits.get("memory_mb"))


def _spec(model: Mapping[str, Any], variant: str, seed: int, dtype: str):
    from .spec import ModelSpec

    kind = model["kind"]
    name = {"file": model["path"], "linear1d": "linear1d"}.get(kind, kind)
    extra = {}
    if kind == "mlp":
        extra = {"dims": tuple(model["dims"]), "examples": model["examples"]}
    return ModelSpec(model=name, variant=variant, seed=seed, dtype=dtype,
                     lambd=model["lambda"] or 0.0, keep_prob=model["keep_prob"] or 1.0, **extra)


def _failed_rows(error: str, blocks: list[tuple[str, int]], truth: Mapping[str, float]
                 ) -> list[dict]:
    fail = {"eps_used": math.nan, "difference": math.nan, "threshold": math.nan,
            "block_verdict": "failed", "diagnosis": error, "flagged": False,
            "cell_verdict": "failed", "cell_difference": math.nan, "status": "failed",
            "error": error}
    return [fail | {"block": n, "block_size": size, "in_truth": n in truth,
                    "truth_change": float(truth.get(n, 0.0))} for n, size in blocks]


def _done_rows(result, truth: Mapping[str, float]) -> list[dict]:
    done = {"eps_used": float(result.eps), "cell_verdict": result.verdict,
            "cell_difference": float(result.difference), "status": "done", "error": ""}
    return [done | {
        "block": b.name, "block_size": int(math.prod(b.shape)),
        "difference": float(b.difference), "threshold": float(b.threshold),
        "block_verdict": b.verdict, "diagnosis": " ".join(b.diagnosis.split()),
        "flagged": b.verdict in ("bug", "shape-mismatch"), "in_truth": b.name in truth,
        "truth_change": float(truth.get(b.name, 0.0)),
    } for b in result.blocks]


def run_group(grid: Mapping[str, Any], dtype: str, seed: int, eps: float | str,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every cell of one group.

    Args:
        grid: a normalised config (only ``models, variants, methods, verdict`` are used).
        dtype, seed, eps: the group's coordinates (``eps`` may be ``"auto"``).
        log: called with one line per failed cell.

    Returns:
        ``{"cells": {column: [values]}, "timing": {column: [values]}, "check_cpu_seconds"}``:
        one cell row per parameter block (one row with block ``""`` when the model could not
        even be built), and the CPU seconds the checks took.
    """
    from .runner import open_model

    rows: dict[str, list] = {c: [] for c in CELL_COLUMNS}
    timing: dict[str, list] = {c: [] for c in TIMING_COLUMNS}
    cpu = 0.0
    threshold = grid["verdict"]["threshold"]
    eps_value = math.nan if eps == "auto" else float(eps)
    limits = worker_limits(grid)

    def add(base: dict, blocks: list[dict]) -> None:
        for block in blocks:
            for col, val in (base | block).items():
                rows[col].append(val)

    shared: dict[str, dict] = {}  # per model: the estimates its variants share
    # model files last: forking their worker makes OpenBLAS stop its thread pool in this
    # process, and restarting it would slow the built-in checks after it (~50 ms a group)
    cases = sorted(_model_cases(grid, dtype), key=lambda case: case[0]["kind"] == "file")
    for model, variant in cases:
        source = model["path"] or ""
        key = {"model": model["name"], "model_kind": model["kind"], "dtype": dtype,
               "variant": variant, "seed": int(seed)}
        # a model file runs in a worker process: its crash, exit or hang fails its own cells
        spec = _spec(model, variant, int(seed), dtype)
        with open_model(spec, limits, estimates=shared.setdefault(model["name"], {})) as runner:
            blocks, truth, build_error = [("", 0)], {}, ""
            try:
                blocks, truth = runner.build()
            except (Exception, SystemExit) as exc:  # a user's model that raises: record it
                build_error = one_line(exc, source)
            expected = "bug" if truth else "ok"
            for method in grid["methods"]:
                base = key | {"method": method, "eps": eps_value, "expected": expected}
                started, cpu_started = time.perf_counter(), time.process_time()
                result, error, used = None, build_error, 0.0
                if not build_error:
                    try:
                        result, used = runner.check(method=method, eps=eps, seed=int(seed),
                                                    threshold=threshold)
                    except (Exception, SystemExit) as exc:  # the cell fails, the group goes on
                        error = one_line(exc, source)
                seconds = time.perf_counter() - started
                cpu += max(used, time.process_time() - cpu_started)
                for col in TIMING_COLUMNS:
                    timing[col].append(seconds if col == "seconds" else base[col])
                if result is None and log:
                    log(f"failed: {model['name']} {variant} seed {seed} {method} eps "
                        f"{eps_label(eps)}: {error}")
                add(base, _done_rows(result, truth) if result is not None
                    else _failed_rows(error, blocks, truth))
    return {"cells": rows, "timing": timing, "check_cpu_seconds": cpu}


# ----------------------------------------------------------------------------- files
def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` and ``os.replace``; never leave it half-written.

    Raises:
        GradlabError: the directory cannot be created or written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise GradlabError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def ensure_writable(directory: str | Path, target: str | Path | None = None) -> Path:
    """Create ``directory`` if needed and prove a file can be created in it (then remove it).

    Called before long work, so an unwritable output fails at once and writes nothing.

    Raises:
        GradlabError: ``cannot write TARGET: reason`` (``target`` defaults to the directory).
    """
    import tempfile

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise GradlabError(f"cannot write {target or directory}: {directory} is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".gradlab-probe", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GradlabError(f"cannot write {target or directory}: {exc.strerror or exc}") \
            from None
    return directory


def write_group(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write a group's JSON atomically."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_group(path: str | Path) -> dict[str, Any]:
    """Read a group file written by :func:`write_group`.

    Raises:
        GradlabError: missing, unreadable or not a group file.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not {"cells", "timing", "dtype", "seed", "eps"} <= set(data):
            raise ValueError("missing keys")
        return data
    except (OSError, ValueError) as exc:
        raise GradlabError(f"group file {path} cannot be read ({one_line(exc)}); "
                           "delete it and rerun") from None


# ----------------------------------------------------------------------------- aggregation
def _frame(columns: Mapping[str, list], types: Mapping[str, str]):
    import pandas as pd

    df = pd.DataFrame({c: columns[c] for c in types})
    for col, kind in types.items():
        if kind == "string":  # plain object strings: pyarrow writes them as utf8
            df[col] = df[col].astype(object).astype(str)
        else:
            df[col] = df[col].astype(kind)
    return df


def _merge(groups: Mapping[str, Any], order: list[str], part: str, types: Mapping[str, str]
           ) -> dict[str, list]:
    merged: dict[str, list] = {c: [] for c in types}
    for key in order:
        for col in types:
            merged[col].extend(groups[key][part][col])
    return merged


def _sorted(df, keys: list[str]):
    return df.sort_values(keys, kind="mergesort", na_position="last").reset_index(drop=True)


def summarise(cells) -> dict[str, Any]:
    """Detection, localisation and best-eps summaries from the cells table (docs/tables.md)."""
    import numpy as np
    import pandas as pd

    labels = {e: eps_label(e) for e in cells["eps"].unique()}
    cells = cells.assign(eps_label=[labels[e] if e == e else "auto" for e in cells["eps"]])
    keys = ["model", "dtype", "variant", "method", "eps_label"]
    per_cell = cells.drop_duplicates(CELL_KEYS)
    done = per_cell["status"] == "done"
    hit = per_cell["cell_verdict"] == "bug"
    frame = per_cell.assign(
        det=np.where(done & (per_cell["expected"] == "bug"), hit, np.nan),
        fa=np.where(done & (per_cell["expected"] == "ok"), hit, np.nan),
        failed=(~done).astype("int64"),
    )
    detection = frame.groupby(keys, sort=True).agg(
        eps=("eps", "first"), n_seeds=("seed", "nunique"), detection_rate=("det", "mean"),
        false_alarm_rate=("fa", "mean"), failed=("failed", "sum"),
    ).reset_index()
    detection = detection[["model", "dtype", "variant", "method", "eps", "eps_label",
                           "n_seeds", "detection_rate", "false_alarm_rate", "failed"]]
    blocks = cells[cells["status"] == "done"].assign(
        tp=lambda d: d["flagged"] & d["in_truth"])
    loc = blocks.groupby(keys, sort=True).agg(
        eps=("eps", "first"), tp=("tp", "sum"), flagged=("flagged", "sum"),
        truth=("in_truth", "sum")).reset_index()
    loc["precision"] = np.where(loc["flagged"] > 0, loc["tp"] / loc["flagged"].where(
        loc["flagged"] > 0, 1), np.nan)
    loc["recall"] = np.where(loc["truth"] > 0, loc["tp"] / loc["truth"].where(
        loc["truth"] > 0, 1), np.nan)
    localisation = loc[["model", "dtype", "variant", "method", "eps", "eps_label", "precision",
                        "recall"]]
    means = detection.groupby(["model", "dtype", "method", "eps_label"], sort=True).agg(
        eps=("eps", "first"), detection_rate=("detection_rate", "mean"),
        false_alarm_rate=("false_alarm_rate", "mean")).reset_index()
    means["score"] = (means["detection_rate"].fillna(0) - means["false_alarm_rate"].fillna(0)
                      ).round(12)
    # ties go to the most accurate step: the smallest median difference on code with no bug
    # (the bottom of the error-vs-eps V), then to the larger step; auto last
    clean = per_cell[done & (per_cell["expected"] == "ok")]
    accuracy = clean.groupby(["model", "dtype", "method", "eps_label"], sort=True)[
        "cell_difference"].median().rename("accuracy").reset_index()
    means = means.merge(accuracy, how="left", on=["model", "dtype", "method", "eps_label"])
    means["accuracy"] = means["accuracy"].fillna(np.inf)
    means["rank_eps"] = means["eps"].fillna(-1.0)
    best = (means.sort_values(["model", "dtype", "method", "score", "accuracy", "rank_eps"],
                              ascending=[True, True, True, False, True, False],
                              kind="mergesort")
            .groupby(["model", "dtype", "method"], sort=True).head(1))
    best_eps = best[["model", "dtype", "method", "eps", "eps_label", "detection_rate",
                     "false_alarm_rate"]]
    out = {"detection": detection, "localisation": localisation, "best_eps": best_eps}
    for name, df in out.items():
        key = [k for k in ("model", "dtype", "variant", "method", "eps") if k in df.columns]
        df = _sorted(df, key)
        for col in df.columns:
            if df[col].dtype == object:
                df[col] = df[col].astype(str)
        out[name] = pd.DataFrame(df)
    return out


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("gradlab", "numpy", "pandas", "pyarrow", "snakemake"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def aggregate(files: Iterable[str | Path], cfg: Mapping[str, Any], out_dir: str | Path,
              state: str | Path | None = None) -> dict[str, Any]:
    """Turn group files into the tables of ``docs/tables.md`` under ``out_dir``.

    Args:
        files: one group file per planned group (extra or missing ones are an error).
        cfg: the normalised config (for the digest and the planned cell count).
        out_dir: the tables directory.
        state: a small JSON file remembering which groups the previous aggregation saw, so
            ``run.json`` can say which cells were computed in this run and which were reused.

    Returns:
        The ``run.json`` content.

    Raises:
        GradlabError: a group file is missing, unreadable or not part of the config's grid.
    """
    from .config import digest, source_hash

    finished = time.time()
    cfg = normalise(cfg, load_models=False)
    planned = {group_path(*k) for k in group_keys(cfg)}
    groups = {}
    for f in files:
        data = read_group(f)
        key = group_path(data["dtype"], data["seed"], data["eps"])
        if key not in planned:
            raise GradlabError(f"group file {f} (dtype {data['dtype']}, seed {data['seed']}, "
                               f"eps {data['eps']}) is not part of the config's grid")
        groups[key] = data
    missing = sorted(planned - set(groups))
    if missing:
        raise GradlabError(f"{len(missing)} group file(s) missing, first: {missing[0]}")
    out = Path(out_dir)
    ensure_writable(out)  # before any table is written: all of them or none
    if state:
        ensure_writable(Path(state).parent, state)
    order = sorted(groups)
    cells = _sorted(_frame(_merge(groups, order, "cells", CELL_COLUMNS), CELL_COLUMNS),
                    [*CELL_KEYS, "block"])
    timing = _sorted(_frame(_merge(groups, order, "timing", TIMING_COLUMNS), TIMING_COLUMNS),
                     CELL_KEYS)
    tables = {"cells": cells, "timing": timing, **summarise(cells)}
    for name, df in tables.items():
        atomic_write(out / f"{name}.parquet",
                     lambda tmp, df=df: df.to_parquet(tmp, index=False, engine="pyarrow"))

    seen = {}
    state_path = Path(state) if state else None
    if state_path and state_path.is_file():
        try:
            seen = json.loads(state_path.read_text())
        except (OSError, ValueError):
            seen = {}
    stamps = {k: groups[k].get("started", 0.0) for k in order}
    fresh = [k for k in order if seen.get(k) != stamps[k]]
    n_cells = {k: len(groups[k]["timing"]["seconds"]) for k in order}
    start = min((stamps[k] for k in fresh), default=finished)
    per_cell = cells.drop_duplicates(CELL_KEYS)
    run = {
        "config_digest": digest(cfg),
        "code_hash": source_hash("core"),
        "versions": _versions(),
        "groups": len(order),
        "cells": {
            "planned": count_cells(cfg),
            "computed": sum(n_cells[k] for k in fresh),
            "reused": sum(n_cells[k] for k in order if k not in fresh),
            "failed": int((per_cell["status"] == "failed").sum()),
            "inconclusive": int((per_cell["cell_verdict"] == "inconclusive").sum()),
            "non_finite": int(cells.loc[cells["block_verdict"] == "non-finite",
                                        CELL_KEYS].drop_duplicates().shape[0]),
        },
        "check_seconds": float(timing["seconds"].sum()),
        "check_cpu_seconds": float(sum(groups[k].get("check_cpu_seconds", 0.0) for k in order)),
        "wall_seconds": round(time.time() - start, 3),
        "config": {k: v for k, v in cfg.items() if k != "report"},
    }
    atomic_write(out / "run.json", lambda tmp: tmp.write_text(
        json.dumps(run, indent=2, sort_keys=True) + "\n", encoding="utf-8"))
    if state_path:
        atomic_write(state_path, lambda tmp: tmp.write_text(json.dumps(stamps, sort_keys=True)))
    return run
