"""``matomo-hook`` console script: status, install, upgrade, roll, run, secrets."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__, logs
from .config import ENV_VARS, Settings, load, secrets_plan
from .errors import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_ROLLOUT,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    HookError,
    StoppedError,
    UnreachableError,
)

if TYPE_CHECKING:
    from .database import Connection

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

NEEDS: dict[str, frozenset[str]] = {
    "status": frozenset({"db"}),
    "install": frozenset({"db", "install"}),
    "upgrade": frozenset({"db", "upgrade"}),
    "roll": frozenset({"roll"}),
    "run": frozenset({"db", "install", "upgrade", "roll"}),
    "secrets": frozenset(),
}


def _env_doc() -> str:
    width = max(len(n) for n, _, _ in ENV_VARS)
    rows = [f"  {n:<{width}}  {m} [default: {d or '-'}]" for n, d, m in ENV_VARS]
    return "environment:\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matomo-hook",
        description="Install, upgrade and roll Matomo from a Helm hook Job. Safe to run any "
        "number of times; never drops or truncates a table.",
        epilog=_env_doc() + "\n\n" + EXIT_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"matomo-hook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "status": 'print one JSON line {"state","version_core","superusers","sites","tables"}',
        "install": "bring an empty or partial schema to installed through the installer",
        "upgrade": "run core:update once when the code is newer than version_core",
        "roll": "restart the Deployment (kubectl rollout restart) and wait for it",
        "run": "status, then install or upgrade as needed, then roll (what the Jobs run)",
        "secrets": "create each Secret of MATOMO_HOOK_SECRETS that is absent, with random "
        "values; never change an existing one (the pre-install Job runs it)",
    }
    for name, text in helps.items():
        sub.add_parser(
            name,
            help=text,
            description=text,
            epilog=_env_doc() + "\n\n" + EXIT_DOC,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    return parser


def _print_state(data: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _db_sequence(settings: Settings, command: str) -> None:
    # pymysql only for the commands that use the database (not --help, not roll)
    import pymysql.err  # noqa: PLC0415

    from . import database  # noqa: PLC0415

    code = None
    if command in ("upgrade", "run"):
        from . import upgrade  # noqa: PLC0415

        code = upgrade.code_version(settings)
    conn = database.connect(settings.db)
    try:
        _locked_sequence(settings, command, conn, code)
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
        raise UnreachableError(
            f"lost the database connection to {settings.db.host}:{settings.db.port} "
            f"during {command}: {exc}; rerun the hook (every step is safe to repeat)"
        ) from None
    finally:
        conn.close()


def _locked_sequence(
    settings: Settings, command: str, conn: Connection, code: str | None
) -> None:
    if command == "status":
        st = conn.state()
        logs.event("status", state=st.state, step="status")
        _print_state(st.public())
        return
    from . import database  # noqa: PLC0415 -- loaded by _db_sequence already

    # each command imports only the module it runs (and httpx only when a step is due)
    with conn.lock(settings.db.lock_timeout):
        st = conn.state()
        logs.event("status", step="status", **st.public())
        if command in ("install", "run"):
            from . import installer  # noqa: PLC0415

            st = installer.install(settings, conn, st)
        if command in ("upgrade", "run") and code is not None:
            from . import upgrade  # noqa: PLC0415

            st = upgrade.upgrade(settings, conn, st, code)
        if command == "run" and st.state == database.INSTALLED:
            from . import installer  # noqa: PLC0415

            conn.assert_lock_held()
            installer.install_plugins(settings, conn)
    _print_state(st.public())


def _secrets(namespace: str) -> None:
    from . import secrets  # noqa: PLC0415 -- imports kubernetes

    plan = secrets_plan()
    outcomes = secrets.ensure(
        namespace, plan.specs, plan.labels, plan.annotations, timeout=plan.timeout
    )
    _print_state({"secrets": [o.public() for o in outcomes]})


def _stop_on_sigterm() -> None:
    """SIGTERM raises StoppedError. As a container's PID 1 the interpreter would
    otherwise ignore it (the kernel drops signals PID 1 has no handler for), and
    the kubelet would kill the pod only after its grace period."""

    def stop(signum: int, _frame: object) -> None:
        raise StoppedError(f"stopped by signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: str = args.command
    log = logs.setup()
    start = time.monotonic()
    try:
        settings = load(need=NEEDS[command])
        logs.REDACTOR.add(*settings.secrets())
        logs.CONTEXT["step"] = command
        logs.event("start", step=command, version=__version__)
        if command == "secrets":
            _secrets(settings.namespace)
        elif command != "roll":
            _db_sequence(settings, command)
        if command in ("roll", "run"):
            from . import rollout  # noqa: PLC0415

            rollout.roll(settings)
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
