"""The plain in-memory summaries: gradlab's implementation before the aggregation streamed
(every cell in one frame, each summary computed over the whole table at once), kept verbatim
as the oracle the streamed, partitioned :mod:`gradlab.summaries` must agree with."""

from __future__ import annotations

from typing import Any

from gradlab.vocab import CELL_KEYS, eps_label

__all__ = ["plain_summarise"]


def _sorted(df, keys: list[str]):
    return df.sort_values(keys, kind="mergesort", na_position="last").reset_index(drop=True)


def plain_summarise(cells) -> dict[str, Any]:
    """The summaries of ``docs/tables.md`` from the cells table, all at once.

    ``detection``, ``localisation``: the catalogue (built-in variants; a model file's own cells
    have no known truth and count in neither rate). ``best_eps``: per model, method and dtype
    the step that detects most and alarms least: on the catalogue for the built-in networks, on
    the mutations for models with no catalogue bug to detect (model files, linear1d).
    ``detection_limits``, ``trust``, ``models``: the mutation summaries of :mod:`gradlab.trust`.
    """
    import numpy as np
    import pandas as pd

    from gradlab import trust as T

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


