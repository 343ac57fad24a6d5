"""Errors gradlab raises for bad input. The CLI turns them into one-line messages (exit 2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

__all__ = ["GradlabError", "ModelError", "UsageError", "lookup"]

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
