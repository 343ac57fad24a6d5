"""The sweep's tables: group files -> the Parquet tables of ``docs/tables.md`` and run.json.

:func:`aggregate` merges the group files written by :func:`gradlab.sweep.run_group`;
:func:`summarise` derives the catalogue's detection, localisation and best-eps summaries from
the cells table, and :mod:`gradlab.trust` the mutation summaries (the detection-limit curves,
the settings to trust for each model, and the verdict on each model file).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write, ensure_writable
from .config import normalise
from .errors import GradlabError
from .sweep import (
    CELL_COLUMNS,
    TIMING_COLUMNS,
    count_cells,
    group_keys,
    group_path,
    read_group,
)
from .vocab import CELL_KEYS, eps_label

__all__ = ["aggregate", "summarise", "TABLES"]

TABLES = ("cells", "timing", "detection", "localisation", "best_eps", "detection_limits",
          "trust", "models")


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
    """The summaries of ``docs/tables.md`` from the cells table.

    ``detection``, ``localisation``: the catalogue (built-in variants; a model file's own cells
    have no known truth and count in neither rate). ``best_eps``: per model, method and dtype
    the step that detects most and alarms least: on the catalogue for the built-in networks, on
    the mutations for models with no catalogue bug to detect (model files, linear1d).
    ``detection_limits``, ``trust``, ``models``: the mutation summaries of :mod:`gradlab.trust`.
    """
    import numpy as np
    import pandas as pd

    from . import trust as T

    labels = {e: eps_label(e) for e in cells["eps"].unique()}
    cells = cells.assign(eps_label=[labels[e] if e == e else "auto" for e in cells["eps"]])
    mutated = cells["variant"].str.startswith("mut:")
    keys = ["model", "dtype", "variant", "method", "eps_label"]
    per_cell = cells[~mutated].drop_duplicates(CELL_KEYS)
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
    blocks = cells[~mutated & (cells["status"] == "done") & (cells["expected"] != "unknown")
                   ].assign(
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
    files = set(cells.loc[cells["model_kind"] == "file", "model"])
    mut = T.known_detection(cells)
    mut_det = mut.groupby(keys, sort=True).agg(
        eps=("eps", "first"), detection_rate=("det", "mean"), false_alarm_rate=("fa", "mean"),
    ).reset_index()
    # models with nothing to detect in the catalogue (files, linear1d): judged on mutations
    blind = files | {m for m, g in detection.groupby("model")
                     if g["detection_rate"].isna().all()}
    blind &= set(mut_det["model"])
    parts = [detection[~detection["model"].isin(blind)], mut_det[mut_det["model"].isin(blind)]]
    known = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    means = known.groupby(["model", "dtype", "method", "eps_label"], sort=True).agg(
        eps=("eps", "first"), detection_rate=("detection_rate", "mean"),
        false_alarm_rate=("false_alarm_rate", "mean")).reset_index()
    means["score"] = (means["detection_rate"].fillna(0) - means["false_alarm_rate"].fillna(0)
                      ).round(12)
    # ties go to the most accurate step: the smallest median difference on code with no bug
    # (the bottom of the error-vs-eps V), then to the larger step; auto last
    ref = cells[(cells["variant"] == "mut:reference") & cells["model"].isin(files)]
    parts = [per_cell[done & (per_cell["expected"] == "ok")],
             ref[ref["status"] == "done"].drop_duplicates(CELL_KEYS)]
    clean = pd.concat([p for p in parts if not p.empty] or parts[:1])
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
    curves = T.detection_limits(cells)
    settings = T.trust(curves, cells)
    out = {"detection": detection, "localisation": localisation, "best_eps": best_eps,
           "detection_limits": curves, "trust": settings,
           "models": T.model_verdicts(cells, settings)}
    for name, df in out.items():
        key = [k for k in ("model", "dtype", "variant", "method", "eps") if k in df.columns]
        if df.empty:
            out[name] = df.reset_index(drop=True)
            continue
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
    steps = [eps_label(e) for e in cfg["epsilons"]]
    groups = {}
    for f in files:
        data = read_group(f)
        key = group_path(data["dtype"], data["seed"])
        if key not in planned:
            raise GradlabError(f"group file {f} (dtype {data['dtype']}, seed {data['seed']}) "
                               "is not part of the config's grid")
        if data["epsilons"] != steps:
            raise GradlabError(f"group file {f} has the steps {', '.join(data['epsilons'])}, "
                               f"the config {', '.join(steps)}; rerun it")
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
            # a group that ran in this run computed only the cells its cache lacked
            "computed": sum(groups[k].get("computed", n_cells[k]) for k in fresh),
            "reused": sum(n_cells[k] - groups[k].get("computed", n_cells[k]) if k in fresh
                          else n_cells[k] for k in order),
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
