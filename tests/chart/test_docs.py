"""The values have one source: values.schema.yaml (type, validation,
description) and values.yaml (defaults). tools/chartvalues.py generates
values.schema.json, the `# --` comments of values.yaml, the values tables and
files/timezones.txt from them (./dev docs); these tests fail when one of those
is stale, when the two sources disagree in either direction, and when the
time zone list is not Matomo's."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from chartlib import CHART, REPO

TOOL = REPO / "tools" / "chartvalues.py"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chartvalues", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chartvalues"] = module
    spec.loader.exec_module(module)
    return module


cv = _load_tool()


def _schema() -> dict[str, Any]:
    result: dict[str, Any] = cv.build_schema(yaml.safe_load((CHART / "values.schema.yaml").read_text()))
    return result


def _values() -> dict[str, Any]:
    result: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return result


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(TOOL), "check"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_every_value_has_a_schema_entry_and_every_schema_entry_a_value() -> None:
    assert cv.disagreements(_schema(), _values()) == []


def test_a_value_the_schema_does_not_describe_is_named() -> None:
    values = _values()
    values["database"]["tablePrefix"] = "x_"
    values["replicaCont"] = 2
    errors = cv.disagreements(_schema(), values)
    assert len(errors) == 2, errors
    assert any("`database.tablePrefix`" in e and "does not describe" in e for e in errors), errors
    assert any("`replicaCont`" in e for e in errors), errors


def test_a_schema_entry_without_a_value_is_named() -> None:
    values = _values()
    del values["hook"]["timeouts"]["lock"]
    del values["helmTest"]
    errors = cv.disagreements(_schema(), values)
    assert len(errors) == 2, errors
    assert any("`hook.timeouts.lock`" in e and "give it its default" in e for e in errors), errors
    assert any("`helmTest`" in e for e in errors), errors


def test_a_group_given_a_scalar_is_named() -> None:
    values = _values()
    values["hook"]["timeouts"] = 300
    errors = cv.disagreements(_schema(), values)
    assert errors and "`hook.timeouts` is a group of values" in errors[0], errors


def test_the_content_of_a_value_is_the_users() -> None:
    """Maps and Kubernetes objects are one value each: their keys are validated by the schema, not compared."""
    values = _values()
    values["podAnnotations"] = {"example.org/any": "thing"}
    values["podSecurityContext"]["fsGroupChangePolicy"] = "OnRootMismatch"
    assert cv.disagreements(_schema(), values) == []


def test_an_entry_with_neither_description_nor_properties_is_refused() -> None:
    source = {"properties": {"replicaCount": {"type": "integer"}}}
    with pytest.raises(cv.ValuesError, match="`replicaCount` has neither a description"):
        cv.build_schema(source)


def test_refs_are_written_out_with_the_keys_beside_them_on_top() -> None:
    source = {
        "$defs": {"name": {"type": "string", "maxLength": 63, "$comment": "for readers"},
                  "image": {"properties": {"tag": {"type": "string"}}, "required": ["tag"]}},
        "properties": {
            "short": {"$ref": "#/$defs/name", "maxLength": 50, "description": "d"},
            "image": {"$ref": "#/$defs/image", "properties": {"tag": {"description": "t"}}},
        },
    }
    schema = cv.build_schema(source)
    assert schema["properties"]["short"] == {"type": "string", "maxLength": 50, "description": "d"}
    assert schema["properties"]["image"] == {
        "type": "object", "additionalProperties": False,
        "properties": {"tag": {"type": "string", "description": "t"}}, "required": ["tag"],
    }
    with pytest.raises(cv.ValuesError, match="#/definitions/name"):
        cv.build_schema({"properties": {"x": {"$ref": "#/definitions/name", "description": "d"}}})


def test_the_generated_schema_has_no_refs_and_allows_helms_global() -> None:
    text = (CHART / "values.schema.json").read_text()
    assert "$ref" not in text and "$defs" not in text and "$comment" not in text
    schema = json.loads(text)
    assert schema["properties"]["global"]["type"] == "object"
    assert schema["additionalProperties"] is False


def test_every_value_is_a_row_of_the_chart_readme_table() -> None:
    readme = (CHART / "README.md").read_text()
    missing = [path for path, _ in cv.values_of(_schema()) if f"\n| {path} | " not in readme]
    assert not missing, missing


def test_every_value_has_its_description_above_it_in_values_yaml() -> None:
    text = (CHART / "values.yaml").read_text()
    for path, node in cv.values_of(_schema()):
        key = path.rsplit(".", 1)[-1]
        first = " ".join(str(node["description"]).split())[:40].split()[0]
        assert re.search(rf"# -- {re.escape(first)}.*?\n(\s*# .*\n)*\s*{re.escape(key)}:", text), path


# ------------------------------------------------------------------ time zones
def _timezones() -> list[str]:
    lines = (CHART / "files" / "timezones.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_timezones_are_zone_tab_utc_and_matomos_offsets() -> None:
    zones = _timezones()
    assert len(zones) == len(set(zones))
    offsets = [z for z in zones if z.startswith("UTC")]
    assert len(offsets) == 55 and "UTC" in offsets and "UTC+5.5" in offsets and "UTC-12" in offsets
    assert len(zones) - len(offsets) >= 400
    assert {"Europe/Berlin", "America/Argentina/Buenos_Aires", "America/Port-au-Prince"} <= set(zones)
    assert not {"US/Pacific", "Etc/GMT+5", "GMT", "Europe/Kiev"} & set(zones), "aliases are not in zone.tab"


def test_the_offsets_are_matomos(genuine_src: Path) -> None:
    api = (genuine_src / "plugins" / "SitesManager" / "API.php").read_text()
    m = re.search(r"\$GmtOffsets = \[([^\]]*)\]", api)
    assert m, "Matomo's getTimezonesListUTCOffsets changed: read it again"
    assert [float(x) for x in m.group(1).split(",")] == [float(x) for x in cv.UTC_OFFSETS]


def test_the_zones_are_those_matomo_lists_with_this_machines_php(genuine_src: Path) -> None:
    """Matomo's own getTimezonesList logic (each country of its list, the zones PHP lists for it), run by
    this machine's PHP, when its tzdata is the version the chart's list was made from."""
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed (apt-get install php-cli to run this test)")
    head = (CHART / "files" / "timezones.txt").read_text()
    pinned = re.search(r"tzdata (\S+)'s zone\.tab", head)
    assert pinned
    tzdata_zi = Path("/usr/share/zoneinfo/tzdata.zi")
    system = tzdata_zi.read_text().splitlines()[0].removeprefix("# version ") if tzdata_zi.exists() else "unknown"
    if system != pinned.group(1):
        pytest.skip(f"this machine's tzdata is {system}, the chart's list comes from {pinned.group(1)}")
    code = ("$c = require $argv[1]; $z = [];"
            "foreach ($c as $cc => $k) foreach (DateTimeZone::listIdentifiers(DateTimeZone::PER_COUNTRY,"
            " strtoupper($cc)) as $t) $z[] = $t; echo json_encode($z);")
    countries = genuine_src / "core" / "Intl" / "Data" / "Resources" / "countries.php"
    out = subprocess.run([php, "-r", code, str(countries)], capture_output=True, text=True, timeout=60, check=True)
    matomo = sorted(set(json.loads(out.stdout)))
    assert matomo == [z for z in _timezones() if not z.startswith("UTC")]
