"""The sweep's summaries, computed one partition of cells at a time.

Every summary of ``docs/tables.md`` decomposes over the *partitions* of the cells table: the
rows of one model x dtype x variant. :class:`Summaries` takes the partitions in sorted order
(all variants of a model x dtype one after the other, as :mod:`gradlab.spill` hands them) and
keeps only small per-setting results between them:

- ``detection``, ``localisation``, the mutations' detection rates and the detection-limit
  curves group by keys that contain the variant: each partition gives its own rows;
- the step accuracy (a median over variants of one model x dtype) keeps one float per clean
  cell of the current model x dtype, the settings to trust need the ``mut:reference`` rows of
  the current model x dtype and the verdicts the model file's own rows: all three are
  finished, and dropped, when the next model x dtype begins;
- which models are judged on their mutations (over both dtypes) and the best step are decided
  at the end from the small tables.

So memory is bounded by one model x dtype x variant (seeds x methods x steps x blocks rows),
not by the number of cells. :func:`summarise` runs the same code on an in-memory table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .vocab import CELL_KEYS, eps_label

__all__ = ["Summaries", "summarise", "PARTITION"]

PARTITION = ["model", "dtype", "variant"]
BATCH_ROWS = 32_768  # partitions of a model x dtype summarised together up to this many rows
KEYS = ["model", "dtype", "variant", "method", "eps_label"]
SETTING = ["model", "dtype", "method", "eps_label"]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate, ignoring empty frames (their object dtypes would spoil numeric columns)."""
    full = [f for f in frames if not f.empty]
    if not full:
        return frames[0] if frames else pd.DataFrame()
    return pd.concat(full, ignore_index=True) if len(full) > 1 else full[0]


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys, kind="mergesort", na_position="last").reset_index(drop=True)


def _labelled(cells: pd.DataFrame) -> pd.DataFrame:
    labels = {e: eps_label(e) for e in cells["eps"].unique()}
    return cells.assign(eps_label=[labels[e] if e == e else "auto" for e in cells["eps"]])


