"""The tracking queue (queue.*) on genuine Matomo 5.1.2 with the genuine
QueuedTracking 5.1.1 (../shared/plugins/, MATOMO_QUEUEDTRACKING_ARCHIVE),
built into the Matomo image's plugins/ (queue.pluginInImage) as a derived
image would have it. Backend mysql: this machine has no Redis and no PHP
redis extension (the Redis backend runs on the real node).

A serving pod of the release queues the hits it receives and stores none;
the queue workers' Deployment pod stores every one of them, the last ones
(fewer than a batch) too, once the queue has been idle ~10 s, each once.
(The worker's stop on SIGTERM: tests/chart/test_stop_signals.py.)"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from genuinelib import Release, track
from harness.podrun import PodError

from harness.helm import REPO

ARCHIVE = Path(os.environ.get("MATOMO_QUEUEDTRACKING_ARCHIVE",
                              REPO.parent / "shared" / "plugins" / "QueuedTracking-5.1.1.tar.gz"))
TAG = "5.1.2-qt"  # image.tag 5.1.2-qt-apache: Matomo 5.1.2 with the plugin in plugins/


@pytest.fixture(scope="module")
def queue_image(suite, trees, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    if not ARCHIVE.is_file():
        pytest.skip(f"no QueuedTracking archive at {ARCHIVE} (set MATOMO_QUEUEDTRACKING_ARCHIVE)")
    tree = tmp_path_factory.mktemp("matomo-qt") / "matomo"
    # the release tree, hard-linked (the code is read-only in every pod), plus the plugin
    subprocess.run(["cp", "-al", str(trees["5.1.2"]), str(tree)], check=True)
    with tarfile.open(ARCHIVE) as tf:
        tf.extractall(tree / "plugins", filter="data")
    assert (tree / "plugins" / "QueuedTracking" / "QueuedTracking.php").is_file()
    base = suite.images["matomo:5.1.2-apache"]
    suite.images[f"matomo:{TAG}-apache"] = dataclasses.replace(base, binds={**base.binds, "/usr/src/matomo": tree})
    return TAG


def plugins_with_queue(trees) -> str:  # type: ignore[no-untyped-def]
    global_ini = (trees["5.1.2"] / "config" / "global.ini.php").read_text()
    section = global_ini[global_ini.index("\n[Plugins]"):global_ini.index("\n[PluginsInstalled]")]
    return ",".join([*re.findall(r"^Plugins\[\] = (\w+)", section, re.M), "QueuedTracking"])


def stored_actions(release: Release) -> int:
    return release.count("log_link_visit_action")


def test_hits_queued_by_the_trackers_are_all_stored_by_the_worker(release: Release, trees, queue_image) -> None:  # type: ignore[no-untyped-def]
    release.helm_apply(queue_image, "--set", f"matomo.config.Plugins.Plugins={{{plugins_with_queue(trees)}}}",
                       "--set", "queue.enabled=true", "--set", "queue.pluginInImage=true",
                       "--set", "queue.backend=mysql", "--set", "queue.numQueueWorkers=2",
                       "--set", "queue.numRequestsToProcess=5", "--set", "queue.workers.replicas=2")
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert "QueuedTracking" in release.sql_plugins()

    serving = release.serving_pod()
    statuses = [s for v in range(4) for s in track(serving, 3, visitor=f"{v:016x}")]
    assert all(s in (200, 204) for s in statuses), statuses
    # queued, not stored: the serving pod has processDuringTrackingRequest = 0
    assert stored_actions(release) == 0
    queues = [t for t in release.tables() if t.startswith(f"{release.prefix}queuedtracking_list")]
    assert queues, release.tables()
    assert sum(release.count(t[len(release.prefix):]) for t in queues) == 12

    spec = release.suite.cp.get(f"/apis/apps/v1/namespaces/{release.namespace}/deployments/matomo-queue-worker")
    worker = release.pod("worker", spec["spec"]["template"]["spec"])
    worker.start()
    deadline = time.monotonic() + 90
    while stored_actions(release) < 12:
        if not worker.running("queue-worker"):
            raise PodError(f"the worker exited:\n{worker.logs('queue-worker')[-3000:]}")
        assert time.monotonic() < deadline, f"stored {stored_actions(release)} of 12:\n{worker.logs('queue-worker')[-3000:]}"
        time.sleep(1)
    # every action once, with its own page (a batch replayed twice would store an action again)
    urls = release.sql("SELECT COUNT(DISTINCT idaction_url) FROM {p}log_link_visit_action")[0][0]
    assert urls == 3, urls
    assert sum(release.count(t[len(release.prefix):]) for t in queues) == 0
    time.sleep(3)
    assert stored_actions(release) == 12, "a hit was stored twice"



def test_a_cron_run_stores_full_batches_and_leaves_the_rest(release: Release, trees, queue_image) -> None:  # type: ignore[no-untyped-def]
    """queue.workers.mode=cronjob: one run of the CronJob's pod stores the full batches and exits 0; the
    last requests (fewer than a batch) wait for more hits (README, "Queued tracking": why the
    Deployment is the default)."""
    release.helm_apply(queue_image, "--set", f"matomo.config.Plugins.Plugins={{{plugins_with_queue(trees)}}}",
                       "--set", "queue.enabled=true", "--set", "queue.pluginInImage=true",
                       "--set", "queue.backend=mysql", "--set", "queue.numRequestsToProcess=5",
                       "--set", "queue.workers.mode=cronjob")
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    serving = release.serving_pod()
    assert all(s in (200, 204) for s in track(serving, 7))
    cron = release.suite.cp.get(f"/apis/batch/v1/namespaces/{release.namespace}/cronjobs/matomo-queue-worker")
    pod = release.pod("cron-worker", cron["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    codes = pod.run_to_completion(300)
    assert codes == {"queue-worker": 0}, pod.logs("queue-worker")[-3000:]
    assert stored_actions(release) == 5
    queues = [t for t in release.tables() if t.startswith(f"{release.prefix}queuedtracking_list")]
    assert sum(release.count(t[len(release.prefix):]) for t in queues) == 2
