"""GitOps flows against the real control plane: an Argo CD-style sync of a
`helm template` render, and plain `helm template | kubectl apply`.

Argo CD's Helm hook mapping (argo-cd docs, "Helm hooks"): pre-install and
pre-upgrade -> PreSync, post-install and post-upgrade -> PostSync,
helm.sh/hook-weight -> sync wave, hook-delete-policy before-hook-creation ->
BeforeHookCreation, hook-succeeded -> HookSucceeded (deleted once the phase
succeeded); test hooks are not run on sync.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from harness.helm import F, deployment_is_available, wait_until

from harness.controlplane import ApiError, ControlPlane

ARGO_PHASES = {"pre-install": "PreSync", "pre-upgrade": "PreSync",
               "post-install": "PostSync", "post-upgrade": "PostSync"}


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def argo_phases(text: str) -> dict[str, list[dict[str, Any]]]:
    phases: dict[str, list[dict[str, Any]]] = {"PreSync": [], "Sync": [], "PostSync": []}
    for doc in documents(text):
        hooks = [h.strip() for h in ((doc["metadata"].get("annotations") or {}).get("helm.sh/hook") or "").split(",")
                 if h.strip()]
        if not hooks:
            phases["Sync"].append(doc)
            continue
        for phase in sorted({ARGO_PHASES[h] for h in hooks if h in ARGO_PHASES}):
            phases[phase].append(doc)
    return phases


def _path(cp: ControlPlane, doc: dict[str, Any], namespace: str) -> str:
    return f"{cp.collection_path(doc['apiVersion'], doc['kind'], namespace)}/{doc['metadata']['name']}"


def apply(cp: ControlPlane, namespace: str, docs: list[dict[str, Any]], manager: str = "argocd-controller") -> None:
    if not docs:
        return
    text = "\n---\n".join(json.dumps(d) for d in docs)
    cp.kubectl("apply", "--server-side", f"--field-manager={manager}", "-n", namespace, "-f", "-", input=text)


def _job_done(cp: ControlPlane, path: str) -> bool:
    st = cp.get(path).get("status") or {}
    for c in st.get("conditions") or []:
        if c["type"] == "Failed" and c["status"] == "True":
            raise AssertionError(f"hook Job {path} failed: {c.get('message')}")
    return any(c["type"] == "Complete" and c["status"] == "True" for c in st.get("conditions") or [])


def _delete(cp: ControlPlane, path: str) -> None:
    try:
        cp.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"})
    except ApiError as e:
        if e.status != 404:
            raise
    wait_until(lambda: not cp.exists(path), 60, f"{path} deleted")


def run_hooks(cp: ControlPlane, namespace: str, hooks: list[dict[str, Any]]) -> None:
    """One hook phase: wave by wave (hook-weight), BeforeHookCreation first, wait for Jobs,
    then HookSucceeded deletions once the whole phase succeeded."""
    def weight(d: dict[str, Any]) -> int:
        return int((d["metadata"].get("annotations") or {}).get("helm.sh/hook-weight") or 0)

    def policy(d: dict[str, Any]) -> set[str]:
        raw = (d["metadata"].get("annotations") or {}).get("helm.sh/hook-delete-policy") or "before-hook-creation"
        return {p.strip() for p in raw.split(",")}

    for w in sorted({weight(d) for d in hooks}):
        wave = [d for d in hooks if weight(d) == w]
        for d in wave:
            if "before-hook-creation" in policy(d):
                _delete(cp, _path(cp, d, namespace))
        apply(cp, namespace, wave)
        for d in wave:
            if d["kind"] == "Job":
                path = _path(cp, d, namespace)
                wait_until(lambda p=path: _job_done(cp, p), 180, f"hook Job {d['metadata']['name']} complete")
    for d in hooks:
        if "hook-succeeded" in policy(d):
            _delete(cp, _path(cp, d, namespace))


def unhealthy(cp: ControlPlane, namespace: str, docs: list[dict[str, Any]]) -> list[str]:
    """What of the synced Deployments and StatefulSets is not yet available, one line each (empty: all are)."""
    problems = []
    for d in docs:
        name = d["metadata"]["name"]
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        live = cp.get(_path(cp, d, namespace))
        st = live.get("status") or {}
        if d["kind"] == "Deployment" and not deployment_is_available(live):
            problems.append(f"Deployment {name}: {st.get('availableReplicas', 0)} available of "
                            f"{d['spec'].get('replicas', 1)}, conditions {_conditions(st)}")
        if d["kind"] == "StatefulSet" and st.get("readyReplicas", 0) < d["spec"].get("replicas", 1):
            problems.append(f"StatefulSet {name}: {st.get('readyReplicas', 0)} ready of "
                            f"{d['spec'].get('replicas', 1)}")
    return problems


def _conditions(obj_status: dict[str, Any]) -> str:
    return ", ".join(f"{c['type']}={c['status']}" + (f" ({c['reason']}: {c.get('message', '')})" if c.get("reason")
                                                     else "")
                     for c in obj_status.get("conditions") or [])


def namespace_report(cp: ControlPlane, namespace: str) -> str:
    """The nodes (conditions, taints), the namespace's pods (phase, node, conditions), its last events and
    the control plane's last log lines, for a failure message."""
    lines = []
    for node in cp.get("/api/v1/nodes")["items"]:
        lines.append(f"node {node['metadata']['name']}: {_conditions(node.get('status') or {})}, taints "
                     f"{[t['key'] + ':' + t['effect'] for t in node['spec'].get('taints') or []]}")
    for pod in cp.get(f"/api/v1/namespaces/{namespace}/pods")["items"]:
        st = pod.get("status") or {}
        lines.append(f"pod {pod['metadata']['name']}: {st.get('phase')} on {pod['spec'].get('nodeName')}, "
                     f"{_conditions(st)}")
    events = cp.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    for e in events[-25:]:
        lines.append(f"event {e.get('lastTimestamp') or e.get('eventTime')} {e['involvedObject']['kind']}/"
                     f"{e['involvedObject']['name']} {e.get('reason')}: {e.get('message')} (x{e.get('count', 1)})")
    return "\n".join(lines) + "\n" + cp.logs(20)


