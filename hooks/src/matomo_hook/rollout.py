"""Restarts the serving Deployment (and the tracker's) like ``kubectl rollout restart`` and waits
like ``kubectl rollout status``, with a deadline.

The kubernetes client comes through kube.py, only when ``roll`` runs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from . import kube, logs
from .config import Settings
from .errors import RolloutError

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def rollout_complete(dep: Any) -> tuple[bool, str]:
    """kubectl's DeploymentStatusViewer logic."""
    spec_replicas = dep.spec.replicas if dep.spec.replicas is not None else 1
    st = dep.status
    generation = dep.metadata.generation or 0
    observed = (st.observed_generation or 0) if st else 0
    if observed < generation:
        return False, "waiting for the controller to observe the new spec"
    for cond in (st.conditions or []) if st else []:
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            raise RolloutError(f"deployment {dep.metadata.name} exceeded its progress deadline")
    updated = (st.updated_replicas or 0) if st else 0
    replicas = (st.replicas or 0) if st else 0
    available = (st.available_replicas or 0) if st else 0
    if updated < spec_replicas:
        return False, f"{updated} of {spec_replicas} updated replicas"
    if replicas > updated:
        return False, f"{replicas - updated} old replicas pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, "complete"


def roll(settings: Settings, api: Any = None, poll: float = 1.0) -> None:
    """Restarts every Deployment of MATOMO_HOOK_DEPLOYMENT (the serving one, and
    the tracker's when the chart has one), all first, then waits for all of them
    within the one deadline: their rollouts run side by side."""
    names = settings.deployments or ((settings.deployment,) if settings.deployment else ())
    ns = settings.namespace
    assert names
    start = time.monotonic()
    apps = api if api is not None else kube.api("AppsV1Api", RolloutError)
    from_exc = (*kube.api_errors(), OSError)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    for name in names:
        try:
            apps.patch_namespaced_deployment(name, ns, body)
        except from_exc as exc:
            raise RolloutError(_describe(exc, f"patch deployment {ns}/{name}")) from None
        logs.event(
            "rollout_restarted", step="roll", deployment=name, namespace=ns, restarted_at=stamp
        )
    pending = list(names)
    last = ""
    while True:
        for name in list(pending):
            try:
                dep = apps.read_namespaced_deployment(name, ns)
                done, last = rollout_complete(dep)
            except from_exc as exc:
                done, last = False, _describe(exc, f"read deployment {ns}/{name}")
                if getattr(exc, "status", 0) in (401, 403, 404):
                    raise RolloutError(last) from None
            if done:
                pending.remove(name)
                logs.event(
                    "rollout_complete",
                    step="roll",
                    deployment=name,
                    duration_s=round(time.monotonic() - start, 3),
                )
            else:
                break  # pending[0] is the one still rolling: the deadline's message names it
        if not pending:
            return
        if time.monotonic() - start > settings.rollout_timeout:
            raise RolloutError(
                f"rollout of deployment {ns}/{pending[0]} not complete after "
                f"{settings.rollout_timeout:g}s (MATOMO_HOOK_ROLLOUT_TIMEOUT): {last}"
            )
        time.sleep(poll)


def _describe(exc: BaseException, what: str) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status:
        hint = " (check the hook's Role: get and patch on deployments)" if status == 403 else ""
        return f"{what}: HTTP {status} {reason}{hint}"
    return f"{what}: {type(exc).__name__}: {exc}"
