#!/usr/bin/env python3
"""The values of charts/matomo, from one source.

    python3 tools/chartvalues.py write [--root DIR]   # regenerate every output below (./dev docs)
    python3 tools/chartvalues.py check [--root DIR]   # exit 1 naming each output out of date, and each
                                                       # disagreement of the two sources (./dev lint)

Sources (each fact stated once):
  - charts/matomo/values.schema.yaml: the type, the validation and the
    description of every value, with shared definitions under `$defs` (its
    header says how to read it);
  - charts/matomo/values.yaml: the default of every value.
Generated from them:
  - charts/matomo/values.schema.json: the schema with every `$ref` written
    out in place (no `$defs`, no `$comment`), for Helm;
  - the `# --` comments of values.yaml: each value's description, above its
    key (`helm show values` shows them; other comments are kept as written);
  - the values table (key, type, default, description) between the
    `<!-- values-table:start -->` and `<!-- values-table:end -->` markers of
    charts/matomo/README.md (and of README.md while it has them), and the
    chart header (name, badges, description, requirements, from Chart.yaml)
    between the `chart-header` markers of charts/matomo/README.md;
  - charts/matomo/files/timezones.txt: the time zones Matomo offers for a
    website, which templates/_helpers-validate.tpl checks
    `matomo.site.timezone` against.
Checked: the two sources agree both ways: every key of values.yaml is a value
or a group of values.schema.yaml, and every value and group of the schema is
a key of values.yaml. A value's own content (a map of annotations, a security
context) is the user's: it is validated by the schema, not compared.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.resources
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART_DIR = Path("charts/matomo")
SOURCE = CHART_DIR / "values.schema.yaml"
VALUES = CHART_DIR / "values.yaml"
SCHEMA = CHART_DIR / "values.schema.json"
CHART_README = CHART_DIR / "README.md"
TIMEZONES = CHART_DIR / "files" / "timezones.txt"
# READMEs whose values table is generated when they have the markers (the chart's must).
TABLE_READMES = (CHART_README, Path("README.md"))
MARKERS = {
    "values-table": ("<!-- values-table:start -->", "<!-- values-table:end -->"),
    "chart-header": ("<!-- chart-header:start -->", "<!-- chart-header:end -->"),
}
# Helm gives every chart `global` (values shared with subcharts): allowed, not a value of this chart.
HELM_GLOBAL = {"type": "object", "description": "Helm's values shared with subcharts (this chart reads none)."}
COMMENT_WIDTH = 150

# Matomo's fixed offsets, as plugins/SitesManager/API.php (getTimezonesListUTCOffsets) of
# Matomo 5.1.2 lists them; 0 is `UTC`. tests/chart/test_docs.py compares them with a release.
UTC_OFFSETS = (-12, -11.5, -11, -10.5, -10, -9.5, -9, -8.5, -8, -7.5, -7, -6.5, -6, -5.5, -5, -4.5, -4, -3.5, -3,
               -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 5.75, 6, 6.5, 7, 7.5, 8,
               8.5, 8.75, 9, 9.5, 10, 10.5, 11, 11.5, 12, 12.75, 13, 13.75, 14)


class ValuesError(Exception):
    """The sources are wrong or disagree; the message says what to change."""


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValuesError(f"{path} is missing") from None
    if not isinstance(data, dict):
        raise ValuesError(f"{path} is not a YAML mapping")
    return data


# ------------------------------------------------------------------ schema
def merge(base: Any, extra: Any) -> Any:
    """`extra` on top of `base`: maps key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return extra


def expand(node: Any, defs: dict[str, Any], where: str) -> Any:
    """`node` with every `$ref: "#/$defs/NAME"` replaced by NAME merged with the keys beside it, and no `$comment`."""
    if isinstance(node, list):
        return [expand(item, defs, where) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: expand(v, defs, f"{where}.{k}") for k, v in node.items() if k not in ("$ref", "$comment")}
    if "$ref" in node:
        ref = str(node["$ref"])
        name = ref.removeprefix("#/$defs/")
        if name == ref or name not in defs:
            raise ValuesError(f"{SOURCE}: {where} refers to {ref!r}: use \"#/$defs/NAME\" with NAME one of "
                              f"{', '.join(sorted(defs))}")
        out = merge(expand(defs[name], defs, f"$defs.{name}"), out)
    return out


def is_value(node: dict[str, Any]) -> bool:
    return "description" in node


