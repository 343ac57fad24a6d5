"""Sweep tables for the report tests, made by running gradlab's core on a tiny grid.

The tables follow ``docs/tables.md`` (the contract between the sweep and the report): one row of
``cells.parquet`` per model x dtype x variant x seed x method x eps x block, plus the summaries
and ``run.json``. Usable from the command line too::

    python tests/report_fixture.py OUT_DIR        # then: gradlab.report.build_report(OUT_DIR, ...)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gradlab import __version__
from gradlab.check import check_problem
from gradlab.examples import write_examples
from gradlab.report.data import derive_summaries
from gradlab.spec import ModelSpec, build_problem, truth_of
from gradlab.vocab import CELL_KEYS, eps_label

__all__ = ["ModelEntry", "Grid", "make_tables", "write_model_file", "TINY", "file_models"]

CELLS_COLUMNS = [
    "model", "model_kind", "dtype", "variant", "seed", "method", "eps", "eps_used", "block",
    "block_size", "difference", "threshold", "block_verdict", "diagnosis", "flagged", "in_truth",
    "truth_change", "cell_verdict", "cell_difference", "expected", "status", "error",
]


@dataclass(frozen=True)
class ModelEntry:
    """A model of the grid: its label in the tables, its kind and how to build it."""

    label: str
    kind: str  # seed-net, mlp, linear1d or file
    model: str  # what ModelSpec.model gets (a path for files)
    dims: tuple[int, ...] = (4, 5, 3, 1)
    examples: int = 3


@dataclass
class Grid:
    """The axes of a sweep."""

    models: Sequence[ModelEntry]
    variants: Sequence[str] = ("correct", "seed-bugs", "transposed-dW1", "leaky-backward",
                               "l2-missing")
    seeds: Sequence[int] = (0, 1)
    methods: Sequence[str] = ("forward", "central", "complex-step")
    epsilons: Sequence[float] = (1e-1, 1e-3, 1e-5, 1e-7, 1e-9, 1e-11)  # NaN = auto
    dtypes: Sequence[str] = ("float64",)
    extra_run: dict = field(default_factory=dict)


TINY = (
    ModelEntry("seed-net", "seed-net", "seed-net"),
    ModelEntry("mlp-tiny", "mlp", "mlp", dims=(3, 4, 1), examples=4),
)

MODEL_FILE = '''\
import numpy as np

def init(seed):
    return {"W": np.full((2, 2), 0.5)}, np.ones(2), None

def cost(params, X, Y):
    if BEHAVIOUR == "raise":
        raise ValueError(MESSAGE)
    if BEHAVIOUR == "nan":
        return float("nan")
    return float(np.sum(params["W"] ** 2))

def gradients(params, X, Y):
    return {"dW": 2 * params["W"]}
'''


def write_model_file(path: Path, behaviour: str = "raise", message: str = "the cost exploded"
                     ) -> Path:
    """A bring-your-own model file whose cost raises ``ValueError(message)`` (``raise``),
    returns NaN (``nan``) or works (``ok``)."""
    path.write_text(f"BEHAVIOUR = {behaviour!r}\nMESSAGE = {message!r}\n" + MODEL_FILE,
                    encoding="utf-8")
    return path


def file_models(folder: Path, message: str = "the cost exploded",
                failing_label: str = "broken_model") -> list[ModelEntry]:
    """Two bring-your-own models: one whose cost raises (failed cells), one that gives NaN
    (inconclusive cells)."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = write_model_file(folder / "broken_model.py", "raise", message)
    nan = write_model_file(folder / "nan_model.py", "nan")
    return [ModelEntry(failing_label, "file", str(bad)), ModelEntry("nan_model", "file", str(nan))]


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cell_rows(entry: ModelEntry, dtype: str, variant: str, seed: int, method: str,
               eps: float) -> tuple[list[dict], float]:
    base = {"model": entry.label, "model_kind": entry.kind, "dtype": dtype, "variant": variant,
            "seed": seed, "method": method, "eps": eps}
    started = time.perf_counter()
    names: list[str] = []
    sizes: dict[str, int] = {}
    try:
        spec = ModelSpec(entry.model, variant=variant, seed=seed, dims=entry.dims,
                         examples=entry.examples, dtype=dtype)
        problem = build_problem(spec)
        names = list(problem.params)
        sizes = {k: int(np.asarray(v).size) for k, v in problem.params.items()}
        truth = truth_of(problem)
        result = check_problem(problem, method=method, eps="auto" if math.isnan(eps) else eps,
                               seed=seed)
    except Exception as exc:  # a failed cell: recorded with its reason, never lost
        reason = " ".join(str(exc).split()) or type(exc).__name__
        rows = [{**base, "eps_used": math.nan, "block": b, "block_size": sizes.get(b, 0),
                 "difference": math.nan, "threshold": math.nan, "block_verdict": "failed",
                 "diagnosis": reason, "flagged": False, "in_truth": False, "truth_change": 0.0,
                 "cell_verdict": "failed", "cell_difference": math.nan, "expected": "ok",
                 "status": "failed", "error": reason} for b in (names or [""])]
        return rows, time.perf_counter() - started
    expected = "bug" if truth else "ok"
    rows = []
    for b in result.blocks:
        rows.append({
            **base, "eps_used": float(result.eps), "block": b.name,
            "block_size": sizes[b.name], "difference": float(b.difference),
            "threshold": float(b.threshold), "block_verdict": b.verdict,
            "diagnosis": b.diagnosis, "flagged": b.verdict in ("bug", "shape-mismatch"),
            "in_truth": b.name in truth, "truth_change": float(truth.get(b.name, 0.0)),
            "cell_verdict": result.verdict, "cell_difference": float(result.difference),
            "expected": expected, "status": "done", "error": "",
        })
    return rows, time.perf_counter() - started


