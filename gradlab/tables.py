"""The sweep's tables: group files -> the Parquet tables of ``docs/tables.md`` and run.json.

:func:`aggregate` streams the group files written by :func:`gradlab.sweep.run_group` (read
only through :func:`gradlab.sweep.read_group`, whatever their number or layout) through a
partitioned spill (:mod:`gradlab.spill`), so its memory does not grow with the number of
cells; :func:`summarise` (:mod:`gradlab.summaries`) derives the catalogue's detection,
localisation and best-eps summaries and, with :mod:`gradlab.trust`, the mutation summaries
(the detection-limit curves, the settings to trust for each model, and the verdict on each
model file), one model x dtype x variant at a time.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write, ensure_writable
from .config import normalise
from .errors import GradlabError
from .spill import ROW_GROUP_ROWS, RowGroupWriter, Spill, arrow_table, typed_frame
from .summaries import PARTITION, Summaries, summarise
from .sweep import (
    CELL_COLUMNS,
    TIMING_COLUMNS,
    count_cells,
    read_group,
)
from .vocab import CELL_KEYS, eps_label, parse_eps_label

__all__ = ["aggregate", "summarise", "TABLES"]

TABLES = ("cells", "timing", "detection", "localisation", "best_eps", "detection_limits",
          "trust", "models", "settings")


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("gradlab", "numpy", "pandas", "pyarrow", "snakemake"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _coordinates(data: Mapping[str, Any]) -> set[tuple[str, int, str]]:
    """The (dtype, seed, eps label) grid points a group file holds: from its cells, and from
    its own ``dtype``/``seed``/``eps`` when it names them (a group may have no cells)."""
    c = data["cells"]
    labels = {e: eps_label(e) for e in set(c["eps"])}
    points = {(d, int(s), labels[e]) for d, s, e in zip(c["dtype"], c["seed"], c["eps"],
                                                         strict=True)}
    for key in ("eps", "epsilons"):  # one step, or all steps of a dtype x seed group
        eps = data.get(key)
        for label in [eps] if isinstance(eps, str) else eps if isinstance(eps, list) else []:
            points.add((data["dtype"], int(data["seed"]), eps_label(parse_eps_label(label))))
    return points


class _Progress:
    """Logs how many group files and cells were read, every ``every`` files or seconds."""

    def __init__(self, total: int, log: Callable[[str], None] | None, every: int = 100,
                 seconds: float = 10.0) -> None:
        self.total, self.log, self.every, self.seconds = total, log, every, seconds
        self.files = self.cells = self.rows = 0
        self._last = time.monotonic()

    def step(self, cells: int, rows: int) -> None:
        self.files += 1
        self.cells += cells
        self.rows += rows
        now = time.monotonic()
        if self.log and (self.files % self.every == 0 or now - self._last >= self.seconds
                         or self.files == self.total):
            self._last = now
            self.log(f"read {self.files}/{self.total} group files: {self.cells:,} cells, "
                     f"{self.rows:,} rows")


def aggregate(files: Iterable[str | Path], cfg: Mapping[str, Any], out_dir: str | Path,
              state: str | Path | None = None, log: Callable[[str], None] | None = None,
              chunk_rows: int = 100_000, row_group_rows: int = ROW_GROUP_ROWS
              ) -> dict[str, Any]:
    """Turn group files into the tables of ``docs/tables.md`` under ``out_dir``.

    The group files are streamed: their rows are spilled to temporary files by model x dtype x
    variant every ``chunk_rows`` rows, then read back one partition at a time to write the
    cells and timing tables (in row groups) and the summaries (:mod:`gradlab.summaries`), so
    memory does not grow with the number of cells. The tables do not depend on ``chunk_rows``.

    Args:
        files: the group files; together they must hold every (dtype, seed, step) of the grid,
            each once.
        cfg: the normalised config (for the digest and the planned cell count).
        out_dir: the tables directory.
        state: a small JSON file remembering which groups the previous aggregation saw, so
            ``run.json`` can say which cells were computed in this run and which were reused.
        log: called with a progress line every 100 files or 10 seconds.
        chunk_rows: rows held in memory before they are spilled.
        row_group_rows: rows per row group of ``cells.parquet`` and ``timing.parquet``.

    Returns:
        The ``run.json`` content.

    Raises:
        GradlabError: a group file is missing, unreadable or not part of the config's grid.
    """
    from .config import digest, source_hash

    finished = time.time()
    cfg = normalise(cfg, load_models=False)
    planned = {(d, int(s), eps_label(e)) for d in cfg["dtypes"] for s in cfg["seeds"]
               for e in cfg["epsilons"]}
    steps = [eps_label(e) for e in cfg["epsilons"]]
    files = [Path(f) for f in files]
    seen_points: dict[tuple, Path] = {}
    groups: dict[str, dict[str, Any]] = {}  # file -> the little run.json needs
    progress = _Progress(len(files), log)
    cells_spill = Spill(PARTITION, [*CELL_KEYS, "block"], CELL_COLUMNS)
    timing_spill = Spill(PARTITION, CELL_KEYS, TIMING_COLUMNS)
    with cells_spill, timing_spill:
        buffered: list[tuple[Any, Any]] = []
        n_buffered = 0
        for f in files:
            data = read_group(f)
            if isinstance(data.get("epsilons"), list) and data["epsilons"] != steps:
                raise GradlabError(f"group file {f} has the steps "
                                   f"{', '.join(data['epsilons'])}, the config "
                                   f"{', '.join(steps)}; rerun it")
            for point in sorted(_coordinates(data)):
                if point not in planned:
                    raise GradlabError(
                        f"group file {f} (dtype {point[0]}, seed {point[1]}, eps {point[2]}) "
                        "is not part of the config's grid")
                if point in seen_points:
                    raise GradlabError(f"group files {seen_points[point]} and {f} both hold "
                                       f"dtype {point[0]}, seed {point[1]}, eps {point[2]}")
                seen_points[point] = f
            n_cells = len(data["timing"]["seconds"])
            groups[str(f)] = {"started": data.get("started", 0.0), "cells": n_cells,
                              "computed": data.get("computed", n_cells),
                              "cpu": data.get("check_cpu_seconds", 0.0)}
            buffered.append((arrow_table(data["cells"], CELL_COLUMNS),
                             arrow_table(data["timing"], TIMING_COLUMNS)))
            n_buffered += len(buffered[-1][0])
            progress.step(n_cells, len(buffered[-1][0]))
            del data
            if n_buffered >= chunk_rows:
                _spill(buffered, cells_spill, timing_spill)
                buffered, n_buffered = [], 0
        missing = sorted(planned - set(seen_points), key=str)
        if missing:
            d, s, e = missing[0]
            raise GradlabError(f"{len(missing)} group(s) missing: no group file holds dtype "
                               f"{d}, seed {s}, eps {e}")
        _spill(buffered, cells_spill, timing_spill)
        del buffered
        out = Path(out_dir)
        ensure_writable(out)  # before any table is written: all of them or none
        if state:
            ensure_writable(Path(state).parent, state)
        counts = _write_big(cells_spill, timing_spill, out, row_group_rows, log)
    counts["check_cpu_seconds"] = math.fsum(g["cpu"] for g in groups.values())  # any order
    return _write_run(out, cfg, groups, counts, state, finished,
                      digest(cfg), source_hash("core"))


def _spill(buffered: list, cells: Spill, timing: Spill) -> None:
    import pyarrow as pa

    if buffered:
        cells.add(pa.concat_tables([b[0] for b in buffered]))
        timing.add(pa.concat_tables([b[1] for b in buffered]))


def _write_big(cells_spill: Spill, timing_spill: Spill, out: Path, row_group_rows: int,
               log: Callable[[str], None] | None) -> dict[str, Any]:
    """Write cells and timing partition by partition, the summaries from the same pass."""
    import math

    import pyarrow as pa

    pool = pa.default_memory_pool()
    acc = Summaries()
    counts = {"failed": 0, "inconclusive": 0, "non_finite": 0}
    seconds: list[float] = []
    tmp = {n: out / f".{n}.parquet.tmp" for n in ("cells", "timing")}
    writers = {n: RowGroupWriter(p, row_group_rows) for n, p in tmp.items()}
    try:
        for (_, cells), (_, timing) in zip(cells_spill.partitions(), timing_spill.partitions(),
                                           strict=True):
            writers["cells"].write(cells)
            writers["timing"].write(timing)
            seconds.append(math.fsum(timing["seconds"]))
            acc.add(cells)
            per_cell = cells.drop_duplicates(CELL_KEYS)
            counts["failed"] += int((per_cell["status"] == "failed").sum())
            counts["inconclusive"] += int((per_cell["cell_verdict"] == "inconclusive").sum())
            counts["non_finite"] += int(cells.loc[cells["block_verdict"] == "non-finite",
                                                  CELL_KEYS].drop_duplicates().shape[0])
            del cells, timing
            pool.release_unused()  # hand the partition's buffers back, not keep them cached
        writers["cells"].close(typed_frame({c: [] for c in CELL_COLUMNS}, CELL_COLUMNS))
        writers["timing"].close(typed_frame({c: [] for c in TIMING_COLUMNS}, TIMING_COLUMNS))
        for name, df in acc.result().items():
            atomic_write(out / f"{name}.parquet",
                         lambda p, df=df: df.to_parquet(p, index=False, engine="pyarrow"))
        for name, path in tmp.items():
            path.replace(out / f"{name}.parquet")
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    if log:
        log(f"wrote {writers['cells'].written:,} cell rows and {writers['timing'].written:,} "
            f"cells to {out}")
    return counts | {"check_seconds": math.fsum(seconds)}


def _write_run(out: Path, cfg: Mapping[str, Any], groups: Mapping[str, dict], counts: dict,
               state: str | Path | None, finished: float, config_digest: str, code_hash: str
               ) -> dict[str, Any]:
    """Write run.json (and the state file) and return run.json's content."""
    seen = {}
    state_path = Path(state) if state else None
    if state_path and state_path.is_file():
        try:
            seen = json.loads(state_path.read_text())
        except (OSError, ValueError):
            seen = {}
    order = sorted(groups)
    stamps = {k: groups[k]["started"] for k in order}
    fresh = [k for k in order if seen.get(k) != stamps[k]]
    start = min((stamps[k] for k in fresh), default=finished)
    run = {
        "config_digest": config_digest,
        "code_hash": code_hash,
        "versions": _versions(),
        "groups": len(order),
        "cells": {
            "planned": count_cells(cfg),
            # a group that ran in this run computed only the cells its cache lacked
            "computed": sum(groups[k]["computed"] for k in fresh),
            "reused": sum(groups[k]["cells"] - groups[k]["computed"] if k in fresh
                          else groups[k]["cells"] for k in order),
            "failed": counts["failed"],
            "inconclusive": counts["inconclusive"],
            "non_finite": counts["non_finite"],
        },
        "check_seconds": counts["check_seconds"],
        "check_cpu_seconds": counts["check_cpu_seconds"],
        "wall_seconds": round(time.time() - start, 3),
        "config": {k: v for k, v in cfg.items() if k != "report"},
    }
    atomic_write(out / "run.json", lambda tmp: tmp.write_text(
        json.dumps(run, indent=2, sort_keys=True) + "\n", encoding="utf-8"))
    if state_path:
        atomic_write(state_path, lambda tmp: tmp.write_text(json.dumps(stamps, sort_keys=True)))
    return run
