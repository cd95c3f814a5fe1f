"""`matomo-hook secrets`: MATOMO_HOOK_SECRETS is checked before any API call,
and a bad one fails in one line naming the variable (exit 2). The behaviour
against a real API server is in tests/cluster/test_cluster_gitops.py."""

from __future__ import annotations

import json

import pytest

from harness.hookrun import run_hook

GOOD = {"secrets": [{"name": "matomo-salt", "keys": {"salt": 64}}]}

BAD = {
    "not-json": ("{secrets", "is not JSON"),
    "no-secrets": (json.dumps({"labels": {}}), "has no list 'secrets'"),
    "empty-list": (json.dumps({"secrets": []}), "has no list 'secrets'"),
    "bad-name": (json.dumps({"secrets": [{"name": "Matomo_Salt", "keys": {"salt": 64}}]}), "DNS-1123"),
    "no-keys": (json.dumps({"secrets": [{"name": "s"}]}), "has no 'keys'"),
    "bad-key": (json.dumps({"secrets": [{"name": "s", "keys": {"a b": 64}}]}), "is not a Secret key"),
    "short": (json.dumps({"secrets": [{"name": "s", "keys": {"salt": 8}}]}), "integer 16-256"),
    "bool-length": (json.dumps({"secrets": [{"name": "s", "keys": {"salt": True}}]}), "integer 16-256"),
    "labels-not-strings": (json.dumps({**GOOD, "labels": {"a": 1}}), "labels must map strings"),
}


def _env(value: str | None, **extra: str) -> dict[str, str]:
    # a KUBECONFIG that does not exist: a check that passed would try to connect and fail with exit 3
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": "/nonexistent", "MATOMO_HOOK_NAMESPACE": "ns", **extra}
    if value is not None:
        env["MATOMO_HOOK_SECRETS"] = value
    return env


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_plan_is_refused_before_any_connection(case: str) -> None:
    value, words = BAD[case]
    res = run_hook(_env(value), "secrets")
    assert res.returncode == 2, (res.returncode, res.stderr)
    last = json.loads(res.stderr.strip().splitlines()[-1])
    assert "MATOMO_HOOK_SECRETS" in last["error"] and words in last["error"], last["error"]


def test_missing_plan_names_the_variable() -> None:
    res = run_hook(_env(None), "secrets")
    assert res.returncode == 2
    assert "MATOMO_HOOK_SECRETS is not set" in res.stderr


def test_bad_timeout_names_the_variable() -> None:
    res = run_hook(_env(json.dumps(GOOD), MATOMO_HOOK_SECRETS_TIMEOUT="soon"), "secrets")
    assert res.returncode == 2
    assert "MATOMO_HOOK_SECRETS_TIMEOUT='soon'" in res.stderr


def test_good_plan_without_cluster_is_unreachable_not_config() -> None:
    res = run_hook(_env(json.dumps(GOOD), MATOMO_HOOK_SECRETS_TIMEOUT="1"), "secrets")
    assert res.returncode == 3, (res.returncode, res.stderr)
    assert "cannot load Kubernetes credentials" in res.stderr
