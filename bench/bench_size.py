"""Size: the hook image's installed content (package + dependencies), in MB.

``pip install --no-compile --target <tmp> hooks/`` (no bytecode caches, no pip
cache in the target, the same command the Dockerfile's build stage is meant
to run) and the bytes of every file under the target, split by distribution
from each ``*.dist-info/RECORD``. Interpreter-independent: the Python
runtime of the base image is not counted. MB = 10^6 bytes.
If ``hooks/size_check.py`` exists (the hook's own check), its verdict is
reported next to ours.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path


from common import ROOT, Section, Target, main_for, run_proc

LIMIT_MB = 100.0


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def by_distribution(target: Path) -> list[tuple[str, int, int]]:
    """(distribution, bytes, files) from RECORD files, largest first."""
    rows = []
    for record in target.glob("*.dist-info/RECORD"):
        name = record.parent.name.removesuffix(".dist-info").replace("-", " ", 1)
        size = files = 0
        with record.open(newline="") as fh:
            for row in csv.reader(fh):
                if not row:
                    continue
                p = target / row[0]
                if p.is_file() and not p.is_symlink():
                    size += p.stat().st_size
                    files += 1
        rows.append((name, size, files))
    rows.sort(key=lambda r: -r[1])
    return rows


def measure(keep: Path | None = None) -> tuple[int, list[tuple[str, int, int]], Path]:
    tmp = Path(keep or tempfile.mkdtemp(prefix="bench-size-"))
    target = tmp / "site"
    run_proc(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--no-warn-script-location", "--target", str(target),
            str(ROOT / "hooks"),
        ],
        timeout=900,
    )
    return tree_bytes(target), by_distribution(target), target


def run(repeat: int) -> Section:
    del repeat  # deterministic: one install
    section = Section(
        "Size: installed hook content (pip --no-compile --target)",
        ["distribution", "MB", "files"],
    )
    if not (ROOT / "hooks" / "pyproject.toml").exists():
        section.skipped = "hooks/pyproject.toml not present"
        return section
    try:
        total, rows, target = measure()
    except RuntimeError as exc:
        section.skipped = f"pip install failed: {str(exc).splitlines()[0]}"
        return section
    accounted = 0
    for name, size, files in rows[:10]:
        accounted += size
        section.rows.append([name, f"{size / 1e6:.1f}", str(files)])
    if len(rows) > 10:
        rest_size = sum(r[1] for r in rows[10:])
        accounted += rest_size
        section.rows.append([f"{len(rows) - 10} other distributions", f"{rest_size / 1e6:.1f}",
                             str(sum(r[2] for r in rows[10:]))])  # fmt: skip
    rest = total - accounted
    if rest > 0:
        section.rows.append(["(not in any RECORD: bin/, caches)", f"{rest / 1e6:.1f}", "-"])
    section.rows.append(["**total, pip --no-compile**", f"**{total / 1e6:.1f}**", "-"])
    image = total
    checker = ROOT / "hooks" / "size_check.py"
    if checker.exists():
        # what the Dockerfile keeps: hooks/prune.py drops tests/, docs/, examples/, kubernetes/aio, and compiles what the hook imports
        _, proc = run_proc([sys.executable, str(checker), "--json", str(target)], check=False)
        try:
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            image = int(data["installed_bytes"])
            section.rows.append(
                ["**image content after hooks/prune.py, with bytecode (hooks/size_check.py)**",
                 f"**{image / 1e6:.1f}**", "-"]
            )  # fmt: skip
        except (ValueError, IndexError, KeyError):
            section.notes.append(f"hooks/size_check.py gave no JSON: {proc.stderr.strip()[-200:]}")
    ok = image / 1e6 <= LIMIT_MB
    section.targets.append(Target("image content", f"{image / 1e6:.1f} MB", f"<= {LIMIT_MB:.0f} MB", ok))
    section.notes.append(
        "Python runtime of the base image not counted; no `__pycache__` (the image runs "
        "with a read-only root filesystem and `PYTHONDONTWRITEBYTECODE`)."
    )
    import shutil

    shutil.rmtree(target.parent, ignore_errors=True)
    return section


if __name__ == "__main__":
    main_for(run)
