"""The dump before core:update and the way back with the data, on genuine Matomo in the
chart's pods (README, "Backups and restoring"): 5.0.3 with visits, a second user, an app
token and archived reports; helm upgrade to 5.1.2 (the hook dumps the tables onto the
backup volume before core:update); more visits; then the README's procedure: image.tag
5.0.3 with backup.restore.file, the Job F-restore, the hook and the serving pods of 5.0.3."""

from __future__ import annotations

import copy
import re
from typing import Any

from genuinelib import F, Release, api, iter_events, login_token, track

DUMP = re.compile(r"^matomo-5\.0\.3-to-5\.1\.2-\d{8}T\d{6}Z\.sql\.gz$")
ANALYST = {"userLogin": "analyst", "password": "An4lyst-pass-word", "email": "analyst@example.org"}


def restore_job(release: Release) -> dict[str, Any]:
    (job,) = [d for d in release.hooks() if d["kind"] == "Job" and d["metadata"]["name"] == f"{F}-restore"]
    return job


def run_restore(release: Release, job: dict[str, Any]) -> tuple[int, str]:
    pod = release.pod("restore", copy.deepcopy(job["spec"]["template"]["spec"]))
    codes = pod.run_to_completion(600)
    return codes["restore"], pod.logs("restore")


def test_upgrade_takes_a_dump_and_the_readme_restore_goes_back_to_5_0_3_with_the_data(release: Release) -> None:
    schema = ("--set", "database.schema=Mysql")  # the Mariadb schema class is Matomo 5.1+
    release.helm_apply("5.0.3", *schema)
    assert f"{F}-restore" not in [d["metadata"]["name"] for d in release.hooks()], "restore Job without restore.file"
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    claim = release.claims / f"{F}-backup"
    assert sorted(p.name for p in claim.iterdir()) == [], "a dump without core:update"

    # 5.0.3 in use: visits, a second user with an app token of theirs, archived reports
    old = release.serving_pod()
    assert track(old, 3) == [204, 204, 204]
    token = login_token(old, release)
    status, body = api(old, "UsersManager.addUser", token, **ANALYST)
    assert status == 200 and body.get("result") == "success", body
    status, body = api(old, "UsersManager.setUserAccess", token, userLogin="analyst", access="view", idSites=1)
    assert status == 200 and body.get("result") == "success", body
    status, body = api(old, "UsersManager.createAppSpecificTokenAuth", userLogin="analyst",
                       passwordConfirmation=ANALYST["password"], description="genuine-analyst")
    assert status == 200 and "value" in body, body
    analyst = str(body["value"])
    rc, log = release.archive()
    assert rc == 0, log
    status, report = api(old, "VisitsSummary.get", analyst, idSite=1, period="day", date="today")
    assert status == 200 and report["nb_visits"] == 1 and report["nb_actions"] == 3, report
    status, users = api(old, "UsersManager.getUsersLogin", token)
    assert status == 200 and {"admin", "analyst"} <= set(users), users
    archives = sorted(t for t in release.tables() if "_archive_" in t)
    assert archives, "core:archive wrote no archive table"
    old.stop()

    # helm upgrade to 5.1.2: the dump, then core:update
    release.helm_apply("5.1.2", *schema)
    up = release.run_hook()
    assert up.exit_code == 0, up.explain()
    names = sorted(p.name for p in claim.iterdir())
    assert len(names) == 1 and DUMP.match(names[0]), names
    dump = names[0]
    events = [e["event"] for e in up.events()]
    assert events.index("backup_done") < events.index("core_update_requested"), events
    done = next(e for e in up.events() if e["event"] == "backup_done")
    assert done["file"] == dump and done["bytes"] == (claim / dump).stat().st_size > 0
    assert release.option("version_core") == "5.1.2"
    new = release.serving_pod()
    assert track(new, 2) == [204, 204]  # tracked after the dump: the restore loses them
    assert release.count("log_link_visit_action") == 5
    new.stop()

    # the README's procedure: image.tag 5.0.3 and backup.restore.file in one helm upgrade
    release.helm_apply("5.0.3", *schema, "--set", f"backup.restore.file={dump}")
    job = restore_job(release)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade,post-install"
    rc, log = run_restore(release, job)
    assert rc == 0, log
    assert [e["event"] for e in iter_events(log) if e.get("event", "").startswith("restore_")] == [
        "restore_start", "restore_done"], log
    assert release.suite.db.password not in log
    assert release.option("version_core") == "5.0.3"
    assert release.option("MatomoChart.restored") == dump
    assert release.count("log_link_visit_action") == 3
    restored = release.checksums()

    # the Job again (a retried sync, the value left set at the next upgrade): nothing
    rc, log = run_restore(release, job)
    assert rc == 0, log
    assert [e["event"] for e in iter_events(log) if e.get("event", "").startswith("restore_")] == [
        "restore_skipped"], log
    assert release.checksums() == restored

    # then the release's hook and pods: Matomo 5.0.3 with the data as it was before the upgrade
    back = release.run_hook()
    assert back.exit_code == 0, back.explain()
    events = [e["event"] for e in back.events()]
    assert "core_update_requested" not in events and "backup_start" not in events, events
    assert sorted(p.name for p in claim.iterdir()) == [dump]
    serving = release.serving_pod()
    assert api(serving, "API.getMatomoVersion", token) == (200, {"value": "5.0.3"}), "the superuser's token"
    assert api(serving, "VisitsSummary.get", analyst, idSite=1, period="day", date="today") == (200, report)
    assert api(serving, "UsersManager.getUsersLogin", token) == (200, users)
    assert sorted(t for t in release.tables() if "_archive_" in t) == archives
    assert track(serving, 1) == [204]
    assert release.count("log_link_visit_action") == 4
    code, log = release.helm_test(serving)
    assert code == 0, log
