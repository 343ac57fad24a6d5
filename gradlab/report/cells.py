"""Reading ``cells.parquet`` for the report in bounded pieces, never the whole table.

The report's sections come from the summaries (``settings.parquet`` holds what it needs per
model x dtype x variant x method x eps); what only the cells hold is read here with column
projection and filters, one row group (or batch) at a time: a scan for the seeds, the model
files and the failed or inconclusive cells, the rows of the few settings the heatmaps show, and
the catalogue's rows in table order for the embedded tidy data (stopped at a byte limit).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..vocab import CELL_KEYS

__all__ = ["Scan", "scan_cells", "catalogue_batches", "read_settings_rows", "release",
           "BATCH_ROWS"]

BATCH_ROWS = 32_768  # rows converted to pandas at a time


def _names(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).schema_arrow.names


def catalogue_batches(path: Path, columns: list[str] | None = None,
                      batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The rows of ``cells.parquet`` outside the mutations, in table order, a batch at a time.

    Args:
        path: ``cells.parquet``.
        columns: the columns to read (those the file lacks are left out); None for all.
        batch_rows: rows per batch read.

    Yields:
        DataFrames of at most ``batch_rows`` rows (none empty).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    names = source.schema_arrow.names
    cols = None if columns is None else [c for c in names if c in set(columns) | {"variant"}]
    for batch in source.iter_batches(batch_size=batch_rows, columns=cols):
        if "variant" in names:
            batch = batch.filter(pc.invert(pc.starts_with(batch.column("variant"), "mut:")))
        if batch.num_rows:
            df = batch.to_pandas()
            yield df if columns is None else df[[c for c in cols if c in columns]]


@dataclass
class Scan:
    """What one pass over the cells gives the report: the catalogue's row count and seeds, the
    model files (over every row) and the catalogue's failed or inconclusive cells."""

    rows: int = 0
    seeds: set[int] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    problems: pd.DataFrame | None = None


_PROBLEM_COLUMNS = [*CELL_KEYS, "status", "cell_verdict", "error"]


def scan_cells(path: Path, batch_rows: int = BATCH_ROWS) -> Scan:
    """One pass over ``cells.parquet`` reading a few columns a batch at a time.

    Memory grows only with the number of seeds, model files and failed or inconclusive cells
    (one row each), not with the grid.

    Args:
        path: ``cells.parquet``.
        batch_rows: rows per batch read.

    Returns:
        The :class:`Scan`.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    names = set(source.schema_arrow.names)
    wanted = {"variant", "model_kind", "status", "cell_verdict", "error", *CELL_KEYS}
    out, problems = Scan(), []
    for batch in source.iter_batches(batch_size=batch_rows, columns=[
            c for c in source.schema_arrow.names if c in wanted]):
        if "model_kind" in names:
            is_file = pc.equal(batch.column("model_kind"), "file")
            out.files.update(pc.unique(batch.column("model").filter(is_file)).to_pylist())
        batch = batch.filter(pc.invert(pc.starts_with(batch.column("variant"), "mut:")))
        out.rows += batch.num_rows
        out.seeds.update(pc.unique(batch.column("seed")).to_pylist())
        if {"status", "cell_verdict"} <= names:
            bad = pc.or_(pc.equal(batch.column("status"), "failed"),
                         pc.equal(batch.column("cell_verdict"), "inconclusive"))
            sub = batch.filter(pc.fill_null(bad, False))
            if sub.num_rows:
                df = sub.to_pandas()
                problems.append(df[[c for c in _PROBLEM_COLUMNS if c in df.columns]]
                                .drop_duplicates(CELL_KEYS))
    release()
    if problems:
        out.problems = pd.concat(problems, ignore_index=True).drop_duplicates(CELL_KEYS)
    return out


def read_settings_rows(path: Path, settings: list[tuple[str, str, str, float | None]],
                       columns: list[str]) -> pd.DataFrame:
    """The catalogue's rows of a few settings (model, dtype, method, eps: NaN for auto, None
    for every eps),
    in table order, read a batch at a time and filtered (only the matching rows are kept).

    Args:
        path: ``cells.parquet``.
        settings: (model, dtype, method, eps) of each setting wanted.
        columns: the columns to read.

    Returns:
        The rows, columns as in the file (those it lacks left out).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    names = _names(path)
    cols = [c for c in names if c in columns]
    if not settings:
        return pd.DataFrame(columns=cols)
    wanted = None
    for model, dtype, method, eps in settings:
        one = ((ds.field("model") == model) & (ds.field("dtype") == dtype)
               & (ds.field("method") == method))
        if eps is not None:
            one = one & (ds.field("eps").is_null(nan_is_null=True) if eps != eps
                         else ds.field("eps") == eps)
        wanted = one if wanted is None else wanted | one
    where = wanted & ~pc.starts_with(ds.field("variant"), "mut:")
    source = pq.ParquetFile(path)
    parts = [batch.filter(where) for batch in source.iter_batches(
        batch_size=BATCH_ROWS, columns=sorted(set(cols) | {"model", "dtype", "method", "eps",
                                                        "variant"}))]
    table = pa.Table.from_batches(parts) if parts else source.schema_arrow.empty_table()
    release()
    return table.select(cols).to_pandas()


def release() -> None:
    """Hand Arrow's freed buffers back to the system (its pool keeps them cached)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
