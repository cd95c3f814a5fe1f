"""helm install / upgrade / rollback / uninstall against the real control plane.

One release per values file (values/local.yaml: embedded MariaDB;
values/prod.yaml: Cloud SQL, nothing reaches Google because kwok runs no
container), each in a namespace that enforces PodSecurity. The tests of one
values file run in order against the same release.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.helm import (
    F,
    NAMESPACE_LEVEL,
    REPO,
    VALUES,
    Helm,
    Recorder,
    deployment_available,
    job_succeeded,
    leftover_objects,
    recording,
    secret_data,
    wait_until,
)

from harness.controlplane import ControlPlane, find_binary

HOOK = f"{F}-hook"
SECRETS_HOOK = f"{F}-secrets"
GENERATED_BY = "matomo-k8s.io/generated-by"


def generated_secrets(values: Path) -> set[str]:
    """The Secrets the Job F-secrets creates for a values file (what the README promises)."""
    v = yaml.safe_load(values.read_text()) or {}
    m, db = v.get("matomo") or {}, v.get("database") or {}
    names = set()
    if not (m.get("salt") or {}).get("existingSecret"):
        names.add(f"{F}-salt")
    su = m.get("superuser") or {}
    if not (su.get("existingSecret") or su.get("password")):
        names.add(f"{F}-superuser")
    if db.get("mode", "embedded") == "embedded" and not db.get("existingSecret"):
        names.add(f"{F}-database-root" if db.get("password") else f"{F}-database")
    return names


@dataclass
class Release:
    name: str  # "local" or "prod"
    values: Path
    namespace: str
    helm: Helm
    cp: ControlPlane
    install_jobs: Recorder | None = None
    salt: dict[str, str] = field(default_factory=dict)
    image: str = ""
    preexisting: set[str] = field(default_factory=set)  # objects the test created before installing
    failed: list[str] = field(default_factory=list)

    def deployment(self) -> dict[str, Any]:
        return dict(self.cp.get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{F}"))

    def jobs_path(self) -> str:
        return f"/apis/batch/v1/namespaces/{self.namespace}/jobs"


@pytest.fixture(scope="module", params=sorted(VALUES))
def release(request: pytest.FixtureRequest, helm: Helm, controlplane: ControlPlane,
            namespaces: Callable[..., str]) -> Iterator[Release]:
    name = request.param
    values = VALUES[name]
    if not values.is_file():
        pytest.skip(f"{values} does not exist yet")
    ns = namespaces(f"rel-{name}", NAMESPACE_LEVEL[name])
    database = (yaml.safe_load(values.read_text()) or {}).get("database") or {}
    if database.get("existingSecret"):  # what the README tells the user to create first
        key = database.get("existingSecretKey") or "password"
        controlplane.request("POST", f"/api/v1/namespaces/{ns}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": database["existingSecret"]},
            "stringData": {key: "cluster-test-password"}})
    rel = Release(name, values, ns, helm, controlplane)
    if database.get("existingSecret"):
        rel.preexisting.add(f"Secret/{database['existingSecret']}")
    yield rel


def _step(rel: Release, step: str) -> None:
    """Later steps of one release need the earlier ones: skip them once one failed."""
    if rel.failed:
        pytest.skip(f"an earlier step failed for {rel.name}: {rel.failed[0]}")


@pytest.fixture
def step(release: Release, request: pytest.FixtureRequest) -> Iterator[Release]:
    _step(release, request.node.name)
    yield release
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        release.failed.append(request.node.name)


def _hook_job_spec_problems(rel: Release, job: dict[str, Any], event: str) -> list[str]:
    problems = []
    meta = job["metadata"]
    ann = meta.get("annotations") or {}
    hooks = set((ann.get("helm.sh/hook") or "").split(","))
    if not {"post-install", "post-upgrade"} <= hooks:
        problems.append(f"helm.sh/hook is {ann.get('helm.sh/hook')!r}, want post-install,post-upgrade")
    policy = set((ann.get("helm.sh/hook-delete-policy") or "").split(","))
    # before-hook-creation only: the last run's Job (and its logs) stays until the next run replaces it
    if policy != {"before-hook-creation"}:
        problems.append(f"hook-delete-policy is {ann.get('helm.sh/hook-delete-policy')!r}, want before-hook-creation")
    if (meta.get("labels") or {}).get("app.kubernetes.io/component") != "hook":
        problems.append("label app.kubernetes.io/component != hook")
    spec = job["spec"]
    for key in ("backoffLimit", "activeDeadlineSeconds"):
        if key not in spec:
            problems.append(f"spec.{key} not set")
    pod = spec["template"]["spec"]
    if pod.get("serviceAccountName") != HOOK:
        problems.append(f"serviceAccountName is {pod.get('serviceAccountName')!r}, want {HOOK}")
    inits = {c["name"]: c for c in pod.get("initContainers") or []}
    mains = {c["name"]: c for c in pod.get("containers") or []}
    # no copy of the code: the sidecar runs the image's, read-only
    if "copy-code" in inits:
        problems.append("initContainer copy-code present: the code must not be copied")
    installer = inits.get("matomo-installer")
    if not installer:
        problems.append("native sidecar matomo-installer missing")
    else:
        if installer.get("restartPolicy") != "Always":
            problems.append("matomo-installer is not a native sidecar (restartPolicy: Always)")
        if installer.get("image") != rel.image:
            problems.append(f"matomo-installer image {installer.get('image')} != Deployment image {rel.image}")
        if any(p.get("containerPort") for p in installer.get("ports") or []) and any(
            p.get("hostPort") for p in installer.get("ports") or []
        ):
            problems.append("matomo-installer must not use a hostPort")
    proxy = inits.get("cloud-sql-proxy")
    if rel.name == "prod":
        if not proxy:
            problems.append("native sidecar cloud-sql-proxy missing (cloudsql mode)")
        elif proxy.get("restartPolicy") != "Always":
            problems.append("cloud-sql-proxy is not a native sidecar")
    elif proxy:
        problems.append("cloud-sql-proxy present outside cloudsql mode")
    hook = mains.get("hook")
    if not hook:
        problems.append("container hook missing")
        return problems
    if "matomo-hook" not in hook.get("image", ""):
        problems.append(f"hook image {hook.get('image')!r} is not the matomo-hook image")
    argv = [*(hook.get("command") or []), *(hook.get("args") or [])]
    if "run" not in argv:
        problems.append(f"hook command/args {argv} do not run `matomo-hook run`")
    env = {e["name"]: e for e in hook.get("env") or []}
    if env.get("MATOMO_HOOK_DEPLOYMENT", {}).get("value") != F:
        problems.append(f"MATOMO_HOOK_DEPLOYMENT is {env.get('MATOMO_HOOK_DEPLOYMENT')}, want {F}")
    for required in ("MATOMO_DATABASE_USERNAME", "MATOMO_DATABASE_DBNAME", "MATOMO_SUPERUSER_LOGIN",
                     "MATOMO_SUPERUSER_EMAIL", "MATOMO_SITE_NAME", "MATOMO_SITE_URL"):
        if required not in env:
            problems.append(f"hook env {required} missing")
    for secret in ("MATOMO_DATABASE_PASSWORD", "MATOMO_SALT", "MATOMO_SUPERUSER_PASSWORD"):
        plain, file_ = env.get(secret), env.get(f"{secret}_FILE")
        if plain is None and file_ is None:
            problems.append(f"hook env {secret} or {secret}_FILE missing")
        if plain is not None and "value" in plain:
            problems.append(f"hook env {secret} is a literal value, not a secretKeyRef")
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    if "matomo-code" in vols:
        problems.append("volume matomo-code present: the code must not be copied")
    for name in ("matomo-data", "matomo-config", "hook-channel"):
        if "emptyDir" not in vols.get(name, {}):
            problems.append(f"volume {name} is not an emptyDir")
    mounts = {m["mountPath"]: m for m in hook.get("volumeMounts") or []}
    if mounts.get("/run/matomo-hook", {}).get("name") != "hook-channel":
        problems.append("hook does not mount hook-channel at /run/matomo-hook")
    if installer and not any(m.get("name") == "hook-channel" for m in installer.get("volumeMounts") or []):
        problems.append("matomo-installer does not mount hook-channel")
    return problems


def _check_hook_run(rel: Release, rec: Recorder, event: str, previous_uids: set[str]) -> dict[str, Any]:
    runs = [v for v in rec.named(HOOK) if v[0]["metadata"]["uid"] not in previous_uids]
    assert runs, f"no {event} Job {HOOK} was created"
    versions = runs[-1]
    assert job_succeeded(versions), f"{event} Job {HOOK} did not complete: {versions[-1].get('status')}"
    job = versions[0]
    problems = _hook_job_spec_problems(rel, job, event)
    assert not problems, f"{event} Job {HOOK}: " + "; ".join(problems)
    return job


# ------------------------------------------------------------------ install
def test_install(step: Release) -> None:
    rel = step
    with recording(rel.cp, rel.jobs_path()) as rec:
        rel.helm.install(rel.namespace, rel.values)
    rel.install_jobs = rec
    status = rel.helm.status(rel.namespace)
    assert status["info"]["status"] == "deployed", status["info"]
    assert status["version"] == 1
    rel.salt = secret_data(rel.cp, rel.namespace, f"{F}-salt")
    assert rel.salt.get("salt"), f"Secret {F}-salt has no key salt"
    # made by the pre-install Job, before the Deployment, and not Helm's (so uninstall keeps it)
    runs = [v for v in rec.named(SECRETS_HOOK)]
    assert runs and job_succeeded(runs[-1]), f"the pre-install Job {SECRETS_HOOK} did not complete"
    dep_created = rel.deployment()["metadata"]["creationTimestamp"]
    for name in generated_secrets(rel.values):
        meta = rel.cp.get(f"/api/v1/namespaces/{rel.namespace}/secrets/{name}")["metadata"]
        assert GENERATED_BY in (meta.get("annotations") or {}), f"Secret {name} was not made by {SECRETS_HOOK}"
        assert "meta.helm.sh/release-name" not in (meta.get("annotations") or {}), f"Secret {name} is Helm's"
        assert meta["creationTimestamp"] <= dep_created, f"Secret {name} appeared after the Deployment"
    assert deployment_available(rel.cp, rel.namespace, F)
    dep = rel.deployment()
    containers = dep["spec"]["template"]["spec"]["containers"]
    rel.image = next(c["image"] for c in containers if c["name"] in ("matomo", "apache", "php-fpm", "fpm"))


def test_post_install_job(step: Release) -> None:
    rel = step
    assert rel.install_jobs is not None
    _check_hook_run(rel, rel.install_jobs, "post-install", set())


def test_helm_test(step: Release) -> None:
    """The chart's test pod is admitted (restricted) and, kwok standing in for the kubelet, succeeds."""
    rel = step
    out = rel.helm.run("test", "matomo", "-n", rel.namespace, "--timeout", "2m").stdout
    assert "Phase:          Succeeded" in out or "Succeeded" in out, out


