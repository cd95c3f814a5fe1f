"""The hook with passwords as users write them (tests/harness/passwords.py),
against the suite's real MariaDB: each logs in as a database user created with
it (MariaDB takes passwords as UTF-8, like MySQL, Matomo's PDO and the mariadb
client; PyMySQL turned a str password into latin-1, so every non-ASCII one was
refused with 1045), and the config.ini.php the hook writes for Matomo reads back
in PHP as the same password and salt."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from harness.hookrun import run_hook
from harness.mariadb import MariaDB
from harness.passwords import ACCEPTED
from matomo_hook import config as hook_config
from matomo_hook import matomo_config


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_hook_logs_in_with_the_password_from_its_secret_file(
        hook_env: dict[str, str], mariadb: MariaDB, mariadb_database: str, tmp_path: Path, name: str) -> None:
    password = ACCEPTED[name]
    user = mariadb.new_user(mariadb_database, password)
    secret = tmp_path / "database-password"
    secret.write_bytes(password.encode())  # as the kubelet mounts a Secret's key: its bytes
    env = {**hook_env, "MATOMO_DATABASE_USERNAME": user, "MATOMO_DATABASE_PASSWORD_FILE": str(secret)}
    del env["MATOMO_DATABASE_PASSWORD"]
    res = run_hook(env, "status")
    assert res.returncode == 0, res.stderr
    assert res.state()["state"] == "empty"
    if len(password) >= 8:
        assert password not in res.stdout + res.stderr, "the password was logged"


def test_a_secret_that_is_not_utf8_is_named(hook_env: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "database-password"
    secret.write_bytes("grüße".encode("latin-1"))
    env = {**hook_env, "MATOMO_DATABASE_PASSWORD_FILE": str(secret)}
    del env["MATOMO_DATABASE_PASSWORD"]
    res = run_hook(env, "status")
    assert res.returncode == 2, res.stderr
    assert "MATOMO_DATABASE_PASSWORD_FILE" in res.stderr and "UTF-8" in res.stderr


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_config_the_hook_writes_reads_back_in_php(hook_env: dict[str, str], tmp_path: Path, name: str) -> None:
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed (./dev tools installs it)")
    password = ACCEPTED[name]
    settings = hook_config.load({**hook_env, "MATOMO_DATABASE_PASSWORD": password, "MATOMO_SALT": password},
                                frozenset({"db", "install"}))
    f = tmp_path / "config.ini.php"
    f.write_text(matomo_config.seed_config_text(settings), encoding="utf-8")
    code = "echo json_encode(parse_ini_string(file_get_contents($argv[1]), true));"
    out = subprocess.run([php, "-r", code, str(f)], capture_output=True, text=True, check=True)
    import json

    parsed = json.loads(out.stdout)
    assert parsed["database"]["password"] == password
    assert parsed["General"]["salt"] == password


@pytest.mark.parametrize("value", ["line\nbreak", "pre${HOME}post"])
def test_a_password_config_ini_cannot_hold_is_refused_before_connecting(hook_env: dict[str, str],
                                                                        value: str) -> None:
    res = run_hook({**hook_env, "MATOMO_DATABASE_PASSWORD": value}, "status")
    assert res.returncode == 2
    assert "MATOMO_DATABASE_PASSWORD" in res.stderr
    assert value not in res.stderr


def test_a_superuser_password_matomo_api_would_trim_is_refused(hook_env: dict[str, str]) -> None:
    res = run_hook({**hook_env, "MATOMO_SUPERUSER_PASSWORD": " padded-secret "}, "status")
    assert res.returncode == 2
    assert "MATOMO_SUPERUSER_PASSWORD" in res.stderr and "whitespace" in res.stderr
    assert "padded-secret" not in res.stderr
