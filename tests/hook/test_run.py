"""`matomo-hook run` end to end: install, then roll through the real
kubernetes client against a small API stub (the real API server test is
tests/cluster/)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.standin.server import StandIn

from .conftest import run_hook


class ApiStub:
    def __init__(self, ready_after: int = 2) -> None:
        self.calls: list[tuple[str, str, str, Any]] = []
        self.generation = 1
        self.reads = 0
        self.ready_after = ready_after
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PATCH(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.calls.append(("PATCH", self.path, self.headers.get("Content-Type", ""), body))
                stub.generation += 1
                stub.reads = 0
                self._reply(200, stub.deployment(ready=False))

            def do_GET(self) -> None:
                stub.calls.append(("GET", self.path, "", None))
                if self.headers.get("Authorization") != "Bearer hook-token":
                    self._reply(401, {"kind": "Status", "code": 401})
                    return
                stub.reads += 1
                self._reply(200, stub.deployment(ready=stub.reads >= stub.ready_after))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def deployment(self, ready: bool) -> dict[str, Any]:
        g = self.generation
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "matomo", "namespace": "web", "generation": g},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}},
            "status": {"observedGeneration": g if ready else g - 1, "replicas": 2 if ready else 3,
                       "updatedReplicas": 2 if ready else 1, "availableReplicas": 2 if ready else 1},
        }  # fmt: skip

    def kubeconfig(self, path: Path) -> Path:
        port = self.httpd.server_address[1]
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "u", "user": {"token": "hook-token"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        }))  # fmt: skip
        return path


@pytest.fixture
def api() -> Iterator[ApiStub]:
    stub = ApiStub()
    try:
        yield stub
    finally:
        stub.httpd.shutdown()
        stub.httpd.server_close()


def test_run_installs_then_rolls(
    hook_env: dict[str, str], standin: StandIn, api: ApiStub, tmp_path: Path
) -> None:
    env = {**hook_env, "KUBECONFIG": str(api.kubeconfig(tmp_path / "kubeconfig")),
           "MATOMO_HOOK_DEPLOYMENT": "matomo", "MATOMO_HOOK_NAMESPACE": "web",
           "MATOMO_HOOK_ROLLOUT_TIMEOUT": "20"}  # fmt: skip
    res = run_hook(env, "run")
    assert res.returncode == 0, res.stderr
    assert res.state()["state"] == "installed"
    patches = [c for c in api.calls if c[0] == "PATCH"]
    assert len(patches) == 1
    _, path, ctype, body = patches[0]
    assert path == "/apis/apps/v1/namespaces/web/deployments/matomo"
    assert ctype == "application/strategic-merge-patch+json"
    annotations = body["spec"]["template"]["metadata"]["annotations"]
    assert list(annotations) == ["kubectl.kubernetes.io/restartedAt"]
    assert any(e["event"] == "rollout_complete" for e in res.events())
    # a second run: nothing to install, nothing changed: the pods are left as they are
    again = run_hook(env, "run")
    assert again.returncode == 0
    assert sum(1 for c in api.calls if c[0] == "PATCH") == 1
    assert any(e["event"] == "rollout_skipped" for e in again.events())
    # ... unless told to roll every time (the chart, after a restore)
    always = run_hook({**env, "MATOMO_HOOK_ROLL": "always"}, "run")
    assert always.returncode == 0
    assert sum(1 for c in api.calls if c[0] == "PATCH") == 2


def test_an_unknown_roll_mode_is_refused_naming_it(hook_env: dict[str, str]) -> None:
    res = run_hook({**hook_env, "MATOMO_HOOK_ROLL": "sometimes", "MATOMO_HOOK_DEPLOYMENT": "matomo"}, "run")
    assert res.returncode == 2
    assert "MATOMO_HOOK_ROLL='sometimes'" in res.events()[-1]["error"]


def test_roll_refused_exit_5(hook_env: dict[str, str], api: ApiStub, tmp_path: Path) -> None:
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace("hook-token", "wrong-token"))
    env = {**hook_env, "KUBECONFIG": str(kubeconfig), "MATOMO_HOOK_DEPLOYMENT": "matomo",
           "MATOMO_HOOK_NAMESPACE": "web", "MATOMO_HOOK_ROLLOUT_TIMEOUT": "5"}  # fmt: skip
    res = run_hook(env, "roll")
    assert res.returncode == 5, res.stderr
    assert "401" in res.events()[-1]["error"]
