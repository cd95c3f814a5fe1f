"""The embedded Redis's startup and readiness probe (templates/redis/statefulset.yaml, `matomo.redisPing`):
the rendered command, run with this machine's `sh` and Debian's `redis-cli` in a mount namespace with the
pod's paths (bubblewrap), against Debian's real `redis-server` in a network namespace of its own (so the
probe's hard-coded 127.0.0.1:6379 is private), passes only when Redis answers PING with PONG to the
Secret's password: it fails on a wrong password, on no Redis (within its timeoutSeconds) and, above all,
while Redis replays its data (the port is open then, but writes get -LOADING, which the QueuedTracking plugin
ignores: a hit routed there is lost), and the password is never in any process's arguments.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import CHART, KUBE_VERSION, bwrap_system_binds, run_helm

# Quotes, backslash, space, `$` and a backquote: what a shell or Redis's config parser could mangle.
PASSWORD = f"q\"d 's' b\\s $HOME `id` {secrets.token_hex(4)}"
KEYS, KEY_LOAD_DELAY_US = 3000, 1000  # about 3 s of loading


def _until(what: str, check: Any, seconds: float = 20) -> Any:
    """Polls `check` until it returns something true, failing the test with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


@dataclass
class Pod:
    """A network namespace of its own (the pod's), its files under `dir`, and the Redis servers started in it."""
    net: str
    dir: Path
    bwrap: str
    redises: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *argv: str, password: str = PASSWORD, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        """Runs `argv` in the pod's network namespace, the password in redis-cli's environment (never argv)."""
        return subprocess.run(["nsenter", f"--net={self.net}", *argv], env={"PATH": "/usr/bin:/bin",
                              "REDISCLI_AUTH": password}, capture_output=True, text=True, timeout=timeout, check=False)

    def cli(self, *args: str) -> str:
        """A redis-cli command's output (with the password), "" when Redis does not answer yet."""
        return self.run("redis-cli", "-h", "127.0.0.1", "-p", "6379", *args).stdout

    def loading(self) -> str | None:
        """INFO's `loading` field ("1" while Redis replays its data), None when Redis does not answer."""
        fields = dict(line.split(":", 1) for line in self.cli("INFO", "persistence").split() if ":" in line)
        return fields.get("loading")

    def redis(self, *extra: str) -> subprocess.Popen[bytes]:
        """Starts redis-server on the pod's 127.0.0.1:6379 with its data in `dir`, the password in its config."""
        quoted = PASSWORD.replace("\\", "\\\\").replace('"', '\\"')
        conf = self.dir / "redis.conf"
        conf.write_text("\n".join([
            "bind 127.0.0.1", "port 6379", "daemonize no", f"dir {self.dir}", "dbfilename dump.rdb",
            'appendonly no', 'save ""', f'requirepass "{quoted}"',
            # events (accept, AUTH, INFO, PING) served every KiB read while loading, not every 2 MiB
            "loading-process-events-interval-bytes 1024", *extra]) + "\n")
        log = (self.dir / "redis.log").open("ab")
        proc = subprocess.Popen(["nsenter", f"--net={self.net}", "redis-server", str(conf)],
                                stdout=log, stderr=subprocess.STDOUT)
        self.redises.append(proc)
        return proc

    def probe(self, command: list[str], password: str = PASSWORD) -> subprocess.Popen[bytes]:
        """Starts the probe's command as the kubelet would run it in the container: the Secret's file at
        /var/run/secrets/redis/password, the pod's network; its own PID namespace, so killing it ends it all."""
        secret = self.dir / "secret"
        secret.mkdir(exist_ok=True)
        (secret / "password").write_text(password)
        return subprocess.Popen(["nsenter", f"--net={self.net}", self.bwrap, "--unshare-pid", "--die-with-parent",
                                 *bwrap_system_binds(), "--ro-bind", "/etc", "/etc", "--symlink", "/run", "/var/run",
                                 "--tmpfs", "/run", "--ro-bind", str(secret), "/run/secrets/redis",
                                 "--proc", "/proc", "--dev", "/dev", *command],
                                env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def exit_status(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The probe's exit status, None (a failure to the kubelet) when it outlived its timeout and was killed."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


@pytest.fixture(scope="module")
def probe(helm: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The rendered readinessProbe, the chart given the password as a value."""
    values = tmp_path_factory.mktemp("values") / "values.yaml"
    values.write_text(yaml.safe_dump({"queue": {"enabled": True, "pluginInImage": True, "redis": {"password": PASSWORD}}}))
    r = run_helm(helm, "template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values),
                 "-s", "templates/redis/statefulset.yaml")
    assert r.returncode == 0, r.stderr
    container = yaml.safe_load(r.stdout)["spec"]["template"]["spec"]["containers"][0]
    assert container["startupProbe"]["exec"] == container["readinessProbe"]["exec"], "one check, tested once"
    assert PASSWORD not in r.stdout
    return dict(container["readinessProbe"])


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    """A pause process holding a fresh network namespace (loopback up, by bwrap); stops every Redis started in it."""
    bwrap = shutil.which("bwrap")
    if bwrap is None or os.geteuid() != 0 or shutil.which("nsenter") is None:
        pytest.skip("needs root, bubblewrap and nsenter for the pod's paths and network namespace")
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server is not installed (./dev tools, or apt-get install redis-server)")
    r, w = os.pipe()
    pause = subprocess.Popen([bwrap, "--unshare-net", "--die-with-parent", *bwrap_system_binds(), "--info-fd", str(w),
                              "sleep", "infinity"], pass_fds=(w,))
    os.close(w)
    with os.fdopen(r) as info:  # written once the namespace is set up
        child = int(json.load(info)["child-pid"])
    it = Pod(f"/proc/{child}/ns/net", tmp_path, bwrap)
    try:
        yield it
    finally:
        for proc in it.redises:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            proc.wait()
        os.kill(child, signal.SIGKILL)
        pause.wait()


def up(pod: Pod) -> None:
    """Starts Redis and waits until it answers PONG."""
    pod.redis()
    _until("Redis to answer PONG", lambda: pod.cli("ping").strip() == "PONG")


def test_redis_up_with_the_password_is_ready(probe: dict[str, Any], pod: Pod) -> None:
    up(pod)
    assert exit_status(pod.probe(probe["exec"]["command"]), probe["timeoutSeconds"]) == 0


def test_a_wrong_password_is_not_ready(probe: dict[str, Any], pod: Pod) -> None:
    up(pod)
    assert exit_status(pod.probe(probe["exec"]["command"], password="wrong"), probe["timeoutSeconds"]) not in (0, None)


def test_no_redis_is_not_ready_within_the_timeout(probe: dict[str, Any], pod: Pod) -> None:
    start = time.monotonic()
    status = exit_status(pod.probe(probe["exec"]["command"]), probe["timeoutSeconds"])
    assert status is not None, f"still running after timeoutSeconds={probe['timeoutSeconds']}"
    assert status != 0 and time.monotonic() - start < probe["timeoutSeconds"]


def test_redis_loading_its_data_is_not_ready_until_loaded(probe: dict[str, Any], pod: Pod) -> None:
    up(pod)
    script = f"for i=1,{KEYS} do redis.call('SET','k'..i,i) end"
    assert pod.cli("EVAL", script, "0").strip() == "" and pod.cli("SAVE").strip() == "OK"
    first = pod.redises[0]
    first.terminate()
    first.wait(timeout=10)
    # Redis 7's hidden key-load-delay: microseconds slept per key loaded, so the replay takes seconds.
    pod.redis(f"key-load-delay {KEY_LOAD_DELAY_US}")
    _until("Redis to be loading", lambda: pod.loading() == "1")
    # The port is open meanwhile: a tcpSocket probe would route tracking hits to a Redis that loses them.
    assert pod.run("python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 6379), 1)").returncode == 0
    assert exit_status(pod.probe(probe["exec"]["command"]), probe["timeoutSeconds"]) not in (0, None)
    assert pod.loading() == "1", "loading ended during the probe: raise KEYS"
    _until("Redis to finish loading", lambda: pod.loading() == "0", seconds=60)
    assert pod.cli("DBSIZE").strip() == str(KEYS)
    assert exit_status(pod.probe(probe["exec"]["command"]), probe["timeoutSeconds"]) == 0


def test_the_password_is_in_no_process_arguments(probe: dict[str, Any], pod: Pod) -> None:
    assert PASSWORD not in " ".join(probe["exec"]["command"])
    up(pod)
    # A stopped Redis still accepts connections (the kernel's backlog) but never answers: the probe hangs
    # in redis-cli with the password in use, long enough to read every process's arguments.
    pod.redises[0].send_signal(signal.SIGSTOP)
    running = pod.probe(probe["exec"]["command"])
    netns = os.readlink(pod.net)

    def in_redis_cli() -> list[bytes] | None:
        """Every process's arguments, once the probe's redis-cli (in the pod's network) is among them."""
        procs = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    procs.append(((proc / "cmdline").read_bytes(), os.readlink(proc / "ns" / "net")))
                except OSError:  # it ended
                    continue
        found = any(args.startswith(b"redis-cli\0") and net == netns for args, net in procs)
        return [args for args, _ in procs] if found else None

    seen = _until("the probe's redis-cli", in_redis_cli)
    assert not [c for c in seen if PASSWORD.encode() in c]
    assert exit_status(running, probe["timeoutSeconds"]) is None, "a Redis that never answers is not ready"
