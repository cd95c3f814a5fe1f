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
