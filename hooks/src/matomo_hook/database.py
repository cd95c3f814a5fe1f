"""The database side: connect with retry, tell the schema's state, advisory lock.

``state()`` issues at most four small queries whatever the size of the
tables: the prefixed table names from information_schema, ``version_core``
from the option table, and counts over the (tiny) user and site tables.
Log and archive tables are never counted.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any

import pymysql
import pymysql.connections
import pymysql.err

from . import logs
from .config import Database
from .errors import RefusedError, UnreachableError

# The 24 tables Matomo's core creates in tablesCreation (core/Db/Schema/Mysql.php).
CORE_TABLES = (
    "user", "user_token_auth", "twofactor_recovery_code", "access", "site",
    "plugin_setting", "site_setting", "site_url", "goal", "logger_message",
    "log_action", "log_visit", "log_conversion_item", "log_conversion",
    "log_link_visit_action", "log_profiling", "option", "session",
    "archive_invalidations", "sequence", "brute_force_log", "tracking_failure",
    "locks", "changes",
)  # fmt: skip

# MySQL error codes that mean "this account may not connect": retrying cannot help.
AUTH_ERRORS = {1044, 1045, 1049, 1698}

EMPTY, PARTIAL, INSTALLED = "empty", "partial", "installed"
PLUGIN_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class State:
    state: str
    version_core: str | None
    superusers: int
    sites: int
    tables: int
    users: int
    missing_core_tables: tuple[str, ...]
    archive_tables: int

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: data[k] for k in ("state", "version_core", "superusers", "sites", "tables")}


def like_escape(text: str) -> str:
    """Escapes LIKE wildcards with ``!`` (not a backslash: NO_BACKSLASH_ESCAPES-safe)."""
    return text.replace("!", "!!").replace("_", "!_").replace("%", "!%")


def lock_name(dbname: str, prefix: str) -> str:
    name = f"matomo-hook:{dbname}:{prefix}"
    if len(name) > 64:
        name = "matomo-hook:" + hashlib.sha256(f"{dbname}\0{prefix}".encode()).hexdigest()[:48]
    return name


class Connection:
    """One pymysql connection (autocommit) with the hook's queries."""

    def __init__(self, settings: Database, conn: Any) -> None:
        self.settings = settings
        self.conn = conn
        self.queries = 0

    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        self.queries += 1
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def table(self, name: str) -> str:
        return f"`{self.settings.prefix}{name}`"

    def state(self) -> State:
        prefix = self.settings.prefix
        rows = self._q(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE %s ESCAPE '!'",
            (self.settings.dbname, like_escape(prefix) + "%"),
        )
        names = {str(r[0]) for r in rows}
        short = {n[len(prefix) :] for n in names}
        version: str | None = None
        superusers = users = sites = 0
        if "option" in short:
            got = self._q(
                f"SELECT option_value FROM {self.table('option')} "  # noqa: S608 -- validated prefix
                "WHERE option_name = 'version_core'"
            )
            if got and got[0][0] not in (None, ""):
                raw = got[0][0]
                version = raw.decode() if isinstance(raw, bytes) else str(raw)
        if "user" in short:
            got = self._q(
                "SELECT COALESCE(SUM(superuser_access = 1), 0), "  # noqa: S608
                "COALESCE(SUM(login <> 'anonymous'), 0) "
                f"FROM {self.table('user')}"
            )
            superusers, users = int(got[0][0]), int(got[0][1])
        if "site" in short:
            got = self._q(f"SELECT COUNT(*) FROM {self.table('site')}")  # noqa: S608
            sites = int(got[0][0])
        if not names:
            kind = EMPTY
        elif version and superusers > 0 and sites > 0:
            kind = INSTALLED
        else:
            kind = PARTIAL
        return State(
            state=kind,
            version_core=version,
            superusers=superusers,
            sites=sites,
            tables=len(names),
            users=users,
            missing_core_tables=tuple(t for t in CORE_TABLES if t not in short),
            archive_tables=sum(1 for t in short if t.startswith("archive_") and t[-2:].isdigit()),
        )

    def installed_plugins(self) -> list[str]:
        """Plugins this database has installed: Matomo records one option
        ``version_<plugin>`` per plugin when it runs the plugin's install
        (core/Plugin/Manager.php, installPluginIfNecessary). ``version_core`` and
        the dimension versions (``version_log_visit.<column>``...) are not plugins."""
        rows = self._q(
            f"SELECT option_name FROM {self.table('option')} "  # noqa: S608 -- validated prefix
            "WHERE option_name LIKE %s ESCAPE '!' ORDER BY option_name",
            (like_escape("version_") + "%",),
        )
        raw = [r[0].decode() if isinstance(r[0], bytes) else str(r[0]) for r in rows]
        names = [n[len("version_") :] for n in raw]
        return [n for n in names if PLUGIN_RE.match(n) and n != "core"]

    def option(self, name: str) -> str | None:
        """The value of Matomo option `name`, None when there is no such row."""
        rows = self._q(
            f"SELECT option_value FROM {self.table('option')} "  # noqa: S608 -- validated prefix
            "WHERE option_name = %s",
            (name,),
        )
        if not rows:
            return None
        raw = rows[0][0]
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def add_option(self, name: str, value: str) -> bool:
        """INSERTs option `name` (autoload 0: Matomo never loads it); False when a row
        of that name exists already, which is left as it is."""
        try:
            self._q(
                f"INSERT INTO {self.table('option')} "  # noqa: S608 -- validated prefix
                "(option_name, option_value, autoload) VALUES (%s, %s, 0)",
                (name, value),
            )
        except pymysql.err.IntegrityError as exc:
            if exc.args and exc.args[0] == 1062:  # ER_DUP_ENTRY
                return False
            raise
        return True

    def user_tokens(self) -> int:
        """API tokens people made (user_token_auth rows), without the anonymous
        user's and Matomo's temporary system tokens."""
        rows = self._q(
            f"SELECT COUNT(*) FROM {self.table('user_token_auth')} "  # noqa: S608
            "WHERE login <> 'anonymous' AND system_token = 0"
        )
        return int(rows[0][0])

    def anonymous_tokens(self) -> list[str]:
        """The stored tokens of Matomo's anonymous user: the token ``anonymous``, which
        its install (DbHelper::createAnonymousUser) added hashed with the salt."""
        rows = self._q(
            f"SELECT password FROM {self.table('user_token_auth')} "  # noqa: S608
            "WHERE login = 'anonymous'"
        )
        return [r[0].decode() if isinstance(r[0], bytes) else str(r[0]) for r in rows]

    def token_hash_exists(self, hashed: str) -> bool:
        """Whether a user_token_auth row holds `hashed` (plugins/UsersManager/Model.php
        stores each token as hashTokenAuth(token), never the token itself)."""
        rows = self._q(
            f"SELECT COUNT(*) FROM {self.table('user_token_auth')} "  # noqa: S608
            "WHERE password = %s",
            (hashed,),
        )
        return int(rows[0][0]) > 0

    def assert_lock_held(self) -> None:
        """Before acting: the advisory lock must still be ours. A cut connection
        raises pymysql's OperationalError (exit 3 in the CLI); a lock held by
        another connection is UnreachableError (exit 3) too: never act without it."""
        name = lock_name(self.settings.dbname, self.settings.prefix)
        got = self._q("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (name,))
        if not got or got[0][0] != 1:
            raise UnreachableError(
                f"lost the advisory lock {name!r} (database connection dropped?); "
                "stopped before the next step -- rerun the hook"
            )

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """GET_LOCK for the whole decide-and-act sequence; waits up to ``timeout``."""
        name = lock_name(self.settings.dbname, self.settings.prefix)
        start = time.monotonic()
        logs.event("lock_wait", lock=name)
        while True:
            left = timeout - (time.monotonic() - start)
            got = self._q("SELECT GET_LOCK(%s, %s)", (name, max(0, min(5, int(left)))))
            if got and got[0][0] == 1:
                break
            if time.monotonic() - start >= timeout:
                raise UnreachableError(
                    f"advisory lock {name!r} still held by another hook after {timeout:.0f}s "
                    "(MATOMO_HOOK_LOCK_TIMEOUT): is another hook stuck?"
                )
            logs.event("lock_busy", lock=name, duration_s=round(time.monotonic() - start, 3))
        logs.event("lock_acquired", lock=name, duration_s=round(time.monotonic() - start, 3))
        try:
            yield
        finally:
            # on failure the lock goes with the connection anyway
            with contextlib.suppress(pymysql.err.Error):
                self._q("SELECT RELEASE_LOCK(%s)", (name,))

    def close(self) -> None:
        with suppress(pymysql.err.Error):
            self.conn.close()


class _PyMySQLConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """PyMySQL's connection, minus one cost: given no TLS options, PyMySQL 1.2
    offers TLS when the server does (its PREFERRED mode) with a context that
    verifies nothing (CERT_NONE, no host check), yet builds it with
    ``ssl.create_default_context()``, which loads the system CA store (~35 ms
    per process) that CERT_NONE never reads. The same context without that
    load; explicit TLS options (none today) would still go to PyMySQL."""

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        if isinstance(sslp, dict) and not sslp:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.options |= ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3
            return ctx
        return super()._create_ssl_ctx(sslp)


def _connect_once(db: Database, connect_timeout: float) -> Any:
    return _PyMySQLConnection(
        host=db.host,
        port=db.port,
        user=db.username,
        # Bytes, UTF-8: PyMySQL encodes a str password as latin-1, so a password
        # with a non-ASCII character (which MariaDB, MySQL, Matomo's PDO and the
        # mariadb client all send as UTF-8) would be refused as a wrong one.
        password=db.password.encode("utf-8"),
        database=db.dbname,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=max(1, int(connect_timeout)),
        read_timeout=None,
    )


def connect(db: Database, timeout: float | None = None) -> Connection:
    """Connects, retrying with backoff until the deadline.

    An "access denied" answer is final (the server is up and says no):
    UnreachableError at once, naming the user and the host.
    """
    deadline_s = db.timeout if timeout is None else timeout
    start = time.monotonic()
    delay = 0.5
    attempt = 0
    last = "no attempt"
    while True:
        attempt += 1
        left = deadline_s - (time.monotonic() - start)
        try:
            conn = _connect_once(db, min(10.0, max(1.0, left)))
            logs.event(
                "db_connected",
                step="connect",
                attempt=attempt,
                duration_s=round(time.monotonic() - start, 3),
            )
            return Connection(db, conn)
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else 0
            last = f"({code}) {exc.args[1] if len(exc.args) > 1 else exc}"
            if code in AUTH_ERRORS:
                raise UnreachableError(
                    f"database {db.host}:{db.port} refused user {db.username!r} on "
                    f"{db.dbname!r}: {last}; check MATOMO_DATABASE_USERNAME/PASSWORD/DBNAME "
                    "and the user's grants"
                ) from None
        except (pymysql.err.Error, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - start
        if elapsed >= deadline_s:
            raise UnreachableError(
                f"database {db.host}:{db.port} unreachable for {elapsed:.0f}s "
                f"(MATOMO_HOOK_DB_TIMEOUT={deadline_s:g}); last error: {last}"
            )
        logs.event("db_retry", step="connect", attempt=attempt, error=last, retry_in_s=delay)
        time.sleep(min(delay, max(0.05, deadline_s - elapsed)))
        delay = min(delay * 2, 5.0)


def refuse_if(cond: bool, message: str) -> None:
    if cond:
        raise RefusedError(message)
