"""GitOps without traps, against the real control plane (issue 11).

- an Argo CD-style sync of a `helm template` render, twice from two separate
  renders: same salt and passwords, no Secret changed;
- plain `helm template | kubectl apply` (hooks applied as ordinary objects):
  the Job creates the Secrets, the second apply changes nothing;
- the Job's token can create Secrets and read only the generated ones;
- `helm upgrade` from the previous chart (which generated the salt with
  `lookup`) keeps the salt;
- `matomo-hook secrets` refuses a Secret without its key and survives a race.

kwok runs no container: the Job F-secrets' container runs as a local process
with the pod's own token (tests/harness/localexec.py). The checks are on
Secrets in the API server, so they do not depend on a real node.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.helm import F, NAMESPACE_LEVEL, RELEASE, REPO, VALUES, Helm, wait_until
from gitopslib import argo_sync, generated_plan, secrets_state

from harness.controlplane import ControlPlane
from harness.localexec import LocalExecutor, hook_binary

SECRETS_HOOK = f"{F}-secrets"
# The last commit of main whose chart generated the salt with `lookup` (chart 0.1.0).
PREVIOUS_CHART_COMMIT = "74a5861a463773e3ee9878c596de5f012530aba9"


def _decoded(data: dict[str, str]) -> list[str]:
    return [base64.b64decode(v).decode() for v in data.values()]


def _assert_no_value_logged(ex: LocalExecutor, namespace: str, secrets: dict[str, Any]) -> None:
    values = [v for name, (_, _, data) in secrets.items() for v in _decoded(data) if len(v) >= 16]
    for run in ex.runs_in(namespace):
        for v in values:
            assert v not in run.stdout + run.stderr, f"a Secret value appears in the output of {run.pod}"


def _values(source: str, tmp_path: Path) -> Path:
    if source == "examples/argocd":  # the example Application's valuesObject
        app = yaml.safe_load((REPO / "examples/argocd/application.yaml").read_text())
        path = tmp_path / "argocd-values.yaml"
        path.write_text(yaml.safe_dump(app["spec"]["source"]["helm"]["valuesObject"]))
        return path
    return VALUES[source]


@pytest.mark.parametrize("source", ["local", "examples/argocd"])
def test_argocd_style_sync_twice_changes_no_secret(helm: Helm, controlplane: ControlPlane,
                                                    namespaces: Callable[..., str], local_exec: LocalExecutor,
                                                    source: str, tmp_path: Path) -> None:
    cp = controlplane
    ns = namespaces("argo", NAMESPACE_LEVEL["local"])
    values = _values(source, tmp_path)
    first = helm.template(values, ns)
    plan = generated_plan(first)
    assert {f"{F}-salt", f"{F}-superuser", f"{F}-database"} <= set(plan), plan

    argo_sync(cp, ns, first)
    after_first = secrets_state(cp, ns)
    for name, keys in plan.items():
        assert name in after_first, f"Secret {name} was not created by the PreSync Job"
        data = after_first[name][2]
        for key, length in keys.items():
            assert len(base64.b64decode(data[key])) == length, f"{name}/{key} is not {length} characters"
    # HookSucceeded: the Job and its RBAC are gone once PreSync succeeded
    for kind in ("serviceaccounts", "jobs"):
        group = "apis/batch/v1" if kind == "jobs" else "api/v1"
        assert not cp.exists(f"/{group}/namespaces/{ns}/{kind}/{SECRETS_HOOK}"), f"{kind} {SECRETS_HOOK} left"

    second = helm.template(values, ns)  # a separate render, as a later Argo CD sync does
    assert second == first, "two renders of the same values differ"
    argo_sync(cp, ns, second)
    after_second = secrets_state(cp, ns)
    changed = sorted(n for n in after_first if after_second.get(n) != after_first[n])
    assert not changed, f"the second sync changed or replaced Secrets: {changed}"

    runs = local_exec.runs_in(ns, SECRETS_HOOK)
    assert [r.exit_code for r in runs] == [0, 0], [(r.exit_code, r.stderr[-500:]) for r in runs]
    results = [{s["secret"]: s["result"] for s in json.loads(r.stdout.strip().splitlines()[-1])["secrets"]}
               for r in runs]
    assert results[0] == dict.fromkeys(plan, "created"), results[0]
    assert results[1] == dict.fromkeys(plan, "exists"), results[1]
    _assert_no_value_logged(local_exec, ns, after_second)


def test_kubectl_apply_of_helm_template(helm: Helm, controlplane: ControlPlane,
                                        namespaces: Callable[..., str], local_exec: LocalExecutor,
                                        tmp_path: Path) -> None:
    """Hooks applied as ordinary objects, all at once: the Job creates the Secrets, nothing waits
    forever, a second apply of a new render changes no Secret; the Job's token reads nothing else."""
    cp = controlplane
    ns = namespaces("apply", NAMESPACE_LEVEL["local"])
    rendered = helm.template(VALUES["local"], ns)
    plan = generated_plan(rendered)
    cp.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=rendered)

    wait_until(lambda: all(cp.exists(f"/api/v1/namespaces/{ns}/secrets/{n}") for n in plan), 120,
               "the generated Secrets")
    wait_until(lambda: any(c["type"] == "Complete" and c["status"] == "True" for c in
                           (cp.get(f"/apis/batch/v1/namespaces/{ns}/jobs/{SECRETS_HOOK}").get("status") or {})
                           .get("conditions") or []), 120, f"Job {SECRETS_HOOK} complete")
    before = secrets_state(cp, ns)
    again = cp.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=helm.template(VALUES["local"], ns),
                       check=False)
    assert again.returncode == 0, again.stderr
    after = secrets_state(cp, ns)
    assert after == before, "a second apply changed Secrets"

    # the Job's ServiceAccount outlives it here (no hook deletion): its token is the one to probe
    token = cp.create_token(ns, SECRETS_HOOK, 600)
    other_ns = namespaces("other", "restricted")
    allowed = {f"get {n}": cp.can_i(token, "get", "secrets", namespace=ns, name=n) for n in plan}
    allowed["create secrets"] = cp.can_i(token, "create", "secrets", namespace=ns)
    assert all(allowed.values()), f"the Job cannot do what `matomo-hook secrets` needs: {allowed}"
    salt = f"{F}-salt"
    denied = {
        "get the config Secret": cp.can_i(token, "get", "secrets", namespace=ns, name=f"{F}-config"),
        "get any other Secret": cp.can_i(token, "get", "secrets", namespace=ns, name="someone-elses"),
        "list Secrets": cp.can_i(token, "list", "secrets", namespace=ns),
        "watch Secrets": cp.can_i(token, "watch", "secrets", namespace=ns),
        "update the salt": cp.can_i(token, "update", "secrets", namespace=ns, name=salt),
        "patch the salt": cp.can_i(token, "patch", "secrets", namespace=ns, name=salt),
        "delete the salt": cp.can_i(token, "delete", "secrets", namespace=ns, name=salt),
        "get the salt in another namespace": cp.can_i(token, "get", "secrets", namespace=other_ns, name=salt),
        "create Secrets in another namespace": cp.can_i(token, "create", "secrets", namespace=other_ns),
        "edit its Role": cp.can_i(token, "update", "roles", namespace=ns, name=SECRETS_HOOK,
                                  group="rbac.authorization.k8s.io"),
    }
    granted = [k for k, v in denied.items() if v]
    assert not granted, f"the Job's ServiceAccount may: {granted}"
    # and for real, with kubectl: reading another Secret and overwriting one are refused
    kc = cp.kubeconfig_for_token(token, tmp_path / "secrets.kubeconfig", namespace=ns)
    read = cp.kubectl("--kubeconfig", str(kc), "get", "secret", f"{F}-config", "-o", "json", check=False)
    assert read.returncode != 0 and "forbidden" in read.stderr.lower(), read
    patch = cp.kubectl("--kubeconfig", str(kc), "patch", "secret", salt, "-p", '{"data":{"salt":"eA=="}}',
                       check=False)
    assert patch.returncode != 0 and "forbidden" in patch.stderr.lower(), patch
    overwrite = cp.kubectl("--kubeconfig", str(kc), "create", "secret", "generic", f"{F}-config",
                           "--from-literal=x=y", check=False)
    assert overwrite.returncode != 0 and "already exists" in overwrite.stderr.lower(), overwrite
    assert secrets_state(cp, ns) == after, "the Job's token changed a Secret"
    _assert_no_value_logged(local_exec, ns, after)