class Summaries:
    """Accumulates the summaries over partitions of the cells table (see the module docstring).

    Call :meth:`add` with each partition's rows (one model x dtype x variant, or any union of
    whole model x dtype blocks), all partitions of a model x dtype consecutively, then
    :meth:`result`.
    """

    def __init__(self) -> None:
        self._parts: dict[str, list[pd.DataFrame]] = {
            k: [] for k in ("detection", "localisation", "mut_det", "detection_limits",
                            "accuracy", "trust", "models", "settings")}
        self._files: set[str] = set()
        self._block: tuple | None = None
        self._clean: list[pd.DataFrame] = []
        self._ref: list[pd.DataFrame] = []
        self._own: list[pd.DataFrame] = []
        self._curves: list[pd.DataFrame] = []
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0

    def add(self, cells: pd.DataFrame) -> None:
        """Take one partition's rows (columns of ``CELL_COLUMNS``).

        Args:
            cells: the rows of one model x dtype x variant (or whole model x dtype blocks).
        """

        if cells.empty:
            return
        blocks = cells[["model", "dtype"]].drop_duplicates()
        if len(blocks) > 1:  # an in-memory table: split it into its partitions
            for _, part in cells.groupby(PARTITION, sort=True):
                self.add(part)
            return
        block = tuple(blocks.iloc[0])
        if block != self._block:
            self._finish_block()
            self._block = block
        if self._pending_rows + len(cells) > BATCH_ROWS:
            self._flush()
        self._pending.append(cells)
        self._pending_rows += len(cells)

    def _flush(self) -> None:
        """Summarise the partitions held back (small ones go together: fewer, larger calls)."""
        if not self._pending:
            return
        cells = _concat(self._pending)
        self._pending, self._pending_rows = [], 0
        if len(cells) <= BATCH_ROWS:
            self._add_rows(cells)
            return
        # every summary groups by method (or is a median, or sorts again): one method at a
        # time keeps the copies of a large partition below a fraction of it
        for _, part in cells.groupby("method", sort=False):
            self._add_rows(part)

    def _add_rows(self, cells: pd.DataFrame) -> None:
        """Take rows of one model x dtype (any variants and methods)."""
        from . import trust as T

        cells = _labelled(cells)
        mutated = cells["variant"].str.startswith("mut:")
        is_file = cells["model_kind"] == "file"
        self._files.update(cells.loc[is_file, "model"])
        per_cell = cells[~mutated].drop_duplicates(CELL_KEYS)
        done = per_cell["status"] == "done"
        hit = per_cell["cell_verdict"] == "bug"
        frame = per_cell.assign(
            det=np.where(done & (per_cell["expected"] == "bug"), hit, np.nan),
            fa=np.where(done & (per_cell["expected"] == "ok"), hit, np.nan),
            failed=(~done).astype("int64"),
        )
        self._parts["detection"].append(frame.groupby(KEYS, sort=True).agg(
            eps=("eps", "first"), n_seeds=("seed", "nunique"), detection_rate=("det", "mean"),
            false_alarm_rate=("fa", "mean"), failed=("failed", "sum"),
        ).reset_index())
        self._parts["settings"].append(_settings(per_cell, cells[~mutated]))
        blocks_done = cells[~mutated & (cells["status"] == "done")
                            & (cells["expected"] != "unknown")].assign(
            tp=lambda d: d["flagged"] & d["in_truth"])
        self._parts["localisation"].append(blocks_done.groupby(KEYS, sort=True).agg(
            eps=("eps", "first"), tp=("tp", "sum"), flagged=("flagged", "sum"),
            truth=("in_truth", "sum")).reset_index())
        mut = T.known_detection(cells)
        self._parts["mut_det"].append(mut.groupby(KEYS, sort=True).agg(
            eps=("eps", "first"), detection_rate=("det", "mean"),
            false_alarm_rate=("fa", "mean"),
        ).reset_index())
        self._curves.append(T.detection_limits(cells))
        ref = cells[(cells["variant"] == "mut:reference") & (cells["status"] == "done")]
        self._ref.append(ref[[c for c in (*SETTING, "variant", "status", "detection_limit")
                              if c in ref.columns]])
        clean = [per_cell[done & (per_cell["expected"] == "ok")],
                 ref[ref["model_kind"] == "file"].drop_duplicates(CELL_KEYS)]
        self._clean.extend(c[[*SETTING, "cell_difference"]] for c in clean)
        self._own.append(cells[is_file & ~mutated])

    def _finish_block(self) -> None:
        """Finish the current model x dtype: step accuracy, settings to trust, verdicts."""
        from . import trust as T

        self._flush()
        if self._block is None:
            return
        clean = _concat(self._clean)
        self._parts["accuracy"].append(clean.groupby(SETTING, sort=True)[
            "cell_difference"].median().rename("accuracy").reset_index())
        curves = _concat(self._curves)
        settings = T.trust(curves, _concat(self._ref))
        self._parts["detection_limits"].append(curves)
        self._parts["trust"].append(settings)
        own = _concat(self._own)
        if not own.empty:  # in the cells table's order, as the verdicts' tie-breaks expect
            own = _sorted(own, [*CELL_KEYS, "block"])
            self._parts["models"].append(T.model_verdicts(own, settings))
        self._clean, self._ref, self._own, self._curves = [], [], [], []

    def result(self) -> dict[str, pd.DataFrame]:
        """The summary tables of ``docs/tables.md``, sorted by their keys.

        Returns:
            ``{"detection", "localisation", "best_eps", "detection_limits", "trust",
            "models"}`` -> DataFrame.
        """
        from . import trust as T

        self._finish_block()
        self._block = None
        p = self._parts
        if not p["detection"]:  # no cells at all
            raise ValueError("no cells to summarise")
        detection = _sorted(_concat(p["detection"]), KEYS)
        detection = detection[["model", "dtype", "variant", "method", "eps", "eps_label",
                               "n_seeds", "detection_rate", "false_alarm_rate", "failed"]]
        loc = _sorted(_concat(p["localisation"]), KEYS)
        loc["precision"] = np.where(loc["flagged"] > 0, loc["tp"] / loc["flagged"].where(
            loc["flagged"] > 0, 1), np.nan)
        loc["recall"] = np.where(loc["truth"] > 0, loc["tp"] / loc["truth"].where(
            loc["truth"] > 0, 1), np.nan)
        localisation = loc[["model", "dtype", "variant", "method", "eps", "eps_label",
                            "precision", "recall"]]
        mut_det = _sorted(_concat(p["mut_det"]), KEYS)
        # models with nothing to detect in the catalogue (files, linear1d): judged on mutations
        blind = self._files | {m for m, g in detection.groupby("model")
                               if g["detection_rate"].isna().all()}
        blind &= set(mut_det["model"])
        parts = [detection[~detection["model"].isin(blind)],
                 mut_det[mut_det["model"].isin(blind)]]
        known = pd.concat([q for q in parts if not q.empty] or parts[:1], ignore_index=True)
        means = known.groupby(SETTING, sort=True).agg(
            eps=("eps", "first"), detection_rate=("detection_rate", "mean"),
            false_alarm_rate=("false_alarm_rate", "mean")).reset_index()
        means["score"] = (means["detection_rate"].fillna(0)
                          - means["false_alarm_rate"].fillna(0)).round(12)
        # ties go to the most accurate step: the smallest median difference on code with no
        # bug (the bottom of the error-vs-eps V), then to the larger step; auto last
        means = means.merge(_concat(p["accuracy"]), how="left", on=SETTING)
        means["accuracy"] = means["accuracy"].fillna(np.inf)
        means["rank_eps"] = means["eps"].fillna(-1.0)
        best = (means.sort_values(["model", "dtype", "method", "score", "accuracy", "rank_eps"],
                                  ascending=[True, True, True, False, True, False],
                                  kind="mergesort")
                .groupby(["model", "dtype", "method"], sort=True).head(1))
        models = p["models"] or [T.model_verdicts(pd.DataFrame(
            columns=["model", "model_kind", "dtype", "variant"]), pd.DataFrame())]
        out = {"detection": detection, "localisation": localisation,
               "best_eps": best[["model", "dtype", "method", "eps", "eps_label",
                                 "detection_rate", "false_alarm_rate"]],
               "detection_limits": _concat(p["detection_limits"]),
               "trust": _concat(p["trust"]), "models": _concat(models),
               "settings": _concat(p["settings"])[SETTINGS_COLUMNS]}
        return {name: _tidy(df) for name, df in out.items()}


