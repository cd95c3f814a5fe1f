"""Passwords as users write them (tests/harness/passwords.py): the chart renders
each accepted one into its Secret byte for byte (UTF-8), and refuses each
refused one at render time, naming the value. The same table runs on genuine
Matomo (tests/genuine/test_genuine_passwords.py) and on the real node."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from chartlib import CHART, KUBE_VERSION, run_helm
from harness.passwords import ACCEPTED, REFUSED, superuser_accepted


def nested(key: str, value: str) -> dict:
    out: dict = {}
    cur = out
    *parents, last = key.split(".")
    for part in parents:
        cur = cur.setdefault(part, {})
    cur[last] = value
    return out


def render(helm: str, tmp_path: Path, values: dict) -> tuple[int, str]:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    r = run_helm(helm, "template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(f))
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("name", sorted(ACCEPTED))
@pytest.mark.parametrize("mode", ["embedded", "external"])
def test_accepted_password_is_rendered_byte_for_byte(helm: str, tmp_path: Path, name: str, mode: str) -> None:
    password = ACCEPTED[name]
    superuser = password if superuser_accepted(password) else "superuser-pw"
    values = {"database": {"mode": mode, "password": password, "external": {"host": "db.example.org"}},
              "matomo": {"superuser": {"password": superuser}}}
    rc, out = render(helm, tmp_path, values)
    assert rc == 0, out
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d and d["kind"] == "Secret"}
    assert base64.b64decode(secrets["matomo-database"]["data"]["password"]) == password.encode()
    assert base64.b64decode(secrets["matomo-superuser"]["data"]["password"]) == superuser.encode()


@pytest.mark.parametrize(("value", "key", "named"), REFUSED, ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(REFUSED)])
def test_refused_password_fails_the_render_naming_the_value(helm: str, tmp_path: Path, value: str, key: str,
                                                            named: str) -> None:
    rc, out = render(helm, tmp_path, nested(key, value))
    assert rc != 0, f"{key}={value!r} was rendered"
    normalised = out.replace("/", ".")
    assert named in normalised, out
    assert value not in out or len(value) < 8, "the error must not print the password"


@pytest.mark.parametrize("variant", ["apache", "fpm"])
@pytest.mark.parametrize("mode", ["deployment", "cronjob"])
def test_the_queue_redis_password_is_only_in_its_secret(helm: str, tmp_path: Path, variant: str, mode: str) -> None:
    """queue.redis.password: in F-redis and nowhere else; every pod gets it only through the secretKeyRef
    of its init container matomo-init (never a serving, tracker or worker container's env, never F-config)."""
    password = "Redis-Pw.7f3c9a"
    values = {"image": {"variant": variant},
              "queue": {"enabled": True, "pluginInImage": True, "workers": {"mode": mode},
                        "redis": {"mode": "external", "host": "10.0.0.5", "password": password}}}
    rc, out = render(helm, tmp_path, values)
    assert rc == 0, out
    assert password not in out
    encoded = base64.b64encode(password.encode()).decode()
    docs = [d for d in yaml.safe_load_all(out) if d]
    holders = [f"{d['kind']}/{d['metadata']['name']}" for d in docs if encoded in yaml.safe_dump(d)]
    assert holders == ["Secret/matomo-redis"], holders
    refs = []
    for d in docs:
        spec = d.get("spec", {})
        spec = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", spec)
        for kind in ("initContainers", "containers"):
            for c in spec.get(kind, []) or []:
                for e in c.get("env", []) or []:
                    if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "matomo-redis":
                        refs.append((d["kind"], kind, c["name"], e["name"]))
    workloads = {"Deployment", "CronJob"}
    assert refs and all(r[1:] == ("initContainers", "matomo-init", "MATOMO_QUEUE_REDIS_PASSWORD") for r in refs), refs
    assert {r[0] for r in refs} == workloads  # the serving Deployment, the workers and the archiver
    assert len(refs) == 3, refs
