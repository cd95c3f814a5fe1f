"""examples/helmfile run for real: `helmfile template` twice, then `helmfile
apply` (install), again (nothing to do), and with a changed value (upgrade),
against the real control plane. helmfile and the helm-diff plugin are built
from their Go modules by tools/install-base.sh.

The salt and passwords must come out of the first apply and never change.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
import yaml
from harness.helm import F, LOCAL_EXEC, NAMESPACE_LEVEL, REPO, Helm
from gitopslib import generated_plan, secrets_state

from harness.controlplane import ControlPlane, find_binary
from harness.localexec import LocalExecutor

EXAMPLE = REPO / "examples" / "helmfile"
GENERATED_BY = "matomo-k8s.io/generated-by"
# helmfile has --set only (the value "local" stays a string)
HF_LOCAL_EXEC = ["--set", LOCAL_EXEC[1]]


def _helmfile(helm: Helm, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = find_binary("helmfile")
    if not binary:
        pytest.fail("helmfile not found: run `./dev tools` (it builds helmfile into .tools/bin)")
    env = helm.env()
    env["HELM_PLUGINS"] = str(REPO / ".tools" / "helm-plugins")  # helm-diff, for `apply`
    env["HELMFILE_HELM_BINARY"] = helm.binary
    cmd = [binary, "--no-color", "-f", str(EXAMPLE / "helmfile.yaml"), "-e", "local", "-n", namespace, *args]
    proc = subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=900, cwd=EXAMPLE)
    assert proc.returncode == 0, f"helmfile {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc


def test_helmfile_template_and_apply(helm: Helm, controlplane: ControlPlane, namespaces: Callable[..., str],
                                     local_exec: LocalExecutor) -> None:
    cp = controlplane
    ns = namespaces("helmfile", NAMESPACE_LEVEL["local"])
    first = _helmfile(helm, ns, "template", "--skip-deps", *HF_LOCAL_EXEC).stdout
    second = _helmfile(helm, ns, "template", "--skip-deps", *HF_LOCAL_EXEC).stdout
    assert first == second, "two `helmfile template` renders differ"
    plan = generated_plan(first)
    assert set(plan) == {f"{F}-salt", f"{F}-superuser", f"{F}-database"}, plan
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(first) if d}
    assert not {("Secret", n) for n in plan} & kinds, "a generated Secret is rendered"

    _helmfile(helm, ns, "apply", "--skip-deps", "--suppress-secrets", *HF_LOCAL_EXEC)
    status = helm.status(ns)
    assert status["info"]["status"] == "deployed" and status["version"] == 1, status["info"]
    installed = secrets_state(cp, ns)
    for name in plan:
        assert name in installed, f"Secret {name} missing after helmfile apply"
        meta = cp.get(f"/api/v1/namespaces/{ns}/secrets/{name}")["metadata"]
        assert GENERATED_BY in (meta.get("annotations") or {}), f"{name} not made by the Job {F}-secrets"

    _helmfile(helm, ns, "apply", "--skip-deps", "--suppress-secrets", *HF_LOCAL_EXEC)  # no change: diff finds none
    assert helm.status(ns)["version"] == 1, "an unchanged helmfile apply upgraded the release"
    _helmfile(helm, ns, "apply", "--skip-deps", "--suppress-secrets", *HF_LOCAL_EXEC,
              "--set", "podAnnotations.changed=yes")
    assert helm.status(ns)["version"] == 2, "a changed value did not upgrade the release"
    after = secrets_state(cp, ns)
    changed = sorted(n for n in plan if after.get(n) != installed[n])
    assert not changed, f"helmfile apply changed or replaced Secrets: {changed}"
    runs = local_exec.runs_in(ns, f"{F}-secrets")
    assert [r.exit_code for r in runs] == [0, 0], [(r.exit_code, r.stderr[-300:]) for r in runs]
    assert '"created"' in runs[0].stdout and '"created"' not in runs[1].stdout, [r.stdout for r in runs]
