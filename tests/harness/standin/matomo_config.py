"""Reads and writes config/config.ini.php the way Matomo does (core/Config.php,
core/Config/IniFileChain.php): INI sections, ``key = "value"``, ``key[] = "v"``."""

from __future__ import annotations

import os
import re
from pathlib import Path

HEADER = "; <?php exit; ?> DO NOT REMOVE THIS LINE\n"

Config = dict[str, dict[str, str | list[str]]]


def read(path: Path) -> Config | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data: Config = {}
    section: dict[str, str | list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            section = data.setdefault(m.group(1), {})
            continue
        if section is None or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if key.endswith("[]"):
            existing = section.setdefault(key[:-2], [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            section[key] = value
    return data


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write(path: Path, data: Config) -> None:
    lines = [HEADER.rstrip("\n"), "; file automatically generated or modified by Matomo"]
    for name, section in data.items():
        lines.append(f"\n[{name}]")
        for key, value in section.items():
            if isinstance(value, list):
                lines.extend(f"{key}[] = {_quote(v)}" for v in value)
            else:
                lines.append(f"{key} = {_quote(value)}")
    tmp = path.with_name(path.name + ".standin-tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def is_installed(data: Config | None) -> bool:
    """core/SettingsPiwik.php isMatomoInstalled."""
    if data is None:
        return False
    general = data.get("General", {})
    db = data.get("database", {})
    return not general.get("installation_in_progress") and bool(db.get("username"))
