"""`helm test` (templates/tests/test-matomo.yaml, run as the rendered pod
against a serving pod through the Service name) passes on a healthy release
and fails, saying why, on each broken state, all on genuine Matomo. Also the
defect it guards against: a pod whose config lacks [PluginsInstalled] answers
tracking requests 204 and stores nothing."""

from __future__ import annotations

from pathlib import Path

from genuinelib import Release, track


def _strip_plugins_installed(user_path: Path) -> None:
    """The pod's config as the chart's init script wrote it before the fix."""
    config = user_path / "config" / "config.ini.php"
    text = config.read_text()
    config.write_text(text[: text.index("[PluginsInstalled]")])


def test_helm_test_passes_on_a_healthy_release(release: Release) -> None:
    release.helm_apply("5.1.2")
    assert release.run_hook().exit_code == 0
    code, log = release.helm_test(release.serving_pod())
    assert code == 0, log
    assert "OK: Matomo answers, is installed and its tracker works" in log
    assert release.count("log_visit") == 0 and release.count("tracking_failure") == 0, "the test stores nothing"


def test_helm_test_fails_when_the_tables_are_missing(release: Release) -> None:
    release.helm_apply("5.1.2")  # the hook never ran: a complete config, no tables
    code, log = release.helm_test(release.serving_pod())
    assert code == 1
    assert "FAIL: Matomo has a config but no tables" in log


def test_helm_test_fails_when_the_database_needs_core_update(release: Release) -> None:
    release.helm_apply("5.0.3", "--set", "database.schema=Mysql")
    assert release.run_hook().exit_code == 0
    release.helm_apply("5.1.2", "--set", "database.schema=Mysql")  # the post-upgrade hook did not run
    code, log = release.helm_test(release.serving_pod())
    assert code == 1
    assert "FAIL: index.php redirects to the installer or the updater" in log or "needs core:update" in log, log


def test_helm_test_fails_when_the_database_is_unreachable(release: Release, tmp_path: Path) -> None:
    release.helm_apply("5.1.2")
    assert release.run_hook().exit_code == 0
    pod = release.serving_pod(routes={3306: tmp_path / "no-database.sock"})
    code, log = release.helm_test(pod)
    assert code == 1
    assert "FAIL: index.php answered HTTP 500" in log, log


def test_helm_test_fails_when_the_tracker_would_store_nothing(release: Release) -> None:
    release.helm_apply("5.1.2")
    assert release.run_hook().exit_code == 0
    pod = release.serving_pod()
    _strip_plugins_installed(pod.volumes["matomo-data"][0])
    # the defect: every hit answered 204, none stored
    assert track(pod, 3) == [204, 204, 204]
    assert release.count("log_visit") == 0
    code, log = release.helm_test(pod)
    assert code == 1
    assert "FAIL: the tracker answered HTTP 400 without BulkTracking's JSON" in log, log
