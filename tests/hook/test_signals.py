"""The hook as its container's PID 1 stops at once on SIGTERM (issue 18): a PID 1
gets only the signals it has a handler for, so without one a deleted hook pod
(or the Job's activeDeadlineSeconds) waited out the grace period. Its run ends
with exit 143 and one line saying why; the database lock, if held, is released."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from harness.hookrun import Result, hook_command


def test_sigterm_stops_the_hook_as_pid_1(hook_env: dict[str, str]) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare (util-linux) to run the hook as PID 1")
    # a database port where nothing answers: the hook keeps retrying to connect
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**hook_env, "MATOMO_DATABASE_PORT": str(port), "MATOMO_HOOK_DB_TIMEOUT": "60"}
    # TERM at its default disposition, as a container runtime starts PID 1 (a runner under nohup or
    # in the background may ignore some signals, and an ignored one stays ignored across exec)
    proc = subprocess.Popen([unshare, "--pid", "--fork", *hook_command(), "status"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))  # noqa: PLW1509
    deadline = time.monotonic() + 30
    pid = 0
    while not pid:
        assert time.monotonic() < deadline
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        pid = int(kids[0]) if kids else 0
        time.sleep(0.05)
    time.sleep(2)  # into its connect retries
    os.kill(pid, signal.SIGTERM)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 3, "the hook did not stop at once on SIGTERM"
    assert proc.returncode == 143, err
    errors = [e for e in Result(proc.returncode, out, err).events() if e.get("event") == "error"]
    assert errors and "SIGTERM" in errors[-1]["error"] and errors[-1]["exit_code"] == 143, err
