"""Chart: ``helm template`` wall time per values file and the objects it renders.

Values files: the chart's defaults, ``values/*.yaml`` and the chart-testing
files in ``charts/matomo/ci/``. Each render is a whole ``helm`` process (what
Argo CD and helmfile pay per sync); the count is of top-level objects by kind.
"""

from __future__ import annotations

import collections
import re


from common import ROOT, Section, Stat, main_for, run_proc, tool

CHART = ROOT / "charts" / "matomo"
KUBE_VERSION = "1.31.0"  # what tests/chart renders for
_KIND = re.compile(r"^kind:\s*(\S+)\s*$", re.M)


def values_files() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = [("(chart defaults)", [])]
    for path in sorted((ROOT / "values").glob("*.yaml")):
        out.append((str(path.relative_to(ROOT)), ["-f", str(path)]))
    for path in sorted((CHART / "ci").glob("*.yaml")):
        out.append((str(path.relative_to(ROOT)), ["-f", str(path)]))
    return out


def count_objects(manifest: str) -> collections.Counter[str]:
    kinds: collections.Counter[str] = collections.Counter()
    for doc in re.split(r"^---\s*$", manifest, flags=re.M):
        match = _KIND.search(doc)
        if match:
            kinds[match.group(1)] += 1
    return kinds


def run(repeat: int) -> Section:
    section = Section(
        "Chart: helm template",
        ["values file", "helm template (median, min-max)", "objects", "by kind"],
    )
    helm = tool("helm")
    if not helm:
        section.skipped = "helm not found (run ./dev tools)"
        return section
    if not (CHART / "Chart.yaml").exists():
        section.skipped = "charts/matomo not present"
        return section
    for label, args in values_files():
        argv = [helm, "template", "bench", str(CHART), "--namespace", "bench",
                "--kube-version", KUBE_VERSION, *args]
        try:
            _, proc = run_proc(argv)  # warm-up, and the manifest to count
        except RuntimeError as exc:
            section.rows.append([label, "FAILED", "-", str(exc).strip().splitlines()[-1][:100]])
            continue
        kinds = count_objects(proc.stdout)
        times = Stat([run_proc(argv)[0] for _ in range(repeat)])
        by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        section.rows.append([label, times.fmt(), str(sum(kinds.values())), by_kind])
    section.notes.append(
        f"{repeat} runs per file after one warm-up; each run is a whole `helm template` process."
    )
    return section


if __name__ == "__main__":
    main_for(run)
