"""The streamed aggregation: group files made by the real sweep functions, aggregated in chunks
of any size, give the same tables as all at once, and the same as the plain in-memory
computation (tests/plain_summaries.py, gradlab's implementation before streaming)."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal
from plain_summaries import plain_summarise

from gradlab.config import normalise
from gradlab.sweep import CELL_COLUMNS, CELL_KEYS, read_group, run_group, write_group
from gradlab.tables import TABLES, aggregate
from gradlab.vocab import eps_label

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_model.py"


def _config() -> dict:
    """Built-in networks, a model file, the mutations, a fixed and the automatic step."""
    return normalise({
        "models": [{"kind": "seed-net"}, {"kind": "linear1d"},
                   {"name": "mine", "kind": "file", "path": str(EXAMPLE)}],
        "variants": ["correct", "seed-bugs", "sign-flip"],
        "mutations": {"kinds": ["scale", "sign"], "sizes": [1e-2, 1e-6], "seeds": 1},
        "seeds": [0, 1, 2], "methods": ["central", "forward"], "epsilons": [1e-6, "auto"],
    })


def _real_groups(cfg: dict, out: Path) -> list[Path]:
    """Group files made by run_group/write_group, one per dtype x seed x eps (or one per dtype x
    seed where run_group takes no step: the layout is the sweep's business, not this test's)."""
    eps_arg = inspect.signature(run_group).parameters.get("eps")
    per_step = eps_arg is not None and eps_arg.default is inspect.Parameter.empty
    files = []
    for dtype in cfg["dtypes"]:
        for seed in cfg["seeds"]:
            for eps in cfg["epsilons"] if per_step else [None]:
                if per_step:
                    payload = run_group(cfg, dtype, seed, eps) | {"eps": eps_label(eps)}
                else:
                    payload = run_group(cfg, dtype, seed) | {
                        "epsilons": [eps_label(e) for e in cfg["epsilons"]]}
                payload |= {"dtype": dtype, "seed": seed, "started": 1.0}
                name = f"{dtype}-{seed}-{eps_label(eps) if per_step else 'all'}.json"
                files.append(write_group(out / name, payload))
    return files


@pytest.fixture(scope="module")
def groups(tmp_path_factory) -> tuple[dict, list[Path]]:
    cfg = _config()
    return cfg, _real_groups(cfg, tmp_path_factory.mktemp("groups"))


@pytest.fixture(scope="module")
def at_once(groups, tmp_path_factory) -> Path:
    cfg, files = groups
    out = tmp_path_factory.mktemp("at-once")
    aggregate(files, cfg, out, chunk_rows=10**9, row_group_rows=10**9)
    return out


def _frames(folder: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_parquet(folder / f"{n}.parquet") for n in TABLES}


def _same_tables(a: Path, b: Path) -> None:
    fa, fb = _frames(a), _frames(b)
    for name in TABLES:  # timing too: its seconds are the group files' own
        assert_frame_equal(fa[name], fb[name], check_exact=True, obj=name)


def test_the_plain_computation_agrees(groups, at_once):
    """Cells: every group's rows, sorted; summaries: the plain all-at-once code."""
    cfg, files = groups
    rows = pd.concat([pd.DataFrame(read_group(f)["cells"]) for f in files], ignore_index=True)
    for col, kind in CELL_COLUMNS.items():
        rows[col] = rows[col].astype(object).astype(str) if kind == "string" \
            else rows[col].astype(kind)
    rows = rows[list(CELL_COLUMNS)].sort_values([*CELL_KEYS, "block"], kind="mergesort",
                                                 na_position="last").reset_index(drop=True)
    got = _frames(at_once)
    assert_frame_equal(got["cells"], rows, check_exact=True)
    assert got["cells"]["eps"].isna().any() and got["cells"]["variant"].str.startswith(
        "mut:").any() and (got["cells"]["model_kind"] == "file").any()  # all paths exercised
    want = plain_summarise(rows)
    for name, df in want.items():
        assert_frame_equal(got[name], df, check_exact=True, obj=name)
    assert len(got["models"]) == 1 and len(got["trust"]) and len(got["detection_limits"])


def test_settings_table_is_the_per_setting_loop(at_once):
    """settings.parquet equals a plain loop over each catalogue setting's cells and rows."""
    import numpy as np

    cells = pd.read_parquet(at_once / "cells.parquet")
    cells = cells[~cells["variant"].str.startswith("mut:")]
    got = pd.read_parquet(at_once / "settings.parquet")
    assert len(got) and got["eps"].isna().any() and got["done_median"].notna().any()
    seen = 0
    for key, rows in cells.groupby(["model", "dtype", "variant", "method", "eps"], dropna=False):
        model, dtype, variant, method, eps = key
        one = got[(got.model == model) & (got.dtype == dtype) & (got.variant == variant)
                  & (got.method == method)
                  & (got.eps.isna() if eps != eps else got.eps == eps)]
        assert len(one) == 1, key
        r = one.iloc[0]
        seen += 1
        per_cell = rows.drop_duplicates(["seed"])  # one setting: a cell per seed
        failed = per_cell["status"].to_numpy() == "failed"
        verdict = per_cell["cell_verdict"].to_numpy()
        diff = per_cell["cell_difference"].to_numpy()
        plotted = diff[~failed & np.isfinite(diff)] if eps == eps else diff[:0]
        thr = rows["threshold"].to_numpy()
        thr = thr[np.isfinite(thr)] if eps == eps else thr[:0]
        assert r["eps_label"] == eps_label(eps)
        assert (r["cells"], r["seeds"], r["first_seed"]) == (
            len(per_cell), len(set(per_cell["seed"])), min(per_cell["seed"]))
        assert (r["failed"], r["inconclusive"], r["failed_inconclusive"], r["bug"]) == (
            failed.sum(), (verdict == "inconclusive").sum(),
            (failed & (verdict == "inconclusive")).sum(), (verdict == "bug").sum())
        assert r["expected"] == per_cell.sort_values("seed")["expected"].iloc[0]
        finite = diff[~np.isnan(diff)]
        for name, want in (("median", np.median(finite) if len(finite) else np.nan),
                           ("done_median", np.median(plotted) if len(plotted) else np.nan),
                           ("done_min", plotted.min() if len(plotted) else np.nan),
                           ("done_max", plotted.max() if len(plotted) else np.nan),
                           ("threshold", np.median(thr) if len(thr) else np.nan)):
            assert np.isclose(r[name], want, rtol=1e-12, equal_nan=True), (key, name)
    assert seen == len(got)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(1, 3000), row_group=st.integers(1, 5000))
