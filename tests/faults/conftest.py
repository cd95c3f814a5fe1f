"""Fault-injection suite: fixtures built on the shared ones (tests/harness/hookrun.py
and the MariaDB fixture), plus the relay (tests/harness/relay.py) in front of the database, breaking on command."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.hookrun import hook_env, matomo_root, standin  # noqa: F401  (fixtures)
from harness.mariadb import MariaDB
from harness.relay import Relay

# short deadlines: the whole suite must stay within a few minutes
SHORT = {
    "MATOMO_HOOK_DB_TIMEOUT": "15",
    "MATOMO_HOOK_INSTALLER_TIMEOUT": "8",
    "MATOMO_HOOK_UPGRADE_TIMEOUT": "10",
    "MATOMO_HOOK_LOCK_TIMEOUT": "60",
    "MATOMO_HOOK_ROLLOUT_TIMEOUT": "6",
}


@pytest.fixture
def db_proxy(mariadb: MariaDB) -> Iterator[Relay]:
    with Relay(("127.0.0.1", mariadb.port)) as proxy:
        yield proxy


@pytest.fixture
def fault_env(hook_env: dict[str, str], db_proxy: Relay) -> dict[str, str]:  # noqa: F811
    """The hook's environment with the database (for the hook AND the installer,
    which reads the seeded config) behind the fault proxy."""
    return {**hook_env, "MATOMO_DATABASE_PORT": str(db_proxy.port), **SHORT}