SETTINGS_COLUMNS = ["model", "dtype", "variant", "method", "eps", "eps_label", "cells", "seeds",
                    "first_seed", "failed", "inconclusive", "failed_inconclusive", "bug",
                    "expected", "median", "done_median", "done_min", "done_max", "threshold"]


def _settings(per_cell: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Per model x dtype x variant x method x eps of the catalogue: what the report shows of
    its cells (counts of verdicts, the cell difference over seeds, the median block threshold),
    so the report never needs the cells themselves."""
    failed = per_cell["status"] == "failed"
    inc = per_cell["cell_verdict"] == "inconclusive"
    diff = per_cell["cell_difference"]
    plotted = ~failed & per_cell["eps"].notna() & np.isfinite(diff)
    frame = per_cell.assign(
        _f=failed.astype("int64"), _i=inc.astype("int64"), _fi=(failed & inc).astype("int64"),
        _b=(per_cell["cell_verdict"] == "bug").astype("int64"), _d=diff.where(plotted))
    out = frame.groupby(KEYS, sort=True).agg(
        eps=("eps", "first"), cells=("seed", "size"), seeds=("seed", "nunique"),
        first_seed=("seed", "min"), failed=("_f", "sum"), inconclusive=("_i", "sum"),
        failed_inconclusive=("_fi", "sum"), bug=("_b", "sum"), expected=("expected", "first"),
        median=("cell_difference", "median"), done_median=("_d", "median"),
        done_min=("_d", "min"), done_max=("_d", "max")).reset_index()
    thr = rows[rows["eps"].notna() & np.isfinite(rows["threshold"])]
    med = thr.groupby(KEYS, sort=True)["threshold"].median().rename("threshold")
    return out.merge(med.reset_index(), how="left", on=KEYS)


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Sorted by the key columns, object columns as text, a fresh index."""
    if df.empty:
        return df.reset_index(drop=True)
    key = [k for k in ("model", "dtype", "variant", "method", "eps") if k in df.columns]
    df = _sorted(df, key)
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].astype(str)
    return pd.DataFrame(df)


def summarise(cells: pd.DataFrame) -> dict[str, Any]:
    """The summaries of ``docs/tables.md`` from an in-memory cells table.

    ``detection``, ``localisation``: the catalogue (built-in variants; a model file's own cells
    have no known truth and count in neither rate). ``best_eps``: per model, method and dtype
    the step that detects most and alarms least: on the catalogue for the built-in networks, on
    the mutations for models with no catalogue bug to detect (model files, linear1d).
    ``detection_limits``, ``trust``, ``models``: the mutation summaries of :mod:`gradlab.trust`.

    Args:
        cells: the cells table (``CELL_COLUMNS``), in any order.

    Returns:
        Table name -> DataFrame, as :meth:`Summaries.result`.
    """
    acc = Summaries()
    acc.add(cells)
    return acc.result()
