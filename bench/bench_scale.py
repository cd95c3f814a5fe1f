"""Scale: ``matomo-hook status`` and ``matomo-hook run`` (nothing to do) on an
installed database whose log tables hold 0, 1 million and 10 million rows.

Rows come from ``bench/gen_logs.py`` (every column of ``log_visit``,
``log_link_visit_action`` and ``log_action`` filled, levels taken from
``BENCH_ROWS``, default 0,1000000,10000000). Per process the server's global
counters are read before and after (this MariaDB serves nobody else):
``Questions`` = statements the hook sent, ``Handler_read_*`` = rows the server
read for it; both minus what the two ``SHOW GLOBAL STATUS`` cost. ``run``
includes ``roll`` against a Kubernetes API stub whose Deployment is always
complete (bench/benchenv.py), so the Kubernetes client's import is in it.
"""

from __future__ import annotations

import os


from common import Section, Stat, Target, main_for, run_proc

COUNTERS = ("Questions", "Handler_read_*")


def measure(target: object, argv: list[str], env: dict[str, str], repeat: int, base: dict[str, int]
            ) -> tuple[Stat, int, int]:  # fmt: skip
    import benchenv

    run_proc(argv, env=env)  # warm-up
    walls, questions, reads = [], [], []
    with target.root_conn() as conn:  # type: ignore[attr-defined]
        for _ in range(repeat):
            before = benchenv.global_status(conn, COUNTERS)
            wall, _ = run_proc(argv, env=env)
            after = benchenv.global_status(conn, COUNTERS)
            walls.append(wall)
            questions.append(after["Questions"] - before["Questions"] - base["Questions"])
            reads.append(after["Handler_read_*"] - before["Handler_read_*"] - base["Handler_read_*"])
    return Stat(walls), max(questions), max(reads)


def run(repeat: int) -> Section:
    import benchenv
    import gen_logs

    levels = [int(x) for x in os.environ.get("BENCH_ROWS", "0,1000000,10000000").split(",") if x]
    section = Section(
        "Scale: log tables with 0 / 1M / 10M rows",
        ["rows per log table", "command", "wall time (median, min-max)", "queries", "rows read",
         "fill time"],
    )  # fmt: skip
    results: dict[str, list[tuple[int, Stat, int, int]]] = {"status": [], "run": []}
    with benchenv.stack() as st:
        target = st.new_target("scale")
        target.start_standin()
        benchenv.install(target, standin_running=True)
        env = target.env()
        with target.root_conn() as conn:
            a = benchenv.global_status(conn, COUNTERS)
            b = benchenv.global_status(conn, COUNTERS)
            base = {k: b[k] - a[k] for k in COUNTERS}
        for rows in levels:
            fill_s = 0.0
            if rows:
                import time

                t0 = time.perf_counter()
                gen_logs.fill(target.root_conn, target.database, "matomo_", rows, log=print)
                fill_s = time.perf_counter() - t0
            for cmd in ("status", "run"):
                stat, q, r = measure(target, [*benchenv.hook_exe(), cmd], env, repeat, base)
                results[cmd].append((rows, stat, q, r))
                section.rows.append([
                    f"{rows:,}", cmd, stat.fmt(), str(q), str(r),
                    f"{fill_s:.0f} s" if fill_s and cmd == "status" else "",
                ])  # fmt: skip
        target.stop_standin()
    for cmd, res in results.items():
        if len(res) < 2:
            continue
        lo_rows, lo, lo_q, lo_r = res[0]
        hi_rows, hi, hi_q, hi_r = res[-1]
        # "beyond noise": queries and rows read are exact and must not move; time is
        # judged on the fastest run of each level (the least disturbed by other load
        # on this shared 2-core machine), allowing 20 % + 20 ms
        same_q = hi_q == lo_q and hi_r <= lo_r + 50
        time_ok = hi.lo <= lo.lo * 1.2 + 0.02
        section.targets.append(Target(
            f"`{cmd}`: no growth {lo_rows:,} -> {hi_rows:,} rows",
            f"fastest {lo.lo:.3f} s -> {hi.lo:.3f} s (medians {lo.median:.3f} -> {hi.median:.3f}), "
            f"queries {lo_q} -> {hi_q}, rows read {lo_r} -> {hi_r}",
            "same queries and rows read; fastest run within +20 % + 20 ms", same_q and time_ok))  # fmt: skip
    section.notes += [
        f"{repeat} runs per cell after one warm-up; queries and rows read are the maximum over the runs.",
        "Fill time is the generator's, cumulative from the previous level.",
    ]
    return section


if __name__ == "__main__":
    main_for(run)
