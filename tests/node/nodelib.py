"""Helpers for tests/node: a release on the real node, and Matomo as a user talks to it."""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import basics
from harness.helm import CHART, F, Helm, HelmError, Recorder, deployment_available, job_succeeded

from harness.controlplane import ControlPlaneError, find_binary
from harness.node import Node, Response
from timeline import Timeline

REPO = Path(__file__).resolve().parents[2]
NODE_VALUES = Path(__file__).resolve().parent / "values-node.yaml"
LOCAL = REPO / "values" / "local.yaml"
HOOK = f"{F}-hook"
TIMEOUT = os.environ.get("NODE_TEST_HELM_TIMEOUT", "10m")
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


@dataclass
class Release:
    """One helm release of the chart on the real node, in its own namespace."""

    node: Node
    helm: Helm
    namespace: str
    values: list[Path] = field(default_factory=lambda: [LOCAL, NODE_VALUES])
    jobs: Recorder | None = None
    failed: list[str] = field(default_factory=list)
    # the chart: this checkout's charts/matomo, or e.g. `oci://host/owner/charts/matomo` (with
    # chart_args such as `--version 0.1.0 --plain-http`, given to install and upgrade)
    chart: str = str(CHART)
    chart_args: list[str] = field(default_factory=list)
    # what its starter raised (see Prestarted), re-raised by started()
    start_error: BaseException | None = None

    def started(self) -> Release:
        """This release, once its starter finished; its starter's error, if any, raised here."""
        if self.start_error is not None:
            raise self.start_error
        return self

    def end_step(self) -> None:
        """End of a step (a hook for checks every step shares; none today)."""

    # ----------------------------------------------------------- helm
    def _args(self, *extra: str) -> list[str]:
        args = ["-n", self.namespace]
        for v in self.values:
            args += ["-f", str(v)]
        return [*args, *extra]

    def install(self, *extra: str, wait: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["install", F, self.chart, *self.chart_args, *self._args(*extra)]
        if wait:
            args += ["--wait", "--timeout", TIMEOUT]
        return self.run_helm(*args)

    def upgrade(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run_helm("upgrade", F, self.chart, *self.chart_args, *self._args(*extra), "--wait", "--timeout",
                             TIMEOUT)

    def run_helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            return self.helm.run(*args, check=check, timeout=1200)
        except HelmError as e:
            raise HelmError(f"{e}\n{self.diagnose()}") from None

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.helm.run("status", F, "-n", self.namespace, "-o", "json").stdout))

    # ------------------------------------------------------- objects
    def get(self, path: str) -> Any:
        return self.node.cp.get(path)

    def deployment(self) -> dict[str, Any]:
        return dict(self.get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{F}"))

    def pods(self, component: str | None = None) -> list[dict[str, Any]]:
        sel = {"labelSelector": f"app.kubernetes.io/component={component}"} if component else None
        return list(self.node.cp.get(f"/api/v1/namespaces/{self.namespace}/pods", params=sel)["items"])

    def serving_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.pods("matomo") if not p["metadata"].get("deletionTimestamp")
                and p["status"].get("phase") == "Running"]

    def secret(self, name: str, key: str) -> str:
        data = self.get(f"/api/v1/namespaces/{self.namespace}/secrets/{name}")["data"]
        return base64.b64decode(data[key]).decode()

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.node.cp.kubectl("-n", self.namespace, *args, check=check)

    def timeline(self) -> Timeline:
        """A recorder of this release's pods and Jobs (tests/node/timeline.py), not started yet (`with`),
        running kubectl as `kubectl()` does: the node's kubectl and admin kubeconfig."""
        kubectl = find_binary("kubectl")
        if not kubectl:
            raise ControlPlaneError("kubectl not found")
        return Timeline([kubectl, "--kubeconfig", str(self.node.cp.kubeconfig)], self.namespace)

    def hook_jobs(self) -> list[list[dict[str, Any]]]:
        assert self.jobs is not None
        return self.jobs.named(HOOK)

    def available(self) -> bool:
        return deployment_available(self.node.cp, self.namespace, F)

    def diagnose(self) -> str:
        """What a user would look at when something did not work: pods, events, hook logs."""
        out = [self.node.health.recent()] if self.node.health else []
        for args in (["get", "pods,jobs,pvc", "-o", "wide"],
                     ["get", "events", "--sort-by=.lastTimestamp"],
                     ["logs", "-l", f"job-name={HOOK}", "--all-containers", "--prefix", "--tail=40",
                      "--max-log-requests=12"]):
            p = self.kubectl(*args, check=False)
            out.append(f"$ kubectl {' '.join(args)}\n{p.stdout[-6000:]}{p.stderr[-2000:]}")
        return "\n".join(out)

    # -------------------------------------------------------- Matomo
    def matomo(self) -> Matomo:
        """Matomo through its Service, once the Service answers: `helm --wait` and the Deployment's status
        do not wait for kube-proxy, whose rules follow the EndpointSlice a moment later (until then a
        ClusterIP without a ready endpoint refuses connections)."""
        m = Matomo(self.node, self.node.service_ip(self.namespace, F), 80)
        wait_until(lambda: m.request("GET", "/robots.txt").status > 0, 60, f"the Service {F} answering")
        return m

    def db_query(self, sql: str) -> str:
        """A query in the embedded MariaDB, as root, the password read inside the pod."""
        p = self.kubectl("exec", f"{F}-mariadb-0", "-c", "mariadb", "--", "sh", "-c",
                         f'mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" matomo -N -B -e "{sql}"')
        return p.stdout.strip()

    def version_core(self) -> str:
        return self.db_query("SELECT option_value FROM matomo_option WHERE option_name='version_core'")

    def serving_images(self) -> set[str]:
        return {c["image"] for p in self.serving_pods() for c in p["spec"]["containers"]}

    def track_stored(self, m: Matomo, url: str, timeout: float = 30) -> str:
        """The first pageview of `url` through the Service; Live.getLastVisitsDetails must show it."""
        r = m.track(url)
        assert r.status in (200, 204), f"tracker answered {r.status}: {r.text[:300]}"
        if not m.token:
            m.login_token(self.helm_login, self.secret(f"{F}-superuser", "password"))
        wait_until(lambda: m.visits_with(url), timeout, f"the visit of {url} in Live.getLastVisitsDetails")
        return url

    helm_login: str = "admin"


