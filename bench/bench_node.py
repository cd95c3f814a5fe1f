"""Real node: the chart's own times on real pods (tests/harness/node.py).

Runs tests/node/test_node_local.py and test_node_lifecycle.py (values/local.yaml
on a real kubelet + containerd, Matomo 5.1.2 and 5.0.3 images built locally)
`repeat` times, each in a fresh node, and reports what they measured (the tests
write their figures to NODE_BENCH_OUT):
  - helm install --wait (values/local.yaml) and, from the same start, the first
    tracking request stored (Live.getLastVisitsDetails shows it);
  - the hook Job's own duration (status.startTime -> completionTime, 1 s resolution),
    and from the `hook` container's exit to the Job's completion (the sidecar's stop);
  - helm upgrade --wait from 5.0.3 to 5.1.2 (image.tag), core:update included;
  - a serving pod's start: creation -> Ready, its init container's run, and the
    KiB its writable volumes hold after the install, a visit and the archiver;
  - the timelines of the last run's install and upgrade (tests/node/timeline.py:
    every pod's and Job's transitions as the API server's watch delivered them,
    the hook's own log events, helm's start and return).
Skipped where the real node cannot run (not root, no network namespaces).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


from common import ROOT, Section, main_for

METRICS = [
    ("helm_install_wait_s", "helm install --wait, values/local.yaml (s)"),
    ("install_to_first_stored_hit_s", "helm install -> first tracking request stored (s)"),
    ("hook_job_install_s", "hook Job of the install: start -> complete (s, 1 s resolution)"),
    ("hook_exit_to_job_complete_s", "hook container exit -> Job complete (s, 1 s resolution; sidecar stop)"),
    ("helm_upgrade_503_to_512_s", "helm upgrade --wait 5.0.3 -> 5.1.2, core:update included (s)"),
    ("serving_pod_created_to_ready_s", "serving pod: created -> Ready (s, 1 s resolution)"),
    ("init_container_run_s", "init container (config + plugin list + version check): start -> exit (s, 1 s resolution)"),
    ("serving_pod_writable_kib", "serving pod: KiB in its writable volumes (after install, a visit, the archiver)"),
    ("hook_image_import_kubernetes_s", "hook image, read-only: python -c 'import kubernetes.client' (s, fastest of 3)"),
    ("hook_image_venv_mb", "hook image: its venv with bytecode (MB)"),
]
# issue 21's targets: (metric, limit, what)
TARGETS = [
    ("serving_pod_created_to_ready_s", 3, "serving pod created -> Ready <= 3 s"),
    ("hook_job_install_s", 15, "hook Job (install) <= 15 s"),
    ("helm_install_wait_s", 30, "helm install --wait <= 30 s"),
    ("helm_upgrade_503_to_512_s", 30, "helm upgrade 5.0.3 -> 5.1.2 <= 30 s"),
    ("serving_pod_writable_kib", 5 * 1024, "a pod's writable volumes < 5 MB (5120 KiB)"),
]


# Every wait on the install's and the upgrade's path (the timelines below), and what became of it.
WAITS = """### The waits in the timelines: removed, or why they stay

