"""The salt check and the plugins warning (hooks/src/matomo_hook/salt.py,
plugins.py) against a real MariaDB and the installer stand-in.

A database "made outside the chart" is one the hook installed with another
salt, whose salt record the test then removed, with API tokens the test
hashes as Matomo does (plugins/UsersManager/Model.php, hashTokenAuth: sha512
of token . salt; the stand-in stores the anonymous user's token so, as
Matomo's install does); the
genuine counterpart, with a database genuine Matomo made on its own, is
tests/genuine/test_genuine_adopt.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path

import pytest

from harness.mariadb import MariaDB
from harness.standin.server import StandIn

from .conftest import SECRET_SALT, checksums, run_hook, set_code_version

MARKER = "MatomoChart.saltCheck"
OLD_SALT = "old-" + secrets.token_hex(20)
TOKENS = [secrets.token_hex(16), secrets.token_hex(16)]


def sql(mariadb: MariaDB, database: str, query: str, *args: object) -> list[tuple[object, ...]]:
    with mariadb.root(database) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return list(cur.fetchall())


def matomo_token_hash(token: str, salt: str) -> str:
    return hashlib.sha512((token + salt).encode()).hexdigest()


def marker(mariadb: MariaDB, database: str) -> tuple[object, ...] | None:
    rows = sql(mariadb, database,
               "SELECT option_value, autoload FROM matomo_option WHERE option_name = %s", MARKER)
    return rows[0] if rows else None


def events(res, name: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    return [e for e in res.events() if e.get("event") == name]


def error(res) -> str:  # type: ignore[no-untyped-def]
    errs = events(res, "error")
    assert len(errs) == 1, res.stderr
    return str(errs[0]["error"])


def drop_anonymous_token(mariadb: MariaDB, database: str) -> None:
    """A database without the anonymous user's token row (deleted by hand, say)."""
    sql(mariadb, database, "DELETE FROM matomo_user_token_auth WHERE login = 'anonymous'")


@pytest.fixture
def foreign(hook_env: dict[str, str], standin: StandIn, mariadb: MariaDB,
            mariadb_database: str) -> dict[str, str]:  # fmt: skip
    """An installed database made outside the chart with OLD_SALT: no salt
    record, the anonymous user's token hashed with OLD_SALT (as Matomo's
    install stores it), and two API tokens of people hashed with OLD_SALT.
    Returns the hook's environment with OLD_SALT."""
    env = {**hook_env, "MATOMO_SALT": OLD_SALT}
    assert run_hook(env, "install").returncode == 0
    sql(mariadb, mariadb_database, "DELETE FROM matomo_option WHERE option_name = %s", MARKER)
    for n, token in enumerate(TOKENS):
        sql(mariadb, mariadb_database,
            "INSERT INTO matomo_user_token_auth (login, description, password, hash_algo, "
            "date_created) VALUES ('admin', %s, %s, 'sha512', NOW())",
            f"app {n}", matomo_token_hash(token, OLD_SALT))  # fmt: skip
    standin.requests.clear()
    return env


def token_file(tmp_path: Path, token: str) -> str:
    path = tmp_path / "salt-check-token"
    path.write_text(token + "\n")  # a Secret made with a trailing line break
    return str(path)


def test_an_install_records_the_salt_and_the_next_runs_check_it(
    hook_env: dict[str, str], mariadb: MariaDB, mariadb_database: str
) -> None:
    res = run_hook(hook_env, "install")
    assert res.returncode == 0, res.stderr
    assert len(events(res, "salt_recorded")) == 1
    row = marker(mariadb, mariadb_database)
    assert row is not None
    value, autoload = row
    assert re.fullmatch(r"[0-9a-f]{64}", str(value)) and autoload == 0, row
    assert SECRET_SALT not in str(value)
    before = checksums(mariadb, mariadb_database)
    for command in ("install", "upgrade"):
        again = run_hook(hook_env, command)
        assert again.returncode == 0, again.stderr
        assert [e.get("by") for e in events(again, "salt_checked")] == ["record"]
        assert events(again, "salt_recorded") == [] and events(again, "salt_unchecked") == []
    assert checksums(mariadb, mariadb_database) == before


def test_a_wrong_salt_against_the_record_is_refused_before_core_update(
    hook_env: dict[str, str], standin: StandIn, matomo_root: Path, mariadb: MariaDB,
    mariadb_database: str,
) -> None:  # fmt: skip
    """A later run with another salt (e.g. the generated F-salt deleted and made
    again): exit 4 naming the values, before core:update, not a row changed."""
    assert run_hook(hook_env, "install").returncode == 0
    set_code_version(matomo_root, "5.2.0")  # an upgrade is due, too
    before = checksums(mariadb, mariadb_database)
    standin.requests.clear()
    wrong = "wrong-" + secrets.token_hex(20)
    res = run_hook({**hook_env, "MATOMO_SALT": wrong}, "upgrade")
    assert res.returncode == 4, res.stderr
    message = error(res)
    for words in ("does not match", "matomo.salt.existingSecret", "[General] salt",
                  "config.ini.php", MARKER, "Nothing was changed"):  # fmt: skip
        assert words in message, message
    assert wrong not in res.stderr + res.stdout
    assert events(res, "upgrade_start") == [] and standin.requests == []
    assert checksums(mariadb, mariadb_database) == before