def _time(stamp: str) -> float:
    from datetime import datetime, timezone

    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def assert_hook_pod_stopped_at_once(rel: Release, limit_s: float = 10) -> float:
    """The hook Job's pods as a user sees them after the Job completed: no container ended by SIGKILL (137:
    the kubelet's kill after the grace period, e.g. a sidecar that ignored its image's stop signal), and the
    Job complete within `limit_s` of its `hook` container's exit. Returns those seconds."""
    job = rel.get(f"/apis/batch/v1/namespaces/{rel.namespace}/jobs/{HOOK}")
    done = (job.get("status") or {}).get("completionTime")
    assert done, f"the hook Job has not completed:\n{rel.diagnose()}"
    pods = rel.get(f"/api/v1/namespaces/{rel.namespace}/pods?labelSelector=job-name%3D{HOOK}")["items"]
    assert pods, "the hook Job's pods are gone"
    killed, hook_exit = [], None
    for pod in pods:
        st = pod.get("status") or {}
        for c in st.get("initContainerStatuses", []) + st.get("containerStatuses", []):
            term = (c.get("state") or {}).get("terminated") or {}
            if term.get("exitCode") == 137:
                killed.append(f"{pod['metadata']['name']}/{c['name']} ({term.get('reason')})")
            if c["name"] == "hook" and term.get("exitCode") == 0:
                hook_exit = term["finishedAt"]
    assert not killed, f"hook pod containers killed with exit 137: {killed}"
    assert hook_exit, "no hook container exited 0"
    seconds = _time(done) - _time(hook_exit)
    assert seconds <= limit_s, f"the Job completed {seconds:.0f} s after the hook container exited (limit {limit_s:g})"
    return seconds


CODE = "/usr/src/matomo"
# where Matomo wrote its files once it served and tracked (PIWIK_USER_PATH, files/bootstrap.php)
USER_PATH = "/var/lib/matomo"


