"""The report's matplotlib figures (Agg backend), as PNG bytes.

Every label that comes from the tables (model, variant and block names) goes through
:func:`_clip`, which escapes ``$`` so a user's name is drawn as text, never parsed as mathtext
(which could fail to render).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..vocab import method_sort_key  # noqa: E402

__all__ = [
    "Figure",
    "render",
    "placeholder",
    "trap_figure",
    "eps_curves_figure",
    "block_heatmap_figure",
    "element_heatmaps_figure",
    "verdict_matrix_figure",
    "block_sort_key",
]

DPI = 110
STYLE = {
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.labelsize": 9.5,
    "legend.fontsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "svg.hashsalt": "gradlab",
}


@dataclass
class Figure:
    """A rendered figure: file name (for ``figures_dir``), alt text and PNG bytes."""

    name: str
    alt: str
    png: bytes
    width: int
    height: int


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def render(fig: plt.Figure, name: str, alt: str) -> Figure:
    """Save a matplotlib figure to PNG bytes (no timestamps in the metadata) and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    data = buf.getvalue()
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return Figure(name, alt, data, width, height)


def placeholder(name: str, text: str) -> Figure:
    """A small figure that says why there is nothing to plot (keeps figure names stable)."""
    with _style():
        fig, ax = plt.subplots(figsize=(6, 1.2), layout="constrained")
        ax.axis("off")
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
        return render(fig, name, text)


def block_sort_key(name: str) -> tuple[float, int, str]:
    """W1, b1, W2, b2, ... (layer number first, weights before biases), others by name."""
    m = re.search(r"(\d+)$", name)
    layer = float(m.group(1)) if m else math.inf
    return (layer, 0 if name[:1].upper() == "W" else 1, name)


def _short(value: float) -> str:
    if not np.isfinite(value):
        return "inf" if value == np.inf else "n/a"
    if value == 0:
        return "0"
    if 0.01 <= abs(value) < 10:
        return f"{value:.2f}"
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def trap_figure(section) -> Figure:
    """Difference vs eps for the seed net, correct and buggy, with both thresholds."""
    with _style():
        fig, ax = plt.subplots(figsize=(8.5, 5.0), layout="constrained")
        eps = np.array(section.trap_eps)
        ax.loglog(eps, section.trap_buggy, "o-", color="#c0392b", lw=1.6,
                  label="seed net with its two bugs")
        ax.loglog(eps, section.trap_correct, "o-", color="#1f6f8b", lw=2.2,
                  label="correct seed net")
        ax.loglog(eps, section.trap_threshold, "--", color="#27ae60", lw=1.8,
                  label="gradlab threshold (10 x measured noise floor)")
        ax.axhline(1e-7, color="#7f8c8d", lw=1.4, ls=":", label="the seed's threshold 1e-7")
        ax.axvline(1e-7, color="#bdc3c7", lw=1.0)
        k = int(np.argmin(np.abs(eps - 1e-7)))
        ax.annotate(f"eps = 1e-7: correct code scores {section.trap_correct[k]:.3g},\n"
                    "above 1e-7: the seed's rule calls it a bug",
                    xy=(eps[k], section.trap_correct[k]), xytext=(3e-9, 1e-10),
                    arrowprops={"arrowstyle": "->", "color": "#555"}, fontsize=8.5)
        ax.invert_xaxis()
        ax.set_xlabel("step eps (smaller to the right)")
        ax.set_ylabel("relative difference")
        ax.set_title("The threshold trap: round-off grows like 1/eps, a fixed 1e-7 cannot hold")
        fig.legend(loc="outside lower center", ncol=2, frameon=False)
        return render(fig, "seed-threshold-trap.png",
                      "Relative difference against eps for the seed net, correct and buggy, "
                      "with the seed's fixed 1e-7 threshold and gradlab's noise-floor threshold")


def _combos(df: pd.DataFrame) -> list[tuple[str, str]]:
    return [tuple(x) for x in df[["model", "dtype"]].drop_duplicates().itertuples(index=False)]


