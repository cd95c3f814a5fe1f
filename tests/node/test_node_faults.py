"""Faults during a real install: the hook pod deleted in the middle; the
database crashed (killed) in the middle of Matomo's table creation and its pod
deleted. `helm install --wait` must still end deployed, with one complete
Matomo (one superuser, one site, every core table) and a tracking request
stored.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.helm import F
from matomo_hook.database import CORE_TABLES
from nodelib import HOOK, Context, Prestarted, Release, prestart, succeeded, wait_until
from test_node_modes import assert_tracks_and_stores

TABLES_BEFORE_CRASH = 8  # of the 24 core tables Matomo's tablesCreation makes


def hook_pods(rel: Release) -> list[dict[str, Any]]:
    return [p for p in rel.pods("hook") if not p["metadata"].get("deletionTimestamp")]


def hook_container_running(pod: dict[str, Any]) -> bool:
    return any(c["name"] == "hook" and "running" in (c.get("state") or {})
               for c in pod["status"].get("containerStatuses") or [])


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def install_with(rel: Release, fault: Callable[[], None]) -> None:
    """helm install --wait in a thread while `fault` runs here; re-raises the install's error."""
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            rel.install()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        fault()
    finally:
        t.join(1200)
    if "error" in box:
        raise box["error"]


def assert_one_complete_install(rel: Release) -> None:
    assert rel.status()["info"]["status"] == "deployed"
    assert rel.db_query("SELECT COUNT(*) FROM matomo_user WHERE superuser_access=1") == "1"
    assert rel.db_query("SELECT COUNT(*) FROM matomo_site") == "1"
    assert rel.db_query("SELECT COUNT(*) FROM matomo_option WHERE option_name='version_core'") == "1"
    assert_tracks_and_stores(rel)
    rel.end_step()


@prestart("test_hook_pod_deleted_mid_install", "fault-hook")
def start_hook_pod_deleted(ctx: Context, rel: Release) -> None:
    deleted: list[str] = []
    rel.deleted = deleted  # type: ignore[attr-defined]

    def fault() -> None:
        def tables() -> int:
            out = rel.db_query("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='matomo'")
            return int(out or 0)

        pod = wait_until(lambda: next((p for p in hook_pods(rel) if hook_container_running(p)), None), 600,
                         "the hook container running")
        # the middle of the install: the installer has created some tables
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and tables() == 0:
            time.sleep(0.3)
        rel.kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false")
        deleted.append(pod["metadata"]["name"])

    install_with(rel, fault)


def test_hook_pod_deleted_mid_install(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_hook_pod_deleted_mid_install").started()
    assert rel.jobs
    rel.jobs.stop()
    assert rel.deleted  # type: ignore[attr-defined]
    hooks = rel.hook_jobs()
    assert len(hooks) == 1 and succeeded(hooks[0])
    statuses = [v.get("status") or {} for v in hooks[0]]
    assert max(s.get("failed", 0) for s in statuses) >= 1 or any(
        (s.get("uncountedTerminatedPods") or {}).get("failed") for s in statuses), \
        "the deleted pod counted as a failed attempt, the retry finished the install"
    assert_one_complete_install(rel)


def database_dir(rel: Release) -> Path:
    """The host folder of the release's database (its PersistentVolume is a hostPath on this node)."""
    claim = rel.get(f"/api/v1/namespaces/{rel.namespace}/persistentvolumeclaims/data-{F}-mariadb-0")
    pv = rel.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
    return Path(pv["spec"]["hostPath"]["path"]) / "matomo"


def server_pid(pod_uid: str) -> int | None:
    """The host pid of mariadbd in the pod `pod_uid` (cgroupfs driver: .../pod<uid>/<container>)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "mariadbd":
                continue
            if f"pod{pod_uid}" in (proc / "cgroup").read_text():
                return int(proc.name)
        except OSError:
            continue
    return None


@prestart("test_database_restarted_during_install", "fault-db")
def start_database_restarted(ctx: Context, rel: Release) -> None:
    ns = rel.namespace
    restarted: list[str] = []
    rel.restarted = restarted  # type: ignore[attr-defined]

    def fault() -> None:
        # Ready: the server that stays (the image's entrypoint runs a temporary one to initialise the data)
        pod = wait_until(lambda: next((p for p in rel.pods("database") if ready(p)), None), 600, "the database ready")
        pid = server_pid(pod["metadata"]["uid"])
        assert pid
        # The worst moment: Matomo's tablesCreation half done, some core tables made and others not. The
        # table files are watched on the host and the server killed at once (a crash, as an OOM kill or a
        # lost node), then its pod deleted: a kubectl exec or a graceful stop comes seconds too late.
        folder = database_dir(rel)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(folder.glob("matomo_*.frm"))) < TABLES_BEFORE_CRASH:
            time.sleep(0.002)
        made = len(list(folder.glob("matomo_*.frm")))
        os.kill(pid, signal.SIGKILL)
        rel.crashed_at = made  # type: ignore[attr-defined]
        rel.kubectl("delete", "pod", f"{F}-mariadb-0", "--wait=false")
        restarted.append(pod["metadata"]["uid"])
        wait_until(lambda: rel.get(f"/api/v1/namespaces/{ns}/pods/{F}-mariadb-0")["metadata"]["uid"] != restarted[0],
                   120, "a new database pod")

    install_with(rel, fault)


def test_database_restarted_during_install(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_database_restarted_during_install").started()
    assert rel.jobs
    rel.jobs.stop()
    assert rel.restarted  # type: ignore[attr-defined]
    hooks = rel.hook_jobs()
    assert len(hooks) == 1 and succeeded(hooks[0]), "the hook waited for the database and finished"
    crashed_at: int = rel.crashed_at  # type: ignore[attr-defined]
    assert TABLES_BEFORE_CRASH <= crashed_at < len(CORE_TABLES), \
        f"the database crashed with {crashed_at} tables made: not in the middle of the table creation"
    logs = rel.kubectl("logs", "-l", f"job-name={HOOK}", "-c", "hook", "--tail=-1").stdout
    assert '"step": "createMissingTables"' in logs, "the retry finished the interrupted table creation"
    assert_one_complete_install(rel)
    assert HOOK
