"""The dump before core:update and ``matomo-hook restore`` (hooks/src/matomo_hook/backup.py),
against the real MariaDB with the real mariadb-dump and mariadb clients, the console
channel served by the chart's hook-matomo.sh and the stand-in's core:update."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.mariadb import MariaDB

from .conftest import base_env, checksums, run_hook, set_code_version, start_hook
from .test_upgrade import console_calls, sidecar  # noqa: F401  (fixture)

DUMP_RE = re.compile(r"^matomo-5\.1\.2-to-5\.2\.0-\d{8}T\d{6}Z\.sql\.gz$")


def _need_clients() -> None:
    for tool in ("mariadb-dump", "mariadb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install mariadb-client; ./dev tools does it)")


@pytest.fixture
def installed(
    sidecar: tuple[Path, str, Path, Path],  # noqa: F811
    mariadb: MariaDB,
    mariadb_database: str,
    tmp_path: Path,
) -> Iterator[tuple[dict[str, str], Path, Path, Path]]:
    """An installed 5.1.2 database (through the script-served stand-in installer), a
    table of another application beside Matomo's, and the code at 5.2.0: the next
    `upgrade` runs core:update. The hook's env, the code dir, the dumps' folder and
    the console record."""
    _need_clients()
    root, url, channel, record = sidecar
    env = base_env(mariadb, mariadb_database, root, url, channel)
    res = run_hook(env, "install")
    assert res.returncode == 0, res.stderr
    sql(mariadb, mariadb_database, "CREATE TABLE other_app (id INT PRIMARY KEY)")
    # a binary column as Matomo has them (idvisitor, location_ip): the dump keeps every byte
    sql(mariadb, mariadb_database,
        "CREATE TABLE matomo_bytes (id INT PRIMARY KEY, b VARBINARY(16), t TEXT) CHARSET utf8mb4")
    sql(mariadb, mariadb_database, "INSERT INTO matomo_bytes VALUES (1, %s, %s)",
        bytes(range(256))[::17], "Grüße 🔑 '\\\" \n\t")
    set_code_version(root, "5.2.0")
    backups = tmp_path / "backups"
    backups.mkdir()
    env["MATOMO_HOOK_BACKUP_DIR"] = str(backups)
    yield env, root, backups, record


def sql(mariadb: MariaDB, database: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with mariadb.root(database) as conn, conn.cursor() as cur:
        cur.execute(query, args or None)
        return list(cur.fetchall())


def version_core(mariadb: MariaDB, database: str) -> str:
    return str(sql(mariadb, database, "SELECT option_value FROM matomo_option WHERE option_name = 'version_core'")[0][0])


def events(res: Any) -> list[str]:
    return [e["event"] for e in res.events()]


def the_error(res: Any) -> str:
    return str([e for e in res.events() if e["event"] == "error"][-1]["error"])


def test_a_dump_is_taken_before_core_update_and_only_then(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str
) -> None:
    env, root, backups, record = installed
    res = run_hook(env, "upgrade")
    assert res.returncode == 0, res.stderr
    names = os.listdir(backups)
    assert len(names) == 1 and DUMP_RE.match(names[0]), names
    seen = events(res)
    assert seen.index("backup_start") < seen.index("backup_done") < seen.index("upgrade_start"), seen
    done = next(e for e in res.events() if e["event"] == "backup_done")
    assert done["file"] == names[0] and done["bytes"] == (backups / names[0]).stat().st_size
    assert done["sql_bytes"] > done["bytes"] > 0 and done["duration_s"] >= 0
    assert console_calls(record) == ["core:update --yes --no-interaction"]
    assert stat.S_IMODE((backups / names[0]).stat().st_mode) == 0o640

    dump = gzip.decompress((backups / names[0]).read_bytes()).decode()
    assert "CREATE TABLE `matomo_option`" in dump and "CREATE TABLE `matomo_bytes`" in dump
    assert "other_app" not in dump, "a table without the prefix was dumped"
    assert "CREATE DATABASE" not in dump and "USE `" not in dump
    assert "'version_core','5.1.2'" in dump, "the dump is not of the state before core:update"
    assert dump.rstrip().splitlines()[-1].startswith("-- Dump completed")
    assert version_core(mariadb, mariadb_database) == "5.2.0"

    # up to date: no core:update, no dump
    again = run_hook(env, "upgrade")
    assert again.returncode == 0, again.stderr
    assert "backup_start" not in events(again)
    assert os.listdir(backups) == names
    # install and run on an installed, up-to-date database: no dump either
    assert run_hook(env, "install").returncode == 0
    assert os.listdir(backups) == names


def test_without_a_backup_folder_core_update_runs_without_a_dump(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str
) -> None:
    env, _, backups, record = installed
    del env["MATOMO_HOOK_BACKUP_DIR"]
    res = run_hook(env, "upgrade")
    assert res.returncode == 0, res.stderr
    skipped = [e for e in res.events() if e["event"] == "backup_skipped"]
    assert [e["reason"] for e in skipped] == ["disabled"]
    assert os.listdir(backups) == []
    assert console_calls(record) == ["core:update --yes --no-interaction"]


def test_the_clients_get_no_password_on_their_command_line(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, tmp_path: Path
) -> None:
    """The real mariadb-dump behind a wrapper that records its argv and the option file it
    was given: the password is in neither the argv nor the hook's output, and the 0600
    file is gone once the hook is done."""
    env, _, backups, _ = installed
    real = shutil.which("mariadb-dump", path=env["PATH"])
    assert real
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_log = tmp_path / "argv"
    wrapper = bin_dir / "mariadb-dump"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {argv_log}\n'
        'for a in "$@"; do case "$a" in --defaults-file=*) '
        f'stat -c %a "${{a#--defaults-file=}}" >> {argv_log}.mode;; esac; done\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    res = run_hook(env, "upgrade")
    assert res.returncode == 0, res.stderr
    argv = argv_log.read_text().splitlines()
    assert mariadb.password not in "\n".join(argv)
    assert mariadb.password not in res.stdout + res.stderr
    options = [a.split("=", 1)[1] for a in argv if a.startswith("--defaults-file=")]
    assert len(options) == 1 and not Path(options[0]).exists(), argv
    assert (tmp_path / "argv.mode").read_text().strip() == "600"
    assert "--single-transaction" in argv and "--quick" in argv
    assert len(os.listdir(backups)) == 1


def test_a_failing_dump_tool_stops_the_upgrade_before_core_update(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str,
    tmp_path: Path,
) -> None:
    env, _, backups, record = installed
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mariadb-dump"
    fake.write_text("#!/bin/sh\necho '-- partial output'\necho 'mariadb-dump: Got error: 1044: Access denied' >&2\nexit 2\n")
    fake.chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    before = checksums(mariadb, mariadb_database)
    res = run_hook(env, "upgrade")
    assert res.returncode == 4, res.stderr
    error = the_error(res)
    assert "mariadb-dump exited 2" in error and "Access denied" in error, error
    assert "core:update was not run" in error
    assert "backup.persistence.size" in error and "backup.enabled=false" in error, error
    assert "upgrade_start" not in events(res)
    assert console_calls(record) == []
    assert os.listdir(backups) == [], "a failed dump left a file"
    assert checksums(mariadb, mariadb_database) == before
    assert version_core(mariadb, mariadb_database) == "5.1.2"

    # the tool missing altogether: the same refusal, naming it
    env["PATH"] = str(bin_dir)
    fake.unlink()
    res = run_hook(env, "upgrade")
    assert res.returncode == 4, res.stderr
    assert "mariadb-dump could not be started" in the_error(res)
    assert console_calls(record) == []


def test_sigterm_during_the_dump_leaves_no_file_and_no_dump_running(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str,
    tmp_path: Path,
) -> None:
    """The pod deleted (or the Job's deadline) while the dump runs: exit 143, the dump
    process killed, its partial file removed, core:update not run."""
    env, _, backups, record = installed
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pidfile = tmp_path / "dump.pid"
    fake = bin_dir / "mariadb-dump"
    fake.write_text(f"#!/bin/sh\necho $$ > {pidfile}\necho '-- a dump that takes long'\nexec sleep 60\n")
    fake.chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    proc = start_hook(env, "upgrade")
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and [n for n in os.listdir(backups) if n.endswith(".partial")]):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 143, err
    assert os.listdir(backups) == [], "the partial dump was left behind"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)
    assert console_calls(record) == []
    assert version_core(mariadb, mariadb_database) == "5.1.2"


def test_an_unusable_folder_stops_the_upgrade_before_core_update(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str,
    tmp_path: Path,
) -> None:
    env, _, _, record = installed
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    env["MATOMO_HOOK_BACKUP_DIR"] = str(not_a_dir)
    res = run_hook(env, "upgrade")
    assert res.returncode == 4, res.stderr
    assert str(not_a_dir) in the_error(res) and "core:update was not run" in the_error(res)
    assert console_calls(record) == []
    assert version_core(mariadb, mariadb_database) == "5.1.2"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_volume_stops_the_upgrade_and_leaves_nothing(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str,
    tmp_path: Path,
) -> None:
    env, _, _, record = installed
    # 1 MB of random bytes, 2 MB as hex: more than the volume holds, gzip or not
    sql(mariadb, mariadb_database, "CREATE TABLE matomo_filler (b LONGBLOB)")
    sql(mariadb, mariadb_database, "INSERT INTO matomo_filler VALUES (%s)", os.urandom(1 << 20))
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        (full / "notes.txt").write_text("a file of the user's\n")
        env["MATOMO_HOOK_BACKUP_DIR"] = str(full)
        res = run_hook(env, "upgrade")
        assert res.returncode == 4, res.stderr
        error = the_error(res)
        assert "No space left on device" in error and "backup.persistence.size" in error, error
        assert sorted(os.listdir(full)) == ["notes.txt"], "the partial dump was left behind"
    finally:
        subprocess.run(["umount", str(full)], check=False)
    assert console_calls(record) == []
    assert version_core(mariadb, mariadb_database) == "5.1.2"


def test_pruning_keeps_the_newest_dumps_and_no_other_file(
    installed: tuple[dict[str, str], Path, Path, Path],
) -> None:
    env, _, backups, _ = installed
    env["MATOMO_HOOK_BACKUP_KEEP"] = "2"
    old = [f"matomo-4.16.0-to-5.0.0-2025{m:02d}01T000000Z.sql.gz" for m in (1, 2, 3)]
    foreign = ["notes.txt", "matomo-manual.sql.gz", "mine.sql.gz", "matomo-5.0.0-to-5.0.1.sql.gz"]
    for name in old + foreign:
        (backups / name).write_bytes(b"kept?")
    stale = "matomo-5.0.0-to-5.1.0-20250401T000000Z.sql.gz.partial"
    (backups / stale).write_bytes(b"cut off")
    (backups / "mine.partial").write_bytes(b"not ours")
    res = run_hook(env, "upgrade")
    assert res.returncode == 0, res.stderr
    left = sorted(os.listdir(backups))
    new = [n for n in left if DUMP_RE.match(n)]
    assert len(new) == 1
    assert left == sorted([*new, old[-1], *foreign, "mine.partial"]), left
    pruned = next(e for e in res.events() if e["event"] == "backup_pruned")
    assert pruned["removed"] == old[:2]


def test_restore_loads_the_dump_once_and_reports_what_it_kept(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str,
) -> None:
    env, root, backups, _ = installed
    before = checksums(mariadb, mariadb_database)
    assert run_hook(env, "upgrade").returncode == 0
    (name,) = os.listdir(backups)
    # after the dump: a change to a dumped table, and a table the dump does not hold
    sql(mariadb, mariadb_database, "INSERT INTO matomo_option VALUES ('after_dump', 'x', 0)")
    sql(mariadb, mariadb_database, "CREATE TABLE matomo_after (id INT)")
    (backups / "other.txt").write_text("x")

    env["MATOMO_HOOK_RESTORE_FILE"] = name
    res = run_hook(env, "restore")
    assert res.returncode == 0, res.stderr
    assert res.state()["restore"] == "restored" and res.state()["version_core"] == "5.1.2"
    seen = events(res)
    assert seen.index("lock_acquired") < seen.index("restore_start") < seen.index("restore_done")
    kept = next(e for e in res.events() if e["event"] == "restore_kept_tables")
    assert kept["tables"] == ["matomo_after"]
    assert mariadb.password not in res.stdout + res.stderr
    assert version_core(mariadb, mariadb_database) == "5.1.2"
    assert sql(mariadb, mariadb_database, "SELECT * FROM matomo_option WHERE option_name = 'after_dump'") == []
    assert sql(mariadb, mariadb_database, "SELECT b, t FROM matomo_bytes") == [
        (bytes(range(256))[::17], "Grüße 🔑 '\\\" \n\t")]
    recorded = sql(mariadb, mariadb_database,
                   "SELECT option_value, autoload FROM matomo_option WHERE option_name = 'MatomoChart.restored'")
    assert recorded == [(name, 0)]
    restored = checksums(mariadb, mariadb_database)
    differ = {k for k in before if before[k] != restored.get(k)}
    # every dumped table as before core:update; the option table also holds the record
    assert differ == {"matomo_option"}, differ
    assert "other_app" in restored and "matomo_after" in restored

    # the value left set: nothing happens, again and again
    for _ in range(2):
        again = run_hook(env, "restore")
        assert again.returncode == 0, again.stderr
        assert again.state()["restore"] == "skipped"
        assert "restore_start" not in events(again)
        assert checksums(mariadb, mariadb_database) == restored
    # and the next upgrade takes its dump of the restored state again
    res = run_hook(env, "upgrade")
    assert res.returncode == 0, res.stderr
    assert len([n for n in os.listdir(backups) if DUMP_RE.match(n)]) == 2


def test_restore_refuses_a_name_that_is_not_a_file_of_the_folder(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str,
) -> None:
    env, _, backups, _ = installed
    assert run_hook(env, "upgrade").returncode == 0
    (name,) = os.listdir(backups)
    (backups / "sub").mkdir()
    before = checksums(mariadb, mariadb_database)
    # not a bare name: refused before connecting
    for bad in ("../" + name, f"{backups}/{name}", ".hidden", "..", "sub/x", ""):
        env["MATOMO_HOOK_RESTORE_FILE"] = bad
        res = run_hook(env, "restore")
        assert res.returncode == 2, (bad, res.stderr)
        error = the_error(res)
        if bad:
            assert "backup.restore.file" in error and repr(bad) in error and name in error, error
        else:  # empty: unset
            assert "MATOMO_HOOK_RESTORE_FILE is not set" in error, error
        assert "db_connected" not in events(res), "checked after connecting"
    # no such file (or not a file): refused, naming the dumps there
    for missing in ("matomo-nope.sql.gz", "sub"):
        env["MATOMO_HOOK_RESTORE_FILE"] = missing
        res = run_hook(env, "restore")
        assert res.returncode == 2, (missing, res.stderr)
        error = the_error(res)
        assert f"{missing!r} is not a file in {backups}" in error and name in error, error
        assert "restore_start" not in events(res)
    assert checksums(mariadb, mariadb_database) == before


def test_a_restore_value_left_set_is_harmless_once_its_dump_is_gone(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str,
) -> None:
    """GitOps keeps backup.restore.file set; later upgrades prune that dump: the Job still
    finds the name recorded and does nothing, instead of failing every upgrade."""
    env, _, backups, _ = installed
    assert run_hook(env, "upgrade").returncode == 0
    (name,) = os.listdir(backups)
    env["MATOMO_HOOK_RESTORE_FILE"] = name
    assert run_hook(env, "restore").returncode == 0
    (backups / name).unlink()
    res = run_hook(env, "restore")
    assert res.returncode == 0, res.stderr
    assert res.state()["restore"] == "skipped"


def test_restore_refuses_a_damaged_dump_touching_nothing_and_reports_a_failing_load(
    installed: tuple[dict[str, str], Path, Path, Path], mariadb: MariaDB, mariadb_database: str,
) -> None:
    env, _, backups, _ = installed
    assert run_hook(env, "upgrade").returncode == 0
    (name,) = os.listdir(backups)
    data = (backups / name).read_bytes()
    (backups / "cut.sql.gz").write_bytes(data[: len(data) // 2])
    before = checksums(mariadb, mariadb_database)
    env["MATOMO_HOOK_RESTORE_FILE"] = "cut.sql.gz"
    res = run_hook(env, "restore")
    assert res.returncode == 4, res.stderr
    assert "cut.sql.gz cannot be read whole" in the_error(res) and "nothing was restored" in the_error(res)
    assert checksums(mariadb, mariadb_database) == before

    # plain SQL that the server refuses halfway: exit 4 quoting the client, nothing recorded
    (backups / "bad.sql").write_text(
        "DROP TABLE IF EXISTS `matomo_scratch`;\nCREATE TABLE `matomo_scratch` (id INT);\nTHIS IS NOT SQL;\n")
    env["MATOMO_HOOK_RESTORE_FILE"] = "bad.sql"
    res = run_hook(env, "restore")
    assert res.returncode == 4, res.stderr
    error = the_error(res)
    assert "mariadb exited 1 loading bad.sql" in error and "syntax" in error, error
    assert "run the restore again" in error
    assert sql(mariadb, mariadb_database,
               "SELECT * FROM matomo_option WHERE option_name = 'MatomoChart.restored'") == []


# ---------------------------------------------------------------- units
def test_names_argv_and_option_file_hold_no_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from harness.passwords import ACCEPTED
    from matomo_hook import backup
    from matomo_hook.config import Database

    at = datetime(2026, 12, 6, 4, 15, 0, tzinfo=UTC)
    assert backup.dump_name("5.0.3", "5.1.2", at) == "matomo-5.0.3-to-5.1.2-20261206T041500Z.sql.gz"
    assert backup.dump_name("5.2.0-rc1", "5.2/0", at) == "matomo-5.2.0-rc1-to-5.2_0-20261206T041500Z.sql.gz"
    assert backup.DUMP_RE.match(backup.dump_name("5.2.0-rc1", "5.2.0", at))
    for other in ("matomo-5.0.3-to-5.1.2.sql.gz", "matomo-20261206T041500Z.sql.gz", "x-5.0.3-to-5.1.2-20261206T041500Z.sql.gz",
                  "matomo-5.0.3-to-5.1.2-20261206T041500Z.sql.gz.partial", "matomo-5.0.3-to-5.1.2-20261206T041500Z.sql"):
        assert not backup.DUMP_RE.match(other), other

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # TMPDIR, as read once by tempfile
    for password in ACCEPTED.values():
        db = Database(host="db.example", port=3307, username="u", password=password, dbname="d", prefix="matomo_",
                      schema="Mysql", timeout=1, lock_timeout=1)
        with backup.client_options(db) as options:
            assert options.parent == tmp_path and stat.S_IMODE(options.stat().st_mode) == 0o600
            text = options.read_text()
            for argv in (backup.dump_argv(db, options, ["matomo_option"]), backup.load_argv(db, options)):
                assert not any(password in a for a in argv), argv
                assert argv[1] == f"--defaults-file={options}"
        assert not options.exists()
        assert text.startswith("[client]\n") and 'host="db.example"' in text and 'port="3307"' in text
        # MariaDB's option file reader gives the password back as it was
        if shutil.which("my_print_defaults"):
            copy = tmp_path / "copy.cnf"
            copy.write_text(text)
            printed = subprocess.run(["my_print_defaults", f"--defaults-file={copy}", "client"],
                                     capture_output=True, text=True, check=True).stdout.splitlines()
            assert f"--password={password}" in printed, printed
