"""`matomo-hook roll` faults against the real control plane (tests/harness/controlplane.py):
a Deployment that never becomes available, a missing Deployment, a token that
lacks the rights, and two Deployments rolled together (the chart's F and
F-tracker). Each uses the hook's own ServiceAccount token, with a Role like
the chart's (get/patch on the named Deployments)."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.controlplane import ControlPlane, find_binary

from .faultlib import EXIT_OK, EXIT_ROLLOUT, errors_of, run

_ids = itertools.count()
CONTAINER = {
    "name": "matomo",
    "image": "registry.invalid/none:1",
    "securityContext": {
        "allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 1000,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def cp(request: pytest.FixtureRequest) -> ControlPlane:
    if not find_binary("kube-apiserver") or not find_binary("etcd"):
        pytest.skip("control-plane binaries not built (./dev tools runs tools/install-k8s.sh)")
    return request.getfixturevalue("controlplane")  # type: ignore[no-any-return]


def deployment(name: str, node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {"containers": [CONTAINER]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": spec}},
    }  # fmt: skip


class Cluster:
    def __init__(self, cp: ControlPlane, tmp: Path) -> None:
        self.cp, self.tmp = cp, tmp
        self.ns = f"faults-roll-{os.getpid()}-{next(_ids)}"
        cp.create_namespace(self.ns)
        base = f"/apis/apps/v1/namespaces/{self.ns}/deployments"
        cp.request("POST", base, deployment("matomo"))
        cp.request("POST", base, deployment("tracker"))  # the chart's F-tracker (tracker.enabled)
        # never schedulable: no node has this label, so no replica ever becomes available
        cp.request("POST", base, deployment("stuck", {"faults.invalid/never": "true"}))
        for sa in ("hook", "nobody"):
            cp.request("POST", f"/api/v1/namespaces/{self.ns}/serviceaccounts",
                       {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}})  # fmt: skip
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{self.ns}"
        cp.request("POST", f"{rbac}/roles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "hook"},
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"],
                       "resourceNames": ["matomo", "tracker", "stuck", "absent"], "verbs": ["get", "patch"]}],
        })  # fmt: skip
        cp.request("POST", f"{rbac}/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "hook"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hook"},
            "subjects": [{"kind": "ServiceAccount", "name": "hook", "namespace": self.ns}],
        })  # fmt: skip
        self.tokens = {sa: cp.create_token(self.ns, sa) for sa in ("hook", "nobody")}

    def env(self, sa: str, deployment_name: str, timeout: str = "6") -> dict[str, str]:
        kubeconfig = self.cp.kubeconfig_for_token(self.tokens[sa], self.tmp / f"kc-{sa}", self.ns)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MATOMO_", "KUBE"))}
        env.update(
            KUBECONFIG=str(kubeconfig), MATOMO_HOOK_NAMESPACE=self.ns,
            MATOMO_HOOK_DEPLOYMENT=deployment_name, MATOMO_HOOK_ROLLOUT_TIMEOUT=timeout,
        )  # fmt: skip
        return env

    def get(self, name: str) -> dict[str, Any]:
        return self.cp.get(f"/apis/apps/v1/namespaces/{self.ns}/deployments/{name}")  # type: ignore[no-any-return]

    def wait_available(self, name: str, timeout: float = 60) -> None:
        self.cp.wait_for(lambda: self.get(name).get("status", {}).get("availableReplicas") == 1,
                         timeout, f"{name} available")


@pytest.fixture(scope="module")
def cluster(cp: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(cp, tmp_path_factory.mktemp("roll"))
    c.wait_available("matomo")
    c.wait_available("tracker")
    try:
        yield c
    finally:
        cp.delete_namespace(c.ns)


def restarted_at(dep: dict[str, Any]) -> str | None:
    ann = dep["spec"]["template"].get("metadata", {}).get("annotations") or {}
    return ann.get("kubectl.kubernetes.io/restartedAt")


def assert_no_token(cluster: Cluster, *texts: str) -> None:
    for token in cluster.tokens.values():
        for text in texts:
            assert token not in text


def test_roll_available_baseline(cluster: Cluster) -> None:
    """before: Deployment available. fault: none. after: restarted, rollout
    complete, exit 0 (the baseline the cases below differ from)."""
    res = run(cluster.env("hook", "matomo", timeout="60"), "roll")
    assert res.returncode == EXIT_OK, res.stderr
    assert restarted_at(cluster.get("matomo"))
    assert_no_token(cluster, res.stdout, res.stderr)


def test_roll_never_available(cluster: Cluster) -> None:
    """before: a Deployment whose pods can never be scheduled. fault: roll with
    MATOMO_HOOK_ROLLOUT_TIMEOUT=6. after: exit 5 at the deadline with a message
    naming the Deployment, the deadline and what it waited for."""
    t0 = time.monotonic()
    res = run(cluster.env("hook", "stuck"), "roll")
    took = time.monotonic() - t0
    assert res.returncode == EXIT_ROLLOUT, res.stderr
    assert 5.5 <= took < 30, took
    message = " ".join(errors_of(res))
    assert "stuck" in message and "MATOMO_HOOK_ROLLOUT_TIMEOUT" in message, message
    assert restarted_at(cluster.get("stuck"))  # it did restart; the rollout never completed
    assert_no_token(cluster, res.stdout, res.stderr)


def test_roll_missing_deployment(cluster: Cluster) -> None:
    """before: no Deployment `absent`. fault: roll it. after: exit 5 at once,
    message naming it and the 404; nothing created."""
    t0 = time.monotonic()
    res = run(cluster.env("hook", "absent"), "roll")
    assert res.returncode == EXIT_ROLLOUT, res.stderr
    assert time.monotonic() - t0 < 5
    message = " ".join(errors_of(res))
    assert "absent" in message and "404" in message, message
    assert not cluster.cp.exists(f"/apis/apps/v1/namespaces/{cluster.ns}/deployments/absent")
    assert_no_token(cluster, res.stdout, res.stderr)


def test_roll_token_without_rights(cluster: Cluster) -> None:
    """before: Deployment available, a ServiceAccount with no Role. fault: roll
    with its token. after: exit 5 at once, message with the 403 and a hint at
    the Role; the Deployment's template untouched."""
    before = cluster.get("matomo")["spec"]["template"]
    t0 = time.monotonic()
    res = run(cluster.env("nobody", "matomo"), "roll")
    assert res.returncode == EXIT_ROLLOUT, res.stderr
    assert time.monotonic() - t0 < 5
    message = " ".join(errors_of(res))
    assert "403" in message and "Role" in message, message
    assert cluster.get("matomo")["spec"]["template"] == before
    assert_no_token(cluster, res.stdout, res.stderr)


