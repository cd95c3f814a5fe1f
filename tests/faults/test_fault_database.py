"""Database faults, injected by the relay (tests/harness/relay.py) that stands between MariaDB and
both the hook and the installer (the installer reads the host and port the
hook seeds into its config, as the Matomo sidecar does through the Cloud SQL
proxy in a pod)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.basics import wait_until
from harness.mariadb import MariaDB
from harness.relay import Relay
from harness.standin.server import StandIn

from .faultlib import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    assert_preserved,
    assert_unchanged,
    count_now,
    errors_of,
    run,
    snapshot,
    state_of,
    wait_for_count,
)


def test_refuses_for_seconds_then_accepts(
    fault_env: dict[str, str], db_proxy: Relay, mariadb: MariaDB, mariadb_database: str,
) -> None:  # fmt: skip
    """before: empty database. fault: connections refused (ECONNREFUSED) for 3 s.
    after: the hook waited, then installed; exit 0."""
    before = snapshot(mariadb, mariadb_database)
    db_proxy.refuse(3.0)
    t0 = time.monotonic()
    res = run(fault_env, "install")
    assert res.returncode == EXIT_OK, res.stderr
    assert time.monotonic() - t0 >= 2.5
    assert any(e.get("event") == "db_retry" for e in res.events())
    assert state_of(res)["state"] == "installed"  # type: ignore[index]
    assert_preserved(before, snapshot(mariadb, mariadb_database))


def test_refuses_past_the_deadline(
    fault_env: dict[str, str], db_proxy: Relay, mariadb: MariaDB, mariadb_database: str,
    standin: StandIn,
) -> None:  # fmt: skip
    """before: empty. fault: refused longer than MATOMO_HOOK_DB_TIMEOUT=2.
    after: exit 3 naming the database and the deadline; nothing written."""
    before = snapshot(mariadb, mariadb_database)
    db_proxy.refuse(None)
    res = run({**fault_env, "MATOMO_HOOK_DB_TIMEOUT": "2"}, "install")
    db_proxy.accept()
    assert res.returncode == EXIT_UNREACHABLE, res.stderr
    message = " ".join(errors_of(res))
    assert "database" in message and "MATOMO_HOOK_DB_TIMEOUT" in message, message
    assert standin.requests == []
    assert_unchanged(before, snapshot(mariadb, mariadb_database))


def test_resets_during_handshake_then_accepts(
    fault_env: dict[str, str], db_proxy: Relay, mariadb: MariaDB, mariadb_database: str,
) -> None:  # fmt: skip
    """before: empty. fault: the port accepts and resets every connection for 2 s
    (a proxy whose backend is not up yet). after: installed, exit 0."""
    db_proxy.reject(2.0)
    res = run(fault_env, "install")
    assert res.returncode == EXIT_OK, res.stderr
    assert state_of(res)["state"] == "installed"  # type: ignore[index]


# Where the installer's database connection is cut, per install step: the first
# statement of that step that reaches the server is dropped (deliver=False: the
# server never runs it) or run with its answer lost (deliver=True).
INSTALLER_CUTS = [
    ("tablesCreation", b"CREATE TABLE `matomo_log_visit`", False),
    ("tablesCreation", b"`matomo_option`", True),
    ("setupSuperUser", b"INSERT INTO `matomo_user` (login, password, email, superuser_access, "
                       b"date_registered, ts_password_modified)", False),
    ("setupSuperUser", b"INSERT INTO `matomo_user` (login, password, email, superuser_access, "
                       b"date_registered, ts_password_modified)", True),
    ("firstWebsiteSetup", b"INSERT INTO `matomo_site`", False),
    ("firstWebsiteSetup", b"INSERT INTO `matomo_site`", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("step", "pattern", "deliver"), INSTALLER_CUTS,
    ids=[f"{s}-{'answer-lost' if d else 'statement-lost'}" for s, _, d in INSTALLER_CUTS],
)  # fmt: skip
def test_installer_connection_cut_in_step(
    step: str, pattern: bytes, deliver: bool, fault_env: dict[str, str], db_proxy: Relay,
    mariadb: MariaDB, mariadb_database: str,
) -> None:  # fmt: skip
    """before: empty. fault: the installer's database connection is cut in the
    middle of ``step``. after: the first run ends with a documented code; a second
    run finishes the install (an interrupted table creation through the sidecar's
    create-tables, which keeps the tables made) and drops nothing."""
    before = snapshot(mariadb, mariadb_database)
    fired = db_proxy.cut_on(pattern, deliver=deliver)
    first = run(fault_env, "install")
    assert fired.is_set(), "the cut never happened: the pattern did not pass the proxy"
    assert first.returncode in (EXIT_OK, EXIT_UNREACHABLE, EXIT_REFUSED), first.stderr
    mid = snapshot(mariadb, mariadb_database)
    assert_preserved(before, mid)
    second = run(fault_env, "install")
    after = snapshot(mariadb, mariadb_database)
    assert_preserved(mid, after)
    assert second.returncode == EXIT_OK, second.stderr
    if step == "tablesCreation":  # cut while creating tables: some made, no version_core
        assert first.returncode == EXIT_REFUSED, first.stderr
        assert "createMissingTables" in [e.get("step") for e in second.events()], second.stderr
    assert state_of(second) is not None
    assert state_of(second)["state"] == "installed"  # type: ignore[index]
    assert state_of(second)["superusers"] == 1  # type: ignore[index]
    assert state_of(second)["sites"] == 1  # type: ignore[index]


@pytest.mark.parametrize("pattern", [b"GET_LOCK", b"SELECT COUNT(*) FROM `matomo_site`"])
def test_hook_connection_cut(
    pattern: bytes, fault_env: dict[str, str], db_proxy: Relay, mariadb: MariaDB,
    mariadb_database: str,
) -> None:  # fmt: skip
    """before: empty. fault: the hook's own connection (which holds the advisory
    lock) is cut while taking the lock / reading the state. after: exit 3
    (unreachable), nothing half-done that a second run cannot finish."""
    before = snapshot(mariadb, mariadb_database)
    fired = db_proxy.cut_on(pattern, deliver=True)
    first = run(fault_env, "install")
    assert fired.is_set()
    assert first.returncode == EXIT_UNREACHABLE, first.stderr
    assert "database" in " ".join(errors_of(first)).lower(), first.stderr
    second = run(fault_env, "install")
    assert second.returncode == EXIT_OK, second.stderr
    assert state_of(second)["state"] == "installed"  # type: ignore[index]
    assert_preserved(before, snapshot(mariadb, mariadb_database))


def test_cut_after_bytes_mid_packet(
    fault_env: dict[str, str], db_proxy: Relay, mariadb: MariaDB, mariadb_database: str,
    matomo_root: Path,
) -> None:  # fmt: skip
    """before: installed. fault: the first connection is cut after 300 bytes from
    the server (in the middle of the handshake/first answer). after: `status`
    exits 3 or retries to 0; the installed database is byte-for-byte the same."""
    assert run(fault_env, "install").returncode == EXIT_OK
    before = snapshot(mariadb, mariadb_database)
    db_proxy.cut_after_bytes(300, direction="s2c")
    res = run(fault_env, "status")
    assert res.returncode in (EXIT_OK, EXIT_UNREACHABLE), res.stderr
    res = run(fault_env, "install")
    assert res.returncode == EXIT_OK, res.stderr
    assert_unchanged(before, snapshot(mariadb, mariadb_database))


@pytest.mark.parametrize("step", ["tablesCreation", "setupSuperUser", "firstWebsiteSetup", "finished"])
def test_every_connection_cut_while_step_runs(
    step: str, fault_env: dict[str, str], db_proxy: Relay, standin: StandIn,
    mariadb: MariaDB, mariadb_database: str, matomo_root: Path,
) -> None:  # fmt: skip
    """before: empty. fault: while the installer holds ``step``'s answer (its work
    done), every database connection through the proxy is cut, including the
    hook's own, which holds the advisory lock. after: the hook ends with 0 or 3
    (it notices at its next query), never 1; a second run finishes."""
    from harness.standin.server import Faults

    from .faultlib import Running

    before = snapshot(mariadb, mariadb_database)
    standin.faults = Faults(hang_after=[step])
    hook = Running.start(fault_env, "install")
    checks = {
        "tablesCreation": "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                          "DATABASE() AND TABLE_NAME = 'matomo_option'",
        "setupSuperUser": "SELECT COUNT(*) FROM matomo_user WHERE superuser_access = 1",
        "firstWebsiteSetup": "SELECT COUNT(*) FROM matomo_site",
    }  # fmt: skip

    def step_did_its_work() -> bool:
        if step == "finished":
            text = (matomo_root / "config" / "config.ini.php")
            return text.exists() and "installation_in_progress" not in text.read_text()
        if count_now(mariadb, mariadb_database, checks[step]) == 0:
            return False
        # tablesCreation's last statement records version_core (after the anonymous
        # user and its token): the table's existence alone is the middle of the step
        return step != "tablesCreation" or count_now(
            mariadb, mariadb_database,
            "SELECT COUNT(*) FROM matomo_option WHERE option_name = 'version_core'") > 0

    assert wait_until(step_did_its_work, 20, interval=0.05, retry=(), error=None), \
        f"{step} never did its work: {hook.lines}"
    time.sleep(0.2)  # the stand-in is now holding the answer
    assert db_proxy.cut_all() >= 1
    standin.release.set()
    first = hook.finish(timeout=60)
    assert first.returncode in (EXIT_OK, EXIT_UNREACHABLE), first.stderr
    standin.faults = Faults()
    mid = snapshot(mariadb, mariadb_database)
    assert_preserved(before, mid)
    second = run(fault_env, "install")
    assert second.returncode == EXIT_OK, second.stderr
    assert state_of(second)["state"] == "installed"  # type: ignore[index]
    assert_preserved(mid, snapshot(mariadb, mariadb_database))


def test_lock_lost_mid_install_second_hook_enters(
    fault_env: dict[str, str], db_proxy: Relay, standin: StandIn, mariadb: MariaDB,
    mariadb_database: str,
) -> None:  # fmt: skip
    """before: empty. fault: hook A's connection (and with it the advisory lock)
    is cut while the installer holds A's setupSuperUser answer; hook B starts
    meanwhile, takes the lock and finishes. Then A gets its answer and goes on.
    after: one superuser, one site, installed; A ends with 0 or 3, B with 0."""
    from harness.standin.server import Faults

    from .faultlib import Running

    standin.faults = Faults(hang_after=["setupSuperUser"])
    a = Running.start(fault_env, "install")
    superusers = "SELECT COUNT(*) FROM matomo_user WHERE superuser_access = 1"
    assert wait_for_count(mariadb, mariadb_database, superusers, timeout=20), a.lines
    time.sleep(0.2)
    db_proxy.cut_all()
    standin.faults = Faults()  # B's requests are answered at once
    b = run(fault_env, "install")
    assert b.returncode == EXIT_OK, b.stderr
    assert state_of(b)["state"] == "installed"  # type: ignore[index]
    standin.release.set()
    first = a.finish(timeout=60)
    # the database is right whatever A did
    with mariadb.root(mariadb_database) as conn, conn.cursor() as cur:
        cur.execute(superusers)
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT COUNT(*) FROM matomo_site")
        assert cur.fetchone()[0] == 1
    final = run(fault_env, "status")
    assert state_of(final)["state"] == "installed"  # type: ignore[index]
    # A must not blame its configuration for B's work
    assert first.returncode in (EXIT_OK, EXIT_UNREACHABLE), first.stderr
