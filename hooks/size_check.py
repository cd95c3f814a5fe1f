"""Installs the hook and its dependencies into a temporary directory the way
the Dockerfile does (pip --no-compile, no cache, then prune.py) and reports the
installed size. Exit 1 when it is over the limit (default 130 MB).

    python hooks/size_check.py [--limit-mb 130] [--json]
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

from prune import prune  # noqa: E402


def measure(target: Path) -> int:
    return sum(f.stat().st_size for f in target.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-mb", type=float, default=130.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
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
        top = sorted(
            ((measure(p), p.name) for p in target.iterdir() if p.is_dir()), reverse=True
        )[:5]
    result = {
        "installed_bytes": size,
        "installed_mb": round(size / 1e6, 1),
        "before_prune_mb": round(raw / 1e6, 1),
        "limit_mb": args.limit_mb,
        "ok": size / 1e6 <= args.limit_mb,
        "largest": {name: round(b / 1e6, 1) for b, name in top},
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"installed {result['installed_mb']} MB (before prune {result['before_prune_mb']} MB),"
            f" limit {args.limit_mb} MB: {'OK' if result['ok'] else 'TOO BIG'}; largest "
            + ", ".join(f"{k} {v} MB" for k, v in result["largest"].items())
        )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
