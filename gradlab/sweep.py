"""The sweep: config -> groups of cells -> rows -> tables and summaries.

A *cell* is one model x dtype x variant x seed x method x eps check. Cells are run in *groups*,
one group per dtype x seed (every model, variant, step and method inside: few jobs, each
building its models and starting its workers once). A group is written as one JSON file of
columns (:func:`run_group`, :func:`write_group`); the aggregation (:mod:`gradlab.tables`)
turns all groups into the Parquet tables of ``docs/tables.md``.

Every cell's rows are also kept in a per-model *cache* file of its group (keyed by a hash of
everything the cell depends on: the model entry, a model file's bytes, the verdict settings,
the worker limits and gradlab's own code), so a group that reruns because the grid changed
computes only the cells it has not seen: adding a model, step, method, mutation or variant
computes only those cells; removing one computes nothing; a new seed is a new group.

A cell whose model raises or misbehaves is recorded with ``status == "failed"`` and the reason;
every other cell still runs. All files are written atomically (:mod:`gradlab.atomic`) and
every table is sorted by its key columns, so the bytes do not depend on job order.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write, ensure_writable
from .config import dumps
from .errors import GradlabError, one_line
from .vocab import CELL_KEYS, eps_label, model_spec

__all__ = [
    "CELL_COLUMNS", "TIMING_COLUMNS", "GROUP_PATTERN", "CACHE_DIR", "group_keys", "group_path",
    "check_params", "worker_limits", "mutated_seeds", "model_variants", "cells_of_group",
    "count_cells", "run_group", "write_group", "read_group",
    # re-exported for code written before gradlab.vocab / gradlab.atomic (import from there)
    "CELL_KEYS", "atomic_write", "ensure_writable",
]

GROUP_PATTERN = "results/cells/{dtype}/seed{seed}.json"
CACHE_DIR = "results/cache"
CELL_COLUMNS = {  # name -> pandas dtype, in table order (docs/tables.md)
    "model": "string", "model_kind": "string", "dtype": "string", "variant": "string",
    "seed": "int64", "method": "string", "eps": "float64", "eps_used": "float64",
    "block": "string", "block_size": "int64", "difference": "float64", "threshold": "float64",
    "block_verdict": "string", "diagnosis": "string", "flagged": "bool", "in_truth": "bool",
    "truth_change": "float64", "cell_verdict": "string", "cell_difference": "float64",
    "expected": "string", "status": "string", "error": "string",
    "detection_limit": "float64", "mutation": "string", "mutation_size": "float64",
    "reference_error": "float64",
}
TIMING_COLUMNS = {k: CELL_COLUMNS[k] for k in CELL_KEYS} | {"seconds": "float64"}
NETWORKS = ("seed-net", "mlp")


# ----------------------------------------------------------------------------- the grid
def check_params(cfg: Mapping[str, Any]) -> str:
    """The part of the config a check group uses, as stable JSON (a Snakemake param); the
    mutations' seeds resolved to a list, so adding a seed changes no other group's params."""
    grid = {k: cfg[k] for k in ("epsilons", "limits", "methods", "models", "variants",
                                "verdict")}
    grid["mutations"] = dict(cfg["mutations"], seeds=mutated_seeds(cfg))
    return dumps(grid)


def group_keys(cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``(dtype, seed)`` of every group, sorted."""
    return sorted((d, s) for d in cfg["dtypes"] for s in cfg["seeds"])


def group_path(dtype: str, seed: int) -> str:
    """Where a group's JSON file goes, relative to the workflow directory."""
    return GROUP_PATTERN.format(dtype=dtype, seed=seed)


def mutated_seeds(grid: Mapping[str, Any]) -> list[int]:
    """The seeds the mutations run on: the first ``mutations.seeds`` of ``seeds``."""
    mut = grid.get("mutations") or {}
    if not mut.get("kinds"):
        return []
    n = mut.get("seeds", "all")
    if isinstance(n, list):  # resolved already (what check_params passes to a group job)
        return n
    return list(grid["seeds"]) if n == "all" else list(grid["seeds"])[:n]


