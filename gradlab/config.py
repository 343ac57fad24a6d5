"""The sweep's configuration: defaults, normalisation and validation with one-line messages.

:func:`normalise` turns the raw mapping read from ``config/config.yaml`` (or passed to a
``gradlab sweep-*`` command) into a canonical dict: every default filled in, every list sorted,
numbers that YAML read as text (``1e-3``) turned into the numbers they mean. Anything it cannot
make sense of raises :class:`ConfigError`, whose message names the key, the bad value and what
is allowed. The Snakefile calls it at parse time, so a bad config is rejected before any job
runs; it is the config's only validation (the jobs trust what it returns).

This module imports nothing heavy; a model file is imported (to prove it loads) only when the
config names one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config_sections import (
    MODEL_KINDS,
    MUTATION_DEFAULTS,
    _limits,
    _model,
    _mutations,
)
from .config_values import (
    ConfigError,
    _as_list,
    _choices,
    _fail,
    _number,
    _seeds,
    _show,
    _unknown_keys,
)
from .vocab import DTYPE_NAMES, METHOD_NAMES, step_problem

__all__ = [
    "ConfigError",
    "DEFAULTS",
    "DEFAULT_MODELS",
    "MODEL_KINDS",
    "normalise",
    "dumps",
    "digest",
    "source_hash",
]

TOP_KEYS = ("models", "variants", "mutations", "seeds", "methods", "epsilons", "dtypes",
            "verdict", "limits", "report")
DEFAULT_EPSILONS = [float(f"1e-{k:02d}") for k in range(1, 13)]
DEFAULT_TITLE = "gradlab: where backprop fails"
DEFAULT_MODELS: list[dict[str, Any]] = [
    {"name": "seed-net", "kind": "seed-net"},
    {"name": "mlp-dropout-l2", "kind": "mlp", "dims": [4, 5, 3, 1], "examples": 3,
     "lambda": 0.7, "keep_prob": 0.8},
    {"name": "linear1d", "kind": "linear1d"},
    {"name": "my_model", "kind": "file", "path": "examples/my_model.py"},
]
DEFAULTS: dict[str, Any] = {
    "models": DEFAULT_MODELS,
    "variants": "all",
    "mutations": MUTATION_DEFAULTS,
    "seeds": list(range(10)),
    "methods": list(METHOD_NAMES),
    "epsilons": DEFAULT_EPSILONS,
    "dtypes": ["float64"],
    "verdict": {"threshold": None},
    "limits": {"seconds_per_check": 600.0, "memory_mb": None},
    "report": {"title": DEFAULT_TITLE},
}


def _epsilons(value: Any) -> list[float | str]:
    how = 'write a positive step such as 1.0e-7 (or 1e-7), or "auto"'
    items = _as_list(value, "epsilons", '1.0e-3, 1.0e-7, "auto"')
    out: list[float | str] = []
    for i, item in enumerate(items):
        eps, problem = step_problem(item)
        if problem:
            raise _fail(f"epsilons[{i}]", f"{_show(item)} {problem}; {how}")
        if eps in out:
            raise _fail(f"epsilons[{i}]", f"{_show(item)} is listed twice; list each step once")
        out.append(eps)
    numbers = sorted((e for e in out if e != "auto"), reverse=True)
    return [*numbers, *(["auto"] if "auto" in out else [])]


def normalise(raw: Any, base: str | Path | None = None, load_models: bool = True
              ) -> dict[str, Any]:
    """Validate a sweep config and return it in canonical form.

    Args:
        raw: the mapping read from YAML (missing keys take :data:`DEFAULTS`).
        base: directory that relative model paths are relative to (default: the current one).
        load_models: import each model file to prove it loads (the sweep's first line of
            defence; off when re-validating inside a job that already depends on the file).

    Returns:
        A dict with every top-level key; lists sorted, models sorted by name, each model with
        all of ``name, kind, dims, examples, lambda, keep_prob, path, localise``.

    Raises:
        ConfigError: the first problem found, as one line naming key, bad value and what is
            allowed.
    """
    from .bugs import CATALOGUE

    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: {_show(raw)} is not a mapping; the config file must map "
                          f"keys ({', '.join(TOP_KEYS)}) to values")
    _unknown_keys(raw, TOP_KEYS, "")
    cfg = {key: raw.get(key, DEFAULTS[key]) for key in TOP_KEYS}
    base_path = Path(base) if base is not None else None

    limits = _limits(cfg["limits"])
    models_raw = _as_list(cfg["models"], "models", "{kind: seed-net}")
    models = [_model(m, i, base_path, limits if load_models else None)
              for i, m in enumerate(models_raw)]
    names: dict[str, int] = {}
    for i, m in enumerate(models):
        if m["name"] in names:
            raise _fail(f"models[{i}].name", f"{_show(m['name'])} is also the name of "
                        f"models[{names[m['name']]}]; model names must be unique")
        names[m["name"]] = i

    variants = cfg["variants"]
    if variants == "all":
        variants = list(CATALOGUE)
    variants = sorted(_choices(variants, "variants", list(CATALOGUE), "variant"))
    methods = _choices(cfg["methods"], "methods", METHOD_NAMES, "method")
    methods = [m for m in METHOD_NAMES if m in methods]
    dtypes = sorted(_choices(cfg["dtypes"], "dtypes", DTYPE_NAMES, "dtype"))
    if any(m["kind"] == "file" for m in models) and "float64" not in dtypes:
        raise _fail("dtypes", f"{_show(dtypes)} lacks float64, which file models are checked "
                    "in (they compute in their own precision); add float64")

    verdict = cfg["verdict"] if cfg["verdict"] is not None else {}
    if not isinstance(verdict, Mapping):
        raise _fail("verdict", f"{_show(verdict)} is not a mapping; write e.g. "
                    "{threshold: null}")
    _unknown_keys(verdict, ("threshold",), "verdict")
    threshold = verdict.get("threshold")
    if threshold is not None:
        how = "give a positive number such as 2.0e-7, or null for the measured noise floor"
        threshold = _number(threshold, "verdict.threshold", how)
        if threshold <= 0:
            raise _fail("verdict.threshold", f"{_show(verdict['threshold'])} is not allowed; "
                        + how)

    report = cfg["report"] if cfg["report"] is not None else {}
    if not isinstance(report, Mapping):
        raise _fail("report", f"{_show(report)} is not a mapping; write e.g. {{title: My run}}")
    _unknown_keys(report, ("title",), "report")
    title = report.get("title", DEFAULT_TITLE)
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        raise _fail("report.title", f"{_show(title)} is not allowed; give text of 1 to 200 "
                    "characters")

    return {
        "dtypes": dtypes,
        "epsilons": _epsilons(cfg["epsilons"]),
        "limits": limits,
        "methods": methods,
        "models": sorted(models, key=lambda m: m["name"]),
        "mutations": _mutations(cfg["mutations"]),
        "report": {"title": title},
        "seeds": _seeds(cfg["seeds"]),
        "variants": variants,
        "verdict": {"threshold": threshold},
    }


def dumps(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces): what goes into a Snakemake ``params:``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(cfg: Mapping[str, Any]) -> str:
    """sha256 of the normalised config without its ``report`` section."""
    body = {k: v for k, v in cfg.items() if k != "report"}
    return hashlib.sha256(dumps(body).encode()).hexdigest()


def source_hash(part: str = "core") -> str:
    """sha256 over gradlab's own source files.

    Args:
        part: ``core`` (everything except ``gradlab/report/``: what the check and aggregate
            jobs run) or ``report`` (``gradlab/report/`` plus the command line that calls it).
    """
    root = Path(__file__).resolve().parent
    if part == "core":
        files = [p for p in root.rglob("*.py") if "report" not in p.relative_to(root).parts]
    elif part == "report":
        files = [p for p in (root / "report").rglob("*") if p.is_file()
                 and p.suffix in (".py", ".html", ".css", ".js", ".j2", ".jinja")]
        files += [root / "sweep_cli.py", root / "cli.py"]
    else:
        raise ValueError(f"unknown part {part!r}")
    h = hashlib.sha256()
    for path in sorted(set(files)):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()
