"""Shared constants and helpers of the chart tests (imported by name: a
module called `conftest` would clash with tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

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


def run_helm(helm: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def php_parse_ini(php: str, path: Path) -> dict:
    """``path`` read by PHP's INI parser (what Matomo's IniReader uses), sections kept."""
    code = "echo json_encode(parse_ini_string(file_get_contents($argv[1]), true));"
    result = subprocess.run([php, "-r", code, str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0 and result.stdout not in ("", "false"), result.stderr
    return json.loads(result.stdout)


def bwrap_system_binds() -> list[str]:
    """bubblewrap arguments giving a sandbox this machine's /usr and top-level system folders (bin, lib, lib64,
    sbin: links where the host has links), read-only. Only those, not the whole host tree: another suite's
    processes (the real node's kubelet, under xdist beside this one) may be changing the host's mounts while
    bwrap copies them."""
    out = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64", "sbin"):
        host = Path("/") / top
        if host.is_symlink():
            out += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            out += ["--ro-bind", str(host), f"/{top}"]
    return out
