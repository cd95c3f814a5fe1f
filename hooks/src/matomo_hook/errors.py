"""Exceptions of the hook, each carrying the process exit code it maps to.

Exit codes (documented in ``matomo-hook --help`` and docs/architecture.md):
0 done, 2 bad configuration, 3 unreachable, 4 Matomo refused a step,
5 rollout failed, 143 stopped by SIGTERM (the pod was deleted).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
EXIT_ROLLOUT = 5
EXIT_STOPPED = 143  # 128 + SIGTERM, as a shell reports it


class HookError(Exception):
    """Base class: a failure the hook reports in one line."""

    exit_code = 1


class ConfigError(HookError):
    """A setting is missing or malformed (checked before any connection)."""

    exit_code = EXIT_CONFIG


class UnreachableError(HookError):
    """The database, the installer or the console channel did not answer in time,
    or the database refused our credentials."""

    exit_code = EXIT_UNREACHABLE


class RefusedError(HookError):
    """Matomo (installer or console) refused a step, or the schema is in a
    state the hook will not touch without a person."""

    exit_code = EXIT_REFUSED


class RolloutError(HookError):
    """Restarting the Deployment failed or did not complete in time."""

    exit_code = EXIT_ROLLOUT


class StoppedError(HookError):
    """SIGTERM arrived (the pod is being deleted): the run stops where it is,
    releasing the database lock on the way out, instead of being killed later."""

    exit_code = EXIT_STOPPED
