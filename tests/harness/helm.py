"""Helm against any control plane of the harness (kwok's, the one podrun's pods talk to, the real node's).

The chart's names (``F``, ``RELEASE``, ``CHART``), the ``Helm`` wrapper, PodSecurity namespaces, what
the API server recorded, and when a Job or Deployment is done: shared by tests/cluster, tests/genuine and
tests/node.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import basics
from harness.controlplane import ApiError, ControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "matomo"
VALUES = {"local": REPO / "values" / "local.yaml", "prod": REPO / "values" / "prod.yaml"}
RELEASE = "matomo"  # contains "matomo", so F (matomo.fullname) == RELEASE
F = RELEASE
HELM_TIMEOUT = os.environ.get("CLUSTER_TEST_HELM_TIMEOUT", "5m")
# kwok runs no container: the pods of the Job F-secrets carry this annotation so
# that tests/harness/localexec.py runs `matomo-hook secrets` for them, as a
# local process with the pod's ServiceAccount token (the session fixture
# `local_exec` of conftest.py).
LOCAL_EXEC = ["--set-string", "hook.secrets.podAnnotations.matomo-k8s\\.test/exec=local"]

# The PodSecurity level each component's pods must pass (charts/matomo/README.md, "Security contexts").
POD_SECURITY = {
    "matomo": "restricted",
    "tracker": "restricted",
    "hook": "restricted",
    "archiver": "restricted",
    "database": os.environ.get("CLUSTER_TEST_DB_PSS", "restricted"),
    "test": "restricted",
}
# the namespace enforces the strictest level every component of a values file claims
NAMESPACE_LEVEL = {"local": POD_SECURITY["database"], "prod": "restricted"}

_counter = itertools.count()


class HelmError(AssertionError):
    pass


@dataclass
class Helm:
    binary: str
    cp: ControlPlane
    home: Path

    def env(self) -> dict[str, str]:
        env = self.cp.env()
        env.update(HELM_CACHE_HOME=str(self.home / "cache"), HELM_CONFIG_HOME=str(self.home / "config"),
                   HELM_DATA_HOME=str(self.home / "data"))
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *args], env=self.env(), text=True, capture_output=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout[-4000:]}")
        return proc

    def install(self, namespace: str, values: Path, *extra: str, wait: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["install", RELEASE, str(CHART), "-n", namespace, "-f", str(values), *LOCAL_EXEC, *extra]
        if wait:
            args += ["--wait", "--timeout", HELM_TIMEOUT]
        return self.run(*args)

    def upgrade(self, namespace: str, values: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("upgrade", RELEASE, str(CHART), "-n", namespace, "-f", str(values), *LOCAL_EXEC, "--wait",
                        "--timeout", HELM_TIMEOUT, *extra)

    def status(self, namespace: str) -> dict[str, Any]:
        return dict(json.loads(self.run("status", RELEASE, "-n", namespace, "-o", "json").stdout))

    @functools.cached_property
    def kube_version(self) -> str:
        """The API server's version (`helm template` renders for it), asked once."""
        return str(self.cp.get("/version")["gitVersion"]).split("-")[0]

    def template(self, values: Path, namespace: str, *extra: str) -> str:
        return self.run("template", RELEASE, str(CHART), "-n", namespace, "-f", str(values), *LOCAL_EXEC,
                        "--kube-version", self.kube_version, *extra).stdout


