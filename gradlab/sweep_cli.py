"""The sweep's command-line commands (the Snakemake rules call these from ``shell:``).

``gradlab sweep-config``     validate a config, print it normalised with the grid's size
``gradlab sweep-run``        run one group of cells (one dtype x seed) into a JSON file
``gradlab sweep-aggregate``  turn the group files into the Parquet tables and run.json
``gradlab sweep-examples``   compute the report's worked examples into tables
``gradlab report``           render the HTML report from the tables

Bad input (a config error, a missing file, an unwritable directory) is one line on stderr and
exit code 2; the commands never leave a half-written output behind.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = ["register", "load_config_file", "parse_group_args", "SWEEP_MODULES",
           "require_sweep_extra"]

#: What the sweep extra (``pip install 'gradlab[sweep]'``) provides: import name -> package.
SWEEP_MODULES = {"pandas": "pandas", "pyarrow": "pyarrow", "yaml": "pyyaml",
                 "jinja2": "jinja2", "matplotlib": "matplotlib"}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses it (as when the module is blocked)
        return False


def require_sweep_extra(command: str) -> None:
    """Check that the sweep extra is installed before a sweep command runs.

    Args:
        command: the command's name, for the message.

    Raises:
        UsageError: one line naming the missing packages and the install command.
    """
    missing = [pkg for mod, pkg in SWEEP_MODULES.items() if not _importable(mod)]
    if missing:
        raise UsageError(f"gradlab {command} needs the sweep extra (missing: "
                         f"{', '.join(missing)}); install it with: pip install 'gradlab[sweep]' "
                         "(in a clone: pip install -e '.[sweep]')")


def _needs_sweep_extra(command: str, handler: Callable[[argparse.Namespace], int]
                       ) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        require_sweep_extra(command)
        return handler(args)

    return run


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

    dtype, seed, steps = parse_group_args(args.dtype, args.seed, args.eps)
    cfg = _config(args, load_models=False)
    ensure_writable(Path(args.out).parent, args.out)  # fail before the checks, not after
    started = time.time()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    payload = run_group(cfg, dtype, seed, steps, log=log, cache_dir=args.cache,
                        code_hash=args.code_hash, progress=log)
    n = len(payload["timing"]["seconds"])
    c = payload["cells"]
    cells = zip(c["model"], c["variant"], c["method"], c["eps"], c["status"], strict=True)
    failed = len({cell[:4] for cell in cells if cell[4] == "failed"})
    payload |= {"dtype": dtype, "seed": seed, "code_hash": args.code_hash,
                "started": started, "finished": time.time()}
    write_group(args.out, payload)
    print(f"group dtype={dtype} seed={seed} ({len(payload['epsilons'])} steps): {n} cells "
          f"({payload['computed']} computed, {payload['reused']} reused, {failed} failed) "
          f"in {time.time() - started:.2f} s -> {args.out}")
    return 0


def _cmd_aggregate(args: argparse.Namespace) -> int:
    from .tables import aggregate

    cfg = _config(args, load_models=False)

    def log(line: str) -> None:  # progress on stdout: stderr is for the one error line
        print(line, flush=True)

    run = aggregate(args.groups, cfg, args.out_dir, state=args.state, log=log)
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
    from .report import build_report

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
    build_report(tables, out, args.title, figures,  # atomic; a failure names its file
                 log=lambda line: print(f"report: {line}", flush=True))
    print(f"report -> {out}")
    return 0


def parse_group_args(dtype: str, seed: str | int, eps: str | None = None
                     ) -> tuple[str, int, list[float | str] | None]:
    """Validate a group's coordinates given on the command line.

    Args:
        dtype, seed: the group.
        eps: comma-separated steps as in the tables (``1e-07,auto``); ``None``: every step of
            the config.

    Returns:
        ``(dtype, seed, steps)`` with ``steps`` a list, or ``None`` for the config's.

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
    if eps is None:
        return dtype, seed_value, None
    steps: list[float | str] = []
    for text in eps.split(","):
        value, problem = step_problem(text.strip())
        if problem:
            raise UsageError(f"--eps {eps!r}: {text.strip()!r} {problem}; give positive steps "
                             "such as 1e-07 (several: 1e-03,1e-07), or auto")
        steps.append(value)
    return dtype, seed_value, steps


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep-config``, ``sweep-run``, ``sweep-aggregate``, ``sweep-examples`` and
    ``report`` to the CLI."""
    cfg = sub.add_parser(
        "sweep-config", help="validate a sweep config and show it normalised",
        description="Validate a sweep config (the same checks the workflow makes before any "
                    "job runs) and print it normalised, with the number of groups and cells.")
    _add_config(cfg)
    cfg.set_defaults(handler=_needs_sweep_extra("sweep-config", _cmd_config))

    run = sub.add_parser(
        "sweep-run", help="run one group of sweep cells (one dtype x seed)",
        description="Check every model x variant x step x method of the config at one dtype "
                    "and seed, and write the rows as one JSON group file (atomically). A cell "
                    "whose model raises is recorded as failed with its reason; the rest still "
                    "run. Progress goes to stderr, one line per model.")
    _add_config(run)
    run.add_argument("--dtype", required=True, help="float64 or float32")
    run.add_argument("--seed", required=True, help="the seed (a whole number >= 0)")
    run.add_argument("--eps", default=None, metavar="STEPS",
                     help="only these steps, comma-separated as in the tables (1e-07,auto); "
                          "default: every step of the config")
    run.add_argument("--out", required=True, metavar="FILE", help="the group file to write")
    run.add_argument("--cache", metavar="DIR", default=None,
                     help="keep each model's cells in a cache file there and reuse them, so a "
                          "rerun computes only cells it has not computed (default: no cache)")
    run.add_argument("--code-hash", default="",
                     help="hash of gradlab's source, recorded in the group file")
    run.set_defaults(handler=_needs_sweep_extra("sweep-run", _cmd_run))

    agg = sub.add_parser(
        "sweep-aggregate", help="build the sweep's tables from its group files",
        description="Read every group file of the config's grid (streamed: memory does not "
                    "grow with the grid) and write the tables of docs/tables.md (cells, timing "
                    "and the summaries) and run.json, sorted and written atomically. Progress "
                    "every 100 files or 10 s on stdout.")
    _add_config(agg)
    agg.add_argument("--out-dir", required=True, metavar="DIR", help="the tables directory")
    agg.add_argument("--state", metavar="FILE", default=None,
                     help="remembers which groups the last aggregation saw (for the computed / "
                          "reused counts in run.json)")
    agg.add_argument("groups", nargs="+", metavar="GROUP", help="group files from sweep-run")
    agg.set_defaults(handler=_needs_sweep_extra("sweep-aggregate", _cmd_aggregate))

    ex = sub.add_parser(
        "sweep-examples", help="compute the report's worked examples as tables",
        description="Reproduce the seed exercise and recompute one flagged cell element by "
                    "element; write seed.parquet, seed_blocks.parquet, seed_trap.parquet and "
                    "case.parquet next to the tables (see docs/tables.md).")
    _add_config(ex)
    ex.add_argument("--tables", required=True, metavar="DIR",
                    help="the tables directory (with cells.parquet and best_eps.parquet)")
    ex.set_defaults(handler=_needs_sweep_extra("sweep-examples", _cmd_examples))

    rep = sub.add_parser(
        "report", help="render the sweep's HTML report",
        description="Render the self-contained HTML report from the sweep's tables.")
    rep.add_argument("--tables", required=True, metavar="DIR", help="the tables directory")
    rep.add_argument("--out", required=True, metavar="HTML", help="the report file to write")
    rep.add_argument("--title", required=True, help="the report's title")
    rep.add_argument("--figures-dir", metavar="DIR", default=None,
                     help="also write the figures there as PNG files")
    rep.set_defaults(handler=_needs_sweep_extra("report", _cmd_report))
