"""End to end: the user's own model files in the sweep (issue 11).

A sweep with a buggy model file (``dW1`` 1.01x too large) and a correct one, run by Snakemake
in a temporary copy: ``models.parquet`` and the report's first section say bug (exactly dW1,
with the factor) and ok; neither file model is called a false alarm or "do not trust"; the
detection-limit curves exist for both, and for the correct one every injected error 10x above
the detection limit gradlab's check states is caught at every setting marked trustworthy.
Then reruns: adding a model, removing a method, adding a seed compute only the new cells
(``run.json`` counts, checked against the grid's own cell count), and the dry run shows which
jobs Snakemake would start.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import dry_run, make_copy, snake

from gradlab.config import normalise
from gradlab.sweep import count_cells

MODELS = Path(__file__).resolve().parent / "models"
CONFIG = {
    "models": [
        {"name": "good", "kind": "file", "path": "examples/my_model.py"},
        {"name": "bad", "kind": "file", "path": "tanh_dw1_bug.py"},
        {"name": "seed-net", "kind": "seed-net"},
    ],
    "variants": ["correct", "seed-dW2x2"],
    "seeds": [0, 1, 2],
    "methods": ["forward", "central", "complex-step"],
    "epsilons": [1.0e-3, 1.0e-6, 1.0e-9, 1.0e-12],
    "mutations": {"kinds": ["scale", "element", "sign"], "sizes": [1e-2, 1e-4, 1e-6, 1e-8],
                  "seeds": 3},
    "report": {"title": "your models"},
}

pytestmark = pytest.mark.slow


def _write(wf: Path, name: str, cfg: dict) -> str:
    (wf / name).write_text(yaml.safe_dump(cfg, sort_keys=False))
    return name


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    wf = tmp_path_factory.mktemp("yours")
    env = make_copy(wf)
    shutil.copy(MODELS / "tanh_dw1_bug.py", wf / "tanh_dw1_bug.py")
    out = snake(wf, env, "--cores", "2", config=_write(wf, "yours.yaml", CONFIG))
    # the end of a run says where the report is
    report = (wf / "reports" / "gradlab-report.html").resolve()
    assert f"gradlab report: {report}" in out.stdout + out.stderr
    return wf, env


def _run(wf: Path) -> dict:
    return json.loads((wf / "results" / "tables" / "run.json").read_text())


def _section(html: str, ident: str) -> str:
    start = html.index(f'<section id="{ident}"')
    return html[start:html.index("</section>", start)]


def test_models_table_says_bug_in_dw1_and_ok(sweep):
    wf, _ = sweep
    models = pd.read_parquet(wf / "results" / "tables" / "models.parquet").set_index("model")
    assert {"model", "dtype", "verdict", "blocks", "diagnosis"} <= set(models.reset_index())
    assert sorted(models.index) == ["bad", "good"]  # model files only
    bad, good = models.loc["bad"], models.loc["good"]
    assert bad["verdict"] == "bug" and bad["blocks"] == "W1", bad.to_dict()
    assert "1.01x too large" in bad["diagnosis"]
    assert good["verdict"] == "ok" and good["blocks"] == "", good.to_dict()
    for row in (bad, good):
        assert 0 < row["agree"] <= row["trusted"] <= row["settings"] == 3 * 4
    # "best eps" of the buggy file never picks a step at which its real bug is missed
    best = pd.read_parquet(wf / "results" / "tables" / "best_eps.parquet")
    cells = pd.read_parquet(wf / "results" / "tables" / "cells.parquet")
    own = cells[(cells["model"] == "bad") & (cells["variant"] == "correct")]
    for row in best[best["model"] == "bad"].itertuples():
        at = own[(own["method"] == row.method) & (own["eps"] == row.eps)]
        assert len(at) and at.loc[at["block"] == "W1", "flagged"].all(), row


def test_report_first_section_and_no_false_alarm_words(sweep):
    wf, _ = sweep
    html = (wf / "reports" / "gradlab-report.html").read_text()
    assert html.index('<section id="yours"') < html.index('<section id="glance"')
    yours = _section(html, "yours")
    cards = dict(re.findall(r'<div class="glance-card yours-card">\s*<h3>(\w+) (.*?)</div>',
                            yours, re.S))
    assert set(cards) == {"bad", "good"}
    assert "bug in dW1" in cards["bad"] and "1.01x too large" in cards["bad"]
    assert "no bug found" in cards["good"] and 'badge ok">ok' in cards["good"]
    glance = {re.match(r"\s*<h3>(\S+) ", part).group(1): part
              for part in _section(html, "glance").split('<div class="glance-card">')[1:]}
    for name in ("bad", "good"):
        for words in ("false alarm", "do not trust"):
            assert words not in glance[name].lower(), (name, words)
            assert words not in cards[name].lower(), (name, words)
    assert "false alarm" in glance["seed-net"].lower()  # the built-in network keeps its words
    # the catalogue's verdict matrix and grids have no "false alarm" rows for the files
    matrix = _section(html, "matrix")
    assert re.search(r"seed-net\s*<span", matrix)
    assert not re.search(r"\b(bad|good)\s*<span", matrix)
    # "where it fails": the buggy file's flagged dW1 is not a red "flagged but not changed" row
    for name in ("bad", "good"):
        assert f'<tr class="falsehit"><td class="nowrap">{name}</td>' not in html
    # the figure of both model files' curves is on the page
    for name in ("bad", "good"):
        assert f'alt="detection rate against injected error size for {name}' in yours


def test_curves_exist_and_the_stated_limit_holds_for_the_correct_model(sweep):
    wf, _ = sweep
    tables = wf / "results" / "tables"
    curves = pd.read_parquet(tables / "detection_limits.parquet")
    trust = pd.read_parquet(tables / "trust.parquet")
    for name in ("good", "bad"):
        mine = curves[(curves["model"] == name) & curves["detection_rate"].notna()]
        assert len(mine) == 3 * 4 * (2 * 4 + 1), name  # methods x steps x known mutations
    good = curves[curves["model"] == "good"]
    ok = trust[(trust["model"] == "good") & trust["trustworthy"]]
    assert len(ok) >= 6, ok  # most settings can be trusted on this smooth model
    checked = 0
    for row in ok.itertuples():
        at = good[(good["method"] == row.method) & (good["eps_label"] == row.eps_label)
                  & good["detection_rate"].notna()]
        # cell by cell: errors 10x above the limit stated for the mutated block are all seen
        above = at[at["n_above_stated"] > 0]
        assert (above["rate_above_stated"] == 1.0).all(), above.to_string()
        checked += int(above["n_above_stated"].sum())
    assert checked >= 3 * 3 * len(ok)  # at least 3 mutations x 3 seeds per setting
    # the reference's own error is far below the smallest injected size
    cells = pd.read_parquet(tables / "cells.parquet")
    ref = cells[(cells["model"] == "good") & (cells["variant"] == "mut:reference")]
    assert ref["reference_error"].max() < 1e-8 / 100


def _cells_of(cfg: dict, wf: Path) -> int:
    with contextlib.chdir(wf):
        return count_cells(normalise(cfg))


def test_reruns_compute_only_the_new_cells(sweep):
    wf, env = sweep
    first = _run(wf)
    before = _cells_of(CONFIG, wf)
    assert first["cells"]["planned"] == before and first["cells"]["computed"] == before
    # adding a model: every group reruns (its params changed), only the new cells compute
    added = CONFIG | {"models": [*CONFIG["models"], {"name": "lin", "kind": "linear1d"}]}
    name = _write(wf, "added.yaml", added)
    counts, _ = dry_run(wf, env, config=name)
    assert counts["check_group"] == 3  # one group per seed
    snake(wf, env, "--cores", "2", config=name)
    run = _run(wf)["cells"]
    after = _cells_of(added, wf)
    assert run["computed"] == after - before > 0 and run["reused"] == before
    # removing a method: nothing computed at all
    fewer = added | {"methods": ["forward", "central"]}
    snake(wf, env, "--cores", "2", config=_write(wf, "fewer.yaml", fewer))
    run = _run(wf)["cells"]
    assert run["computed"] == 0 and run["reused"] == run["planned"] == _cells_of(fewer, wf)
    # adding a seed: only its group runs, only its cells compute
    more = fewer | {"seeds": [0, 1, 2, 3]}
    name = _write(wf, "more.yaml", more)
    counts, groups = dry_run(wf, env, config=name)
    assert counts["check_group"] == 1 and {g["seed"] for g in groups} == {"3"}
    snake(wf, env, "--cores", "2", config=name)
    run = _run(wf)["cells"]
    assert run["computed"] == _cells_of(more, wf) - _cells_of(fewer, wf) > 0
    assert run["reused"] == _cells_of(fewer, wf)


LAYOUT_PROBE = """() => {
  const main = document.querySelector("main").getBoundingClientRect();
  const overflow = [];
  for (const el of document.querySelectorAll("main *")) {
    let p = el.parentElement, scrolls = false;
    while (p && p.tagName !== "MAIN") {
      const o = getComputedStyle(p).overflowX;
      if (o === "auto" || o === "scroll" || o === "hidden") { scrolls = true; break; }
      p = p.parentElement;
    }
    const r = el.getBoundingClientRect();
    if (!scrolls && r.width && r.right > main.right + 1) {
      overflow.push(el.tagName + "." + el.className + " right " + Math.round(r.right));
    }
  }
  const cards = Array.from(document.querySelectorAll(".glance-card .scroll")).map(s =>
    [s.closest(".glance-card").querySelector("h3").textContent.trim(), s.scrollWidth,
     s.clientWidth, Math.round(s.getBoundingClientRect().right),
     Math.round(s.closest(".glance-card").getBoundingClientRect().right)]);
  const figures = Array.from(document.querySelectorAll("figure img")).filter(
    i => i.getBoundingClientRect().width > 0).map(i => [i.alt.slice(0, 50),
    Math.round(i.getBoundingClientRect().width), i.naturalWidth,
    Math.round(i.closest("figure").getBoundingClientRect().width)]);
  const diag = Array.from(document.querySelectorAll("td.diag")).map(
    td => td.getBoundingClientRect().width);
  const fig = document.querySelector("#yours figure.zoomable");
  fig.click();
  const zoomed = [fig.querySelector("img").getBoundingClientRect().width,
                  fig.querySelector("img").naturalWidth];
  fig.click();
  const box = document.getElementById("filter");
  box.value = "good forward";
  box.dispatchEvent(new Event("input"));
  const rows = Array.from(document.querySelectorAll("#cells tbody tr")).filter(
    r => r.style.display !== "none");
  const both = rows.every(r => /good/.test(r.textContent) && /forward/.test(r.textContent));
  box.value = "good nosuchword";
  box.dispatchEvent(new Event("input"));
  return {overflow, page: document.documentElement.scrollWidth, inner: window.innerWidth,
          cards, figures, diag, zoomed, filtered: [rows.length, both],
          none: document.getElementById("filter-count").textContent};
}"""


@pytest.mark.parametrize("width", [1400, 800])
def test_report_layout_in_chromium(sweep, tmp_path, width):
    from browser import browser_problem, open_page

    problem = browser_problem()
    if problem:
        pytest.skip(problem)
    wf, _ = sweep
    rep = open_page(wf / "reports" / "gradlab-report.html", tmp_path / f"r{width}.png",
                    width=width, probe=lambda page: page.evaluate(LAYOUT_PROBE))
    assert not rep.console_errors and not rep.page_errors, rep.console_errors + rep.page_errors
    assert not rep.broken_images
    got = rep.probe
    assert got["overflow"] == [], got["overflow"][:10]
    assert got["page"] <= got["inner"], "the page scrolls sideways"
    for name, scroll_w, client_w, right, card_right in got["cards"]:
        assert right <= card_right, name  # a card's table never reaches past the card
        if width >= 1400:
            assert scroll_w <= client_w, f"{name}: the table needs scrolling at {width} px"
    assert got["figures"], "no figure rendered"
    for alt, shown, natural, box in got["figures"]:
        assert shown <= box + 1, alt
        assert shown >= min(natural, box) - 2, alt  # as wide as the page lets it be
    assert got["diag"] and min(got["diag"]) >= 250, got["diag"]
    assert got["zoomed"][0] == got["zoomed"][1]  # a click shows the figure at full size
    assert got["filtered"][0] > 0 and got["filtered"][1]  # two terms: rows with both
    assert got["none"].startswith("no rows")