def _variant_colors(variants: Sequence[str]) -> dict[str, object]:
    cmap = plt.get_cmap("tab20")
    bugs = [v for v in variants if v != "correct"]
    colors: dict[str, object] = {v: cmap(i % 20) for i, v in enumerate(bugs)}
    colors["correct"] = "black"
    return colors


def eps_curves_figure(stats: pd.DataFrame, thresholds: dict, best: dict, bottoms: dict,
                      variants: list[str], max_rows: int = 6) -> Figure:
    """Cell difference vs eps, per (model, dtype) row and method column, one line per variant.

    ``stats`` holds the median, min and max over seeds of the cell difference, indexed by
    model, dtype, method, variant and eps (:func:`gradlab.report.per_setting.curve_stats`);
    ``thresholds`` maps (model, dtype, method) to the median threshold per eps; ``best`` and
    ``bottoms`` map (model, dtype, method) to the best eps and to the bottom of the V.
    """
    if stats.empty:
        return placeholder("error-vs-eps.png", "no finished cells with a fixed eps to plot")
    data = stats.index.to_frame(index=False)
    combos = _combos(data)[:max_rows]
    methods = sorted(data["method"].unique(), key=method_sort_key)
    colors = _variant_colors(variants)
    curves = {k: g.droplevel([0, 1, 2, 3]) for k, g in stats.groupby(level=[0, 1, 2, 3])}
    with _style():
        fig, axes = plt.subplots(len(combos), len(methods), squeeze=False, sharey=True,
                                 layout="constrained",
                                 figsize=(3.3 * len(methods) + 2.8, 3.0 * len(combos) + 0.6))
        handles = {}
        for r, (model, dtype) in enumerate(combos):
            for c, method in enumerate(methods):
                ax = axes[r][c]
                for variant in variants:
                    y = curves.get((model, dtype, method, variant))
                    if y is None:
                        continue
                    # many variants: thin, slightly transparent lines and faint bands, so the
                    # correct code's thick line and the threshold stay readable
                    lw, z, a = (2.4, 5, 1.0) if variant == "correct" else (0.9, 3, 0.75)
                    (line,) = ax.plot(y.index, y["median"], "-", marker=".", ms=3, lw=lw,
                                      color=colors[variant], zorder=z, alpha=a)
                    if (y["max"] > y["min"]).any():
                        ax.fill_between(y.index, y["min"], y["max"], color=colors[variant],
                                        alpha=0.05 if variant != "correct" else 0.12, lw=0,
                                        zorder=z - 1)
                    handles.setdefault(variant, line)
                    bottom = bottoms.get((model, dtype, method))
                    if variant == "correct" and bottom in y.index and len(y) >= 3:
                        ax.plot(bottom, y.loc[bottom, "median"], marker="v", ms=11,
                                color="#e67e22", zorder=7, ls="none")
                thr = thresholds.get((model, dtype, method))
                if thr is not None:
                    handles.setdefault("noise-floor threshold (median block)", ax.plot(
                        thr.index, thr.to_numpy(), "--", color="#27ae60", lw=1.8, zorder=6)[0])
                b = best.get((model, dtype, method))
                if b is not None and np.isfinite(b):
                    handles.setdefault("best eps (chosen from detection)",
                                       ax.axvline(b, color="#8e44ad", ls="-.", lw=1.2))
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.invert_xaxis()
                if r == 0:
                    ax.set_title(_clip(method))
                if r == len(combos) - 1:
                    ax.set_xlabel("eps")
                if c == 0:
                    ax.set_ylabel(_clip(f"{model} ({dtype})", 40) + "\nrelative difference")
        handles["bottom of the V (correct code)"] = plt.Line2D(
            [], [], marker="v", ms=9, color="#e67e22", ls="none")
        fig.legend(handles.values(), [_clip(h, 40) for h in handles],
                   loc="outside right center", frameon=False)
        return render(fig, "error-vs-eps.png",
                      "Relative difference against eps, one panel per model and method, one "
                      "line per variant (median over seeds, band = min to max)")


