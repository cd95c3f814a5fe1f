"""examples/: the helmfile, the Argo CD Application and the Flux HelmRelease
point at this chart, their values pass the chart's schema and render, and
none of them needs a Secret created by hand for what the chart generates.
(tests/cluster runs the helmfile and an Argo CD-style sync for real.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, REPO, run_helm

EXAMPLES = REPO / "examples"
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def argocd_values() -> dict:
    (app,) = _docs(EXAMPLES / "argocd" / "application.yaml")
    return app["spec"]["source"]["helm"]["valuesObject"]


def flux_values() -> dict:
    release = next(d for d in _docs(EXAMPLES / "flux" / "helmrelease.yaml") if d["kind"] == "HelmRelease")
    return release["spec"]["values"]


def helmfile_values(env: str) -> dict:
    return yaml.safe_load((EXAMPLES / "helmfile" / "environments" / f"{env}.yaml").read_text())["chart"]


VALUES = {
    "argocd": argocd_values,
    "flux": flux_values,
    "helmfile-local": lambda: helmfile_values("local"),
    "helmfile-production": lambda: helmfile_values("production"),
}


def _render(helm: str, values: dict, tmp_path: Path) -> str:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump(values))
    result = run_helm(helm, "template", "matomo", str(CHART), "-n", "matomo", "--kube-version", KUBE_VERSION,
                      "-f", str(f))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", sorted(VALUES))
def test_example_values_render_with_the_secrets_job(helm: str, tmp_path: Path, name: str) -> None:
    values = VALUES[name]()
    lint = tmp_path / "lint.yaml"
    lint.write_text(yaml.safe_dump(values))
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(lint))
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = _render(helm, values, tmp_path)
    assert rendered == _render(helm, values, tmp_path), f"{name}: two renders differ"
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Job", "matomo-secrets") in names, f"{name}: no Job matomo-secrets"
    assert ("Secret", "matomo-salt") not in names, f"{name}: the salt is rendered"


@pytest.mark.parametrize("name", sorted(VALUES))
def test_example_needs_no_hand_made_secret_for_generated_values(name: str) -> None:
    values = VALUES[name]()
    m = values.get("matomo") or {}
    assert not (m.get("salt") or {}).get("existingSecret"), f"{name}: asks for a hand-made salt Secret"
    assert not (m.get("superuser") or {}).get("existingSecret"), f"{name}: asks for a hand-made superuser Secret"
    assert not (m.get("superuser") or {}).get("password"), f"{name}: a password in Git"
    assert not (values.get("database") or {}).get("password"), f"{name}: a password in Git"


def test_argocd_application_points_at_the_chart() -> None:
    (app,) = _docs(EXAMPLES / "argocd" / "application.yaml")
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    src = app["spec"]["source"]
    assert (src["repoURL"], src["chart"]) == ("ghcr.io/matomo-k8s/charts", CHART_META["name"])
    assert src["targetRevision"] == CHART_META["version"]
    assert src["helm"]["releaseName"] == "matomo"


def test_flux_helmrelease_points_at_the_chart() -> None:
    docs = {d["kind"]: d for d in _docs(EXAMPLES / "flux" / "helmrelease.yaml")}
    repo, release = docs["OCIRepository"], docs["HelmRelease"]
    assert repo["spec"]["url"] == f"oci://ghcr.io/matomo-k8s/charts/{CHART_META['name']}"
    assert repo["spec"]["ref"]["tag"] == CHART_META["version"]
    ref = release["spec"]["chartRef"]
    assert (ref["kind"], ref["name"], ref["namespace"]) == ("OCIRepository", repo["metadata"]["name"],
                                                            repo["metadata"]["namespace"])


def test_helmfile_uses_this_chart_with_environments() -> None:
    doc = (EXAMPLES / "helmfile" / "helmfile.yaml").read_text()
    parts = [yaml.safe_load(p) for p in doc.split("\n---\n")]
    envs = parts[0]["environments"]
    assert set(envs) == {"local", "production"}
    for env, spec in envs.items():
        for f in spec["values"]:
            assert (EXAMPLES / "helmfile" / f).is_file(), f"{env}: {f} is missing"
    (release,) = parts[1]["releases"]
    assert (EXAMPLES / "helmfile" / release["chart"]).resolve() == CHART.resolve()


def test_readme_points_to_the_examples_not_to_kubectl_create_secret() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## GitOps"):]
    section = section[: section.index("\n## ", 1)]
    for example in ("examples/helmfile", "examples/argocd", "examples/flux"):
        assert f"]({example})" in section, f"the GitOps section does not link {example}"
        assert (REPO / example / "README.md").is_file(), f"{example}/README.md is missing"
    # a hand-made salt Secret only where a Matomo installed elsewhere moves here (it brings its salt)
    start = readme.index("## Moving an existing Matomo to this chart")
    end = readme.index("\n## ", start + 1)
    other = readme[:start] + readme[end:]
    assert not re.search(r"create secret generic \S*(salt|superuser)", other), "README still has a manual salt step"
