"""The console channel: Matomo commands the hook has the Matomo sidecar run.

The hook image has no PHP, so it asks the sidecar (charts/matomo/files/hook-matomo.sh,
docs/architecture.md) through files in MATOMO_COMMAND_DIR, one set per command:
the hook writes ``<name>.request`` atomically; the sidecar renames it to
``<name>.running``, runs the command in the code folder, writes the output to
``<name>.log`` and then the exit code to ``<name>.exit`` (temp file + rename).
Callers hold the hook's advisory lock for the whole exchange.

Commands: ``core-update`` (``php console core:update``) and ``create-tables``
(``files/matomo-tables.php``: finishes an interrupted table creation).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from . import logs
from .config import Settings
from .errors import ConfigError, UnreachableError
from .files import write_atomic

COMMANDS = ("core-update", "create-tables")


def _wait_exit(channel: Path, name: str, timeout: float, setting: str) -> tuple[int, str]:
    start = time.monotonic()
    exit_file = channel / f"{name}.exit"
    while not exit_file.exists():
        if time.monotonic() - start > timeout:
            raise UnreachableError(
                f"console channel {channel}: the Matomo sidecar did not finish {name} "
                f"within {timeout:g}s ({setting}); is hook-matomo.sh running?"
            )
        time.sleep(0.05)  # a stat() per 50 ms: the answer is seen at once
    raw = exit_file.read_text(encoding="utf-8").strip()
    try:
        code = int(raw)
    except ValueError:
        code = 255
    try:
        output = (channel / f"{name}.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        output = ""
    return code, output


def run(settings: Settings, name: str, timeout: float, setting: str) -> tuple[int, str]:
    """Has the sidecar run command `name`; returns its exit code and output.
    `setting` names the timeout's environment variable for the error message."""
    assert name in COMMANDS, name
    channel = settings.command_dir
    if not channel.is_dir():
        raise ConfigError(
            f"MATOMO_COMMAND_DIR={str(channel)!r} does not exist: mount the hook-channel "
            "volume there in both containers"
        )
    if (channel / f"{name}.running").exists() and not (channel / f"{name}.exit").exists():
        logs.event(f"{name.replace('-', '_')}_wait_previous", step=name)
        _wait_exit(channel, name, timeout, setting)
    for suffix in ("exit", "log"):
        with contextlib.suppress(FileNotFoundError):
            (channel / f"{name}.{suffix}").unlink()
    request = json.dumps({"command": name, "ts": time.time()})
    write_atomic(channel / f"{name}.request", request, 0o664)
    logs.event(f"{name.replace('-', '_')}_requested", step=name)
    return _wait_exit(channel, name, timeout, setting)


def tail(output: str, lines: int = 8) -> str:
    """The last lines of a command's output, on one line."""
    return " | ".join(line.strip() for line in output.strip().splitlines()[-lines:] if line.strip())
