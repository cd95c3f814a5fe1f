"""Shapes an installed site-packages tree the way the hook image ships it.

    python prune.py SITE_DIR [...]            remove what the hook never runs
    python prune.py --compile [SITE_DIR ...]  write bytecode for what it imports

Pruning drops test suites shipped inside packages, docs/examples, stale
bytecode caches and the kubernetes client's asyncio variant (kubernetes/aio,
~41 MB of generated code: the hook uses the synchronous client only).

Compiling writes unchecked-hash .pyc files (valid whatever the files' times,
as in an image) for every module the hook's processes import: the hook's own
modules, its dependencies as `import` loads them, the two kubernetes API
classes it calls (the client loads them lazily) and every kubernetes model
(the client imports the model an answer names when it deserialises it). The
image's root filesystem is read-only, so whatever has no bytecode there is
compiled again by every process (`import kubernetes` cost 0.7 s that way).
With no SITE_DIR the modules are imported from this interpreter's path (the
image's venv); with SITE_DIR they are imported from there (size_check.py).

Used by the Dockerfile and by size_check.py, so both measure the same thing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

DROP_DIRS = {"tests", "test", "e2e_test", "testing", "__pycache__", "examples", "docs"}
# Relative to site-packages: whole subtrees the hook never imports.
DROP_PATHS = ("kubernetes/aio",)
KEEP_UNDER = ("/unittest/",)  # stdlib is not pruned anyway; belt and braces

# Run by the interpreter being compiled for; prints the source files it loaded.
IMPORT_PROBE = r"""
import importlib, json, pkgutil, sys
import matomo_hook
for info in pkgutil.walk_packages(matomo_hook.__path__, "matomo_hook."):
    importlib.import_module(info.name)
import kubernetes
from kubernetes import client, config
from kubernetes.client import exceptions
client.AppsV1Api, client.CoreV1Api  # rollout and secrets; loaded lazily by the client
import pymysql, httpx, yaml
files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
print(json.dumps(sorted(f for f in files if f and f.endswith(".py"))))
"""


def prune(site_packages: Path) -> int:
    """Removes what the hook never runs; returns the bytes freed."""
    removed = 0
    for rel in DROP_PATHS:
        path = site_packages / rel
        if path.is_dir():
            removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
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


def imported_files(site_packages: Path | None) -> list[Path]:
    """Source files a fresh interpreter compiles when it imports what the hook imports.

    From `python -v`, so modules whose import is tried and fails (platform
    shims such as dateutil's tz.win, optional extras) count too: Python
    compiles them before the import fails, at every start.
    """
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if site_packages is not None:
        env["PYTHONPATH"] = str(site_packages)
    proc = subprocess.run(
        [sys.executable, "-v", "-c", IMPORT_PROBE],
        check=False, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"prune.py: importing the hook failed:\n{proc.stderr[-2000:]}")
    loaded = [Path(f) for f in json.loads(proc.stdout)]
    compiled = [
        Path(line.removeprefix("# code object from ").strip("'"))
        for line in proc.stderr.splitlines()
        if line.startswith("# code object from ") and line.rstrip("'").endswith(".py")
    ]
    return list(dict.fromkeys([*loaded, *compiled]))


def compile_imported(site_packages: Path | None) -> tuple[int, int]:
    """Writes bytecode for what the hook imports; returns (files written, bytes written).

    Modules that already have a cache file (e.g. the base image's stdlib) are left as they are.
    """
    sources = imported_files(site_packages)
    if site_packages is not None:  # that tree only, never the interpreter's own stdlib
        root = site_packages.resolve()
        sources = [f for f in sources if f.resolve().is_relative_to(root)]
    models = {
        f.parent for f in sources if f.parent.name == "models" and f.parent.parent.name == "client"
    }
    for folder in models:
        sources.extend(sorted(folder.glob("*.py")))
    written = size = 0
    for src in dict.fromkeys(sources):
        cache = Path(importlib.util.cache_from_source(str(src)))
        if cache.exists():
            continue
        py_compile.compile(
            str(src), cfile=str(cache), doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )  # fmt: skip
        written += 1
        size += cache.stat().st_size
    return written, size


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--compile"]:
        targets: list[Path | None] = [Path(a) for a in args[1:]] or [None]
        for target in targets:
            n, b = compile_imported(target)
            print(f"compiled {n} modules ({b / 1e6:.1f} MB) for {target or sys.prefix}")
    else:
        for arg in args:
            freed = prune(Path(arg))
            print(f"pruned {freed / 1e6:.1f} MB from {arg}")
