"""``matomo-hook`` console script: parses the arguments, runs the command
(commands.py) and turns its outcome into the exit code."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from . import __version__, logs
from .commands import COMMANDS, execute
from .config import ENV_VARS
from .errors import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_ROLLOUT,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    HookError,
    StoppedError,
)

EXIT_DOC = f"""exit codes:
  {EXIT_OK}  done (also: nothing to do)
  {EXIT_CONFIG}  bad configuration: a setting is missing or malformed (checked before any
     connection), or a configured file/directory is unusable
  {EXIT_UNREACHABLE}  unreachable: database, installer or console channel did not answer before
     its deadline, or the database refused the credentials (access denied)
  {EXIT_REFUSED}  Matomo refused a step (its message is quoted), or the schema is in a state
     the hook will not touch without a person (the message says what to do)
  {EXIT_ROLLOUT}  rollout failed: the Deployment could not be restarted or did not become ready
  {EXIT_STOPPED}  stopped by SIGTERM (its pod was deleted); the database lock is released and
     the next run goes on from the state the database is in
  1  unexpected error (a bug): the log holds a redacted traceback
"""


def _env_doc() -> str:
    width = max(len(n) for n, _, _ in ENV_VARS)
    rows = [f"  {n:<{width}}  {m} [default: {d or '-'}]" for n, d, m in ENV_VARS]
    return "environment:\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    epilog = _env_doc() + "\n\n" + EXIT_DOC
    parser = argparse.ArgumentParser(
        prog="matomo-hook",
        description="Install, upgrade and roll Matomo from a Helm hook Job. Safe to run any "
        "number of times; never drops or truncates a table (but restore, which loads the dump "
        "a person named).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"matomo-hook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub.add_parser(
            name,
            help=command.help,
            description=command.help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    return parser


def _stop_on_sigterm() -> None:
    """SIGTERM raises StoppedError. As a container's PID 1 the interpreter would
    otherwise ignore it (the kernel drops signals PID 1 has no handler for), and
    the kubelet would kill the pod only after its grace period."""

    def stop(signum: int, _frame: object) -> None:
        raise StoppedError(f"stopped by signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit code (a HookError's, 1 for a bug)."""
    command: str = build_parser().parse_args(argv).command
    log = logs.setup()
    start = time.monotonic()
    try:
        execute(command)
    except HookError as exc:
        logs.event(
            "error",
            logging.ERROR,
            step=command,
            error=str(exc),
            exit_code=exc.exit_code,
            duration_s=round(time.monotonic() - start, 3),
        )
        return exc.exit_code
    except Exception:
        log.exception("unexpected_error", extra={"step": command})
        return 1
    logs.event("done", step=command, duration_s=round(time.monotonic() - start, 3))
    return EXIT_OK


def entry() -> None:  # pragma: no cover
    _stop_on_sigterm()
    code = main()
    # Everything is written and closed by now (the database connection, the HTTP
    # client); what is left is the interpreter tearing down the modules httpx,
    # pymysql and kubernetes loaded, ~35 ms of a Job's time for nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
