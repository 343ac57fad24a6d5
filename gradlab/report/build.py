"""``build_report``: read the sweep's tables, make the figures, render one self-contained HTML.

The page embeds everything (figures as base64 PNG, CSS and a few lines of JS inline, the tidy
data as a ``data:`` URI), so it opens offline and makes no network request. The template is
rendered by Jinja2 with autoescape on: every string that came from the tables or the config is
escaped.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from .. import __version__
from ..atomic import atomic_write_bytes
from ..examples import v_bottoms
from ..vocab import CELL_KEYS, method_sort_key
from . import figures as F
from . import sections as S
from . import where as W
from . import yours as Y
from .data import (
    Tables,
    cell_frame,
    csv_data_uri,
    flatten_run,
    load_tables,
)
from .seed import case_section, seed_section
from .tidy import tidy_download

__all__ = ["build_report", "FIGURE_NAMES", "TABLE_ROW_LIMIT"]

FIGURE_NAMES = ("seed-threshold-trap.png", "verdict-matrix.png", "error-vs-eps.png",
                "block-heatmap.png", "element-heatmaps.png")
TABLE_ROW_LIMIT = 2000  # cells shown one per row up to this many
SUMMARY_ROW_LIMIT = 4000  # else rows over seeds, up to this many


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gradlab.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sci"] = S.fmt_sci
    env.filters["rate"] = S.fmt_rate
    return env


def _css() -> Markup:
    """The package's own stylesheet, inlined verbatim (it is code, not data: never escaped,
    and it cannot close the style element)."""
    css = resources.files("gradlab.report").joinpath("report.css").read_text(encoding="utf-8")
    if "<" in css:
        raise ValueError("report.css must not contain '<'")
    return Markup(css)


def _img(fig: F.Figure) -> dict[str, Any]:
    return {"src": "data:image/png;base64," + base64.b64encode(fig.png).decode("ascii"),
            "alt": fig.alt, "width": fig.width, "height": fig.height, "name": fig.name}


def _full_table(cf: pd.DataFrame | None, det: pd.DataFrame | None) -> dict[str, Any]:
    if cf is None or cf.empty:
        return {"mode": "none", "rows": [], "note": "no cells table"}
    order = {v: i for i, v in enumerate(S.variant_order(cf["variant"].unique()))}
    cf = cf.assign(_v=cf["variant"].map(order), _m=[method_sort_key(m) for m in cf["method"]],
                   _e=-cf["eps"].fillna(0.0))
    cf = cf.sort_values(["model", "dtype", "_v", "seed", "_m", "_e"], kind="stable")
    if len(cf) <= TABLE_ROW_LIMIT:
        rows = [{"model": r.model, "dtype": r.dtype, "variant": r.variant, "seed": r.seed,
                 "method": r.method, "eps": r.eps_label, "eps_v": _v(r.eps),
                 "verdict": r.cell_verdict, "expected": r.expected,
                 "difference": r.cell_difference, "flagged": r.flagged_blocks,
                 "truth": r.truth_blocks, "status": r.status, "error": r.error}
                for r in cf.itertuples(index=False)]
        return {"mode": "cells", "rows": rows, "note": f"all {len(cf)} cells, one row each"}
    g = cf.groupby(["model", "dtype", "variant", "method", "eps_label"], sort=False)
    summary = g.agg(eps=("eps", "first"), seeds=("seed", "nunique"),
                    bug=("cell_verdict", lambda s: int((s == "bug").sum())),
                    inconclusive=("cell_verdict", lambda s: int((s == "inconclusive").sum())),
                    failed=("status", lambda s: int((s == "failed").sum())),
                    expected=("expected", "first"),
                    median=("cell_difference", "median")).reset_index()
    rows = []
    for r in summary.itertuples(index=False):
        done = r.seeds - r.failed
        flag = "failed" if r.failed else ("wrong" if (r.expected == "bug" and r.bug < done)
                                          or (r.expected != "bug" and r.bug) else "")
        rows.append({"model": r.model, "dtype": r.dtype, "variant": r.variant,
                     "method": r.method, "eps": r.eps_label, "eps_v": _v(r.eps),
                     "seeds": r.seeds, "bug": r.bug, "failed": r.failed,
                     "inconclusive": r.inconclusive, "expected": r.expected,
                     "difference": r.median, "flag": flag})
    rows = rows[:SUMMARY_ROW_LIMIT]
    note = (f"{len(cf)} cells are too many for one page: one row per model x dtype x variant x "
            f"method x eps ({len(summary)} rows"
            + (f", first {SUMMARY_ROW_LIMIT} shown" if len(summary) > SUMMARY_ROW_LIMIT
               else "")
            + "); every cell and block is in the download")
    return {"mode": "summary", "rows": rows, "note": note}


def _v(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(x) else repr(x)


def build_report(tables_dir: Path, out_html: Path, title: str,
                 figures_dir: Path | None = None, log=None) -> Path:
    """Render the sweep's tables into one self-contained HTML file.

    Args:
        tables_dir: folder with ``cells.parquet`` and the summaries (``docs/tables.md``);
            missing optional tables are derived or reported on the page.
        out_html: the HTML file to write (atomically: temp file, then rename; after the
            figures, so that a figure that cannot be written leaves the old page).
        title: the page title (escaped like every other string).
        figures_dir: if given, each figure is also saved there as PNG under the fixed names
            :data:`FIGURE_NAMES` (a placeholder image when a figure has no data).

        log: called with one line saying how many cells were read.

    Returns:
        ``out_html``. Past a size limit the tidy data is written beside it instead of
        embedded (:mod:`gradlab.report.tidy`).

    Raises:
        GradlabError: ``cannot write PATH: reason`` for the page or a figure.
    """
    tables_dir, out_html = Path(tables_dir), Path(out_html)
    t = load_tables(tables_dir, catalogue_only=True)
    if log is not None:
        log(t.read_note)
    all_cells = t.cells
    if all_cells is not None and len(all_cells):  # the catalogue's sections: no mutations
        t.cells = all_cells[~all_cells["variant"].str.startswith("mut:")]
    cells = t.cells
    yours = _your_models(t)
    files = _file_models(all_cells, t)
    cf = cell_frame(cells) if cells is not None and len(cells) else None
    best = S.best_eps_map(t)
    bottoms = v_bottoms(cf)
    seed = seed_section(t)
    figs: dict[str, F.Figure] = {"seed-threshold-trap.png": F.trap_figure(seed) if seed else
                                 F.placeholder("seed-threshold-trap.png", "no seed tables")}
    counts = S.status_counts(cf)
    # the catalogue's matrices: a model file has no bug variants and no known truth of its own
    # (its verdict is in "Your models"), so it has no row there
    catalogue = dataclasses.replace(t, detection=None if t.detection is None else
                                    t.detection[~t.detection["model"].isin(files)])
    matrices = S.verdict_matrices(catalogue, best, counts)
    grids = S.settings_grids(catalogue, counts)
    if figures_dir is not None:  # shown as an HTML table on the page; PNG for Snakemake only
        figs["verdict-matrix.png"] = F.verdict_matrix_figure([
            {"title": f"{m['model']} ({m['dtype']})",
             "rows": [r["variant"] + (" (false alarms)" if r["kind"] == "alarm" else "")
                      for r in m["rows"]],  # the same variant can be both on two models
             "methods": [f"{c['method']} @ {c['eps']}" for c in m["columns"]],
             "values": [[_pct(c["text"]) for c in r["cells"]] for r in m["rows"]],
             "alarm": [r["kind"] == "alarm" for r in m["rows"]]}
            for m in matrices if m["rows"]])
    variants = S.variant_order(cf["variant"].unique()) if cf is not None else []
    if cf is not None:
        best_eps = {k: v["eps"] for k, v in best.items()}
        figs["error-vs-eps.png"] = F.eps_curves_figure(cf, cells, best_eps, bottoms, variants)
        panels = W.block_panels(cells, best, bottoms, F.block_sort_key)
    else:
        figs["error-vs-eps.png"] = F.placeholder("error-vs-eps.png", "no cells table")
        panels = []
    figs["block-heatmap.png"] = F.block_heatmap_figure(panels)
    case, failing = case_section(t.case)
    figs["element-heatmaps.png"] = F.placeholder(
        "element-heatmaps.png", "the chosen case could not be recomputed") if case["error"] \
        else F.element_heatmaps_figure(failing, case["title"])
    download = tidy_download(tables_dir / "cells.parquet", None if cells is None else
                             cells.sort_values([c for c in CELL_KEYS + ["block"]
                                                if c in cells.columns], kind="stable"),
                             out_html.parent)
    summary_download = None
    if t.detection is not None:
        uri, _, size = csv_data_uri(t.detection, gzip_above=10**12)
        summary_download = {"uri": uri, "name": "gradlab-detection.csv",
                            "size": f"{size / 1024:.0f} KiB"}
    context = {
        "title": title, "css": _css(), "version": __version__, "yours": yours,
        "tables_dir": str(tables_dir), "notes": t.notes,
        "derived": sorted(t.derived), "run": S.run_summary(t, cf),
        "run_items": flatten_run(t.run) if t.run else [],
        "failures": S.failures(cf), "glance": S.at_a_glance(
            best, grids, bottoms, cf, files, t.trust),
        "seed": seed, "matrices": matrices, "grids": grids,
        "panels": panels, "diagnoses": W.sweep_diagnoses(cells, panels) if cells is not None
        else [], "localisation": W.localisation_rows(t, best), "case": case,
        "table": _full_table(cf, t.detection), "download": download,
        "summary_download": summary_download,
        "figs": {name: _img(f) for name, f in figs.items() if name != "verdict-matrix.png"},
    }
    html = _env().get_template("report.html").render(**context)
    if figures_dir is not None:  # first: a figure that cannot be written leaves no new page
        for name in FIGURE_NAMES:
            atomic_write_bytes(Path(figures_dir) / name, figs[name].png)
        for y in yours["curves"]:
            if y["fig"] is not None:
                atomic_write_bytes(Path(figures_dir) / y["fig"]["name"], y["png"])
    atomic_write_bytes(out_html, html.encode("utf-8"))
    return out_html


def _file_models(cells: pd.DataFrame | None, t: Tables) -> set[str]:
    """The models that are a user's files (from the cells, else from models.parquet)."""
    if cells is not None and "model_kind" in cells.columns:
        return set(cells.loc[cells["model_kind"] == "file", "model"].astype(str))
    return set(t.models["model"]) if t.models is not None else set()


def _your_models(t: Tables) -> dict[str, Any]:
    """The first section: model files' verdicts, then every model's curves and settings."""
    figs = Y.curve_figures(t.detection_limits, t.trust)
    pairs = sorted(figs) if t.detection_limits is None else sorted(
        set(zip(t.detection_limits["model"], t.detection_limits["dtype"], strict=True)))
    files = set(t.models["model"]) if t.models is not None else set()
    curves = [{"model": m, "dtype": d, "file": m in files,
               "fig": _img(figs[(m, d)]) if (m, d) in figs else None,
               "png": figs[(m, d)].png if (m, d) in figs else b"",
               "settings": Y.settings_rows(t.trust, m, d),
               "table": Y.curve_table(t.detection_limits, m, d)}
              for m, d in sorted(pairs, key=lambda p: (p[0] not in files, p))]
    return {"cards": Y.your_models(t.models), "curves": curves}


def _pct(text: str) -> float:
    return float(text.rstrip("%")) / 100 if text.endswith("%") else math.nan
