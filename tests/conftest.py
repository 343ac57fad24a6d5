"""Shared test helpers: paths and running the CLI as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(__file__).resolve().parent / "models"


def pytest_collection_modifyitems(config, items):
    """Run tests/frameworks last: once torch or jax is imported gradlab no longer forks, and
    the tests before them exercise its forked workers."""
    frameworks = Path(__file__).resolve().parent / "frameworks"
    items.sort(key=lambda item: frameworks in Path(str(item.path)).parents)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``gradlab ARGS`` in a fresh interpreter; return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "gradlab.cli", *args],
        capture_output=True, text=True, cwd=cwd or ROOT, timeout=600,
    )


@pytest.fixture
def cli():
    """The CLI runner."""
    return run_cli


@pytest.fixture
def models_dir() -> Path:
    """Folder of bring-your-own model files used by the tests."""
    return MODELS