def test_pods_admitted_at_claimed_level(step: Release) -> None:
    rel = step
    ns = rel.cp.get(f"/api/v1/namespaces/{rel.namespace}")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == NAMESPACE_LEVEL[rel.name]
    pods = rel.cp.get(f"/api/v1/namespaces/{rel.namespace}/pods")["items"]
    serving = [p for p in pods if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "matomo"]
    assert serving, "no Matomo pod was admitted"
    if rel.name == "local":
        db = [p for p in pods if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "database"]
        assert db, "the embedded MariaDB pod was not admitted"
        assert all(p["status"].get("phase") == "Running" for p in db)


# ------------------------------------------------------------ hook identity
def _hook_token(rel: Release) -> str:
    return rel.cp.create_token(rel.namespace, HOOK, 600)


def test_hook_token_permissions(step: Release, namespaces: Callable[..., str]) -> None:
    rel = step
    cp, ns = rel.cp, rel.namespace
    token = _hook_token(rel)
    deploy = {"resource": "deployments", "group": "apps"}
    allowed = {
        "get deployment": cp.can_i(token, "get", namespace=ns, name=F, **deploy),
        "patch deployment": cp.can_i(token, "patch", namespace=ns, name=F, **deploy),
    }
    assert all(allowed.values()), f"the hook cannot do what `roll` needs: {allowed}"
    other_ns = namespaces("other", "restricted")
    denied = {
        "patch another Deployment": cp.can_i(token, "patch", namespace=ns, name="other", **deploy),
        "delete its Deployment": cp.can_i(token, "delete", namespace=ns, name=F, **deploy),
        "create Deployments": cp.can_i(token, "create", namespace=ns, **deploy),
        "get Secrets": cp.can_i(token, "get", "secrets", namespace=ns),
        "get the salt Secret": cp.can_i(token, "get", "secrets", namespace=ns, name=f"{F}-salt"),
        "list Secrets": cp.can_i(token, "list", "secrets", namespace=ns),
        "get Deployment in another namespace": cp.can_i(token, "get", namespace=other_ns, name=F, **deploy),
        "patch Deployment in another namespace": cp.can_i(token, "patch", namespace=other_ns, name=F, **deploy),
        "list pods in another namespace": cp.can_i(token, "list", "pods", namespace=other_ns),
        "create pods": cp.can_i(token, "create", "pods", namespace=ns),
        "exec into pods": cp.can_i(token, "create", "pods", namespace=ns, subresource="exec"),
        "edit its Role": cp.can_i(token, "update", "roles", namespace=ns, name=HOOK,
                                  group="rbac.authorization.k8s.io"),
    }
    granted = [k for k, v in denied.items() if v]
    assert not granted, f"the hook's ServiceAccount may: {granted}"


