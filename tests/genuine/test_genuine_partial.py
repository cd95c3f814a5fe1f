"""Every half-installed state the hook claims to finish, made by genuine
Matomo's installer cut off after a step (or in the middle of its table
creation), then finished by the rendered hook pod; and the refusal of an
interrupted install that holds a person's account, tables untouched."""

from __future__ import annotations

import time

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


# The first tables Matomo's createTables makes, in its order (core/Db/Schema/Mysql.php): where a
# database that went away in the middle of tablesCreation leaves it (the option table, and with it
# version_core, comes later).
FIRST_TABLES = ("user", "user_token_auth", "twofactor_recovery_code", "access", "site",
                "plugin_setting", "site_setting")


def _cut_in_table_creation(release: Release) -> None:
    interrupted_install(release, "tablesCreation")
    keep = {release.prefix + t for t in FIRST_TABLES}
    for table in release.tables():
        if table not in keep:
            release.sql(f"DROP TABLE `{table}`")
    assert sorted(release.tables()) == sorted(keep)


def test_an_interrupted_table_creation_is_finished_by_matomo_and_its_tables_are_kept(release: Release) -> None:
    release.helm_apply("5.1.2")
    _cut_in_table_creation(release)
    release.sql("INSERT INTO {p}plugin_setting (plugin_name, setting_name, setting_value, json_encoded, "
                "user_login) VALUES ('Marker', 'kept', 'yes', 0, '')")
    created = dict(release.sql("SELECT TABLE_NAME, CREATE_TIME FROM information_schema.TABLES "
                               "WHERE TABLE_SCHEMA = DATABASE()"))
    token = release.sql("SELECT idusertokenauth, password FROM {p}user_token_auth WHERE login = 'anonymous'")
    assert len(token) == 1
    time.sleep(1.1)  # CREATE_TIME has whole seconds: a table dropped and made again would show

    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert hook.steps() == ["seed", "createMissingTables", "setupSuperUser", "firstWebsiteSetup", "finished"]
    now = dict(release.sql("SELECT TABLE_NAME, CREATE_TIME FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA = DATABASE()"))
    assert {t: now[t] for t in created} == created, "a kept table was dropped and made again"
    assert release.sql("SELECT setting_value FROM {p}plugin_setting WHERE plugin_name = 'Marker'") == [("yes",)]
    assert release.sql("SELECT idusertokenauth, password FROM {p}user_token_auth "
                       "WHERE login = 'anonymous'") == token
    assert "created" in hook.log and "missing tables" in hook.log
    _assert_installed_and_serving(release)


def test_an_interrupted_install_with_a_superuser_is_refused_and_nothing_is_touched(release: Release) -> None:
    release.helm_apply("5.1.2")
    interrupted_install(release, "setupSuperUser")
    # a person's account exists, core tables are missing and Matomo never recorded version_core
    release.sql("DELETE FROM {p}option WHERE option_name = 'version_core'")
    for table in ("site", "site_url", "goal", "log_visit"):
        release.sql(f"DROP TABLE {{p}}{table}")
    tables, before = release.tables(), release.checksums()

    hook = release.run_hook()
    assert hook.exit_code == 4, hook.explain()
    assert "an install was interrupted" in hook.log and "never drops tables" in hook.log
    assert release.tables() == tables
    assert release.checksums() == before
