"""Gets Matomo's own schema upgrade (``console core:update``) run exactly once,
by the Matomo sidecar through the console channel (console.py), under the
caller's advisory lock, after a dump of Matomo's tables (backup.py).
"""

from __future__ import annotations

import re
import time

from . import backup, console, logs, matomo_config
from .config import Settings
from .database import Connection, State
from .errors import ConfigError, RefusedError

VERSION_CONST_RE = re.compile(r"""const\s+VERSION\s*=\s*['"]([^'"]+)['"]\s*;""")


def code_version(settings: Settings) -> str:
    if settings.code_version:
        return settings.code_version
    path = settings.version_file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"MATOMO_VERSION_FILE={str(path)!r} cannot be read ({exc.strerror}) and "
            "MATOMO_CODE_VERSION is not set: set one of them"
        ) from None
    m = VERSION_CONST_RE.search(text)
    if not m:
        raise ConfigError(
            f"MATOMO_VERSION_FILE={str(path)!r} has no \"const VERSION = '...';\": "
            "point it at Matomo's core/Version.php or set MATOMO_CODE_VERSION"
        )
    return m.group(1)


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """5.1.2 > 5.1.2-rc1 > 5.1.2-b5; numeric parts compared as integers."""
    main, _, pre = version.partition("-")
    nums = tuple(int(p) if p.isdigit() else 0 for p in main.split("."))
    nums = nums + (0,) * (4 - len(nums))
    return (nums, 0 if pre else 1, pre.lower())


def needs_update(st: State, code: str) -> bool:
    if st.version_core is None:
        return False
    return version_key(code) > version_key(st.version_core)


def downgrade_refusal(database: str, code: str) -> str:
    """What a person reads when the code is older than the schema: Matomo has no
    schema downgrade, and its older code on a newer schema answers 500."""
    return (
        f"the database is at Matomo {database} (version_core) but this release runs Matomo "
        f"{code}: Matomo cannot downgrade a schema, and older code on a newer schema fails. "
        f"Either go forward again (helm upgrade with image.tag {database} or newer, or helm "
        f"rollback to the revision that ran it), or go back with the data as it was: restore "
        f"the database from the backup taken before the upgrade to {database}, then run this "
        "release again"
    )


def upgrade(settings: Settings, conn: Connection, st: State, code: str) -> State:
    """Runs core:update once when the code is newer than version_core, after a dump of
    the tables (none when MATOMO_HOOK_BACKUP_DIR is unset; a failed dump is RefusedError
    and no core:update); refuses code older than version_core (RefusedError, before
    anything is written)."""
    if st.version_core is None:
        logs.event("upgrade_skipped", state=st.state, step="upgrade", reason="no version_core")
        return st
    if version_key(code) < version_key(st.version_core):
        raise RefusedError(downgrade_refusal(st.version_core, code))
    if not needs_update(st, code):
        logs.event("upgrade_skipped", state=st.state, step="upgrade", reason="up to date")
        return st
    conn.assert_lock_held()
    backup.before_update(settings, conn, st.version_core, code)
    start = time.monotonic()
    logs.event(
        "upgrade_start",
        state=st.state,
        step="core:update",
        version_core=st.version_core,
        code_version=code,
    )
    conn.assert_lock_held()
    # The pod's config folder is empty: Matomo's console needs the password and the
    # salt, and [PluginsInstalled] decides which plugins core:update upgrades.
    matomo_config.write_installed(settings, conn.installed_plugins())
    rc, output = console.run(
        settings, "core-update", settings.upgrade_timeout, "MATOMO_HOOK_UPGRADE_TIMEOUT"
    )
    tail = console.tail(output)
    if rc != 0:
        raise RefusedError(f"core:update exited {rc}: {tail or '(no output)'}")
    final = conn.state()
    if final.version_core is None or version_key(final.version_core) < version_key(code):
        raise RefusedError(
            f"core:update exited 0 but version_core is {final.version_core} "
            f"(code {code}): {tail or '(no output)'}"
        )
    logs.event(
        "upgraded",
        state=final.state,
        step="core:update",
        version_core=final.version_core,
        duration_s=round(time.monotonic() - start, 3),
    )
    return final