def shape(node: dict[str, Any], path: str) -> dict[str, Any]:
    """A group of values as Helm gets it: an object with exactly the listed properties."""
    props = node.get("properties")
    if not isinstance(props, dict) or not props:
        raise ValuesError(f"{SOURCE}: `{path}` has neither a description (a value) nor properties (a group): "
                          "describe it")
    out: dict[str, Any] = {k: node[k] for k in ("$schema", "title") if k in node}
    out.update({"type": "object", "additionalProperties": False})
    out.update({k: v for k, v in node.items() if k not in out})
    out["properties"] = {}
    for key, child in props.items():
        if not isinstance(child, dict):
            raise ValuesError(f"{SOURCE}: `{join(path, key)}` is {child!r}: give it a description (a value) or "
                              "properties (a group)")
        if is_value(child) and not str(child["description"]).strip():
            raise ValuesError(f"{SOURCE}: `{join(path, key)}` has an empty description: say what it does")
        out["properties"][key] = child if is_value(child) else shape(child, join(path, key))
    return out


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def build_schema(source: dict[str, Any]) -> dict[str, Any]:
    defs = source.get("$defs") or {}
    body = {k: v for k, v in source.items() if k != "$defs"}
    schema = shape(expand(body, defs, "(top)"), "")
    schema["properties"] = {"global": HELM_GLOBAL, **schema["properties"]}
    return schema


