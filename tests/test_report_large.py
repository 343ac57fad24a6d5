"""The report of a large sweep: a ~1.3 M-row cells table (the report fixture's real cells,
replicated under new seeds with numpy) gives a page under its size limit that links the full
tidy data written beside it (every row there), says so, and loads cleanly in Chromium with no
element wider than the page."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_fixture import TINY, Grid, make_tables

from gradlab.report import build_report
from gradlab.report.tidy import BESIDE_CSV, BESIDE_PARQUET, EMBED_LIMIT
from gradlab.spill import ROW_GROUP_ROWS
from gradlab.tables import summarise

PAGE_LIMIT = 15 * 2**20
ROWS = 1_300_000
KEYS = ["model", "dtype", "variant", "seed", "method", "eps", "block"]

OVERFLOW = """() => {
  const main = document.querySelector("main").getBoundingClientRect();
  const wide = [];
  for (const el of document.querySelectorAll("main *")) {
    let p = el.parentElement, scrolls = false;
    for (; p && p.tagName !== "MAIN"; p = p.parentElement) {
      if (["auto", "scroll", "hidden"].includes(getComputedStyle(p).overflowX)) {
        scrolls = true;
        break;
      }
    }
    const r = el.getBoundingClientRect();
    if (!scrolls && r.width && r.right > main.right + 1) wide.push(el.tagName + " " + r.right);
  }
  return {wide, page: document.documentElement.scrollWidth, inner: window.innerWidth};
}"""


def _replicate(small: pd.DataFrame, copies: int) -> pa.Table:
    """``copies`` copies of ``small`` with the seeds shifted, sorted as the sweep sorts."""
    step = int(small["seed"].max()) + 1
    table = pa.Table.from_pandas(small, preserve_index=False)
    index = np.tile(np.arange(len(small)), copies)
    big = table.take(index)
    shift = np.repeat(np.arange(copies, dtype=np.int64) * step, len(small))
    seeds = big["seed"].to_numpy() + shift
    big = big.set_column(big.schema.get_field_index("seed"), "seed", pa.array(seeds))
    return big.sort_by([(k, "ascending") for k in KEYS if k in big.column_names])


def big_tables(tables: Path, rows: int) -> tuple[int, int]:
    """The tiny grid's tables in ``tables``, replicated under new seeds to at least ``rows``
    cell rows, with the summaries the aggregate would write for them; (rows, cells)."""
    tables = make_tables(tables, Grid(TINY))
    cells = pd.read_parquet(tables / "cells.parquet")
    copies = -(-rows // len(cells))
    big = _replicate(cells, copies)
    pq.write_table(big, tables / "cells.parquet", row_group_size=ROW_GROUP_ROWS)
    for name, df in summarise(big.to_pandas()).items():  # as the aggregate writes them
        df.to_parquet(tables / f"{name}.parquet", index=False)
    timing = pd.read_parquet(tables / "timing.parquet")
    pq.write_table(_replicate(timing, copies), tables / "timing.parquet")
    return big.num_rows, len(timing) * copies


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    tables = tmp_path_factory.mktemp("large") / "tables"
    n_rows, _ = big_tables(tables, ROWS)
    out = tmp_path_factory.mktemp("large-out")
    lines: list[str] = []
    html = build_report(tables, out / "report.html", "a large sweep", log=lines.append)
    return tables, html, n_rows, lines


@pytest.mark.slow
def test_large_report_is_bounded_and_links_the_data(large):
    tables, html, n_rows, lines = large
    assert n_rows >= ROWS
    assert html.stat().st_size < PAGE_LIMIT, html.stat().st_size
    text = html.read_text(encoding="utf-8")
    assert "too large to embed" in text and "data:application/gzip" not in text
    assert f'href="{BESIDE_PARQUET}"' in text and f'href="{BESIDE_CSV}"' in text
    assert f"{n_rows:,} rows" in text
    n_cells = pq.ParquetFile(tables / "timing.parquet").metadata.num_rows
    assert lines == [f"read the summaries of {n_cells:,} catalogue cells of {n_cells:,} cells "
                     "in the tables; cells.parquet is read a row group at a time, a few "
                     "columns or settings at a time"]
    # the linked files hold every row: the Parquet file equal to the table, the CSV row for row
    beside = html.parent / BESIDE_PARQUET
    assert pq.read_table(beside).equals(pq.read_table(tables / "cells.parquet"))
    want = pq.read_table(tables / "cells.parquet",
                         columns=["model", "seed", "block", "difference"]).to_pandas()
    with gzip.open(html.parent / BESIDE_CSV, "rt", encoding="utf-8") as fh:
        seen = 0
        for chunk in pd.read_csv(fh, chunksize=250_000, keep_default_na=False, na_values=[""]):
            rows = want.iloc[seen:seen + len(chunk)]
            assert list(chunk.columns) == list(pq.read_schema(beside).names)
            for col in ("model", "seed"):
                assert (chunk[col].to_numpy() == rows[col].to_numpy()).all(), col
            assert (chunk["block"].fillna("").astype(str).to_numpy()
                    == rows["block"].to_numpy()).all()
            assert np.allclose(chunk["difference"], rows["difference"], rtol=1e-15,
                               equal_nan=True)
            seen += len(chunk)
    assert seen == n_rows


@pytest.mark.slow
def test_small_report_still_embeds(tmp_path):
    tables = make_tables(tmp_path / "tables", Grid(TINY))
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / BESIDE_PARQUET
    stale.write_bytes(b"from a larger sweep")
    html = build_report(tables, tmp_path / "out" / "r.html", "small")
    text = html.read_text(encoding="utf-8")
    assert "data:application/gzip;base64," in text and "too large to embed" not in text
    assert not stale.exists()  # a larger sweep's files are not left to be mistaken for these
    assert EMBED_LIMIT < PAGE_LIMIT


@pytest.mark.slow
@pytest.mark.parametrize("width", [1400, 800])
def test_large_report_in_chromium(large, tmp_path, width):
    from browser import browser_problem, open_page

    problem = browser_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the browser test must run in CI: {problem}")
        pytest.skip(problem)
    _, html, _, _ = large
    rep = open_page(html, tmp_path / "large.png", width=width,
                    probe=lambda page: page.evaluate(OVERFLOW))
    assert not rep.console_errors and not rep.page_errors, rep.console_errors + rep.page_errors
    assert not rep.foreign_requests(), rep.foreign_requests()
    assert rep.n_images >= 4 and not rep.broken_images, rep.broken_images
    assert "too large to embed" in rep.body_text
    assert rep.probe["wide"] == [], rep.probe["wide"][:10]
    assert rep.probe["page"] <= rep.probe["inner"], "the page scrolls sideways"
