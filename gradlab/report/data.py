"""Reading the sweep's tables for the report, tolerant of missing or partial ones.

The schema is documented in ``docs/tables.md``. Every table except ``cells.parquet`` is
optional: a summary that is missing is derived from the cells when possible, and the report
says so. The derivations here follow the same rules as the sweep's summaries.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..examples import EXAMPLE_TABLES
from ..vocab import CELL_KEYS, eps_label

__all__ = [
    "Tables",
    "load_tables",
    "cell_frame",
    "with_labels",
    "derive_summaries",
    "csv_data_uri",
    "flatten_run",
]

TABLE_NAMES = ("cells", "detection", "localisation", "best_eps", "timing", "settings")
OPTIONAL_TABLES = ("detection_limits", "trust", "models")  # the mutations' (gradlab.trust)


@dataclass
class Tables:
    """What the report read. ``notes`` say which tables were missing or derived."""

    cells: pd.DataFrame | None = None
    detection: pd.DataFrame | None = None
    localisation: pd.DataFrame | None = None
    best_eps: pd.DataFrame | None = None
    timing: pd.DataFrame | None = None
    settings: pd.DataFrame | None = None
    detection_limits: pd.DataFrame | None = None
    trust: pd.DataFrame | None = None
    models: pd.DataFrame | None = None
    seed: pd.DataFrame | None = None
    seed_blocks: pd.DataFrame | None = None
    seed_trap: pd.DataFrame | None = None
    case: pd.DataFrame | None = None
    run: dict[str, Any] | None = None
    cells_ok: bool = False
    notes: list[str] = field(default_factory=list)
    derived: set[str] = field(default_factory=set)
    read_note: str = ""


def _read_parquet(path: Path, notes: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        notes.append(f"{path.name} is missing")
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # a truncated or foreign file: say so, keep going
        notes.append(f"{path.name} could not be read ({type(exc).__name__}: {exc})")
        return None


def _read_catalogue(path: Path, notes: list[str]) -> pd.DataFrame | None:
    """The rows of ``cells.parquet`` outside the mutations (``variant`` not ``mut:...``),
    filtered while the file is scanned, so the mutation rows are never all in memory."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet")
        if "variant" not in dataset.schema.names:
            return _read_parquet(path, notes)
        table = dataset.to_table(filter=~pc.starts_with(ds.field("variant"), "mut:"))
        return table.to_pandas(self_destruct=True, split_blocks=True)
    except Exception:  # missing, truncated or foreign: the plain reader says what is wrong
        return _read_parquet(path, notes)


def _rows_in(path: Path) -> int | None:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:
        return None


def _read_note(tables_dir: Path, cells: pd.DataFrame | None, catalogue_only: bool,
               settings: pd.DataFrame | None = None) -> str:
    """How many cells (and rows) the report read, of how many the tables hold."""
    if cells is None and settings is not None and len(settings):
        total_cells = _rows_in(tables_dir / "timing.parquet")
        of = f" of {total_cells:,} cells in the tables" if total_cells is not None else ""
        return (f"read the summaries of {int(settings['cells'].sum()):,} catalogue "
                f"cells{of}; cells.parquet is read a row group at a time, a few columns or "
                "settings at a time")
    if cells is None:
        return "read no cells"
    n = len(cells.drop_duplicates(CELL_KEYS)) if set(CELL_KEYS) <= set(cells.columns) \
        else len(cells)
    total_rows = _rows_in(tables_dir / "cells.parquet")
    total_cells = _rows_in(tables_dir / "timing.parquet")
    of = (f" of {total_cells:,} cells ({total_rows:,} rows) in the tables"
          if total_rows is not None and total_cells is not None else "")
    which = ("; the mutations' cells are read from their summaries" if catalogue_only
             else "")
    return f"read {n:,} cells ({len(cells):,} rows){of}{which}"


def _text(s: pd.Series) -> pd.Series:
    """The column as text; unchanged (no new strings) when it is text already."""
    return s if pd.api.types.infer_dtype(s, skipna=False) == "string" else s.astype(str)


