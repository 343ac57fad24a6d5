"""Sorting a table larger than memory: partitioned spill files and a row-group writer.

:class:`Spill` takes rows in any order, a chunk at a time, and writes each chunk's rows to
temporary Parquet files, one per *partition* (the rows sharing the values of the leading sort
keys, e.g. model x dtype x variant). :meth:`Spill.partitions` then yields the partitions in
sorted order, each read back whole and sorted on the remaining keys: only one partition is in
memory at a time. :class:`RowGroupWriter` writes the sorted rows into one Parquet file in row
groups of a fixed number of rows, so readers can filter on the sort keys without loading the
file whole.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd

__all__ = ["Spill", "RowGroupWriter", "ROW_GROUP_ROWS", "typed_frame", "arrow_table"]

ROW_GROUP_ROWS = 131_072  # rows per row group of the big tables (cells, timing)


def arrow_table(columns: Mapping[str, list], types: Mapping[str, str]):
    """The same rows as :func:`typed_frame` as a ``pyarrow.Table`` (far less memory than
    Python objects): text as utf8 (``str()`` of anything else), numbers and flags typed.

    Args:
        columns: column name -> values.
        types: column name -> pandas dtype (``"string"``, ``"int64"``, ``"float64"``, ``"bool"``).

    Returns:
        The table (``to_pandas()`` then :func:`typed_frame` gives :func:`typed_frame`'s frame).
    """
    import pyarrow as pa

    kinds = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "bool": pa.bool_()}
    arrays = {}
    for col, kind in types.items():
        values = columns[col]
        if kind == "string":
            values = [v if isinstance(v, str) else str(v) for v in values]
        elif kind == "bool":
            values = [bool(v) for v in values]  # as pandas' astype(bool): None is False
        arrays[col] = pa.array(values, kinds[kind])
    return pa.table(arrays)


def typed_frame(columns: Mapping[str, list] | pd.DataFrame, types: Mapping[str, str]
                ) -> pd.DataFrame:
    """A frame with exactly ``types``' columns, in order, with their pandas dtypes.

    Args:
        columns: column name -> values (or a frame).
        types: column name -> pandas dtype (``"string"`` means plain object ``str``).

    Returns:
        The typed frame.
    """
    df = pd.DataFrame({c: columns[c] for c in types})
    for col, kind in types.items():
        if kind == "string":  # plain object strings: pyarrow writes them as utf8
            df[col] = df[col].astype(object).astype(str)
        else:
            df[col] = df[col].astype(kind)
    return df


class Spill:
    """Rows spilled to disk by partition; read back one sorted partition at a time.

    Args:
        partition: the leading sort keys that define a partition.
        keys: the full sort keys (``partition`` first).
        types: column name -> pandas dtype of the rows.
        where: parent folder of the temporary folder (default: the system's).
    """

    def __init__(self, partition: list[str], keys: list[str], types: Mapping[str, str],
                 where: str | Path | None = None) -> None:
        self.partition, self.keys, self.types = partition, keys, dict(types)
        self._dir = Path(tempfile.mkdtemp(prefix="gradlab-spill-", dir=where))
        self._ids: dict[tuple, int] = {}
        self._chunks = 0
        self.rows = 0

    def add(self, table) -> None:
        """Spill one chunk of rows (a ``pyarrow.Table``, any order) to the partitions' files."""
        import pyarrow.parquet as pq

        if not len(table):
            return
        self._chunks += 1
        keys = table.select(self.partition).to_pandas()
        for key, index in keys.groupby(self.partition, sort=False).indices.items():
            key = key if isinstance(key, tuple) else (key,)
            pid = self._ids.setdefault(key, len(self._ids))
            folder = self._dir / f"p{pid:06d}"
            folder.mkdir(exist_ok=True)
            pq.write_table(table.take(index), folder / f"c{self._chunks:06d}.parquet",
                           compression="none")
        self.rows += len(table)

    def partitions(self) -> Iterator[tuple[tuple, pd.DataFrame]]:
        """Yield ``(partition key, rows)`` in sorted key order, rows sorted by ``keys``."""
        import pyarrow.parquet as pq

        for key in sorted(self._ids):
            folder = self._dir / f"p{self._ids[key]:06d}"
            import pyarrow as pa

            table = pa.concat_tables([pq.read_table(f) for f in sorted(folder.iterdir())])
            # already typed (arrow_table); equal texts become one shared Python string
            df = table.to_pandas(deduplicate_objects=True)
            del table
            yield key, df.sort_values(self.keys, kind="mergesort", na_position="last"
                                      ).reset_index(drop=True)
            shutil.rmtree(folder)

    def close(self) -> None:
        """Remove the temporary files."""
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RowGroupWriter:
    """Write sorted frames, in order, as one Parquet file of ``rows``-row row groups.

    The file is what ``DataFrame.to_parquet(path, index=False)`` writes for the concatenated
    frames, with the rows split into row groups of ``rows`` rows (a table of fewer rows is one
    row group, byte for byte what ``to_parquet`` writes).

    Args:
        path: the file to write.
        rows: rows per row group.
    """

    def __init__(self, path: str | Path, rows: int = ROW_GROUP_ROWS) -> None:
        self.path, self.rows = Path(path), rows
        self._writer = None
        self._schema = None
        self._buffer: list = []
        self._buffered = 0
        self.written = 0

    def write(self, df: pd.DataFrame) -> None:
        """Append a frame's rows (the same columns and dtypes every time)."""
        import pyarrow as pa

        table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
        if self._schema is None:
            self._schema = table.schema
        self._buffer.append(table)
        self._buffered += len(table)
        while self._buffered >= self.rows:
            self._flush(self.rows)

    def _flush(self, n: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.concat_tables(self._buffer)  # no copy: the writer takes chunked columns
        head, rest = table.slice(0, n), table.slice(n)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self._schema, compression="snappy")
        self._writer.write_table(head, row_group_size=max(n, 1))
        del table, head
        self._buffer = [rest.combine_chunks()] if len(rest) else []
        self._buffered = len(rest)
        self.written += n

    def close(self, empty: pd.DataFrame | None = None) -> None:
        """Write the last row group and close the file.

        Args:
            empty: a frame with the columns, written when no rows came (an empty table).
        """
        if self._buffered or (self._writer is None and empty is not None):
            if self._schema is None and empty is not None:
                self.write(empty)
            self._flush(self._buffered)
        if self._writer is not None:
            self._writer.close()
