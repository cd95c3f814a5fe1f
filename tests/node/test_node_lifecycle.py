"""helm upgrade from Matomo 5.0.3 to 5.1.2 on a real node.

One release (values/local.yaml, embedded MariaDB) installed with
image.tag=5.0.3-apache, a visit tracked, then `helm upgrade --set
image.tag=5.1.2-apache`: one hook Job runs core:update, the data is kept, the
serving pods end on the new code. (Values changes, rollback, uninstall and
reinstall: test_node_local.py.) Then `helm rollback` across the upgrade:
the older pods refuse to start, the upgraded ones keep serving.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest
from harness.helm import F
from nodelib import (
    Context,
    Prestarted,
    Release,
    assert_hook_pod_stopped_at_once,
    prestart,
    steps_of,
    succeeded,
    wait_until,
)
from test_node_local import record_bench, record_timeline

OLD, NEW = "5.0.3", "5.1.2"
# Matomo 5.0.3 has no `Mariadb` schema class (5.1+), which values/local.yaml
# sets: a user upgrading from 5.0.x keeps the `Mysql` schema.
SCHEMA = ("--set", "database.schema=Mysql")


def version_core(rel: Release) -> str:
    return rel.version_core()


def serving_images(rel: Release) -> set[str]:
    return rel.serving_images()


def database_pod(rel: Release) -> tuple[str, int]:
    """The embedded MariaDB's pod (uid) and its container's restarts: an upgrade or a rollback of
    Matomo must not restart the database under the serving pods."""
    pods = rel.pods("database")
    assert len(pods) == 1, pods
    pod = pods[0]
    return str(pod["metadata"]["uid"]), sum(c.get("restartCount", 0) for c in pod["status"]["containerStatuses"])


@prestart("test_install_old_release_and_track", "life")
def start(ctx: Context, rel: Release) -> None:
    rel.install("--set", f"image.tag={OLD}-apache", *SCHEMA)


@pytest.fixture(scope="module")
def rel(prestarted: Prestarted) -> Iterator[Release]:
    yield from prestarted.kept("test_install_old_release_and_track")


@pytest.fixture
def step(rel: Release, request: pytest.FixtureRequest) -> Iterator[Release]:
    yield from steps_of(rel, request)


def test_install_old_release_and_track(step: Release) -> None:
    step.started()  # helm install --wait of 5.0.3, started when the node came up
    assert version_core(step) == OLD
    m = step.matomo()
    step.url = step.track_stored(m, f"http://localhost/before-upgrade/{secrets.token_hex(4)}")  # type: ignore[attr-defined]
    step.token = m.token  # type: ignore[attr-defined]
    assert m.api("API.getMatomoVersion")["value"] == OLD
    step.database_pod = database_pod(step)  # type: ignore[attr-defined]
    step.end_step()


def test_upgrade_to_new_release_runs_core_update_once(step: Release) -> None:
    jobs_before = len(step.hook_jobs())
    t0 = time.monotonic()
    with step.timeline() as timeline:
        timeline.add("helm upgrade --wait started")
        step.upgrade("--set", f"image.tag={NEW}-apache", *SCHEMA)
        record_bench("helm_upgrade_503_to_512_s", time.monotonic() - t0)
        timeline.add("helm upgrade --wait returned")
    record_timeline("upgrade", step, timeline)
    hooks = step.hook_jobs()[jobs_before:]
    assert len(hooks) == 1 and succeeded(hooks[0]), "exactly one post-upgrade hook Job, succeeded"
    # the post-upgrade hook pod ends without waiting for its sidecar's grace period
    assert_hook_pod_stopped_at_once(step)
    # the schema was upgraded (core:update ran) ...
    assert version_core(step) == NEW
    # ... the serving pods run the new code ...
    assert serving_images(step) == {f"matomo:{NEW}-apache"}
    m = step.matomo()
    m.token = step.token  # type: ignore[attr-defined]
    assert m.api("API.getMatomoVersion")["value"] == NEW
    # ... and the data is kept (the visit and the token made before the upgrade)
    assert len(m.visits_with(step.url)) == 1  # type: ignore[attr-defined]
    page = m.request("GET", "/index.php")
    assert "Database Upgrade Required" not in page.text and "CoreUpdater" not in "".join(page.header("Location"))
    assert database_pod(step) == step.database_pod, "the upgrade restarted the database"  # type: ignore[attr-defined]


def test_rollback_across_the_upgrade_stops_and_old_pods_keep_serving(step: Release) -> None:
    """`helm rollback` to the 5.0.3 revision after core:update ran (README, "Upgrades, rollbacks"):
    no hook runs; the Deployment's new pods (5.0.3 code) do not start, their matomo-init refusing
    with both versions, so the rollout stops while the 5.1.2 pods keep serving, the schema
    untouched; rolling forward again (`helm rollback` to the upgrade's revision) heals it."""
    history = step.run_helm("history", F, "-n", step.namespace, "-o", "json")
    revisions = json.loads(history.stdout)
    first, upgraded = revisions[0]["revision"], revisions[-1]["revision"]
    m = step.matomo()
    m.token = step.token  # type: ignore[attr-defined]
    step.run_helm("rollback", F, str(first), "-n", step.namespace)  # no --wait: the rollout must stop

    def refused() -> str | None:
        for pod in step.pods("matomo"):  # not serving_pods(): these stay Pending, in their init container
            if {c["image"] for c in pod["spec"]["containers"]} != {f"matomo:{OLD}-apache"}:
                continue
            for c in pod["status"].get("initContainerStatuses", []):
                term = (c.get("state") or {}).get("terminated") or (c.get("lastState") or {}).get("terminated") or {}
                if c["name"] == "matomo-init" and term.get("exitCode") == 1:
                    return str(pod["metadata"]["name"])
        return None

    try:
        pod = wait_until(refused, 120, "a 5.0.3 pod whose matomo-init refuses the 5.1.2 database")
    except AssertionError as e:
        logs = step.kubectl("logs", "-l", "app.kubernetes.io/component=matomo", "-c", "matomo-init", "--prefix",
                            "--tail=20", check=False)
        raise AssertionError(f"{e}\n{logs.stdout}{logs.stderr}\n{step.diagnose()}") from None
    log = step.kubectl("logs", pod, "-c", "matomo-init", "--previous", check=False).stdout + \
        step.kubectl("logs", pod, "-c", "matomo-init", check=False).stdout
    assert f"Matomo {NEW} (version_core) but this release runs Matomo {OLD}" in log, log
    # the previous ReplicaSet keeps serving, on the schema as it was
    assert m.api("API.getMatomoVersion")["value"] == NEW
    assert version_core(step) == NEW
    assert len(m.visits_with(step.url)) == 1  # type: ignore[attr-defined]

    step.run_helm("rollback", F, str(upgraded), "-n", step.namespace, "--wait", "--timeout", "5m")
    wait_until(lambda: serving_images(step) == {f"matomo:{NEW}-apache"} and step.available(), 180,
               "the Deployment back on 5.1.2")
    assert database_pod(step) == step.database_pod, "a rollback restarted the database"  # type: ignore[attr-defined]
    m = step.matomo()
    m.token = step.token  # type: ignore[attr-defined]
    assert m.api("API.getMatomoVersion")["value"] == NEW
