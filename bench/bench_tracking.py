"""Tracking throughput (issue 22): how many tracking requests the chart's pods take and store per
second on the real node, against genuine Matomo 5.1.2 served by the same PHP on this machine with
no Kubernetes in between (bench/tracking_host.py), in the same run.

Rows, each with single hits (GET matomo.php, a visitor of its own each, as `send_image=0` beacons)
and bulk requests (POST matomo.php, 10 hits each), sent by bench/loadgen.py from `CONCURRENCY`
keep-alive connections:
  - this machine: apache2 + mod_php + MariaDB on the host (before the node starts);
  - one serving pod, no queue: values/local.yaml (embedded MariaDB), hits through the Service `F`;
  - one serving pod with the queue: QueuedTracking from its plugin image, the embedded Redis,
    `queue.numQueueWorkers=2` and 2 worker pods; hits through `F`;
  - the tracker Deployment at 1, then 2 replicas (the queue on): hits through `F-tracker`.
One release, moved from row to row by `helm upgrade` (and `kubectl scale` for the second tracker),
as a user would. "stored/s" counts rows of log_link_visit_action from the first request until all
accepted hits are stored (the queue drained). CPU: every process of each pod (/proc/<pid>/cgroup
names the pod), the node's own processes, loadgen, and the whole machine (/proc/stat), over the
same window; what the processes do not account for is the kernel's (network, iptables).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import ROOT, Section, Target, main_for
from harness.basics import wait_until
from loadgen import spawn

sys.path.append(str(ROOT / "tests" / "node"))

CONCURRENCY = 16
SINGLE_REQUESTS = 1600
BULK_REQUESTS = 240
BATCH = 25  # queue.numRequestsToProcess, the chart's default: request sets (a bulk POST's hits for one queue are one)
# With the queue, no hit stored for this long after the load means only the queues' last partial batches are
# left: a worker takes those only 10 s after its last pass that stored something (the plugin's fixed timer).
# Longer than a worker's pass over one full batch (bulk: up to BATCH x BULK_SIZE hits, about 3 s here).
STALL_S = 6.0
UNLOADED_REQUESTS = 150  # one connection, one request after the other: the answer time without load
BULK_SIZE = 10
WARMUP_REQUESTS = 60
CLK_TCK = os.sysconf("SC_CLK_TCK")
# this machine's own servers (the machine row), by their process name
HOST_PROCESSES = {"apache2": "PHP: apache2 + mod_php", "mariadbd": "MariaDB"}
IMAGES = ["pause", "mariadb", "matomo", "hook", "redis", "queuedtracking"]
PLUGIN = ("--set", "plugins.extra[0].name=QueuedTracking",
          "--set", "plugins.extra[0].image.repository=localhost/matomo-test/queuedtracking",
          "--set-string", "plugins.extra[0].image.tag=5.1.1",
          "--set", "plugins.extra[0].image.pullPolicy=Never")
# the archiver never fires during the run (it would take the CPU the rows measure)
BASE = ("--set", "archiver.schedule=0 0 1 1 *")
QUEUE = (*PLUGIN, "--set", "queue.enabled=true", "--set", "queue.numQueueWorkers=2",
         "--set", "queue.workers.replicas=2")


# ---------------------------------------------------------------- CPU accounting
def _proc_times(pid: str) -> tuple[int, float] | None:
    """(start time in clock ticks, own CPU seconds) of a process, None when gone. Only its own time: the
    time of the children it reaps lands in its cutime when they are reaped (apache's parent reaps the
    workers it stops after a load), not when they ran, so the sampler below counts every process itself."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is the state (the stat file's 3rd field): utime is the 14th, starttime the 22nd
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _pod_uid(pid: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            for part in line.split("/"):
                if part.startswith("pod") and len(part) > 30:
                    return part[3:].replace("_", "-")
    except OSError:
        return None
    return None


def _machine_busy() -> float:
    """CPU seconds the machine spent busy (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass
class CpuSnapshot:
    per_process: dict[tuple[str, int], tuple[str, float]]  # (pid, start) -> (class, own CPU seconds last seen)
    busy: float
    at: float


class CpuMeter:
    """Every process of the machine, sampled every `interval` seconds by a thread of its own (a process that
    ends keeps the CPU time it had at its last sample), classified once: the pods' processes by their pod's
    component, the node's by name, this machine's servers by process name."""

    def __init__(self, pod_class: Callable[[str], str | None], node_pids: dict[str, str] | None = None,
                 interval: float = 0.5) -> None:
        self.pod_class = pod_class  # pod uid -> component, None: not ours
        self.node_pids = node_pids or {}  # pid -> node process name
        self.seen: dict[tuple[str, int], tuple[str, float]] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self.thread.start()

    def _classify(self, pid: str) -> str | None:
        if pid in self.node_pids:
            return "node: " + self.node_pids[pid]
        uid = _pod_uid(pid)
        if uid is not None:
            return self.pod_class(uid) or "other pods"
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        if comm.startswith("containerd-shim"):
            return "node: containerd-shim"
        if comm.startswith("python") and _is_loadgen(pid):
            return "loadgen"
        return HOST_PROCESSES.get(comm, "other processes")

    def _scan(self) -> None:
        me = str(os.getpid())
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            times = _proc_times(pid)
            if times is None:
                continue
            key = (pid, times[0])
            with self.lock:
                known = self.seen.get(key)
            cls = known[0] if known else self._classify(pid)
            if cls is not None:
                with self.lock:
                    self.seen[key] = (cls, times[1])

    def _run(self, interval: float) -> None:
        while not self.stop_event.wait(interval):
            self._scan()

    def snapshot(self) -> CpuSnapshot:
        self._scan()
        with self.lock:
            return CpuSnapshot(dict(self.seen), _machine_busy(), time.monotonic())

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join()

    @staticmethod
    def delta(a: CpuSnapshot, b: CpuSnapshot) -> tuple[dict[str, float], float, float]:
        """CPU seconds per class between two snapshots, the machine's busy seconds, the wall time."""
        per: dict[str, float] = {}
        for key, (cls, t) in b.per_process.items():
            before = a.per_process.get(key)
            per[cls] = per.get(cls, 0.0) + max(0.0, t - (before[1] if before else 0.0))
        return per, b.busy - a.busy, b.at - a.at


def _is_loadgen(pid: str) -> bool:
    try:
        return "loadgen.py" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


# ---------------------------------------------------------------- one row
@dataclass
class Phase:
    """CPU seconds per consumer, the machine's busy seconds and the wall seconds of part of a row."""

    cpu: dict[str, float]
    busy: float
    wall: float

    def cores(self) -> float:
        return self.busy / self.wall if self.wall > 0 else 0.0


@dataclass
class Result:
    row: str
    kind: str
    load: dict[str, Any]
    answering: Phase  # while loadgen ran
    storing: Phase  # from loadgen's end until all but the queues' last partial batches were stored
    stored_main: int  # hits stored by then
    tail_s: float  # then until the last hit was stored: a worker stores a partial batch after ~10 s idle
    longest_pause_s: float  # the longest wait between two stored batches before that (to compare with STALL_S)

    @property
    def wall(self) -> float:
        return self.answering.wall + self.storing.wall

    @property
    def drained_s(self) -> float:
        return self.storing.wall

    @property
    def stored_per_s(self) -> float:
        return self.stored_main / self.wall


Send = Callable[[int, int, str, int], dict[str, Any]]


def measure(row: str, meter: CpuMeter, send: Send, stored: Callable[[], int], tag: str,
            queues: int = 0) -> list[Result]:
    """A warm-up, the answer time of single hits one after the other, then single hits and bulk requests
    under load; each waits until every accepted hit is stored. With `queues`, the storing rate is taken
    until the stored count stalls for `STALL_S` (only the queues' last partial batches left, which a
    worker stores only 10 s after its last productive pass: the plugin's fixed timer), the rest apart.
    (A partial batch is up to `BATCH - 1` request sets: single hits, or a bulk POST's hits for that queue.)"""
    send(WARMUP_REQUESTS, 0, f"{tag}-warm", CONCURRENCY)
    wait_until(lambda: queue_idle(stored), 120, "the warm-up's hits stored")
    results = []
    cases = (("single, 1 connection", UNLOADED_REQUESTS, 0, 1), ("single", SINGLE_REQUESTS, 0, CONCURRENCY),
             (f"bulk {BULK_SIZE}", BULK_REQUESTS, BULK_SIZE, CONCURRENCY))
    for kind, requests, bulk, concurrency in cases:
        base = stored()
        before = meter.snapshot()
        load = send(requests, bulk, f"{tag}-{kind.replace(' ', '').replace(',', '')}", concurrency)
        target = base + int(load["accepted_hits"])
        answered = meter.snapshot()
        main, stored_main, longest = until_stall(meter, stored, answered, target, STALL_S if queues else None)
        wait_until(functools.partial(reached, stored, target), 600, f"{target} hits stored", interval=0.25)
        after = meter.snapshot()
        result = Result(row, kind, load, Phase(*CpuMeter.delta(before, answered)),
                        Phase(*CpuMeter.delta(answered, main)), stored_main - base, after.at - main.at, longest)
        results.append(result)
        print(f"{row} / {kind}: {json.dumps(load)}; stored/s {result.stored_per_s:.1f}, drained {result.drained_s:.1f} s "
              f"(last partial batches {result.tail_s:.1f} s later; longest pause before {longest:.1f} s) "
              f"after the load; busy {result.answering.cores():.2f} cores while answering", flush=True)
    return results


def until_stall(meter: CpuMeter, stored: Callable[[], int], start: CpuSnapshot, target: int,
                stall_s: float | None) -> tuple[CpuSnapshot, int, float]:
    """Polls the stored count until it reaches `target` or, with `stall_s`, stops growing for that long.
    Returns the CPU snapshot taken when it last grew (`start` if it never did), the count then, and the
    longest wait between two growths."""
    last, count, longest = start, stored(), 0.0
    deadline = time.monotonic() + 600
    while count < target:
        if stall_s is not None and time.monotonic() - last.at >= stall_s:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} hits stored of {target} after 600 s")
        time.sleep(0.25)
        now = stored()
        if now != count:
            snap = meter.snapshot()
            longest = max(longest, snap.at - last.at)
            last, count = snap, now
    return last, count, longest


