"""The sweep's configuration: defaults, normalisation and validation with one-line messages.

:func:`normalise` turns the raw mapping read from ``config/config.yaml`` (or passed to a
``gradlab sweep-*`` command) into a canonical dict: every default filled in, every list sorted,
numbers that YAML read as text (``1e-3``) turned into the numbers they mean. Anything it cannot
make sense of raises :class:`ConfigError`, whose message names the key, the bad value and what
is allowed. The Snakefile calls it at parse time, so a bad config is rejected before any job
runs; the JSON schema in ``workflow/schemas/config.schema.yaml`` states the same rules.

This module imports nothing heavy; a model file is imported (to prove it loads) only when the
config names one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = [
    "ConfigError",
    "DEFAULTS",
    "DEFAULT_MODELS",
    "METHODS",
    "DTYPES",
    "MODEL_KINDS",
    "normalise",
    "eps_label",
    "parse_eps_label",
    "dumps",
    "digest",
    "source_hash",
]

METHODS = ("forward", "central", "five-point", "complex-step")
DTYPES = ("float32", "float64")
MODEL_KINDS = ("seed-net", "mlp", "linear1d", "file")
TOP_KEYS = ("models", "variants", "mutations", "seeds", "methods", "epsilons", "dtypes",
            "verdict", "limits", "report")
LIMIT_KEYS = ("seconds_per_check", "memory_mb")
MODEL_KEYS = ("name", "kind", "dims", "examples", "lambda", "keep_prob", "path", "localise")
LOCALISE = ("auto", "failing", "all", "none")
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
    "mutations": {"kinds": ["scale", "element", "sign"], "sizes": [1e-2, 1e-4, 1e-6, 1e-8],
                  "seeds": 3},
    "seeds": list(range(10)),
    "methods": list(METHODS),
    "epsilons": DEFAULT_EPSILONS,
    "dtypes": ["float64"],
    "verdict": {"threshold": None},
    "limits": {"seconds_per_check": 600.0, "memory_mb": None},
    "report": {"title": DEFAULT_TITLE},
}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,80}$")


class ConfigError(UsageError):
    """A bad sweep configuration; the message names the key, the bad value and what is allowed."""


def _fail(key: str, text: str) -> ConfigError:
    return ConfigError(f"config key '{key}': {text}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _suggest(word: Any, choices: tuple[str, ...] | list[str]) -> str:
    if isinstance(word, str):
        close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
        if close:
            return f"did you mean '{close[0]}'? "
    return ""


def _unknown_keys(raw: Mapping, allowed: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise _fail(name, f"unknown key {_show(key)}; {_suggest(key, allowed)}"
                        f"allowed keys{' of ' + where if where else ''}: {', '.join(allowed)}")


def _as_list(value: Any, key: str, what: str) -> list:
    """A list, also from the text ``[0, 1]`` that ``snakemake --config key=[0,1]`` passes."""
    if isinstance(value, str) and value.strip().startswith("["):
        import yaml

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise _fail(key, f"{_show(value)} is not a list; write it as [{what}]") from None
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise _fail(key, f"{_show(value)} is not a list; write it as [{what}]")
    if not value:
        raise _fail(key, f"the list is empty; give at least one value, e.g. [{what}]")
    return value


def _number(value: Any, key: str, how: str) -> float:
    """A finite float; accepts the text YAML 1.1 makes of ``1e-3``."""
    if isinstance(value, bool):
        raise _fail(key, f"{_show(value)} is a boolean, not a number; {how}")
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        value = float(value)  # PyYAML reads 1e-3 as text: take the number it means
    if not isinstance(value, int | float):
        raise _fail(key, f"{_show(value)} is not a number; {how}")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(key, f"{_show(value)} is not finite; {how}")
    return value


def _integer(value: Any, key: str, how: str) -> int:
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    ):
        raise _fail(key, f"{_show(value)} is not an integer; {how}")
    return int(value)


def _choices(value: Any, key: str, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    items = _as_list(value, key, ", ".join(allowed[:2]))
    out: list[str] = []
    for i, item in enumerate(items):
        if item not in allowed:
            raise _fail(f"{key}[{i}]", f"unknown {what} {_show(item)}; {_suggest(item, allowed)}"
                        f"allowed: {', '.join(allowed)}")
        if item in out:
            raise _fail(f"{key}[{i}]", f"{_show(item)} is listed twice; list each {what} once")
        out.append(item)
    return out


def eps_label(eps: float | str) -> str:
    """The text of a step in file names and tables: ``1e-07``; ``auto`` for the automatic step.

    The shortest ``%.Ne`` form that reads back as exactly the same float.
    """
    if eps == "auto" or (isinstance(eps, float) and math.isnan(eps)):
        return "auto"
    eps = float(eps)
    for digits in range(17):
        text = f"{eps:.{digits}e}"
        if float(text) == eps:
            return text
    return repr(eps)  # pragma: no cover - 17 digits always round-trip


def parse_eps_label(text: str) -> float | str:
    """Inverse of :func:`eps_label`."""
    return "auto" if text == "auto" else float(text)


def _epsilons(value: Any) -> list[float | str]:
    how = 'write a positive step such as 1.0e-7 (or 1e-7), or "auto"'
    items = _as_list(value, "epsilons", '1.0e-3, 1.0e-7, "auto"')
    out: list[float | str] = []
    for i, item in enumerate(items):
        key = f"epsilons[{i}]"
        if item == "auto":
            eps: float | str = "auto"
        elif isinstance(item, str) and not _NUMBER.match(item.strip()):
            raise _fail(key, f"{_show(item)} is not a number; {how}")
        else:
            eps = _number(item, key, how)
            if eps <= 0:
                raise _fail(key, f"{_show(item)} is not allowed: a step must be > 0; {how}")
        if eps in out:
            raise _fail(key, f"{_show(item)} is listed twice; list each step once")
        out.append(eps)
    numbers = sorted((e for e in out if e != "auto"), reverse=True)
    return [*numbers, *(["auto"] if "auto" in out else [])]


def _seeds(value: Any) -> list[int]:
    items = _as_list(value, "seeds", "0, 1, 2")
    out: list[int] = []
    for i, item in enumerate(items):
        key = f"seeds[{i}]"
        seed = _integer(item, key, "seeds are whole numbers >= 0, e.g. [0, 1, 2]")
        if seed < 0 or seed >= 2**63:
            raise _fail(key, f"{seed} is not allowed; seeds are whole numbers >= 0, e.g. [0, 1]")
        if seed in out:
            raise _fail(key, f"seed {seed} is listed twice; list each seed once")
        out.append(seed)
    return sorted(out)


def _dims(value: Any, key: str) -> list[int]:
    how = "give at least two positive layer sizes ending in 1, e.g. [4, 5, 3, 1]"
    if isinstance(value, str) and not value.strip().startswith("["):
        value = [v.strip() for v in value.split(",")]
    items = _as_list(value, key, "4, 5, 3, 1")
    dims = []
    for item in items:
        if isinstance(item, str) and item.isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise _fail(key, f"{_show(value)} is impossible: {how}")
        dims.append(item)
    if len(dims) < 2 or dims[-1] != 1:
        raise _fail(key, f"{_show(value)} is impossible: {how}")
    if sum(a * b + a for a, b in zip(dims[1:], dims[:-1], strict=False)) > 100_000:
        raise _fail(key, f"{_show(value)} has more than 100000 parameters; a gradient check "
                    "needs two cost evaluations per parameter: use smaller layers")
    return dims


def _model(raw: Any, i: int, base: Path | None, load: Mapping[str, Any] | None
           ) -> dict[str, Any]:
    where = f"models[{i}]"
    if not isinstance(raw, Mapping):
        raise _fail(where, f"{_show(raw)} is not a mapping; write e.g. "
                    "{name: my-mlp, kind: mlp, dims: [4, 5, 3, 1]}")
    _unknown_keys(raw, MODEL_KEYS, where)
    kind = raw.get("kind")
    if kind is None:
        raise _fail(f"{where}.kind", f"missing; give one of: {', '.join(MODEL_KINDS)}")
    if kind not in MODEL_KINDS:
        raise _fail(f"{where}.kind", f"unknown model kind {_show(kind)}; "
                    f"{_suggest(kind, MODEL_KINDS)}allowed: {', '.join(MODEL_KINDS)}")
    allowed = {
        "seed-net": ("name", "kind", "lambda", "keep_prob", "localise"),
        "mlp": ("name", "kind", "dims", "examples", "lambda", "keep_prob", "localise"),
        "linear1d": ("name", "kind", "localise"),
        "file": ("name", "kind", "path", "localise"),
    }[kind]
    for key, value in raw.items():
        if key not in allowed and value is not None:  # null = not given (normalised form)
            raise _fail(f"{where}.{key}", f"does not apply to kind {_show(kind)}; "
                        f"a {kind} model takes: {', '.join(allowed)}")
    raw = {k: v for k, v in raw.items() if v is not None}
    model: dict[str, Any] = {"kind": kind, "dims": None, "examples": None, "lambda": None,
                             "keep_prob": None, "path": None}
    localise = raw.get("localise", "auto")
    if localise not in LOCALISE:
        raise _fail(f"{where}.localise", f"unknown value {_show(localise)}; "
                    f"{_suggest(localise, LOCALISE)}allowed: {', '.join(LOCALISE)} (how many "
                    "elements are estimated one by one; see gradlab check --localise)")
    model["localise"] = localise
    if kind == "file":
        path = raw.get("path")
        if not isinstance(path, str) or not path.strip():
            got = "missing" if path is None else f"{_show(path)} is not a path"
            raise _fail(f"{where}.path", f"{got}; a file model needs the path of a .py "
                        "file defining init(seed), cost(params, X, Y), gradients(params, X, Y)")
        model["path"] = Path(path).as_posix()
        if load is not None:
            _check_model_file(model["path"], f"{where}.path", base, load)
    if kind == "mlp":
        model["dims"] = _dims(raw.get("dims", [4, 5, 3, 1]), f"{where}.dims")
        examples = _integer(raw.get("examples", 3), f"{where}.examples",
                            "examples is a whole number >= 1, e.g. 3")
        if not 1 <= examples <= 100_000:
            raise _fail(f"{where}.examples", f"{examples} is not allowed; examples is a whole "
                        "number from 1 to 100000, e.g. 3")
        model["examples"] = examples
    if kind in ("mlp", "seed-net"):
        lam = _number(raw.get("lambda", 0.0), f"{where}.lambda",
                      "lambda is the L2 strength, a number >= 0 (0 = off), e.g. 0.7")
        if lam < 0:
            raise _fail(f"{where}.lambda", f"{_show(raw['lambda'])} is negative; lambda is the "
                        "L2 strength, a number >= 0 (0 = off), e.g. 0.7")
        keep = _number(raw.get("keep_prob", 1.0), f"{where}.keep_prob",
                       "keep_prob is a number in (0, 1] (1 = no dropout), e.g. 0.8")
        if not 0 < keep <= 1:
            raise _fail(f"{where}.keep_prob", f"{_show(raw['keep_prob'])} is outside (0, 1]; "
                        "keep_prob is a number with 0 < keep_prob <= 1 (1 = no dropout)")
        model["lambda"], model["keep_prob"] = lam, keep
    name = raw.get("name")
    if name is None:
        name = Path(model["path"]).stem if kind == "file" else kind
    if not isinstance(name, str) or not _NAME.match(name) or not name.strip():
        raise _fail(f"{where}.name", f"{_show(name)} is not allowed; a model name is text of "
                    "1 to 80 characters without control characters, e.g. mlp-small")
    model["name"] = name
    return dict(sorted(model.items()))


def _check_model_file(path: str, key: str, base: Path | None, limits: Mapping[str, Any]
                      ) -> None:
    full = Path(path) if base is None or Path(path).is_absolute() else base / path
    if not full.is_file():
        raise _fail(key, f"model file {_show(path)} does not exist (paths are relative to "
                    "the directory the workflow runs in); give the path of a .py file")
    from .errors import ModelError
    from .runner import probe_import

    try:  # in a worker process with the limits: the import may crash or hang
        probe_import(full, limits["seconds_per_check"], limits["memory_mb"])
    except ModelError as exc:
        raise _fail(key, str(exc)) from None


def _limits(raw: Any) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _fail("limits", f"{_show(raw)} is not a mapping; write e.g. "
                    "{seconds_per_check: 600, memory_mb: 4000}")
    _unknown_keys(raw, LIMIT_KEYS, "limits")
    how = ("the wall time of one check of one model file, in seconds: a number > 0, "
           "e.g. 600")
    seconds = _number(raw.get("seconds_per_check", 600.0), "limits.seconds_per_check", how)
    if seconds <= 0:
        raise _fail("limits.seconds_per_check", f"{_show(raw['seconds_per_check'])} is not "
                    f"allowed; give {how}")
    memory = raw.get("memory_mb")
    if memory is not None:
        how = ("the memory a model file's worker may map, in MB: a whole number > 0, e.g. "
               "4000, or null for no limit")
        if isinstance(memory, str) and memory.strip().isdigit():
            memory = int(memory)
        memory = _integer(memory, "limits.memory_mb", how)
        if memory <= 0:
            raise _fail("limits.memory_mb", f"{memory} is not allowed; give {how}")
    return {"memory_mb": memory, "seconds_per_check": seconds}


def _mutations(raw: Any) -> dict[str, Any]:
    """``mutations``: ``{kinds: [...] or all, sizes: [...] or ladder}``; ``none`` turns them off."""
    from .mutations import KINDS, LADDER_KINDS

    if raw is None or raw == "none" or (isinstance(raw, Mapping) and raw.get("kinds") == []):
        return {"kinds": [], "seeds": 0, "sizes": []}
    if not isinstance(raw, Mapping):
        raise _fail("mutations", f"{_show(raw)} is not a mapping; write e.g. "
                    "{kinds: [scale, element, sign], sizes: [1.0e-2, 1.0e-4, 1.0e-6, 1.0e-8], "
                    "seeds: 3}, or none")
    _unknown_keys(raw, ("kinds", "sizes", "seeds"), "mutations")
    seeds = raw.get("seeds", DEFAULTS["mutations"]["seeds"])
    how = "the number of seeds (the first ones of 'seeds') mutations run on: a whole number >= 1"
    if isinstance(seeds, list):  # resolved to the seeds themselves (a group job's grid)
        seeds = _seeds(seeds)
    elif seeds != "all":
        seeds = _integer(seeds, "mutations.seeds", how + ", or all")
        if seeds < 1:
            raise _fail("mutations.seeds", f"{seeds} is not allowed; give {how}, or all")
    kinds = raw.get("kinds", DEFAULTS["mutations"]["kinds"])
    kinds = list(KINDS) if kinds == "all" else _choices(kinds, "mutations.kinds", KINDS, "kind")
    sizes_raw = raw.get("sizes", DEFAULTS["mutations"]["sizes"])
    if sizes_raw == "ladder":
        sizes_raw = [float(f"1e-{k}") for k in range(1, 10)]
    how = "a relative error size is a number with 0 < size < 1, e.g. 1.0e-4 (or: ladder)"
    sizes: list[float] = []
    for i, item in enumerate(_as_list(sizes_raw, "mutations.sizes", "1.0e-2, 1.0e-6")):
        size = _number(item, f"mutations.sizes[{i}]", how)
        if not 0 < size < 1:
            raise _fail(f"mutations.sizes[{i}]", f"{_show(item)} is not allowed; {how}")
        if size in sizes:
            raise _fail(f"mutations.sizes[{i}]", f"{_show(item)} is listed twice; list each "
                        "size once")
        sizes.append(size)
    return {"kinds": [k for k in KINDS if k in kinds], "seeds": seeds,
            "sizes": sorted(sizes, reverse=True) if set(kinds) & set(LADDER_KINDS) else []}


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
    methods = _choices(cfg["methods"], "methods", METHODS, "method")
    methods = [m for m in METHODS if m in methods]
    dtypes = sorted(_choices(cfg["dtypes"], "dtypes", DTYPES, "dtype"))
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
