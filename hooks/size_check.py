"""Installs the hook and its dependencies into a temporary directory the way
the Dockerfile does (pip --no-compile, no cache, then prune.py: pruned, with
bytecode for what the hook imports) and reports the installed size. Exit 1
when it is over the limit (default 100 MB).

    python hooks/size_check.py [--limit-mb 100] [--json] [SITE_DIR]

With SITE_DIR (an existing install, e.g. a venv's site-packages), nothing is
installed: a copy of that tree is shaped as the image would hold it and
measured; the tree itself is left unchanged.

The budget is the venv's: the MariaDB client the Dockerfile installs with apt
(mariadb-dump and mariadb, for the dump before core:update and restore) is
outside it and not measured here; it adds 12 MB to the image on the local
Debian base of tools/images (perl there already) and about 60 MB on
python:3.12-slim, 47 MB of it perl (hooks/README.md, "Image").
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from prune import compile_imported, prune  # noqa: E402


def measure(target: Path) -> int:
    return sum(f.stat().st_size for f in target.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-mb", type=float, default=100.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "site_dir", nargs="?", type=Path, help="measure a copy of this tree instead"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hook-size-") as tmp:
        target = Path(tmp) / "site-packages"
        if args.site_dir is not None:
            shutil.copytree(args.site_dir, target, symlinks=True)
        else:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
                 "--no-cache-dir", "--disable-pip-version-check",
                 "--target", str(target), str(HERE)],
                check=True,
            )  # fmt: skip
        raw = measure(target)
        prune(target)
        _, bytecode = compile_imported(target)
        size = measure(target)
        top = sorted(((measure(p), p.name) for p in target.iterdir() if p.is_dir()), reverse=True)[
            :5
        ]
    return report(size, raw, bytecode, top=top, limit_mb=args.limit_mb, as_json=args.json)


def report(
    size: int,
    raw: int,
    bytecode: int,
    *,
    top: list[tuple[int, str]],
    limit_mb: float,
    as_json: bool,
) -> int:
    largest = {name: round(b / 1e6, 1) for b, name in top}
    result: dict[str, object] = {
        "installed_bytes": size,
        "installed_mb": round(size / 1e6, 1),
        "before_prune_mb": round(raw / 1e6, 1),
        "bytecode_mb": round(bytecode / 1e6, 1),
        "limit_mb": limit_mb,
        "ok": size / 1e6 <= limit_mb,
        "largest": largest,
    }
    if as_json:
        print(json.dumps(result))
    else:
        print(
            f"installed {result['installed_mb']} MB with {result['bytecode_mb']} MB of bytecode"
            f" (before prune {result['before_prune_mb']} MB),"
            f" limit {limit_mb} MB: {'OK' if result['ok'] else 'TOO BIG'}; largest "
            + ", ".join(f"{k} {v} MB" for k, v in largest.items())
        )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
