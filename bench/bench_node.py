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
  - a serving pod's start: creation -> Ready, the init container's run, and the
    same code copy (`cp -R /usr/src/matomo/. <emptyDir>`) timed inside the pod.
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
    ("hook_job_install_s", "hook Job of the install: start -> complete (s)"),
    ("hook_exit_to_job_complete_s", "hook container exit -> Job complete (s, 1 s resolution; sidecar stop)"),
    ("helm_upgrade_503_to_512_s", "helm upgrade --wait 5.0.3 -> 5.1.2, core:update included (s)"),
    ("serving_pod_created_to_ready_s", "serving pod: created -> Ready (s, 1 s resolution)"),
    ("init_container_run_s", "init container (copy + config): start -> exit (s, 1 s resolution)"),
    ("code_copy_ms", "the code copy alone, timed in a running pod (ms)"),
    ("code_copy_files", "files copied"),
    ("code_copy_mb", "MB copied"),
    ("hook_image_import_kubernetes_s", "hook image, read-only: python -c 'import kubernetes.client' (s, fastest of 3)"),
    ("hook_image_venv_mb", "hook image: its venv with bytecode (MB)"),
]


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
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "bench.json"
        for _ in range(max(1, repeat)):
            # no install started early: the figures are those of a release alone on the node
            env = dict(os.environ, NODE_BENCH_OUT=str(out), NODE_TEST_PARALLEL="0")
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/node/test_hook_image.py", "tests/node/test_node_local.py",
                            "tests/node/test_node_lifecycle.py"],
                           cwd=ROOT, env=env, check=False)
        if out.exists():
            data = json.loads(out.read_text())
    for key, label in METRICS:
        values = data.get(key, [])
        section.rows.append([label, fmt(values), str(len(values))])
    section.notes.append("one fresh node per run (control plane + containerd + kubelet in a network namespace); "
                         "the machine's other work shares its 2 cores")
    section.notes.append(
        "the code copy: every serving pod (and the hook pod, and each archiver run) copies the whole release "
        "tree (about 11,000 files, 100 MB) from the image's /usr/src/matomo into an emptyDir before Matomo "
        "starts, so pod start grows with the tree and the node's disk, and each pod holds its own 100 MB. "
        "A better way: serve the code where the image has it, read-only (DocumentRoot /usr/src/matomo), and "
        "mount only what Matomo writes: an emptyDir on tmp/ and the config directory (config.ini.php written "
        "by the init container, common.config.ini.php from the Secret): no copy, start time independent of "
        "the tree (caveat: Matomo rewrites matomo.js when plugins add tracker code, so that file needs a "
        "writable mount or a pre-generated copy in the image); plugins installed from the marketplace "
        "would then need an image of their own, which the "
        "chart's read-only design implies anyway. Kubernetes image volumes (ImageVolume, beta in 1.33) are "
        "another way to mount the code read-only without copying")
    return section


if __name__ == "__main__":
    main_for(run)