def test_chunk_sizes_do_not_change_the_tables(groups, at_once, tmp_path, chunk, row_group):
    cfg, files = groups
    out = tmp_path / f"t{chunk}-{row_group}"
    aggregate(files, cfg, out, chunk_rows=chunk, row_group_rows=row_group)
    _same_tables(at_once, out)
    meta = pq.ParquetFile(out / "cells.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert all(n == row_group for n in sizes[:-1]) and 0 < sizes[-1] <= row_group
    shutil.rmtree(out)


def test_one_file_per_seed_gives_the_same_tables(groups, at_once, tmp_path):
    """Merge the groups of a dtype x seed into one file (all steps inside): same tables."""
    cfg, files = groups
    merged: dict[tuple, dict] = {}
    for f in files:
        data = read_group(f)
        key = (data["dtype"], data["seed"])
        into = merged.setdefault(key, {k: v for k, v in data.items()
                                       if k not in ("cells", "timing", "computed")}
                                 | {"cells": {}, "timing": {}, "computed": 0, "eps": None})
        into["computed"] += data["computed"]
        for part in ("cells", "timing"):
            for col, values in data[part].items():
                into[part].setdefault(col, []).extend(values)
    out = []
    for (dtype, seed), payload in merged.items():
        payload["epsilons"] = [eps_label(e) for e in cfg["epsilons"]]
        payload["eps"] = payload["epsilons"][0]
        out.append(write_group(tmp_path / "g" / f"{dtype}-{seed}.json", payload))
    run = aggregate(out, cfg, tmp_path / "t", chunk_rows=500)
    _same_tables(at_once, tmp_path / "t")
    assert run["groups"] == len(out) and run["cells"]["computed"] == sum(
        len(read_group(f)["timing"]["seconds"]) for f in files)


def test_filtering_reads_only_matching_row_groups(groups, tmp_path):
    cfg, files = groups
    aggregate(files, cfg, tmp_path, row_group_rows=40)
    path = tmp_path / "cells.parquet"
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups > 5
    cells = pd.read_parquet(path)
    got = pd.read_parquet(path, filters=[("model", "==", "linear1d")])
    assert_frame_equal(got, cells[cells["model"] == "linear1d"].reset_index(drop=True))
    # sorted by model first: each row group's statistics name at most a few models
    models = pq.ParquetFile(path).schema_arrow.get_field_index("model")
    spans = [(meta.row_group(i).column(models).statistics.min,
              meta.row_group(i).column(models).statistics.max)
             for i in range(meta.num_row_groups)]
    assert spans == sorted(spans) and sum(lo == hi for lo, hi in spans) > len(spans) // 2


def test_progress_lines(groups, tmp_path):
    cfg, files = groups
    lines: list[str] = []
    aggregate(files, cfg, tmp_path, log=lines.append)
    n_cells = sum(len(read_group(f)["timing"]["seconds"]) for f in files)
    assert lines[-2].startswith(f"read {len(files)}/{len(files)} group files: {n_cells:,} cells")
    assert lines[-1].startswith("wrote ") and f"{n_cells:,} cells" in lines[-1]
    assert json.loads((tmp_path / "run.json").read_text())["groups"] == len(files)


def test_no_mutations_and_no_model_files(tmp_path):
    """The summaries' empty cases (no mutation rows, no model file) match the plain code too,
    through aggregate and through summarise on an in-memory table."""
    from gradlab.summaries import summarise

    cfg = normalise({"models": [{"kind": "seed-net"}], "variants": ["correct", "seed-bugs"],
                     "mutations": "none", "seeds": [0, 1], "methods": ["central"],
                     "epsilons": [1e-6, 1e-3]})
    files = _real_groups(cfg, tmp_path / "g")
    aggregate(files, cfg, tmp_path / "t", chunk_rows=7, row_group_rows=11)
    got = _frames(tmp_path / "t")
    want = plain_summarise(got["cells"])
    for name, df in want.items():
        assert_frame_equal(got[name], df, check_exact=True, obj=name)
        assert_frame_equal(summarise(got["cells"])[name], df, check_exact=True, obj=name)
    assert got["models"].empty and got["trust"].empty