def _previous_chart(tmp_path: Path) -> Path:
    proc = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", PREVIOUS_CHART_COMMIT, "charts/matomo"],
                          capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        pytest.skip(f"the previous chart (commit {PREVIOUS_CHART_COMMIT[:12]}) is not in this clone's history: "
                    f"{proc.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(tmp_path, filter="data")
    chart = tmp_path / "charts" / "matomo"
    assert "lookup" in (chart / "templates/matomo/secret-salt.yaml").read_text(), "not the lookup chart"
    return chart


def test_upgrade_from_the_lookup_chart_keeps_salt(helm: Helm, controlplane: ControlPlane,
                                                  namespaces: Callable[..., str], local_exec: LocalExecutor,
                                                  tmp_path: Path) -> None:
    cp = controlplane
    old_chart = _previous_chart(tmp_path)
    ns = namespaces("from-lookup", NAMESPACE_LEVEL["local"])
    helm.run("install", RELEASE, str(old_chart), "-n", ns, "-f", str(VALUES["local"]), "--wait", "--timeout", "5m")
    before = secrets_state(cp, ns)
    kept = [f"{F}-salt", f"{F}-superuser", f"{F}-database"]
    assert all(n in before for n in kept), sorted(before)

    helm.upgrade(ns, VALUES["local"])
    after = secrets_state(cp, ns)
    for name in kept:
        assert after.get(name) == before[name], f"the upgrade changed or replaced Secret {name}"
    runs = local_exec.runs_in(ns, SECRETS_HOOK)
    assert runs and runs[-1].exit_code == 0, [(r.exit_code, r.stderr[-500:]) for r in runs]
    result = {s["secret"]: s["result"] for s in json.loads(runs[-1].stdout.strip().splitlines()[-1])["secrets"]}
    assert result == dict.fromkeys(kept, "exists"), result
    # and the next upgrade (now without lookup on either side) keeps them too
    helm.upgrade(ns, VALUES["local"], "--set-string", "podAnnotations.changed=yes")
    assert {n: secrets_state(cp, ns)[n] for n in kept} == {n: before[n] for n in kept}
    helm.run("uninstall", RELEASE, "-n", ns, "--wait")
    left = secrets_state(cp, ns)
    assert all(n in left for n in kept), "uninstall deleted a kept Secret"


# ------------------------------------------------------- matomo-hook secrets
def _hook_env(kubeconfig: Path, ns: str, plan: dict[str, Any], timeout: str = "5") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "MATOMO_"))}
    env.update(KUBECONFIG=str(kubeconfig), MATOMO_HOOK_NAMESPACE=ns, MATOMO_HOOK_SECRETS=json.dumps(plan),
               MATOMO_HOOK_SECRETS_TIMEOUT=timeout)
    return env


