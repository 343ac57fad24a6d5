"""What the report derives from ``settings.parquet`` (one row per model x dtype x variant x
method x eps of the catalogue) instead of from the cells: the bottom of the V, the status
counts, the error-vs-eps curves and thresholds, and which settings the heatmaps show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..vocab import default_method, eps_label
from .cells import read_settings_rows

__all__ = ["v_bottoms", "status_counts", "curve_stats", "thresholds", "panel_settings"]

KEYS = ["model", "dtype", "variant", "method", "eps_label"]


def v_bottoms(st: pd.DataFrame | None) -> dict[tuple[str, str, str], float]:
    """(model, dtype, method) -> the eps where correct code's median difference is lowest
    (ties to the larger eps), as :func:`gradlab.examples.v_bottoms` computes from the cells.

    Args:
        st: the settings table, or None.
    """
    out: dict[tuple[str, str, str], float] = {}
    if st is None:
        return out
    ok = st[(st["variant"] == "correct") & st["done_median"].notna()]
    for (model, dtype, method), g in ok.groupby(["model", "dtype", "method"]):
        med = g.set_index("eps")["done_median"].sort_index(ascending=False)
        out[(str(model), str(dtype), str(method))] = float(med.idxmin())
    return out


def status_counts(st: pd.DataFrame | None) -> dict[tuple, tuple[int, int, int]]:
    """(model, dtype, variant, method, eps_label) -> (cells, failed, inconclusive among the
    cells that did not fail).

    Args:
        st: the settings table, or None.
    """
    if st is None or st.empty:
        return {}
    inc = st["inconclusive"] - st["failed_inconclusive"]
    return {tuple(k): (int(n), int(f), int(i)) for k, n, f, i in zip(
        st[KEYS].itertuples(index=False, name=None), st["cells"], st["failed"], inc,
        strict=True)}


def curve_stats(st: pd.DataFrame) -> pd.DataFrame:
    """Median, min and max over seeds of the cell difference (cells that did not fail, fixed
    eps, finite difference), indexed by model, dtype, method, variant, eps, floored at 1e-17.

    Args:
        st: the settings table.
    """
    data = st[st["done_median"].notna()]
    stats = data.set_index(["model", "dtype", "method", "variant", "eps"])[
        ["done_median", "done_min", "done_max"]].sort_index()
    stats.columns = ["median", "min", "max"]
    return stats.clip(lower=1e-17)


def thresholds(st: pd.DataFrame, cells_path: Path) -> dict[tuple, pd.Series]:
    """(model, dtype, method) -> median block threshold per eps, of the correct variant when
    there is one (from the settings), else of every variant (read from the cells).

    Args:
        st: the settings table.
        cells_path: ``cells.parquet``, read for a model with no correct variant only.
    """
    out = {}
    sub = st[st["threshold"].notna()]
    for key, g in sub.groupby(["model", "dtype", "method"]):
        key = tuple(str(k) for k in key)
        if (g["variant"] == "correct").any():
            out[key] = g[g["variant"] == "correct"].set_index("eps")["threshold"].sort_index()
            continue
        rows = read_settings_rows(cells_path, [(*key, None)], ["eps", "threshold", "variant"])
        rows = rows[rows["eps"].notna() & np.isfinite(rows["threshold"])]
        out[key] = rows.groupby("eps")["threshold"].median().sort_index()
    return out


def panel_settings(st: pd.DataFrame, best: dict, bottoms: dict
                   ) -> list[tuple[str, str, str, float]]:
    """The setting each block heatmap shows, per model x dtype with a finished cell: central
    (or the first method), at the bottom of the V, else at the method's best eps, else the
    first step there.

    Args:
        st: the settings table.
        best: (model, dtype, method) -> best eps (``label``).
        bottoms: (model, dtype, method) -> eps of the bottom of the V.

    Returns:
        (model, dtype, method, eps) of each panel; eps NaN for auto.
    """
    done = st[st["cells"] > st["failed"]]
    out = []
    for (model, dtype), d in done.groupby(["model", "dtype"], sort=True):
        method = default_method(d["method"].unique())
        b = best.get((model, dtype, method))
        label = b["label"] if b else None
        if (model, dtype, method) in bottoms:
            label = eps_label(bottoms[(model, dtype, method)])
        d = d[d["method"] == method]
        if label not in set(d["eps_label"]):
            label = d.sort_values(["variant", "first_seed"], kind="stable")["eps_label"].iloc[0]
        eps = d.loc[d["eps_label"] == label, "eps"].iloc[0]
        out.append((str(model), str(dtype), str(method), float(eps)))
    return out
