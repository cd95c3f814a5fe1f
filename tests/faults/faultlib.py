"""Helpers for the fault cases: row snapshots, secret checks, streaming hook runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.mariadb import MariaDB
from harness.hookrun import SECRET_SALT, SUPERUSER_PASSWORD, Result, hook_command, run_hook

from harness.basics import wait_until

EXIT_OK, EXIT_CONFIG, EXIT_UNREACHABLE, EXIT_REFUSED, EXIT_ROLLOUT = 0, 2, 3, 4, 5


def snapshot(mariadb: MariaDB, database: str) -> dict[str, Any]:
    """Every table: its DDL, CHECKSUM TABLE and the multiset of its rows."""
    out: dict[str, Any] = {}
    with mariadb.root(database) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        for (name,) in sorted(cur.fetchall()):
            cur.execute(f"SHOW CREATE TABLE `{name}`")
            ddl = cur.fetchone()[1]
            cur.execute(f"CHECKSUM TABLE `{name}` EXTENDED")
            checksum = cur.fetchone()[1]
            cur.execute(f"SELECT * FROM `{name}`")  # noqa: S608 -- test tables are tiny
            rows = sorted(repr(r) for r in cur.fetchall())
            out[name] = {"ddl": ddl, "checksum": checksum, "rows": rows}
    return out


def count_now(mariadb: MariaDB, database: str, sql: str) -> int:
    """The first column of ``sql``'s first row; 0 while its table does not exist yet."""
    try:
        with mariadb.root(database) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return int(cur.fetchone()[0])
    except Exception:  # noqa: BLE001 -- table not there yet
        return 0


def wait_for_count(mariadb: MariaDB, database: str, sql: str, timeout: float) -> bool:
    """Polls ``sql`` (a COUNT) until it is not 0 or ``timeout``; whether it got there."""
    return bool(wait_until(lambda: count_now(mariadb, database, sql) > 0, timeout, interval=0.05, retry=(), error=None))


def assert_preserved(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Pre-existing rows of every table unchanged: no table dropped, no row
    changed or deleted (new rows and new tables are allowed)."""
    for name, b in before.items():
        assert name in after, f"table {name} disappeared"
        a = after[name]
        if a["checksum"] == b["checksum"]:
            continue
        missing = [r for r in b["rows"] if r not in a["rows"]]
        assert not missing, f"{name}: pre-existing rows changed or deleted: {missing[:3]}"


def assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Byte for byte: same tables, same checksums."""
    assert sorted(before) == sorted(after)
    for name in before:
        assert before[name]["checksum"] == after[name]["checksum"], f"{name} changed"


def secrets_of(env: dict[str, str]) -> list[str]:
    values = [
        env.get("MATOMO_DATABASE_PASSWORD", ""),
        env.get("MATOMO_SALT", ""),
        env.get("MATOMO_SUPERUSER_PASSWORD", ""),
        SECRET_SALT,
        SUPERUSER_PASSWORD,
    ]
    return [v for v in values if v and len(v) >= 6]


def assert_no_secret(env: dict[str, str], *texts: str) -> None:
    for secret in secrets_of(env):
        for text in texts:
            assert secret not in text, "a secret appears in the hook's output"


def state_of(res: Result) -> dict[str, Any] | None:
    for line in reversed(res.stdout.splitlines()):
        if line.strip().startswith("{"):
            return dict(json.loads(line))
    return None


def errors_of(res: Result) -> list[str]:
    return [str(e.get("error", "")) for e in res.events() if e.get("event") == "error"]


def run(env: dict[str, str], *args: str, timeout: float = 120) -> Result:
    """``run_hook``, and no secret and no unredacted traceback in its output."""
    res = run_hook(env, *args, timeout=timeout)
    assert_no_secret(env, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr or '"traceback"' in res.stderr, res.stderr
    return res


@dataclass
class Running:
    """A hook process whose stderr is read line by line as it runs."""

    proc: subprocess.Popen[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    stdout: str = ""
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def start(cls, env: dict[str, str], *args: str) -> Running:
        proc = subprocess.Popen(
            [*hook_command(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip
        run = cls(proc, env)
        threading.Thread(target=run._pump, daemon=True).start()
        return run

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def events(self) -> list[dict[str, Any]]:
        with self._cond:
            lines = list(self.lines)
        out = []
        for line in lines:
            if line.strip().startswith("{"):
                out.append(json.loads(line))
        return out

    def wait_event(self, pred: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events():
                if pred(ev):
                    return ev
            if self.proc.poll() is not None:
                time.sleep(0.1)
                for ev in self.events():
                    if pred(ev):
                        return ev
                raise AssertionError(f"hook exited {self.proc.returncode} first: {self.lines}")
            with self._cond:
                self._cond.wait(0.05)
        raise AssertionError(f"event not seen in {timeout}s: {self.lines}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        with self._cond:
            text = "".join(self.lines)
        assert_no_secret(self.env, text)

    def finish(self, timeout: float = 120) -> Result:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout)
        time.sleep(0.05)
        res = Result(self.proc.returncode, out or "", "".join(self.lines))
        assert_no_secret(self.env, res.stdout, res.stderr)
        return res


def config_text(root: Path) -> str:
    path = root / "config" / "config.ini.php"
    return path.read_text() if path.exists() else ""