def reached(stored: Callable[[], int], target: int) -> bool:
    return stored() >= target


def queue_idle(stored: Callable[[], int]) -> bool:
    """No row stored in the last second: the warm-up's hits are all in (or none was queued)."""
    a = stored()
    time.sleep(1)
    return stored() == a


# ---------------------------------------------------------------- the rows
def host_rows(meter_for_host: CpuMeter) -> list[Result]:
    from tracking_host import host_matomo

    with tempfile.TemporaryDirectory(prefix="bench-tracking-host-") as d, host_matomo(Path(d)) as m:
        os.chmod(d, 0o755)

        def send(requests: int, bulk: int, tag: str, concurrency: int) -> dict[str, Any]:
            return spawn(m.host, m.port, requests, concurrency, bulk=bulk, tag=tag)

        return measure("this machine: apache2 + mod_php, MariaDB, no Kubernetes", meter_for_host, send, m.stored,
                       "host")


def node_rows() -> tuple[list[Result], list[str]]:
    import pymysql
    from harness.controlplane import find_binary
    from harness.helm import F, Helm, pod_security_namespace
    from harness.node import running_node
    from nodelib import Release

    notes: list[str] = []
    results: list[Result] = []
    with running_node(IMAGES) as node, tempfile.TemporaryDirectory(prefix="bench-tracking-helm-") as home:
        helm_bin = find_binary("helm")
        if not helm_bin:
            raise RuntimeError("helm not found: run ./dev tools")
        helm = Helm(helm_bin, node.cp, Path(home))
        ns = pod_security_namespace(node.cp, "bench-tracking")
        rel = Release(node, helm, ns)
        components: dict[str, str] = {}

        def pod_class(uid: str) -> str | None:
            if uid not in components:
                for p in node.cp.get(f"/api/v1/namespaces/{ns}/pods")["items"]:
                    labels = p["metadata"].get("labels", {})
                    components[p["metadata"]["uid"]] = {
                        "matomo": "PHP: serving pod", "tracker": "PHP: tracker pods", "queue-worker": "queue workers",
                        "redis": "Redis", "database": "MariaDB"}.get(labels.get("app.kubernetes.io/component", ""),
                                                                    labels.get("app.kubernetes.io/component", "pod"))
            return components.get(uid)

        node_pids = {str(p.popen.pid): p.name for p in [*node.processes, *node.cp.processes]}
        meter = CpuMeter(pod_class, node_pids)
        wrap = node.netns.wrap([])
        rel.install(*BASE)

        db: list[Any] = []

        def stored() -> int:
            if not db:
                sts = node.cp.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{F}-mariadb")
                env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
                ref = next(e for e in env if e["name"] == "MARIADB_ROOT_PASSWORD")["valueFrom"]["secretKeyRef"]
                password = rel.secret(ref["name"], ref["key"])
                ip = node.service_ip(ns, f"{F}-mariadb")
                db.append(node.netns.run(lambda: pymysql.connect(host=ip, user="root", password=password,
                                                                 database="matomo", autocommit=True)))
            with db[0].cursor() as c:
                c.execute("SELECT COUNT(*) FROM matomo_log_link_visit_action")
                return int(c.fetchone()[0])

        def via(service: str) -> Send:
            ip = node.service_ip(ns, service)
            return lambda requests, bulk, tag, concurrency: spawn(ip, 80, requests, concurrency, bulk=bulk, tag=tag,
                                                                  prefix=wrap)

        results += measure("one serving pod, no queue", meter, via(F), stored, "pod")
        rel.upgrade(*BASE, *QUEUE)
        results += measure("one serving pod, queue (Redis, 2 workers)", meter, via(F), stored, "podq", 2)
        rel.upgrade(*BASE, *QUEUE, "--set", "tracker.enabled=true", "--set", "tracker.replicaCount=1")
        results += measure("tracker Deployment, 1 replica, queue", meter, via(f"{F}-tracker"), stored, "tr1", 2)
        rel.upgrade(*BASE, *QUEUE, "--set", "tracker.enabled=true", "--set", "tracker.replicaCount=2")
        time.sleep(2)  # kube-proxy's rules follow the new endpoint
        results += measure("tracker Deployment, 2 replicas, queue", meter, via(f"{F}-tracker"), stored, "tr2", 2)
        # the lever for storing: more queues and workers
        rel.upgrade(*BASE, *QUEUE, "--set", "tracker.enabled=true", "--set", "tracker.replicaCount=2",
                    "--set", "queue.numQueueWorkers=4", "--set", "queue.workers.replicas=4")
        results += measure("tracker Deployment, 2 replicas, queue with 4 workers", meter, via(f"{F}-tracker"),
                           stored, "tr2w4", 4)
        meter.stop()
        notes.append(f"node: {len(node_pids)} processes (control plane, kubelet, containerd, kube-proxy, CoreDNS)")
    return results, notes


