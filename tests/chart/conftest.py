"""Fixtures of the chart tests (constants and helpers are in chartlib.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.matomo_release import ReleaseMissing, release_tree
from harness.plugin_release import plugin_tree


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


@pytest.fixture(scope="session")
def genuine_src() -> Path:
    """Genuine Matomo 5.1.2's release tree (tests/harness/matomo_release.py); without it, the test is
    skipped with the message naming where to put it."""
    try:
        return release_tree("5.1.2")
    except ReleaseMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def queuedtracking() -> Path:
    """The genuine QueuedTracking 5.1.1 folder (tests/harness/plugin_release.py), a plugin that is
    not in Matomo's release; without the archive, the test is skipped saying where to put it."""
    try:
        return plugin_tree("QueuedTracking", "5.1.1")
    except ReleaseMissing as exc:
        pytest.skip(str(exc))
