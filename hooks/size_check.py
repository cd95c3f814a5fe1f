"""Installs the hook and its dependencies into a temporary directory the way
the Dockerfile does (pip --no-compile, no cache, then prune.py) and reports the
installed size. Exit 1 when it is over the limit (default 130 MB).

    python hooks/size_check.py [--limit-mb 130] [--json] [SITE_DIR]

With SITE_DIR (an existing install, e.g. a venv's site-packages), nothing is
installed: that tree is measured as the image would hold it (without what
prune.py removes), and left unchanged.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from prune import DROP_DIRS, prune  # noqa: E402


def measure(target: Path) -> int:
    return sum(f.stat().st_size for f in target.rglob("*") if f.is_file() and not f.is_symlink())


def measure_pruned(target: Path) -> int:
    """Size of ``target`` without what prune.py would remove, without touching it."""
    total = 0
    for f in target.rglob("*"):
        if not f.is_file() or f.is_symlink() or f.suffix in (".pyc", ".pyo"):
            continue
        if any(part in DROP_DIRS for part in f.relative_to(target).parts[:-1]):
            continue
        total += f.stat().st_size
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-mb", type=float, default=130.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("site_dir", nargs="?", type=Path, help="measure this tree instead")
    args = parser.parse_args()
    if args.site_dir is not None:
        raw = measure(args.site_dir)
        size = measure_pruned(args.site_dir)
        top = sorted(
            ((measure_pruned(p), p.name) for p in args.site_dir.iterdir() if p.is_dir()),
            reverse=True,
        )[:5]
        return report(size, raw, top, args.limit_mb, args.json)
    with tempfile.TemporaryDirectory(prefix="hook-size-") as tmp:
        target = Path(tmp) / "site-packages"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-cache-dir",
             "--disable-pip-version-check", "--target", str(target), str(HERE)],
            check=True,
        )  # fmt: skip
        raw = measure(target)
        prune(target)
        size = measure(target)
        top = sorted(((measure(p), p.name) for p in target.iterdir() if p.is_dir()), reverse=True)[
            :5
        ]
    return report(size, raw, top, args.limit_mb, args.json)


def report(size: int, raw: int, top: list[tuple[int, str]], limit_mb: float, as_json: bool) -> int:
    largest = {name: round(b / 1e6, 1) for b, name in top}
    result: dict[str, object] = {
        "installed_bytes": size,
        "installed_mb": round(size / 1e6, 1),
        "before_prune_mb": round(raw / 1e6, 1),
        "limit_mb": limit_mb,
        "ok": size / 1e6 <= limit_mb,
        "largest": largest,
    }
    if as_json:
        print(json.dumps(result))
    else:
        print(
            f"installed {result['installed_mb']} MB (before prune {result['before_prune_mb']} MB),"
            f" limit {limit_mb} MB: {'OK' if result['ok'] else 'TOO BIG'}; largest "
            + ", ".join(f"{k} {v} MB" for k, v in largest.items())
        )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
