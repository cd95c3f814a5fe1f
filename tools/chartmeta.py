#!/usr/bin/env python3
"""Chart metadata of charts/matomo: Artifact Hub annotations and the version bump rule.

    python3 tools/chartmeta.py write [--root DIR]   # regenerate the generated annotations (./dev docs)
    python3 tools/chartmeta.py check [--root DIR]   # every rule below; exit 1 naming what to fix (./dev lint)

Generated into charts/matomo/Chart.yaml (blocks replaced in place, the rest
of the file kept as written):
  - `artifacthub.io/images`: every image the chart can run, from the defaults
    of values.yaml (Matomo apache and fpm at `<appVersion>-<variant>`, the
    nginx sidecar of fpm, the hook image at the chart version, MariaDB, the
    Cloud SQL Auth Proxy, the queue's embedded Redis);
  - `artifacthub.io/changes`: the section of CHANGELOG.md for the chart's
    version (`## <version>`, with `### Added` ... `### Security` lists).
Checked:
  - both blocks are what `write` would make;
  - `artifacthub.io/license` and `maintainers` are set;
  - CHANGELOG.md has a section for the chart's version;
  - the version bump rule: when charts/matomo changed since the newest `v*`
    tag reachable from HEAD (uncommitted changes count), Chart.yaml's
    `version` must be greater than that tag's. No such tag: passes, saying so.
    Needs no remote: only the local tags.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART_DIR = Path("charts/matomo")
KINDS = {"added", "changed", "deprecated", "removed", "fixed", "security"}
GENERATED = ("artifacthub.io/images", "artifacthub.io/changes")


class MetaError(Exception):
    """A rule that does not hold; the message says what to change."""


# ------------------------------------------------------------------ semver
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class Version:
    text: str
    core: tuple[int, int, int]
    pre: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, what: str) -> Version:
        m = SEMVER.match(text)
        if not m:
            raise MetaError(f"{what} {text!r} is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])")
        core = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return cls(text, core, tuple(m.group(4).split(".")) if m.group(4) else ())

    def _pre_key(self) -> tuple[Any, ...]:
        # SemVer 2.0.0 precedence: a release ranks above its pre-releases;
        # numeric identifiers rank below alphanumeric ones and compare as numbers.
        if not self.pre:
            return (1,)
        return (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre), ())

    def __lt__(self, other: Version) -> bool:
        return (self.core, self._pre_key()) < (other.core, other._pre_key())

    def __gt__(self, other: Version) -> bool:
        return other < self


# ------------------------------------------------------------------ inputs
def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MetaError(f"{path} is missing") from None
    if not isinstance(data, dict):
        raise MetaError(f"{path} is not a YAML mapping")
    return data


def dig(values: dict[str, Any], dotted: str) -> str:
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise MetaError(f"values.yaml has no `{dotted}`: the image list of tools/chartmeta.py needs it")
        node = node[key]
    return str(node)


def images(chart: dict[str, Any], values: dict[str, Any]) -> list[dict[str, str]]:
    """Every image the chart's defaults can run, as Artifact Hub lists them."""
    app, version = str(chart["appVersion"]), str(chart["version"])
    matomo = dig(values, "image.repository")
    hook_tag = dig(values, "hook.image.tag") or version
    out = [
        {"name": "matomo", "image": f"{matomo}:{app}-apache"},
        {"name": "matomo-fpm", "image": f"{matomo}:{app}-fpm"},
        {"name": "nginx", "image": f"{dig(values, 'nginx.image.repository')}:{dig(values, 'nginx.image.tag')}"},
        {"name": "matomo-hook", "image": f"{dig(values, 'hook.image.repository')}:{hook_tag}"},
        {"name": "mariadb", "image": f"{dig(values, 'database.embedded.image.repository')}:"
                                     f"{dig(values, 'database.embedded.image.tag')}"},
        {"name": "cloud-sql-proxy", "image": f"{dig(values, 'database.cloudsql.image.repository')}:"
                                             f"{dig(values, 'database.cloudsql.image.tag')}"},
        {"name": "redis", "image": f"{dig(values, 'queue.redis.embedded.image.repository')}:"
                                   f"{dig(values, 'queue.redis.embedded.image.tag')}"},
    ]
    test_image = dig(values, "helmTest.image")
    if test_image:
        out.append({"name": "helm-test", "image": test_image})
    return out


SECTION = re.compile(r"^## \[?v?([^\]\s]+)\]?(?:\s+-\s+.*)?$")
KIND = re.compile(r"^### (\w+)\s*$")


def changelog_sections(text: str) -> dict[str, list[dict[str, str]]]:
    """{version: [{kind, description}, ...]} from CHANGELOG.md (bullets may wrap onto indented lines)."""
    sections: dict[str, list[dict[str, str]]] = {}
    current: list[dict[str, str]] | None = None
    kind = ""
    for n, line in enumerate(text.splitlines(), 1):
        if m := SECTION.match(line):
            current = sections.setdefault(m.group(1), [])
            kind = ""
        elif current is None:
            continue
        elif m := KIND.match(line):
            kind = m.group(1).lower()
            if kind not in KINDS:
                raise MetaError(f"CHANGELOG.md:{n}: `### {m.group(1)}` is not one of "
                                f"{', '.join(sorted(k.capitalize() for k in KINDS))}")
        elif line.startswith("- "):
            if not kind:
                raise MetaError(f"CHANGELOG.md:{n}: a change outside a `### Added` (Changed, Fixed, ...) list")
            current.append({"kind": kind, "description": line[2:].strip()})
        elif line.startswith("  ") and line.strip() and current:
            current[-1]["description"] += " " + line.strip()
    return sections


