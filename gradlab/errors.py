"""Errors gradlab raises for bad input. The CLI turns them into one-line messages (exit 2)."""

from __future__ import annotations

__all__ = ["GradlabError", "ModelError", "UsageError"]


class GradlabError(Exception):
    """Base class: a problem with what the user gave gradlab, explained in the message."""


class UsageError(GradlabError, ValueError):
    """A bad option or value (unknown method, impossible dims, a step that is not positive)."""


class ModelError(GradlabError):
    """A model (usually the user's own file) does not behave as gradlab needs."""
