"""The Matomo pods roll when what they mount from a ConfigMap changes: the
pod template's checksum/web follows the web server config (ConfigMap F-web,
files/apache/, files/nginx/ and their values) and checksum/scripts the scripts
the pods run (ConfigMap F-scripts: matomo-init.sh, matomo-plugins.php,
matomo-version-check.php, and bootstrap.php, which every Matomo container
mounts at the code's root); a change to the hook pod's scripts
(hook-matomo.sh, matomo-tables.php) rolls nothing, since no serving pod
mounts them. The queue workers roll with the managed config and the init
scripts too; the embedded Redis only with its own config and tag.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, run_helm


def _annotations(helm: str, chart: Path, *extra: str) -> dict[str, str]:
    result = run_helm(helm, "template", "matomo", str(chart), "--kube-version", KUBE_VERSION,
                      "-s", "templates/matomo/deployment.yaml", *extra)
    assert result.returncode == 0, result.stderr
    ann = yaml.safe_load(result.stdout)["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in ann.items() if k.startswith("checksum/")}


@pytest.fixture()
def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "matomo"
    shutil.copytree(CHART, copy)
    return copy


# (changed file, the checksum it changes with image.variant apache, with fpm)
CHANGES = [
    ("files/matomo-init.sh", "checksum/scripts", "checksum/scripts"),
    ("files/matomo-plugins.php", "checksum/scripts", "checksum/scripts"),
    ("files/matomo-version-check.php", "checksum/scripts", "checksum/scripts"),
    ("files/bootstrap.php", "checksum/scripts", "checksum/scripts"),
    ("files/apache/000-default.conf", "checksum/web", None),
    ("files/apache/ports.conf", "checksum/web", None),
    ("files/nginx/default.conf", None, "checksum/web"),
    ("files/hook-matomo.sh", None, None),
    ("files/matomo-tables.php", None, None),
]


@pytest.mark.parametrize("changed, apache, fpm", CHANGES, ids=[c[0] for c in CHANGES])
@pytest.mark.parametrize("variant", ["apache", "fpm"])
def test_a_changed_file_rolls_the_pods_that_mount_it(helm: str, chart_copy: Path, variant: str, changed: str,
                                                        apache: str | None, fpm: str | None) -> None:
    before = _annotations(helm, chart_copy, "--set", f"image.variant={variant}")
    assert set(before) == {"checksum/config", "checksum/web", "checksum/scripts"}, before
    path = chart_copy / changed
    path.write_text(path.read_text() + "\n# changed\n")
    after = _annotations(helm, chart_copy, "--set", f"image.variant={variant}")
    rolls = apache if variant == "apache" else fpm
    assert {k for k in before if before[k] != after[k]} == ({rolls} if rolls else set())


def test_the_web_checksum_follows_the_web_config_values(helm: str) -> None:
    before = _annotations(helm, CHART, "--set", "image.variant=fpm")
    after = _annotations(helm, CHART, "--set", "image.variant=fpm", "--set", "nginx.clientMaxBodySize=64m")
    assert {k for k in before if before[k] != after[k]} == {"checksum/web"}
    apache = _annotations(helm, CHART, "--set", "image.variant=apache")
    assert apache["checksum/web"] != before["checksum/web"]
    assert apache["checksum/scripts"] == before["checksum/scripts"]


def _database_pod_template(helm: str, chart: Path, *extra: str) -> dict[str, object]:
    result = run_helm(helm, "template", "matomo", str(chart), "--kube-version", KUBE_VERSION,
                      "-s", "templates/database/statefulset.yaml", "--set", "database.mode=embedded", *extra)
    assert result.returncode == 0, result.stderr
    template: dict[str, object] = yaml.safe_load(result.stdout)["spec"]["template"]
    return template


def test_the_embedded_database_does_not_restart_with_matomo_or_the_chart(helm: str, chart_copy: Path) -> None:
    """A Matomo upgrade, a rollback or a chart bump must not restart the embedded MariaDB under the
    serving pods: its pod template does not change with image.tag or the chart's version (it did,
    through app.kubernetes.io/version and helm.sh/chart); it changes with MariaDB's own tag."""
    before = _database_pod_template(helm, chart_copy, "--set", "image.tag=5.0.3-apache")
    chart_yaml = chart_copy / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    chart_yaml.write_text(chart_yaml.read_text().replace(f"version: {meta['version']}", "version: 99.0.0", 1))
    after = _database_pod_template(helm, chart_copy, "--set", "image.tag=5.1.2-apache")
    assert after == before
    labels = after["metadata"]["labels"]  # type: ignore[index]
    assert labels["app.kubernetes.io/version"] == "11.4", labels
    newer = _database_pod_template(helm, chart_copy, "--set", "database.embedded.image.tag=11.8")
    assert newer["metadata"]["labels"]["app.kubernetes.io/version"] == "11.8"  # type: ignore[index]