def test_secrets_refuses_an_existing_secret_without_its_key(controlplane: ControlPlane,
                                                            namespaces: Callable[..., str]) -> None:
    cp = controlplane
    ns = namespaces("keys", "restricted")
    cp.request("POST", f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-salt"}, "stringData": {"other": "x"}})
    before = secrets_state(cp, ns)
    plan = {"secrets": [{"name": "my-salt", "keys": {"salt": 64}}]}
    proc = subprocess.run([hook_binary(), "secrets"], env=_hook_env(cp.kubeconfig, ns, plan), text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 4, (proc.returncode, proc.stderr)
    error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
    assert f"Secret {ns}/my-salt exists without key(s) salt" in error, error
    assert secrets_state(cp, ns) == before, "the hook changed an existing Secret"


def test_secrets_without_rbac_fails_in_one_line(controlplane: ControlPlane, namespaces: Callable[..., str],
                                                tmp_path: Path) -> None:
    cp = controlplane
    ns = namespaces("norbac", "restricted")
    kc = cp.kubeconfig_for_token(cp.create_token(ns, "default", 600), tmp_path / "kc", namespace=ns)
    plan = {"secrets": [{"name": "x-salt", "keys": {"salt": 64}}]}
    proc = subprocess.run([hook_binary(), "secrets"], env=_hook_env(kc, ns, plan, timeout="2"), text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
    assert "HTTP 403" in error and "Role" in error and "MATOMO_HOOK_SECRETS_TIMEOUT" in error, error
    assert not cp.exists(f"/api/v1/namespaces/{ns}/secrets/x-salt")


def test_secrets_race_on_create_keeps_the_first(controlplane: ControlPlane, namespaces: Callable[..., str]) -> None:
    """Another run creates the Secret between our GET and our CREATE: the real 409 is success, theirs is kept."""
    from kubernetes import client, config

    from matomo_hook.config import SecretSpec
    from matomo_hook.secrets import ensure_one

    cp = controlplane
    ns = namespaces("race", "restricted")
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(cp.kubeconfig)))

    class Racing:
        def read_namespaced_secret(self, name: str, namespace: str) -> Any:
            return api.read_namespaced_secret(name, namespace)

        def create_namespaced_secret(self, namespace: str, body: Any) -> Any:
            cp.request("POST", f"/api/v1/namespaces/{namespace}/secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": body["metadata"]["name"]},
                "stringData": {"salt": "the-other-run-won-this-race-000000"}})
            return api.create_namespaced_secret(namespace, body)

    outcome = ensure_one(Racing(), ns, SecretSpec("raced-salt", {"salt": 64}), {}, {})
    assert outcome.created is False
    data = secrets_state(cp, ns)["raced-salt"][2]
    assert _decoded(data) == ["the-other-run-won-this-race-000000"]
