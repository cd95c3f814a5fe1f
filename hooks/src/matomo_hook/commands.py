"""The commands of ``matomo-hook``: what each needs from the environment and
what it runs.

The module a command runs is imported when it runs: ``--help`` loads neither
pymysql nor kubernetes, ``status`` not kubernetes, ``roll`` not pymysql.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import __version__, logs
from .config import Settings, load


@dataclass(frozen=True)
class Command:
    help: str
    # what config.load must find: db (database), install (salt, superuser, site),
    # upgrade (salt), roll (Deployment), restore (backup folder and file)
    needs: frozenset[str]
    run: Callable[[Settings], None]


def _status(settings: Settings) -> None:
    from . import converge  # noqa: PLC0415

    converge.status(settings)


def _install(settings: Settings) -> None:
    from . import converge  # noqa: PLC0415

    converge.converge(settings, "install", install=True, upgrade=False, plugins=False)


def _upgrade(settings: Settings) -> None:
    from . import converge  # noqa: PLC0415

    converge.converge(settings, "upgrade", install=False, upgrade=True, plugins=False)


def _roll(settings: Settings) -> None:
    from . import rollout  # noqa: PLC0415

    rollout.roll(settings)


def _run(settings: Settings) -> None:
    from . import converge  # noqa: PLC0415

    changed = converge.converge(settings, "run", install=True, upgrade=True, plugins=True)
    # Pods keep per-pod caches in their tmp/ (Matomo clears them only in the pod that
    # installed or upgraded): after a change they restart. Without one, the pods
    # Helm just rolled (or left alone) already run this code and config.
    if changed or settings.roll_always:
        _roll(settings)
    else:
        logs.event("rollout_skipped", step="roll", deployment=settings.deployment,
                   reason="the database is as it was: no install, no upgrade, no plugin installed")


def _restore(settings: Settings) -> None:
    from . import converge  # noqa: PLC0415

    converge.restore(settings)


def _secrets(settings: Settings) -> None:
    from . import secrets  # noqa: PLC0415

    secrets.create_absent(settings.namespace)


COMMANDS: dict[str, Command] = {
    "status": Command(
        'print one JSON line {"state","version_core","superusers","sites","tables"}',
        frozenset({"db"}),
        _status,
    ),
    "install": Command(
        "bring an empty or partial schema to installed through the installer",
        frozenset({"db", "install"}),
        _install,
    ),
    "upgrade": Command(
        "run core:update once when the code is newer than version_core",
        frozenset({"db", "upgrade"}),
        _upgrade,
    ),
    "roll": Command(
        "restart the Deployment (kubectl rollout restart) and wait for it",
        frozenset({"roll"}),
        _roll,
    ),
    "run": Command(
        "status, then install or upgrade as needed, then roll (what the Jobs run)",
        frozenset({"db", "install", "upgrade", "roll"}),
        _run,
    ),
    "restore": Command(
        "load the dump MATOMO_HOOK_RESTORE_FILE of MATOMO_HOOK_BACKUP_DIR into the database, "
        "once: a file the last restore recorded is not loaded again (the Job F-restore)",
        frozenset({"db", "restore"}),
        _restore,
    ),
    "secrets": Command(
        "create each Secret of MATOMO_HOOK_SECRETS that is absent, with random "
        "values; never change an existing one (the pre-install Job runs it)",
        frozenset(),
        _secrets,
    ),
}


def execute(name: str) -> None:
    """Loads the settings command `name` needs (all checked before any connection),
    then runs it."""
    command = COMMANDS[name]
    settings = load(need=command.needs)
    logs.REDACTOR.add(*settings.secrets())
    logs.CONTEXT["step"] = name
    logs.event("start", step=name, version=__version__)
    command.run(settings)
