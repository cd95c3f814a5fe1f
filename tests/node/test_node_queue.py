"""Tracking that scales past one pod, on the real node, with the genuine QueuedTracking 5.1.1:
the plugin from its own image (`plugins.extra`, the image built by tools/images/images.py from
../shared/plugins), the queue on the embedded Redis (Debian's redis-server), two queue workers
(`queue.workers`, a Deployment) and the tracker Deployment at two replicas behind its Service.

One release, in steps a user's cluster goes through: hits queued while no worker runs and all
stored once the workers drain the queue, once each; a worker pod deleted in the middle of its
batches; the trackers and workers rolled while hits arrive; `helm upgrade` turning the queue off and
on again. Counted in Matomo's log tables, never in the plugin's own reports.

Apart, on a release of its own: the embedded Redis deleted while three senders track through the
tracker Service (image hits, `send_image=0` hits as the JavaScript tracker sends them, bulk
requests): what each kind of sender is told, what is stored, and what the trackers log.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from typing import Any

from harness.helm import F
from nodelib import HOOK, UA, Context, Matomo, Prestarted, Release, prestart, wait_until

TRACKER = f"{F}-tracker"
REDIS_POD = f"{F}-redis-0"
WORKERS = f"{F}-queue-worker"
QUEUE = (
    "--set", "queue.enabled=true", "--set", "queue.numQueueWorkers=2", "--set", "queue.workers.replicas=2",
    "--set", "queue.numRequestsToProcess=25",
    "--set", "tracker.enabled=true", "--set", "tracker.replicaCount=2",
    "--set", "plugins.extra[0].name=QueuedTracking",
    "--set", "plugins.extra[0].image.repository=localhost/matomo-test/queuedtracking",
    "--set-string", "plugins.extra[0].image.tag=5.1.1",
    "--set", "plugins.extra[0].image.pullPolicy=Never",
)


@prestart("test_queued_tracking_through_the_tracker_deployment", "queue")
def start_queue(ctx: Context, rel: Release) -> None:
    rel.install(*QUEUE)


def hook_events(rel: Release) -> list[dict[str, Any]]:
    lines = rel.kubectl("logs", f"job/{HOOK}", "-c", "hook", "--tail=-1").stdout.splitlines()
    parsed = (json.loads(line) for line in lines if line.startswith("{"))
    return [e for e in parsed if "event" in e]


def stored(rel: Release) -> int:
    return int(rel.db_query("SELECT COUNT(*) FROM matomo_log_link_visit_action"))


def tracker(rel: Release) -> Matomo:
    m = Matomo(rel.node, rel.node.service_ip(rel.namespace, TRACKER), 80)
    wait_until(lambda: m.request("GET", "/matomo.js").status == 200, 60, f"the Service {TRACKER} answering")
    return m


def hit(m: Matomo, tag: str) -> int:
    """One pageview from a visitor of its own (the queues are chosen by visitor id), as the JS tracker sends it."""
    return m.track(f"http://localhost/queue/{tag}", visitor=secrets.token_hex(8)).status


def bulk(m: Matomo, tag: str, visitors: list[str]) -> int:
    """One bulk tracking request, a pageview of each visitor (POST matomo.php, a JSON body of query strings)."""
    requests = ["?" + urllib.parse.urlencode({"idsite": "1", "rec": "1", "url": f"http://localhost/queue/{tag}/{i}",
                                              "action_name": "bulk", "_id": v}) for i, v in enumerate(visitors)]
    r = m.node.http("POST", m.host, m.port, "/matomo.php", body=json.dumps({"requests": requests}).encode(),
                    headers={"Host": m.host_header, "User-Agent": UA, "Content-Type": "application/json"})
    return r.status


def queue_of(visitor: str, queues: int) -> int:
    """The queue QueuedTracking puts a visitor's requests in: the first 3 hex digits of the visitor id
    modulo the number of queues (plugins/QueuedTracking/Queue/Manager.php)."""
    return int(visitor[:3], 16) % queues


def workers(rel: Release, replicas: int) -> None:
    rel.kubectl("scale", f"deployment/{WORKERS}", f"--replicas={replicas}")
    if replicas == 0:
        wait_until(lambda: not rel.pods("queue-worker"), 120, "no queue worker pod left")


def monitor(rel: Release) -> str:
    """What README tells a user to run to watch the queue (in a tracker pod: every Matomo pod has the plugin)."""
    return rel.kubectl("exec", f"deployment/{TRACKER}", "-c", "matomo", "--", "php", "/usr/src/matomo/console",
                       "queuedtracking:monitor", "--iterations=1", check=False).stdout


def settle(rel: Release, expected: int, timeout: float, what: str) -> None:
    """`expected` rows stored, and still `expected` a few seconds later (nothing stored twice)."""
    wait_until(lambda: stored(rel) >= expected, timeout, what, error=None)
    if stored(rel) < expected:
        raise AssertionError(f"{what}: {stored(rel)} stored after {timeout:.0f} s, {expected} expected\n"
                             f"{monitor(rel)}\n{rel.kubectl('get', 'pods', '-o', 'wide').stdout}")
    time.sleep(3)
    assert stored(rel) == expected, f"{what}: {stored(rel)} stored, {expected} sent"


def test_queued_tracking_through_the_tracker_deployment(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_queued_tracking_through_the_tracker_deployment").started()

    # the hook's plugin step installed the plugin, once
    installed = [e for e in hook_events(rel) if e["event"] == "plugins_installed"]
    assert [e.get("plugins") for e in installed] == [["QueuedTracking"]], installed
    assert rel.db_query("SELECT option_value FROM matomo_option WHERE option_name='version_QueuedTracking'") == "5.1.1"
    tracker_deploy = rel.get(f"/apis/apps/v1/namespaces/{rel.namespace}/deployments/{TRACKER}")
    assert tracker_deploy["status"].get("readyReplicas") == 2, tracker_deploy["status"]
    m = tracker(rel)
    assert m.request("GET", "/index.php").status in (403, 404), "the tracker serves only the tracking endpoints"

    # 1. no worker: hits are answered and queued, none stored; the workers then store each once
    workers(rel, 0)
    base = stored(rel)
    visitors = [secrets.token_hex(8) for _ in range(10)]
    statuses = [hit(m, f"a{i}") for i in range(40)] + [bulk(m, "a-bulk", visitors)]
    assert all(s in (200, 204) for s in statuses), statuses
    time.sleep(3)
    assert stored(rel) == base, "hits were stored with no queue worker running: the queue is not in use"
    queued = monitor(rel)
    # README: how to watch the queue. A request set per single hit; the bulk request's hits, one set per
    # queue their visitors fall in
    sets = 40 + len({queue_of(v, 2) for v in visitors})
    totals = re.search(r"(\d+) Q\s*\|\s*([\d,]+) R", queued)
    assert totals and (totals[1], totals[2]) == ("2", str(sets)), queued
    workers(rel, 2)
    base += 50
    settle(rel, base, 180, "the 50 queued hits stored by the workers")

    # 2. a worker deleted in the middle of its batches: its batch is rolled back and processed again
    workers(rel, 0)
    statuses = [hit(m, f"b{i}") for i in range(300)]
    assert all(s in (200, 204) for s in statuses)
    workers(rel, 1)
    wait_until(lambda: stored(rel) > base, 120, "the worker storing the queued hits")
    partial = stored(rel)
    (pod,) = [p["metadata"]["name"] for p in rel.pods("queue-worker")]
    rel.kubectl("delete", "pod", pod, "--wait=false")
    assert partial < base + 300, "the worker stored every hit before it was deleted: nothing was interrupted"
    workers(rel, 2)
    base += 300
    # the deleted worker's lock expires (at most 60 s) before another worker takes its queue
    settle(rel, base, 240, "the 300 hits stored once each after a worker was deleted mid-way")

    # 3. the trackers and the workers rolled (a new image, a changed value) while hits arrive: every hit
    # answered 2xx (the old pods' preStop keeps them serving until the Service lets go), all stored once
    answers: list[int] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            answers.append(hit(m, f"r{len(answers)}"))
            time.sleep(0.02)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        time.sleep(1)
        for deploy in (TRACKER, WORKERS):
            rel.kubectl("rollout", "restart", f"deployment/{deploy}")
        for deploy in (TRACKER, WORKERS):
            rel.kubectl("rollout", "status", f"deployment/{deploy}", "--timeout=300s")
        time.sleep(8)  # the last old tracker's preStop (5 s) and kube-proxy's next sync
    finally:
        stop.set()
        sender.join()
    assert len(answers) > 50 and set(answers) == {204}, f"answers during the rollouts: {sorted(set(answers))}"
    base += len(answers)
    settle(rel, base, 240, f"the {len(answers)} hits sent while the trackers and workers rolled")

    # 4. the queue turned off on the running release: hits are stored in the request again
    rel.upgrade(*QUEUE, "--set", "queue.enabled=false")
    assert not rel.pods("queue-worker") or all(p["metadata"].get("deletionTimestamp") for p in rel.pods("queue-worker"))
    m = tracker(rel)
    assert hit(m, "d") in (200, 204)
    base += 1
    settle(rel, base, 30, "a hit stored in its request with the queue off")
    # ... and on again: queued and stored by the workers; the plugin is not installed again
    rel.upgrade(*QUEUE)
    assert not [e for e in hook_events(rel) if e["event"] == "plugins_installed"]
    m = tracker(rel)
    assert all(hit(m, f"e{i}") in (200, 204) for i in range(10))
    base += 10
    settle(rel, base, 120, "hits queued and stored once the queue is on again")



@prestart("test_embedded_redis_restarted_while_hits_arrive", "queue-redis")
def start_queue_redis(ctx: Context, rel: Release) -> None:
    rel.install(*QUEUE)


def stored_paths(rel: Release) -> list[str]:
    """The URL path of every stored pageview (Matomo keeps `localhost/queue/...`), once per stored row."""
    names = rel.db_query("SELECT a.name FROM matomo_log_link_visit_action v JOIN matomo_log_action a "
                         "ON a.idaction = v.idaction_url").split()
    return [n[n.index("/"):] for n in names if "/" in n]


def tracker_errors(rel: Release, since: str) -> list[str]:
    """The lines Matomo's tracker wrote to the trackers' logs (apache's error log is their stderr) since `since`."""
    lines: list[str] = []
    for p in rel.pods("tracker"):
        out = rel.kubectl("logs", p["metadata"]["name"], "-c", "matomo", f"--since-time={since}", check=False).stdout
        lines += [line for line in out.splitlines() if "Error in Matomo (tracker)" in line]
    return lines


def test_embedded_redis_restarted_while_hits_arrive(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_embedded_redis_restarted_while_hits_arrive").started()
    m = tracker(rel)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    # what each request carried and what its sender was told: (kind, the URL path of each hit, HTTP status)
    sent: list[tuple[str, list[str], int]] = []
    stop = threading.Event()

    def image_hits() -> None:  # the tracker's default answer: a GIF, its status the outcome
        for i in range(100_000):
            if stop.is_set():
                return
            path = f"/queue/img{i}"
            r = m.request("GET", "/matomo.php", params={"idsite": "1", "rec": "1", "url": f"http://localhost{path}",
                                                        "_id": secrets.token_hex(8), "rand": secrets.token_hex(4)})
            sent.append(("image", [path], r.status))

    def beacon_hits() -> None:  # send_image=0, as matomo.js sends with sendBeacon or XHR
        for i in range(100_000):
            if stop.is_set():
                return
            path = f"/queue/beacon{i}"
            sent.append(("beacon", [path], hit(m, path.removeprefix("/queue/"))))

    def bulk_requests() -> None:  # 5 hits per request, as the log importer sends them
        for i in range(100_000):
            if stop.is_set():
                return
            paths = [f"/queue/bulk{i}/{j}" for j in range(5)]
            status = bulk(m, f"bulk{i}", [secrets.token_hex(8) for _ in paths])
            sent.append(("bulk", paths, status))

    senders = [threading.Thread(target=f) for f in (image_hits, beacon_hits, bulk_requests)]
    for t in senders:
        t.start()
    try:
        time.sleep(3)
        rel.kubectl("delete", "pod", REDIS_POD)
        wait_until(lambda: rel.kubectl("get", "pod", REDIS_POD, "-o", "jsonpath={.status.containerStatuses[0].ready}",
                                       check=False).stdout == "true", 180, "the embedded Redis back")
        time.sleep(3)
    finally:
        stop.set()
        for t in senders:
            t.join()

    answered = {p: (kind, status) for kind, paths, status in sent for p in paths}
    must = [p for p, (kind, status) in answered.items() if kind != "beacon" and status in (200, 204)]
    wait_until(lambda: set(must) <= set(stored_paths(rel)), 300, "every hit answered 2xx stored", error=None)
    time.sleep(3)  # and nothing stored twice after it
    count = Counter(stored_paths(rel))
    outcome: Counter[str] = Counter()
    for p, (kind, status) in answered.items():
        outcome[f"{kind} {status} {'stored' if count[p] else 'lost'}"] += 1
    errors = tracker_errors(rel, since)
    failed = [(kind, status) for kind, _, status in sent if status not in (200, 204)]
    lost_beacons = outcome["beacon 204 lost"]
    summary = f"{len(sent)} requests: {dict(sorted(outcome.items()))}; {len(errors)} tracker errors: {errors[:2]}"
    print(summary)  # README's figures (pytest -s)

    assert {kind for kind, _ in failed} >= {"image", "bulk"}, f"the senders did not run through the restart: {summary}"
    # an image hit or a bulk request Redis could not take is answered 500, and not stored
    assert {status for _, status in failed} == {500}, summary
    assert not outcome["image 500 stored"], summary
    # a beacon hit (send_image=0) is answered 204 by Matomo's tracker whatever happened to it
    assert {status for kind, status in answered.values() if kind == "beacon"} == {204}, summary
    # every hit answered 2xx (beacons aside) stored, and none twice: not by the trackers, not by the
    # workers Redis dropped mid-batch
    assert set(must) <= set(count), f"{summary}; missing: {sorted(set(must) - set(count))[:10]}"
    assert all(n == 1 for n in count.values()), f"stored twice: {[p for p, n in count.items() if n > 1]}; {summary}"
    # nothing lost silently: each failed request, and each lost beacon hit, is one error line in the trackers' logs
    assert len(errors) == len(failed) + lost_beacons, summary
    assert all("Error in Matomo (tracker)" in e for e in errors)
