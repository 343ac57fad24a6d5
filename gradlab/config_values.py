"""The building blocks of config validation: :class:`ConfigError` and the one-line checks.

Every check raises :class:`ConfigError` naming the key, the bad value and what is allowed
(used by :mod:`gradlab.config` and :mod:`gradlab.config_sections`).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import UsageError
from .vocab import NUMBER_TEXT

__all__ = ["ConfigError"]

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
    if isinstance(value, str) and NUMBER_TEXT.match(value.strip()):
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


