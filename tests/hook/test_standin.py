"""The stand-in behaves like Matomo's installer where the hook relies on it,
and the hook's parser reads its markers."""

from __future__ import annotations

from pathlib import Path

import httpx

from matomo_hook import config as hook_config
from matomo_hook import installer
from matomo_hook.matomo_config import write_seed
from harness.standin.server import StandIn

from .conftest import SUPERUSER_PASSWORD


def call(srv: StandIn, method: str, action: str, data: dict[str, str] | None = None,
         **params: str) -> httpx.Response:  # fmt: skip
    return httpx.request(
        method, srv.url + "index.php",
        params={"module": "Installation", "action": action, **params}, data=data,
    )  # fmt: skip


def test_form_validation_markers(hook_env: dict[str, str], standin: StandIn) -> None:
    write_seed(hook_config.load(hook_env, frozenset({"db", "install"})))
    assert "Tables created" in call(standin, "GET", "tablesCreation").text
    resp = call(standin, "POST", "setupSuperUser",
                {"login": "a", "password": "123", "password_bis": "124", "email": "nope"})  # fmt: skip
    assert resp.status_code == 200
    errors = installer.matomo_errors(resp.text)
    assert len(errors) == 1
    for text in ("between 2 and 100", "between 6 and 200", "password does not match",
                 "valid format"):  # fmt: skip
        assert text in errors[0]
    resp = call(standin, "POST", "setupSuperUser",
                {"login": "admin", "password": SUPERUSER_PASSWORD,
                 "password_bis": SUPERUSER_PASSWORD, "email": "anonymous@example.org"})  # fmt: skip
    assert "Could not add the superuser" in installer.matomo_errors(resp.text)[0]
    resp = call(standin, "POST", "setupSuperUser",
                {"login": "admin", "password": SUPERUSER_PASSWORD,
                 "password_bis": SUPERUSER_PASSWORD, "email": "a@example.com"})  # fmt: skip
    assert resp.status_code == 302 and "action=firstWebsiteSetup" in resp.headers["location"]
    resp = call(standin, "POST", "firstWebsiteSetup",
                {"siteName": "x", "url": "https://x.example", "timezone": "Mars/Base"})  # fmt: skip
    assert "time zone is not valid" in installer.matomo_errors(resp.text)[0]
    resp = call(standin, "POST", "firstWebsiteSetup",
                {"siteName": "x", "url": "https://x.example", "timezone": "UTC+5.5"})  # fmt: skip
    assert resp.status_code == 302 and "action=trackingCode" in resp.headers["location"]
    # a site exists: redirected on, like Controller::firstWebsiteSetup
    resp = call(standin, "GET", "firstWebsiteSetup")
    assert "action=finished" in resp.headers["location"]
    resp = call(standin, "POST", "finished", {"anonymise_ip": "1"})
    assert resp.status_code == 302 and resp.headers["location"] == "index.php"
    # installed by config now: every step answers the "already installed" page
    resp = call(standin, "GET", "tablesCreation")
    assert resp.status_code == 200 and installer.ALREADY_INSTALLED in resp.text
    stats = httpx.get(standin.url + "__standin/stats").json()
    assert stats["served_seconds"] > 0 and len(stats["requests"]) == 9


def test_dangerous_steps_really_are_dangerous(
    hook_env: dict[str, str], standin: StandIn, matomo_root: Path
) -> None:
    """Why the hook never calls them: the stand-in keeps Matomo's behaviour."""
    write_seed(hook_config.load(hook_env, frozenset({"db", "install"})))
    call(standin, "GET", "tablesCreation")
    again = call(standin, "GET", "tablesCreation")
    assert "same names" in again.text and "deleteTables=1" in again.text
    call(standin, "GET", "tablesCreation", deleteTables="1")  # drops, then recreates
    call(standin, "GET", "systemCheck")
    assert not (matomo_root / "config" / "config.ini.php").exists()