def model_variants(grid: Mapping[str, Any], model: Mapping[str, Any], seed: int
                   ) -> list[str]:
    """The variants a model is checked in at a seed: networks every catalogue variant,
    linear1d and files only ``correct`` (they have their own backward); then, for every
    model at the mutated seeds, the reference and the mutations (:mod:`gradlab.mutations`)."""
    from .mutations import plan

    variants = list(grid["variants"]) if model["kind"] in NETWORKS else ["correct"]
    if int(seed) in mutated_seeds(grid):
        variants += plan(grid["mutations"]["kinds"], grid["mutations"]["sizes"])
    return variants


def _models_of(grid: Mapping[str, Any], dtype: str) -> list[dict]:
    """The models a group of this dtype checks (files only in float64)."""
    return [m for m in grid["models"] if m["kind"] != "file" or dtype == "float64"]


def cells_of_group(grid: Mapping[str, Any], dtype: str, seed: int | None = None
                   ) -> list[tuple[str, str, str]]:
    """(model name, variant, method) of every cell of a group of this dtype and seed at one
    step (default: the first seed); a group has these at every step of the grid."""
    seed = grid["seeds"][0] if seed is None else seed
    return [(m["name"], v, meth) for m in _models_of(grid, dtype)
            for v in model_variants(grid, m, seed) for meth in grid["methods"]]


def count_cells(cfg: Mapping[str, Any]) -> int:
    """Number of cells the config plans."""
    return len(cfg["epsilons"]) * sum(len(cells_of_group(cfg, d, s)) for d, s in group_keys(cfg))


# ----------------------------------------------------------------------------- running
def worker_limits(cfg: Mapping[str, Any]):
    """The :class:`~gradlab.isolate.Limits` of a normalised config's ``limits`` section."""
    from .isolate import DEFAULT_SECONDS, Limits

    limits = cfg.get("limits") or {}
    return Limits(limits.get("seconds_per_check") or DEFAULT_SECONDS, limits.get("memory_mb"))


_NO_MUTATION = {"mutation": "", "mutation_size": math.nan, "reference_error": math.nan}


def _failed_rows(error: str, blocks: list[tuple[str, int]], truth: Mapping[str, float]
                 ) -> list[dict]:
    fail = {"eps_used": math.nan, "difference": math.nan, "threshold": math.nan,
            "block_verdict": "failed", "diagnosis": error, "flagged": False,
            "cell_verdict": "failed", "cell_difference": math.nan, "status": "failed",
            "error": error, "detection_limit": math.nan}
    return [fail | {"block": n, "block_size": size, "in_truth": n in truth,
                    "truth_change": float(truth.get(n, 0.0))} for n, size in blocks]


def _done_rows(result, truth: Mapping[str, float]) -> list[dict]:
    done = {"eps_used": float(result.eps), "cell_verdict": result.verdict,
            "cell_difference": float(result.difference), "status": "done", "error": ""}
    return [done | {
        "block": b.name, "block_size": int(math.prod(b.shape)),
        "difference": float(b.difference), "threshold": float(b.threshold),
        "block_verdict": b.verdict, "diagnosis": " ".join(b.diagnosis.split()),
        "flagged": b.verdict in ("bug", "shape-mismatch"), "in_truth": b.name in truth,
        "truth_change": float(truth.get(b.name, 0.0)),
        "detection_limit": float(b.detection_limit),
    } for b in result.blocks]


def _file_bytes_hash(path: str | None) -> str:
    import hashlib

    if not path:
        return ""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _cache_file(cache_dir: str | Path, grid: Mapping[str, Any], model: Mapping[str, Any],
                dtype: str, seed: int, eps: float | str, code_hash: str) -> Path:
    """Where a model's cells of one group are cached: keyed by everything they depend on."""
    import hashlib

    key = dumps({"model": model, "file": _file_bytes_hash(model.get("path")),
                 "verdict": grid["verdict"], "limits": grid["limits"], "code": code_hash,
                 "dtype": dtype, "seed": int(seed), "eps": eps_label(eps)})
    name = hashlib.sha256(key.encode()).hexdigest()[:24]
    return Path(cache_dir) / dtype / f"seed{seed}" / f"eps{eps_label(eps)}" / f"{name}.json"


