"""Every container whose process is the chart's own shell script (not the image's
own server) stops at once on its image's stop signal (issue 18).

The kubelet stops a container by sending the image's STOPSIGNAL to its PID 1:
SIGWINCH for the `-apache` images (apache's graceful stop, as in php:apache),
SIGQUIT for `-fpm`, SIGTERM otherwise. A PID 1 gets only the signals it has a
handler for, so a script that traps just TERM ignores the others and the kubelet
kills it after terminationGracePeriodSeconds (30 s): every hook Job waited that
long for its Matomo sidecar. Here each rendered command runs as PID 1 of a new
PID namespace (as in a container), the signal is sent from outside, and the
script must be gone within seconds. Slow work (PHP's console, curl against the
Service) is a process that sleeps; the hook sidecar serves PHP's real built-in
server, which must be stopped with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import CHART, KUBE_VERSION, run_helm
from harness.basics import free_port

SIGNALS = ["SIGWINCH", "SIGQUIT", "SIGTERM", "SIGINT", "SIGHUP"]
STOP_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def pid1() -> list[str]:
    """The prefix that runs a command as PID 1 of a new PID namespace."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare (util-linux) to run a command as PID 1")
    probe = subprocess.run([unshare, "--pid", "--fork", "sh", "-c", 'test "$$" = 1'], check=False)
    if probe.returncode != 0:
        pytest.skip("this machine does not allow a new PID namespace")
    return [unshare, "--pid", "--fork"]


def default_signals() -> None:
    """In the child before exec: every stop signal at its default disposition, as a container
    runtime starts PID 1. A signal ignored on entry (a CI runner started in the background or under
    nohup ignores INT, QUIT, HUP) stays ignored across exec, and a shell cannot trap it."""
    for name in SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def start_pid1(pid1: list[str], command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*pid1, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_signals)  # noqa: PLW1509 (no threads started here)


def rendered(helm: str, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "--set", "archiver.enabled=true"]
    for s in sets:
        args += ["--set", s]
    out = run_helm(helm, *args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] != kind:
            continue
        spec = d["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]["template"]["spec"]
        elif kind in ("Job", "Deployment"):
            spec = spec["template"]["spec"]
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            if c["name"] == name:
                return dict(c)
    raise AssertionError(f"no container {name} in a {kind}")


def slow_command(bindir: Path, name: str) -> None:
    """`name` on PATH as a process that takes long (PHP's console, curl)."""
    f = bindir / name
    f.write_text("#!/bin/sh\nexec sleep 60\n")
    f.chmod(0o755)


def child_pid(parent: int, timeout: float = 5) -> int:
    """The PID (as seen here) of unshare's child: PID 1 of the new namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.02)
    raise AssertionError("the command did not start")


def stop(proc: subprocess.Popen[bytes], signame: str, ready: Any) -> tuple[int, float]:
    """Waits until `ready()`, sends `signame` to PID 1, returns (exit code, seconds to exit)."""
    pid = child_pid(proc.pid)
    deadline = time.monotonic() + 20
    while not ready():
        assert proc.poll() is None, f"exited early: {proc.communicate()[1].decode()[-2000:]}"
        assert time.monotonic() < deadline, "the command never got ready"
        time.sleep(0.05)
    os.kill(pid, getattr(signal, signame))
    t0 = time.monotonic()
    try:
        proc.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)  # PID 1 gone, the kernel ends every process of its namespace
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running {STOP_WITHIN_S} s after {signame}: the kubelet would kill it "
                             "after terminationGracePeriodSeconds") from None
    return proc.returncode, time.monotonic() - t0


def children_of(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("variant", ["apache", "fpm"])
def test_hook_sidecar_stops_with_its_php_server(helm: str, pid1: list[str], tmp_path: Path, variant: str,
                                                signame: str) -> None:
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed (./dev tools installs it)")
    c = container(rendered(helm, f"image.variant={variant}"), "Job", "matomo-installer")
    assert c["command"] == ["/bin/sh", "/opt/matomo-hook/hook-matomo.sh"]
    # the code as the image has it (the sidecar publishes core/Version.php and the plugins at start)
    code = tmp_path / "code"
    (code / "core").mkdir(parents=True)
    (code / "core" / "Version.php").write_text("<?php const VERSION = '5.1.2';\n")
    (code / "plugins" / "CoreHome").mkdir(parents=True)
    (code / "plugins" / "CoreHome" / "CoreHome.php").write_text("<?php\n")
    (code / "console").write_text("")
    (code / "index.php").write_text("<?php echo 'ok';\n")
    port = free_port()
    # the rendered env, with the folders moved here (the chart's are the pod's: /usr/src/matomo, /var/lib/matomo)
    env = {**{e["name"]: e["value"] for e in c["env"] if "value" in e},
           "PATH": os.environ["PATH"], "PHP_BIN": php, "MATOMO_LISTEN": f"127.0.0.1:{port}",
           "MATOMO_CODE_DIR": str(code), "MATOMO_USER_PATH": str(tmp_path / "data"),
           "MATOMO_COMMAND_DIR": str(tmp_path / "channel")}
    script = CHART / "files" / "hook-matomo.sh"
    proc = start_pid1(pid1, ["/bin/sh", str(script)], env)

    def serving() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    rc, _ = stop(proc, signame, serving)
    assert rc == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert not serving(), "PHP's server outlived the sidecar"


# (kind, container, the slow command it runs, env): scripts whose work runs in a child
CHILD_RUNNERS = {
    "archiver": ("CronJob", "archiver", "php", {"MATOMO_URL": "http://matomo.example.org/"}),
    "helm-test": ("Pod", "check", "curl", {}),
}


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("which", sorted(CHILD_RUNNERS))
def test_script_stops_its_running_command(helm: str, pid1: list[str], tmp_path: Path, which: str,
                                          signame: str) -> None:
    kind, name, slow, extra_env = CHILD_RUNNERS[which]
    c = container(rendered(helm), kind, name)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    slow_command(bindir, slow)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", **extra_env}
    proc = start_pid1(pid1, c["command"], env)
    pid = child_pid(proc.pid)
    rc, _ = stop(proc, signame, lambda: children_of(pid))
    assert rc == 143


QUEUE = ("queue.enabled=true", "queue.pluginInImage=true")
# the worker's version check says (exit code) / its queuedtracking:process is slow and writes what it was called with
WORKER_PHP = """#!/bin/sh
case "$1" in
  */matomo-version-check.php) exit "${CHECK_RC:-0}" ;;