def values_of(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(dotted path, schema) of every value, in the schema's order."""
    out: list[tuple[str, dict[str, Any]]] = []
    for key, node in schema["properties"].items():
        if not path and key == "global":
            continue
        if is_value(node):
            out.append((join(path, key), node))
        else:
            out += values_of(node, join(path, key))
    return out


def disagreements(schema: dict[str, Any], values: Any, path: str = "") -> list[str]:
    """Where values.yaml and the schema disagree, both ways, each saying what to change."""
    where = f"`{path}`" if path else "the top level"
    if not isinstance(values, dict):
        return [(f"{VALUES}: {where} is a group of values in {SOURCE}, but values.yaml gives it {values!r}: "
                 "give it its values' defaults")]
    errors: list[str] = []
    props = schema["properties"]
    for key in values:
        if key not in props:
            errors.append(f"{VALUES} has `{join(path, key)}`, which {SOURCE} does not describe: add it there "
                          "(type, validation, description) or remove it from values.yaml")
    for key, node in props.items():
        if not path and key == "global":
            continue
        if key not in values:
            errors.append(f"{SOURCE} describes `{join(path, key)}`, which {VALUES} does not have: give it its "
                          "default in values.yaml or remove it from the schema")
        elif not is_value(node):
            errors += disagreements(node, values[key], join(path, key))
    return errors


# ------------------------------------------------------------------ values.yaml comments
def key_lines(text: str) -> dict[str, tuple[int, int]]:
    """dotted path -> (line, column) of every key of a mapping in the YAML text."""
    out: dict[str, tuple[int, int]] = {}

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                dotted = join(path, str(key.value))
                out[dotted] = (key.start_mark.line, key.start_mark.column)
                walk(value, dotted)

    root = yaml.compose(text)
    if root is not None:
        walk(root, "")
    return out


def comment(description: str, column: int) -> list[str]:
    indent = " " * column
    lines = textwrap.wrap(" ".join(description.split()), width=COMMENT_WIDTH - column - 2,
                          break_long_words=False, break_on_hyphens=False)
    return [f"{indent}# -- {lines[0]}\n"] + [f"{indent}# {line}\n" for line in lines[1:]]


def commented_values(text: str, schema: dict[str, Any]) -> str:
    """values.yaml with each value's description as a `# --` comment above its key, and no other `# --` comment.
    A `# --` block runs from its `# --` line to the next line that is not a comment."""
    kept: list[str] = []
    in_block = False
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip()
        in_block = stripped.startswith("# --") or (in_block and stripped.startswith("#"))
        if not in_block:
            kept.append(line)
    at = key_lines("".join(kept))
    above: dict[int, list[str]] = {}
    for path, node in values_of(schema):
        if path in at:
            row, column = at[path]
            above[row] = comment(str(node["description"]), column)
    return "".join("".join(above.get(i, [])) + line for i, line in enumerate(kept))


# ------------------------------------------------------------------ table
TYPE_NAMES = {"integer": "int", "boolean": "bool", "array": "list", "number": "float"}


def type_name(node: dict[str, Any]) -> str:
    if "oneOf" in node or "anyOf" in node:
        names = [type_name(alt) for alt in node.get("oneOf") or node.get("anyOf") or []]
    else:
        kind = node.get("type", "any")
        names = [TYPE_NAMES.get(str(k), str(k)) for k in (kind if isinstance(kind, list) else [kind])]
    return " or ".join(dict.fromkeys(names))


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def default_of(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        node = node[key]
    return node


def table(schema: dict[str, Any], values: dict[str, Any]) -> str:
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for path, node in sorted(values_of(schema)):
        default = json.dumps(default_of(values, path), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        rows.append(f"| {path} | {type_name(node)} | `{cell(default)}` | {cell(str(node['description']))} |")
    return "\n".join(rows)


def badge(label: str, value: str) -> str:
    escaped = value.replace("-", "--").replace("_", "__")
    return f"![{label}: {value}](https://img.shields.io/badge/{label}-{escaped}-informational?style=flat-square)"


def chart_header(chart: dict[str, Any]) -> str:
    badges = [badge("Version", str(chart["version"])), badge("Type", str(chart.get("type", "application")))]
    if chart.get("appVersion"):
        badges.append(badge("AppVersion", str(chart["appVersion"])))
    parts = [f"# {chart['name']}", " ".join(badges), str(chart.get("description", "")).strip()]
    if chart.get("kubeVersion"):
        parts.append(f"## Requirements\n\nKubernetes: `{chart['kubeVersion']}`")
    return "\n\n".join(p for p in parts if p)


def splice(text: str, name: str, content: str, path: Path) -> str:
    start, end = MARKERS[name]
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValuesError(f"{path} has no `{start}` ... `{end}` markers: put them where the {name} goes")
    return text[: i + len(start)] + "\n" + content + "\n" + text[j:]


# ------------------------------------------------------------------ time zones
def offset_name(offset: float) -> str:
    """As Matomo names it: UTC, UTC+5.5, UTC-12."""
    return "UTC" if offset == 0 else f"UTC{offset:+g}"


def timezones(root: Path) -> str:
    """Matomo's list: for each country of its list (which holds every country of zone.tab), the zones PHP lists
    for it, that is the zones of tzdata's zone.tab; then UTC and the fixed offsets. From the tzdata package
    requirements-dev.txt pins, so that every machine makes the same list."""
    pin = re.search(r"^tzdata==(\S+)", (root / "requirements-dev.txt").read_text(encoding="utf-8"), re.MULTILINE)
    try:
        tzdata = importlib.import_module("tzdata")
        zone_tab = importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
        installed = importlib.metadata.version("tzdata")
    except (ImportError, FileNotFoundError, importlib.metadata.PackageNotFoundError):
        raise ValuesError("the Python package tzdata (requirements-dev.txt) is missing: run ./dev tools") from None
    if pin and pin.group(1) != installed:
        raise ValuesError(f"tzdata {installed} is installed, requirements-dev.txt pins {pin.group(1)}: run ./dev tools "
                          "(files/timezones.txt comes from the pinned one)")
    zones = sorted({line.split("\t")[2] for line in zone_tab.splitlines() if line and not line.startswith("#")})
    head = [
        "# Time zones Matomo 5.1.2 offers for a website (plugins/SitesManager/API.php, getTimezonesList):",
        f"# the {len(zones)} zones of tzdata {tzdata.IANA_VERSION}'s zone.tab, then its fixed offsets.",
        "# Generated by tools/chartvalues.py (./dev docs); templates/_helpers-validate.tpl checks",
        "# matomo.site.timezone against it.",
    ]
    return "\n".join(head + zones + [offset_name(o) for o in UTC_OFFSETS]) + "\n"


# ------------------------------------------------------------------ outputs
def outputs(root: Path) -> dict[Path, str]:
    """Every generated file, as it should read."""
    source = load_yaml(root / SOURCE)
    values = load_yaml(root / VALUES)
    schema = build_schema(source)
    errors = disagreements(schema, values)
    if errors:
        raise ValuesError("\n".join(errors))
    want = {
        SCHEMA: json.dumps(schema, indent=2, ensure_ascii=False) + "\n",
        VALUES: commented_values((root / VALUES).read_text(encoding="utf-8"), schema),
        TIMEZONES: timezones(root),
    }
    rows = table(schema, values)
    for readme in TABLE_READMES:
        path = root / readme
        if not path.exists() or (readme != CHART_README and MARKERS["values-table"][0] not in path.read_text()):
            continue
        text = splice(path.read_text(encoding="utf-8"), "values-table", rows, readme)
        if readme == CHART_README:
            text = splice(text, "chart-header", chart_header(load_yaml(root / CHART_DIR / "Chart.yaml")), readme)
        want[readme] = text
    return want


def write(root: Path) -> None:
    for rel, text in outputs(root).items():
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"regenerated {rel}")


def check(root: Path) -> None:
    stale = [str(rel) for rel, text in outputs(root).items()
             if not (root / rel).exists() or (root / rel).read_text(encoding="utf-8") != text]
    if stale:
        raise ValuesError(f"out of date with {SOURCE} and {VALUES}: {', '.join(stale)}: run ./dev docs "
                          "(tools/chartvalues.py write) and commit them (edit descriptions and validation in "
                          f"{SOURCE.name}, defaults in {VALUES.name}, never the generated files)")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["check", "write"])
    p.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    args = p.parse_args(argv)
    try:
        if args.command == "write":
            write(args.root)
        else:
            check(args.root)
            print("values: schema, values.yaml comments, values tables and time zones up to date")
    except ValuesError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
