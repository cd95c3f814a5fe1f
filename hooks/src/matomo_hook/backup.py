"""A dump of Matomo's tables before every ``core:update``, and ``restore``.

Before ``core:update`` (upgrade.py), under the hook's advisory lock, the
tables with the configured prefix are dumped with ``mariadb-dump
--single-transaction --quick`` (one consistent snapshot, rows streamed, no
table locked), gzipped into ``<dir>/<name>.partial``, flushed to disk and
renamed to ``matomo-<version_core>-to-<code version>-<UTC time>.sql.gz``;
then the newest MATOMO_HOOK_BACKUP_KEEP files of that pattern are kept and
the older ones of that pattern removed (no other file of the folder is
touched). A dump that fails leaves no file and stops the hook before
``core:update`` (RefusedError, exit 4).

``restore`` loads one file of the folder with the ``mariadb`` client, under
the same lock, then records its name in the option ``MatomoChart.restored``;
a file that option already names is not loaded again. This is the one place
the hook drops tables it did not create: the dump's own ``DROP TABLE IF
EXISTS`` and ``CREATE TABLE`` for each table it holds, because a person asked
for exactly that by naming the file. Tables the dump does not hold are left
as they are (and named in the log). A restore cut midway is run again from
the start.

The clients read the connection settings, the password included, from a 0600
option file in TMPDIR (``--defaults-file``), removed when they are done: no
password on a command line, in the environment of a child or in a log.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pymysql.err

from . import logs
from .config import Database, Settings
from .database import Connection, like_escape
from .errors import ConfigError, RefusedError

DUMP_TOOL = "mariadb-dump"
CLIENT_TOOL = "mariadb"
# matomo-5.0.3-to-5.1.2-20261206T041500Z.sql.gz: the only files pruning may remove.
DUMP_RE = re.compile(r"^matomo-[0-9A-Za-z._-]+-to-[0-9A-Za-z._-]+-(?P<at>\d{8}T\d{6}Z)\.sql\.gz$")
PARTIAL = ".partial"
# What backup.restore.file may be: a bare name in the folder, not hidden (nor . and ..).
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,254}$")
RESTORED_OPTION = "MatomoChart.restored"
# gzip level 1: about 3 times as fast as the default 6 for a file about 15% larger
# (bench/bench_backup.py); the new pods wait for core:update while the dump runs.
GZIP_LEVEL = 1
CHUNK = 1 << 20
DROP_RE = re.compile(rb"^DROP TABLE IF EXISTS `((?:[^`]|``)+)`;", re.MULTILINE)
ERROR_TAIL = 1500


class _Failed(Exception):
    """What went wrong with a dump, in one line."""


# ---------------------------------------------------------------- names
def _version_tag(version: str) -> str:
    return re.sub(r"[^0-9A-Za-z.-]", "_", version) or "unknown"


def dump_name(version_core: str, code: str, at: datetime) -> str:
    """``matomo-5.0.3-to-5.1.2-20261206T041500Z.sql.gz`` (the time in UTC)."""
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"matomo-{_version_tag(version_core)}-to-{_version_tag(code)}-{stamp}.sql.gz"


def dumps(folder: Path) -> list[str]:
    """The files of ``folder`` named like the hook's dumps, oldest first."""
    found = []
    for entry in os.scandir(folder):
        m = DUMP_RE.match(entry.name)
        if m and entry.is_file(follow_symlinks=False):
            found.append((m.group("at"), entry.name))
    return [name for _, name in sorted(found)]


