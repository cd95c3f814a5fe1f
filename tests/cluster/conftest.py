"""Fixtures for tests/cluster: helm against the real control plane (tests/harness/controlplane.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest


from harness.helm import CHART, Helm, pod_security_namespace
from harness.controlplane import ControlPlane, find_binary
from harness.localexec import LocalExecutor, local_executor


@pytest.fixture(scope="session", autouse=True)
def local_exec(controlplane: ControlPlane) -> Iterator[LocalExecutor]:
    """Runs the containers of pods annotated matomo-k8s.test/exec=local (the Job F-secrets) as local processes."""
    with local_executor(controlplane) as ex:
        yield ex


@pytest.fixture(scope="session")
def helm(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = find_binary("helm")
    if not binary:
        pytest.fail("helm not found: run `./dev tools` (it installs helm into .tools/bin)")
    if not (CHART / "Chart.yaml").is_file():
        pytest.skip(f"the chart is not there yet ({CHART})")
    return Helm(binary, controlplane, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def namespaces(controlplane: ControlPlane) -> Iterator[Callable[..., str]]:
    """Factory: a fresh namespace labelled for PodSecurity; every one is deleted at session end."""
    created: list[str] = []

    def make(prefix: str, level: str = "restricted") -> str:
        name = pod_security_namespace(controlplane, prefix, level)
        created.append(name)
        return name

    yield make
    for name in created:
        controlplane.delete_namespace(name)
