"""The sweep's command-line commands (the Snakemake rules call these from ``shell:``).

``gradlab sweep-config``     validate a config, print it normalised with the grid's size
``gradlab sweep-run``        run one group of cells (one dtype x seed x eps) into a JSON file
``gradlab sweep-aggregate``  turn the group files into the Parquet tables and run.json
``gradlab sweep-examples``   compute the report's worked examples into tables
``gradlab report``           render the HTML report from the tables

Bad input (a config error, a missing file, an unwritable directory) is one line on stderr and
exit code 2; the commands never leave a half-written output behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .errors import GradlabError, UsageError

__all__ = ["register", "load_config_file", "parse_group_args"]


def load_config_file(path: str | Path) -> Any:
    """Read a YAML config file (no validation).

    Raises:
        UsageError: the file is missing or is not YAML.
    """
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise UsageError(f"config file {path}{line} is not valid YAML: "
                         f"{getattr(exc, 'problem', None) or exc}") from None


def _config(args: argparse.Namespace, load_models: bool) -> dict[str, Any]:
    from .config import normalise

    if args.config_json is not None:
        try:
            raw = json.loads(args.config_json)
        except ValueError as exc:
            raise UsageError(f"--config-json is not JSON: {exc}") from None
    else:
        raw = load_config_file(args.config)
    return normalise(raw, load_models=load_models)


def _add_config(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", help="the sweep config (YAML)")
    src.add_argument("--config-json", metavar="JSON",
                     help="the config as JSON text (what the workflow passes)")


def _cmd_config(args: argparse.Namespace) -> int:
    from .sweep import count_cells, group_keys

    cfg = _config(args, load_models=True)
    print(json.dumps({"config": cfg, "groups": len(group_keys(cfg)), "cells": count_cells(cfg)},
                     indent=2, sort_keys=True))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .atomic import ensure_writable
    from .sweep import run_group, write_group
    from .vocab import eps_label

    dtype, seed, eps = parse_group_args(args.dtype, args.seed, args.eps)
    cfg = _config(args, load_models=False)
    ensure_writable(Path(args.out).parent, args.out)  # fail before the checks, not after
    started = time.time()

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    payload = run_group(cfg, dtype, seed, eps, log=log, cache_dir=args.cache,
                        code_hash=args.code_hash)
    n = len(payload["timing"]["seconds"])
    c = payload["cells"]
    cells = zip(c["model"], c["variant"], c["method"], c["status"], strict=True)
    failed = len({(m, v, meth) for m, v, meth, status in cells if status == "failed"})
    payload |= {"dtype": dtype, "seed": seed, "eps": eps_label(eps), "code_hash": args.code_hash,
                "started": started, "finished": time.time()}
    write_group(args.out, payload)
    print(f"group dtype={dtype} seed={seed} eps={eps_label(eps)}: {n} cells "
          f"({payload['computed']} computed, {payload['reused']} reused, {failed} failed) "
          f"in {time.time() - started:.2f} s -> {args.out}")
    return 0


def _cmd_aggregate(args: argparse.Namespace) -> int:
    from .tables import aggregate

    cfg = _config(args, load_models=False)
    run = aggregate(args.groups, cfg, args.out_dir, state=args.state)
    c = run["cells"]
    print(f"{c['planned']} cells ({c['computed']} computed, {c['reused']} reused, "
          f"{c['failed']} failed) -> {args.out_dir}")
    return 0


def _cmd_examples(args: argparse.Namespace) -> int:
    from .examples import write_examples

    cfg = _config(args, load_models=False)
    tables = Path(args.tables)
    for name in ("cells", "best_eps"):
        if not (tables / f"{name}.parquet").is_file():
            raise UsageError(f"--tables {tables}: no {name}.parquet there; run "
                             "gradlab sweep-aggregate first")
    written = write_examples(tables, cfg)
    print(f"{len(written)} example tables -> {tables}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .atomic import ensure_writable

    tables = Path(args.tables)
    if not (tables / "cells.parquet").is_file():
        raise UsageError(f"--tables {tables}: no cells.parquet there; run the sweep first "
                         "(snakemake --cores 2)")
    if not args.title.strip():
        raise UsageError("--title: give a non-empty title")
    out = Path(args.out)
    figures = Path(args.figures_dir) if args.figures_dir else None
    ensure_writable(out.parent, out)  # before the report is built, not after
    if figures is not None:
        ensure_writable(figures)
    try:
        from .report import build_report
    except ImportError as exc:
        raise GradlabError(f"the report module cannot be imported ({exc})") from None
    build_report(tables, out, args.title, figures)  # atomic; a failure names its file
    print(f"report -> {out}")
    return 0


def parse_group_args(dtype: str, seed: str | int, eps: str) -> tuple[str, int, float | str]:
    """Validate a group's coordinates given on the command line.

    Raises:
        UsageError: unknown dtype, a seed that is not a whole number >= 0, a bad step.
    """
    from .vocab import DTYPE_NAMES, step_problem

    if dtype not in DTYPE_NAMES:
        raise UsageError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPE_NAMES)}")
    try:
        seed_value = int(seed)
        if seed_value < 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"--seed {seed!r}: give a whole number >= 0") from None
    value, problem = step_problem(eps)
    if problem:
        raise UsageError(f"--eps {eps!r} {problem}; give a positive step such as 1e-07, or auto")
    return dtype, seed_value, value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep-config``, ``sweep-run``, ``sweep-aggregate``, ``sweep-examples`` and
    ``report`` to the CLI."""
    cfg = sub.add_parser(
        "sweep-config", help="validate a sweep config and show it normalised",
        description="Validate a sweep config (the same checks the workflow makes before any "
                    "job runs) and print it normalised, with the number of groups and cells.")
    _add_config(cfg)
    cfg.set_defaults(handler=_cmd_config)

    run = sub.add_parser(
        "sweep-run", help="run one group of sweep cells (one dtype x seed x eps)",
        description="Check every model x variant x method of the config at one dtype, seed and "
                    "step, and write the rows as one JSON group file (atomically). A cell whose "
                    "model raises is recorded as failed with its reason; the rest still run.")
    _add_config(run)
    run.add_argument("--dtype", required=True, help="float64 or float32")
    run.add_argument("--seed", required=True, help="the seed (a whole number >= 0)")
    run.add_argument("--eps", required=True, help="the step as in file names (1e-07) or auto")
    run.add_argument("--out", required=True, metavar="FILE", help="the group file to write")
    run.add_argument("--cache", metavar="DIR", default=None,
                     help="keep each model's cells in a cache file there and reuse them, so a "
                          "rerun computes only cells it has not computed (default: no cache)")
    run.add_argument("--code-hash", default="",
                     help="hash of gradlab's source, recorded in the group file")
    run.set_defaults(handler=_cmd_run)

    agg = sub.add_parser(
        "sweep-aggregate", help="build the sweep's tables from its group files",
        description="Read every group file of the config's grid and write cells.parquet, "
                    "timing.parquet, detection.parquet, localisation.parquet, best_eps.parquet "
                    "and run.json (see docs/tables.md), sorted and written atomically.")
    _add_config(agg)
    agg.add_argument("--out-dir", required=True, metavar="DIR", help="the tables directory")
    agg.add_argument("--state", metavar="FILE", default=None,
                     help="remembers which groups the last aggregation saw (for the computed / "
                          "reused counts in run.json)")
    agg.add_argument("groups", nargs="+", metavar="GROUP", help="group files from sweep-run")
    agg.set_defaults(handler=_cmd_aggregate)

    ex = sub.add_parser(
        "sweep-examples", help="compute the report's worked examples as tables",
        description="Reproduce the seed exercise and recompute one flagged cell element by "
                    "element; write seed.parquet, seed_blocks.parquet, seed_trap.parquet and "
                    "case.parquet next to the tables (see docs/tables.md).")
    _add_config(ex)
    ex.add_argument("--tables", required=True, metavar="DIR",
                    help="the tables directory (with cells.parquet and best_eps.parquet)")
    ex.set_defaults(handler=_cmd_examples)

    rep = sub.add_parser(
        "report", help="render the sweep's HTML report",
        description="Render the self-contained HTML report from the sweep's tables.")
    rep.add_argument("--tables", required=True, metavar="DIR", help="the tables directory")
    rep.add_argument("--out", required=True, metavar="HTML", help="the report file to write")
    rep.add_argument("--title", required=True, help="the report's title")
    rep.add_argument("--figures-dir", metavar="DIR", default=None,
                     help="also write the figures there as PNG files")
    rep.set_defaults(handler=_cmd_report)
