"""Several hooks at once, and settings that must be refused before any write."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.mariadb import MariaDB
from harness.standin.server import StandIn

from .faultlib import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_UNREACHABLE,
    Running,
    assert_unchanged,
    config_text,
    errors_of,
    run,
    snapshot,
    state_of,
)


@pytest.mark.parametrize("count", [2, 5])
def test_hooks_at_once(count: int, fault_env: dict[str, str], standin: StandIn,
                       mariadb: MariaDB, mariadb_database: str) -> None:  # fmt: skip
    """before: empty. fault: ``count`` hooks start at the same moment.
    after: all exit 0 and report installed; the installer saw each step once;
    one superuser, one site."""
    hooks = [Running.start(fault_env, "install") for _ in range(count)]
    results = [h.finish(timeout=120) for h in hooks]
    for res in results:
        assert res.returncode == EXIT_OK, res.stderr
        assert state_of(res)["state"] == "installed"  # type: ignore[index]
    actions = standin.actions()
    assert actions == ["tablesCreation", "setupSuperUser", "firstWebsiteSetup", "finished"], actions
    with mariadb.root(mariadb_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM matomo_user WHERE superuser_access = 1")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT COUNT(*) FROM matomo_site")
        assert cur.fetchone()[0] == 1


def test_hooks_at_once_on_installed(fault_env: dict[str, str], standin: StandIn,
                                    mariadb: MariaDB, mariadb_database: str) -> None:  # fmt: skip
    """before: installed. fault: five hooks at once. after: all exit 0, nothing
    was sent to the installer, every table byte-for-byte the same."""
    assert run(fault_env, "install").returncode == EXIT_OK
    before = snapshot(mariadb, mariadb_database)
    standin.requests.clear()
    hooks = [Running.start(fault_env, "install") for _ in range(5)]
    for res in [h.finish(timeout=120) for h in hooks]:
        assert res.returncode == EXIT_OK, res.stderr
    assert standin.requests == []
    assert_unchanged(before, snapshot(mariadb, mariadb_database))


# (case, env change, exit code, setting the message must name)
REFUSALS = [
    ("wrong-password", {"MATOMO_DATABASE_PASSWORD": "not-the-password"}, EXIT_UNREACHABLE,
     "MATOMO_DATABASE_PASSWORD"),
    ("unknown-database", {"MATOMO_DATABASE_DBNAME": "no_such_db"}, EXIT_UNREACHABLE,
     "MATOMO_DATABASE_DBNAME"),
    ("prefix-dash", {"MATOMO_DATABASE_TABLES_PREFIX": "matomo-"}, EXIT_CONFIG,
     "MATOMO_DATABASE_TABLES_PREFIX"),
    ("prefix-backtick", {"MATOMO_DATABASE_TABLES_PREFIX": "m`x_"}, EXIT_CONFIG,
     "MATOMO_DATABASE_TABLES_PREFIX"),
    ("prefix-percent", {"MATOMO_DATABASE_TABLES_PREFIX": "m%_"}, EXIT_CONFIG,
     "MATOMO_DATABASE_TABLES_PREFIX"),
    ("prefix-quote", {"MATOMO_DATABASE_TABLES_PREFIX": "m'_"}, EXIT_CONFIG,
     "MATOMO_DATABASE_TABLES_PREFIX"),
    ("unknown-timezone", {"MATOMO_SITE_TIMEZONE": "Mars/Olympus_Mons"}, EXIT_CONFIG,
     "MATOMO_SITE_TIMEZONE"),
    ("invalid-email", {"MATOMO_SUPERUSER_EMAIL": "admin@localhost"}, EXIT_CONFIG,
     "MATOMO_SUPERUSER_EMAIL"),
    ("invalid-email-2", {"MATOMO_SUPERUSER_EMAIL": "not an email"}, EXIT_CONFIG,
     "MATOMO_SUPERUSER_EMAIL"),
]  # fmt: skip


def names(setting: str, message: str) -> bool:
    """The message names the setting, alone or in a group such as
    ``MATOMO_DATABASE_USERNAME/PASSWORD/DBNAME``."""
    if setting in message:
        return True
    group, _, last = setting.rpartition("_")
    return group + "_" in message and last in message.split(group + "_", 1)[1].split()[0]


@pytest.mark.parametrize(("change", "code", "setting"), [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])  # fmt: skip
@pytest.mark.parametrize("command", ["install", "run"])
def test_refused_before_any_write(
    command: str, change: dict[str, str], code: int, setting: str, fault_env: dict[str, str],
    standin: StandIn, matomo_root: Path, mariadb: MariaDB, mariadb_database: str,
) -> None:  # fmt: skip
    """before: empty database, no config. fault: one bad setting. after: the
    documented exit code, one message naming the setting, no request to the
    installer, no config written, the database unchanged."""
    before = snapshot(mariadb, mariadb_database)
    env = {**fault_env, **change, "MATOMO_HOOK_DB_TIMEOUT": "3", "MATOMO_HOOK_DEPLOYMENT": "matomo"}
    res = run(env, command)
    assert res.returncode == code, res.stderr
    errors = errors_of(res)
    assert len(errors) == 1, res.stderr
    assert names(setting, errors[0]), errors[0]
    assert standin.requests == []
    assert config_text(matomo_root) == ""
    assert_unchanged(before, snapshot(mariadb, mariadb_database))


def test_prefix_underscore_is_not_a_wildcard(fault_env: dict[str, str], mariadb: MariaDB,
                                             mariadb_database: str) -> None:  # fmt: skip
    """before: another application's tables `mXtomo_*` in the same database.
    fault: prefix `m_tomo_` (the `_` is a LIKE wildcard). after: `status` says
    empty (the foreign tables do not count), install creates its own tables
    and leaves the foreign ones byte-for-byte the same."""
    with mariadb.root(mariadb_database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE mXtomo_option (option_name VARCHAR(191) PRIMARY KEY, "
                    "option_value LONGTEXT NOT NULL)")  # fmt: skip
        cur.execute("INSERT INTO mXtomo_option VALUES ('version_core', '4.0.0')")
        cur.execute("CREATE TABLE mXtomo_site (idsite INT PRIMARY KEY)")
        cur.execute("INSERT INTO mXtomo_site VALUES (7)")
    before = snapshot(mariadb, mariadb_database)
    env = {**fault_env, "MATOMO_DATABASE_TABLES_PREFIX": "m_tomo_"}
    st = run(env, "status")
    assert st.returncode == EXIT_OK, st.stderr
    assert state_of(st) == {"state": "empty", "version_core": None, "superusers": 0, "sites": 0,
                            "tables": 0}  # fmt: skip
    res = run(env, "install")
    assert res.returncode == EXIT_OK, res.stderr
    assert state_of(res)["state"] == "installed"  # type: ignore[index]
    after = snapshot(mariadb, mariadb_database)
    for name in before:
        assert after[name]["checksum"] == before[name]["checksum"]
    assert "m_tomo_option" in after