def with_labels(df: pd.DataFrame | None, add_label: bool = True, copy: bool = True
                ) -> pd.DataFrame | None:
    """The table with an ``eps_label`` column (if asked and missing) and its name columns as
    text.

    Args:
        df: a table, or None.
        add_label: add ``eps_label`` from ``eps``.
        copy: change a copy (False: change ``df`` itself).

    Returns:
        The table (None for None).
    """
    if df is None:
        return None
    df = df.copy() if copy else df
    if add_label and "eps" in df.columns and "eps_label" not in df.columns:
        df["eps_label"] = [eps_label(e) for e in df["eps"]]
    for col in ("model", "dtype", "variant", "method", "eps_label"):
        if col in df.columns:
            df[col] = _text(df[col])
    return df


def load_tables(tables_dir: Path, catalogue_only: bool = False, read_cells: bool = True
                ) -> Tables:
    """Read every table under ``tables_dir``; derive missing summaries from the cells.

    Args:
        tables_dir: the sweep's tables (``docs/tables.md``).
        catalogue_only: read only the cells outside the mutations (the report's sections
            show the mutations from their summaries), filtered while reading.
        read_cells: False to leave ``cells`` unread (None) unless a summary must be derived
            from it; ``cells_ok`` says whether ``cells.parquet`` can be read.

    Returns:
        The tables; ``read_note`` says how many cells were read.
    """
    tables_dir = Path(tables_dir)
    t = Tables()
    if not tables_dir.is_dir():
        t.notes.append(f"the tables directory {tables_dir} does not exist")
        return t
    for name in TABLE_NAMES:
        path = tables_dir / f"{name}.parquet"
        if name == "cells" and not read_cells:
            t.cells_ok = _cells_readable(path, t.notes)
            continue
        df = (_read_catalogue(path, t.notes) if name == "cells" and catalogue_only
              else _read_parquet(path, t.notes))
        setattr(t, name, with_labels(df, add_label=name not in ("cells", "timing"),
                                      copy=False))  # freshly read: ours to change
    for name in OPTIONAL_TABLES:  # absent when the sweep ran without mutations: no note
        if (tables_dir / f"{name}.parquet").is_file():
            setattr(t, name, with_labels(_read_parquet(tables_dir / f"{name}.parquet",
                                                        t.notes)))
    for name in EXAMPLE_TABLES:  # read as written: their eps are not the grid's
        setattr(t, name, _read_parquet(tables_dir / f"{name}.parquet", t.notes))
    run = tables_dir / "run.json"
    if run.is_file():
        try:
            loaded = json.loads(run.read_text(encoding="utf-8"))
            t.run = loaded if isinstance(loaded, dict) else {"run.json": loaded}
        except (OSError, ValueError) as exc:
            t.notes.append(f"run.json could not be read ({type(exc).__name__}: {exc})")
    else:
        t.notes.append("run.json is missing")
    _derive_missing(t, tables_dir, catalogue_only, read_cells)
    t.read_note = _read_note(tables_dir, t.cells, catalogue_only, t.settings)
    return t


def _derive_missing(t: Tables, tables_dir: Path, catalogue_only: bool, read_cells: bool
                    ) -> None:
    """Derive the summaries the tables lack from the cells (all of them: a rare case)."""
    cells = t.cells
    if cells is not None:
        missing = [c for c in CELL_KEYS if c not in cells.columns]
        if missing:
            t.notes.append(f"cells.parquet lacks the columns {', '.join(missing)}; ignored")
            t.cells = cells = None
    wanted = [n for n in ("detection", "localisation", "best_eps", "settings")
              if getattr(t, n) is None]
    if cells is None and wanted and not read_cells and t.cells_ok:  # older tables: read all
        cells = with_labels(_read_parquet(tables_dir / "cells.parquet", []), False)
    if cells is not None and wanted:
        if catalogue_only and read_cells:  # best_eps needs the mutations: read all
            cells = with_labels(_read_parquet(tables_dir / "cells.parquet", []), False)
        try:
            derived = derive_summaries(cells)
        except (KeyError, ValueError, TypeError) as exc:
            t.notes.append(f"the summaries could not be derived from the cells ({exc})")
        else:
            for name in wanted:
                setattr(t, name, with_labels(derived[name]))
                t.derived.add(name)