def make_tables(out_dir: Path, grid: Grid | None = None) -> Path:
    """Run the grid with gradlab's core and write every table of ``docs/tables.md``."""
    grid = grid or Grid(TINY)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict] = []
    timing: list[dict] = []
    for entry in grid.models:
        variants = grid.variants if entry.kind in ("seed-net", "mlp") else ("correct",)
        for dtype in grid.dtypes:
            for variant in variants:
                for seed in grid.seeds:
                    for method in grid.methods:
                        for eps in grid.epsilons:
                            got, secs = _cell_rows(entry, dtype, variant, seed, method, eps)
                            rows.extend(got)
                            timing.append({"model": entry.label, "dtype": dtype,
                                           "variant": variant, "seed": seed, "method": method,
                                           "eps": eps, "seconds": secs})
    cells = pd.DataFrame(rows, columns=CELLS_COLUMNS)
    cells = cells.astype({"seed": "int64", "block_size": "int64", "flagged": bool,
                          "in_truth": bool})
    cells = cells.sort_values(CELL_KEYS + ["block"], kind="stable").reset_index(drop=True)
    _atomic_parquet(cells, out_dir / "cells.parquet")
    for name, table in derive_summaries(cells).items():
        _atomic_parquet(table, out_dir / f"{name}.parquet")
    tim = pd.DataFrame(timing)
    tim["eps_label"] = [eps_label(e) for e in tim["eps"]]
    _atomic_parquet(tim, out_dir / "timing.parquet")
    n_cells = len(timing)
    failed = int(cells.groupby(CELL_KEYS)["status"].first().eq("failed").sum())
    config = {"models": [{"name": e.label, "kind": e.kind, "dims": list(e.dims),
                          "examples": e.examples, "lambda": 0.0, "keep_prob": 1.0,
                          "path": e.model if e.kind == "file" else None}
                         for e in grid.models],
              "variants": list(grid.variants), "seeds": list(grid.seeds),
              "methods": list(grid.methods), "epsilons": list(grid.epsilons),
              "dtypes": list(grid.dtypes), "verdict": {"threshold": None}}
    run = {
        "config_digest": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "versions": {"gradlab": __version__, "python": platform.python_version(),
                     "numpy": np.__version__, "pandas": pd.__version__,
                     "snakemake": "not used (test fixture)"},
        "cells": {"planned": n_cells, "computed": n_cells, "reused": 0, "failed": failed},
        "wall_seconds": round(time.perf_counter() - started, 3),
        "config": config,
        **grid.extra_run,
    }
    (out_dir / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    write_examples(out_dir, config)  # what gradlab sweep-examples writes
    return out_dir


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "report-fixture")
    t0 = time.perf_counter()
    make_tables(target, Grid([*TINY, *file_models(target.parent / "models")]))
    print(f"wrote {target} in {time.perf_counter() - t0:.1f} s")