| wait | before (issue 21's timeline) | now | why it stays, or what removed it |
|---|---|---|---|
| each Matomo pod copies the release tree into an emptyDir | 3-6 s per pod, 3 pods per install | none | removed: the code runs from the image, read-only (`files/bootstrap.php`) |
| first serving pod waits for the database in `matomo-init` (version check) | polled every 2 s | every 0.5 s | the check itself stays: older code must not start on a newer schema, and a database still starting is retried |
| MariaDB created -> Ready | readiness every 5 s | startup probe every 1 s | MariaDB's own first start (it initializes its data folder) |
| started pod -> Ready | readiness period 10 s: up to 10 s after the web server listens | readiness every 1 s | removed; the kubelet does not run the readiness probe at once when a startup probe passes (seen: 3.2 s) |
| Helm's `--wait` notices the resources Ready | - | up to 2 s | Helm polls every 2 s (not configurable) |
| pod created -> first container started | - | 0.6-1.5 s | the kubelet: sandbox, network (CNI), volumes |
| init container exit -> next container started | - | about 1 s | the kubelet notices a container's exit at its next relist (PLEG, every 1 s) |
| `matomo-init` | copy + config, 2-3 s | about 1 s | Matomo's own code lists its plugins (`matomo-plugins.php`, about 0.5 s) and the version check reads the database: without the list the tracker stores nothing |
| the hook's installer sidecar starts | after the code copy (3 s) | about 1 s | PHP's server starting, its startup probe (every 1 s) |
| the hook's own work | - | install 2-4 s, `core:update` 0.5 s, dump < 0.1 s | Matomo's own work (its installer's four requests, `core:update`) |
| the hook's rollout restart | every run, so a values-only upgrade rolled twice | only when the run changed the database | after an install, `core:update` or a plugin install: Matomo clears its file caches (`tmp/`) only in the pod that made the change, so the serving pods restart (one pod: about 4 s, see "started pod -> Ready"). The schema step cannot run before the pods move to the new code: Matomo's order is code first, then `core:update`, and older code on a newer schema answers HTTP 500 (the pod start refuses it), while new code on the old schema keeps tracking |
| the hook's own polling | - | console channel every 0.5 s; the rollout every 1 s | seen: `core:update` answered 0.4 s after its request, `rollout_complete` 0.3-0.5 s after the new pod's Ready; each poll of the rollout is one GET of the Deployment |
| preStop sleep (5 s) of the replaced pod | - | not on the path | Helm and the hook wait for the new pods Ready, not for the old one's end; the sleep keeps the old pod serving while kube-proxy lets go of it |
| hook container exit -> Job complete | 30 s (sidecar killed) | 4-5 s | the sidecar stops on its signal in under 1 s; then the kubelet reports the pod Succeeded (about 2 s) and the Job controller marks the Job complete (about 1 s): Kubernetes' own |
| the `F-secrets` Job | 7 s | 4-5 s | its retry poll is 0.25 s (was 1 s); the rest is a pod's start and end and the Job controller, as above |
"""


def unavailable() -> str | None:
    from harness.node import unavailable_reason

    return unavailable_reason()


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:g}"
    return f"{med:g} ({min(values):g}-{max(values):g})"


def run(repeat: int) -> Section:
    section = Section("Real node: install, first hit, hook, upgrade, pod start", ["what", "median (min-max)", "runs"])
    reason = unavailable()
    if reason:
        section.skipped = reason
        return section
    data: dict[str, list[float]] = {}
    timelines: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "bench.json"
        for _ in range(max(1, repeat)):
            # no install started early: the figures are those of a release alone on the node
            env = dict(os.environ, NODE_BENCH_OUT=str(out), NODE_TEST_PARALLEL="0")
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/node/test_hook_image.py", "tests/node/test_node_local.py",
                            "tests/node/test_node_lifecycle.py"],
                           cwd=ROOT, env=env, check=False)
            for name in ("install", "upgrade"):  # the last run's
                f = Path(d) / f"timeline-{name}.md"
                if f.exists():
                    timelines[name] = f.read_text()
        if out.exists():
            data = json.loads(out.read_text())
    for key, label in METRICS:
        values = data.get(key, [])
        section.rows.append([label, fmt(values), str(len(values))])
    rows = ["| target | median | met |", "|---|---|---|"]
    for key, limit, what in TARGETS:
        values = data.get(key, [])
        med = statistics.median(values) if values else None
        met = "not measured" if med is None else ("yes" if med <= limit else "**NO**")
        rows.append(f"| {what} | {'-' if med is None else f'{med:g}'} | {met} |")
    section.appendix.append("### Targets of issue 21 (medians above)\n\n" + "\n".join(rows) + "\n")
    section.notes.append("one fresh node per run (control plane + containerd + kubelet in a network namespace); "
                         "the machine's other work shares its 2 cores")
    section.notes.append(
        "the code is not copied: every Matomo container runs it where the image has it (/usr/src/matomo, "
        "read-only root filesystem), with Matomo's config and tmp/ in an emptyDir at /var/lib/matomo "
        "(files/bootstrap.php); test_node_local fails if the code is a mount, writable, or copied into a volume")
    section.appendix.append(WAITS)
    for name, text in timelines.items():
        section.appendix.append(f"### Timeline of the last run's {name}\n\n"
                                "Seconds from the timeline's start (the watch's arrival times; rows marked "
                                "'already at first sight' were there when it began).\n\n"
                                + text.split("\n", 2)[-1].strip() + "\n")
    return section


if __name__ == "__main__":
    main_for(run)