def _cells_readable(path: Path, notes: list[str]) -> bool:
    """Whether ``cells.parquet`` is there, readable and has the cell keys (notes say why not),
    from its footer only."""
    import pyarrow.parquet as pq

    if not path.is_file():
        notes.append(f"{path.name} is missing")
        return False
    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except Exception as exc:  # a truncated or foreign file: say so, keep going
        notes.append(f"{path.name} could not be read ({type(exc).__name__}: {exc})")
        return False
    missing = [c for c in CELL_KEYS if c not in names]
    if missing:
        notes.append(f"cells.parquet lacks the columns {', '.join(missing)}; ignored")
        return False
    return True


def _col(df: pd.DataFrame, name: str, default: Any) -> pd.Series:
    return df[name] if name in df.columns else pd.Series(default, index=df.index)


def cell_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (model x dtype x variant x seed x method x eps), blocks folded in."""
    used = [*CELL_KEYS, "block", "flagged", "in_truth", "cell_verdict", "expected", "status",
            "error", "cell_difference", "eps_used"]
    df = cells[[c for c in used if c in cells.columns]].copy()
    df["block"] = _text(_col(df, "block", ""))
    df["_flag"] = _col(df, "flagged", False).fillna(False).astype(bool)
    df["_truth"] = _col(df, "in_truth", False).fillna(False).astype(bool)
    for name, default in (("cell_verdict", ""), ("expected", ""), ("status", "done"),
                          ("error", ""), ("cell_difference", np.nan), ("eps_used", np.nan)):
        df[name] = _col(df, name, default)
    df["error"] = df["error"].fillna("").astype(str)
    grouped = df.groupby(CELL_KEYS, dropna=False, sort=True)
    out = grouped.agg(
        cell_verdict=("cell_verdict", "first"),
        cell_difference=("cell_difference", "first"),
        expected=("expected", "first"),
        status=("status", "first"),
        error=("error", "first"),
        eps_used=("eps_used", "first"),
    ).reset_index()
    index = pd.MultiIndex.from_frame(out[CELL_KEYS])
    for mask_col, name in (("_flag", "flagged_blocks"), ("_truth", "truth_blocks")):
        sub = df[df[mask_col] & (df["block"] != "")]
        joined = sub.groupby(CELL_KEYS, dropna=False, sort=True)["block"].agg(" ".join)
        out[name] = joined.reindex(index).fillna("").to_numpy() if len(out) else []
    out["eps_label"] = [eps_label(e) for e in out["eps"]]
    return out


def derive_summaries(cells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The sweep's own summaries (detection, localisation, best eps) from the cells table."""
    from ..tables import summarise

    return summarise(cells)


def csv_data_uri(df: pd.DataFrame, gzip_above: int = 1_500_000) -> tuple[str, str, int]:
    """The table as a ``data:`` URI (base64, so no character needs quoting).

    Returns ``(uri, suggested file name, bytes)``; large tables are gzip-compressed
    (pandas reads ``.csv.gz`` directly).
    """
    text = df.to_csv(index=False).encode("utf-8")
    if len(text) > gzip_above:
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            gz.write(text)
        payload, mime, suffix = buf.getvalue(), "application/gzip", ".csv.gz"
    else:
        payload, mime, suffix = text, "text/csv;charset=utf-8", ".csv"
    uri = f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
    return uri, "gradlab-cells" + suffix, len(payload)


def flatten_run(run: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``run.json`` as sorted (dotted key, text) pairs for display."""
    out: list[tuple[str, str]] = []
    for key in run:
        value = run[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(flatten_run(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                out.extend(flatten_run(v, f"{name}[{i}]."))
        elif isinstance(value, list):
            out.append((name, ", ".join(str(v) for v in value)))
        else:
            out.append((name, str(value)))
    return out


def pick(run: dict[str, Any] | None, *names: str) -> Any:
    """The first value in ``run`` found under any of ``names`` (dotted paths allowed)."""
    if not run:
        return None
    flat: dict[str, Any] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(run, "")
    for n in names:
        if n in flat:
            return flat[n]
    return None

