"""Moving an existing Matomo to the chart (README, "Moving an existing
Matomo to this chart"), on genuine Matomo end to end.

The existing Matomo is a "VM install" made OUTSIDE the chart
(tests/harness/vm_install.py): genuine Matomo 5.0.3 served by ``php -S`` on
this machine, installed through its own web installer (which made its own
salt) against a database of the suite's MariaDB, then used: visits, a second
user, an app token. The chart then adopts that database in external mode
(what genuinelib's Release does) on Matomo 5.1.2, with the old salt and the
old token in the salt Secret: first with a salt of its own (the wrong one,
as a user who forgot the old salt would have), which the hook refuses
before it writes anything (by the anonymous user's token row Matomo's
install hashed with its salt); then with the right one, which the hook
checks against the token, records, and upgrades with core:update.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness import vm_install
from genuinelib import HookRun, Release, api, track


def set_salt_secret(release: Release, data: dict[str, str]) -> None:
    release.suite.cp.request("PATCH", f"/api/v1/namespaces/{release.namespace}/secrets/genuine-salt",
                             {"stringData": data}, content_type="application/merge-patch+json")


def every_log(run: HookRun) -> str:
    return "\n".join(run.pod.logs(c) for c in run.pod.containers)


def test_a_vm_matomo_is_adopted_with_its_salt_checked_and_upgraded_keeping_everything(
        release: Release, tmp_path: Path) -> None:
    db = vm_install.Database.on(release.suite.db, release.database, release.prefix)
    vm = vm_install.install("5.0.3", tmp_path / "vm", db, visits=3, actions_per_visit=2)
    assert vm.salt and vm.salt != release.salt
    assert (vm.visits, vm.actions) == (3, 6)
    assert release.option("version_core") == "5.0.3"
    assert release.option("MatomoChart.saltCheck") is None
    dump = vm_install.dump_database(db, tmp_path / "vm.sql")
    assert b"CREATE TABLE `matomo_option`" in dump.read_bytes()

    # Matomo's install stored its anonymous user's well-known token hashed with its salt
    anonymous = release.sql("SELECT password FROM {p}user_token_auth WHERE login = 'anonymous'")
    assert anonymous == [(hashlib.sha512(f"anonymous{vm.salt}".encode()).hexdigest(),)]

    # the chart's salt Secret with a salt of its own (the wrong one) and no token: refused by
    # that row, before anything is written
    release.helm_apply("5.1.2", "--set", "database.schema=Mysql")
    before = release.checksums()
    refused = release.run_hook()
    assert refused.exit_code == 4, refused.explain()
    (error,) = [e["error"] for e in refused.events() if e["event"] == "error"]
    for words in ("does not match", "anonymous user", "matomo.salt.existingSecret", "[General] salt"):
        assert words in error, error
    assert "running core:update" not in refused.pod.logs("matomo-installer")
    assert release.checksums() == before
    for secret in (vm.token, vm.salt, release.salt):
        assert secret not in every_log(refused)

    # the VM's salt and one of its tokens: checked by the token, recorded, core:update once,
    # everything kept
    set_salt_secret(release, {"salt": vm.salt, "token": vm.token})
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    events = hook.events()
    names = [e["event"] for e in events]
    assert [e.get("by") for e in events if e["event"] == "salt_checked"] == ["token"], names
    assert names.count("upgraded") == 1 and names.count("salt_recorded") == 1, names
    assert "plugins_missing" not in names and "salt_unchecked" not in names, names
    assert hook.pod.logs("matomo-installer").count("running core:update") == 1
    assert names.index("salt_checked") < names.index("upgrade_start") < names.index("salt_recorded")
    assert release.option("version_core") == "5.1.2"
    assert release.option("MatomoChart.saltCheck") is not None
    assert (release.count("log_visit"), release.count("log_link_visit_action")) == (3, 6)
    for secret in (vm.token, vm.salt, vm.superuser.password):
        assert secret not in every_log(hook)

    pod = release.serving_pod()
    # the VM's token works, and sees the VM's visits
    assert api(pod, "API.getMatomoVersion", vm.token) == (200, {"value": "5.1.2"})
    status, visits = api(pod, "Live.getLastVisitsDetails", vm.token, idSite=vm.site_id, period="year",
                         date="today", filter_limit=100)
    assert status == 200 and isinstance(visits, list) and len(visits) == 3, (status, visits)
    # the second user logs in with his password (a new app token) and sees his site
    status, body = api(pod, "UsersManager.createAppSpecificTokenAuth", userLogin=vm.user.login,
                       passwordConfirmation=vm.user.password, description="after the move")
    assert status == 200 and isinstance(body, dict) and body.get("value"), (status, body)
    assert api(pod, "SitesManager.getSitesIdWithAtLeastViewAccess", body["value"]) == (200, [vm.site_id])
    # and the tracker stores new hits (one more action: Matomo may count it in a visit it knows)
    assert track(pod, 1, idsite=vm.site_id) == [204]
    assert release.count("log_link_visit_action") == 7
