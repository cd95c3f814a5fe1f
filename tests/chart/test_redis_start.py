"""The embedded Redis's start (templates/redis/statefulset.yaml): the rendered
command, run with this machine's `sh` in a mount namespace of its own
(bubblewrap) with the pod's paths, writes the Secret's password into
/run/redis/auth.conf as a `requirepass` line that Redis's config parser
(`sdssplitargs`, ported below from redis/src/sds.c) reads back byte for byte,
readable by Redis's user only, and refuses what that file cannot hold; the
rendered redis.conf includes that file and never holds the password.
`redis-server` is a stand-in that shows what it was started with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from chartlib import CHART, KUBE_VERSION, bwrap_system_binds, run_helm


def sdssplitargs(line: str) -> list[str]:
    """Redis's config line splitter (sds.c), enough for a line of words and double-quoted strings."""
    out, i, n = [], 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return out
        cur, inq = "", False
        if line[i] == '"':
            inq, i = True, i + 1
        while True:
            if inq:
                if i >= n:
                    raise ValueError("unterminated quotes")
                c = line[i]
                if c == "\\" and i + 3 < n and line[i + 1] == "x" and all(h in "0123456789abcdefABCDEF" for h in line[i + 2:i + 4]):
                    cur += chr(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                if c == "\\" and i + 1 < n:
                    cur += {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}.get(line[i + 1], line[i + 1])
                    i += 2
                    continue
                if c == '"':
                    if i + 1 < n and not line[i + 1].isspace():
                        raise ValueError("closing quote must be followed by a space")
                    i += 1
                    break
                cur += c
                i += 1
            else:
                if i >= n or line[i].isspace():
                    break
                cur += line[i]
                i += 1
        out.append(cur)


@pytest.fixture(scope="module")
def statefulset(helm: str) -> dict:
    r = run_helm(helm, "template", "matomo", str(CHART), "--kube-version", KUBE_VERSION,
                 "--set", "queue.enabled=true", "--set", "queue.pluginInImage=true",
                 "-s", "templates/redis/statefulset.yaml", "-s", "templates/redis/configmap.yaml")
    assert r.returncode == 0, r.stderr
    return {d["kind"]: d for d in yaml.safe_load_all(r.stdout) if d}


def start(statefulset: dict, tmp_path: Path, password: bytes) -> tuple[subprocess.CompletedProcess, Path]:
    bwrap = shutil.which("bwrap")
    if bwrap is None or os.geteuid() != 0:
        pytest.skip("needs root and bubblewrap to give the script the pod's paths")
    c = statefulset["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    secret, run, bindir = tmp_path / "secret", tmp_path / "run", tmp_path / "bin"
    for d in (secret, run, bindir):
        d.mkdir()
    (secret / "password").write_bytes(password)
    (bindir / "redis-server").write_text('#!/bin/sh\necho "started: $*"\nstat -c "%a" /run/redis/auth.conf\n')
    (bindir / "redis-server").chmod(0o755)
    # /var/run is /run: a tmpfs there gets the pod's two mounts.
    result = subprocess.run([bwrap, *bwrap_system_binds(), "--ro-bind", "/etc", "/etc",
                             "--symlink", "/run", "/var/run", "--ro-bind", str(bindir), str(bindir), "--proc", "/proc", "--tmpfs", "/run",
                             "--bind", str(secret), "/run/secrets/redis", "--bind", str(run), "/run/redis",
                             "--dev", "/dev", *c["command"]],
                            env={"PATH": f"{bindir}:/usr/bin:/bin"}, capture_output=True, text=True, timeout=30,
                            check=False)
    return result, run / "auth.conf"


@pytest.mark.parametrize("password", ["Gen3ratedAlnum32xxxxxxxxxxxxxxxx", 'dou"ble', "back\\slash", "tr\\ailing\\",
                                      "a\\nb", "sp ace s", "${HOME}", "ünï", "\\x41", "'single'", "#hash"])
def test_the_password_reaches_redis_byte_for_byte(statefulset: dict, tmp_path: Path, password: str) -> None:
    result, auth = start(statefulset, tmp_path, password.encode())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["started: /etc/redis/redis.conf", "600"]
    lines = auth.read_text().splitlines()
    assert len(lines) == 1
    assert sdssplitargs(lines[0]) == ["requirepass", password]
    assert password not in result.stdout + result.stderr


@pytest.mark.parametrize("password,word", [(b"", "empty"), (b"two\nlines", "newline")])
def test_a_password_redis_cannot_read_is_refused(statefulset: dict, tmp_path: Path, password: bytes, word: str) -> None:
    result, auth = start(statefulset, tmp_path, password)
    assert result.returncode == 1
    assert word in result.stderr and "started" not in result.stdout
    assert not auth.exists()


def test_the_config_includes_the_password_file_and_loses_no_hit(statefulset: dict) -> None:
    conf = statefulset["ConfigMap"]["data"]["redis.conf"]
    lines = [sdssplitargs(line) for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    settings = {words[0]: words[1:] for words in lines}
    assert settings["maxmemory-policy"] == ["noeviction"]
    assert settings["appendonly"] == ["yes"]
    assert settings["dir"] == ["/data"]
    assert lines[-1] == ["include", "/run/redis/auth.conf"], "the password file comes last"
    assert "requirepass" not in settings
    # the checksum that rolls the pod follows redis.conf
    spec = statefulset["StatefulSet"]["spec"]["template"]
    assert spec["metadata"]["annotations"]["checksum/config"]
