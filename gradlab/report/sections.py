"""Turn the tables into what each section of the report shows (plain dicts and lists).

Nothing here formats HTML: the template does, with autoescape on. Colours are computed here
from numbers only (never from strings that came from the tables).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps

from ..bugs import variant_names
from ..vocab import eps_label, method_sort_key
from .data import Tables, pick

__all__ = [
    "fmt_sci", "fmt_rate", "rate_color", "variant_order", "best_eps_map", "run_summary",
    "failures", "verdict_matrices", "settings_grids", "at_a_glance",
    "model_dtypes",
]

_RDYLGN = colormaps["RdYlGn"]


def fmt_sci(x: Any, digits: int = 3) -> str:
    """``1.23e-07``; ``n/a`` for missing values."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.{digits - 1}e}"


def fmt_rate(x: Any) -> str:
    """``87%`` or ``n/a``."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(x) else f"{x:.0%}"


def rate_color(good: float | None) -> str:
    """Background for a cell whose goodness is in [0, 1] (green good, red bad), pale."""
    if good is None or not np.isfinite(good):
        return "#eeeeee"
    # cubed, so that 90% and 100% look different: a checker that misses one bug in ten is weak
    r, g, b, _ = _RDYLGN(0.08 + 0.84 * float(np.clip(good, 0, 1)) ** 3)
    mix = 0.45
    return "#{:02x}{:02x}{:02x}".format(*(int(255 * (c * (1 - mix) + mix)) for c in (r, g, b)))


def variant_order(variants: Any) -> list[str]:
    """Catalogue order (correct first), unknown names after, alphabetically."""
    present = {str(v) for v in variants}
    known = [v for v in variant_names() if v in present]
    return known + sorted(present - set(known))


def model_dtypes(df: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = df[["model", "dtype"]].drop_duplicates().itertuples(index=False)
    return sorted({(str(m), str(d)) for m, d in pairs})


def best_eps_map(t: Tables) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(model, dtype, method) -> {eps, label, detection_rate, false_alarm_rate}."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    if t.best_eps is None:
        return out
    for row in t.best_eps.to_dict("records"):
        label, eps = str(row["eps_label"]), float(row["eps"])  # NaN for auto
        out[(str(row["model"]), str(row["dtype"]), str(row["method"]))] = {
            "eps": eps, "label": label, "detection_rate": row["detection_rate"],
            "false_alarm_rate": row["false_alarm_rate"],
        }
    return out


def run_summary(t: Tables, st: pd.DataFrame | None, seeds: Any = ()) -> dict[str, Any]:
    """Section 1: the headline numbers, the grid, versions and timing.

    Args:
        t: the tables.
        st: the settings table (one row per model x dtype x variant x method x eps), or None.
        seeds: the catalogue's seeds.
    """
    run = t.run or {}
    n_cells = int(st["cells"].sum()) if st is not None else None
    n_failed = int(st["failed"].sum()) if st is not None else None
    cards = []
    for label, fallback in (("planned", n_cells), ("computed", None), ("reused", None),
                            ("failed", n_failed)):
        value = pick(run, f"cells.{label}")
        cards.append({"label": f"cells {label}", "value": value if value is not None
                      else (fallback if fallback is not None else "n/a"),
                      "alert": label == "failed" and bool(value or fallback)})
    wall = run.get("wall_seconds")
    try:
        wall_text = f"{float(wall):.1f} s"
    except (TypeError, ValueError):
        wall_text = str(wall) if wall is not None else "n/a"
    cards.append({"label": "wall time", "value": wall_text, "alert": False})
    checks = pick(run, "check_seconds")
    if checks is None and t.timing is not None and "seconds" in t.timing.columns:
        checks = float(t.timing["seconds"].sum())
    if checks is not None:
        try:
            cards.append({"label": "in gradient checks", "value": f"{float(checks):.1f} s",
                          "alert": False})
        except (TypeError, ValueError):
            pass
    digest = run.get("config_digest") or "n/a"
    versions = run.get("versions") if isinstance(run.get("versions"), dict) else {}
    versions = {str(k): str(v) for k, v in versions.items()}
    grid = []
    if st is not None and len(st):
        eps = sorted({e for e in st["eps"] if np.isfinite(e)}, reverse=True)
        auto = bool(st["eps"].isna().any())
        grid = [
            ("models", ", ".join(sorted({str(m) for m in st["model"]}))),
            ("dtypes", ", ".join(sorted({str(d) for d in st["dtype"]}))),
            ("variants", f"{st['variant'].nunique()}: "
             + ", ".join(variant_order(st["variant"].unique()))),
            ("seeds", ", ".join(str(s) for s in sorted(seeds))),
            ("methods", ", ".join(sorted(st["method"].unique(), key=method_sort_key))),
            ("epsilons", ", ".join([eps_label(e) for e in eps] + (["auto"] if auto else []))),
        ]
    timing = []
    if t.timing is not None and "seconds" in t.timing.columns and "method" in t.timing.columns:
        for method, s in sorted(t.timing.groupby("method")["seconds"], key=lambda x:
                                method_sort_key(x[0])):
            timing.append({"method": method, "total": fmt_sci(s.sum()), "n": len(s),
                           "mean_ms": f"{1000 * s.mean():.1f}"})
    return {"cards": cards, "digest": str(digest), "versions": sorted(versions.items()),
            "grid": grid, "timing": timing}


def failures(cf: pd.DataFrame | None, limit: int = 200) -> dict[str, Any]:
    """Failed and inconclusive cells, grouped by model and reason."""
    if cf is None:
        return {"failed": [], "n_failed": 0, "inconclusive": [], "n_inconclusive": 0}
    out: dict[str, Any] = {}
    for kind, mask in (("failed", cf["status"] == "failed"),
                       ("inconclusive", (cf["status"] != "failed")
                        & (cf["cell_verdict"] == "inconclusive"))):
        sub = cf[mask]
        groups = []
        for (model, dtype, variant, error), g in sub.groupby(
                ["model", "dtype", "variant", "error"], sort=True, dropna=False):
            groups.append({
                "model": model, "dtype": dtype, "variant": variant,
                "error": error or "(no reason recorded)", "n": len(g),
                "methods": ", ".join(sorted(g["method"].unique(), key=method_sort_key)),
                "seeds": ", ".join(str(s) for s in sorted(g["seed"].unique())),
            })
        out[kind] = groups[:limit]
        out["n_" + kind] = int(mask.sum())
        out[kind + "_truncated"] = len(groups) > limit
    return out


def _expected_bug(det: pd.DataFrame) -> pd.Series:
    """Rows of the detection table for a variant with a bug on its model: the ones with a
    detection rate (correct code has only a false-alarm rate)."""
    return det["detection_rate"].notna()


def _problem_cell(n: int, failed: int, inconclusive: int) -> dict[str, Any] | None:
    """A matrix cell for a setting with no usable verdict (all failed or all inconclusive)."""
    if n and failed == n:
        return {"text": "failed", "sub": f"{failed}/{n}", "color": "#f3c1bd",
                "failed": failed}
    if n and inconclusive == n - failed:
        return {"text": "no verdict", "sub": f"{inconclusive}/{n}",
                "color": "#fde7a6", "failed": failed}
    return None


def _detection_by_model(t: Tables):
    """``(model, dtype, its rows of the detection table)`` for each model x dtype."""
    det = t.detection
    if det is None or det.empty:
        return
    for model, dtype in model_dtypes(det):
        yield model, dtype, det[(det.model == model) & (det.dtype == dtype)]


def verdict_matrices(t: Tables, best: dict, counts: dict | None = None
                     ) -> list[dict[str, Any]]:
    """Section 3: per (model, dtype), rows of variants x methods at each method's best eps."""
    counts = counts or {}
    out = []
    for model, dtype, d in _detection_by_model(t):
        methods = sorted(d["method"].unique(), key=method_sort_key)
        cols, picks = [], {}
        for m in methods:
            b = best.get((model, dtype, m))
            label = b["label"] if b else None
            if label is None or label not in set(d.loc[d.method == m, "eps_label"]):
                label = None
            cols.append({"method": m, "eps": label or "n/a"})
            picks[m] = d[(d.method == m) & (d.eps_label == label)] if label else d.iloc[0:0]
        rows = []
        variants = variant_order(d["variant"].unique())
        for group, wanted_bug in (("alarm", False), ("detect", True)):
            for v in variants:
                cells, is_bug = [], None
                for m in methods:
                    r = picks[m][picks[m].variant == v]
                    if r.empty:
                        cells.append({"text": "n/a", "sub": "", "color": rate_color(None)})
                        continue
                    rec = r.iloc[0]
                    is_bug = bool(_expected_bug(r).iloc[0])
                    n, nf, ni = counts.get((model, dtype, v, m, str(rec["eps_label"])),
                                           (0, 0, 0))
                    bad = _problem_cell(n, nf, ni)
                    if bad is not None:
                        cells.append(bad)
                        continue
                    rate = rec["detection_rate"] if is_bug else rec["false_alarm_rate"]
                    good = rate if is_bug else (1 - rate if pd.notna(rate) else None)
                    n = int(rec.get("n_seeds", 0) or 0)
                    failed = int(rec.get("failed", 0) or 0)
                    sub = f"{round(rate * (n - failed))}/{n - failed}" \
                        if pd.notna(rate) and n else ""
                    if failed:
                        sub += f", {failed} failed"
                    if ni:
                        sub += f", {ni} inconclusive"
                    cells.append({"text": fmt_rate(rate), "sub": sub, "color": rate_color(good),
                                  "failed": failed})
                if is_bug is None or is_bug != wanted_bug:
                    continue
                rows.append({"variant": v, "kind": group, "cells": cells,
                             "label": "false alarms" if group == "alarm" else "detected"})
        out.append({"model": model, "dtype": dtype, "columns": cols, "rows": rows})
    return out


