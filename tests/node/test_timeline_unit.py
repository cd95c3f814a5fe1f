"""tests/node/timeline.py without a cluster: watch events written here by hand, the hook's log lines,
and a stand-in for kubectl (a script printing the events as `kubectl get --watch -o json` does)."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import nodelib
import pytest
from timeline import FIRST_SIGHT, StreamParser, Timeline, log_row

T0 = 1_700_000_000.0  # in the past: a row added "now" comes last
CREATED = "2027-01-15T08:00:00Z"


# ------------------------------------------------------------------ fixtures
def pod(name: str, component: str, **status: Any) -> dict[str, Any]:
    """A pod of the chart as the API server returns it, trimmed to what the timeline reads."""
    return {
        "kind": "Pod",
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": CREATED,
                     "labels": {"app.kubernetes.io/component": component}},
        "spec": {"initContainers": [{"name": f"{component}-init"}],
                 "containers": [{"name": component, "startupProbe": {"httpGet": {"path": "/", "port": 80}}}]},
        "status": {"phase": "Pending", **status},
    }


def cond(kind: str, at: str = "2027-01-15T08:00:01Z", status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "lastTransitionTime": at}


def running(name: str, cid: str, started: bool = False, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "containerID": f"containerd://{cid}", "restartCount": restarts, "started": started,
            "state": {"running": {"startedAt": "2027-01-15T08:00:02Z"}}}


def terminated(name: str, cid: str, code: int, reason: str = "Completed") -> dict[str, Any]:
    return {"name": name, "containerID": f"containerd://{cid}", "restartCount": 0, "started": False,
            "state": {"terminated": {"exitCode": code, "reason": reason, "containerID": f"containerd://{cid}",
                                     "startedAt": "2027-01-15T08:00:02Z", "finishedAt": "2027-01-15T08:00:03Z"}}}


def ev(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def matomo_pod_versions() -> list[dict[str, Any]]:
    """A serving pod from its creation to its deletion, one watch event per version."""
    name = "matomo-7d9f-abc12"
    scheduled = pod(name, "matomo", conditions=[cond("PodScheduled")])
    unchanged = copy.deepcopy(scheduled)
    unchanged["metadata"]["resourceVersion"] = "42"  # a new version showing nothing new
    init_running = pod(name, "matomo", conditions=[cond("PodScheduled"), cond("Initialized", status="False")],
                       initContainerStatuses=[running("matomo-init", "i1")])
    init_done = pod(name, "matomo", phase="Running",
                    conditions=[cond("PodScheduled"), cond("Initialized", "2027-01-15T08:00:03Z")],
                    initContainerStatuses=[terminated("matomo-init", "i1", 0)],
                    containerStatuses=[running("matomo", "c1")])
    probed = copy.deepcopy(init_done)
    probed["status"]["containerStatuses"] = [running("matomo", "c1", started=True)]
    ready = copy.deepcopy(probed)
    ready["status"]["conditions"] += [cond("ContainersReady", "2027-01-15T08:00:05Z"),
                                      cond("Ready", "2027-01-15T08:00:05Z")]
    deleting = copy.deepcopy(ready)
    deleting["metadata"].update(deletionTimestamp="2027-01-15T08:01:00Z", deletionGracePeriodSeconds=30)
    return [ev("ADDED", pod(name, "matomo")), ev("MODIFIED", scheduled), ev("MODIFIED", unchanged),
            ev("MODIFIED", init_running), ev("MODIFIED", init_done), ev("MODIFIED", probed),
            ev("MODIFIED", ready), ev("MODIFIED", deleting), ev("DELETED", deleting)]


def hook_job_versions() -> list[dict[str, Any]]:
    """The hook Job: created, started, complete."""
    meta = {"name": "matomo-hook", "uid": "uid-job", "creationTimestamp": CREATED,
            "labels": {"app.kubernetes.io/component": "hook"}}
    job: dict[str, Any] = {"kind": "Job", "metadata": meta, "status": {}}
    started = copy.deepcopy(job)
    started["status"] = {"startTime": "2027-01-15T08:00:01Z", "active": 1}
    done = copy.deepcopy(started)
    done["status"].update(active=0, succeeded=1, conditions=[
        cond("SuccessCriteriaMet"), cond("Complete", "2027-01-15T08:00:09Z")])
    return [ev("ADDED", job), ev("MODIFIED", started), ev("MODIFIED", started), ev("MODIFIED", done)]


HOOK_LOG = "\n".join([
    json.dumps({"ts": T0 + 2.25, "level": "info", "event": "start", "state": None, "step": None,
                "duration_s": 0.01}),
    "not json: the image's entrypoint says hello",
    json.dumps({"ts": T0 + 3.5, "level": "info", "event": "step_done", "step": "createTables", "duration_s": 1.2}),
    json.dumps({"ts": T0 + 4.0, "level": "info", "event": "lock_acquired"}),
    '{"ts": 1700000005.0, "event": "cut in the mid',
    json.dumps({"installed": True, "version": "5.1.2"}),  # the result on stdout: no event
])


def fed(events: list[tuple[str, dict[str, Any]]]) -> Timeline:
    """A Timeline (not entered) given `events`, one per 0.5 s from T0 + 1."""
    t = Timeline(["kubectl"], "ns", t0=T0)
    for i, (kind, event) in enumerate(events):
        t.observe(kind, event, T0 + 1 + i * 0.5)
    return t


# ---------------------------------------------------------------- transitions
def test_pod_from_creation_to_deletion_each_transition_once() -> None:
    rows = fed([("pods", e) for e in matomo_pod_versions()]).rows()
    p = "pod matomo-7d9f-abc12 (component matomo): "
    assert rows == [
        (1.0, p + f"seen (created {CREATED})"),
        (1.5, p + "PodScheduled"),
        # 2.0: the version that changed nothing adds no row
        (2.5, p + "init container matomo-init started"),
        (3.0, p + "init container matomo-init terminated (0)"),
        (3.0, p + "Initialized"),
        (3.0, p + "container matomo started"),
        (3.5, p + "container matomo startup probe passed"),
        (4.0, p + "ContainersReady"),
        (4.0, p + "Ready"),
        (4.5, p + "deletion requested (grace 30 s)"),
        (5.0, p + "deleted"),
    ]


def test_job_seen_started_complete() -> None:
    rows = fed([("jobs", e) for e in hook_job_versions()]).rows()
    j = "job matomo-hook (component hook): "
    assert rows == [(1.0, j + f"seen (created {CREATED})"),
                    (1.5, j + "started (startTime 2027-01-15T08:00:01Z)"),
                    (2.5, j + "Complete")]


def test_failed_job_and_pod_with_reason() -> None:
    job = hook_job_versions()[1]["object"]
    job["status"]["conditions"] = [cond("Failed") | {"reason": "BackoffLimitExceeded"}]
    failed = pod("matomo-hook-x1", "hook", phase="Failed", containerStatuses=[terminated("hook", "h1", 3, "Error")])
    rows = [what for _, what in fed([("jobs", ev("ADDED", job)), ("pods", ev("ADDED", failed))]).rows()]
    assert "job matomo-hook (component hook): Failed (BackoffLimitExceeded)" + FIRST_SIGHT in rows
    assert "pod matomo-hook-x1 (component hook): container hook terminated (3, Error)" + FIRST_SIGHT in rows
    assert "pod matomo-hook-x1 (component hook): phase Failed" + FIRST_SIGHT in rows


def test_pod_already_running_at_first_sight() -> None:
    """A pod that was running before the watch began: its states are recorded at first sight, marked."""
    db = pod("matomo-mariadb-0", "database", phase="Running",
             conditions=[cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
             initContainerStatuses=[terminated("database-init", "d0", 0)],
             containerStatuses=[running("database", "d1", started=True)])
    later = copy.deepcopy(db)
    later["metadata"]["deletionTimestamp"] = "2027-01-15T08:01:00Z"
    rows = fed([("pods", ev("ADDED", db)), ("pods", ev("MODIFIED", later))]).rows()
    p = "pod matomo-mariadb-0 (component database): "
    assert rows[0] == (1.0, p + f"seen (created {CREATED})")
    assert [what for at, what in rows[1:] if at == 1.0] == [
        p + w + FIRST_SIGHT for w in ("PodScheduled", "init container database-init terminated (0)", "Initialized",
                                      "container database started", "container database startup probe passed",
                                      "ContainersReady", "Ready")]
    # what changes afterwards is news again
    assert rows[-1] == (1.5, p + "deletion requested")


def test_restart_is_a_new_start_and_its_end_is_kept() -> None:
    """A container that crashed between two versions: its end from lastState, its next run a new start."""
    name = "matomo-7d9f-abc12"
    first = pod(name, "matomo", phase="Running", containerStatuses=[running("matomo", "c1")])
    crashed = running("matomo", "c2", restarts=1)
    crashed["lastState"] = terminated("matomo", "c1", 137, "OOMKilled")["state"]
    again = pod(name, "matomo", phase="Running", containerStatuses=[crashed])
    rows = fed([("pods", ev("ADDED", pod(name, "matomo"))), ("pods", ev("MODIFIED", first)),
                ("pods", ev("MODIFIED", again)), ("pods", ev("MODIFIED", again))]).rows()
    p = f"pod {name} (component matomo): "
    assert rows[1:] == [(1.5, p + "container matomo started"),
                        (2.0, p + "container matomo terminated (137, OOMKilled)"),
                        (2.0, p + "container matomo started (restart 1)")]


def test_startup_probe_row_only_for_containers_with_a_probe() -> None:
    """`started` is true at once for a container without a startup probe: no row says a probe passed."""
    p = pod("matomo-archiver-1", "archiver", phase="Running", containerStatuses=[running("archiver", "a1", True)])
    p["spec"]["containers"] = [{"name": "archiver"}]
    rows = [what for _, what in fed([("pods", ev("MODIFIED", p))]).rows()]
    assert not [r for r in rows if "probe" in r]
    assert "pod matomo-archiver-1 (component archiver): container archiver started" + FIRST_SIGHT in rows


def test_same_name_new_uid_is_a_new_pod_and_odd_events_are_ignored() -> None:
    a = pod("matomo-mariadb-0", "database")
    b = copy.deepcopy(a)
    b["metadata"]["uid"] = "uid-second"
    t = fed([("pods", ev("ADDED", a)), ("pods", ev("DELETED", a)), ("pods", ev("ADDED", b)),
             ("pods", {"type": "ERROR", "object": {"kind": "Status", "code": 410}}),
             ("pods", {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}),
             ("pods", cast(dict[str, Any], {"type": "MODIFIED", "object": "not an object"}))])
    assert [what.split(": ")[1] for _, what in t.rows()] == [f"seen (created {CREATED})", "deleted",
                                                              f"seen (created {CREATED})"]


def test_unlabelled_object_is_named_without_component() -> None:
    p = pod("other", "x")
    del p["metadata"]["labels"]
    assert fed([("pods", ev("ADDED", p))]).rows()[0][1] == f"pod other: seen (created {CREATED})"


# ------------------------------------------------------- rows the test adds
def test_added_rows_and_hook_log_sorted_with_the_watch() -> None:
    t = fed([("jobs", e) for e in hook_job_versions()])
    t.add("helm install started", at=T0)
    t.add("helm install returned", at=T0 + 9.96)
    t.add_log_events("hook", HOOK_LOG)
    t.add_log_events("hook", HOOK_LOG)  # the same log read again adds nothing
    before = time.time()
    t.add("now")
    rows = t.rows()
    assert rows[:7] == [
        (0.0, "helm install started"),
        (1.0, f"job matomo-hook (component hook): seen (created {CREATED})"),
        (1.5, "job matomo-hook (component hook): started (startTime 2027-01-15T08:00:01Z)"),
        (2.25, "hook: start (duration_s 0.01)"),
        (2.5, "job matomo-hook (component hook): Complete"),
        (3.5, "hook: step_done (step createTables, duration_s 1.2)"),
        (4.0, "hook: lock_acquired"),
    ]
    assert rows[7][1] == "helm install returned"
    assert rows[8][1] == "now" and rows[8][0] >= before - T0
    assert len(rows) == 9


def test_log_row_reads_kubectl_prefixed_lines_and_ignores_the_rest() -> None:
    line = '[pod/matomo-hook-x1/hook] {"ts": 1800000001.5, "event": "done", "step": "install"}'
    assert log_row("hook", line) == (1800000001.5, "hook: done (step install)")
    for junk in ("", "plain text", "{not json", '{"event": "no ts"}', '{"ts": "soon", "event": "x"}', "[1, 2]"):
        assert log_row("hook", junk) is None, junk


def test_markdown_table() -> None:
    t = Timeline(["kubectl"], "ns", t0=T0)
    t.add("helm install started", at=T0 - 0.01)
    t.add("a | in a row", at=T0 + 1.26)
    t.add("helm install returned", at=T0 + 62.04)
    assert t.markdown("install, local values") == (
        "**install, local values**\n\n| s | what |\n|---:|---|\n"
        "| 0.0 | helm install started |\n| 1.3 | a \\| in a row |\n| 62.0 | helm install returned |\n")


def test_rows_without_t0_start_at_the_first_row() -> None:
    t = Timeline(["kubectl"], "ns")
    assert t.rows() == []
    t.add("b", at=T0 + 2)
    t.add("a", at=T0 + 1)
    assert t.rows() == [(0.0, "a"), (1.0, "b")]


# ------------------------------------------------------------- the stream
def kubectl_stream(events: list[dict[str, Any]]) -> str:
    """As kubectl prints a watch with -o json: indented values one after the other."""
    return "".join(json.dumps(e, indent=4) + "\n" for e in events)


def test_stream_parser_any_cut() -> None:
    events = hook_job_versions()
    events[0]["object"]["metadata"]["annotations"] = {"note": "café ✓"}  # multi-byte UTF-8 to be cut
    data = kubectl_stream(events).encode()
    for size in (1, 7, 100, len(data)):
        parser = StreamParser()
        got: list[Any] = []
        for i in range(0, len(data), size):
            got += parser.feed(data[i:i + size])
        assert got == events, size
        assert parser.tail == "" and parser.skipped == 0


def test_stream_parser_keeps_what_came_before_a_cut_or_a_broken_value() -> None:
    one, two = (json.dumps(e, indent=4) for e in hook_job_versions()[:2])
    parser = StreamParser()
    assert parser.feed(one + "\n" + two[:50]) == [json.loads(one)]
    assert parser.tail == two[:50]  # a stream that ends here: the cut value is all that is lost
    broken = StreamParser()
    assert broken.feed('{\n    "type": "ADDED",\n    "object": {\n        "x": nope\n    }\n}\n' + two + "\n") == [
        json.loads(two)]
    assert broken.skipped == 1


# -------------------------------------------------- with a stand-in kubectl
FAKE_KUBECTL = '''
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
kind = sys.argv[2]
with open(os.path.join(here, kind + ".argv"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
with open(os.path.join(here, kind + ".json")) as f:
    plan = json.load(f)
out = sys.stdout.buffer
for event in plan["events"]:
    event["object"]["metadata"].setdefault("annotations", {})["printed-at"] = repr(time.time())
    text = json.dumps(event, indent=4).encode() + b"\\n"
    # in two writes, cut inside the value, as a pipe may deliver it
    out.write(text[:len(text) // 2]); out.flush(); time.sleep(0.05)
    out.write(text[len(text) // 2:]); out.flush(); time.sleep(0.1)
out.write(plan.get("tail", "").encode()); out.flush()
if plan["then"] == "exit":
    sys.stderr.write("error: the watch broke\\n")
    sys.exit(1)
time.sleep(600)
'''


def fake_kubectl(tmp_path: Path, pods: dict[str, Any], jobs: dict[str, Any]) -> list[str]:
    script = tmp_path / "kubectl.py"
    script.write_text(FAKE_KUBECTL)
    for kind, plan in (("pods", pods), ("jobs", jobs)):
        (tmp_path / f"{kind}.json").write_text(json.dumps(plan))
    return [sys.executable, str(script)]


def wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_watch_runs_kubectl_stamps_arrival_and_stops(tmp_path: Path) -> None:
    argv = fake_kubectl(tmp_path, {"events": matomo_pod_versions()[:4], "then": "sleep"},
                        {"events": hook_job_versions(), "then": "sleep"})
    started = time.time()
    with Timeline(argv, "matomo-ns") as t:
        assert t.t0 is not None and started <= t.t0 <= time.time()
        wait_for(lambda: len(t.rows()) == 3 + 3)
        watchers = list(t._watchers)
    for kind in ("pods", "jobs"):
        assert json.loads((tmp_path / f"{kind}.argv").read_text()) == [
            "get", kind, "--namespace", "matomo-ns", "--watch", "--output-watch-events", "-o", "json"]
    # stopped: kubectl terminated, the threads ended, nothing more recorded
    assert all(w._proc is not None and w._proc.poll() is not None for w in watchers)
    assert not any(w._thread.is_alive() for w in watchers)
    assert not [what for _, what in t.rows() if "ended" in what]


def test_arrival_times_are_when_the_version_arrived(tmp_path: Path) -> None:
    stamps: list[tuple[float, float]] = []

    class Stamped(Timeline):
        def observe(self, kind: str, event: Any, at: float) -> None:
            stamps.append((float(event["object"]["metadata"]["annotations"]["printed-at"]), at))
            super().observe(kind, event, at)

    argv = fake_kubectl(tmp_path, {"events": matomo_pod_versions(), "then": "sleep"},
                        {"events": [], "then": "sleep"})
    with Stamped(argv, "ns") as t:
        wait_for(lambda: len(stamps) == len(matomo_pod_versions()))
    # after the stand-in printed it (its second half 0.05 s later), and not long after
    assert all(printed + 0.04 <= at < printed + 5 for printed, at in stamps), stamps
    assert [at for _, at in stamps] == sorted(at for _, at in stamps)
    assert len(t.rows()) == 11


def test_kubectl_that_exits_with_a_cut_value_keeps_what_came(tmp_path: Path) -> None:
    cut = json.dumps(matomo_pod_versions()[4], indent=4)[:300]
    argv = fake_kubectl(tmp_path, {"events": matomo_pod_versions()[:2], "then": "exit", "tail": cut},
                        {"events": [], "then": "sleep"})
    with Timeline(argv, "ns") as t:
        wait_for(lambda: any("ended" in what for _, what in t.rows()))
        # and started again (the same versions again add no row)
        wait_for(lambda: len((tmp_path / "pods.argv").read_text().splitlines()) >= 2)
        wait_for(lambda: sum("ended" in what for _, what in t.rows()) >= 2)
    whats = [what for _, what in t.rows()]
    assert [w for w in whats if w.startswith("pod ")] == [
        f"pod matomo-7d9f-abc12 (component matomo): seen (created {CREATED})",
        "pod matomo-7d9f-abc12 (component matomo): PodScheduled"]
    assert "kubectl watch of pods: the last version was cut (300 characters)" in whats
    assert "kubectl watch of pods ended (1): error: the watch broke" in whats


def test_kubectl_missing_is_noted_not_raised(tmp_path: Path) -> None:
    with Timeline([str(tmp_path / "no-kubectl")], "ns") as t:
        wait_for(lambda: len(t.rows()) >= 2)
    assert all("ended (None): [Errno 2]" in what for _, what in t.rows()), t.rows()


def test_release_timeline_runs_kubectl_as_release_kubectl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodelib, "find_binary", lambda name: f"/bin/{name}")
    node = cast(Any, SimpleNamespace(cp=SimpleNamespace(kubeconfig=Path("/cp/admin.kubeconfig"))))
    t = nodelib.Release(node=node, helm=cast(Any, None), namespace="matomo-3").timeline()
    assert (t.kubectl_argv, t.namespace, t.t0) == (["/bin/kubectl", "--kubeconfig", "/cp/admin.kubeconfig"],
                                                   "matomo-3", None)
