"""Fixtures of the chart tests (constants and helpers are in chartlib.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def helm() -> str:
    path = shutil.which("helm")
    if path is None:
        pytest.skip("helm is not on PATH: run ./dev tools (or put helm 3.x on PATH) to run the chart tests")
    return path