def assert_code_is_the_image_read_only(rel: Release, pod: dict[str, Any], container: str = "matomo") -> float:
    """A serving pod's Matomo container runs the code where the image has it: /usr/src/matomo is no
    mount (only bootstrap.php is mounted into it), on the read-only root file system, so nothing can
    write there; no volume of the container holds a copy of the code (no core/Version.php in any of
    them); Matomo's config and caches are in its emptyDir at /var/lib/matomo. Returns the KiB its
    writable volumes hold."""
    name = pod["metadata"]["name"]
    script = (
        f"cat /proc/self/mountinfo; echo ===; "
        f"if touch {CODE}/index.php 2>/dev/null || mkdir {CODE}/tmp/probe 2>/dev/null; then echo WRITABLE; "
        f"else echo read-only; fi; echo ===; "
        f"ls {USER_PATH}/config {USER_PATH}/tmp; echo ==="
    )
    out = rel.kubectl("exec", name, "-c", container, "--", "sh", "-c", script).stdout
    mountinfo, writable, listing, _ = out.split("===")
    mounts = {line.split()[4]: line.split(" - ")[1].split()[0] for line in mountinfo.strip().splitlines()}
    inside = sorted(m for m in mounts if m == CODE or m.startswith(CODE + "/"))
    assert inside == [f"{CODE}/bootstrap.php"], f"{name}/{container}: mounts at the code: {inside}"
    assert mounts["/"] == "overlay", f"{name}/{container}: the root is {mounts['/']}, not the image's overlay"
    assert writable.strip() == "read-only", f"{name}/{container}: the code at {CODE} can be written"
    assert "config.ini.php" in listing and "common.config.ini.php" in listing, listing
    # the container's own volumes (not the kubelet's /etc/hosts and the like, nor the read-only Secret files)
    volumes = [m for m, fs in mounts.items() if m.startswith(("/var/", "/tmp", "/run/"))
               and fs not in ("proc", "sysfs", "cgroup", "mqueue", "devpts")
               and not m.startswith("/var/run/secrets") and not m.endswith(".php")]
    copies = rel.kubectl("exec", name, "-c", container, "--", "sh", "-c",
                         "find " + " ".join(volumes) + " -name Version.php -path '*/core/*' | head -5; echo ===; "
                         "du -sk " + " ".join(volumes), check=False).stdout
    found, sizes = copies.split("===")
    assert not found.strip(), f"{name}/{container}: a copy of Matomo's code in a volume: {found.strip()}"
    return float(sum(int(line.split()[0]) for line in sizes.strip().splitlines()))


def hook_job_duration(versions: list[dict[str, Any]]) -> float | None:
    """Seconds from the Job's start to its completion, from the recorded versions."""
    from datetime import datetime

    for job in reversed(versions):
        st = job.get("status") or {}
        if st.get("startTime") and st.get("completionTime"):
            fmt = "%Y-%m-%dT%H:%M:%SZ"
            return (datetime.strptime(st["completionTime"], fmt) - datetime.strptime(st["startTime"], fmt)).total_seconds()
    return None


