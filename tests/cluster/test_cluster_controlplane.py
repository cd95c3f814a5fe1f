"""The control plane itself: what the chart tests rely on."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest
from harness.helm import job_succeeded, recording, wait_until

from harness.controlplane import ApiError, ControlPlane, running_controlplane

RESTRICTED_CONTAINER = {
    "image": "registry.invalid/none:1",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def test_version_and_rbac(controlplane: ControlPlane) -> None:
    v = controlplane.get("/version")
    major, minor = int(v["major"]), int(v["minor"].rstrip("+"))
    assert (major, minor) >= (1, 31), v
    # a ServiceAccount without bindings can do nothing: RBAC is on
    ns = "cp-rbac"
    controlplane.create_namespace(ns)
    try:
        controlplane.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                             {"metadata": {"name": "nobody"}})
        token = controlplane.create_token(ns, "nobody")
        assert not controlplane.can_i(token, "list", "pods", namespace=ns)
        assert controlplane.can_i(controlplane.admin_token, "list", "pods", namespace=ns)
    finally:
        controlplane.delete_namespace(ns)


def test_podsecurity_enforced(controlplane: ControlPlane, namespaces: Callable[..., str]) -> None:
    ns = namespaces("cp-pss", "restricted")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
           "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]}}
    with pytest.raises(ApiError) as err:
        controlplane.request("POST", f"/api/v1/namespaces/{ns}/pods", pod, params={"dryRun": "All"})
    assert err.value.status == 403 and "violates PodSecurity" in err.value.message
    ok = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "good"},
          "spec": {"containers": [{"name": "c", **RESTRICTED_CONTAINER}]}}
    controlplane.request("POST", f"/api/v1/namespaces/{ns}/pods", ok, params={"dryRun": "All"})


def test_deployment_becomes_available(controlplane: ControlPlane, namespaces: Callable[..., str]) -> None:
    ns = namespaces("cp-deploy", "restricted")
    labels = {"app": "web"}
    controlplane.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"initContainers": [{"name": "sidecar", "restartPolicy": "Always",
                                                           **RESTRICTED_CONTAINER}],
                                       "containers": [{"name": "c", **RESTRICTED_CONTAINER}]}}},
    })

    def available() -> bool:
        d = controlplane.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
        return d.get("status", {}).get("availableReplicas") == 2

    wait_until(available, 60, "deployment web available")


def test_pod_marked_not_ready_is_ready_again(controlplane: ControlPlane, namespaces: Callable[..., str]) -> None:
    """What the node lifecycle controller writes when kwok's Lease lapsed (a busy machine stalled kwok for
    its 50 s grace period): each pod's Ready condition False, its containers still ready. Once the node is
    back the Deployment is available again, as with a kubelet; before tests/harness/kwok/pod-ready-again.yaml
    it stayed unavailable for good, and a test waiting on it timed out."""
    ns = namespaces("cp-again", "restricted")
    labels = {"app": "web"}
    deployment = f"/apis/apps/v1/namespaces/{ns}/deployments/web"
    controlplane.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c",
                                                                                      **RESTRICTED_CONTAINER}]}}},
    })

    def available() -> int:
        return int((controlplane.get(deployment).get("status") or {}).get("availableReplicas") or 0)

    wait_until(lambda: available() == 1, 60, "deployment web available")
    pod = controlplane.get(f"/api/v1/namespaces/{ns}/pods")["items"][0]
    conditions = [{**c, "status": "False"} if c["type"] == "Ready" else c for c in pod["status"]["conditions"]]
    patched = controlplane.request("PATCH", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/status",
                                   {"status": {"conditions": conditions}},
                                   content_type="application/merge-patch+json")
    assert [c["status"] for c in patched["status"]["conditions"] if c["type"] == "Ready"] == ["False"]
    uid = pod["metadata"]["uid"]

    def ready_again() -> bool:
        p = controlplane.get(f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")
        return p["metadata"]["uid"] == uid and any(c["type"] == "Ready" and c["status"] == "True"
                                                   for c in p["status"]["conditions"])

    wait_until(ready_again, 60, "the same pod Ready again")
    wait_until(lambda: available() == 1, 60, "deployment web available again")


def test_job_with_native_sidecar_completes(controlplane: ControlPlane, namespaces: Callable[..., str]) -> None:
    ns = namespaces("cp-job", "restricted")
    with recording(controlplane, f"/apis/batch/v1/namespaces/{ns}/jobs") as rec:
        controlplane.request("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hook"},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "init", **RESTRICTED_CONTAINER},
                                   {"name": "sidecar", "restartPolicy": "Always", **RESTRICTED_CONTAINER}],
                "containers": [{"name": "main", **RESTRICTED_CONTAINER}]}}},
        })
        wait_until(lambda: any(job_succeeded(v) for v in rec.named("hook")), 60, "job hook complete")
    pods = controlplane.get(f"/api/v1/namespaces/{ns}/pods")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]


def test_second_controlplane_stops_cleanly(tmp_path: os.PathLike[str]) -> None:
    """Start/stop leaves no process and no listening port behind."""
    with running_controlplane() as cp:
        ports = dict(cp.ports)
        pids = [p.popen.pid for p in cp.processes]
        assert cp.started_in < 60
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    for name, port in ports.items():
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"{name} port {port} still open"
