"""Shared helpers for the benchmarks: timing, statistics, tables, tool lookup.

Every benchmark module exposes ``run(repeat: int) -> Section`` and can be run
alone (``python bench/bench_<name>.py``) to print its table. ``bench/run``
imports them all and writes ``bench/RESULTS.md``.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"
VENV = ROOT / ".tools" / "venv"
# What pytest.ini's `pythonpath` gives the tests, for the benchmarks that use the
# test harness (tests/harness) and the real node's image builder (tools/images):
# the one place bench/ extends sys.path, as every benchmark imports this module.
for _path in (ROOT / "tests", ROOT / "tools" / "images"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))


def tool(name: str) -> str | None:
    """Finds a tool: .tools/bin, the running interpreter's bin dir, then PATH."""
    for candidate in (TOOLS_BIN / name, Path(sys.executable).parent / name):
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    extra = os.environ.get("BENCH_EXTRA_PATH", "")
    path = os.pathsep.join(p for p in (extra, os.environ.get("PATH", "")) if p)
    return shutil.which(name, path=path)


@dataclass
class Stat:
    """Median and spread of several runs of one measurement."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def lo(self) -> float:
        return min(self.values)

    @property
    def hi(self) -> float:
        return max(self.values)

    def fmt(self, unit: str = "s", digits: int = 3) -> str:
        u = f" {unit}" if unit else ""
        if len(self.values) == 1:
            return f"{self.median:.{digits}f}{u}"
        return f"{self.median:.{digits}f}{u} ({self.lo:.{digits}f}-{self.hi:.{digits}f})"


@dataclass
class Target:
    name: str
    measured: str
    limit: str
    ok: bool | None  # None: not measured


@dataclass
class Section:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    skipped: str | None = None
    appendix: list[str] = field(default_factory=list)  # markdown after the notes (### headings at most)

    def table(self) -> str:
        if self.skipped:
            return f"_not measured: {self.skipped}_\n"
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)) + " |"
        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        out = [line, sep]
        for row in self.rows:
            out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        return "\n".join(out) + "\n"

    def render(self) -> str:
        parts = [f"## {self.title}\n", self.table()]
        if self.notes:
            parts.append("\n" + "\n".join(f"- {n}" for n in self.notes) + "\n")
        parts += [a.rstrip() + "\n" for a in self.appendix]
        return "\n".join(parts)

    def print(self) -> None:
        print(self.render())
        for t in self.targets:
            status = "n/a" if t.ok is None else ("MET" if t.ok else "MISSED")
            print(f"target {t.name}: {t.measured} (limit {t.limit}) {status}")


def repeat_timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> Stat:
    for _ in range(warmup):
        fn()
    values = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        values.append(time.perf_counter() - t0)
    return Stat(values)


def run_proc(
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Runs a whole process; returns (wall seconds, completed process)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    wall = time.perf_counter() - t0
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return wall, proc


def hook_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for the hook: PATH and HOME only, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.update(extra or {})
    return env


def machine() -> list[tuple[str, str]]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return [
        ("kernel", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("cpu", f"{cpu}, {os.cpu_count()} logical cores"),
        ("memory", mem),
        ("python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
    ]


def version_of(argv: Sequence[str]) -> str:
    exe = tool(argv[0]) if not os.path.isabs(argv[0]) else argv[0]
    if not exe:
        return "not found"
    try:
        out = subprocess.run(
            [exe, *argv[1:]], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        return f"error: {exc}"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main_for(run: Callable[[int], Section]) -> None:
    repeat = int(os.environ.get("BENCH_REPEAT", "5"))
    if len(sys.argv) > 1:
        repeat = int(sys.argv[1])
    run(repeat).print()
