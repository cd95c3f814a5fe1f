"""Removes what the hook never runs from an installed site-packages tree:
test suites shipped inside packages, bytecode caches and docs/examples.
Used by the Dockerfile and by size_check.py, so both measure the same thing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DROP_DIRS = {"tests", "test", "e2e_test", "testing", "__pycache__", "examples", "docs"}
KEEP_UNDER = ("/unittest/",)  # stdlib is not pruned anyway; belt and braces


def prune(site_packages: Path) -> int:
    removed = 0
    for path in sorted(site_packages.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        if path.is_dir() and path.name in DROP_DIRS and not any(k in str(path) for k in KEEP_UNDER):
            removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in (".pyc", ".pyo"):
            removed += path.stat().st_size
            path.unlink()
    return removed


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        freed = prune(Path(arg))
        print(f"pruned {freed / 1e6:.1f} MB from {arg}")
