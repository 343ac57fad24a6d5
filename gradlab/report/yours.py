"""The report's first section, "Your models": the verdict on each model file and the
detection-limit curves of every model (from ``models``, ``trust`` and ``detection_limits``).

One figure per model (readable at any width), drawn from the mutation summaries of
:mod:`gradlab.trust`: for each method, the detection rate against the relative size of the
injected error, one line per step (the trustworthy steps solid, the others dotted).
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..vocab import method_sort_key
from .figures import Figure, _clip, _style, render

__all__ = ["your_models", "curve_figures", "settings_rows"]

VERDICT_CLASS = {"ok": "ok", "bug": "bad", "inconclusive": "warn", "failed": "bad"}


def _sci(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(x) else f"{x:.0e}" if x < 1 else f"{x:g}"


def your_models(models: pd.DataFrame | None) -> list[dict[str, Any]]:
    """One card per model file x dtype: verdict, blocks, diagnosis, agreement, a sentence."""
    if models is None or models.empty:
        return []
    out = []
    for r in models.itertuples(index=False):
        if r.verdict == "bug":
            lead = f"bug in {', '.join('d' + b for b in r.blocks.split(',') if b)}"
        elif r.verdict == "ok":
            lead = "no bug found"
        else:
            lead = r.verdict
        agree = (f"{r.agree} of {r.trusted} trustworthy settings agree"
                 if r.trusted else "no trustworthy setting")
        out.append({"model": r.model, "dtype": r.dtype, "verdict": r.verdict,
                    "cls": VERDICT_CLASS.get(r.verdict, "warn"), "lead": lead, "agree": agree,
                    "diagnosis": r.diagnosis, "cannot_see": r.cannot_see,
                    "limit": _sci(r.detection_limit)})
    return out


def settings_rows(trust: pd.DataFrame | None, model: str, dtype: str) -> list[dict[str, Any]]:
    """The settings table of one model: per method and step, what it sees and whether to
    trust it."""
    if trust is None or trust.empty:
        return []
    t = trust[(trust["model"] == model) & (trust["dtype"] == dtype)]
    t = t.assign(_m=[method_sort_key(m) for m in t["method"]]).sort_values(
        ["_m", "eps"], ascending=[True, False])
    return [{"method": r.method, "eps": r.eps_label,
             "sees": "only r ≥ 1" if r.sees >= 1 else _sci(r.sees),
             "stated": _sci(r.stated_limit),
             "fa": "—" if pd.isna(r.false_alarm_rate) else f"{100 * r.false_alarm_rate:.0f}%",
             "trust": "trustworthy" if r.trustworthy else "not trustworthy",
             "cls": "ok" if r.trustworthy else "warn"} for r in t.itertuples(index=False)]


def curve_figures(curves: pd.DataFrame | None, trust: pd.DataFrame | None
                  ) -> dict[tuple[str, str], Figure]:
    """One detection-limit figure per model x dtype (methods side by side)."""
    out: dict[tuple[str, str], Figure] = {}
    if curves is None or curves.empty:
        return out
    known = curves[curves["detection_rate"].notna()]
    for (model, dtype), g in known.groupby(["model", "dtype"], sort=True):
        methods = sorted(g["method"].unique(), key=method_sort_key)
        ok = set()
        if trust is not None:
            t = trust[(trust["model"] == model) & (trust["dtype"] == dtype) & trust["trustworthy"]]
            ok = set(zip(t["method"], t["eps_label"], strict=True))
        with _style():
            fig, axes = plt.subplots(1, len(methods), figsize=(2.9 * len(methods) + 0.6, 2.9),
                                     sharey=True, layout="constrained", squeeze=False)
            steps = sorted(g["eps"].unique(), reverse=True)
            cmap = plt.get_cmap("viridis")
            for ax, method in zip(axes[0], methods, strict=True):
                m = g[g["method"] == method]
                for i, eps in enumerate(steps):
                    s = m[m["eps"] == eps]
                    if s.empty:
                        continue
                    rate = s.groupby("size")["detection_rate"].mean().sort_index()
                    label = s["eps_label"].iloc[0]
                    good = (method, label) in ok
                    ax.plot(rate.index, 100 * rate.to_numpy(), marker="o", ms=3,
                            lw=1.6 if good else 0.9, ls="-" if good else ":",
                            color=cmap(i / max(1, len(steps) - 1)),
                            label=label + ("" if good else " (not trusted)"))
                ax.set_xscale("log")
                ax.set_title(_clip(method))
                ax.set_xlabel("relative size of the injected error")
                ax.set_ylim(-5, 105)
            axes[0][0].set_ylabel("detected (% of seeds)")
            axes[0][-1].legend(title="eps", fontsize=7, loc="center left",
                               bbox_to_anchor=(1.0, 0.5), frameon=False)
            fig.suptitle(f"{_clip(model)} ({dtype}): detection-limit curves "
                         "(solid: trustworthy settings, dotted: not)", fontsize=10.5)
            name = f"detection-limits-{len(out)}.png"
            out[(model, dtype)] = render(
                fig, name, f"detection rate against injected error size for {model}, "
                f"{dtype}, per method and step")
    return out


def curve_table(curves: pd.DataFrame | None, model: str, dtype: str) -> dict[str, Any]:
    """A wide table: one row per method x step, one column per mutation (rate in %)."""
    if curves is None or curves.empty:
        return {"columns": [], "rows": []}
    c = curves[(curves["model"] == model) & (curves["dtype"] == dtype)
               & curves["detection_rate"].notna()]
    cols = (c.drop_duplicates("variant").sort_values(["mutation", "size"],
                                                     ascending=[True, False])["variant"])
    rows = []
    for (method, _eps), g in sorted(c.groupby(["method", "eps"]),
                                   key=lambda kv: (method_sort_key(kv[0][0]), -kv[0][1])):
        rates = dict(zip(g["variant"], g["detection_rate"], strict=True))
        rows.append({"method": method, "eps": g["eps_label"].iloc[0],
                     "rates": [("—" if v not in rates else f"{100 * rates[v]:.0f}%",
                                np.nan if v not in rates else rates[v]) for v in cols]})
    return {"columns": [v.removeprefix("mut:") for v in cols], "rows": rows}
