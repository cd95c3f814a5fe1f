"""Fixtures for the hook suite: the shared ones from tests/harness/hookrun.py
(a Matomo code dir, the installer stand-in, the hook's environment, running
the real ``matomo-hook`` script) plus what only this suite uses."""

from __future__ import annotations

import subprocess
from typing import Any

from harness.hookrun import (  # noqa: F401  (fixtures, and names the suite's tests import from here)
    REPO,
    SECRET_SALT,
    SUPERUSER_PASSWORD,
    TESTS,
    base_env,
    hook_command,
    hook_env,
    make_matomo_root,
    matomo_root,
    run_hook,
    set_code_version,
    standin,
)
from harness.mariadb import MariaDB


def start_hook(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*hook_command(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


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
