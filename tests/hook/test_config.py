"""Bad configuration: exit 2, one line naming the variable, no connection attempted."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.hookrun import HOOK_SRC

from .conftest import hook_command, run_hook


class Listener:
    """Counts TCP connections; stands for the database and the installer."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except TimeoutError:
                continue
        self.sock.close()


BAD = [
    ({"MATOMO_DATABASE_USERNAME": ""}, "MATOMO_DATABASE_USERNAME"),
    ({"MATOMO_DATABASE_PASSWORD": ""}, "MATOMO_DATABASE_PASSWORD"),
    ({"MATOMO_DATABASE_DBNAME": ""}, "MATOMO_DATABASE_DBNAME"),
    ({"MATOMO_DATABASE_PORT": "33o6"}, "MATOMO_DATABASE_PORT"),
    ({"MATOMO_DATABASE_PORT": "70000"}, "MATOMO_DATABASE_PORT"),
    ({"MATOMO_DATABASE_TABLES_PREFIX": "bad-prefix"}, "MATOMO_DATABASE_TABLES_PREFIX"),
    ({"MATOMO_DATABASE_TABLES_PREFIX": "x%"}, "MATOMO_DATABASE_TABLES_PREFIX"),
    ({"MATOMO_DATABASE_SCHEMA": "Postgres"}, "MATOMO_DATABASE_SCHEMA"),
    ({"MATOMO_DATABASE_PASSWORD_FILE": "/nonexistent/pw"}, "MATOMO_DATABASE_PASSWORD"),
    ({"MATOMO_DATABASE_PASSWORD": "se${HOME}cret"}, "MATOMO_DATABASE_PASSWORD"),
    ({"MATOMO_DATABASE_PASSWORD": "se\ncret"}, "MATOMO_DATABASE_PASSWORD"),
    ({"MATOMO_SALT": "s${x}"}, "MATOMO_SALT"),
    ({"MATOMO_SALT": ""}, "MATOMO_SALT"),
    ({"MATOMO_SUPERUSER_LOGIN": "a"}, "MATOMO_SUPERUSER_LOGIN"),
    ({"MATOMO_SUPERUSER_LOGIN": "bad login!"}, "MATOMO_SUPERUSER_LOGIN"),
    ({"MATOMO_SUPERUSER_PASSWORD": "12345"}, "MATOMO_SUPERUSER_PASSWORD"),
    ({"MATOMO_SUPERUSER_EMAIL": "not-an-email"}, "MATOMO_SUPERUSER_EMAIL"),
    ({"MATOMO_SUPERUSER_EMAIL": "anonymous@example.org"}, "MATOMO_SUPERUSER_EMAIL"),
    ({"MATOMO_SITE_NAME": ""}, "MATOMO_SITE_NAME"),
    ({"MATOMO_SITE_URL": "ftp://example.org"}, "MATOMO_SITE_URL"),
    ({"MATOMO_SITE_TIMEZONE": "Mars/Olympus_Mons"}, "MATOMO_SITE_TIMEZONE"),
    ({"MATOMO_SITE_TIMEZONE": "UTC+15"}, "MATOMO_SITE_TIMEZONE"),
    ({"MATOMO_SITE_ECOMMERCE": "yes"}, "MATOMO_SITE_ECOMMERCE"),
    ({"MATOMO_INSTALLER_URL": "file:///tmp"}, "MATOMO_INSTALLER_URL"),
    ({"MATOMO_HOOK_DB_TIMEOUT": "soon"}, "MATOMO_HOOK_DB_TIMEOUT"),
    ({"MATOMO_CODE_VERSION": "five"}, "MATOMO_CODE_VERSION"),
    ({"MATOMO_HOOK_BACKUP_DIR": "backups"}, "MATOMO_HOOK_BACKUP_DIR"),
    ({"MATOMO_HOOK_BACKUP_KEEP": "0"}, "MATOMO_HOOK_BACKUP_KEEP"),
    ({"MATOMO_HOOK_BACKUP_KEEP": "2.5"}, "MATOMO_HOOK_BACKUP_KEEP"),
]


