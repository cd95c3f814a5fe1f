"""Install from an empty database through the chart's hook pod, then serve,
track, archive and report, all on genuine Matomo (genuinelib.py)."""

from __future__ import annotations

from genuinelib import Release, api, login_token, track


def test_install_through_hook_pod_then_a_serving_pod_stores_tracks_and_reports(release: Release) -> None:
    release.helm_apply("5.1.2")
    # an archiver run before the hook installed Matomo skips, and creates nothing
    rc, log = release.archive()
    assert rc == 0 and "this archiving run is skipped" in log, log
    assert release.tables() == []

    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert release.option("version_core") == "5.1.2"
    assert release.count("site") == 1

    pod = release.serving_pod()
    # the very first requests this pod receives are tracking hits
    assert track(pod, 3) == [204, 204, 204]
    assert release.count("log_link_visit_action") == 3, pod.logs("matomo")[-3000:]

    token = login_token(pod, release)
    rc, log = release.archive()
    assert rc == 0, log
    status, body = api(pod, "VisitsSummary.get", token, idSite=1, period="day", date="today")
    assert status == 200 and body["nb_visits"] == 1 and body["nb_actions"] == 3, body