def test_hook_roll_restarts_deployment(step: Release, tmp_path: Path) -> None:
    rel = step
    hook_bin = find_binary("matomo-hook") or (
        str(REPO / ".tools/venv/bin/matomo-hook") if (REPO / ".tools/venv/bin/matomo-hook").exists() else None)
    if not hook_bin:
        pytest.skip("matomo-hook is not installed (./dev tools installs hooks/ into .tools/venv)")
    token = _hook_token(rel)
    kubeconfig = rel.cp.kubeconfig_for_token(token, tmp_path / "hook.kubeconfig", namespace=rel.namespace)
    before = rel.deployment()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(KUBECONFIG=str(kubeconfig), MATOMO_HOOK_NAMESPACE=rel.namespace, MATOMO_HOOK_DEPLOYMENT=F,
               MATOMO_HOOK_ROLLOUT_TIMEOUT="120")
    proc = subprocess.run([hook_bin, "roll"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"matomo-hook roll exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
    after = rel.deployment()
    assert after["metadata"]["generation"] > before["metadata"]["generation"], "the Deployment was not changed"
    assert after["spec"]["template"] != before["spec"]["template"], "the pod template was not changed"
    assert deployment_available(rel.cp, rel.namespace, F), "roll returned before the rollout finished"
    # the same token is refused on Secrets and in other namespaces (as the API itself says)
    other = rel.cp.kubectl("--kubeconfig", str(kubeconfig), "get", "secrets", "-n", rel.namespace, check=False)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower(), other


# ------------------------------------------------------------------ upgrade
def _upgrade(rel: Release, *sets: str) -> dict[str, Any]:
    previous = set(rel.install_jobs.seen) if rel.install_jobs else set()
    with recording(rel.cp, rel.jobs_path()) as rec:
        before = set(rec.seen)
        rel.helm.upgrade(rel.namespace, rel.values, "--reuse-values", *sets)
    status = rel.helm.status(rel.namespace)
    assert status["info"]["status"] == "deployed", status["info"]
    job = _check_hook_run(rel, rec, "post-upgrade", previous | before)
    assert secret_data(rel.cp, rel.namespace, f"{F}-salt") == rel.salt, "the salt changed on upgrade"
    assert deployment_available(rel.cp, rel.namespace, F)
    return job


def test_upgrade_changed_value(step: Release) -> None:
    rel = step
    _upgrade(rel, "--set-string", "podAnnotations.cluster-test/changed=yes")
    tpl = rel.deployment()["spec"]["template"]
    assert tpl["metadata"].get("annotations", {}).get("cluster-test/changed") == "yes"
    assert rel.helm.status(rel.namespace)["version"] == 2


def test_upgrade_image_tag(step: Release) -> None:
    rel = step
    repo, _, tag = rel.image.rpartition(":")
    new_tag = "5.1.1-" + tag.split("-", 1)[1] if "-" in tag else "5.1.1"
    rel.image = f"{repo}:{new_tag}"
    _upgrade(rel, "--set-string", f"image.tag={new_tag}")  # checks matomo-installer uses rel.image
    images = [c["image"] for c in rel.deployment()["spec"]["template"]["spec"]["containers"]]
    assert rel.image in images, images


# ----------------------------------------------------------------- rollback
def test_rollback(step: Release) -> None:
    rel = step
    # the last upgrade's hook Job is still there (kept for its logs): only a new one counts
    kept = {j["metadata"]["uid"] for j in rel.cp.get(rel.jobs_path()).get("items", [])}
    with recording(rel.cp, rel.jobs_path()) as rec:
        rel.helm.run("rollback", "matomo", "1", "-n", rel.namespace, "--wait", "--timeout", "5m")
    new = [v for v in rec.named(HOOK) if v[0]["metadata"]["uid"] not in kept]
    assert not new, "a hook Job ran on rollback (the README says none does)"
    status = rel.helm.status(rel.namespace)
    assert status["info"]["status"] == "deployed", status["info"]
    assert status["version"] == 4
    images = [c["image"] for c in rel.deployment()["spec"]["template"]["spec"]["containers"]]
    assert rel.image not in images, f"rollback kept the upgraded image: {images}"
    wait_until(lambda: deployment_available(rel.cp, rel.namespace, F), 120, "Deployment available after rollback")
    assert secret_data(rel.cp, rel.namespace, f"{F}-salt") == rel.salt, "the salt changed on rollback"


# ---------------------------------------------------------------- uninstall
def test_uninstall_keeps_only_what_is_kept(step: Release) -> None:
    rel = step
    manifest = rel.helm.run("get", "manifest", "matomo", "-n", rel.namespace).stdout
    keep, claims = set(), set()
    for doc in yaml.safe_load_all(manifest):
        if not doc:
            continue
        if (doc["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep":
            keep.add(f"{doc['kind']}/{doc['metadata']['name']}")
        if doc["kind"] == "StatefulSet":  # the claims of a StatefulSet outlive it (the database's data)
            for vct in doc["spec"].get("volumeClaimTemplates") or []:
                for i in range(doc["spec"].get("replicas", 1)):
                    claims.add(f"PersistentVolumeClaim/{vct['metadata']['name']}-{doc['metadata']['name']}-{i}")
    # the superuser Secret only when matomo.superuser.password renders it; the dumps' volume
    # (backup.enabled, README "Backups and restoring")
    allowed_keep = {f"Secret/{F}-superuser", f"PersistentVolumeClaim/{F}-backup"}
    assert keep <= allowed_keep, f"objects kept on uninstall beyond the documented ones: {keep - allowed_keep}"
    generated = {f"Secret/{n}" for n in generated_secrets(rel.values)}
    assert f"Secret/{F}-salt" in generated, "the salt Secret is not generated outside Helm (kept on uninstall)"
    rel.helm.run("uninstall", "matomo", "-n", rel.namespace, "--wait", "--timeout", "5m")
    if rel.name == "local":
        assert claims, "the embedded database has no PersistentVolumeClaim"
    expected = keep | claims | rel.preexisting | generated
    transient = ("Pod/", "ReplicaSet/", "ControllerRevision/", "Job/")

    def last_hook_run(obj: str) -> bool:
        # Helm never deletes hook objects on uninstall, and the last hook Job is kept
        # after success for its logs (README): it and its pod stay until deleted by hand
        return obj == f"Job/{HOOK}" or obj.startswith(f"Pod/{HOOK}-")

    def settled() -> bool:
        # pods, ReplicaSets... go away through the garbage collector: give it a moment
        return not [o for o in leftover_objects(rel.cp, rel.namespace)
                    if o.startswith(transient) and not last_hook_run(o)]

    with contextlib.suppress(AssertionError):
        wait_until(settled, 60, "the garbage collector after uninstall")
    left = set(leftover_objects(rel.cp, rel.namespace))
    assert f"Job/{HOOK}" in left, "the last hook Job (and its logs) should outlive the uninstall"
    left = {o for o in left if not last_hook_run(o)}
    assert left == expected, f"after uninstall: left {sorted(left - expected)}, missing {sorted(expected - left)}"


def test_reinstall_keeps_salt(step: Release) -> None:
    rel = step
    rel.helm.install(rel.namespace, rel.values)
    assert rel.helm.status(rel.namespace)["info"]["status"] == "deployed"
    assert secret_data(rel.cp, rel.namespace, f"{F}-salt") == rel.salt, "a reinstall changed the salt"
    rel.helm.run("uninstall", "matomo", "-n", rel.namespace, "--wait", "--timeout", "5m")
