"""Gets Matomo's own schema upgrade (``console core:update``) run exactly once.

The hook image has no PHP, so it asks the Matomo sidecar through the console
channel (docs/architecture.md): it writes ``core-update.request`` atomically
into MATOMO_COMMAND_DIR; the sidecar renames it to ``core-update.running``,
runs ``php console core:update --yes --no-interaction``, writes the output to
``core-update.log`` and then the exit code to ``core-update.exit`` (temp file
+ rename). The whole sequence runs under the caller's advisory lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path

from . import logs, matomo_config
from .config import Settings
from .database import Connection, State
from .errors import ConfigError, RefusedError, UnreachableError

VERSION_CONST_RE = re.compile(r"""const\s+VERSION\s*=\s*['"]([^'"]+)['"]\s*;""")
REQUEST, RUNNING, LOG, EXIT = (
    "core-update.request",
    "core-update.running",
    "core-update.log",
    "core-update.exit",
)


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


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=str(path.parent))
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o664)
    os.replace(tmp, path)


def _wait_exit(channel: Path, timeout: float) -> tuple[int, str]:
    start = time.monotonic()
    exit_file = channel / EXIT
    while not exit_file.exists():
        if time.monotonic() - start > timeout:
            raise UnreachableError(
                f"console channel {channel}: the Matomo sidecar did not finish core:update "
                f"within {timeout:g}s (MATOMO_HOOK_UPGRADE_TIMEOUT); is hook-matomo.sh running?"
            )
        time.sleep(0.05)  # a stat() per 50 ms: the answer is seen at once
    raw = exit_file.read_text(encoding="utf-8").strip()
    try:
        code = int(raw)
    except ValueError:
        code = 255
    try:
        output = (channel / LOG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        output = ""
    return code, output


def run_core_update(settings: Settings) -> tuple[int, str]:
    channel = settings.command_dir
    if not channel.is_dir():
        raise ConfigError(
            f"MATOMO_COMMAND_DIR={str(channel)!r} does not exist: mount the hook-channel "
            "volume there in both containers"
        )
    if (channel / RUNNING).exists() and not (channel / EXIT).exists():
        logs.event("core_update_wait_previous", step="core:update")
        _wait_exit(channel, settings.upgrade_timeout)
    for name in (EXIT, LOG):
        with contextlib.suppress(FileNotFoundError):
            (channel / name).unlink()
    _write_atomic(channel / REQUEST, json.dumps({"command": "core:update", "ts": time.time()}))
    logs.event("core_update_requested", step="core:update")
    return _wait_exit(channel, settings.upgrade_timeout)


def upgrade(settings: Settings, conn: Connection, st: State, code: str) -> State:
    """Runs core:update once when the code is newer than version_core."""
    if st.version_core is None:
        logs.event("upgrade_skipped", state=st.state, step="upgrade", reason="no version_core")
        return st
    if not needs_update(st, code):
        if version_key(code) < version_key(st.version_core):
            logs.event(
                "upgrade_skipped",
                state=st.state,
                step="upgrade",
                reason=f"database {st.version_core} is newer than code {code}",
            )
        else:
            logs.event("upgrade_skipped", state=st.state, step="upgrade", reason="up to date")
        return st
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
    rc, output = run_core_update(settings)
    tail = " | ".join(line.strip() for line in output.strip().splitlines()[-8:] if line.strip())
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
