"""Every half-installed state the hook claims to finish, made by genuine
Matomo's installer cut off after a step, then finished by the rendered hook
pod; and the refusal of an interrupted table creation, tables untouched."""

from __future__ import annotations

import pytest

from genuinelib import Release, api, interrupted_install, login_token, track


def _assert_installed_and_serving(release: Release) -> None:
    assert release.option("version_core") == "5.1.2"
    assert release.count("site") == 1
    assert release.sql("SELECT login FROM {p}user WHERE superuser_access = 1") == [("admin",)]
    pod = release.serving_pod()
    assert track(pod, 2) == [204, 204]
    assert release.count("log_link_visit_action") == 2
    token = login_token(pod, release)
    assert api(pod, "SitesManager.getSiteFromId", token, idSite=1)[1]["name"] == "Genuine site"


@pytest.mark.parametrize("stop_after,finish", [
    ("tablesCreation", ["seed", "setupSuperUser", "firstWebsiteSetup", "finished"]),  # tables, no superuser
    ("setupSuperUser", ["seed", "firstWebsiteSetup", "finished"]),  # a superuser, no site
])
def test_hook_pod_finishes_an_interrupted_install(release: Release, stop_after: str, finish: list[str]) -> None:
    release.helm_apply("5.1.2")
    interrupted_install(release, stop_after)
    assert release.option("version_core") == "5.1.2"
    assert release.count("site") == 0
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert hook.steps() == finish
    _assert_installed_and_serving(release)


def test_complete_tables_without_version_core_are_reused_and_keep_their_data(release: Release) -> None:
    release.helm_apply("5.1.2")
    assert release.run_hook().exit_code == 0
    pod = release.serving_pod()
    token = login_token(pod, release)
    assert track(pod, 2) == [204, 204]
    pod.stop()
    release.sql("DELETE FROM {p}option WHERE option_name = 'version_core'")

    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert hook.steps() == ["seed", "reuseTables", "finished"]
    assert release.option("version_core") == "5.1.2"
    assert release.count("log_link_visit_action") == 2
    pod = release.serving_pod()
    assert api(pod, "API.getMatomoVersion", token) == (200, {"value": "5.1.2"})


def test_an_interrupted_table_creation_is_refused_and_nothing_is_touched(release: Release) -> None:
    release.helm_apply("5.1.2")
    interrupted_install(release, "tablesCreation")
    # as if Matomo had stopped creating tables half-way: no version_core, core tables missing
    release.sql("DELETE FROM {p}option WHERE option_name = 'version_core'")
    for table in ("site", "site_url", "goal", "log_visit"):
        release.sql(f"DROP TABLE {{p}}{table}")
    tables, before = release.tables(), release.checksums()

    hook = release.run_hook()
    assert hook.exit_code == 4, hook.explain()
    assert "table creation was interrupted" in hook.log and "never drops tables" in hook.log
    assert release.tables() == tables
    assert release.checksums() == before