@dataclass
class Matomo:
    """Matomo through its Service (a ClusterIP inside the node's namespace), as a user's browser or script would."""

    node: Node
    host: str
    port: int
    host_header: str = "127.0.0.1:8080"  # values/local.yaml matomo.url
    token: str = ""

    def request(self, method: str, path: str, params: dict[str, str] | None = None,
                form: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Response:
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        hdrs = {"Host": self.host_header, "User-Agent": UA, **(headers or {})}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        return self.node.http(method, self.host, self.port, path, body=body, headers=hdrs)

    def api(self, method: str, **params: str) -> Any:
        """A Reporting API call with the token (POST, as Matomo 5 wants for token_auth)."""
        form = {"module": "API", "method": method, "format": "json", **params}
        if self.token:
            form["token_auth"] = self.token
        r = self.request("POST", "/index.php", form=form)
        if r.status != 200:
            raise AssertionError(f"API {method}: HTTP {r.status}: {r.text[:500]}")
        data = r.json()
        if isinstance(data, dict) and data.get("result") == "error":
            raise AssertionError(f"API {method}: {data.get('message')}")
        return data

    def login_token(self, login: str, password: str) -> str:
        """An app-specific token, made with the superuser's login and password (no session)."""
        self.token = ""
        data = self.api("UsersManager.createAppSpecificTokenAuth", userLogin=login, passwordConfirmation=password,
                        description=f"node-test-{secrets.token_hex(4)}")
        self.token = str(data["value"])
        return self.token

    def track(self, url: str, visitor: str | None = None) -> Response:
        """One pageview as the JavaScript tracker would send it."""
        return self.request("GET", "/matomo.php", params={
            "idsite": "1", "rec": "1", "url": url, "action_name": "node test",
            "_id": visitor or secrets.token_hex(8), "send_image": "0", "rand": secrets.token_hex(4)})

    def visits_with(self, url: str) -> list[dict[str, Any]]:
        visits = self.api("Live.getLastVisitsDetails", idSite="1", period="day", date="today",
                          filter_limit="100")
        return [v for v in visits if any(a.get("url") == url for a in v.get("actionDetails") or [])]


class ServicePoller:
    """GETs `path` through the Service every `interval` seconds in a thread while in the `with` block, as a
    visitor's browser would during a rollout, and keeps every answer that was not a 200."""

    def __init__(self, m: Matomo, path: str = "/matomo.js", interval: float = 0.1) -> None:
        self.m = m
        self.path = path
        self.interval = interval
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service-poller", daemon=True)

    def __enter__(self) -> ServicePoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.strftime("%H:%M:%S", time.gmtime())
            try:
                r = self.m.request("GET", self.path)
                if r.status != 200:
                    self.failures.append(f"{at} HTTP {r.status}")
            except Exception as e:  # noqa: BLE001 - what a visitor would have seen, counted
                self.failures.append(f"{at} {type(e).__name__}: {e}")
            self.sent += 1
            self._stop.wait(self.interval)


# On the real node: once a second, and any exception (a pod not there yet, a refused connection) is "not yet".
wait_until = functools.partial(basics.wait_until, interval=1.0)


def steps_of(rel: Release, request: Any, prerequisites: set[str] | None = None) -> Iterator[Release]:
    """For a module's `step` fixture: skips a step once an earlier one failed (a failing step stops the
    later ones only when it is one of `prerequisites`, when given); the call report is tests/conftest.py's."""
    if rel.failed:
        pytest.skip(f"an earlier step failed: {rel.failed[0]}")
    yield rel
    rep = getattr(request.node, "rep_call", None)
    if (rep is None or rep.failed) and (prerequisites is None or request.node.name in prerequisites):
        rel.failed.append(request.node.name)


def succeeded(versions: list[dict[str, Any]]) -> bool:
    return job_succeeded(versions)


# ------------------------------------------------------ installs started early
# A release's install is mostly waiting (pods scheduled, images unpacked, the
# code copied, probes, the hook Job): the independent scenarios start in
# background threads as soon as the node is up, while the tests run one after
# the other, and each test then takes its own release, installed or failed.
@dataclass
class Context:
    """What a starter gets: the node, helm, and the namespace factory of tests/node/conftest.py."""

    node: Node
    helm: Helm
    namespaces: Callable[..., str]


Starter = Callable[[Context, Release], None]
STARTERS: dict[str, tuple[str, Starter]] = {}


def prestart(test_name: str, prefix: str) -> Callable[[Starter], Starter]:
    """Registers `fn(ctx, release)` as what `test_name` needs first, in a fresh namespace `prefix-N`;
    started early when that test is selected."""

    def register(fn: Starter) -> Starter:
        STARTERS[test_name] = (prefix, fn)
        return fn

    return register


def run_starter(ctx: Context, test_name: str) -> Release:
    """A fresh release in its own namespace, given to the test's starter; what it raises is kept."""
    prefix, fn = STARTERS[test_name]
    ns = ctx.namespaces(prefix)
    rel = Release(ctx.node, ctx.helm, ns)
    rel.jobs = Recorder(ctx.node.cp, f"/apis/batch/v1/namespaces/{ns}/jobs").start()
    try:
        fn(ctx, rel)
    except BaseException as e:  # noqa: BLE001 - re-raised by Release.started() in the test
        rel.start_error = e
    return rel


class Prestarted:
    """The starters of the selected tests, run by a small pool of threads."""

    def __init__(self, ctx: Context, selected: set[str], workers: int) -> None:
        """workers 0: nothing in the background, each starter runs when its test asks for it."""
        self.ctx = ctx
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prestart")
        self.futures: dict[str, Future[Release]] = {
            name: self.pool.submit(run_starter, ctx, name) for name in STARTERS if name in selected and workers}
        # releases a test took and no module keeps: removed when that test ends
        self.handed: list[Release] = []
        self.removals = ThreadPoolExecutor(max_workers=1, thread_name_prefix="remove")
        self.removing: list[Future[None]] = []

    def release(self, test_name: str) -> Release:
        """The release `test_name` starts from, once its starter finished (see Release.started)."""
        future = self.futures.get(test_name)
        rel = run_starter(self.ctx, test_name) if future is None else future.result(timeout=1800)
        self.handed.append(rel)
        return rel

    def kept(self, test_name: str) -> Iterator[Release]:
        """For a module fixture: the release of `test_name` for the module's steps, removed after them."""
        rel = self.release(test_name)
        self.handed.remove(rel)
        yield rel
        self.remove(rel)

    def test_done(self) -> None:
        """After each test: the releases it took go (tests/node/conftest.py)."""
        while self.handed:
            self.remove(self.handed.pop())

    def remove(self, rel: Release) -> None:
        """Deletes the release's namespace in the background, as a user would once done with it: its pods,
        their code copies and the archiver's runs stop taking the node's disk and CPUs from the next tests."""
        if rel.jobs:
            rel.jobs.stop()
        if os.environ.get("MATOMO_NODE_KEEP_RELEASES") != "1":
            self.removing.append(self.removals.submit(self._delete_namespace, rel.namespace))

    def _delete_namespace(self, namespace: str) -> None:
        self.ctx.node.cp.delete_namespace(namespace, wait=True, timeout=300)
        self.ctx.node.recycle_volumes()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.removals.shutdown(wait=True)
        for f in self.removing:
            f.result()  # a namespace that would not go is a finding too