def _clip(text: str, n: int = 24) -> str:
    """Shorten a label from the tables and escape it for matplotlib (no mathtext)."""
    text = str(text)
    text = text if len(text) <= n else text[: n - 1] + "…"
    return text.replace("$", r"\$")


def block_heatmap_figure(panels: list[dict]) -> Figure:
    """Variant x block heatmaps of the relative difference, ground-truth blocks outlined.

    Each panel: ``title``, ``variants``, ``blocks``, ``values`` (2-D), ``truth`` and ``flagged``
    (boolean 2-D).
    """
    if not panels:
        return placeholder("block-heatmap.png", "no per-block data to plot")
    norm = LogNorm(vmin=1e-12, vmax=1.0)
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with _style():
        width = max(max(3.0, 0.62 * len(p["blocks"]) + 1.6) for p in panels) + 1.4
        height = max(2.6, 0.34 * max(len(p["variants"]) for p in panels) + 1.3)
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                                 figsize=(width * ncols + 1.2, height * nrows))
        im = None
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        for ax, p in zip(axes.flat, panels, strict=False):
            vals = np.clip(np.nan_to_num(p["values"], nan=1e-12, posinf=1.0), 1e-12, 1.0)
            im = ax.imshow(vals, cmap="magma_r", norm=norm, aspect="auto")
            ax.grid(False)
            ax.set_xticks(range(len(p["blocks"])), [_clip(b, 10) for b in p["blocks"]])
            ax.set_yticks(range(len(p["variants"])), [_clip(v) for v in p["variants"]])
            ax.set_title(_clip(p["title"], 48), fontsize=9.5)
            for (i, j), v in np.ndenumerate(p["values"]):
                dark = np.isfinite(v) and v > 1e-4
                mark = p.get("marks")[i, j] if p.get("marks") is not None else ""
                ax.text(j, i, mark or _short(v), ha="center", va="center", fontsize=7.5,
                        color="white" if dark else "#333",
                        fontweight="bold" if p["flagged"][i, j] else "normal")
                if p["truth"][i, j]:
                    ax.add_patch(Rectangle((j - 0.46, i - 0.44), 0.92, 0.88, fill=False,
                                           ec="#00b4d8", lw=2.4))
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.9, aspect=30)
        cb.set_label("relative difference (median over seeds)")
        return render(fig, "block-heatmap.png",
                      "Heatmap of the relative difference per variant and parameter block; "
                      "ground-truth blocks are outlined")


def element_heatmaps_figure(blocks: list[tuple[str, np.ndarray, np.ndarray]], title: str
                            ) -> Figure:
    """|grad - approx| per element for each failing block: ``(name, grad, approx)``."""
    if not blocks:
        return placeholder("element-heatmaps.png", "the chosen case has no failing block")
    grids, notes = [], []
    for _name, g, a in blocks:
        g, a = np.asarray(g, float), np.asarray(a, float)
        note = ""
        if g.shape != a.shape:
            note = f"\nbackprop gave shape {g.shape}: compared in memory order"
            if g.size == a.size:
                g = g.reshape(a.shape)
        err = np.abs(g - a) if g.shape == a.shape else np.full(a.shape, np.nan)
        grids.append(err.reshape(1, -1) if err.ndim < 2 else err.reshape(err.shape[0], -1))
        notes.append(note)
    sizes = [min(0.48, 5.0 / max(gr.shape)) for gr in grids]
    widths = [max(gr.shape[1] * c, 0.9) + 1.3 for gr, c in zip(grids, sizes, strict=True)]
    height = max(gr.shape[0] * c for gr, c in zip(grids, sizes, strict=True)) + 1.6
    with _style():
        fig, axes = plt.subplots(1, len(blocks), squeeze=False, layout="constrained",
                                 figsize=(min(sum(widths) + 0.4, 15), max(height, 2.6)),
                                 gridspec_kw={"width_ratios": widths})
        for ax, (name, _g, a), grid, note in zip(axes[0], blocks, grids, notes, strict=True):
            im = ax.imshow(grid, cmap="Reds", aspect="equal", vmin=0)
            ax.grid(False)
            shape = "x".join(str(n) for n in np.shape(a)) or "scalar"
            ax.set_title(f"d{_clip(name, 12)} ({shape})\n|backprop - numerical|{note}",
                         fontsize=9)
            if grid.shape[1] <= 20:
                ax.set_xticks(range(grid.shape[1]))
            if grid.shape[0] <= 20:
                ax.set_yticks(range(grid.shape[0]))
            ax.tick_params(labelsize=7.5, length=2)
            if grid.size <= 60 and np.isfinite(grid).all():
                top = float(grid.max()) or 1.0
                for (i, j), v in np.ndenumerate(grid):
                    ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7,
                            color="white" if v > 0.6 * top else "black")
            fig.colorbar(im, ax=ax, shrink=0.85, aspect=18).ax.tick_params(labelsize=7.5)
        fig.suptitle(_clip(title, 110), fontsize=10)
        return render(fig, "element-heatmaps.png",
                      "Per-element absolute error of each failing block of the chosen case")


