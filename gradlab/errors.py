"""Errors gradlab raises for bad input. The CLI turns them into one-line messages (exit 2)."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

__all__ = ["GradlabError", "ModelError", "UsageError", "lookup", "one_line"]

T = TypeVar("T")


class GradlabError(Exception):
    """Base class: a problem with what the user gave gradlab, explained in the message."""


class UsageError(GradlabError, ValueError):
    """A bad option or value (unknown method, impossible dims, a step that is not positive)."""


class ModelError(GradlabError):
    """A model (usually the user's own file) does not behave as gradlab needs."""


def lookup(table: Mapping[str, T], name: str, what: str) -> T:
    """``table[name]``, or a ValueError naming the unknown ``what`` and the known names."""
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; choose one of: {', '.join(table)}") from None


def one_line(exc: BaseException, source: str = "") -> str:
    """An exception as one line: a GradlabError's message, else ``Type: message``.

    Args:
        exc: the exception.
        source: a model file; when the text does not name it, the line is prefixed with the
            file and the first of its functions in the traceback (e.g. ``sys.exit()`` in it).

    Returns:
        The line (never empty, no newlines).
    """
    text = f"{exc}" if isinstance(exc, GradlabError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split()) or type(exc).__name__
    if source and source not in text:
        called = [f.f_code.co_name for f, _ in traceback.walk_tb(exc.__traceback__)
                  if Path(f.f_code.co_filename) == Path(source)]
        text = f"{source}: {called[0]}() raised {text}" if called else f"{source}: {text}"
    return text
