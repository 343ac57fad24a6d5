"""What the mutations say: detection-limit curves, settings to trust, the verdict on each model.

From the cells of the mutation variants (:mod:`gradlab.mutations`), per model and dtype:

- :func:`detection_limits`: for each method and step, each mutation's detection rate over the
  seeds (detected = the mutated block flagged), its size, and the false-alarm rate on the
  unmutated reference (the ``reference`` rows; an alarm at a setting whose stated detection
  limit is below :data:`TRUTH_MARGIN` x the reference's own error is not counted, as that
  setting may be seeing the reference's error). A mutation smaller than
  :data:`TRUTH_MARGIN` x the reference's own error has no known ground truth
  (``truth_known`` false) and counts nowhere.
  ``rate_above_stated``: the detection rate over the cells whose injected error was at least
  :data:`TRUTH_MARGIN` x the detection limit the check stated for the mutated block (the
  check's own claim, tested).
- :func:`trust`: per method and step, ``sees`` (the smallest injected size from which every
  larger known mutation was detected in every seed: the measured detection limit), the
  median ``stated_limit`` gradlab's check claimed (``detection_limit`` of the blocks on the
  reference), and ``trustworthy``: no false alarm on the reference, no failed cell, and every
  known mutation of relative size >= :data:`TRUST_SIZE` detected.
- :func:`model_verdicts`: for each model *file*, the consensus of the trustworthy settings on
  the model's own gradient: ``ok``, ``bug`` (with the blocks most of them flag and the
  diagnosis), ``inconclusive`` (no trustworthy setting, or no majority) or ``failed``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

__all__ = ["TRUTH_MARGIN", "TRUST_SIZE", "detection_limits", "trust", "model_verdicts",
           "known_detection"]

TRUTH_MARGIN = 10.0
TRUST_SIZE = 1e-2
SETTING = ["model", "dtype", "method", "eps_label"]


def _mutation_cells(cells: pd.DataFrame) -> pd.DataFrame:
    return cells[cells["variant"].str.startswith("mut:")]


def known_detection(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per mutation cell: ``det`` (1/0 for a known mutation, NaN otherwise), ``fa``
    (1/0 on the reference), ``size``, ``stated`` (the mutated block's stated detection limit),
    ``failed``. ``cells`` needs an ``eps_label`` column."""
    mut = _mutation_cells(cells)
    if mut.empty:
        return pd.DataFrame(columns=[*SETTING, "variant", "seed", "eps", "mutation", "size",
                                     "det", "fa", "failed", "stated", "truth_known",
                                     "det_above_stated"])
    keys = [*SETTING, "variant", "seed"]
    blocks = mut.assign(hit=mut["flagged"] & mut["in_truth"],
                        stated=mut["detection_limit"].where(mut["in_truth"]))
    per = blocks.groupby(keys, sort=True).agg(
        eps=("eps", "first"), mutation=("mutation", "first"), size=("mutation_size", "first"),
        ref_error=("reference_error", "first"), status=("status", "first"),
        verdict=("cell_verdict", "first"), expected=("expected", "first"),
        hit=("hit", "any"), stated=("stated", "max"),
        finest=("detection_limit", "min")).reset_index()
    done = per["status"] == "done"
    known = per["size"] >= TRUTH_MARGIN * per["ref_error"].fillna(0.0)
    bug = done & (per["expected"] == "bug") & known
    per["truth_known"] = known | (per["expected"] == "ok")
    # one size per rung of the ladder (the measured sizes differ in the last digits)
    per["size"] = [float(f"{x:.3g}") if np.isfinite(x) else x for x in per["size"]]
    per["det"] = np.where(bug, per["hit"].astype(float), np.nan)
    # the check's own claim, cell by cell: injected TRUTH_MARGIN x above the stated limit
    above = per["det"].notna() & (per["size"] >= TRUTH_MARGIN * per["stated"])
    per["det_above_stated"] = np.where(above, per["det"], np.nan)
    # an alarm on the reference is false only where the check cannot see the reference's own
    # error (its finest stated limit above TRUTH_MARGIN x that error); elsewhere it is unknown
    alarm = per["verdict"] == "bug"
    sees_ref = per["finest"] < TRUTH_MARGIN * per["ref_error"].fillna(0.0)
    per["fa"] = np.where(done & (per["expected"] == "ok") & ~(alarm & sees_ref),
                         alarm * 1.0, np.nan)
    per["failed"] = (~done).astype("int64")
    return per


def detection_limits(cells: pd.DataFrame) -> pd.DataFrame:
    """The detection-limit curves: one row per model x dtype x method x step x mutation."""
    per = known_detection(cells)
    out = per.groupby([*SETTING, "variant"], sort=True).agg(
        eps=("eps", "first"), mutation=("mutation", "first"), size=("size", "median"),
        n_seeds=("seed", "nunique"), detection_rate=("det", "mean"),
        false_alarm_rate=("fa", "mean"), stated_limit=("stated", "median"),
        truth_known=("truth_known", "all"), failed=("failed", "sum"),
        n_above_stated=("det_above_stated", "count"),
        rate_above_stated=("det_above_stated", "mean")).reset_index()
    return out[["model", "dtype", "method", "eps", "eps_label", "variant", "mutation", "size",
                "n_seeds", "detection_rate", "false_alarm_rate", "stated_limit",
                "n_above_stated", "rate_above_stated", "truth_known", "failed"]]


