"""Upgrade through the console channel served by the real hook-matomo.sh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.hookrun import stop_sidecar
from harness.basics import free_port
from harness.mariadb import MariaDB

from .conftest import REPO, TESTS, base_env, make_matomo_root, run_hook, set_code_version

SCRIPT = REPO / "charts" / "matomo" / "files" / "hook-matomo.sh"


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[Path, str, Path, Path]]:
    """hook-matomo.sh running the stand-in server and console (same script as in the pod)."""
    root = make_matomo_root(tmp_path / "html")
    channel = tmp_path / "run"
    record = tmp_path / "console.record"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "MATOMO_CODE_DIR": str(root),
        "MATOMO_USER_PATH": str(root),
        "MATOMO_COMMAND_DIR": str(channel),
        "MATOMO_SERVER_CMD": f"{sys.executable} -m harness.standin.server --listen 127.0.0.1:{port} "
        f"--root {root}",
        "MATOMO_CONSOLE_CMD": f"{sys.executable} -m harness.standin.console",
        "MATOMO_POLL_SECONDS": "0.1",
        "STANDIN_CONSOLE_RECORD": str(record),
    }
    proc = subprocess.Popen(["sh", str(SCRIPT)], env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "index.php")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
    try:
        yield root, url, channel, record
    finally:
        stop_sidecar(proc)
    assert proc.returncode == 0


def console_calls(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


def test_upgrade_runs_core_update_exactly_once(
    sidecar: tuple[Path, str, Path, Path], mariadb: MariaDB, mariadb_database: str
) -> None:
    root, url, channel, record = sidecar
    env = base_env(mariadb, mariadb_database, root, url, channel)
    # nothing on an empty database
    res = run_hook(env, "upgrade")
    assert res.returncode == 0, res.stderr
    assert console_calls(record) == []
    assert not (channel / "core-update.request").exists()

    res = run_hook(env, "install")  # through the script-served installer
    assert res.returncode == 0, res.stderr
    assert res.state()["version_core"] == "5.1.2"

    res = run_hook(env, "upgrade")  # code == database: nothing
    assert res.returncode == 0
    assert console_calls(record) == []

    set_code_version(root, "5.2.0")
    res = run_hook(env, "status")
    assert res.state()["version_core"] == "5.1.2"
    res = run_hook(env, "upgrade")
    assert res.returncode == 0, res.stderr
    assert res.state()["version_core"] == "5.2.0"
    assert console_calls(record) == ["core:update --yes --no-interaction"]
    assert (channel / "core-update.exit").read_text().strip() == "0"
    assert "successfully updated" in (channel / "core-update.log").read_text()

    for _ in range(2):
        assert run_hook(env, "upgrade").returncode == 0
    assert len(console_calls(record)) == 1


def test_failed_core_update_exit_4(
    sidecar: tuple[Path, str, Path, Path], mariadb: MariaDB, mariadb_database: str
) -> None:
    root, url, channel, record = sidecar
    env = base_env(mariadb, mariadb_database, root, url, channel)
    assert run_hook(env, "install").returncode == 0
    set_code_version(root, "5.3.0")
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp" / "standin-console-fails").write_text("Error while executing migration 5.3.0")
    res = run_hook(env, "upgrade")
    assert res.returncode == 4
    assert "core:update exited 1" in res.events()[-1]["error"]
    assert "Error while executing migration 5.3.0" in res.events()[-1]["error"]


def test_upgrade_in_a_fresh_pod_gives_the_console_its_config(
    sidecar: tuple[Path, str, Path, Path], mariadb: MariaDB, mariadb_database: str
) -> None:
    """The post-upgrade Job is a new pod: its config folder is empty. The hook
    writes the console's config (database, password, salt) before core:update."""
    root, url, channel, record = sidecar
    env = base_env(mariadb, mariadb_database, root, url, channel)
    assert run_hook(env, "install").returncode == 0
    set_code_version(root, "5.3.0")
    (root / "config" / "config.ini.php").unlink()
    res = run_hook(env, "upgrade")
    assert res.returncode == 0, res.stderr
    assert res.state()["version_core"] == "5.3.0"
    config = (root / "config" / "config.ini.php").read_text()
    assert "installation_in_progress" not in config
    assert mariadb.password not in res.stderr + res.stdout


