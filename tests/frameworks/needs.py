"""Import torch or jax for a test module: skip with the reason when missing, fail under CI."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def need(name: str) -> ModuleType:
    """``pytest.importorskip(name)``, except that CI (``CI=true``) must have it: ImportError."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(name)
    return pytest.importorskip(
        name, reason=f"{name} is not installed (pip install 'gradlab[{name}]'; scripts/test.sh "
        "installs it); CI=true makes this a failure")