def _sees(group: pd.DataFrame) -> float:
    """Smallest size from which every larger known mutation was always detected."""
    rows = group[group["detection_rate"].notna()].sort_values("size", ascending=False)
    sees = np.nan
    for size, rate in zip(rows["size"], rows["detection_rate"], strict=True):
        if rate < 1:
            break
        sees = size
    return float(sees)


def trust(curves: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per model x dtype x method x step: ``sees``, ``stated_limit``, ``false_alarm_rate``,
    ``failed``, ``trustworthy`` (see the module docstring)."""
    cols = [*SETTING, "eps", "sees", "stated_limit", "false_alarm_rate", "failed",
            "trustworthy"]
    if curves.empty:
        return pd.DataFrame(columns=cols)
    ref = cells[(cells["variant"] == "mut:reference") & (cells["status"] == "done")]
    stated = ref.groupby(SETTING)["detection_limit"].median().rename("stated_limit")
    rows = []
    for key, group in curves.groupby(SETTING, sort=True):
        big = group[(group["size"] >= TRUST_SIZE) & group["detection_rate"].notna()]
        fa = group["false_alarm_rate"].dropna()
        failed = int(group["failed"].sum())
        ok = (not big.empty and bool((big["detection_rate"] == 1).all())
              and (fa == 0).all() and failed == 0)
        rows.append(dict(zip(SETTING, key, strict=True)) | {
            "eps": group["eps"].iloc[0], "sees": _sees(group),
            "stated_limit": float(stated.get(key, np.nan)),
            "false_alarm_rate": float(fa.mean()) if len(fa) else np.nan, "failed": failed,
            "trustworthy": bool(ok)})
    return pd.DataFrame(rows, columns=cols)


def _setting_text(rows: pd.DataFrame) -> str:
    parts = []
    for method, g in rows.groupby("method", sort=False):
        parts.append(f"{method} at {', '.join(g['eps_label'])}")
    return "; ".join(parts)


def _one_model(own: pd.DataFrame, settings: pd.DataFrame) -> dict:
    """The consensus verdict of one model file at one dtype."""
    done = own[own["status"] == "done"]
    base = {"blocks": "", "diagnosis": "", "agree": 0,
            "trusted": int(settings["trustworthy"].sum()), "settings": len(settings),
            "cannot_see": "", "detection_limit": np.nan}
    if done.empty:
        reason = own["error"].iloc[0] if len(own) else "no cells"
        return base | {"verdict": "failed", "diagnosis": reason}
    good = settings[settings["trustworthy"].astype(bool)]
    if settings.empty:
        return base | {"verdict": "inconclusive", "diagnosis": "the sweep ran without "
                       "mutations, so no setting could be judged for this model (config key "
                       "'mutations')"}
    if good.empty:
        return base | {"verdict": "inconclusive", "diagnosis": "no setting is trustworthy for "
                       "this model (see its detection-limit curves)"}
    base["detection_limit"] = float(good["sees"].min())
    per_cell = done.drop_duplicates(["method", "eps_label", "seed"])
    votes = {}
    for (method, label), g in per_cell.groupby(["method", "eps_label"], sort=False):
        if ((good["method"] == method) & (good["eps_label"] == label)).any():
            votes[(method, label)] = Counter(g["cell_verdict"]).most_common(1)[0][0]
    tally = Counter(votes.values())
    verdict = "bug" if tally["bug"] > tally["ok"] else "ok" if tally["ok"] > tally["bug"] \
        else "inconclusive"
    if tally[verdict] * 2 <= len(votes):
        verdict = "inconclusive"
    agree = [k for k, v in votes.items() if v == verdict]
    other = settings[[(m, e) not in agree for m, e in zip(settings["method"],
                                                          settings["eps_label"], strict=True)]]
    out = base | {"verdict": verdict, "agree": len(agree), "trusted": len(votes),
                  "cannot_see": _setting_text(other)}
    if verdict == "bug":
        at = done[[(m, e) in agree for m, e in zip(done["method"], done["eps_label"],
                                                   strict=True)]]
        bad = at[at["cell_verdict"] == "bug"]
        n_cells = bad.drop_duplicates(["method", "eps_label", "seed"]).shape[0]
        flagged = bad[bad["flagged"]]
        counts = flagged.groupby("block")["seed"].size()
        blocks = [b for b, n in counts.items() if n * 2 > n_cells]
        out["blocks"] = ",".join(blocks)
        out["diagnosis"] = "; ".join(  # each diagnosis names its block (dW1 is ...)
            Counter(flagged.loc[flagged["block"] == b, "diagnosis"]).most_common(1)[0][0]
            for b in blocks)
    return out


def model_verdicts(cells: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """One row per model file x dtype: the consensus verdict (see the module docstring)."""
    cols = ["model", "dtype", "verdict", "blocks", "diagnosis", "agree", "trusted",
            "settings", "cannot_see", "detection_limit"]
    own = cells[(cells["model_kind"] == "file") & ~cells["variant"].str.startswith("mut:")]
    rows = []
    for (model, dtype), g in own.groupby(["model", "dtype"], sort=True):
        mine = settings[(settings["model"] == model) & (settings["dtype"] == dtype)]
        rows.append({"model": model, "dtype": dtype} | _one_model(g, mine))
    df = pd.DataFrame(rows, columns=cols)
    for col in ("agree", "trusted", "settings"):
        df[col] = df[col].astype("int64")
    df["detection_limit"] = df["detection_limit"].astype("float64")
    return df
