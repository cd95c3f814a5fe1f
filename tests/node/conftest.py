"""Fixtures for tests/node: the chart on a real node (tests/harness/node.py).

The session starts ONE control plane + real node (kubelet, containerd, runc,
kube-proxy, CoreDNS) in a network namespace of its own. Skipped, with the
reason, where the machine does not allow it (not root, no network
namespaces, toolchain not built) or when MATOMO_NODE_TESTS=0.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


from harness.helm import Helm, pod_security_namespace
from nodelib import Context, Prestarted

from harness.controlplane import find_binary
from harness.node import Node, running_node, unavailable_reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if os.environ.get("MATOMO_NODE_TESTS", "1") == "0":
        reason = "MATOMO_NODE_TESTS=0"
    else:
        reason = unavailable_reason()
    if reason:
        here = Path(__file__).resolve().parent
        for item in items:
            if Path(str(item.fspath)).resolve().is_relative_to(here):
                item.add_marker(pytest.mark.skip(reason=f"real node unavailable: {reason}"))


# the node's health over the session (tests/harness/nodehealth.py), printed at the end
HEALTH: list[str] = []


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    up: Node | None = None
    try:
        with running_node(["pause", "mariadb", "matomo", "hook", "nginx", "redis", "queuedtracking", "cloud-sql-proxy",
                           "cloudsql-instance"]) as up:
            sys.stderr.write(f"\nreal node up: {', '.join(f'{k} {v:.1f}s' for k, v in up.timings.items())}\n")
            yield up
    finally:
        if up is not None and up.health is not None:
            HEALTH.append(up.health.summary())
            # the copy `./dev test` prints last; written here, since under pytest-xdist this runs in a
            # worker and the terminal summary below in the controlling process
            target = os.environ.get("MATOMO_NODE_HEALTH_FILE")
            if target:
                Path(target).write_text("\n".join(HEALTH) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The node's health over the session (from $MATOMO_NODE_HEALTH_FILE when a worker ran the node)."""
    texts = list(HEALTH)
    target = os.environ.get("MATOMO_NODE_HEALTH_FILE")
    if not texts and target and Path(target).is_file():
        texts = Path(target).read_text().splitlines()
    if not texts:
        return
    terminalreporter.write_sep("-", "real node health")
    for text in texts:
        terminalreporter.write_line(text)


@pytest.fixture(scope="session")
def node_helm(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = find_binary("helm")
    if not binary:
        pytest.fail("helm not found: run `./dev tools`")
    return Helm(binary, node.cp, tmp_path_factory.mktemp("node-helm-home"))


@pytest.fixture(scope="session")
def node_namespaces(node: Node) -> Callable[..., str]:
    """Factory: a fresh namespace enforcing PodSecurity `level` (restricted by default)."""

    def make(prefix: str, level: str = "restricted") -> str:
        return pod_security_namespace(node.cp, prefix, level)

    return make


@pytest.fixture(scope="session")
def prestarted(node: Node, node_helm: Helm, node_namespaces: Callable[..., str],
               request: pytest.FixtureRequest) -> Iterator[Prestarted]:
    """The selected tests' installs, started in background threads as soon as the node is up
    (NODE_TEST_PARALLEL of them at a time, default 3; 0 starts each when its test asks for it, alone on the
    node, as bench/bench_node.py does)."""
    selected = {item.name for item in request.session.items}
    workers = int(os.environ.get("NODE_TEST_PARALLEL", "3"))
    p = Prestarted(Context(node, node_helm, node_namespaces), selected, workers)
    yield p
    p.close()


@pytest.fixture(autouse=True)
def _releases_removed_after_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """The releases a test took are deleted once it ends (Prestarted.test_done); a module's kept release
    once the module ends. MATOMO_NODE_KEEP_RELEASES=1 keeps them all, to look at after a run."""
    p = request.getfixturevalue("prestarted") if "prestarted" in request.fixturenames else None
    yield
    if p is not None:
        p.test_done()