def test_no_record_and_the_right_token_passes_and_records(
    foreign: dict[str, str], tmp_path: Path, mariadb: MariaDB, mariadb_database: str
) -> None:
    env = {**foreign, "MATOMO_SALT_CHECK_TOKEN_FILE": token_file(tmp_path, TOKENS[1])}
    res = run_hook(env, "install")
    assert res.returncode == 0, res.stderr
    assert [e.get("by") for e in events(res, "salt_checked")] == ["token"]
    assert len(events(res, "salt_recorded")) == 1
    assert marker(mariadb, mariadb_database) is not None
    assert TOKENS[1] not in res.stderr + res.stdout
    # from now on the record checks it; the token may go
    again = run_hook(foreign, "install")
    assert again.returncode == 0, again.stderr
    assert [e.get("by") for e in events(again, "salt_checked")] == ["record"]


def test_no_record_and_no_token_checks_the_anonymous_users_token(
    foreign: dict[str, str], standin: StandIn, mariadb: MariaDB, mariadb_database: str
) -> None:
    """Matomo's install stored the well-known token 'anonymous' hashed with its salt:
    the right salt passes without a token, a wrong one is refused untouched."""
    (anonymous,) = sql(mariadb, mariadb_database,
                       "SELECT password FROM matomo_user_token_auth WHERE login = 'anonymous'")
    assert anonymous == (matomo_token_hash("anonymous", OLD_SALT),)
    before = checksums(mariadb, mariadb_database)
    wrong = run_hook({**foreign, "MATOMO_SALT": SECRET_SALT}, "upgrade")
    assert wrong.returncode == 4, wrong.stderr
    message = error(wrong)
    for words in ("does not match", "anonymous user", "matomo.salt.existingSecret",
                  "matomo.salt.existingSecretTokenKey"):  # fmt: skip
        assert words in message, message
    assert standin.requests == []
    assert checksums(mariadb, mariadb_database) == before

    res = run_hook(foreign, "install")
    assert res.returncode == 0, res.stderr
    assert [e.get("by") for e in events(res, "salt_checked")] == ["anonymous_token"]
    assert len(events(res, "salt_recorded")) == 1


def test_a_token_proves_a_salt_the_anonymous_users_token_does_not_know(
    foreign: dict[str, str], tmp_path: Path, mariadb: MariaDB, mariadb_database: str
) -> None:
    """A salt changed by hand after the install: the anonymous user's row keeps
    the first one; a token made since proves the salt in use."""
    new_salt = "rotated-" + secrets.token_hex(20)
    token = secrets.token_hex(16)
    sql(mariadb, mariadb_database,
        "INSERT INTO matomo_user_token_auth (login, description, password, hash_algo, "
        "date_created) VALUES ('admin', 'since', %s, 'sha512', NOW())",
        matomo_token_hash(token, new_salt))  # fmt: skip
    env = {**foreign, "MATOMO_SALT": new_salt}
    assert run_hook(env, "install").returncode == 4
    res = run_hook({**env, "MATOMO_SALT_CHECK_TOKEN_FILE": token_file(tmp_path, token)}, "install")
    assert res.returncode == 0, res.stderr
    assert [e.get("by") for e in events(res, "salt_checked")] == ["token"]


@pytest.mark.parametrize("case", ["unknown-token", "wrong-salt"])
def test_no_record_and_a_token_that_is_not_found_is_refused_untouched(
    case: str, foreign: dict[str, str], standin: StandIn, tmp_path: Path, mariadb: MariaDB,
    mariadb_database: str,
) -> None:  # fmt: skip
    token = secrets.token_hex(16) if case == "unknown-token" else TOKENS[0]
    env = {**foreign, "MATOMO_SALT_CHECK_TOKEN_FILE": token_file(tmp_path, token)}
    if case == "wrong-salt":
        env["MATOMO_SALT"] = SECRET_SALT
    before = checksums(mariadb, mariadb_database)
    res = run_hook(env, "install")
    assert res.returncode == 4, res.stderr
    message = error(res)
    assert "does not match" in message and "the token was not found" in message, message
    assert "matomo.salt.existingSecretTokenKey" in message, message
    assert token not in res.stderr + res.stdout
    assert standin.requests == []
    assert checksums(mariadb, mariadb_database) == before