def settings_grids(t: Tables, counts: dict | None = None) -> list[dict[str, Any]]:
    """Method x eps: mean detection rate and false-alarm rate (which settings to trust)."""
    counts = counts or {}
    out = []
    for model, dtype, d in _detection_by_model(t):
        labels = sorted(d["eps_label"].unique(), key=lambda s: (s == "auto", -_num(s)))
        rows = []
        for m in sorted(d["method"].unique(), key=method_sort_key):
            cells = []
            for lab in labels:
                e = d[(d.method == m) & (d.eps_label == lab)]
                if e.empty:
                    cells.append(None)
                    continue
                tot = [counts.get((model, dtype, v, m, lab), (0, 0, 0)) for v in e["variant"]]
                n, nf, ni = (sum(x[k] for x in tot) for k in range(3))
                bad = _problem_cell(n, nf, ni)
                if bad is not None:
                    cells.append({"det": bad["text"], "fa": bad["sub"], "color": bad["color"],
                                  "alarm": False})
                    continue
                bug = _expected_bug(e)
                dr = e.loc[bug, "detection_rate"].mean() if bug.any() else math.nan
                fa = e.loc[~bug, "false_alarm_rate"].mean() if (~bug).any() else math.nan
                if np.isnan(dr):
                    good = None if np.isnan(fa) else 1 - fa
                else:
                    good = max(dr - (0 if np.isnan(fa) else 3 * fa), 0.0)
                cells.append({"det": fmt_rate(dr), "fa": "FA " + fmt_rate(fa),
                              "color": rate_color(good),
                              "alarm": bool(pd.notna(fa) and fa > 0)})
            rows.append({"method": m, "cells": cells})
        out.append({"model": model, "dtype": dtype, "labels": labels, "rows": rows})
    return out


