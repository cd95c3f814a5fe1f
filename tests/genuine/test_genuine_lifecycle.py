"""Lifecycle on genuine Matomo: a run on an installed database changes no
row; uninstall then reinstall with the kept salt keeps tokens valid; a
serving pod started after the hook's rollout stores the hits it gets first;
Matomo's own refusals reach the hook's exit code."""

from __future__ import annotations

from genuinelib import Release, api, login_token, track


def test_run_on_an_installed_database_changes_no_row(release: Release) -> None:
    release.helm_apply("5.1.2")
    assert release.run_hook().exit_code == 0
    before = release.checksums()
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    events = [e["event"] for e in hook.events()]
    assert "install_skipped" in events and "core_update_requested" not in events, events
    assert release.checksums() == before


def test_reinstall_after_uninstall_keeps_tokens_valid(release: Release) -> None:
    release.helm_apply("5.1.2")
    assert release.run_hook().exit_code == 0
    pod = release.serving_pod()
    token = login_token(pod, release)
    pod.stop()
    release.suite.helm.run("uninstall", "matomo", "-n", release.namespace, "--no-hooks", "--wait")

    release.helm_apply("5.1.2")
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert hook.steps() == []
    pod = release.serving_pod()
    assert api(pod, "API.getMatomoVersion", token) == (200, {"value": "5.1.2"})


def test_pods_started_after_the_rollout_store_the_first_hits_they_get(release: Release) -> None:
    release.helm_apply("5.1.2")
    assert release.run_hook().exit_code == 0
    restarted = release.deployment()["spec"]["template"]["metadata"].get("annotations", {})
    assert "kubectl.kubernetes.io/restartedAt" in restarted, "the hook rolled the Deployment"
    for n in (1, 2):  # two fresh pods of the rolled template, tracking first
        pod = release.serving_pod()
        assert track(pod, 3) == [204, 204, 204]
        assert release.count("log_link_visit_action") == 3 * n, pod.logs("matomo")[-2000:]
        pod.stop()


def test_a_refusal_by_matomo_is_exit_4_with_its_message_and_a_fixed_rerun_finishes(release: Release) -> None:
    # a zoneinfo name, but a backward-compatible alias that Matomo's timezone list
    # (PHP's DateTimeZone::listIdentifiers) does not offer: Matomo's form refuses it.
    # The chart refuses it too when it renders (tests/chart/test_values_validation.py),
    # so the hook pod gets it in place of the rendered default.
    release.helm_apply("5.1.2")
    hook = release.run_hook(env={"MATOMO_SITE_TIMEZONE": "US/Pacific"})
    assert hook.exit_code == 4, hook.explain()
    errors = [e for e in hook.events() if e.get("event") == "error"]
    assert errors and errors[0]["error"] == "Matomo refused firstWebsiteSetup: Website timezone required", errors
    assert release.password not in hook.log
    assert release.count("site") == 0 and release.count("user") >= 1

    release.helm_apply("5.1.2", "--set", "matomo.site.timezone=America/Los_Angeles")
    again = release.run_hook()
    assert again.exit_code == 0, again.explain()
    assert again.steps() == ["seed", "firstWebsiteSetup", "finished"]
    assert release.sql("SELECT timezone FROM {p}site") == [("America/Los_Angeles",)]


def test_a_wrong_database_password_is_exit_3_and_never_printed(release: Release) -> None:
    release.suite.cp.request("PATCH", f"/api/v1/namespaces/{release.namespace}/secrets/genuine-db",
                             {"stringData": {"password": "wrong-Pa55word"}},
                             content_type="application/merge-patch+json")
    release.helm_apply("5.1.2")
    hook = release.run_hook()
    assert hook.exit_code == 3, hook.explain()
    assert "wrong-Pa55word" not in hook.log
    assert release.tables() == []