def _read_cache(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # a damaged cache is recomputed, never trusted
        return {}


def _check_cells(model: Mapping[str, Any], todo: Mapping[str, list[tuple[str, str]]],
                 dtype: str, seed: int, grid: Mapping[str, Any],
                 log: Callable[[str], None] | None) -> dict[str, dict[str, dict]]:
    """Run the (variant, method) cells of one model at each step (``todo``: eps label ->
    cells); ``{eps label: {"variant|method": record}}``. Each runner variant is built (and a
    model file's worker started) once for every step."""
    from .mutations import PREFIX
    from .runner import open_model
    from .vocab import parse_eps_label

    limits, threshold = worker_limits(grid), grid["verdict"]["threshold"]
    shared: dict = {}  # estimates of the same cost, shared by its variants (per method and eps)
    runner_of = {v: ("correct" if v.startswith(PREFIX) else v)
                 for cells in todo.values() for v, _ in cells}
    out: dict[str, dict[str, dict]] = {label: {} for label in todo}
    for runner_variant in dict.fromkeys(runner_of.values()):
        spec = model_spec(model, runner_variant, int(seed), dtype)
        # a model file runs in a worker process: its crash, exit or hang fails its own cells
        with open_model(spec, limits, estimates=shared) as runner:
            blocks, truth, build_error = [("", 0)], {}, ""
            try:
                blocks, truth = runner.build()
            except (Exception, SystemExit) as exc:  # a user's model that raises: record it
                build_error = one_line(exc, model["path"] or "")
            for label, cells in todo.items():
                options = {"eps": parse_eps_label(label), "seed": int(seed),
                           "threshold": threshold, "localise": model.get("localise") or "auto"}
                for variant, method in cells:
                    if runner_of[variant] != runner_variant:
                        continue
                    record = _one_cell(runner, model, variant, method,
                                       dict(options, method=method), blocks, truth,
                                       build_error)
                    out[label][f"{variant}|{method}"] = record
                    if log and record["rows"][0]["status"] == "failed":
                        log(f"failed: {model['name']} {variant} seed {seed} {method} eps "
                            f"{label}: {record['rows'][0]['error']}")
    return out


def _one_cell(runner, model: Mapping[str, Any], variant: str, method: str, options: dict,
              blocks: list, truth: Mapping[str, float], build_error: str) -> dict:
    """One cell: its rows (without the key columns), wall and CPU seconds."""
    from .mutations import PREFIX, REFERENCE, parse_variant

    source = model["path"] or ""
    mutated = variant.startswith(PREFIX)
    started, cpu_started = time.perf_counter(), time.process_time()
    result, error, used, extra = None, build_error, 0.0, dict(_NO_MUTATION)
    if not build_error:
        try:
            if mutated:
                (result, truth, ref_err), used = runner.check_mutated(
                    variant, model["kind"] != "file", **options)
                m = parse_variant(variant)
                extra = {"mutation": m.kind if m else "reference",
                         "mutation_size": max(truth.values()) if truth else 0.0,
                         "reference_error": max(ref_err.values(), default=0.0)}
            else:
                result, used = runner.check(**options)
        except (Exception, SystemExit) as exc:  # the cell fails, the group goes on
            error = one_line(exc, source)
    seconds = time.perf_counter() - started
    cpu = max(used, time.process_time() - cpu_started)
    rows = _done_rows(result, truth) if result is not None else _failed_rows(error, blocks,
                                                                               truth)
    if model["kind"] == "file" and not mutated:
        expected = "unknown"  # a user's model: its ground truth is what the sweep asks
    elif mutated:  # a mutation that found no block to carry it left the reference as it was
        expected = "bug" if variant != REFERENCE and truth else "ok"
    else:
        expected = "bug" if truth else "ok"
    return {"rows": [r | extra | {"expected": expected} for r in rows],
            "seconds": seconds, "cpu": cpu}


def _steps_of(grid: Mapping[str, Any], eps: float | str | list | None) -> list[str]:
    """The eps labels a group runs: every step of the grid, or the ones given."""
    if eps is None:
        eps = grid["epsilons"]
    return [eps_label(e) for e in (eps if isinstance(eps, list | tuple) else [eps])]


def run_group(grid: Mapping[str, Any], dtype: str, seed: int,
              eps: float | str | list | None = None,
              log: Callable[[str], None] | None = None, cache_dir: str | Path | None = None,
              code_hash: str = "", progress: Callable[[str], None] | None = None
              ) -> dict[str, Any]:
    """Run every cell of one group (reusing the cached ones).

    Args:
        grid: a normalised config (``models, variants, mutations, methods, epsilons, verdict,
            limits``).
        dtype, seed: the group's coordinates.
        eps: the steps to run (one, or a list; ``"auto"`` allowed); default every step of
            ``grid["epsilons"]``.
        log: called with one line per failed cell.
        cache_dir: where cells are cached per model and step (``None``: no cache).
        code_hash: gradlab's source hash (part of the cache key; default: computed).
        progress: called with one line per model done (cells, computed, seconds).

    Returns:
        ``{"cells": {column: [values]}, "timing": {column: [values]}, "check_cpu_seconds",
        "computed", "reused", "epsilons"}``: one cell row per parameter block (one row with
        block ``""`` when the model could not even be built), the CPU seconds the computed
        checks took, the numbers of cells computed and taken from the cache, and the steps.
    """
    from .config import source_hash
    from .vocab import parse_eps_label

    labels = _steps_of(grid, eps)
    rows: dict[str, list] = {c: [] for c in CELL_COLUMNS}
    timing: dict[str, list] = {c: [] for c in TIMING_COLUMNS}
    cpu, computed, reused = 0.0, 0, 0
    if cache_dir is not None and not code_hash:
        code_hash = source_hash("core")
    # model files last: forking their worker makes OpenBLAS stop its thread pool in this
    # process, and restarting it would slow the built-in checks after it (~50 ms a group)
    models = sorted(_models_of(grid, dtype), key=lambda m: m["kind"] == "file")
    for model in models:
        started = time.perf_counter()
        wanted = [(v, meth) for v in model_variants(grid, model, seed)
                  for meth in grid["methods"]]
        paths = {label: (_cache_file(cache_dir, grid, model, dtype, seed, label, code_hash)
                         if cache_dir is not None else None) for label in labels}
        caches = {label: _read_cache(paths[label]) for label in labels}
        todo = {label: [(v, meth) for v, meth in wanted if f"{v}|{meth}" not in caches[label]]
                for label in labels}
        todo = {label: cells for label, cells in todo.items() if cells}
        if todo:
            fresh = _check_cells(model, todo, dtype, seed, grid, log)
            for label, records in fresh.items():
                cpu += sum(r["cpu"] for r in records.values())
                caches[label] |= records
                if paths[label] is not None:
                    write_group(paths[label], caches[label])
        n_todo = sum(len(cells) for cells in todo.values())
        computed, reused = computed + n_todo, reused + len(wanted) * len(labels) - n_todo
        for label in labels:
            eps_value = math.nan if label == "auto" else float(parse_eps_label(label))
            for variant, method in wanted:
                record = caches[label][f"{variant}|{method}"]
                base = {"model": model["name"], "model_kind": model["kind"], "dtype": dtype,
                        "variant": variant, "seed": int(seed), "method": method,
                        "eps": eps_value}
                for col in TIMING_COLUMNS:
                    timing[col].append(record["seconds"] if col == "seconds" else base[col])
                for row in record["rows"]:
                    for col, val in (base | row).items():
                        rows[col].append(val)
        if progress:
            progress(f"{model['name']}: {len(wanted) * len(labels)} cells ({n_todo} computed) in "
                f"{time.perf_counter() - started:.1f} s")
    return {"cells": rows, "timing": timing, "check_cpu_seconds": cpu, "computed": computed,
            "reused": reused, "epsilons": labels}


# ----------------------------------------------------------------------------- files
def write_group(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write a group's JSON atomically."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_group(path: str | Path) -> dict[str, Any]:
    """Read a group file written by :func:`write_group`.

    Raises:
        GradlabError: missing, unreadable or not a group file.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not {"cells", "timing", "dtype", "seed", "epsilons"} <= set(data):
            raise ValueError("missing keys")
        return data
    except (OSError, ValueError) as exc:
        raise GradlabError(f"group file {path} cannot be read ({one_line(exc)}); "
                           "delete it and rerun") from None