def changes(root: Path, version: str) -> list[dict[str, str]]:
    path = root / "CHANGELOG.md"
    if not path.exists():
        raise MetaError("CHANGELOG.md is missing: it holds one `## <version>` section per chart version")
    section = changelog_sections(path.read_text(encoding="utf-8")).get(version)
    if not section:
        raise MetaError(f"CHANGELOG.md has no `## {version}` section with changes for the chart's version {version} "
                        "(charts/matomo/Chart.yaml): add one, with `### Added` / `### Changed` / `### Fixed` lists")
    return section


# ------------------------------------------------------- Chart.yaml blocks
def render_block(key: str, value: list[dict[str, str]]) -> list[str]:
    body = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100000)
    return [f"  {key}: |"] + [f"    {line}" for line in body.splitlines()]


def replace_block(text: str, key: str, block: list[str]) -> str:
    """Chart.yaml with the annotation `key` replaced by `block` (added at the end of `annotations:` when absent)."""
    lines = text.splitlines()
    head = f"  {key}:"
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(head))
        end = start + 1
        while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():  # blank lines after the block stay
            end -= 1
    except StopIteration:
        try:
            ann = next(i for i, line in enumerate(lines) if line.rstrip() == "annotations:")
        except StopIteration:
            lines.append("annotations:")
            ann = len(lines) - 1
        start = end = ann + 1
        while end < len(lines) and (lines[end].startswith("  ") or not lines[end].strip()):
            end += 1
        while end > ann + 1 and not lines[end - 1].strip():
            end -= 1
        start = end
    return "\n".join([*lines[:start], *block, *lines[end:]]) + "\n"


def generated(root: Path) -> tuple[str, dict[str, list[dict[str, str]]]]:
    chart_yaml = root / CHART_DIR / "Chart.yaml"
    chart = load_yaml(chart_yaml)
    values = load_yaml(root / CHART_DIR / "values.yaml")
    want = {"artifacthub.io/images": images(chart, values),
            "artifacthub.io/changes": changes(root, str(chart["version"]))}
    text = chart_yaml.read_text(encoding="utf-8")
    for key, value in want.items():
        text = replace_block(text, key, render_block(key, value))
    return text, want


def write(root: Path) -> None:
    text, _ = generated(root)
    path = root / CHART_DIR / "Chart.yaml"
    if path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
        print(f"regenerated {', '.join(GENERATED)} in {CHART_DIR / 'Chart.yaml'}")


# ------------------------------------------------------------------- rules
def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def check_bump(root: Path, version: Version) -> str:
    """The version bump rule against the newest `v*` tag reachable from HEAD; returns what it found."""
    if git(root, "rev-parse", "--is-inside-work-tree").returncode != 0:
        return "version bump: not a git work tree, nothing to compare with"
    tag = git(root, "describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD")
    if tag.returncode != 0:
        return "version bump: no `v*` tag reachable from HEAD, nothing to compare with (passes)"
    name = tag.stdout.strip()
    released = Version.parse(name[1:], f"tag {name}")
    changed = git(root, "diff", "--name-only", name, "--", str(CHART_DIR)).stdout.split()
    changed += git(root, "ls-files", "--others", "--exclude-standard", "--", str(CHART_DIR)).stdout.split()
    if not changed:
        return f"version bump: {CHART_DIR} unchanged since {name}"
    if not version > released:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise MetaError(f"{CHART_DIR} changed since the tag {name} ({shown}), but its version {version.text} "
                        f"is not greater than {released.text}: raise `version:` in {CHART_DIR}/Chart.yaml "
                        f"(e.g. {released.core[0]}.{released.core[1]}.{released.core[2] + 1}) and add its "
                        "section to CHANGELOG.md")
    return f"version bump: {CHART_DIR} changed since {name}, version {version.text} > {released.text}"


def check(root: Path) -> list[str]:
    """Every rule; raises MetaError listing each one broken."""
    errors: list[str] = []
    notes: list[str] = []
    chart = load_yaml(root / CHART_DIR / "Chart.yaml")
    annotations = chart.get("annotations") or {}
    try:
        version = Version.parse(str(chart.get("version")), f"{CHART_DIR}/Chart.yaml version")
        notes.append(check_bump(root, version))
    except MetaError as e:
        errors.append(str(e))
    try:
        _, want = generated(root)
        for key, value in want.items():
            have = yaml.safe_load(str(annotations.get(key, ""))) if key in annotations else None
            if have != value:
                errors.append(f"{CHART_DIR}/Chart.yaml annotation {key} is not what CHANGELOG.md and values.yaml "
                              "give: run ./dev docs (tools/chartmeta.py write) and commit Chart.yaml")
    except MetaError as e:
        errors.append(str(e))
    if not str(annotations.get("artifacthub.io/license", "")).strip():
        errors.append(f"{CHART_DIR}/Chart.yaml has no annotation artifacthub.io/license (an SPDX id, e.g. Apache-2.0)")
    maintainers = chart.get("maintainers") or []
    if not maintainers or not all(isinstance(m, dict) and m.get("name") for m in maintainers):
        errors.append(f"{CHART_DIR}/Chart.yaml needs `maintainers:` entries, each with a `name`")
    if errors:
        raise MetaError("\n".join(errors))
    return notes


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["check", "write"])
    p.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    args = p.parse_args(argv)
    try:
        if args.command == "write":
            write(args.root)
        else:
            for note in check(args.root):
                print(note)
            print("chart metadata: ok")
    except MetaError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
