"""Runs every benchmark module and writes bench/RESULTS.md (see bench/run)."""

from __future__ import annotations

import argparse
import datetime
import importlib
import sys
import time
import traceback
from pathlib import Path

from common import ROOT, Section, dist_version, machine, version_of

HERE = Path(__file__).resolve().parent

# order matters only for reading; each module is independent
MODULES = ["startup", "install", "genuine", "scale", "size", "chart", "node", "backup", "tracking"]


def merge(existing: str, sections: list[Section], argv: list[str]) -> str:
    """`--only`: the sections run replace those of the same title in the existing file (or are appended);
    every other section is kept as it was, with the run that wrote it named in the file's first lines."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    chunks: list[str] = []
    for line in existing.splitlines(keepends=True):
        if line.startswith("## ") or not chunks:
            chunks.append(line)
        else:
            chunks[-1] += line
    for s in sections:
        s.notes.append(f"this section: `bench/run {' '.join(argv)}` on {now} at commit {git_head()}")
        text = s.render().rstrip() + "\n\n"
        heading = f"## {s.title}\n"
        for i, c in enumerate(chunks):
            if c.startswith(heading):
                chunks[i] = text
                break
        else:
            chunks.append(text)
    return "".join(chunks).rstrip() + "\n"


def mariadb_version() -> str:
    return version_of(["mariadbd", "--version"])


def git_head() -> str:
    import subprocess

    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "?"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def render(sections: list[Section], repeat: int, started: float, argv: list[str],
           load_start: str = "?") -> str:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"Written by `bench/run {' '.join(argv)}`".rstrip() + f" on {now} "
        f"in {time.monotonic() - started:.0f} s, at commit {git_head()}. "
        f"Times are the median of {repeat} runs with the min-max spread in brackets, "
        "unless a table says otherwise. Do not edit by hand: run `bench/run` (or `./dev bench`).",
        "",
        "## Machine and versions",
        "",
        "| what | value |",
        "|---|---|",
    ]
    versions = [
        ("matomo-hook", dist_version("matomo-hook")),
        ("kubernetes (python)", dist_version("kubernetes")),
        ("PyMySQL", dist_version("PyMySQL")),
        ("httpx", dist_version("httpx")),
        ("MariaDB", mariadb_version()),
        ("helm", version_of(["helm", "version", "--short"])),
    ]
    load = f"{load_start} at start, {loadavg()} at end (1/5/15 min; other work shares the machine)"
    for k, v in [*machine(), ("load average", load), *versions]:
        lines.append(f"| {k} | {v} |")
    lines += ["", "## Targets", "", "| target | measured | limit | met |", "|---|---|---|---|"]
    for s in sections:
        for t in s.targets:
            met = ("-" if t.limit == "none" else "not measured") if t.ok is None else ("yes" if t.ok else "**NO**")
            lines.append(f"| {t.name} | {t.measured} | {t.limit} | {met} |")
    lines.append("")
    for s in sections:
        lines.append(s.render())
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description="run all benchmarks, write bench/RESULTS.md")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rows", default="0,1000000,10000000", help="scale levels, comma-separated")
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(MODULES))
    ap.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    import os

    os.environ["BENCH_ROWS"] = args.rows
    wanted = [m for m in MODULES if not args.only or m in args.only.split(",")]
    started = time.monotonic()
    load_start = loadavg()
    sections: list[Section] = []
    failed = False
    for name in wanted:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            mod = importlib.import_module(f"bench_{name}")
            section = mod.run(args.repeat)
        except Exception as exc:  # noqa: BLE001 -- one broken bench must not hide the others
            traceback.print_exc()
            section = Section(f"{name}", ["-"], skipped=f"benchmark crashed: {type(exc).__name__}: {exc}")
            failed = True
        section.print()
        print(f"({name}: {time.monotonic() - t0:.0f} s)\n", flush=True)
        sections.append(section)
    out = Path(args.output)
    if args.only and out.exists():
        out.write_text(merge(out.read_text(), sections, sys.argv[1:]))
    else:
        out.write_text(render(sections, args.repeat, started, sys.argv[1:], load_start))
    print(f"wrote {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
