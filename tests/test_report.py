"""The HTML report: rendered from sweep tables made by gradlab's core on a tiny grid, checked as
text (sections, numbers, escaping, downloads, tolerance of missing tables, atomic writes) and in
a real headless Chromium (screenshot, images, console, network, injected scripts)."""

from __future__ import annotations

import base64
import gzip
import html as htmlmod
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import browser_problem, open_page
from report_fixture import TINY, Grid, file_models, make_tables

from gradlab.report import FIGURE_NAMES, build_report
from gradlab.spec import build_problem

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "{{7*7}}",
    "</style><script>alert(2)</script>",
    "' onmouseover='alert(3)",
    "$x^{$ \\bad",
]
INJECT_MODEL = PAYLOADS[1] + " $\\frac{"


@pytest.fixture(scope="session")
def tables(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-tables")
    grid = Grid([*TINY, *file_models(root / "models")])
    return make_tables(root / "tables", grid)


@pytest.fixture(scope="session")
def report(tables, tmp_path_factory) -> tuple[Path, Path, str]:
    out = tmp_path_factory.mktemp("report-out")
    html = build_report(tables, out / "report.html", "gradlab report <test>", out / "figures")
    return html, out / "figures", html.read_text(encoding="utf-8")


def _require_browser() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the browser test must run in CI: {problem}")
    pytest.skip(problem)


# ----------------------------------------------------------------------------- content
def test_sections_and_seed_numbers(report):
    html_path, _, text = report
    for anchor in ("glance", "run", "failures", "seed", "matrix", "eps", "where", "table"):
        assert f'id="{anchor}"' in text
    # the seed reproduced, next to its published numbers
    assert "2.919335883291695e-10" in text
    assert "0.2850931566540251" in text and "1.1890913024229996e-07" in text
    buggy = re.search(r"0\.28509315\d+", text.split("0.2850931566540251", 1)[1]).group(0)
    assert np.isclose(float(buggy), 0.2850931567761623, rtol=1e-8)
    assert "db1 is 4x too large" in text and "dW2 is 2x too large" in text
    # the element-by-element case is recomputed and agrees with the table it came from
    assert "matches the sweep&#39;s table for this cell, block by block" in text
    # failures are shown with their reason, inconclusive cells too
    assert "cell(s) failed" in text and "the cost exploded" in text
    assert "nan_model" in text and "inconclusive" in text
    # the title is escaped
    assert "gradlab report &lt;test&gt;" in text and "<test>" not in text


def test_self_contained(report):
    _, _, text = report
    assert text.count("<script") == 1  # only the small inline sorter
    assert not re.search(r"<script[^>]+src", text)
    assert not re.search(r"<link[^>]+stylesheet", text)
    assert "@import" not in text and "url(" not in text
    assert not re.search(r"""(src|href)=["'](https?:|//)""", text)
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(srcs) >= 4 and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_figures_dir(report):
    _, figures, _ = report
    for name in FIGURE_NAMES:
        data = (figures / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 2000, name


def test_download_is_the_tidy_table(report, tables):
    _, _, text = report
    href = re.search(r'href="(data:[^"]+)" download="(gradlab-cells[^"]+)"', text)
    assert href, "no download link for the tidy data"
    uri, name = htmlmod.unescape(href.group(1)), href.group(2)
    header, payload = uri.split(",", 1)
    assert header.endswith(";base64")
    raw = base64.b64decode(payload, validate=True)
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    got = pd.read_csv(io.BytesIO(raw), keep_default_na=False, na_values=[""])
    want = pd.read_parquet(tables / "cells.parquet")
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    assert set(got["model"]) == set(want["model"])


def test_table_is_sortable_and_complete(report, tables):
    _, _, text = report
    n_cells = len(pd.read_parquet(tables / "timing.parquet"))
    body = text.split('id="cells"', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr") - 1 == n_cells  # every cell, one row each, plus the header
    assert 'class="sortable data"' in text


def test_large_sweeps_get_a_summary_table(tables, monkeypatch):
    """Past the row limit the big table folds the seeds, from settings.parquet: every
    catalogue cell counted once, and each row's counts and median equal to a groupby of the
    cells done here."""
    import gradlab.report.build as build
    from gradlab.report.data import cell_frame

    cells = pd.read_parquet(tables / "cells.parquet")
    cf = cell_frame(cells[~cells["variant"].str.startswith("mut:")])
    monkeypatch.setattr(build, "TABLE_ROW_LIMIT", 10)
    table = build._full_table(tables / "cells.parquet",
                              pd.read_parquet(tables / "settings.parquet"))
    assert table["mode"] == "summary" and "too many for one page" in table["note"]
    assert sum(r["seeds"] for r in table["rows"]) == len(cf)  # every cell is counted once
    assert {r["flag"] for r in table["rows"] if r["model"] == "broken_model"} == {"failed"}
    want = cf.groupby(["model", "dtype", "variant", "method", "eps_label"])
    for r in table["rows"]:
        g = want.get_group((r["model"], r["dtype"], r["variant"], r["method"], r["eps"]))
        assert (r["seeds"], r["bug"], r["failed"]) == (
            g["seed"].nunique(), (g["cell_verdict"] == "bug").sum(),
            (g["status"] == "failed").sum())
        assert r["inconclusive"] == (g["cell_verdict"] == "inconclusive").sum()
        assert np.isclose(r["difference"], g["cell_difference"].median(), rtol=1e-12,
                          equal_nan=True)


def test_derived_summaries_match_the_sweep(tables, tmp_path):
    """When the summary tables are missing, the report derives them with the sweep's code."""
    from gradlab.report.data import load_tables
    from gradlab.tables import summarise

    only = tmp_path / "only-cells"
    only.mkdir()
    (only / "cells.parquet").write_bytes((tables / "cells.parquet").read_bytes())
    loaded = load_tables(only)
    assert loaded.derived == {"detection", "localisation", "best_eps", "settings"}
    want = summarise(pd.read_parquet(tables / "cells.parquet"))
    for name in ("detection", "localisation", "best_eps", "settings"):
        exp = want[name].reset_index(drop=True)
        got = getattr(loaded, name)
        pd.testing.assert_frame_equal(got[exp.columns].reset_index(drop=True), exp,
                                      check_dtype=False)


def test_case_table_holds_the_cells_elements(tables):
    """case.parquet (written by the sweep's gradlab.examples): a flagged cell of the tables,
    its failing blocks' gradient equal to the model's own backprop and its estimate equal to a
    plain central difference computed here, its truth the exact ground truth."""
    from gradlab.spec import truth_of
    from gradlab.vocab import model_spec

    case = pd.read_parquet(tables / "case.parquet")
    head = case.iloc[0]
    assert head["error"] == "" and bool(head["in_sweep"]) and head["method"] == "central"
    cells = pd.read_parquet(tables / "cells.parquet")
    row = cells[(cells.model == head["model"]) & (cells.variant == head["variant"])
                & (cells.seed == head["seed"]) & (cells.method == head["method"])]
    assert row["flagged"].any()
    entry = {m["name"]: m for m in json.loads((tables / "run.json").read_text())["config"]
             ["models"]}[head["model"]]
    problem = build_problem(model_spec(entry, head["variant"], int(head["seed"]),
                                       head["dtype"]))
    grads = problem.gradients(problem.params, problem.X, problem.Y)
    assert set(case.loc[case["in_truth"], "block"]) == set(truth_of(problem))
    h, failing = float(head["eps"]), case[case["failing"]]
    assert len(failing)
    for r in failing.itertuples():
        np.testing.assert_array_equal(np.asarray(r.grad), np.ravel(grads["d" + r.block]))
        base = problem.params[r.block]
        central = []
        for i in range(base.size):
            values = []
            for step in (h, -h):
                p = {k: v.copy() for k, v in problem.params.items()}
                p[r.block].reshape(-1)[i] += step
                values.append(float(problem.cost(p, problem.X, problem.Y)))
            central.append((values[0] - values[1]) / (2 * h))
        np.testing.assert_allclose(np.asarray(r.approx), central, rtol=1e-6, atol=1e-9)
        assert tuple(r.shape) == base.shape


def test_sweep_examples_needs_the_tables(tmp_path, capsys):
    from gradlab.cli import main

    code = main(["sweep-examples", "--config-json", "{}", "--tables", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == (f"gradlab: error: --tables {tmp_path}: no cells.parquet there; run "
                      "gradlab sweep-aggregate first")


def test_missing_tables_are_tolerated(tables, tmp_path):
    only_cells = tmp_path / "only-cells"
    only_cells.mkdir()
    shutil.copy(tables / "cells.parquet", only_cells)
    text = build_report(only_cells, tmp_path / "a.html", "partial").read_text()
    assert "detection.parquet is missing" in text and "run.json is missing" in text
    assert "Derived from the cells instead" in text and 'id="matrix"' in text
    empty = tmp_path / "empty"
    empty.mkdir()
    text = build_report(empty, tmp_path / "b.html", "empty").read_text()
    assert "cells.parquet is missing" in text
    # the seed and the case are the sweep's tables too (gradlab sweep-examples): said missing
    assert "2.919335883291695e-10" not in text and "seed_trap.parquet) are missing" in text
    assert "case.parquet is missing" in text
    (empty / "cells.parquet").write_bytes(b"not parquet")
    (empty / "run.json").write_text("{not json")
    text = build_report(empty, tmp_path / "c.html", "broken").read_text()
    assert "cells.parquet could not be read" in text and "run.json could not be read" in text


def test_atomic_and_deterministic(report, tables, tmp_path, monkeypatch):
    html_path, _, text = report
    target = tmp_path / "report.html"
    shutil.copy(html_path, target)
    import gradlab.report.build as build

    def broken_env():
        raise RuntimeError("template exploded")

    monkeypatch.setattr(build, "_env", broken_env)
    with pytest.raises(RuntimeError):
        build_report(tables, target, "gradlab report <test>")
    assert target.read_text(encoding="utf-8") == text  # the old report is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left
    monkeypatch.undo()
    build_report(tables, target, "gradlab report <test>")
    assert target.read_text(encoding="utf-8") == text  # same tables, same bytes


# ----------------------------------------------------------------------------- injection
@pytest.fixture(scope="session")
def injected(tables, tmp_path_factory) -> Path:
    """The fixture tables with attack strings as model names, diagnoses, errors and config."""
    root = tmp_path_factory.mktemp("report-injected")
    out = root / "tables"
    out.mkdir()
    for path in tables.glob("*.parquet"):
        df = pd.read_parquet(path)
        if "model" in df.columns:
            df["model"] = df["model"].replace({"mlp-tiny": INJECT_MODEL})
        if "diagnosis" in df.columns:
            # every row of a table without flags (models.parquet: "Your models")
            flagged = (df["flagged"].to_numpy() if "flagged" in df.columns
                       else np.ones(len(df), dtype=bool))
            df.loc[flagged, "diagnosis"] = [PAYLOADS[i % len(PAYLOADS)]
                                            for i in range(int(flagged.sum()))]
        if "status" in df.columns:  # the cells' reasons (case.parquet has no status)
            failed = (df["status"] == "failed").to_numpy()
            df.loc[failed, "error"] = " | ".join(PAYLOADS)
        df.to_parquet(out / path.name, index=False)
    run = json.loads((tables / "run.json").read_text())
    run["config_digest"] = PAYLOADS[0]
    run["versions"]["snakemake"] = PAYLOADS[4]
    run["config"]["note"] = PAYLOADS[5]
    (out / "run.json").write_text(json.dumps(run))
    html = build_report(out, root / "report.html", PAYLOADS[0] + PAYLOADS[3], root / "figs")
    return html


def test_injection_is_escaped(injected):
    text = injected.read_text(encoding="utf-8")
    for raw in ("<script>alert", "<img src=x", "</style><script>", "onerror=alert(1)>",
                "' onmouseover='"):
        assert raw not in text, raw
    assert text.count("<script") == 1
    assert not re.search(r"""(href|src)\s*=\s*["']?\s*javascript:""", text, re.I)
    assert "{{7*7}}" in text and ">49<" not in text  # shown as text, never evaluated
    assert htmlmod.escape(PAYLOADS[0]) in text  # the strings are there, escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert text.count("</style>") == 1


# ----------------------------------------------------------------------------- browser
def test_missing_browser_fails_in_ci(monkeypatch):
    import browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    problem = browser.browser_problem()
    assert problem and "Chromium not found at /nonexistent/chromium" in problem
    monkeypatch.setitem(globals(), "browser_problem", browser.browser_problem)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI: Chromium not found"):
        _require_browser()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        _require_browser()


def _sort_probe(page):
    head = page.locator("#cells thead th", has_text="difference")
    head.click()
    first = page.eval_on_selector_all(
        "#cells tbody tr", "rows => rows.slice(0, 40).map(r => r.cells[8].getAttribute('data-v'))")
    page.fill("#filter", "broken_model")
    shown = page.eval_on_selector_all(
        "#cells tbody tr", "rows => rows.filter(r => r.style.display !== 'none').length")
    return {"first": first, "shown": shown}


def _assert_clean(rep) -> None:
    assert not rep.foreign_requests(), f"network requests: {rep.foreign_requests()}"
    assert not rep.console_errors, f"console errors: {rep.console_errors}"
    assert not rep.page_errors, f"page errors: {rep.page_errors}"
    assert not rep.dialogs, f"a script ran: {rep.dialogs}"
    assert rep.n_images >= 4 and not rep.broken_images, rep.broken_images


def _assert_not_blank(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as im:
        gray = np.asarray(im.convert("L"), dtype=float)
    assert gray.shape[0] > 3000 and gray.shape[1] >= 1200, gray.shape
    assert gray.std() > 20, f"blank-looking screenshot (pixel std {gray.std():.1f})"
    rows = gray.std(axis=1)
    assert (rows > 5).mean() > 0.3, "most of the page is empty"


@pytest.mark.slow
def test_report_in_chromium(report, tmp_path):
    _require_browser()
    html_path, _, _ = report
    shot = tmp_path / "report.png"
    rep = open_page(html_path, shot, probe=_sort_probe)
    _assert_clean(rep)
    _assert_not_blank(shot)
    assert rep.title == "gradlab report <test>"
    assert "The seed reproduced" in rep.body_text and "failed" in rep.body_text
    values = [float(v) for v in rep.probe["first"] if v not in ("", "nan")]
    assert values and values == sorted(values), "clicking 'difference' did not sort the table"
    assert rep.probe["shown"] == 36  # the filter keeps the broken model's cells only
    keep = os.environ.get("GRADLAB_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


@pytest.mark.slow
def test_injection_in_chromium(injected, tmp_path):
    _require_browser()
    rep = open_page(injected, tmp_path / "injected.png")
    _assert_clean(rep)
    assert PAYLOADS[0] in rep.body_text  # shown to the reader as text
    assert rep.title == PAYLOADS[0] + PAYLOADS[3]