def good_env(tmp_path: Path, port: int) -> dict[str, str]:
    (tmp_path / "config").mkdir(exist_ok=True)
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(HOOK_SRC),  # this checkout's hook (the venv's may be another worktree's)
        "MATOMO_DATABASE_HOST": "127.0.0.1",
        "MATOMO_DATABASE_PORT": str(port),
        "MATOMO_DATABASE_USERNAME": "u",
        "MATOMO_DATABASE_PASSWORD": "secret-pw",
        "MATOMO_DATABASE_DBNAME": "db",
        "MATOMO_SALT": "s" * 32,
        "MATOMO_INSTALLER_URL": f"http://127.0.0.1:{port}/",
        "MATOMO_CONFIG_FILE": str(tmp_path / "config" / "config.ini.php"),
        "MATOMO_CODE_VERSION": "5.1.2",
        "MATOMO_SUPERUSER_LOGIN": "admin",
        "MATOMO_SUPERUSER_PASSWORD": "secret-su",
        "MATOMO_SUPERUSER_EMAIL": "admin@example.com",
        "MATOMO_SITE_NAME": "Example",
        "MATOMO_SITE_URL": "https://example.com",
        "MATOMO_HOOK_DEPLOYMENT": "matomo",
        "MATOMO_HOOK_DB_TIMEOUT": "1",
    }


@pytest.mark.parametrize(("change", "variable"), BAD, ids=[b[1] + ":" + str(i) for i, b in enumerate(BAD)])
def test_bad_config_exit_2_before_connecting(
    tmp_path: Path, change: dict[str, str], variable: str
) -> None:
    listener = Listener()
    try:
        env = {**good_env(tmp_path, listener.port), **change}
        command = "status" if variable.startswith(("MATOMO_DATABASE", "MATOMO_HOOK_DB")) else "run"
        res = run_hook(env, command)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert variable in lines[0]
        assert listener.accepted == 0
        assert "secret" not in res.stderr
    finally:
        listener.stop.set()


def test_help_lists_every_variable_and_does_not_import_kubernetes() -> None:
    from matomo_hook.config import ENV_VARS

    out = subprocess.run([*hook_command(), "--help"], capture_output=True, text=True, check=True)
    for name, _, _ in ENV_VARS:
        assert name in out.stdout
    for code in ("0", "2", "3", "4", "5"):
        assert f"\n  {code}  " in out.stdout
    probe = (
        "import sys\nfrom matomo_hook import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "cli.main(['status'])\n"
        "assert 'kubernetes' not in sys.modules, 'kubernetes imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(HOOK_SRC)})  # fmt: skip
    assert res.returncode == 0, res.stderr


def test_cloudsql_iam_empty_password_file_is_accepted(tmp_path: Path, mariadb, mariadb_database: str) -> None:  # type: ignore[no-untyped-def]
    """With database.cloudsql.autoIAMAuthn the chart mounts an empty database password
    (templates/database/secret.yaml); the proxy logs in, the hook must not refuse it.
    Here a MariaDB account without a password stands in for the IAM user behind the proxy."""
    import base64

    import yaml

    from harness.controlplane import find_binary

    helm = find_binary("helm")
    if not helm:
        pytest.skip("helm not found: run ./dev tools")
    chart = Path(__file__).resolve().parents[2] / "charts" / "matomo"
    out = subprocess.run([helm, "template", "m", str(chart), "-s", "templates/database/secret.yaml",
                          "--set", "database.mode=cloudsql", "--set", "database.cloudsql.instanceConnectionName=p:r:i",
                          "--set", "database.cloudsql.autoIAMAuthn=true"], capture_output=True, text=True, check=True)
    secret = yaml.safe_load(out.stdout)
    data = secret.get("data") or {}
    password = base64.b64decode(data["password"]).decode() if "password" in data else secret["stringData"]["password"]
    assert password == ""
    (tmp_path / "database-password").write_text(password)
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'iam'@'%'")
        cur.execute(f"GRANT ALL PRIVILEGES ON `{mariadb_database}`.* TO 'iam'@'%'")
    env = {**good_env(tmp_path, mariadb.port), "MATOMO_DATABASE_USERNAME": "iam",
           "MATOMO_DATABASE_DBNAME": mariadb_database,
           "MATOMO_DATABASE_PASSWORD_FILE": str(tmp_path / "database-password")}
    del env["MATOMO_DATABASE_PASSWORD"]
    res = run_hook(env, "status")
    assert res.returncode == 0, res.stderr
    assert res.state()["state"] == "empty"
