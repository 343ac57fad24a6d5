"""torch/jax for the framework tests, imported only when a test runs (never at collection).

Collection must not import torch or jax: gradlab refuses to fork (worker processes, the
parallel loop) once they are imported, and the rest of the suite tests those forks. The root
conftest also runs tests/frameworks last. A missing framework skips with the reason, except
under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import pytest


def need(name: str) -> ModuleType:
    """Import ``name`` for a running test: skip when missing, ImportError under CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(name)
    return pytest.importorskip(
        name, reason=f"{name} is not installed (pip install 'gradlab[{name}]'; scripts/test.sh "
        "installs it); CI=true makes this a failure")


def available(name: str) -> bool:
    """Whether ``name`` is importable, without importing it."""
    return importlib.util.find_spec(name) is not None
