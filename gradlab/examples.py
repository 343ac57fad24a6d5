"""The report's worked examples, computed by the sweep and kept as tables (``docs/tables.md``).

- **The seed exercise reproduced** (``seed.parquet``, ``seed_blocks.parquet``,
  ``seed_trap.parquet``): the three numbers the seed document prints, recomputed with the
  seed's own evaluation (``engine="loop"``); the buggy network's blocks; and the seed net's
  difference against eps, correct and buggy, with gradlab's threshold (the "threshold trap":
  the correct network scores about 1.19e-7 at eps = 1e-7, above the seed's fixed 1e-7).
- **One case element by element** (``case.parquet``): a flagged network cell of the sweep
  (seed-bugs on a seed-net model when there is one), recomputed to keep the per-element
  gradient and estimate of its failing blocks, and compared with its rows in ``cells.parquet``.

``gradlab sweep-examples`` writes them after the aggregation; the report only reads them (it
imports :data:`EXAMPLE_TABLES` and :func:`v_bottoms` from here: the checker is imported only by
the functions that run checks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .atomic import atomic_write
from .vocab import CELL_KEYS, default_method, eps_label, model_spec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .result import CheckResult
    from .spec import ModelSpec

__all__ = ["SEED_EPS", "SEED_THRESHOLD", "SEED_PUBLISHED", "TRAP_EPS", "EXAMPLE_TABLES",
           "seed_tables", "case_table", "v_bottoms", "write_examples"]

SEED_EPS = 1e-7
SEED_THRESHOLD = 1e-7
#: what the seed document prints (the buggy value comes from an older numpy/BLAS)
SEED_PUBLISHED = {
    "linear1d": 2.919335883291695e-10,
    "seed-bugs": 0.2850931566540251,
    "correct": 1.1890913024229996e-07,
}
TRAP_EPS = tuple(10.0 ** -k for k in range(1, 13))
EXAMPLE_TABLES = ("seed", "seed_blocks", "seed_trap", "case")
_CASES = (  # (what the report calls it, model, variant, truth)
    ("1-D: J = theta * x (x = 2, theta = 4)", "linear1d", "correct", "ok"),
    ("seed net with its two bugs (dW2 x2, db1 x4)", "seed-net", "seed-bugs", "bug"),
    ("seed net, both bugs fixed", "seed-net", "correct", "ok"),
)


def _seed_check(problem, eps: float = SEED_EPS) -> CheckResult:
    from .check import check_problem

    return check_problem(problem, method="central", eps=eps, engine="loop")


def seed_tables() -> dict[str, pd.DataFrame]:
    """The seed exercise reproduced (28 checks of the tiny seed networks, about 1 s).

    Returns:
        ``{"seed": one row per case, "seed_blocks": the buggy net's blocks, "seed_trap":
        difference against eps}`` (columns in ``docs/tables.md``).
    """
    from .spec import ModelSpec, build_problem, truth_of

    problems = {(m, v): build_problem(ModelSpec(m, variant=v)) for _, m, v, _ in _CASES}
    rows = []
    for case, model, variant, expected in _CASES:
        res = _seed_check(problems[(model, variant)])
        published = SEED_PUBLISHED["linear1d" if model == "linear1d" else variant]
        rows.append({
            "case": case, "published": published, "difference": float(res.difference),
            "agrees": bool(np.isclose(res.difference, published, rtol=1e-6, atol=0.0)),
            "seed_verdict": "bug" if res.difference > SEED_THRESHOLD else "ok",
            "verdict": res.verdict, "threshold": float(res.threshold), "expected": expected,
        })
    buggy_problem = problems[("seed-net", "seed-bugs")]
    buggy, truth = _seed_check(buggy_problem), truth_of(buggy_problem)
    blocks = pd.DataFrame([{
        "block": b.name, "difference": float(b.difference), "threshold": float(b.threshold),
        "verdict": b.verdict, "diagnosis": b.diagnosis, "in_truth": b.name in truth,
        "truth_change": float(truth.get(b.name, 0.0))} for b in buggy.blocks])
    trap = []
    for eps in TRAP_EPS:
        good = _seed_check(problems[("seed-net", "correct")], eps)
        bad = _seed_check(buggy_problem, eps)
        trap.append({"eps": eps, "correct": float(good.difference),
                     "buggy": float(bad.difference), "threshold": float(good.threshold)})
    return {"seed": pd.DataFrame(rows), "seed_blocks": blocks, "seed_trap": pd.DataFrame(trap)}


def v_bottoms(per_cell: pd.DataFrame | None) -> dict[tuple[str, str, str], float]:
    """(model, dtype, method) -> the eps where correct code scores lowest (bottom of the V).

    Args:
        per_cell: one row per cell (``model, dtype, variant, method, eps, status,
            cell_difference``).
    """
    out: dict[tuple[str, str, str], float] = {}
    if per_cell is None:
        return out
    cf = per_cell
    ok = cf[(cf.variant == "correct") & (cf.status != "failed") & cf["eps"].notna()
            & np.isfinite(cf["cell_difference"])]
    for (model, dtype, method), g in ok.groupby(["model", "dtype", "method"]):
        med = g.groupby("eps")["cell_difference"].median().sort_index(ascending=False)
        out[(str(model), str(dtype), str(method))] = float(med.idxmin())
    return out


def _pick(cells: pd.DataFrame, entries: Mapping[str, Mapping[str, Any]]
          ) -> tuple[dict[str, Any], ModelSpec] | None:
    """The sweep's cell to show element by element: seed-bugs on a seed-net model if there,
    else the first flagged network cell whose model the config describes."""
    done = cells[(cells["status"] != "failed") & cells["model_kind"].isin(["seed-net", "mlp"])
                 & cells["flagged"].astype(bool)]
    rank = (done["model_kind"] != "seed-net").astype(int) * 2 + (done["variant"] != "seed-bugs")
    for _, row in done.assign(_r=rank).sort_values(["_r", "model", "dtype", "variant", "seed"],
                                                   kind="stable").iterrows():
        entry = entries.get(str(row["model"]))
        if entry is None:
            continue
        key = {"model": str(row["model"]), "dtype": str(row["dtype"]),
               "variant": str(row["variant"]), "seed": int(row["seed"]),
               "method": default_method(cells.loc[cells.model == row["model"], "method"]
                                        .unique())}
        return key, model_spec(entry, key["variant"], key["seed"], key["dtype"])
    return None


def _agreement(cells: pd.DataFrame, key: Mapping[str, Any], eps: float,
               result: CheckResult) -> str:
    """Whether the recomputed case's block differences match the sweep's rows for it."""
    sub = cells[(cells.model == key["model"]) & (cells.dtype == key["dtype"])
                & (cells.variant == key["variant"]) & (cells.method == key["method"])
                & (cells.seed == key["seed"]) & (cells["eps"].map(eps_label) == eps_label(eps))]
    table = dict(zip(sub["block"].astype(str), sub["difference"], strict=True))
    if not table:
        return ""
    if all(b.name in table and np.isclose(b.difference, table[b.name], rtol=1e-6, atol=1e-15)
           for b in result.blocks):
        return "matches the sweep's table for this cell, block by block"
    return ("does not match the sweep's table for this cell exactly (was the table made by "
            "another gradlab version?)")


def _shape(shape: Sequence[int]) -> list[int]:
    return [int(n) for n in shape]


def case_table(cells: pd.DataFrame, best_eps: pd.DataFrame,
               models: Sequence[Mapping[str, Any]], threshold: float | None) -> pd.DataFrame:
    """The case shown element by element, one row per block (``docs/tables.md``).

    Args:
        cells: ``cells.parquet`` (mutation cells are ignored).
        best_eps: ``best_eps.parquet`` (the case's step: the bottom of the V of correct code,
            else the method's best eps, else 1e-7).
        models: the normalised config's model entries.
        threshold: the config's fixed threshold (``None``: the measured noise floor).

    Returns:
        One row per block (a single row with ``error`` when the case cannot be recomputed).
    """
    from .check import check_problem
    from .spec import ModelSpec, build_problem, truth_of

    cells = cells[~cells["variant"].str.startswith("mut:")]
    picked = _pick(cells, {str(m["name"]): m for m in models})
    if picked is None:
        key = {"model": "seed-net", "dtype": "float64", "variant": "seed-bugs", "seed": 0,
               "method": "central"}
        spec, in_sweep = ModelSpec("seed-net", variant="seed-bugs"), False
    else:
        (key, spec), in_sweep = picked, True
    best = best_eps[(best_eps.model == key["model"]) & (best_eps.dtype == key["dtype"])
                    & (best_eps.method == key["method"])]["eps"]
    eps = float(best.iloc[0]) if len(best) and np.isfinite(best.iloc[0]) else SEED_EPS
    per_cell = cells.drop_duplicates(CELL_KEYS)
    eps = v_bottoms(per_cell).get((key["model"], key["dtype"], key["method"]), eps)
    head = dict(key, eps=eps, in_sweep=in_sweep)
    try:
        problem = build_problem(spec)
        result = check_problem(problem, method=key["method"], eps=eps, seed=key["seed"],
                               threshold=float(threshold) if threshold else None)
    except Exception as exc:  # the report shows the reason instead of the figure
        return _frame([head | {"error": f"{type(exc).__name__}: {exc}"}])
    truth, failing = truth_of(problem), {b.name for b in result.failing()}
    agreement = _agreement(cells, key, eps, result) if in_sweep else ""
    rows = []
    for b in result.blocks:
        grad, approx = (result.grad[b.name], result.approx[b.name]) if b.name in failing \
            else (np.zeros(0), np.zeros(0))
        rows.append(head | {
            "method_used": result.method, "cell_verdict": result.verdict,
            "cell_difference": float(result.difference), "agreement": agreement,
            "block": b.name, "block_verdict": b.verdict, "diagnosis": b.diagnosis,
            "difference": float(b.difference), "in_truth": b.name in truth,
            "truth_change": float(truth.get(b.name, 0.0)), "failing": b.name in failing,
            "shape": _shape(np.shape(approx)), "grad_shape": _shape(np.shape(grad)),
            "grad": np.asarray(grad, float).reshape(-1).tolist(),
            "approx": np.asarray(approx, float).reshape(-1).tolist(), "error": ""})
    return _frame(rows)


_CASE_COLUMNS = {
    "model": "", "dtype": "", "variant": "", "seed": 0, "method": "", "eps": np.nan,
    "in_sweep": False, "method_used": "", "cell_verdict": "", "cell_difference": np.nan,
    "agreement": "", "block": "", "block_verdict": "", "diagnosis": "", "difference": np.nan,
    "in_truth": False, "truth_change": np.nan, "failing": False, "shape": [], "grad_shape": [],
    "grad": [], "approx": [], "error": "",
}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{k: r.get(k, v) for k, v in _CASE_COLUMNS.items()} for r in rows])


def _batches(path: Path, where, columns: list[str]):
    """``cells.parquet``'s rows matching ``where`` (only ``columns``), as pandas frames of a
    bounded size, filtered while the file is scanned (never whole in memory)."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet")
    for batch in dataset.to_batches(columns=columns, filter=where, batch_size=65536,
                                    batch_readahead=0, fragment_readahead=0,
                                    use_threads=False):
        if batch.num_rows:
            yield batch.to_pandas()


