"""helm upgrade 5.0.3 -> 5.1.2 through the rendered post-upgrade hook pod, on
genuine Matomo: the hook pod starts with an empty config folder, so it must
give Matomo's console the password, the salt and the database's plugins
(issue: the post-upgrade Job answered "config file not found")."""

from __future__ import annotations

import pytest

from harness.podrun import PodError
from genuinelib import Release, api, iter_events, login_token, track


def test_upgrade_5_0_3_to_5_1_2_runs_core_update_once_and_keeps_data(release: Release) -> None:
    # the Mariadb schema class is Matomo 5.1+: 5.0.3 installs with Mysql
    release.helm_apply("5.0.3", "--set", "database.schema=Mysql")
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert release.option("version_core") == "5.0.3"

    old = release.serving_pod()
    assert track(old, 2) == [204, 204]
    token = login_token(old, release)
    assert release.count("log_link_visit_action") == 2
    users, tokens = release.count("user"), release.count("user_token_auth")
    old.stop()

    release.helm_apply("5.1.2", "--set", "database.schema=Mysql")
    # the archiver's schedule may come before the hook: 5.1.2's core:archive on the 5.0.3 schema would
    # write to it (plugins, changes, invalidations) before the backup and core:update; that run is skipped
    before = release.checksums()
    rc, log = release.archive()
    assert rc == 0, log
    assert "Matomo 5.0.3 (version_core), this release runs Matomo 5.1.2" in log, log
    assert "this archiving run is skipped" in log and "core:archive" not in log, log
    assert release.checksums() == before, "an archiver run wrote to the schema before core:update"

    up = release.run_hook()
    assert up.exit_code == 0, up.explain()
    events = [e["event"] for e in up.events()]
    assert events.count("core_update_requested") == 1, events
    assert "upgraded" in events, events
    assert up.pod.logs("matomo-installer").count("running core:update") == 1
    assert "Everything is already up to date" not in up.pod.logs("matomo-installer")
    assert release.option("version_core") == "5.1.2"
    # data kept: visits, users, tokens
    assert release.count("log_link_visit_action") == 2
    assert (release.count("user"), release.count("user_token_auth")) == (users, tokens)

    new = release.serving_pod()
    status, version = api(new, "API.getMatomoVersion", token)
    assert (status, version) == (200, {"value": "5.1.2"}), "a token made on 5.0.3 works on 5.1.2"
    assert track(new, 1) == [204]
    assert release.count("log_link_visit_action") == 3
    # upgraded, the archiver archives again
    rc, log = release.archive()
    assert rc == 0 and "skipped" not in log, log
    status, report = api(new, "VisitsSummary.get", token, idSite=1, period="day", date="today")
    assert status == 200 and report["nb_actions"] == 3, report
    code, log = release.helm_test(new)
    assert code == 0, log

    # a second upgrade run changes nothing
    before = release.checksums()
    again = release.run_hook()
    assert again.exit_code == 0, again.explain()
    assert [e for e in iter_events(again.log) if e.get("event") == "core_update_requested"] == []
    assert release.checksums() == before


def test_helm_upgrade_back_to_5_0_3_is_refused_and_changes_nothing(release: Release) -> None:
    """The way back without a backup: the post-upgrade hook pod of a 5.0.3 release on a 5.1.2
    database exits 4 naming both versions and the ways out; a serving pod and an archiver run of
    that release do not start (their init container refuses, with the same message), so a rollout
    to it stops and the previous pods keep serving; not a row or a table changes."""
    release.helm_apply("5.1.2", "--set", "database.schema=Mysql")
    assert release.run_hook().exit_code == 0
    serving = release.serving_pod()
    assert track(serving, 1) == [204]
    serving.stop()
    before = release.checksums()

    release.helm_apply("5.0.3", "--set", "database.schema=Mysql")
    back = release.run_hook()
    assert back.exit_code == 4, back.explain()
    error = [e for e in back.events() if e["event"] == "error"][-1]["error"]
    assert "Matomo 5.1.2" in error and "Matomo 5.0.3" in error and "restore" in error, error
    assert "running core:update" not in back.pod.logs("matomo-installer")

    with pytest.raises(PodError, match="init container matomo-init exited 1") as refused:
        release.serving_pod()
    assert "Matomo 5.1.2 (version_core) but this release runs Matomo 5.0.3" in str(refused.value)
    spec = release.cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    with pytest.raises(PodError, match="init container matomo-init exited 1"):
        release.pod("archiver", spec).run_to_completion(120)
    assert release.checksums() == before
    assert release.option("version_core") == "5.1.2"
