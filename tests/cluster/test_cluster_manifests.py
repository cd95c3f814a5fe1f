"""Every rendered object of every values file, through the real API server.

- `helm install --dry-run=server` works for every values file;
- every object `helm template` renders (hooks and test pods included) is
  accepted by a server-side dry-run create with `fieldValidation=Strict`
  (unknown or duplicate field, wrong type: the test names object and field);
- every pod template passes the PodSecurity level claimed for its component.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.helm import CHART, POD_SECURITY, REPO, Helm, split_manifests

from harness.controlplane import ApiError, ControlPlane

VALUE_FILES = sorted(
    [*(REPO / "values").glob("*.yaml"), *(CHART / "ci").glob("*.yaml")],
    key=lambda p: str(p),
)
IDS = [str(p.relative_to(REPO)) for p in VALUE_FILES]
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}

if not VALUE_FILES:  # collected before the chart exists: say so instead of silently passing
    VALUE_FILES, IDS = [Path("values/missing.yaml")], ["no-values-files-yet"]


def _require(values: Path) -> None:
    if not values.is_file():
        pytest.skip(f"{values} does not exist yet")


def _render(helm: Helm, values: Path, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for doc in split_manifests(helm.template(values, namespace)):
        obj = yaml.safe_load(doc)
        if obj:
            out.append((doc, obj))
    return out


def _ident(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


@pytest.mark.parametrize("values", VALUE_FILES, ids=IDS)
def test_install_dry_run_server(helm: Helm, namespaces: Callable[..., str], values: Path) -> None:
    _require(values)
    ns = namespaces("dryrun", "restricted")
    helm.install(ns, values, "--dry-run=server", wait=False)


@pytest.mark.parametrize("values", VALUE_FILES, ids=IDS)
def test_rendered_objects_validate_strictly(helm: Helm, controlplane: ControlPlane,
                                             namespaces: Callable[..., str], values: Path) -> None:
    _require(values)
    # privileged: this test is about the schema; PodSecurity has its own test below
    ns = namespaces("strict", "privileged")
    objects = _render(helm, values, ns)
    assert objects, f"helm template rendered nothing for {values}"
    failures = []
    # ServiceAccounts for real first: the ServiceAccount admission rejects pods (helm test) without them
    for doc, obj in sorted(objects, key=lambda o: o[1].get("kind") != "ServiceAccount"):
        kind = obj.get("kind")
        params = {"fieldValidation": "Strict"}
        if kind != "ServiceAccount":
            params["dryRun"] = "All"
        try:
            path = controlplane.collection_path(obj["apiVersion"], kind, obj.get("metadata", {}).get("namespace") or ns)
            controlplane.request("POST", path, doc, params=params, content_type="application/yaml")
        except ApiError as e:
            failures.append(f"{_ident(obj)}: {e.message}")
        except Exception as e:  # unknown kind/apiVersion, malformed document
            failures.append(f"{_ident(obj)}: {e}")
    assert not failures, "objects rejected by the API server (strict field validation):\n" + "\n".join(failures)


def _pod_templates(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return {"metadata": obj.get("metadata", {}), "spec": obj["spec"]}
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"])
    if kind in WORKLOADS:
        return dict(obj["spec"]["template"])
    return None


@pytest.mark.parametrize("values", VALUE_FILES, ids=IDS)
def test_pod_security_levels(helm: Helm, controlplane: ControlPlane, namespaces: Callable[..., str],
                             values: Path) -> None:
    """Each pod template, as a Pod, is admitted by a namespace enforcing its component's level."""
    _require(values)
    level_ns: dict[str, str] = {}
    failures = []
    objects = _render(helm, values, "pss")
    for _, obj in objects:
        tpl = _pod_templates(obj)
        if tpl is None:
            continue
        labels = (tpl.get("metadata") or {}).get("labels") or obj.get("metadata", {}).get("labels") or {}
        component = labels.get("app.kubernetes.io/component", "")
        level = POD_SECURITY.get(component, "restricted")
        if level not in level_ns:
            level_ns[level] = namespaces(f"pss-{level}", level)
        ns = level_ns[level]
        spec = dict(tpl["spec"])
        spec.pop("serviceAccountName", None)  # the ServiceAccount admission is not what we test here
        spec["automountServiceAccountToken"] = False
        if obj.get("kind") == "StatefulSet":  # claims become volumes (any PVC is allowed by every level)
            claims = [{"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
                      for c in obj["spec"].get("volumeClaimTemplates") or []]
            spec["volumes"] = [*(spec.get("volumes") or []), *claims]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pss-check"}, "spec": spec}
        try:
            controlplane.request("POST", f"/api/v1/namespaces/{ns}/pods", pod, params={"dryRun": "All"})
        except ApiError as e:
            failures.append(f"{_ident(obj)} (component {component or '?'}, level {level}): {e.message}")
    assert not failures, "pods that violate the PodSecurity level claimed for them:\n" + "\n".join(failures)


def test_strict_validation_catches_unknown_and_duplicate_fields(controlplane: ControlPlane,
                                                                namespaces: Callable[..., str]) -> None:
    """The check above is not vacuous: the server names the bad field."""
    ns = namespaces("strict-self", "privileged")
    doc = """apiVersion: v1
kind: ConfigMap
metadata:
  name: bad
  labelz: {a: b}
data:
  a: "1"
  a: "2"
"""
    with pytest.raises(ApiError) as err:
        controlplane.request("POST", f"/api/v1/namespaces/{ns}/configmaps", doc,
                             params={"dryRun": "All", "fieldValidation": "Strict"}, content_type="application/yaml")
    assert 'unknown field "metadata.labelz"' in err.value.message, err.value.message
    assert 'key "a" already set' in err.value.message, err.value.message
