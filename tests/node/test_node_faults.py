"""Faults during a real install: the hook pod deleted in the middle, the
database pod restarted. `helm install --wait` must still end deployed, with
one complete Matomo (one superuser, one site, every core table) and a
tracking request stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from clusterlib import F
from nodelib import HOOK, Context, Prestarted, Release, prestart, succeeded, wait_until
from test_node_modes import assert_tracks_and_stores


def hook_pods(rel: Release) -> list[dict[str, Any]]:
    return [p for p in rel.pods("hook") if not p["metadata"].get("deletionTimestamp")]


def hook_container_running(pod: dict[str, Any]) -> bool:
    return any(c["name"] == "hook" and "running" in (c.get("state") or {})
               for c in pod["status"].get("containerStatuses") or [])


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


@prestart("test_database_restarted_during_install", "fault-db")
def start_database_restarted(ctx: Context, rel: Release) -> None:
    ns = rel.namespace
    restarted: list[str] = []
    rel.restarted = restarted  # type: ignore[attr-defined]

    def fault() -> None:
        wait_until(lambda: any(hook_container_running(p) for p in hook_pods(rel)), 600, "the hook container running")
        old = rel.get(f"/api/v1/namespaces/{ns}/pods/{F}-mariadb-0")["metadata"]["uid"]
        rel.kubectl("delete", "pod", f"{F}-mariadb-0", "--wait=false")
        restarted.append(old)
        wait_until(lambda: rel.get(f"/api/v1/namespaces/{ns}/pods/{F}-mariadb-0")["metadata"]["uid"] != old,
                   120, "a new database pod")

    install_with(rel, fault)


def test_database_restarted_during_install(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_database_restarted_during_install").started()
    assert rel.jobs
    rel.jobs.stop()
    assert rel.restarted  # type: ignore[attr-defined]
    hooks = rel.hook_jobs()
    assert len(hooks) == 1 and succeeded(hooks[0]), "the hook waited for the database and finished"
    assert_one_complete_install(rel)
    assert HOOK