esac
printf '%s\\n' "$*" >> "$CALLS"
exec sleep 60
"""


def worker(helm: str, mode: str) -> dict[str, Any]:
    kind = "Deployment" if mode == "deployment" else "CronJob"
    return container(rendered(helm, *QUEUE, f"queue.workers.mode={mode}"), kind, "queue-worker")


def worker_php(tmp_path: Path) -> tuple[Path, Path]:
    """A `php` on PATH standing in for the worker's console (WORKER_PHP), and the file it records its calls in."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "php").write_text(WORKER_PHP)
    (bindir / "php").chmod(0o755)
    return bindir, tmp_path / "calls"


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("mode", ["deployment", "cronjob"])
def test_queue_worker_stops_queuedtracking_process(helm: str, pid1: list[str], tmp_path: Path, mode: str,
                                                   signame: str) -> None:
    """The worker runs `console queuedtracking:process` as a child (--cycle=0 in a Deployment: it never
    exits on its own); the stop signal ends it and the pod at once, not after the grace period."""
    c = worker(helm, mode)
    bindir, calls = worker_php(tmp_path)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "CALLS": str(calls)}
    proc = start_pid1(pid1, c["command"], env)
    rc, _ = stop(proc, signame, lambda: calls.exists())
    assert rc == 143
    called = calls.read_text().split()
    assert called[:2] == ["/usr/src/matomo/console", "queuedtracking:process"], called
    assert ("--cycle=0" in called) == (mode == "deployment"), called


@pytest.mark.parametrize("mode", ["deployment", "cronjob"])
def test_queue_worker_before_the_database_is_installed(helm: str, pid1: list[str], tmp_path: Path, mode: str) -> None:
    """Until the hook has installed (or upgraded) the database, the version check exits 3: a cron run is
    skipped (exit 0, so the Job does not fail), a Deployment's worker waits and processes nothing."""
    c = worker(helm, mode)
    bindir, calls = worker_php(tmp_path)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "CALLS": str(calls), "CHECK_RC": "3"}
    proc = start_pid1(pid1, c["command"], env)
    if mode == "cronjob":
        assert proc.wait(timeout=10) == 0
    else:
        time.sleep(2)
        assert proc.poll() is None, "the worker exited instead of waiting for the hook"
        rc, _ = stop(proc, "SIGTERM", lambda: True)
        assert rc == 143
    assert not calls.exists(), "queuedtracking:process ran on a database not installed"
