"""Start-up: ``matomo-hook --help`` and ``matomo-hook status`` as whole processes.

Also the floor they stand on (the bare interpreter, the hook's imports) and
proof that commands which do not talk to Kubernetes never import the
``kubernetes`` client: each command is run once more with
``PYTHONPROFILEIMPORTTIME=1`` and its import log is searched for it.
``status`` runs against a real MariaDB holding an installed schema.
"""

from __future__ import annotations

import re


from common import Section, Stat, Target, main_for, run_proc

STATUS_LIMIT_S = 0.5
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)\s*$")


def imported_modules(stderr: str) -> dict[str, int]:
    """Top-level package -> summed self microseconds, from -X importtime output."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            top = m.group(4).split(".")[0]
            out[top] = out.get(top, 0) + int(m.group(1))
    return out


def all_imported(stderr: str) -> set[str]:
    return {m.group(4) for m in map(_IMPORT_LINE.match, stderr.splitlines()) if m}


def run(repeat: int) -> Section:
    import benchenv

    section = Section(
        "Start-up: whole processes",
        ["command", "wall time (median, min-max)", "imports kubernetes?", "heaviest imports (self time by package)"],
    )
    py = benchenv.hook_python()
    hook = benchenv.hook_exe()
    with benchenv.stack() as st:
        target = st.new_target("startup")
        benchenv.install(target)
        env = target.env()
        cases: list[tuple[str, list[str]]] = [
            ("python -c pass (interpreter floor)", [py, "-c", "pass"]),
            ("python -c 'import matomo_hook.cli'", [py, "-c", "import matomo_hook.cli"]),
            (
                "python: import cli, database, installer, upgrade",
                [py, "-c", "import matomo_hook.cli, matomo_hook.database, matomo_hook.installer, "
                 "matomo_hook.upgrade"],
            ),  # fmt: skip
            ("matomo-hook --help", [*hook, "--help"]),
            ("matomo-hook status (installed db)", [*hook, "status"]),
        ]
        status_stat: Stat | None = None
        for label, argv in cases:
            run_proc(argv, env=env)  # warm-up: page cache, first connection
            stat = Stat([run_proc(argv, env=env)[0] for _ in range(repeat)])
            _, traced = run_proc(argv, env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
            mods = imported_modules(traced.stderr)
            k8s = "kubernetes" in {m.split(".")[0] for m in all_imported(traced.stderr)}
            heavy = sorted(
                ((n, us) for n, us in mods.items() if n not in ("encodings", "site")),
                key=lambda x: -x[1],
            )[:4]
            section.rows.append([
                label, stat.fmt(), "**yes**" if k8s else "no",
                ", ".join(f"{n} {us / 1000:.0f} ms" for n, us in heavy),
            ])  # fmt: skip
            if label.startswith("matomo-hook status"):
                status_stat = stat
                section.targets.append(Target(
                    "`status` does not import kubernetes", "imports it" if k8s else "not imported",
                    "not imported", not k8s))  # fmt: skip
            if label == "matomo-hook --help":
                section.targets.append(Target(
                    "`--help` does not import kubernetes", "imports it" if k8s else "not imported",
                    "not imported", not k8s))  # fmt: skip
        if status_stat is not None:
            section.targets.insert(0, Target(
                "`status` as a whole process", f"{status_stat.median:.3f} s (max {status_stat.hi:.3f})",
                f"< {STATUS_LIMIT_S} s (median)", status_stat.median < STATUS_LIMIT_S))  # fmt: skip
        # who pays for kubernetes: the import alone, as `roll`/`run` pay it
        argv = [py, "-c", "import kubernetes.client, kubernetes.config"]
        run_proc(argv, env=env, check=False)
        stat = Stat([run_proc(argv, env=env, check=False)[0] for _ in range(repeat)])
        section.rows.append(["python: import kubernetes (what roll/run pay)", stat.fmt(), "yes", "-"])
        # as in the image: pip --no-compile, read-only root filesystem, so no bytecode is
        # ever written and every process compiles every module it imports from source
        nobc = image_like(repeat, py, env)
        section.rows += nobc
    section.notes.append(
        "Image-like rows: the hook and its dependencies installed with `pip --no-compile --target` "
        "(as hooks/Dockerfile does) and run with `PYTHONDONTWRITEBYTECODE=1`, as on the image's "
        "read-only root filesystem: no `.pyc` exists, so every process compiles what it imports."
    )
    section.notes.append(
        "Import columns come from one extra run with `PYTHONPROFILEIMPORTTIME=1` (times there are "
        "inflated by the tracing). The `kubernetes?` column checks every module that process imported."
    )
    return section


def image_like(repeat: int, py: str, env: dict[str, str]) -> list[list[str]]:
    import shutil

    import bench_size

    try:
        _, _, target = bench_size.measure()
    except RuntimeError as exc:
        return [["(image-like rows skipped)", str(exc).splitlines()[0][:60], "-", "-"]]
    try:
        ienv = {**env, "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}
        main = "import sys; from matomo_hook.cli import main; sys.exit(main())"
        rows = []
        for label, argv in [
            ("image-like, no bytecode: matomo-hook --help", [py, "-c", main, "--help"]),
            ("image-like, no bytecode: matomo-hook status", [py, "-c", main, "status"]),
            ("image-like, no bytecode: import kubernetes (roll)",
             [py, "-c", "import kubernetes.client, kubernetes.config"]),
        ]:  # fmt: skip
            run_proc(argv, env=ienv)
            stat = Stat([run_proc(argv, env=ienv)[0] for _ in range(repeat)])
            k8s = "yes" if "kubernetes" in label else "no"
            rows.append([label, stat.fmt(), k8s, "-"])
        return rows
    finally:
        shutil.rmtree(target.parent, ignore_errors=True)


if __name__ == "__main__":
    main_for(run)
