"""Fixtures for the hook suite: the installer stand-in, a Matomo code dir and
the hook's environment; helpers to run the real ``matomo-hook`` script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.mariadb import MariaDB
from standin.server import Faults, StandIn

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
SECRET_SALT = "salt-" + "5a1t" * 6
SUPERUSER_PASSWORD = "su-Pa55w0rd-" + "x7q"


def hook_command() -> list[str]:
    script = Path(sys.executable).parent / "matomo-hook"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from matomo_hook.cli import main; sys.exit(main())"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr.splitlines():
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def state(self) -> dict[str, Any]:
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert lines, f"no stdout; stderr: {self.stderr}"
        return dict(json.loads(lines[-1]))


ALL_OUTPUT: list[str] = []


def run_hook(env: dict[str, str], *args: str, timeout: float = 120) -> Result:
    proc = subprocess.run(
        [*hook_command(), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    ALL_OUTPUT.extend([proc.stdout, proc.stderr])
    return Result(proc.returncode, proc.stdout, proc.stderr)


def start_hook(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*hook_command(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def make_matomo_root(path: Path, version: str = "5.1.2") -> Path:
    (path / "config").mkdir(parents=True, exist_ok=True)
    (path / "core").mkdir(parents=True, exist_ok=True)
    set_code_version(path, version)
    (path / "console").write_text("#!/usr/bin/env php\n", encoding="utf-8")
    return path


def set_code_version(root: Path, version: str) -> None:
    (root / "core" / "Version.php").write_text(
        "<?php\nnamespace Piwik;\nfinal class Version\n{\n"
        f"    const VERSION = '{version}';\n    const MAJOR_VERSION = 5;\n}}\n",
        encoding="utf-8",
    )


@pytest.fixture
def matomo_root(tmp_path: Path) -> Path:
    return make_matomo_root(tmp_path / "matomo")


@pytest.fixture
def standin(matomo_root: Path) -> Iterator[StandIn]:
    srv = StandIn(matomo_root, faults=Faults()).start()
    try:
        yield srv
    finally:
        srv.stop()


def base_env(mariadb: MariaDB, database: str, root: Path, installer_url: str,
             channel: Path) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATOMO_", "KUBE"))}
    env.update(
        MATOMO_DATABASE_HOST="127.0.0.1",
        MATOMO_DATABASE_PORT=str(mariadb.port),
        MATOMO_DATABASE_USERNAME=mariadb.user,
        MATOMO_DATABASE_PASSWORD=mariadb.password,
        MATOMO_DATABASE_DBNAME=database,
        MATOMO_DATABASE_TABLES_PREFIX="matomo_",
        MATOMO_DATABASE_SCHEMA="Mariadb",
        MATOMO_SALT=SECRET_SALT,
        MATOMO_INSTALLER_URL=installer_url,
        MATOMO_CONFIG_FILE=str(root / "config" / "config.ini.php"),
        MATOMO_COMMAND_DIR=str(channel),
        MATOMO_VERSION_FILE=str(root / "core" / "Version.php"),
        MATOMO_SUPERUSER_LOGIN="admin",
        MATOMO_SUPERUSER_PASSWORD=SUPERUSER_PASSWORD,
        MATOMO_SUPERUSER_EMAIL="admin@example.com",
        MATOMO_SITE_NAME="Example",
        MATOMO_SITE_URL="https://www.example.com",
        MATOMO_SITE_TIMEZONE="Europe/Berlin",
        MATOMO_HOOK_NAMESPACE="default",
        MATOMO_HOOK_DB_TIMEOUT="20",
        MATOMO_HOOK_INSTALLER_TIMEOUT="20",
        MATOMO_HOOK_UPGRADE_TIMEOUT="30",
        MATOMO_HOOK_LOCK_TIMEOUT="60",
        PYTHONPATH=str(TESTS),
    )
    return env


@pytest.fixture
def hook_env(mariadb: MariaDB, mariadb_database: str, matomo_root: Path, standin: StandIn,
             tmp_path: Path) -> dict[str, str]:  # fmt: skip
    channel = tmp_path / "channel"
    channel.mkdir()
    return base_env(mariadb, mariadb_database, matomo_root, standin.url, channel)


def checksums(mariadb: MariaDB, database: str) -> dict[str, Any]:
    with mariadb.root(database) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        names = sorted(r[0] for r in cur.fetchall())
        out: dict[str, Any] = {}
        for name in names:
            cur.execute(f"CHECKSUM TABLE `{name}` EXTENDED")
            out[name] = cur.fetchone()[1]
            cur.execute(f"SHOW CREATE TABLE `{name}`")
            out[name + "#ddl"] = cur.fetchone()[1]
        return out
