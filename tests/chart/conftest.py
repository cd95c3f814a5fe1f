"""Fixtures of the chart tests (constants and helpers are in chartlib.py)."""

from __future__ import annotations

import shutil

import pytest



def _tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not {hint}")
    return path


@pytest.fixture(scope="session")
def helm() -> str:
    return _tool("helm", "on PATH: run ./dev tools (or put helm 3.x on PATH) to run the chart tests")


@pytest.fixture(scope="session")
def php() -> str:
    return _tool("php", "installed (apt-get install php-cli to run this test)")