def pod_security_namespace(cp: ControlPlane, prefix: str, level: str = "restricted") -> str:
    """Creates `prefix-N`, enforcing (and auditing, warning about) PodSecurity `level`; returns its name."""
    name = f"{prefix}-{next(_counter)}"
    labels = {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")}
    labels.update({f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")})
    cp.create_namespace(name, labels)
    return name


@dataclass
class Recorder:
    """Watches objects of one kind in a namespace; keeps every version seen (survives hook deletion)."""

    cp: ControlPlane
    path: str  # collection path, e.g. /apis/batch/v1/namespaces/ns/jobs
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # uid -> versions
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> Recorder:
        rv = self._relist()
        self._thread = threading.Thread(target=self._run, args=(rv,), daemon=True)
        self._thread.start()
        return self

    def _relist(self) -> str:
        """Records the current version of every object (if not seen yet); returns the list's resourceVersion."""
        lst = self.cp.get(self.path)
        for obj in lst.get("items", []):
            versions = self.seen.get(obj["metadata"]["uid"])
            if not versions or versions[-1]["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._add(obj)
        return str(lst["metadata"]["resourceVersion"])

    def _add(self, obj: dict[str, Any]) -> None:
        self.seen.setdefault(obj["metadata"]["uid"], []).append(obj)

    def _run(self, rv: str) -> None:
        import urllib.request

        try:
            while not self._stop.is_set():
                url = f"{self.cp.server}{self.path}?watch=1&timeoutSeconds=2&allowWatchBookmarks=true&resourceVersion={rv}"
                req = urllib.request.Request(url)
                req.add_header("Authorization", f"Bearer {self.cp.admin_token}")
                with urllib.request.urlopen(req, context=self.cp._ssl(), timeout=30) as resp:
                    for line in resp:
                        ev = json.loads(line)
                        obj = ev["object"]
                        if ev["type"] == "ERROR" and obj.get("code") == 410:
                            # the watch window moved past rv (a long quiet spell): list
                            # again, as an informer does, and watch on from there
                            rv = self._relist()
                            break
                        if ev["type"] == "ERROR":
                            raise RuntimeError(f"watch {self.path}: {obj}")
                        rv = obj["metadata"].get("resourceVersion", rv)
                        if ev["type"] != "BOOKMARK":
                            self._add(obj)
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        if self.error:
            raise self.error

    def latest(self) -> list[dict[str, Any]]:
        return [versions[-1] for versions in self.seen.values()]

    def named(self, name: str) -> list[list[dict[str, Any]]]:
        """Every object (each a list of its versions) that had this name, oldest first."""
        if self.error:
            raise self.error
        objs = [v for v in self.seen.values() if v[0]["metadata"]["name"] == name]
        return sorted(objs, key=lambda v: v[0]["metadata"]["creationTimestamp"])


@contextlib.contextmanager
def recording(cp: ControlPlane, path: str) -> Iterator[Recorder]:
    rec = Recorder(cp, path).start()
    try:
        yield rec
    finally:
        rec.stop()


def job_succeeded(versions: list[dict[str, Any]]) -> bool:
    for job in versions:
        st = job.get("status") or {}
        if st.get("succeeded", 0) >= 1 or any(
            c["type"] == "Complete" and c["status"] == "True" for c in st.get("conditions") or []
        ):
            return True
    return False


# The API server answering an error counts as "not yet"; any other exception fails at once.
wait_until = functools.partial(basics.wait_until, retry=(ApiError,))


def deployment_available(cp: ControlPlane, namespace: str, name: str) -> bool:
    return deployment_is_available(cp.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"))


def deployment_is_available(d: dict[str, Any]) -> bool:
    """A Deployment object's rollout is complete: every replica updated and available, the spec observed."""
    st = d.get("status") or {}
    want = d["spec"].get("replicas", 1)
    return bool(
        st.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and st.get("updatedReplicas", 0) == want
        and st.get("availableReplicas", 0) == want
        and st.get("replicas", 0) == want
        and any(c["type"] == "Available" and c["status"] == "True" for c in st.get("conditions") or [])
    )


def secret_data(cp: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    return dict(cp.get(f"/api/v1/namespaces/{namespace}/secrets/{name}").get("data") or {})


def split_manifests(text: str) -> list[str]:
    """The YAML documents of a helm render, as text (comment-only documents dropped)."""
    docs = []
    for doc in text.split("\n---"):
        body = "\n".join(line for line in doc.splitlines() if line.strip() and not line.lstrip().startswith("#"))
        if body.strip():
            docs.append(doc.lstrip("-\n"))
    return docs


def leftover_objects(cp: ControlPlane, namespace: str) -> list[str]:
    """`Kind/name` of every object in the namespace except what Kubernetes itself puts there."""
    ignore_kinds = {"Event", "EndpointSlice", "Endpoints", "Lease"}
    out = []
    groups = [("v1", "/api/v1")] + [
        (v["groupVersion"], f"/apis/{v['groupVersion']}")
        for g in cp.get("/apis")["groups"] for v in [g["preferredVersion"]]
    ]
    for gv, base in groups:
        for r in cp.get(base)["resources"]:
            if "/" in r["name"] or not r["namespaced"] or "list" not in r["verbs"] or r["kind"] in ignore_kinds:
                continue
            try:
                items = cp.get(f"{base}/namespaces/{namespace}/{r['name']}")["items"]
            except ApiError:
                continue
            for it in items:
                name = it["metadata"]["name"]
                if r["kind"] == "ServiceAccount" and name == "default":
                    continue
                if r["kind"] == "ConfigMap" and name == "kube-root-ca.crt":
                    continue
                out.append(f"{r['kind']}/{name}")
    return sorted(set(out))