def test_no_record_no_token_and_api_tokens_is_refused_untouched(
    foreign: dict[str, str], tmp_path: Path, mariadb: MariaDB, mariadb_database: str
) -> None:
    """No anonymous user's token to check with, and the optional key of the salt
    Secret absent: its file does not exist."""
    drop_anonymous_token(mariadb, mariadb_database)
    env = {**foreign, "MATOMO_SALT_CHECK_TOKEN_FILE": str(tmp_path / "absent")}
    before = checksums(mariadb, mariadb_database)
    res = run_hook(env, "upgrade")
    assert res.returncode == 4, res.stderr
    message = error(res)
    for words in ("made outside this chart", "has 2 API tokens", "existingSecretTokenKey",
                  "Create new token", "matomo.salt.acceptUnchecked=true"):  # fmt: skip
        assert words in message, message
    assert checksums(mariadb, mariadb_database) == before


def test_accept_unchecked_passes_with_a_warning_and_records(
    foreign: dict[str, str], mariadb: MariaDB, mariadb_database: str
) -> None:
    drop_anonymous_token(mariadb, mariadb_database)
    res = run_hook({**foreign, "MATOMO_SALT_ACCEPT_UNCHECKED": "1"}, "install")
    assert res.returncode == 0, res.stderr
    (warning,) = events(res, "salt_unchecked")
    assert warning["level"] == "warning" and warning["tokens"] == 2, warning
    assert len(events(res, "salt_recorded")) == 1
    assert marker(mariadb, mariadb_database) is not None


def test_no_record_and_no_api_token_passes_with_a_warning(
    foreign: dict[str, str], mariadb: MariaDB, mariadb_database: str
) -> None:
    """No token at all (the anonymous user's deleted too): none can break."""
    sql(mariadb, mariadb_database, "DELETE FROM matomo_user_token_auth")
    res = run_hook(foreign, "install")
    assert res.returncode == 0, res.stderr
    (warning,) = events(res, "salt_unchecked")
    assert warning["level"] == "warning" and warning["tokens"] == 0, warning
    assert len(events(res, "salt_recorded")) == 1


def test_the_record_is_never_overwritten(
    hook_env: dict[str, str], mariadb: MariaDB, mariadb_database: str
) -> None:
    assert run_hook(hook_env, "install").returncode == 0
    sql(mariadb, mariadb_database,
        "UPDATE matomo_option SET option_value = 'from-elsewhere' WHERE option_name = %s", MARKER)
    res = run_hook(hook_env, "install")
    assert res.returncode == 4, res.stderr
    assert marker(mariadb, mariadb_database) == ("from-elsewhere", 0)


@pytest.mark.parametrize("value", ["", "two words", "x" * 256])
def test_a_token_that_is_no_token_is_a_config_error(
    value: str, hook_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(value)
    res = run_hook({**hook_env, "MATOMO_SALT_CHECK_TOKEN_FILE": str(path)}, "install")
    assert res.returncode == 2, res.stderr
    assert "MATOMO_SALT_CHECK_TOKEN" in error(res)
    assert "two words" not in res.stderr


def test_plugins_the_image_lacks_are_named_in_a_warning(
    hook_env: dict[str, str], matomo_root: Path, mariadb: MariaDB, mariadb_database: str
) -> None:
    """The database's plugins are its version_<plugin> options (the stand-in records
    none: the test adds them as Matomo does); the code's, the folders of plugins/."""
    assert run_hook(hook_env, "install").returncode == 0
    for name in ("CoreHome", "Goals", "QueuedTracking", "CustomReports"):
        sql(mariadb, mariadb_database, "INSERT INTO matomo_option VALUES (%s, '5.1.1', 1)",
            f"version_{name}")  # fmt: skip
    sql(mariadb, mariadb_database,  # a dimension's version, not a plugin
        "INSERT INTO matomo_option VALUES ('version_log_visit.visit_total_time', 'x', 1)")
    quiet = run_hook(hook_env, "install")  # a code dir without plugins/: nothing to compare
    assert quiet.returncode == 0, quiet.stderr
    assert events(quiet, "plugins_missing") == []
    for name in ("CoreHome", "Goals", "Login"):
        (matomo_root / "plugins" / name).mkdir(parents=True)
        (matomo_root / "plugins" / name / f"{name}.php").write_text("<?php\n")
    (matomo_root / "plugins" / "CustomReports").mkdir()  # a folder without its plugin file
    before = checksums(mariadb, mariadb_database)
    res = run_hook(hook_env, "install")
    assert res.returncode == 0, res.stderr
    (warning,) = events(res, "plugins_missing")
    assert warning["level"] == "warning", warning
    assert warning["plugins"] == ["CustomReports", "QueuedTracking"], warning
    for words in ("CustomReports, QueuedTracking", "/usr/src/matomo/plugins",
                  "matomo.config.Plugins.Plugins"):  # fmt: skip
        assert words in str(warning["hint"]), warning
    assert checksums(mariadb, mariadb_database) == before
    json.dumps(warning)  # one JSON line