def test_no_sidecar_exit_3(tmp_path: Path, mariadb: MariaDB, mariadb_database: str,
                           hook_env: dict[str, str]) -> None:  # fmt: skip
    assert run_hook(hook_env, "install").returncode == 0
    unserved = tmp_path / "unserved"  # a channel folder no sidecar watches
    unserved.mkdir()
    env = {**hook_env, "MATOMO_CODE_VERSION": "9.0.0", "MATOMO_HOOK_UPGRADE_TIMEOUT": "1",
           "MATOMO_COMMAND_DIR": str(unserved)}  # fmt: skip
    res = run_hook(env, "upgrade")
    assert res.returncode == 3
    assert "console channel" in res.events()[-1]["error"]


def test_sidecar_tells_the_hook_what_the_code_is_copies_nothing_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = make_matomo_root(tmp_path / "src")
    for name in ("CoreHome", "Login"):
        (code / "plugins" / name).mkdir(parents=True)
        (code / "plugins" / name / f"{name}.php").write_text("<?php\n")
    (code / "plugins" / "NotAPlugin").mkdir()  # no NotAPlugin.php: Matomo would not load it
    before = sorted(str(p.relative_to(code)) for p in code.rglob("*"))
    user = tmp_path / "data"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "MATOMO_CODE_DIR": str(code),
        "MATOMO_USER_PATH": str(user),
        "MATOMO_COMMAND_DIR": str(tmp_path / "run"),
        "MATOMO_SERVER_CMD": f"{sys.executable} -m harness.standin.server --listen 127.0.0.1:{port} "
        f"--root {code}",
    }
    proc = subprocess.Popen(["sh", str(SCRIPT)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/index.php")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert resp.status_code == 200 and 'id="installation"' in resp.text
        published = tmp_path / "run" / "code"
        assert (published / "Version.php").read_text() == (code / "core" / "Version.php").read_text()
        assert (published / "plugins.txt").read_text().split() == ["CoreHome", "Login"]
        assert (user / "tmp").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    # the code is served where it is: nothing copied into it or out of it
    assert sorted(str(p.relative_to(code)) for p in code.rglob("*")) == before
    assert sorted(p.name for p in user.iterdir()) == ["tmp"]


def test_sidecar_without_matomo_code_exits_naming_the_folder(tmp_path: Path) -> None:
    env = {**os.environ, "MATOMO_CODE_DIR": str(tmp_path / "empty"), "MATOMO_USER_PATH": str(tmp_path / "data"),
           "MATOMO_COMMAND_DIR": str(tmp_path / "run"), "MATOMO_SERVER_CMD": "sleep 60"}
    res = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=20, check=False)
    assert res.returncode == 1
    assert f"no Matomo code in {tmp_path / 'empty'}" in res.stderr


def test_code_older_than_the_database_is_refused_naming_both_versions(
    sidecar: tuple[Path, str, Path, Path], mariadb: MariaDB, mariadb_database: str
) -> None:
    """A helm upgrade (or rollback) to an older Matomo: exit 4 before anything runs, the
    message names both versions and the two ways out; no console command, no row changed."""
    from .conftest import checksums

    root, url, channel, record = sidecar
    env = base_env(mariadb, mariadb_database, root, url, channel)
    assert run_hook(env, "install").returncode == 0
    before = checksums(mariadb, mariadb_database)
    set_code_version(root, "5.0.3")
    for command in ("upgrade", "run"):
        res = run_hook({**env, "MATOMO_HOOK_DEPLOYMENT": "matomo"}, command)
        assert res.returncode == 4, res.stderr
        error = res.events()[-1]["error"]
        assert "Matomo 5.1.2" in error and "Matomo 5.0.3" in error, error
        assert "helm upgrade with image.tag 5.1.2 or newer" in error and "restore" in error, error
    assert console_calls(record) == []
    assert checksums(mariadb, mariadb_database) == before
