"""Installer faults (the stand-in's switches) and a hook killed after each step."""

from __future__ import annotations

import time

import pytest

from harness.mariadb import MariaDB
from harness.standin.server import Faults, StandIn

from .faultlib import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    Running,
    assert_preserved,
    errors_of,
    run,
    snapshot,
    state_of,
    wait_for_count,
)

STEPS = ["tablesCreation", "setupSuperUser", "firstWebsiteSetup", "finished"]


def installed(res: object) -> bool:
    st = state_of(res)  # type: ignore[arg-type]
    return bool(st) and st["state"] == "installed" and st["superusers"] == 1 and st["sites"] == 1  # type: ignore[index]


def rerun_finishes(env: dict[str, str], standin: StandIn, mariadb: MariaDB, db: str,
                   before: dict[str, object]) -> None:  # fmt: skip
    standin.faults = Faults()
    standin.release.set()
    mid = snapshot(mariadb, db)
    assert_preserved(before, mid)
    res = run(env, "install")
    assert res.returncode == EXIT_OK, res.stderr
    assert installed(res), res.stdout
    assert_preserved(mid, snapshot(mariadb, db))


def test_slow_answers(fault_env: dict[str, str], standin: StandIn, mariadb: MariaDB,
                      mariadb_database: str) -> None:  # fmt: skip
    """before: empty. fault: every answer 0.7 s late (within the deadline).
    after: installed, exit 0."""
    standin.faults = Faults(slow=0.7)
    t0 = time.monotonic()
    res = run(fault_env, "install")
    assert res.returncode == EXIT_OK, res.stderr
    assert time.monotonic() - t0 >= 4 * 0.7
    assert installed(res)


def test_slower_than_the_deadline(fault_env: dict[str, str], standin: StandIn,
                                  mariadb: MariaDB, mariadb_database: str) -> None:  # fmt: skip
    """before: empty. fault: answers take 4 s, MATOMO_HOOK_INSTALLER_TIMEOUT=2.
    after: exit 3 naming the installer; a run without the fault finishes."""
    before = snapshot(mariadb, mariadb_database)
    standin.faults = Faults(slow=4.0)
    res = run({**fault_env, "MATOMO_HOOK_INSTALLER_TIMEOUT": "2"}, "install")
    assert res.returncode == EXIT_UNREACHABLE, res.stderr
    message = " ".join(errors_of(res))
    assert "installer" in message.lower() or "MATOMO_INSTALLER_URL" in message, message
    time.sleep(4.5)  # let the stand-in finish the late request the hook gave up on
    rerun_finishes(fault_env, standin, mariadb, mariadb_database, before)


@pytest.mark.parametrize("step", STEPS)
def test_answers_500(step: str, fault_env: dict[str, str], standin: StandIn,
                     mariadb: MariaDB, mariadb_database: str) -> None:  # fmt: skip
    """before: empty. fault: ``step`` answers HTTP 500. after: exit 4, message
    naming the step; a run without the fault finishes."""
    before = snapshot(mariadb, mariadb_database)
    standin.faults = Faults(status={step: 500})
    res = run(fault_env, "install")
    assert res.returncode == EXIT_REFUSED, res.stderr
    message = " ".join(errors_of(res))
    assert step in message and "500" in message, message
    rerun_finishes(fault_env, standin, mariadb, mariadb_database, before)


@pytest.mark.parametrize("step", STEPS)
def test_form_error(step: str, fault_env: dict[str, str], standin: StandIn,
                    mariadb: MariaDB, mariadb_database: str) -> None:  # fmt: skip
    """before: empty. fault: ``step`` answers 200 with Matomo's alert-danger.
    after: exit 4 quoting Matomo's text; a run without the fault finishes."""
    before = snapshot(mariadb, mariadb_database)
    text = f"Fault injected into {step}: disk quota exceeded"
    standin.faults = Faults(form_error={step: text})
    res = run(fault_env, "install")
    assert res.returncode == EXIT_REFUSED, res.stderr
    assert text in " ".join(errors_of(res)), res.stderr
    rerun_finishes(fault_env, standin, mariadb, mariadb_database, before)


@pytest.mark.parametrize("step", STEPS)
def test_closes_connection_twice(step: str, fault_env: dict[str, str], standin: StandIn,
                                 mariadb: MariaDB, mariadb_database: str) -> None:  # fmt: skip
    """before: empty. fault: ``step`` closes the connection without an answer
    twice. after: retried, installed, exit 0, each step's work done once."""
    standin.faults = Faults(close={step: 2})
    res = run(fault_env, "install")
    assert res.returncode == EXIT_OK, res.stderr
    assert installed(res)
    done = [r["action"] for r in standin.requests if r.get("status") != "closed"]
    assert done == STEPS, standin.requests


def test_closes_connection_always(fault_env: dict[str, str], standin: StandIn,
                                  mariadb: MariaDB, mariadb_database: str) -> None:  # fmt: skip
    """before: empty. fault: tablesCreation never answers (connection closed every
    time). after: exit 3 at the installer deadline; a run without the fault finishes."""
    before = snapshot(mariadb, mariadb_database)
    standin.faults = Faults(close={"tablesCreation": -1})
    res = run({**fault_env, "MATOMO_HOOK_INSTALLER_TIMEOUT": "3"}, "install")
    assert res.returncode == EXIT_UNREACHABLE, res.stderr
    rerun_finishes(fault_env, standin, mariadb, mariadb_database, before)


@pytest.mark.parametrize("step", ["seed", *STEPS])
def test_killed_after_step(step: str, fault_env: dict[str, str], standin: StandIn,
                           mariadb: MariaDB, mariadb_database: str) -> None:  # fmt: skip
    """before: empty. fault: SIGKILL right after ``step`` is done. after: the
    advisory lock went with the process; a new run finishes; no row lost."""
    before = snapshot(mariadb, mariadb_database)
    hook = Running.start(fault_env, "install")
    hook.wait_event(lambda e: e.get("event") == "step_done" and e.get("step") == step)
    hook.kill()
    rerun_finishes(fault_env, standin, mariadb, mariadb_database, before)


def test_killed_while_installer_holds_the_answer(
    fault_env: dict[str, str], standin: StandIn, mariadb: MariaDB, mariadb_database: str,
) -> None:  # fmt: skip
    """before: empty. fault: setupSuperUser did its work but the answer is held;
    the hook is killed while waiting. after: a new run finishes (superuser kept)."""
    before = snapshot(mariadb, mariadb_database)
    standin.faults = Faults(hang_after=["setupSuperUser"])
    hook = Running.start(fault_env, "install")
    hook.wait_event(lambda e: e.get("event") == "step_done" and e.get("step") == "tablesCreation")
    wait_for_count(mariadb, mariadb_database,
                   "SELECT COUNT(*) FROM matomo_user WHERE superuser_access = 1", timeout=15)
    hook.kill()
    rerun_finishes(fault_env, standin, mariadb, mariadb_database, before)
