"""Fault-injection suite: fixtures built on the hook suite's (tests/hook/conftest.py)
and the shared MariaDB fixture, plus the TCP fault proxy in front of the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.mariadb import MariaDB
from hook.conftest import base_env, make_matomo_root
from standin.server import Faults, StandIn

from .tcpproxy import TcpProxy

# short deadlines: the whole suite must stay within a few minutes
SHORT = {
    "MATOMO_HOOK_DB_TIMEOUT": "15",
    "MATOMO_HOOK_INSTALLER_TIMEOUT": "8",
    "MATOMO_HOOK_UPGRADE_TIMEOUT": "10",
    "MATOMO_HOOK_LOCK_TIMEOUT": "60",
    "MATOMO_HOOK_ROLLOUT_TIMEOUT": "6",
}


@pytest.fixture
def fault_root(tmp_path: Path) -> Path:
    return make_matomo_root(tmp_path / "matomo")


@pytest.fixture
def fault_standin(fault_root: Path) -> Iterator[StandIn]:
    srv = StandIn(fault_root, faults=Faults()).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def db_proxy(mariadb: MariaDB) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", mariadb.port) as proxy:
        yield proxy


@pytest.fixture
def fault_env(
    mariadb: MariaDB, mariadb_database: str, fault_root: Path, fault_standin: StandIn,
    db_proxy: TcpProxy, tmp_path: Path,
) -> dict[str, str]:  # fmt: skip
    """The hook's environment with the database (for the hook AND the installer,
    which reads the seeded config) behind the fault proxy."""
    channel = tmp_path / "channel"
    channel.mkdir()
    env = base_env(mariadb, mariadb_database, fault_root, fault_standin.url, channel)
    env["MATOMO_DATABASE_PORT"] = str(db_proxy.port)
    env.update(SHORT)
    return env