def _tracker_annotations(helm: str, chart: Path, *extra: str) -> dict[str, str]:
    result = run_helm(helm, "template", "matomo", str(chart), "--kube-version", KUBE_VERSION,
                      "-s", "templates/tracker/deployment.yaml", "--set", "tracker.enabled=true", *extra)
    assert result.returncode == 0, result.stderr
    ann = yaml.safe_load(result.stdout)["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in ann.items() if k.startswith("checksum/")}


# (changed file, variant, what rolls: serving pods F, tracker pods F-tracker)
TRACKER_CHANGES = [
    ("files/apache/tracker.conf", "apache", set(), {"checksum/web"}),
    ("files/apache/000-default.conf", "apache", {"checksum/web"}, set()),
    ("files/apache/ports.conf", "apache", {"checksum/web"}, {"checksum/web"}),
    ("files/nginx/tracker.conf", "fpm", set(), {"checksum/web"}),
    ("files/nginx/default.conf", "fpm", {"checksum/web"}, set()),
    ("files/matomo-init.sh", "apache", {"checksum/scripts"}, {"checksum/scripts"}),
    ("files/matomo-version-check.php", "fpm", {"checksum/scripts"}, {"checksum/scripts"}),
]


@pytest.mark.parametrize("changed, variant, serving, tracker", TRACKER_CHANGES, ids=[f"{c[0]}-{c[1]}" for c in TRACKER_CHANGES])
def test_a_changed_web_config_rolls_only_the_pods_that_serve_it(helm: str, chart_copy: Path, changed: str, variant: str,
                                                                  serving: set[str], tracker: set[str]) -> None:
    """tracker.enabled: the tracker pods roll with their own web config and the shared
    scripts, the serving pods with theirs; neither rolls for the other's vhost."""
    args = ("--set", "tracker.enabled=true", "--set", f"image.variant={variant}")
    before = _annotations(helm, chart_copy, *args), _tracker_annotations(helm, chart_copy, *args)
    path = chart_copy / changed
    path.write_text(path.read_text() + "\n# changed\n")
    after = _annotations(helm, chart_copy, *args), _tracker_annotations(helm, chart_copy, *args)
    changed_keys = [{k for k in b if b[k] != a[k]} for b, a in zip(before, after)]
    assert changed_keys == [serving, tracker]


def test_turning_the_tracker_on_does_not_roll_the_serving_pods(helm: str) -> None:
    for variant in ("apache", "fpm"):
        off = _annotations(helm, CHART, "--set", f"image.variant={variant}")
        on = _annotations(helm, CHART, "--set", f"image.variant={variant}", "--set", "tracker.enabled=true")
        assert on == off
        assert _tracker_annotations(helm, CHART, "--set", f"image.variant={variant}")["checksum/web"] != off["checksum/web"]


QUEUE = ("--set", "queue.enabled=true", "--set", "queue.pluginInImage=true")


def _template(helm: str, chart: Path, show: str, *extra: str) -> dict[str, object]:
    result = run_helm(helm, "template", "matomo", str(chart), "--kube-version", KUBE_VERSION, "-s", show, *QUEUE, *extra)
    assert result.returncode == 0, result.stderr
    template: dict[str, object] = yaml.safe_load(result.stdout)["spec"]["template"]
    return template


def test_the_embedded_redis_restarts_with_its_config_only(helm: str, chart_copy: Path) -> None:
    """The queue's Redis keeps running through Matomo upgrades and chart bumps (the queue would refuse
    hits while it restarts); a changed redis.conf (queue.redis.embedded.*) or Redis tag restarts it."""
    show = "templates/redis/statefulset.yaml"
    before = _template(helm, chart_copy, show, "--set", "image.tag=5.0.3-apache")
    chart_yaml = chart_copy / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    chart_yaml.write_text(chart_yaml.read_text().replace(f"version: {meta['version']}", "version: 99.0.0", 1))
    assert _template(helm, chart_copy, show, "--set", "image.tag=5.1.2-apache") == before
    bigger = _template(helm, chart_copy, show, "--set", "queue.redis.embedded.maxmemory=1gb")
    assert bigger["metadata"]["annotations"] != before["metadata"]["annotations"]  # type: ignore[index]
    newer = _template(helm, chart_copy, show, "--set", "queue.redis.embedded.image.tag=7.4")
    assert newer["metadata"]["labels"]["app.kubernetes.io/version"] == "7.4"  # type: ignore[index]


def test_the_queue_workers_roll_with_the_config_and_the_init_script(helm: str, chart_copy: Path) -> None:
    show = "templates/queue/deployment.yaml"

    def checksums(*extra: str) -> dict[str, str]:
        ann = _template(helm, chart_copy, show, *extra)["metadata"]["annotations"]  # type: ignore[index]
        return {k: v for k, v in ann.items() if k.startswith("checksum/")}

    before = checksums()
    assert set(before) == {"checksum/config", "checksum/scripts"}
    batch = checksums("--set", "queue.numRequestsToProcess=10")
    assert {k for k in before if before[k] != batch[k]} == {"checksum/config"}
    init = chart_copy / "files" / "matomo-init.sh"
    init.write_text(init.read_text() + "\n# changed\n")
    assert {k for k, v in checksums().items() if before[k] != v} == {"checksum/scripts"}
