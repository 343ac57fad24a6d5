"""The ``gradlab`` command line.

``gradlab check MODEL ...`` checks one model; ``gradlab variants`` lists the bug catalogue.
The sweep commands used by the Snakemake workflow are registered from
:mod:`gradlab.sweep_cli`. Heavy imports (pandas, matplotlib) happen only inside the commands
that need them, so ``gradlab check`` starts fast.

Exit codes: 0 ok, 1 a bug was found, 2 bad usage or bad input, 3 inconclusive.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Sequence

from .vocab import DEFAULT_METHOD, DTYPE_NAMES, METHOD_NAMES, step_problem

__all__ = ["main", "build_parser", "EXIT"]

EXIT = {"ok": 0, "bug": 1, "usage": 2, "inconclusive": 3}


def _eps(text: str) -> float | str:
    value, problem = step_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(
            f"{text!r} {problem}; give a positive step such as 1e-7, or 'auto'")
    return value


def _positive(kind: type, noun: str, text: str) -> float | int:
    """``text`` as a ``kind`` > 0, or an argparse error naming what was wrong."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be {noun} > 0")
    return value


_positive_float = functools.partial(_positive, float, "a number")
_positive_int = functools.partial(_positive, int, "a whole number")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", default="correct",
                   help="bug variant of the built-in networks (see 'gradlab variants'); "
                        "default: correct")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the mlp's parameters, data and dropout mask, and for a "
                        "model file's init(seed); default 0")
    p.add_argument("--dims", default="4,5,3,1",
                   help="mlp layer sizes, comma-separated, last one 1; default 4,5,3,1")
    p.add_argument("--examples", type=int, default=3, help="mlp: number of examples m; default 3")
    p.add_argument("--lambda", dest="lambd", type=float, default=0.0,
                   help="L2 regularisation strength (0 = off)")
    p.add_argument("--keep-prob", type=float, default=1.0,
                   help="inverted-dropout keep probability in (0, 1]; the mask is drawn once "
                        "from --seed and held fixed (1 = off)")
    p.add_argument("--dtype", choices=DTYPE_NAMES, default="float64",
                   help="precision of the built-in models; default float64")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands: check, variants, and the sweep commands)."""
    parser = argparse.ArgumentParser(
        prog="gradlab",
        description="Check hand-written backpropagation against finite differences: per "
                    "parameter block and per element, with verdicts and a diagnosis.",
        epilog="Exit codes: 0 ok, 1 bug found, 2 bad usage or input, 3 inconclusive.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chk = sub.add_parser(
        "check", help="check one model's gradients",
        description="Check a model's backprop gradients against finite differences.",
        epilog="MODEL is linear1d, seed-net, mlp, or the path of a .py file defining "
               "init(seed) -> (params, X, Y), cost(params, X, Y) and gradients(params, X, Y). "
               "Exit codes: 0 ok, 1 bug found, 2 bad usage or input, 3 inconclusive.",
    )
    chk.add_argument("model", metavar="MODEL", help="linear1d, seed-net, mlp, or a .py file")
    _add_model_options(chk)
    chk.add_argument("--method", choices=METHOD_NAMES, default=DEFAULT_METHOD,
                     help="finite-difference method; default central")
    chk.add_argument("--eps", type=_eps, default="auto",
                     help="step size, or 'auto' to choose it (default)")
    chk.add_argument("--threshold", type=_positive_float, default=None,
                     help="use this fixed relative-difference threshold (seed style) instead of "
                          "the measured noise floor")
    chk.add_argument("--localise", choices=("auto", "failing", "all", "none"), default="auto",
                     help="auto (default): 'all' for the built-in networks, 'failing' for your "
                          "own model; all: every element of every block estimated; failing: "
                          "blocks over 64 elements screened along random directions and only "
                          "failing ones localised; none: screened, never localised")
    chk.add_argument("--engine", choices=("auto", "loop", "fast"), default="auto",
                     help="auto (default): the fast engine where the model has one (the plain "
                          "loop for tiny networks, where it is already instant and reproduces "
                          "the seed's digits); loop: the plain one-coordinate-at-a-time "
                          "reference; fast: the fast engine even for tiny networks")
    chk.add_argument("--timeout", type=_positive_float, default=None, metavar="S",
                     help="a model file's check is stopped after S seconds of wall time and "
                          "reported as failed (default 600)")
    chk.add_argument("--memory-mb", type=_positive_int, default=None, metavar="M",
                     help="a model file's worker may map M MB beyond gradlab's own (default: "
                          "no limit)")
    chk.add_argument("--json", action="store_true", help="print one JSON object")
    chk.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help="show tracebacks on errors")
    var = sub.add_parser("variants", help="list the bug catalogue",
                         description="List the injected-bug variants of the built-in networks.")
    var.add_argument("--json", action="store_true", help="print JSON")
    from . import sweep_cli  # light at import; each sweep command checks the sweep extra

    sweep_cli.register(sub)
    return parser


def _run_check(args: argparse.Namespace):
    """Build and check the model: a model file in a worker process with the limits."""
    from .errors import ModelError
    from .runner import is_file_model, open_model
    from .spec import ModelSpec, parse_dims

    spec = ModelSpec(
        model=args.model, variant=args.variant, seed=args.seed, dims=parse_dims(args.dims),
        examples=args.examples, lambd=args.lambd, keep_prob=args.keep_prob, dtype=args.dtype,
    )
    limits = None
    if is_file_model(spec):  # the built-in models run in-process, without limits
        from .isolate import DEFAULT_SECONDS, Limits

        limits = Limits(args.timeout or DEFAULT_SECONDS, args.memory_mb)
    debug = getattr(args, "debug", False)
    echo = sys.stderr.buffer if debug else None  # the model's own output, with --debug only
    try:
        with open_model(spec, limits, echo=echo) as runner:
            runner.build()
            result, _ = runner.check(method=args.method, eps=args.eps, threshold=args.threshold,
                                     engine=args.engine, seed=args.seed, localise=args.localise)
    except ModelError as exc:
        if debug and getattr(exc, "details", ""):  # the traceback from inside the worker
            print(exc.details, file=sys.stderr, end="")
        raise
    return result


def _cmd_check(args: argparse.Namespace) -> int:
    result = _run_check(args)
    if args.json:
        data = result.to_dict()
        data["model"] = args.model
        data["variant"] = args.variant
        print(json.dumps(data, default=float))
    else:
        how = "chosen automatically" if result.eps_chosen else "given"
        print(result.sentence())
        what = f"model {args.model}" + ("" if args.model.endswith(".py")
                                         else f", variant {args.variant}")
        print(f"{what}; {result.method} differences, "
              f"{result.steps_text()} ({how}); threshold {result.threshold:.3g} "
              f"({'fixed' if args.threshold else 'measured noise floor x safety'}); "
              f"{result.evaluations} cost evaluations, {result.seconds:.3f} s, "
              f"engine {result.engine}, localise {result.localise}")
        print()
        print(result.table())
        for note in result.notes:
            print(f"note: {note}")
    return EXIT[result.verdict]


def _cmd_variants(args: argparse.Namespace) -> int:
    from .bugs import CATALOGUE

    if args.json:
        print(json.dumps([{"name": b.name, "description": b.description, "needs": b.needs}
                          for b in CATALOGUE.values()]))
        return 0
    width = max(map(len, CATALOGUE))
    for bug in CATALOGUE.values():
        needs = f"  [needs {bug.needs}]" if bug.needs else ""
        print(f"{bug.name:<{width}}  {bug.description}{needs}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT["usage"]
    handlers = {"check": _cmd_check, "variants": _cmd_variants}
    handler = handlers.get(args.command) or getattr(args, "handler", None)
    from .errors import GradlabError

    try:
        return handler(args)
    except GradlabError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"gradlab: error: {exc}", file=sys.stderr)
        return EXIT["usage"]
    except KeyboardInterrupt:
        print("gradlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return EXIT["ok"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
