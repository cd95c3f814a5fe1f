"""Release metadata: what Artifact Hub and a user see of a published chart, and the rules ./dev lint enforces.

- `artifacthub.io/images` lists exactly the images the chart runs (every
  container of every rendered manifest, hooks and the helm test pod
  included, over the chart-testing values files that cover every mode);
- the hook image the chart runs by default is the one tools/release.sh
  pushes by default, and the one the README names;
- tools/chartmeta.py (./dev lint) fails, in a throwaway git repository, when
  the chart changed since the newest `v*` tag without a version bump, when
  CHANGELOG.md has no section for the version, or when the generated
  annotations are stale; and passes once they are fixed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import CHART, KUBE_VERSION, REPO, VALUES_FILES, run_helm

CHARTMETA = REPO / "tools" / "chartmeta.py"
RELEASE = REPO / "tools" / "release.sh"


def chart_yaml(root: Path = REPO) -> dict[str, Any]:
    return dict(yaml.safe_load((root / "charts" / "matomo" / "Chart.yaml").read_text()))


def annotated_images() -> dict[str, str]:
    entries = yaml.safe_load(chart_yaml()["annotations"]["artifacthub.io/images"])
    return {e["name"]: e["image"] for e in entries}


def rendered_images(helm: str, values: Path | None) -> set[str]:
    args = ["template", "matomo", str(CHART), "--kube-version", KUBE_VERSION]
    if values:
        args += ["-f", str(values)]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    images: set[str] = set()
    for doc in yaml.safe_load_all(result.stdout):
        if not doc:
            continue
        spec = doc.get("spec", {})
        pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec") \
            or spec.get("template", {}).get("spec") or (spec if doc["kind"] == "Pod" else {})
        for key in ("initContainers", "containers"):
            images.update(c["image"] for c in pod.get(key) or [])
    return images


def test_artifacthub_images_are_every_image_the_chart_runs(helm: str) -> None:
    rendered: set[str] = set()
    for values in [None, *VALUES_FILES]:
        rendered |= rendered_images(helm, values)
    # values/local.yaml and prod.yaml keep the default images; the ci files cover fpm, cloudsql, embedded
    assert set(annotated_images().values()) == rendered


def test_hook_image_defaults_agree(helm: str) -> None:
    """The chart's default hook image, the release script's default push target and the README agree."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    version = chart_yaml()["version"]
    chart_default = f"{values['hook']['image']['repository']}:{values['hook']['image']['tag'] or version}"
    refs = subprocess.run(["bash", str(RELEASE), "refs"], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"}).stdout
    assert f"image {chart_default}\n" in refs
    assert annotated_images()["matomo-hook"] == chart_default
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Installing from a clone", 1)[1].split("\n## ", 1)[0]
    assert values["hook"]["image"]["repository"] in section
    assert "tools/release.sh" in section and "hook.image.repository" in section
    # the workflow publishes with the same script, to ghcr.io under the repository's owner
    workflow = (REPO / ".github" / "workflows" / "release.yaml").read_text()
    assert "tools/release.sh" in workflow and "--owner" in workflow


def test_release_workflow_helm_is_the_toolchain_helm() -> None:
    pinned = re.search(r"^HELM_VERSION=(\S+)", (REPO / "tools" / "install-base.sh").read_text(), re.MULTILINE)
    assert pinned
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yaml").read_text())
    versions = [s["with"]["version"] for job in workflow["jobs"].values() for s in job["steps"]
                if str(s.get("uses", "")).startswith("azure/setup-helm")]
    assert versions == [pinned.group(1)], "the release workflow's helm must be tools/install-base.sh's HELM_VERSION"


def test_release_script_refuses_a_version_the_chart_does_not_have() -> None:
    proc = subprocess.run(["bash", str(RELEASE), "refs", "--version", "9.9.9"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1
    assert "9.9.9" in proc.stderr and "charts/matomo/Chart.yaml" in proc.stderr


# ------------------------------------------------------------------ tools/chartmeta.py in a throwaway repository
def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True, check=True).stdout


def chartmeta(repo: Path, command: str = "check") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHARTMETA), command, "--root", str(repo)], capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding this chart and CHANGELOG.md, committed, no tag yet."""
    shutil.copytree(CHART, tmp_path / "charts" / "matomo")
    shutil.copy(REPO / "CHANGELOG.md", tmp_path / "CHANGELOG.md")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "chart")
    return tmp_path


def set_version(repo: Path, version: str) -> None:
    path = repo / "charts" / "matomo" / "Chart.yaml"
    path.write_text(re.sub(r"^version: .*$", f"version: {version}", path.read_text(), count=1, flags=re.MULTILINE))


def add_changelog(repo: Path, version: str) -> None:
    path = repo / "CHANGELOG.md"
    text = path.read_text()
    head, rest = text.split("\n## ", 1)
    path.write_text(f"{head}\n## {version}\n\n### Fixed\n- Something users notice.\n\n## {rest}")


def change_chart(repo: Path) -> None:
    with open(repo / "charts" / "matomo" / "templates" / "NOTES.txt", "a") as f:
        f.write("\n")


def test_chartmeta_passes_on_this_repository() -> None:
    proc = chartmeta(REPO)
    assert proc.returncode == 0, proc.stderr


def test_no_tag_passes_saying_so(repo: Path) -> None:
    proc = chartmeta(repo)
    assert proc.returncode == 0, proc.stderr
    assert "no `v*` tag" in proc.stdout


def test_chart_changed_since_tag_needs_a_bump(repo: Path) -> None:
    version = chart_yaml(repo)["version"]
    git(repo, "tag", f"v{version}")
    assert chartmeta(repo).returncode == 0
    assert "unchanged since" in chartmeta(repo).stdout

    change_chart(repo)  # uncommitted changes count
    proc = chartmeta(repo)
    assert proc.returncode == 1
    assert f"changed since the tag v{version}" in proc.stderr and "templates/NOTES.txt" in proc.stderr
    assert "raise `version:`" in proc.stderr
    git(repo, "commit", "-qam", "notes")
    assert chartmeta(repo).returncode == 1, "a committed change too"

    # a bump alone is not enough: CHANGELOG.md needs the version's section, and the annotation follows it
    set_version(repo, "0.1.1")
    proc = chartmeta(repo)
    assert proc.returncode == 1 and "no `## 0.1.1` section" in proc.stderr, proc.stderr
    add_changelog(repo, "0.1.1")
    proc = chartmeta(repo)
    assert proc.returncode == 1 and "artifacthub.io/changes" in proc.stderr and "./dev docs" in proc.stderr
    assert "artifacthub.io/images" in proc.stderr, "the hook image's tag is the chart version"
    assert chartmeta(repo, "write").returncode == 0
    proc = chartmeta(repo)
    assert proc.returncode == 0, proc.stderr
    changes = yaml.safe_load(chart_yaml(repo)["annotations"]["artifacthub.io/changes"])
    assert changes == [{"kind": "fixed", "description": "Something users notice."}]
    assert "matomo-hook:0.1.1" in chart_yaml(repo)["annotations"]["artifacthub.io/images"]


@pytest.mark.parametrize(("version", "ok"), [("0.1.0-rc.1", False), ("0.0.9", False), ("0.1.1-rc.1", True),
                                             ("0.2.0", True), ("1.0.0", True)])
def test_bump_compares_semantic_versions(repo: Path, version: str, ok: bool) -> None:
    git(repo, "tag", "v0.1.0")
    change_chart(repo)
    set_version(repo, version)
    add_changelog(repo, version)
    assert chartmeta(repo, "write").returncode == 0
    proc = chartmeta(repo)
    assert (proc.returncode == 0) == ok, proc.stderr


def test_newest_reachable_tag_counts(repo: Path) -> None:
    git(repo, "tag", "v0.0.5")
    change_chart(repo)
    git(repo, "commit", "-qam", "change")
    # v0.0.5 is older than HEAD's chart: 0.1.0 > 0.0.5 passes
    assert chartmeta(repo).returncode == 0
    git(repo, "tag", "v0.1.0")  # released as is: unchanged since
    assert "unchanged since v0.1.0" in chartmeta(repo).stdout


def test_stale_images_annotation_fails(repo: Path) -> None:
    values = repo / "charts" / "matomo" / "values.yaml"
    values.write_text(values.read_text().replace('tag: "1.27-alpine"', 'tag: "1.29-alpine"'))
    proc = chartmeta(repo)
    assert proc.returncode == 1 and "artifacthub.io/images" in proc.stderr
    assert chartmeta(repo, "write").returncode == 0
    assert chartmeta(repo).returncode == 0
    assert "nginxinc/nginx-unprivileged:1.29-alpine" in chart_yaml(repo)["annotations"]["artifacthub.io/images"]


def test_missing_license_and_maintainers_fail(repo: Path) -> None:
    path = repo / "charts" / "matomo" / "Chart.yaml"
    text = path.read_text().replace("  artifacthub.io/license: Apache-2.0\n", "")
    text = re.sub(r"^maintainers:\n(  - .*\n)+", "", text, flags=re.MULTILINE)
    path.write_text(text)
    proc = chartmeta(repo)
    assert proc.returncode == 1
    assert "artifacthub.io/license" in proc.stderr and "maintainers" in proc.stderr
