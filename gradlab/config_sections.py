"""Validation of the config's sections: one model entry, ``limits`` and ``mutations``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config_values import (
    _NAME,
    _as_list,
    _choices,
    _fail,
    _integer,
    _number,
    _seeds,
    _show,
    _suggest,
    _unknown_keys,
)

__all__ = ["MODEL_KINDS", "MODEL_KEYS", "LIMIT_KEYS", "LOCALISE", "MUTATION_DEFAULTS"]

MODEL_KINDS = ("seed-net", "mlp", "linear1d", "file")
LIMIT_KEYS = ("seconds_per_check", "memory_mb")
MODEL_KEYS = ("name", "kind", "dims", "examples", "lambda", "keep_prob", "path", "localise")
LOCALISE = ("auto", "failing", "all", "none")
MUTATION_DEFAULTS: dict[str, Any] = {
    "kinds": ["scale", "element", "sign"], "sizes": [1e-2, 1e-4, 1e-6, 1e-8], "seeds": 3}


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


_KIND_KEYS = {
    "seed-net": ("name", "kind", "lambda", "keep_prob", "localise"),
    "mlp": ("name", "kind", "dims", "examples", "lambda", "keep_prob", "localise"),
    "linear1d": ("name", "kind", "localise"),
    "file": ("name", "kind", "path", "localise"),
}


def _model(raw: Any, i: int, base: Path | None, load: Mapping[str, Any] | None
           ) -> dict[str, Any]:
    where = f"models[{i}]"
    kind = _model_kind(raw, where)
    raw = {k: v for k, v in raw.items() if v is not None}
    model: dict[str, Any] = {"kind": kind, "dims": None, "examples": None, "lambda": None,
                             "keep_prob": None, "path": None}
    model["localise"] = _localise(raw.get("localise", "auto"), f"{where}.localise")
    if kind == "file":
        model["path"] = _model_path(raw.get("path"), f"{where}.path")
        if load is not None:
            _check_model_file(model["path"], f"{where}.path", base, load)
    if kind == "mlp":
        model["dims"] = _dims(raw.get("dims", [4, 5, 3, 1]), f"{where}.dims")
        model["examples"] = _examples(raw.get("examples", 3), f"{where}.examples")
    if kind in ("mlp", "seed-net"):
        model["lambda"], model["keep_prob"] = _regularisation(raw, where)
    name = raw.get("name")
    if name is None:
        name = Path(model["path"]).stem if kind == "file" else kind
    model["name"] = _model_name(name, f"{where}.name")
    return dict(sorted(model.items()))


def _model_kind(raw: Any, where: str) -> str:
    """The entry's kind, after checking it is a mapping whose keys all apply to that kind."""
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
    allowed = _KIND_KEYS[kind]
    for key, value in raw.items():
        if key not in allowed and value is not None:  # null = not given (normalised form)
            raise _fail(f"{where}.{key}", f"does not apply to kind {_show(kind)}; "
                        f"a {kind} model takes: {', '.join(allowed)}")
    return kind


def _localise(localise: Any, key: str) -> str:
    if localise not in LOCALISE:
        raise _fail(key, f"unknown value {_show(localise)}; "
                    f"{_suggest(localise, LOCALISE)}allowed: {', '.join(LOCALISE)} (how many "
                    "elements are estimated one by one; see gradlab check --localise)")
    return localise


def _model_path(path: Any, key: str) -> str:
    if not isinstance(path, str) or not path.strip():
        got = "missing" if path is None else f"{_show(path)} is not a path"
        raise _fail(key, f"{got}; a file model needs the path of a .py "
                    "file defining init(seed), cost(params, X, Y), gradients(params, X, Y)")
    return Path(path).as_posix()


def _examples(value: Any, key: str) -> int:
    examples = _integer(value, key, "examples is a whole number >= 1, e.g. 3")
    if not 1 <= examples <= 100_000:
        raise _fail(key, f"{examples} is not allowed; examples is a whole "
                    "number from 1 to 100000, e.g. 3")
    return examples


def _regularisation(raw: Mapping[str, Any], where: str) -> tuple[float, float]:
    """``lambda`` (L2 strength) and ``keep_prob`` (dropout) of a network entry."""
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
    return lam, keep


def _model_name(name: Any, key: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or not name.strip():
        raise _fail(key, f"{_show(name)} is not allowed; a model name is text of "
                    "1 to 80 characters without control characters, e.g. mlp-small")
    return name


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
    seeds = raw.get("seeds", MUTATION_DEFAULTS["seeds"])
    how = "the number of seeds (the first ones of 'seeds') mutations run on: a whole number >= 1"
    if isinstance(seeds, list):  # resolved to the seeds themselves (a group job's grid)
        seeds = _seeds(seeds)
    elif seeds != "all":
        seeds = _integer(seeds, "mutations.seeds", how + ", or all")
        if seeds < 1:
            raise _fail("mutations.seeds", f"{seeds} is not allowed; give {how}, or all")
    kinds = raw.get("kinds", MUTATION_DEFAULTS["kinds"])
    kinds = list(KINDS) if kinds == "all" else _choices(kinds, "mutations.kinds", KINDS, "kind")
    sizes_raw = raw.get("sizes", MUTATION_DEFAULTS["sizes"])
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