# ---------------------------------------------------------------- clients
def _option_value(text: str) -> str:
    """A value of a MariaDB option file, in double quotes (``#`` would start a
    comment otherwise); the client reads back ``\\\\`` and ``\\"``. Line breaks are
    refused by config.py (a password can hold none)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def client_options(db: Database) -> Iterator[Path]:
    """The connection settings in a 0600 option file in TMPDIR, removed afterwards.
    ``--defaults-file`` makes the clients read this file only: no option file of
    the image or of a home folder can change the server or the password."""
    fd, name = tempfile.mkstemp(prefix="matomo-hook-", suffix=".cnf")  # mode 0600
    path = Path(name)
    try:
        settings = (
            ("host", db.host),
            ("port", str(db.port)),
            ("user", db.username),
            ("password", db.password),
        )
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("[client]\nprotocol=TCP\n")
            fh.writelines(f"{key}={_option_value(value)}\n" for key, value in settings)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def dump_argv(db: Database, options: Path, tables: list[str]) -> list[str]:
    """mariadb-dump of ``tables`` of the database: one transaction's snapshot
    (InnoDB, no lock), rows streamed, binary columns in hex (Matomo's visitor ids
    and IPs survive any client charset), no tablespaces (they need PROCESS), no
    CREATE DATABASE/USE: the dump loads into whichever database restore names."""
    return [
        DUMP_TOOL,
        f"--defaults-file={options}",
        "--single-transaction",
        "--quick",
        "--hex-blob",
        "--no-tablespaces",
        "--default-character-set=utf8mb4",
        "--",
        db.dbname,
        *tables,
    ]


def load_argv(db: Database, options: Path) -> list[str]:
    """The mariadb client reading a dump on stdin: stops at the first error."""
    return [
        CLIENT_TOOL,
        f"--defaults-file={options}",
        "--batch",
        "--binary-mode",
        "--default-character-set=utf8mb4",
        "--",
        db.dbname,
    ]


def _tail(err: IO[bytes]) -> str:
    err.seek(0)
    text = err.read().decode("utf-8", "replace").strip()
    text = " ".join(text[-ERROR_TAIL:].split())
    # the clients never print the password, but should one ever echo it, the log would not
    return logs.REDACTOR.redact(text) or "(no output)"


def _rows(conn: Connection, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn.conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def _tables(conn: Connection) -> list[str]:
    """Matomo's tables: those of the database with the configured prefix."""
    db = conn.settings
    rows = _rows(
        conn,
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE %s ESCAPE '!' ORDER BY TABLE_NAME",
        (db.dbname, like_escape(db.prefix) + "%"),
    )
    return [r[0].decode() if isinstance(r[0], bytes) else str(r[0]) for r in rows]