def limited_by(r: Result) -> str:
    """What bounds the row, read off its own measurements. Answers: the machine's CPU when both cores were
    busy while loadgen ran (and who used most), else not the CPU. Storing, when hits were still being stored
    a second after the last answer: the CPU again when both cores were busy, else the queue workers' pace."""
    if r.load["concurrency"] == 1:
        return "one request at a time (answer time)"
    a = r.answering
    if a.cores() >= 1.8:
        top = max(a.cpu.items(), key=lambda kv: kv[1])[0] if a.cpu else "?"
        answers = f"answers: CPU (both cores busy; most: {top})"
    else:
        answers = f"answers: not CPU ({a.cores():.2f} cores busy)"
    if r.drained_s >= 1:
        st = r.storing
        if st.cores() >= 1.8:
            top = max(st.cpu.items(), key=lambda kv: kv[1])[0] if st.cpu else "?"
            return f"{answers}; storing: CPU (both cores busy; most: {top})"
        return f"{answers}; storing: the queue workers' pace ({st.cores():.2f} cores busy meanwhile)"
    return answers


def fmt_cpu(phase: Phase) -> str:
    """The busiest consumers of a phase, in cores (CPU seconds / wall seconds)."""
    if phase.wall <= 0:
        return "-"
    top = sorted(phase.cpu.items(), key=lambda kv: -kv[1])
    parts = [f"{k} {v / phase.wall:.2f}" for k, v in top if v / phase.wall >= 0.05][:5]
    kernel = (phase.busy - sum(phase.cpu.values())) / phase.wall
    if kernel >= 0.05:
        parts.append(f"kernel/unaccounted {kernel:.2f}")
    return f"{phase.cores():.2f} busy: " + ", ".join(parts)


