"""What the hook benchmarks run against, reused from the test suite:

- a real MariaDB (``tests/harness/mariadb.py``: Debian's mariadbd on 127.0.0.1),
- the installer stand-in (``tests/harness/standin/server.py``, records its served time),
- the hook's environment (``tests/harness/hookrun.py: base_env``),
- a tiny Kubernetes API stand-in for ``roll`` (PATCH/GET one Deployment that is
  always complete), so ``matomo-hook run`` can be timed as a whole process
  without a control plane's noise.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import ROOT, tool

TESTS = ROOT / "tests"


def hook_exe() -> list[str]:
    exe = tool("matomo-hook")
    if exe:
        return [exe]
    return [sys.executable, "-c", "import sys; from matomo_hook.cli import main; sys.exit(main())"]


def hook_python() -> str:
    """The interpreter the matomo-hook script runs with (its shebang)."""
    exe = tool("matomo-hook")
    if exe:
        first = Path(exe).read_text(errors="replace").splitlines()[0]
        if first.startswith("#!"):
            return first[2:].strip().split()[0]
    return sys.executable


@dataclass
class Stack:
    tmp: Path
    mariadb: Any
    kube: KubeStub

    def new_target(self, name: str) -> Target:
        from harness.hookrun import make_matomo_root  # noqa: PLC0415

        base = self.tmp / name
        root = make_matomo_root(base / "matomo")
        channel = base / "channel"
        channel.mkdir(parents=True, exist_ok=True)
        database = self.mariadb.new_database("bench")
        return Target(self, database, root, channel)


@dataclass
class Target:
    stack: Stack
    database: str
    root: Path
    channel: Path
    standin: Any = None

    def start_standin(self) -> Any:
        from harness.standin.server import Faults, StandIn  # noqa: PLC0415

        self.standin = StandIn(self.root, faults=Faults()).start()
        return self.standin

    def stop_standin(self) -> None:
        if self.standin is not None:
            self.standin.stop()
            self.standin = None

    def env(self, **extra: str) -> dict[str, str]:
        from harness.hookrun import base_env  # noqa: PLC0415

        url = self.standin.url if self.standin else "http://127.0.0.1:9/"
        env = base_env(self.stack.mariadb, self.database, self.root, url, self.channel)
        env.pop("PYTHONPATH", None)  # the hook needs nothing from tests/
        env.update(
            KUBECONFIG=str(self.stack.kube.kubeconfig),
            MATOMO_HOOK_DEPLOYMENT="matomo",
            MATOMO_HOOK_NAMESPACE="bench",
            MATOMO_HOOK_ROLLOUT_TIMEOUT="30",
        )
        env.update(extra)
        return env

    def root_conn(self) -> Any:
        return self.stack.mariadb.root(self.database)


class KubeStub:
    """Answers the two calls ``roll`` makes for Deployment bench/matomo."""

    def __init__(self, tmp: Path) -> None:
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "matomo", "namespace": "bench", "generation": 2},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "matomo"}},
                "template": {"metadata": {"labels": {"app": "matomo"}}, "spec": {"containers": []}},
            },
            "status": {
                "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1,
            },
        }  # fmt: skip
        body = json.dumps(deployment).encode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                ok = self.path.startswith("/apis/apps/v1/namespaces/bench/deployments/matomo")
                data = body if ok else b'{"kind":"Status","code":404}'
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        port = self.httpd.server_address[1]
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
            f"clusters:\n- name: bench\n  cluster:\n    server: http://127.0.0.1:{port}\n"
            "users:\n- name: bench\n  user:\n    token: bench-token\n"
            "contexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n"
            "    namespace: bench\n"
        )

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def stack() -> Iterator[Stack]:
    from harness.mariadb import start_mariadb  # noqa: PLC0415

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    db = None
    kube = KubeStub(tmp)
    try:
        try:
            db = start_mariadb(tmp / "mariadb")
        except BaseException as exc:  # pytest.skip raises outside pytest too
            raise RuntimeError(f"cannot start MariaDB: {exc}") from None
        yield Stack(tmp, db, kube)
    finally:
        kube.stop()
        if db is not None:
            db.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def install(target: Target, standin_running: bool = False) -> None:
    """Installs the target database through the hook (for benches that need it)."""
    from common import run_proc  # noqa: PLC0415

    started = False
    if target.standin is None:
        target.start_standin()
        started = True
    try:
        run_proc([*hook_exe(), "install"], env=target.env())
    finally:
        if started and not standin_running:
            target.stop_standin()


def global_status(conn: Any, names: tuple[str, ...]) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS")
        rows = {k: v for k, v in cur.fetchall()}
    out: dict[str, int] = {}
    for n in names:
        if n.endswith("*"):
            out[n] = sum(int(v) for k, v in rows.items() if k.startswith(n[:-1]) and str(v).isdigit())
        else:
            out[n] = int(rows.get(n, 0))
    return out