_PICK_COLUMNS = ["model", "dtype", "variant", "seed", "model_kind", "status", "flagged"]
_CELL_COLUMNS = [*CELL_KEYS, "status", "cell_difference"]


def _case_cells(path: Path, models: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """What :func:`case_table` reads of the cells, in bounded pieces: the first flagged network
    row in :func:`_pick`'s order, each model's methods, one row per cell of the correct variant
    (the bottom of the V) and every row of the picked cell."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    f = ds.field
    catalogue = ~pc.starts_with(f("variant"), "mut:")
    names = [str(m["name"]) for m in models]
    first = None
    for b in _batches(path, catalogue & f("flagged") & (f("status") != "failed")
                      & f("model_kind").isin(["seed-net", "mlp"]) & f("model").isin(names),
                      _PICK_COLUMNS):
        rank = (b["model_kind"] != "seed-net").astype(int) * 2 + (b["variant"] != "seed-bugs")
        b = b.assign(_r=rank).sort_values(["_r", "model", "dtype", "variant", "seed"],
                                          kind="stable").head(1)
        row = b.iloc[0]
        key = (row["_r"], row["model"], row["dtype"], row["variant"], row["seed"])
        if first is None or key < first[0]:
            first = (key, b.drop(columns="_r"))
    methods = pd.concat([b.drop_duplicates() for b in _batches(path, catalogue,
                                                                ["model", "method"])]
                        or [pd.DataFrame(columns=["model", "method"])]).drop_duplicates()
    methods = methods.assign(variant="", model_kind="", status="", flagged=False)
    parts = [methods] if first is None else [first[1], methods]
    parts += [b.drop_duplicates(CELL_KEYS)
              for b in _batches(path, f("variant") == "correct", _CELL_COLUMNS)]
    picked = _pick(pd.concat(parts[:2], ignore_index=True), {n: m for n, m in zip(
        names, models, strict=True)})
    if picked is not None:
        key = picked[0]
        parts += list(_batches(path, (f("model") == key["model"]) & (f("dtype") == key["dtype"])
                               & (f("variant") == key["variant"]) & (f("seed") == key["seed"])
                               & (f("method") == key["method"]),
                               [*CELL_KEYS, "block", "difference", "status", "cell_difference"]))
    return pd.concat(parts, ignore_index=True)


def write_examples(tables_dir: str | Path, cfg: Mapping[str, Any]) -> list[Path]:
    """Compute the examples and write them next to the sweep's tables (atomically).

    Args:
        tables_dir: holds ``cells.parquet`` and ``best_eps.parquet``; the example tables go
            there too.
        cfg: the normalised config (``models``, ``verdict.threshold``).

    Returns:
        The files written.

    Raises:
        GradlabError: a table cannot be written.
    """
    tables_dir = Path(tables_dir)
    cells = _case_cells(tables_dir / "cells.parquet", cfg["models"])
    best = pd.read_parquet(tables_dir / "best_eps.parquet")
    tables = seed_tables()
    tables["case"] = case_table(cells, best, cfg["models"], cfg["verdict"]["threshold"])
    return [atomic_write(tables_dir / f"{name}.parquet",
                         lambda tmp, df=df: df.to_parquet(tmp, index=False, engine="pyarrow"))
            for name, df in tables.items()]
