"""values/local.yaml on a real node: what a user checks after `helm install --wait`.

One release (embedded MariaDB, Matomo 5.1.2 apache) in a namespace enforcing
PodSecurity `restricted`; the steps run in order on it (install, helm test,
a tracked visit, the archiver, a values change, a rollback, uninstall and
reinstall with the kept salt) and later steps skip once a step they need
failed.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from harness.helm import F
from nodelib import (
    HOOK,
    Context,
    Prestarted,
    Release,
    ServicePoller,
    assert_code_is_the_image_read_only,
    assert_hook_pod_stopped_at_once,
    hook_job_duration,
    prestart,
    steps_of,
    succeeded,
    wait_until,
)
from timeline import Timeline

from harness.passwords import ACCEPTED

BENCH = Path(os.environ.get("NODE_BENCH_OUT", Path(__file__).resolve().parents[2] / ".scratch" / "node-bench.json"))


def record_timeline(name: str, rel: Release, timeline: Timeline) -> None:
    """The hook's own steps (its log) into `timeline`, and the table into timeline-<name>.md next to
    the bench figures (bench/bench_node.py puts the last run's into bench/RESULTS.md)."""
    logs = rel.kubectl("logs", f"job/{HOOK}", "-c", "hook", check=False)
    timeline.add_log_events("hook", logs.stdout + logs.stderr)
    BENCH.parent.mkdir(parents=True, exist_ok=True)
    (BENCH.parent / f"timeline-{name}.md").write_text(timeline.markdown(name))


def record_bench(key: str, value: float) -> None:
    BENCH.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(BENCH.read_text()) if BENCH.exists() else {}
    data.setdefault(key, []).append(round(value, 1))
    BENCH.write_text(json.dumps(data, indent=1))


# The passwords of this release are the issue-18 report's non-ASCII database password
# and an emoji superuser password (tests/harness/passwords.py), as a user sets them.
PASSWORDS = {"database": {"password": ACCEPTED["issue-18"]},
             "matomo": {"superuser": {"password": ACCEPTED["emoji"]}}}


@prestart("test_install_wait_hook_installs_and_deployment_rolls", "local")
def start(ctx: Context, rel: Release) -> None:
    values = Path(tempfile.mkdtemp(prefix="node-passwords-")) / "passwords.yaml"
    values.write_text(yaml.safe_dump(PASSWORDS, allow_unicode=True), encoding="utf-8")
    rel.values = [*rel.values, values]
    rel.t0 = time.monotonic()  # type: ignore[attr-defined]
    with rel.timeline() as timeline:
        timeline.add("helm install --wait started")
        try:
            rel.install()
        finally:
            rel.t_installed = time.monotonic() - rel.t0  # type: ignore[attr-defined]
            timeline.add("helm install --wait returned")
    record_timeline("install", rel, timeline)


@pytest.fixture(scope="module")
def rel(prestarted: Prestarted) -> Iterator[Release]:
    yield from prestarted.kept("test_install_wait_hook_installs_and_deployment_rolls")


# steps the later ones need (helm test failing does not stop tracking checks)
PREREQUISITES = {"test_install_wait_hook_installs_and_deployment_rolls", "test_tracking_request_is_stored",
                 "test_upgrade_changed_values_rolls_without_schema_step", "test_rollback_values"}
VERSION = "5.1.2"


@pytest.fixture
def step(rel: Release, request: pytest.FixtureRequest) -> Iterator[Release]:
    yield from steps_of(rel, request, PREREQUISITES)


def helm_test(rel: Release) -> None:
    """helm test must pass (no --logs: a passing test pod is deleted before helm can read its logs;
    a failing one is kept and its logs are in the error, through Release.diagnose)."""
    try:
        rel.run_helm("test", F, "-n", rel.namespace, "--timeout", "5m")
    except AssertionError as e:
        logs = rel.kubectl("logs", f"{F}-test", check=False)
        raise AssertionError(f"{e}\n$ kubectl logs {F}-test\n{logs.stdout}{logs.stderr}") from None


def test_install_wait_hook_installs_and_deployment_rolls(step: Release) -> None:
    step.started()  # helm install --wait, started when the node came up
    assert step.status()["info"]["status"] == "deployed"
    hooks = step.hook_jobs()
    assert len(hooks) == 1, f"one hook Job expected, saw {len(hooks)}"
    assert succeeded(hooks[0]), f"the hook Job did not succeed:\n{step.diagnose()}"
    duration = hook_job_duration(hooks[0])
    if duration is not None:
        record_bench("hook_job_install_s", duration)
    # the -apache image's stop signal is SIGWINCH: the hook pod's Matomo sidecar stops on it at once
    record_bench("hook_exit_to_job_complete_s", assert_hook_pod_stopped_at_once(step))
    # the database password (non-ASCII) is the one in F-database, which the hook logged in with
    assert step.secret(f"{F}-database", "password") == ACCEPTED["issue-18"]
    # the hook rolled the Deployment: every serving pod is Ready, started after the install
    assert step.available()
    pods = step.serving_pods()
    assert len(pods) == 1 and all(c["ready"] for c in pods[0]["status"]["containerStatuses"])
    # a real container ran: the init container wrote the config and exited 0
    init = {c["name"]: c for c in pods[0]["status"]["initContainerStatuses"]}
    assert init["matomo-init"]["state"]["terminated"]["exitCode"] == 0
    record_bench("helm_install_wait_s", step.t_installed)  # type: ignore[attr-defined]


def test_helm_test_passes(step: Release) -> None:
    helm_test(step)
    step.end_step()


def test_tracking_request_is_stored(step: Release) -> None:
    m = step.matomo()
    url = f"http://localhost/node-test/{secrets.token_hex(4)}"
    url = step.track_stored(m, url)
    record_bench("install_to_first_stored_hit_s", time.monotonic() - step.t0)  # type: ignore[attr-defined]
    assert len(m.visits_with(url)) == 1
    step.tracked_url = url  # type: ignore[attr-defined]
    step.token = m.token  # type: ignore[attr-defined]
    step.end_step()


def test_archiver_job_archives_the_visit(step: Release) -> None:
    m = step.matomo()
    m.token = step.token  # type: ignore[attr-defined]
    before = m.api("VisitsSummary.get", idSite="1", period="day", date="today")
    # browser-triggered archiving is off (archiver.enabled): nothing is archived before the archiver runs
    assert not before or int(before.get("nb_visits", 0)) == 0, before
    step.kubectl("create", "job", "archive-now", f"--from=cronjob/{F}-archiver")
    wait_until(lambda: succeeded([step.get(f"/apis/batch/v1/namespaces/{step.namespace}/jobs/archive-now")]),
               300, "the archiver Job complete")
    after = m.api("VisitsSummary.get", idSite="1", period="day", date="today")
    assert int(after["nb_visits"]) >= 1, after


def test_pod_runs_the_image_code_read_only(step: Release) -> None:
    """What a serving pod's start costs (creation to Ready, its init container), and that the pod runs
    the image's code in place: no copy, nothing writable there; Matomo writes only its config and
    caches, into a few MB of emptyDir (measured after the install, a tracked visit and the archiver)."""
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%SZ"
    pod = step.serving_pods()[0]
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    created = datetime.strptime(pod["metadata"]["creationTimestamp"], fmt)
    ready_at = datetime.strptime(ready["lastTransitionTime"], fmt)
    record_bench("serving_pod_created_to_ready_s", (ready_at - created).total_seconds())
    init = next(c for c in pod["status"]["initContainerStatuses"] if c["name"] == "matomo-init")["state"]["terminated"]
    record_bench("init_container_run_s", (datetime.strptime(init["finishedAt"], fmt)
                                          - datetime.strptime(init["startedAt"], fmt)).total_seconds())
    kib = assert_code_is_the_image_read_only(step, pod)
    record_bench("serving_pod_writable_kib", kib)
    assert kib < 5 * 1024, f"the serving pod's writable volumes hold {kib:.0f} KiB"


SETTING = "login_session_not_remembered_idle_timeout"


def restarted_at(rel: Release) -> str | None:
    """The hook's last rollout restart of the Deployment (its pod template's annotation)."""
    annotations = rel.deployment()["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations.get("kubectl.kubernetes.io/restartedAt")


def managed_config(rel: Release) -> str:
    return rel.secret(f"{F}-config", "common.config.ini.php")


def test_upgrade_changed_values_rolls_without_schema_step(step: Release) -> None:
    before = {p["metadata"]["name"] for p in step.serving_pods()}
    jobs_before = len(step.hook_jobs())
    restarted_before = restarted_at(step)
    options_before = step.db_query("SELECT option_name, option_value FROM matomo_option WHERE option_name LIKE 'version_%'")
    # a visitor through the Service the whole time: one rollout (helm's; the hook changes nothing in the
    # database, so it leaves the new pods alone), no refusal
    with ServicePoller(step.matomo()) as visitor:
        step.upgrade("--set", f"matomo.config.General.{SETTING}=3600")
        time.sleep(10)  # the last old pod's preStop and kube-proxy's next sync
    assert visitor.sent > 100 and not visitor.failures, \
        f"{len(visitor.failures)} of {visitor.sent} requests failed during the rollouts: {visitor.failures[:10]}"
    assert f"{SETTING} = 3600" in managed_config(step).replace('"', "")
    after = {p["metadata"]["name"] for p in step.serving_pods()}
    assert after and not (before & after), "the serving pods were replaced"
    hooks = step.hook_jobs()[jobs_before:]
    assert len(hooks) == 1 and succeeded(hooks[0])
    # the hook did not restart the pods Helm had just rolled: one new ReplicaSet, its pod the one serving
    logs = step.kubectl("logs", f"job/{HOOK}", "-c", "hook")
    hook_log = logs.stdout + logs.stderr
    assert '"rollout_skipped"' in hook_log and '"rollout_restarted"' not in hook_log, hook_log[-2000:]
    assert restarted_at(step) == restarted_before
    # no schema step: every component's version in the database is what it was
    assert step.db_query("SELECT option_name, option_value FROM matomo_option WHERE option_name LIKE 'version_%'") \
        == options_before


def test_rollback_values(step: Release) -> None:
    revision = step.status()["version"]
    step.run_helm("rollback", F, str(revision - 1), "-n", step.namespace, "--wait", "--timeout", "10m")
    wait_until(step.available, 300, "the Deployment available after the rollback")
    assert SETTING not in managed_config(step), "the rollback took the setting back out"
    m = step.matomo()
    m.token = step.token  # type: ignore[attr-defined]
    assert m.api("API.getMatomoVersion")["value"] == VERSION
    assert len(m.visits_with(step.tracked_url)) == 1  # type: ignore[attr-defined]


def test_uninstall_then_reinstall_keeps_token(step: Release) -> None:
    salt = step.secret(f"{F}-salt", "salt")
    step.run_helm("uninstall", F, "-n", step.namespace, "--wait", "--timeout", "5m")
    wait_until(lambda: not step.pods("matomo") and not step.pods("database"), 180, "the pods gone")
    step.install()
    assert step.secret(f"{F}-salt", "salt") == salt, "the salt Secret was kept"
    m = step.matomo()
    m.token = step.token  # type: ignore[attr-defined]
    # the token made before uninstalling still authenticates, and the data is there
    assert len(m.visits_with(step.tracked_url)) == 1  # type: ignore[attr-defined]
