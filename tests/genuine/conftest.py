"""Fixtures of tests/genuine: genuine Matomo in the chart's pods (genuinelib.py)."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


from harness.helm import Helm
from harness.controlplane import ControlPlane, find_binary
from harness.mariadb import MariaDB
from harness.matomo_release import ReleaseMissing, release_tree
from harness.plugin_release import plugin_tree
from harness.podrun import KubeAccess, missing_tools, start_relay
from genuinelib import QUEUEDTRACKING_IMAGE, Release, Suite, images

VERSIONS = ("5.1.2", "5.0.3")


@pytest.fixture(scope="session")
def trees() -> dict[str, Path]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"genuine Matomo pods need {', '.join(missing)} (./dev tools installs the packages)")
    try:
        return {v: release_tree(v) for v in VERSIONS}
    except ReleaseMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def suite(trees: dict[str, Path], controlplane: ControlPlane, mariadb: MariaDB,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    helm_bin = find_binary("helm")
    if not helm_bin:
        pytest.fail("helm not found: run `./dev tools`")
    hook_bin = Path(sys.executable).parent / "matomo-hook"
    if not hook_bin.exists():
        pytest.fail(f"{hook_bin} not found: run `./dev tools` (it installs the hook into .tools/venv)")
    work = tmp_path_factory.mktemp("genuine")
    work.chmod(0o755)
    api_sock = work / "apiserver.sock"
    relay = start_relay(f"unix:{api_sock}", f"tcp:127.0.0.1:{controlplane.ports['apiserver']}")
    kube = KubeAccess(token=lambda sa: "", ca_file=controlplane.ca_file, socket=api_sock,
                      port=controlplane.ports["apiserver"])
    try:  # the plugin image of plugins.extra, when ../shared/plugins has the plugin (else its tests skip)
        plugins = {QUEUEDTRACKING_IMAGE: plugin_tree("QueuedTracking", "5.1.1")}
    except ReleaseMissing:
        plugins = {}
    s = Suite(controlplane, Helm(helm_bin, controlplane, work / "helm"), mariadb,
              images(trees, hook_bin, plugins), kube, work / "pods")
    (work / "pods").mkdir()
    try:
        yield s
    finally:
        relay.terminate()
        relay.wait(5)


_counter = iter(range(1, 10_000))


@pytest.fixture
def release(suite: Suite) -> Iterator[Release]:
    """A namespace enforcing PodSecurity restricted, a database and the release's Secrets."""
    n = next(_counter)
    ns = f"genuine-{n}"
    labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}
    suite.cp.create_namespace(ns, labels)
    db = suite.db.new_database("g")
    rel = Release(suite, ns, db)
    suite.kube.token = lambda sa, ns=ns: suite.cp.create_token(ns, sa)
    rel.create_secrets()
    try:
        yield rel
    finally:
        rel.stop()
        shutil.rmtree(rel.claims, ignore_errors=True)
        with contextlib.suppress(Exception):
            suite.helm.run("uninstall", "matomo", "-n", ns, "--no-hooks", check=False)
        with contextlib.suppress(Exception):
            suite.cp.delete_namespace(ns)
        with contextlib.suppress(Exception):
            suite.db.drop_database(db)


@pytest.fixture()
def queuedtracking(suite: Suite) -> str:
    """The reference of the QueuedTracking plugin image; skipped without the plugin's archive."""
    if QUEUEDTRACKING_IMAGE not in suite.images:
        try:
            plugin_tree("QueuedTracking", "5.1.1")
        except ReleaseMissing as exc:
            pytest.skip(str(exc))
    return QUEUEDTRACKING_IMAGE