def wait_healthy(cp: ControlPlane, namespace: str, docs: list[dict[str, Any]], timeout: float) -> None:
    if wait_until(lambda: not unhealthy(cp, namespace, docs), timeout, error=None, retry=(ApiError,)):
        return
    raise AssertionError(f"the synced objects are not healthy after {timeout}s: "
                         f"{'; '.join(unhealthy(cp, namespace, docs))}\n{namespace_report(cp, namespace)}")


def argo_sync(cp: ControlPlane, namespace: str, rendered: str) -> None:
    """PreSync hooks (wait), the rest (server-side apply, wait healthy), PostSync hooks (wait)."""
    phases = argo_phases(rendered)
    run_hooks(cp, namespace, phases["PreSync"])
    apply(cp, namespace, phases["Sync"])
    wait_healthy(cp, namespace, phases["Sync"], 180)
    run_hooks(cp, namespace, phases["PostSync"])


def secrets_state(cp: ControlPlane, namespace: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    """name -> (uid, resourceVersion, data) of every Secret in the namespace."""
    items = cp.get(f"/api/v1/namespaces/{namespace}/secrets")["items"]
    return {s["metadata"]["name"]: (s["metadata"]["uid"], s["metadata"]["resourceVersion"], dict(s.get("data") or {}))
            for s in items}


def generated_plan(rendered: str) -> dict[str, dict[str, int]]:
    """The Secrets the render's Job F-secrets creates: name -> {key: length}."""
    for d in documents(rendered):
        if d["kind"] == "Job" and d["metadata"]["name"] == f"{F}-secrets":
            env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
            return {s["name"]: s["keys"] for s in json.loads(env["MATOMO_HOOK_SECRETS"]["value"])["secrets"]}
    return {}