def run(repeat: int) -> Section:
    section = Section("Tracking throughput: pods vs this machine (issue 22)",
                      ["row", "requests", "req/s", "hits/s accepted", "hits/s stored", "p50 ms", "p99 ms",
                       "vs machine (stored)", "stored after the last answer s", "last partial batches s later",
                       "CPU while answering (cores)",
                       "CPU while storing the rest (cores)", "limited by"])
    from harness.node import unavailable_reason

    host_meter = CpuMeter(lambda uid: None)
    try:
        results = host_rows(host_meter)
    finally:
        host_meter.stop()
    reason = unavailable_reason()
    notes: list[str] = []
    if reason:
        section.notes.append(f"node rows not measured: {reason}")
    else:
        node_results, notes = node_rows()
        results += node_results
    machine = {r.kind: r.stored_per_s for r in results if r.row.startswith("this machine")}
    machine_first = {r.kind: r for r in results if r.row.startswith("this machine")}
    pods = {r.kind: r for r in results if r.row == "one serving pod, no queue"}
    for kind, m in machine_first.items():
        if kind in pods and m.stored_per_s and m.load["concurrency"] > 1:
            section.targets.append(Target(f"one serving pod vs this machine, hits stored/s ({kind})",
                                          f"{pods[kind].stored_per_s / m.stored_per_s:.2f}", "none", None))
    for r in results:
        load = r.load
        ratio = r.stored_per_s / machine[r.kind] if machine.get(r.kind) else 0
        # one connection measures the answer time; with the queue its few hits wait for a full batch
        unloaded = load["concurrency"] == 1
        section.rows.append([f"{r.row} ({r.kind})", str(load["requests"]), f"{load['requests_per_s']:.0f}",
                             f"{load['hits_per_s']:.0f}", "-" if unloaded else f"{r.stored_per_s:.0f}",
                             f"{load['p50_ms']:.0f}", f"{load['p99_ms']:.0f}", "-" if unloaded else f"{ratio:.2f}",
                             "-" if unloaded else f"{r.drained_s:.1f}",
                             "-" if unloaded or r.tail_s < 0.5 else f"{r.tail_s:.1f}",
                             fmt_cpu(r.answering), fmt_cpu(r.storing) if r.drained_s >= 1 else "-",
                             limited_by(r)])
        refused = {s: n for s, n in load["statuses"].items() if s not in ("200", "204")}
        if refused:
            section.notes.append(f"{r.row} ({r.kind}): answers other than 200/204: {refused}")
    section.notes += notes
    section.notes.append(f"loadgen: {CONCURRENCY} keep-alive connections; single: {SINGLE_REQUESTS} GET hits "
                         f"(`send_image=0`, a visitor each); bulk: {BULK_REQUESTS} POSTs of {BULK_SIZE} hits; "
                         f"'1 connection': {UNLOADED_REQUESTS} hits one after the other (the answer time without "
                         f"load); {WARMUP_REQUESTS} warm-up hits first (not counted); one run per row (`repeat` is "
                         "not used: the whole section takes about 6 minutes)")
    section.notes.append(f"hits/s stored: hits stored / seconds from the first request until all were stored, except, "
                         f"with the queue, the queues' last partial batches (up to {BATCH - 1} request sets a queue: "
                         "single hits, or a bulk POST's hits for that queue): a `queuedtracking:process` worker "
                         f"takes a queue only once it holds a full batch (`queue.numRequestsToProcess`, {BATCH} "
                         "request sets), or 10 s after its last pass that stored something (the plugin's fixed "
                         "timer, its 'wipe out the queue' pass). The rate ends when the stored count last grew "
                         f"before a pause of {STALL_S:.0f} s; 'last partial batches' is the wait after it, not a "
                         "pace")
    pauses = [r.longest_pause_s for r in results if r.load["concurrency"] > 1 and r.tail_s >= 0.5]
    if pauses:
        section.notes.append(f"the longest pause between two stored batches before that, in any row with the queue: "
                             f"{max(pauses):.1f} s (the {STALL_S:.0f} s cut must be longer)")
    node_only = [r for r in results if not r.row.startswith("this machine")]
    if node_only:
        phases = [p for r in node_only for p in (r.answering, r.storing) if p.wall >= 1]
        proxy = max(p.cpu.get("node: kube-proxy", 0.0) / p.wall for p in phases)
        redis = max(p.cpu.get("Redis", 0.0) / p.wall for p in phases)
        kernel = max((p.busy - sum(p.cpu.values())) / p.wall for p in phases)
        section.notes.append(f"at most, in any node row: Redis {redis:.2f} cores, kube-proxy {proxy:.2f} (iptables: "
                             f"the Service's NAT is done by the kernel), the kernel and what no process accounts "
                             f"for {kernel:.2f}")
    section.notes.append("CPU: the machine's busy cores (2.00 is all of it) and the consumers using at least "
                         "0.05 cores, while loadgen ran, and after it until every accepted hit was stored (shown "
                         "when that took a second or more); the machine row runs before the node starts, the node "
                         "rows share the CPU with the control plane, kubelet and containerd")
    return section


if __name__ == "__main__":
    main_for(run)
