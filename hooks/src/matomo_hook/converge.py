"""The database side of ``status``, ``install``, ``upgrade`` and ``run``.

``status`` reads the schema's state. The others hold the advisory lock for the
whole decide-and-act sequence: read the state, check the salt (on an installed
database, before any write: salt.py), install as needed, upgrade as needed,
then (``run``, on an installed database) the plugin step, and record the salt
(salt.py) when the database has no record of it yet; a second hook
waits for the lock, then finds nothing to do. Each prints the final state as
one JSON line.

pymysql comes with this module, so only the commands that use the database
load it (httpx only when an installer step is due, see installer.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pymysql.err

from . import backup, database, installer, logs, salt
from . import upgrade as core_update
from .config import Settings
from .errors import UnreachableError
from .plugins import warn_missing as warn_missing_plugins


@contextmanager
def _connection(settings: Settings, command: str) -> Iterator[database.Connection]:
    """A connection for `command`, closed at the end. Losing it midway is exit 3,
    not a bug: every step is safe to repeat."""
    conn = database.connect(settings.db)
    try:
        yield conn
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
        raise UnreachableError(
            f"lost the database connection to {settings.db.host}:{settings.db.port} "
            f"during {command}: {exc}; rerun the hook (every step is safe to repeat)"
        ) from None
    finally:
        conn.close()


def status(settings: Settings) -> None:
    """Prints the schema's state; takes no lock and changes nothing."""
    with _connection(settings, "status") as conn:
        st = conn.state()
        logs.event("status", state=st.state, step="status")
        logs.result(st.public())


def converge(
    settings: Settings, command: str, *, install: bool, upgrade: bool, plugins: bool
) -> bool:
    """Under the advisory lock: installs (`install`), upgrades (`upgrade`) and has
    Matomo install its new plugins (`plugins`) as the database state requires.
    Returns whether Matomo's schema or data changed (installed, upgraded, plugins
    installed): what the serving pods, started before, have not seen."""
    # read before connecting: an unreadable version file is a config error (exit 2)
    code = core_update.code_version(settings) if upgrade else None
    with _connection(settings, command) as conn:
        with conn.lock(settings.db.lock_timeout):
            st = conn.state()
            before = (st.state, st.version_core)
            added: list[str] = []
            logs.event("status", step="status", **st.public())
            if st.state == database.INSTALLED:
                # before anything is written (salt.py); both only read
                salt.check(settings, conn, st)
                warn_missing_plugins(settings, conn)
            if install:
                st = installer.install(settings, conn, st)
            if code is not None:
                st = core_update.upgrade(settings, conn, st, code)
            if plugins and st.state == database.INSTALLED:
                conn.assert_lock_held()
                added = installer.install_plugins(settings, conn)
            if st.state == database.INSTALLED:
                salt.record(settings, conn)  # checked above, or installed with it just now
        logs.result(st.public())
    return (st.state, st.version_core) != before or bool(added)


def restore(settings: Settings) -> None:
    """Under the advisory lock: loads the dump MATOMO_HOOK_RESTORE_FILE unless the
    last restore recorded that file (backup.py); its name is checked before connecting."""
    name = backup.restore_name(settings)
    with _connection(settings, "restore") as conn:
        with conn.lock(settings.db.lock_timeout):
            outcome = backup.restore(settings, conn, name)
            st = conn.state()
        logs.result({"restore": outcome, "file": name, **st.public()})
