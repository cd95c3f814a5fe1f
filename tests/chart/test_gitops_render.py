"""GitOps renders: no `lookup`, and `helm template` gives the same bytes every
time (Argo CD, helmfile, Flux post-renderers and kustomize render with
`helm template`, which cannot see the cluster). The values that must be
generated once (salt, superuser password, embedded database passwords) are
never in a render: the pre-install/pre-upgrade Job F-secrets creates them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, VALUES_FILES, run_helm

RENDERS = [None, *VALUES_FILES]


def _id(p: Path | None) -> str:
    return "defaults" if p is None else str(p.relative_to(CHART.parents[1]))


def _render(helm: str, values: Path | None, *extra: str) -> str:
    args = ["template", "matomo", str(CHART), "-n", "analytics", "--kube-version", KUBE_VERSION, *extra]
    if values is not None:
        args += ["-f", str(values)]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_no_lookup_in_templates() -> None:
    used = [str(p.relative_to(CHART)) for p in (CHART / "templates").rglob("*")
            if p.is_file() and re.search(r"\blookup\b", p.read_text())]
    assert not used, f"templates that use or mention lookup: {used}"


def test_no_random_function_in_templates() -> None:
    """Only the cluster generates values: a rand*/uuid/now in a template would differ per render."""
    pattern = re.compile(r"\b(randAlphaNum|randAlpha|randNumeric|randAscii|randBytes|uuidv4|now|genPrivateKey|genCA)\b")
    used = [str(p.relative_to(CHART)) for p in (CHART / "templates").rglob("*")
            if p.is_file() and pattern.search(p.read_text())]
    assert not used, f"templates that render a different value each time: {used}"


@pytest.mark.parametrize("values", RENDERS, ids=_id)
def test_helm_template_is_byte_identical(helm: str, values: Path | None) -> None:
    first, second = _render(helm, values), _render(helm, values)
    assert first == second, f"two renders of {_id(values)} differ"


@pytest.mark.parametrize("values", RENDERS, ids=_id)
def test_generated_values_are_never_rendered(helm: str, values: Path | None) -> None:
    docs = [d for d in yaml.safe_load_all(_render(helm, values)) if d]
    job = next((d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "matomo-secrets"), None)
    plan = []
    if job is not None:
        env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        plan = json.loads(env["MATOMO_HOOK_SECRETS"]["value"])["secrets"]
    generated = {s["name"] for s in plan}
    rendered = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert not generated & rendered, f"generated Secrets also rendered: {generated & rendered}"
    # every Secret a pod reads exists after install: rendered, generated, or the user's existingSecret
    v = yaml.safe_load(values.read_text()) if values else {}
    existing = {x for x in (
        ((v.get("matomo") or {}).get("salt") or {}).get("existingSecret"),
        ((v.get("matomo") or {}).get("superuser") or {}).get("existingSecret"),
        (v.get("database") or {}).get("existingSecret"),
        (((v.get("database") or {}).get("cloudsql") or {}).get("credentials") or {}).get("existingSecret"),
    ) if x}
    refs = set(re.findall(r"secretKeyRef:\s+name: (\S+)", _render(helm, values)))
    refs |= set(re.findall(r"secretName: (\S+)", _render(helm, values)))
    refs -= {t.get("secretName") for t in (v.get("ingress") or {}).get("tls") or []}
    missing = refs - rendered - generated - existing
    assert not missing, f"pods read Secrets nobody creates: {missing}"


def test_salt_and_superuser_generated_by_default(helm: str) -> None:
    docs = [d for d in yaml.safe_load_all(_render(helm, None)) if d]
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "matomo-secrets")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    plan = {s["name"]: s["keys"] for s in json.loads(env["MATOMO_HOOK_SECRETS"]["value"])["secrets"]}
    assert plan == {"matomo-salt": {"salt": 64}, "matomo-superuser": {"password": 24},
                    "matomo-database": {"password": 32, "root-password": 32}}