def test_roll_serving_and_tracker_deployments(cluster: Cluster) -> None:
    """before: the serving and the tracker Deployments available. fault: none;
    roll both as the chart's hook does with tracker.enabled
    (MATOMO_HOOK_DEPLOYMENT=F,F-tracker). after: both restarted with the same
    stamp, both rollouts complete, exit 0."""
    res = run(cluster.env("hook", "matomo,tracker", timeout="60"), "roll")
    assert res.returncode == EXIT_OK, res.stderr
    stamps = {restarted_at(cluster.get(n)) for n in ("matomo", "tracker")}
    assert len(stamps) == 1 and None not in stamps, stamps
    done = [e for e in res.events() if e.get("event") == "rollout_complete"]
    assert sorted(e["deployment"] for e in done) == ["matomo", "tracker"]
    assert_no_token(cluster, res.stdout, res.stderr)


def test_roll_tracker_that_never_becomes_available(cluster: Cluster) -> None:
    """before: the serving Deployment available, a second one that can never be
    scheduled. fault: roll both with MATOMO_HOOK_ROLLOUT_TIMEOUT=6. after: both
    restarted, exit 5 at the deadline naming the one that never completed (not
    the serving one, which did)."""
    t0 = time.monotonic()
    res = run(cluster.env("hook", "matomo,stuck"), "roll")
    took = time.monotonic() - t0
    assert res.returncode == EXIT_ROLLOUT, res.stderr
    assert 5.5 <= took < 30, took
    message = " ".join(errors_of(res))
    assert "stuck" in message and "MATOMO_HOOK_ROLLOUT_TIMEOUT" in message, message
    assert f"{cluster.ns}/matomo" not in message, message
    assert restarted_at(cluster.get("matomo")) and restarted_at(cluster.get("stuck"))
    assert_no_token(cluster, res.stdout, res.stderr)