def verdict_matrix_figure(panels: list[dict]) -> Figure:
    """One heatmap: variants (rows) x model and method (columns) at each method's best eps.

    Each panel (one model): ``title``, ``rows`` (variant names), ``methods`` (column labels),
    ``values`` (2-D rates, NaN = none) and ``alarm`` (per row: the rate is a false-alarm rate,
    lower is better). Colour: green good, red bad, either way round.
    """
    if not panels:
        return placeholder("verdict-matrix.png", "no detection table")
    variants: list[str] = []
    for p in panels:
        variants += [r for r in p["rows"] if r not in variants]
    cols = [(k, j) for k, p in enumerate(panels) for j in range(len(p["methods"]))]
    good = np.full((len(variants), len(cols)), np.nan)
    vals = np.full_like(good, np.nan)
    alarm = np.zeros_like(good, bool)
    for c, (k, j) in enumerate(cols):
        p = panels[k]
        for i, row in enumerate(p["rows"]):
            v = float(p["values"][i][j])
            r = variants.index(row)
            vals[r, c], alarm[r, c] = v, bool(p["alarm"][i])
            good[r, c] = 1 - v if p["alarm"][i] else v
    with _style():
        fig, ax = plt.subplots(figsize=(0.62 * len(cols) + 2.8, 0.3 * len(variants) + 2.2),
                               layout="constrained")
        shown = np.where(np.isnan(good), np.nan, 0.08 + 0.84 * np.clip(good, 0, 1) ** 3)
        ax.imshow(np.ma.masked_invalid(shown), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto",
                  alpha=0.75)
        ax.set_facecolor("#eeeeee")
        ax.grid(False)
        ax.set_yticks(range(len(variants)), [_clip(v, 30) for v in variants])
        ax.set_xticks(range(len(cols)), [_clip(panels[k]["methods"][j], 22) for k, j in cols],
                      rotation=60, ha="right", fontsize=8)
        for (i, j), v in np.ndenumerate(vals):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=7,
                        color="#7a0000" if alarm[i, j] and v > 0 else "black")
        start = 0
        for p in panels:
            n = len(p["methods"])
            if start:
                ax.axvline(start - 0.5, color="black", lw=1.5)
            ax.text(start + (n - 1) / 2, -0.8, _clip(p["title"], 4 * n + 6), ha="center",
                    va="bottom", fontsize=8.5, fontweight="bold")
            start += n
        ax.set_title("Detection rate (false-alarm rate in the rows marked so), each method "
                     "at its best eps", pad=22)
        return render(fig, "verdict-matrix.png",
                      "Detection rate per variant, model and method at each method's best eps; "
                      "rows for code without a bug show the false-alarm rate")
