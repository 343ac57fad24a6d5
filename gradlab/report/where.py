"""Section 5 of the report, "where backprop fails": the variant x block heatmap data, the
diagnosis of every flagged or changed block, and block localisation (precision / recall)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ..bugs import variant_names
from ..vocab import default_method, eps_label, method_sort_key
from .data import Tables
from .sections import fmt_rate, model_dtypes, variant_order

__all__ = ["block_panels", "sweep_diagnoses", "localisation_rows"]


def block_panels(cells: pd.DataFrame, best: dict, bottoms: dict, block_key
                 ) -> list[dict[str, Any]]:
    """Section 5 heatmap data: per (model, dtype) at central (or the first method), at the
    bottom of the V (the most accurate step), else at the method's best eps."""
    done = cells[(cells.get("status", "done") != "failed") & (cells["block"].astype(str) != "")]
    panels = []
    for model, dtype in model_dtypes(done):
        d = done[(done.model == model) & (done.dtype == dtype)]
        method = default_method(d["method"].unique())
        b = best.get((model, dtype, method))
        label = b["label"] if b else None
        where = "best eps"
        if (model, dtype, method) in bottoms:
            label, where = eps_label(bottoms[(model, dtype, method)]), "bottom of the V"
        d = d[d.method == method]
        labels = list(d["eps"].map(eps_label))
        if label not in labels:
            label = labels[0] if labels else None
        d = d[d["eps"].map(eps_label) == label]
        if d.empty:
            continue
        variants = variant_order(d["variant"].unique())
        blocks = sorted(d["block"].astype(str).unique(), key=block_key)
        vals = np.full((len(variants), len(blocks)), np.nan)
        truth = np.zeros_like(vals, bool)
        flagged = np.zeros_like(vals, bool)
        marks = np.full(vals.shape, "", dtype=object)
        for (v, blk), g in d.groupby(["variant", "block"]):
            i, j = variants.index(v), blocks.index(str(blk))
            vals[i, j] = float(np.nanmedian(g["difference"])) if g["difference"].notna().any() \
                else np.nan
            truth[i, j] = bool(g["in_truth"].any()) if "in_truth" in g else False
            flagged[i, j] = bool(g["flagged"].mean() >= 0.5) if "flagged" in g else False
            if "block_verdict" in g:
                top = Counter(g["block_verdict"].astype(str)).most_common(1)[0][0]
                marks[i, j] = {"shape-mismatch": "shape", "kink": "kink",
                               "non-finite": "NaN"}.get(top, "")
        if not np.isfinite(vals).any() or (len(variants) < 2 and not flagged.any()):
            continue  # nothing to compare: a model that only failed, or one correct variant
        panels.append({"title": f"{model} ({dtype}), {method}, eps {label}", "model": model,
                       "where": where,
                       "dtype": dtype, "method": method, "eps_label": label,
                       "variants": variants, "blocks": blocks, "values": vals,
                       "truth": truth, "flagged": flagged, "marks": marks})
    return panels


def sweep_diagnoses(cells: pd.DataFrame, panels: list[dict], limit: int = 300) -> list[dict]:
    """For each panel's setting: every flagged or ground-truth block with its diagnosis."""
    rows = []
    for p in panels:
        d = cells[(cells.model == p["model"]) & (cells.dtype == p["dtype"])
                  & (cells.method == p["method"]) & (cells["eps"].map(eps_label) == p["eps_label"])
                  & (cells.get("status", "done") != "failed")]
        for (v, blk), g in d.groupby(["variant", "block"], sort=False):
            if not (g["flagged"].any() or g["in_truth"].any()):
                continue
            texts = Counter(str(x) for x in g.loc[g["flagged"], "diagnosis"]) if \
                "diagnosis" in g else Counter()
            # a model file's own gradient: its truth is unknown, so never a "false" hit
            unknown = "expected" in g and (g["expected"] == "unknown").all()
            rows.append({
                "model": p["model"], "dtype": p["dtype"], "variant": v, "block": str(blk),
                "flagged": f"{int(g['flagged'].sum())}/{len(g)}",
                "truth": "unknown" if unknown else "yes" if g["in_truth"].any() else "no",
                "verdict": Counter(g["block_verdict"].astype(str)).most_common(1)[0][0],
                "diagnosis": texts.most_common(1)[0][0] if texts else "not flagged (missed)",
                "missed": not g["flagged"].any(),
                "false": bool(g["flagged"].any() and not g["in_truth"].any() and not unknown),
            })
    order = {v: i for i, v in enumerate(variant_names())}
    rows.sort(key=lambda r: (r["model"], r["dtype"], order.get(r["variant"], 999), r["variant"]))
    return rows[:limit]


def localisation_rows(t: Tables, best: dict) -> list[dict[str, Any]]:
    """Mean block precision / recall over bug variants at each method's best eps."""
    loc = t.localisation
    if loc is None or loc.empty or "precision" not in loc.columns:
        return []
    rows = []
    for (model, dtype, method), b in sorted(best.items(), key=lambda kv: (
            kv[0][0], kv[0][1], method_sort_key(kv[0][2]))):
        s = loc[(loc.model == model) & (loc.dtype == dtype) & (loc.method == method)
                & (loc.eps_label == b["label"])]
        if s.empty or not (s["precision"].notna().any() or s["recall"].notna().any()):
            continue
        rows.append({"model": model, "dtype": dtype, "method": method, "eps": b["label"],
                     "precision": fmt_rate(s["precision"].mean()),
                     "recall": fmt_rate(s["recall"].mean())})
    return rows