# ---------------------------------------------------------------- dump
def _compress(src: IO[bytes], dest: Path) -> int:
    """gzip of ``src`` into a new file ``dest`` (mode 0640), flushed to disk; the
    bytes read."""
    total = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with open(fd, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
            while chunk := src.read(CHUNK):
                gz.write(chunk)
                total += len(chunk)
        raw.flush()
        os.fsync(raw.fileno())
    return total


def _start_client(
    tool: str, argv: list[str], error: type[Exception], **streams: Any
) -> subprocess.Popen[bytes]:
    """Starts one of the MariaDB client tools; `error` names a missing one."""
    try:
        return subprocess.Popen(argv, **streams)
    except OSError as exc:
        raise error(
            f"{tool} could not be started ({exc.strerror}): the hook image must "
            "have the MariaDB client tools (the chart's hook image has them)"
        ) from None


def _dump(db: Database, tables: list[str], dest: Path) -> int:
    """mariadb-dump of ``tables`` gzipped into ``dest``; the bytes of SQL."""
    with client_options(db) as options, tempfile.TemporaryFile() as err:
        proc = _start_client(
            DUMP_TOOL, dump_argv(db, options, tables), _Failed,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            try:
                sql = _compress(proc.stdout, dest)
            except OSError as exc:
                raise _Failed(
                    f"writing {dest.name} into {dest.parent} failed: {exc.strerror or exc}"
                ) from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        rc = proc.wait()
        if rc != 0:
            raise _Failed(f"{DUMP_TOOL} exited {rc}: {_tail(err)}")
    return sql


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_partials(folder: Path) -> None:
    """What a dump cut off (the pod killed) left: only files named like ours."""
    for entry in os.scandir(folder):
        if entry.name.endswith(PARTIAL) and DUMP_RE.match(entry.name[: -len(PARTIAL)]):
            Path(entry.path).unlink(missing_ok=True)
            logs.event("backup_partial_removed", step="backup", file=entry.name)


def _prune(folder: Path, keep: int) -> None:
    try:
        names = dumps(folder)
        old = names[:-keep] if len(names) > keep else []
        for name in old:
            (folder / name).unlink(missing_ok=True)
    except OSError as exc:  # the dump is there: the upgrade may go on
        logs.event("backup_prune_failed", step="backup", error=str(exc))
        return
    if old:
        logs.event("backup_pruned", step="backup", removed=old, kept=names[-keep:])


def refusal(what: str) -> str:
    return (
        f"the backup before core:update failed ({what}), so core:update was not run and "
        "the database is as it was. If the volume is too small, give the dumps room: a "
        "bigger backup.persistence.size (it holds backup.keep dumps, plus the new one while "
        "it is written) or fewer kept (backup.keep); else fix the cause above. Or take a "
        "backup of your own and turn the dump off (backup.enabled=false). Then upgrade again"
    )


def before_update(settings: Settings, conn: Connection, version_core: str, code: str) -> None:
    """The dump before ``core:update`` from ``version_core`` to ``code``; RefusedError
    (nothing left in the folder) when it cannot be taken. No folder: no dump."""
    folder = settings.backup_dir
    if folder is None:
        logs.event("backup_skipped", step="backup", reason="disabled")
        return
    name = dump_name(version_core, code, datetime.now(UTC))
    partial, final = folder / (name + PARTIAL), folder / name
    tables = _tables(conn)
    start = time.monotonic()
    written: list[Path] = []
    try:
        if not tables:  # mariadb-dump would dump every table of the database
            raise _Failed(f"no table with the prefix {settings.db.prefix!r}")
        _remove_partials(folder)
        logs.event("backup_start", step="backup", file=name, dir=str(folder), tables=len(tables))
        written.append(partial)
        sql = _dump(settings.db, tables, partial)
        os.replace(partial, final)
        written.append(final)
        _fsync_dir(folder)
        size = final.stat().st_size
    except BaseException as exc:  # a failure, or SIGTERM: no file left behind
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        if not isinstance(exc, _Failed | OSError):
            raise
        what = str(exc) if isinstance(exc, _Failed) else f"{folder}: {exc.strerror or exc}"
        raise RefusedError(refusal(what)) from None
    logs.event(
        "backup_done",
        step="backup",
        file=name,
        bytes=size,
        sql_bytes=sql,
        duration_s=round(time.monotonic() - start, 3),
    )
    _prune(folder, settings.backup_keep)


# ---------------------------------------------------------------- restore
def _listing(folder: Path) -> str:
    try:
        names = dumps(folder)
    except OSError as exc:
        return f"none readable ({exc.strerror or exc})"
    return ", ".join(names) if names else "none"


def restore_name(settings: Settings) -> str:
    """The name ``restore`` loads, checked before any connection: a bare file name
    (ConfigError, exit 2, naming the value and the dumps in the folder)."""
    folder, name = settings.backup_dir, settings.restore_file
    assert folder is not None and name is not None  # config.load(need={"restore"})
    if not FILE_NAME_RE.match(name):
        raise ConfigError(
            f"backup.restore.file (MATOMO_HOOK_RESTORE_FILE) {name!r} is not the bare name "
            f"of a file in {folder} (no '/', not hidden): set it to one of the dumps "
            f"there: {_listing(folder)}"
        )
    return name


def _restore_path(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise ConfigError(
            f"backup.restore.file (MATOMO_HOOK_RESTORE_FILE) {name!r} is not a file in "
            f"{folder}: set it to one of the dumps there: {_listing(folder)}"
        )
    return path


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[IO[bytes] | gzip.GzipFile]:
    """The dump's SQL: gunzipped when the file is gzip."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if gzipped:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz
        else:
            yield raw


def _scan(path: Path) -> tuple[int, set[str]]:
    """Reads the whole dump before anything is loaded: a damaged gzip file is refused
    with nothing touched. The bytes of SQL, and the tables the dump drops and creates."""
    total, tail = 0, b""
    names: set[str] = set()
    try:
        with _opened(path) as src:
            while chunk := src.read(CHUNK):
                buf = tail + chunk
                found = DROP_RE.finditer(buf)
                names.update(m.group(1).replace(b"``", b"`").decode() for m in found)
                tail = buf[-256:]
                total += len(chunk)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise RefusedError(
            f"{path.name} cannot be read whole ({exc}): nothing was restored; "
            "choose another dump (backup.restore.file)"
        ) from None
    return total, names


def _load(db: Database, path: Path) -> None:
    with (
        client_options(db) as options,
        tempfile.TemporaryFile() as err,
        _opened(path) as src,
    ):
        proc = _start_client(
            CLIENT_TOOL, load_argv(db, options), RefusedError,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        assert proc.stdin is not None
        try:
            with contextlib.suppress(BrokenPipeError):  # the client stopped: its exit says why
                while chunk := src.read(CHUNK):
                    proc.stdin.write(chunk)
                proc.stdin.close()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        rc = proc.wait()
        if rc != 0:
            raise RefusedError(
                f"{CLIENT_TOOL} exited {rc} loading {path.name}: {_tail(err)}; the tables it "
                "had reached may be half loaded: fix the cause and run the restore again "
                "(it starts over: each table of the dump is dropped and created again)"
            )


def _restored(conn: Connection) -> str | None:
    """The file the last restore recorded, if any."""
    try:
        rows = _rows(
            conn,
            f"SELECT option_value FROM {conn.table('option')} WHERE option_name = %s",  # noqa: S608
            (RESTORED_OPTION,),
        )
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] == 1146:  # no option table (yet)
            return None
        raise
    if not rows:
        return None
    raw = rows[0][0]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _record(conn: Connection, name: str) -> None:
    try:
        _rows(
            conn,
            f"INSERT INTO {conn.table('option')} (option_name, option_value, autoload) "  # noqa: S608
            "VALUES (%s, %s, 0) ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)",
            (RESTORED_OPTION, name),
        )
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] == 1146:
            raise RefusedError(
                f"{name} was loaded but there is no table {conn.table('option')}: it is not "
                f"a dump of Matomo's tables with the prefix {conn.settings.prefix!r} "
                "(database.tablesPrefix); restore a dump of this Matomo"
            ) from None
        raise


def restore(settings: Settings, conn: Connection, name: str) -> str:
    """Loads the dump ``name`` of the backup folder unless the last restore recorded
    that name (then the file need not be there any more: a value left set is
    harmless after its dump was pruned); under the caller's lock. ``restored`` or
    ``skipped``; ConfigError (exit 2) when the file is not in the folder."""
    if _restored(conn) == name:
        logs.event(
            "restore_skipped",
            step="restore",
            file=name,
            reason=f"already restored (option {RESTORED_OPTION})",
        )
        return "skipped"
    assert settings.backup_dir is not None
    path = _restore_path(settings.backup_dir, name)
    size = path.stat().st_size
    start = time.monotonic()
    sql, dumped = _scan(path)
    conn.assert_lock_held()
    logs.event("restore_start", step="restore", file=name, bytes=size, sql_bytes=sql)
    _load(settings.db, path)
    _record(conn, name)
    logs.event(
        "restore_done",
        step="restore",
        file=name,
        bytes=size,
        sql_bytes=sql,
        tables=len(dumped),
        duration_s=round(time.monotonic() - start, 3),
    )
    kept = sorted(set(_tables(conn)) - dumped)
    if kept:
        logs.event(
            "restore_kept_tables",
            step="restore",
            tables=kept,
            reason="not in the dump: left as they were",
        )
    return "restored"
