"""Fixtures of the chart tests: the helm binary (from PATH) and the chart."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "matomo"

# Kubernetes version the chart is rendered for: helm built without its
# release ldflags defaults to v1.20, below the chart's kubeVersion (>=1.29).
KUBE_VERSION = "1.31.0"

# Every values file a user or CI renders the chart with (the chart defaults
# are covered by passing no file at all).
VALUES_FILES = sorted(
    [REPO / "values" / "prod.yaml", REPO / "values" / "local.yaml"]
    + list((CHART / "ci").glob("*.yaml"))
)


@pytest.fixture(scope="session")
def helm() -> str:
    path = shutil.which("helm")
    if path is None:
        pytest.skip("helm is not on PATH: run ./dev tools (or put helm 3.x on PATH) to run the chart tests")
    return path


def run_helm(helm: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