def _num(label: str) -> float:
    try:
        return float(label)
    except ValueError:
        return math.inf


TRUST_CLASS = {"trust": "ok", "no false alarm": "ok", "weak": "warn", "inconclusive": "warn",
               "do not trust": "bad", "failed": "bad", "not trustworthy": "warn"}


def _trust(dr: Any, fa: Any, n_done: int, n_inconclusive: int) -> str:
    if n_done == 0:
        return "failed"
    if pd.notna(fa) and fa > 0:
        return "do not trust"
    if n_inconclusive:
        return "inconclusive"
    if dr is None or pd.isna(dr):
        return "no false alarm"
    return "trust" if dr >= 0.9 else "weak"


def at_a_glance(best: dict, grids: list[dict], bottoms: dict, counts: dict | None,
                files: frozenset | set = frozenset(), trust: pd.DataFrame | None = None
                ) -> list[dict[str, Any]]:
    """Per (model, dtype): each method's best eps with its rates, a trust word, the V bottom.

    Trust words: ``trust`` (no false alarm, detection >= 90%), ``weak`` (no false alarm, lower
    detection), ``no false alarm`` (a model with no bug variant), ``do not trust`` (false
    alarms), ``inconclusive`` (NaN or inf, or a step that cannot see a bug), ``failed`` (no
    cell finished). A model *file* has no known truth of its own: its rates are on the injected
    bugs (mutations), its alarms are "alarms on the reference", and its trust word is whether
    the setting is trustworthy for it (:mod:`gradlab.trust`); never "do not trust". A "best
    eps" with nothing to detect there (no detection rate) is shown as a dash.
    """
    trusted = set()
    if trust is not None and len(trust):
        t = trust[trust["trustworthy"].astype(bool)]
        trusted = set(zip(t["model"], t["dtype"], t["method"], t["eps_label"], strict=True))
    out = []
    for (model, dtype) in sorted({(k[0], k[1]) for k in best}):
        items = []
        for (m_, d_, method), b in sorted(best.items(), key=lambda kv: method_sort_key(kv[0][2])):
            if (m_, d_) != (model, dtype):
                continue
            n_done = n_inc = 1
            if counts is not None:  # summed over the variants of the setting
                tot = [v for k, v in counts.items()
                       if (k[0], k[1], k[3], k[4]) == (model, dtype, method, b["label"])]
                n_done = sum(n - f for n, f, _ in tot)
                n_inc = sum(i for _, _, i in tot)
            trust = _trust(b["detection_rate"], b["false_alarm_rate"], n_done, n_inc)
            if model in files and trust != "failed":
                trust = ("trust" if (model, dtype, method, b["label"]) in trusted
                         else "not trustworthy")
            bottom = bottoms.get((model, dtype, method))
            nothing = b["detection_rate"] is None or pd.isna(b["detection_rate"])
            items.append({"method": method,
                          "eps": "n/a" if not n_done else "—" if nothing else b["label"],
                          "det": fmt_rate(b["detection_rate"]),
                          "fa": fmt_rate(b["false_alarm_rate"]) if n_done else "n/a",
                          "trust": trust, "trust_class": TRUST_CLASS[trust],
                          "bottom": eps_label(bottom) if bottom is not None else "n/a"})
        alarms = 0
        for g in grids:
            if (g["model"], g["dtype"]) == (model, dtype):
                alarms = sum(1 for r in g["rows"] for c in r["cells"] if c and c["alarm"])
        if model in files:
            alarms = 0
        out.append({"model": model, "dtype": dtype, "methods": items, "alarm_settings": alarms,
                    "file": model in files})
    return out
