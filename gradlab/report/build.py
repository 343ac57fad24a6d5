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
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from .. import __version__
from ..atomic import atomic_write_bytes
from ..vocab import method_sort_key
from . import figures as F
from . import per_setting as P
from . import sections as S
from . import where as W
from . import yours as Y
from .cells import Scan, catalogue_batches, read_settings_rows, scan_cells
from .data import (
    Tables,
    cell_frame,
    csv_data_uri,
    flatten_run,
    load_tables,
    with_labels,
)
from .seed import case_section, seed_section
from .tidy import tidy_download

__all__ = ["build_report", "FIGURE_NAMES", "TABLE_ROW_LIMIT"]

FIGURE_NAMES = ("seed-threshold-trap.png", "verdict-matrix.png", "error-vs-eps.png",
                "block-heatmap.png", "element-heatmaps.png")
PANEL_COLUMNS = ["model", "dtype", "variant", "seed", "method", "eps", "block", "difference",
                 "block_verdict", "diagnosis", "flagged", "in_truth", "expected", "status"]
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


def _full_table(cells_path: Path, st: pd.DataFrame | None) -> dict[str, Any]:
    """The big table: every cell up to :data:`TABLE_ROW_LIMIT` cells (read from the cells),
    else one row per setting over seeds (from the settings table)."""
    if st is None or st.empty:
        return {"mode": "none", "rows": [], "note": "no cells table"}
    n_cells = int(st["cells"].sum())
    if n_cells <= TABLE_ROW_LIMIT:
        return _cell_rows(cell_frame(pd.concat(list(_catalogue_frames(cells_path)),
                                               ignore_index=True)))
    order = {v: i for i, v in enumerate(S.variant_order(st["variant"].unique()))}
    summary = st.assign(_v=st["variant"].map(order), _m=[method_sort_key(m) for m in st["method"]],
                        _e=-st["eps"].fillna(0.0))
    summary = summary.sort_values(["model", "dtype", "_v", "first_seed", "_m", "_e"],
                                  kind="stable")
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
    note = (f"{n_cells} cells are too many for one page: one row per model x dtype x variant x "
            f"method x eps ({len(summary)} rows"
            + (f", first {SUMMARY_ROW_LIMIT} shown" if len(summary) > SUMMARY_ROW_LIMIT
               else "")
            + "); every cell and block is in the download")
    return {"mode": "summary", "rows": rows, "note": note}


def _cell_rows(cf: pd.DataFrame) -> dict[str, Any]:
    """The big table with one row per cell (a small sweep)."""
    order = {v: i for i, v in enumerate(S.variant_order(cf["variant"].unique()))}
    cf = cf.assign(_v=cf["variant"].map(order), _m=[method_sort_key(m) for m in cf["method"]],
                   _e=-cf["eps"].fillna(0.0))
    cf = cf.sort_values(["model", "dtype", "_v", "seed", "_m", "_e"], kind="stable")
    rows = [{"model": r.model, "dtype": r.dtype, "variant": r.variant, "seed": r.seed,
             "method": r.method, "eps": r.eps_label, "eps_v": _v(r.eps),
             "verdict": r.cell_verdict, "expected": r.expected,
             "difference": r.cell_difference, "flagged": r.flagged_blocks,
             "truth": r.truth_blocks, "status": r.status, "error": r.error}
            for r in cf.itertuples(index=False)]
    return {"mode": "cells", "rows": rows, "note": f"all {len(cf)} cells, one row each"}


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
    cells_path = tables_dir / "cells.parquet"
    t = load_tables(tables_dir, catalogue_only=True, read_cells=False)
    if log is not None:
        log(t.read_note)
    st = t.settings if t.cells_ok and t.settings is not None and len(t.settings) else None
    scan = scan_cells(cells_path) if t.cells_ok else None
    yours = _your_models(t)
    files = scan.files if scan is not None and _has_column(cells_path, "model_kind") else (
        set(t.models["model"]) if t.models is not None else set())
    best = S.best_eps_map(t)
    bottoms = P.v_bottoms(st)
    seed = seed_section(t)
    figs: dict[str, F.Figure] = {"seed-threshold-trap.png": F.trap_figure(seed) if seed else
                                 F.placeholder("seed-threshold-trap.png", "no seed tables")}
    counts = P.status_counts(st)
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
    variants = S.variant_order(st["variant"].unique()) if st is not None else []
    rows = None
    if st is not None:
        best_eps = {k: v["eps"] for k, v in best.items()}
        figs["error-vs-eps.png"] = F.eps_curves_figure(
            P.curve_stats(st), P.thresholds(st, cells_path), best_eps, bottoms, variants)
        rows = read_settings_rows(cells_path, P.panel_settings(st, best, bottoms), PANEL_COLUMNS)
        panels = W.block_panels(rows, best, bottoms, F.block_sort_key)
    else:
        figs["error-vs-eps.png"] = F.placeholder("error-vs-eps.png", "no cells table")
        panels = []
    figs["block-heatmap.png"] = F.block_heatmap_figure(panels)
    case, failing = case_section(t.case)
    figs["element-heatmaps.png"] = F.placeholder(
        "element-heatmaps.png", "the chosen case could not be recomputed") if case["error"] \
        else F.element_heatmaps_figure(failing, case["title"])
    download = tidy_download(cells_path, None if scan is None else
                             lambda: _catalogue_frames(cells_path), out_html.parent)
    summary_download = None
    if t.detection is not None:
        uri, _, size = csv_data_uri(t.detection, gzip_above=10**12)
        summary_download = {"uri": uri, "name": "gradlab-detection.csv",
                            "size": f"{size / 1024:.0f} KiB"}
    context = {
        "title": title, "css": _css(), "version": __version__, "yours": yours,
        "tables_dir": str(tables_dir), "notes": t.notes,
        "derived": sorted(t.derived),
        "run": S.run_summary(t, st, scan.seeds if scan is not None else ()),
        "run_items": flatten_run(t.run) if t.run else [],
        "failures": S.failures(_problems(scan, st)), "glance": S.at_a_glance(
            best, grids, bottoms, counts if st is not None else None, files, t.trust),
        "seed": seed, "matrices": matrices, "grids": grids,
        "panels": panels, "diagnoses": W.sweep_diagnoses(rows, panels) if rows is not None
        else [], "localisation": W.localisation_rows(t, best), "case": case,
        "table": _full_table(cells_path, st), "download": download,
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


def _has_column(path: Path, name: str) -> bool:
    import pyarrow.parquet as pq

    return name in pq.ParquetFile(path).schema_arrow.names


def _catalogue_frames(cells_path: Path) -> Iterator[pd.DataFrame]:
    """The catalogue's rows in the table's order (sorted by the cell keys and block), as
    the tidy data shows them; one empty frame when there are none."""
    empty = True
    for df in catalogue_batches(cells_path):
        empty = False
        yield with_labels(df, add_label=False, copy=False)
    if empty:
        yield pd.read_parquet(cells_path).iloc[0:0]


def _problems(scan: Scan | None, st: pd.DataFrame | None) -> pd.DataFrame | None:
    """The failed or inconclusive cells as the failures section takes them."""
    if scan is None or st is None:
        return None
    cols = ["model", "dtype", "variant", "seed", "method", "status", "cell_verdict", "error"]
    df = scan.problems if scan.problems is not None else pd.DataFrame(columns=cols)
    df = with_labels(df, add_label=False)
    for name, default in (("status", "done"), ("cell_verdict", ""), ("error", "")):
        if name not in df.columns:
            df[name] = default
    df["error"] = df["error"].fillna("").astype(str)
    return df


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
