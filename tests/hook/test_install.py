"""The hook against a real MariaDB and the installer stand-in."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from harness.basics import free_port
from harness.mariadb import MariaDB
from harness.relay import Relay
from matomo_hook import config as hook_config
from matomo_hook import installer
from matomo_hook.matomo_config import write_seed
from harness.standin.server import Faults, StandIn

from .conftest import (
    SECRET_SALT,
    SUPERUSER_PASSWORD,
    checksums,
    run_hook,
    start_hook,
)

FORBIDDEN_ACTIONS = {"systemCheck", "databaseSetup"}


def assert_no_destructive_calls(standin: StandIn) -> None:
    for req in standin.requests:
        assert req["action"] not in FORBIDDEN_ACTIONS, req
        assert "deleteTables" not in req["path"], req


def seed(env: dict[str, str]) -> None:
    write_seed(hook_config.load(env, frozenset({"db", "install"})))


def step(standin: StandIn, method: str, action: str, data: dict[str, str] | None = None) -> None:
    resp = httpx.request(
        method, standin.url + "index.php",
        params={"module": "Installation", "action": action}, data=data,
    )  # fmt: skip
    assert resp.status_code in (200, 302), resp.text


def sql(mariadb: MariaDB, database: str, *statements: str) -> None:
    with mariadb.root(database) as conn, conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


def test_empty_to_installed(hook_env: dict[str, str], standin: StandIn, matomo_root: Path) -> None:
    status = run_hook(hook_env, "status")
    assert status.returncode == 0, status.stderr
    assert status.state() == {
        "state": "empty", "version_core": None, "superusers": 0, "sites": 0, "tables": 0,
    }  # fmt: skip
    res = run_hook(hook_env, "install")
    assert res.returncode == 0, res.stderr
    assert res.state() == {
        "state": "installed", "version_core": "5.1.2", "superusers": 1, "sites": 1, "tables": 31,
    }  # fmt: skip
    assert standin.actions() == ["tablesCreation", "setupSuperUser", "firstWebsiteSetup", "finished"]
    assert_no_destructive_calls(standin)
    cfg = (matomo_root / "config" / "config.ini.php").read_text()
    assert f'salt = "{SECRET_SALT}"' in cfg  # installed with the managed salt
    assert "installation_in_progress" not in cfg
    for ev in res.events():
        assert "event" in ev
    again = run_hook(hook_env, "status")
    assert again.state()["state"] == "installed"


def _partial(name: str, env: dict[str, str], standin: StandIn, mariadb: MariaDB, db: str) -> None:
    su = {"login": "admin", "password": SUPERUSER_PASSWORD, "password_bis": SUPERUSER_PASSWORD,
          "email": "admin@example.com"}  # fmt: skip
    seed(env)
    step(standin, "GET", "tablesCreation")
    if name == "superuser_no_site":
        step(standin, "POST", "setupSuperUser", su)
    elif name == "site_no_superuser":
        step(standin, "GET", "setupSuperUser")  # plugins installed on first request
        step(standin, "POST", "firstWebsiteSetup",
             {"siteName": "x", "url": "https://x.example", "timezone": "UTC"})  # fmt: skip
    elif name == "no_version_core":
        step(standin, "POST", "setupSuperUser", su)
        step(standin, "POST", "firstWebsiteSetup",
             {"siteName": "x", "url": "https://x.example", "timezone": "UTC"})  # fmt: skip
        sql(mariadb, db, "DELETE FROM matomo_option WHERE option_name = 'version_core'")
    elif name == "installed_config_unfinished":
        step(standin, "POST", "setupSuperUser", su)
        step(standin, "POST", "firstWebsiteSetup",
             {"siteName": "x", "url": "https://x.example", "timezone": "UTC"})  # fmt: skip
    standin.requests.clear()


@pytest.mark.parametrize(
    ("name", "expected_actions"),
    [
        ("tables_only", ["setupSuperUser", "firstWebsiteSetup", "finished"]),
        ("superuser_no_site", ["firstWebsiteSetup", "finished"]),
        ("site_no_superuser", ["setupSuperUser", "finished"]),
        ("no_version_core", ["reuseTables", "finished"]),
        ("installed_config_unfinished", []),
    ],
)
def test_partial_to_installed(
    name: str, expected_actions: list[str], hook_env: dict[str, str], standin: StandIn,
    mariadb: MariaDB, mariadb_database: str,
) -> None:  # fmt: skip
    _partial(name, hook_env, standin, mariadb, mariadb_database)
    before = run_hook(hook_env, "status").state()
    assert before["state"] == ("installed" if name == "installed_config_unfinished" else "partial")
    tables_before = set(k for k in checksums(mariadb, mariadb_database) if "#" not in k)
    res = run_hook(hook_env, "install")
    assert res.returncode == 0, res.stderr
    assert res.state()["state"] == "installed"
    assert standin.actions() == expected_actions
    assert_no_destructive_calls(standin)
    tables_after = set(k for k in checksums(mariadb, mariadb_database) if "#" not in k)
    assert tables_before <= tables_after  # nothing dropped


def test_interrupted_table_creation_is_finished_keeping_every_table(
    hook_env: dict[str, str], standin: StandIn, mariadb: MariaDB, mariadb_database: str
) -> None:
    """Some core tables, no version_core, no site, no user: tablesCreation cut off
    by the database going away. The hook has the sidecar create the missing tables
    (console channel, create-tables), keeps the existing ones and their rows, and
    walks the rest of the installer."""
    from harness.standin import schema

    sql(mariadb, mariadb_database,
        *[schema.create_sql("matomo_", n, schema.CORE[n]) for n in ("user", "access", "site")],
        "INSERT INTO matomo_access (login, idsite, access) VALUES ('kept', 7, 'view')")  # fmt: skip
    res = run_hook(hook_env, "install")
    assert res.returncode == 0, res.stderr
    assert [e["step"] for e in res.events() if e["event"] == "step_done"] == [
        "seed", "createMissingTables", "setupSuperUser", "firstWebsiteSetup", "finished"]
    assert res.state()["state"] == "installed"
    assert standin.actions() == ["setupSuperUser", "firstWebsiteSetup", "finished"]
    assert_no_destructive_calls(standin)
    with mariadb.root(mariadb_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT login, idsite, access FROM matomo_access")
        assert ("kept", 7, "view") in list(cur.fetchall())


def test_interrupted_install_with_a_superuser_is_refused_untouched(
    hook_env: dict[str, str], standin: StandIn, mariadb: MariaDB, mariadb_database: str
) -> None:
    """Missing core tables and no version_core, but a superuser: not the
    installer's own interrupted work; the hook touches nothing and says what a
    person must do."""
    from harness.standin import schema

    sql(mariadb, mariadb_database,
        *[schema.create_sql("matomo_", n, schema.CORE[n]) for n in ("user", "access", "site")],
        "INSERT INTO matomo_user (login, password, email, superuser_access) "
        "VALUES ('root', 'x', 'root@example.org', 1)")  # fmt: skip
    before = checksums(mariadb, mariadb_database)
    res = run_hook(hook_env, "install")
    assert res.returncode == 4, res.stderr
    err = res.events()[-1]["error"]
    assert "version_core" in err and "A person must" in err and "drop" in err
    assert standin.requests == []
    assert checksums(mariadb, mariadb_database) == before


def test_installed_stays_byte_for_byte(
    hook_env: dict[str, str], standin: StandIn, mariadb: MariaDB, mariadb_database: str
) -> None:
    assert run_hook(hook_env, "install").returncode == 0
    sql(mariadb, mariadb_database,
        "INSERT INTO matomo_log_visit (idsite, idvisitor, visit_last_action_time, config_id, "
        "location_ip) VALUES (1, 'abcdefgh', NOW(), 'abcdefgh', 'ip')",
        "INSERT INTO matomo_option VALUES ('x', 'y', 0)")  # fmt: skip
    before = checksums(mariadb, mariadb_database)
    standin.requests.clear()
    for cmd in ("status", "install", "upgrade", "install"):
        res = run_hook(hook_env, cmd)
        assert res.returncode == 0, res.stderr
    assert standin.requests == []
    assert checksums(mariadb, mariadb_database) == before


def test_two_hooks_at_once(hook_env: dict[str, str], standin: StandIn) -> None:
    standin.faults = Faults(slow=0.2)
    procs = [start_hook(hook_env, "install") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert standin.actions() == ["tablesCreation", "setupSuperUser", "firstWebsiteSetup", "finished"]
    stderr = outs[0][1] + outs[1][1]
    assert stderr.count('"install_skipped"') == 1
    assert '"lock_busy"' in stderr or '"lock_wait"' in stderr


def test_database_appears_late(
    hook_env: dict[str, str], standin: StandIn, mariadb: MariaDB
) -> None:
    proxy = Relay(("127.0.0.1", mariadb.port)).start()
    proxy.refuse(4)  # the database appears 4 s from now, on the same port
    try:
        env = {**hook_env, "MATOMO_DATABASE_PORT": str(proxy.port)}
        start = time.monotonic()
        res = run_hook(env, "install")
        assert res.returncode == 0, res.stderr
        assert time.monotonic() - start >= 3.5
        assert any(e["event"] == "db_retry" for e in res.events())
        assert res.state()["state"] == "installed"
    finally:
        proxy.stop()


def test_database_never_appears(hook_env: dict[str, str]) -> None:
    env = {**hook_env, "MATOMO_DATABASE_PORT": str(free_port()), "MATOMO_HOOK_DB_TIMEOUT": "2"}
    res = run_hook(env, "status")
    assert res.returncode == 3
    err = res.events()[-1]["error"]
    assert "unreachable for" in err and env["MATOMO_DATABASE_PORT"] in err


def test_wrong_password_exit_3_without_waiting(hook_env: dict[str, str]) -> None:
    env = {**hook_env, "MATOMO_DATABASE_PASSWORD": "definitely-wrong", "MATOMO_HOOK_DB_TIMEOUT": "60"}
    start = time.monotonic()
    res = run_hook(env, "install")
    assert res.returncode == 3
    assert time.monotonic() - start < 15
    err = res.events()[-1]["error"]
    assert "refused user 'hook'" in err and "1045" in err


@pytest.mark.parametrize("code", [500])
def test_installer_500_exit_4(hook_env: dict[str, str], standin: StandIn, code: int) -> None:
    standin.faults = Faults(status={"setupSuperUser": code})
    res = run_hook(hook_env, "install")
    assert res.returncode == 4, res.stderr
    err = res.events()[-1]["error"]
    assert f"HTTP {code}" in err and "Internal Server Error" in err


def test_installer_form_error_quoted(hook_env: dict[str, str], standin: StandIn) -> None:
    standin.faults = Faults(form_error={"firstWebsiteSetup": "The url 'x' is not a valid URL."})
    res = run_hook(hook_env, "install")
    assert res.returncode == 4, res.stderr
    assert "The url 'x' is not a valid URL." in res.events()[-1]["error"]


def test_matomo_refuses_existing_login(
    hook_env: dict[str, str], standin: StandIn, mariadb: MariaDB, mariadb_database: str
) -> None:
    seed(hook_env)
    step(standin, "GET", "tablesCreation")
    sql(mariadb, mariadb_database,
        "INSERT INTO matomo_user (login, password, email) VALUES ('admin', 'x', 'a@b.example')")  # fmt: skip
    res = run_hook(hook_env, "install")
    assert res.returncode == 4
    err = res.events()[-1]["error"]
    assert "Could not add the superuser" in err and "already exists" in err


def test_connection_closed_and_slow_answers_are_retried(
    hook_env: dict[str, str], standin: StandIn
) -> None:
    standin.faults = Faults(close={"tablesCreation": 1, "finished": 2}, slow=0.1)
    res = run_hook(hook_env, "install")
    assert res.returncode == 0, res.stderr
    assert sum(1 for e in res.events() if e["event"] == "installer_retry") == 3
    assert res.state()["state"] == "installed"


def test_installer_unreachable_exit_3(hook_env: dict[str, str]) -> None:
    env = {**hook_env, "MATOMO_INSTALLER_URL": f"http://127.0.0.1:{free_port()}/",
           "MATOMO_HOOK_INSTALLER_TIMEOUT": "2"}  # fmt: skip
    res = run_hook(env, "install")
    assert res.returncode == 3
    assert "installer" in res.events()[-1]["error"]


def _superusers(mariadb: MariaDB, database: str) -> int:
    try:
        with mariadb.root(database) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM matomo_user WHERE superuser_access = 1")
            return int(cur.fetchone()[0])
    except Exception:  # noqa: BLE001 -- table not there yet
        return 0


def test_killed_between_steps_then_rerun(
    hook_env: dict[str, str], standin: StandIn, mariadb: MariaDB, mariadb_database: str
) -> None:
    standin.faults = Faults(hang_after=["setupSuperUser"])
    proc = start_hook(hook_env, "install")
    deadline = time.monotonic() + 60
    while not _superusers(mariadb, mariadb_database):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    standin.faults = Faults()
    standin.release.set()
    mid = run_hook(hook_env, "status").state()
    assert mid["state"] == "partial" and mid["superusers"] == 1 and mid["sites"] == 0
    res = run_hook(hook_env, "install")
    assert res.returncode == 0, res.stderr
    assert res.state()["state"] == "installed"
    assert_no_destructive_calls(standin)


def test_secrets_absent_from_output(
    hook_env: dict[str, str], standin: StandIn, mariadb: MariaDB
) -> None:
    # Matomo echoing a secret back in an error must not leak it either.
    standin.faults = Faults(
        form_error={"setupSuperUser": f"bad password {SUPERUSER_PASSWORD} salt {SECRET_SALT}"}
    )
    outputs = [run_hook(hook_env, "install")]
    assert outputs[0].returncode == 4
    standin.faults = Faults()
    outputs += [run_hook(hook_env, c) for c in ("install", "status", "upgrade")]
    bad = {**hook_env, "MATOMO_DATABASE_PASSWORD": mariadb.password + "x"}
    outputs.append(run_hook(bad, "status"))
    secrets = [SUPERUSER_PASSWORD, SECRET_SALT, mariadb.password]
    for out in outputs:
        for secret in secrets:
            assert secret not in out.stdout and secret not in out.stderr
    assert "[REDACTED]" in outputs[0].stderr
