"""Tracking load: `--requests` tracking requests to matomo.php from `--concurrency` keep-alive connections,
each hit a visitor of its own (QueuedTracking picks the queue by visitor id, Matomo the visit row),
as single GET hits or as bulk POSTs of `--bulk` hits. Prints one JSON line: requests and hits per
second accepted, answer times p50/p99, the answers' status codes and this process's own CPU seconds.

Run where the target is reachable (bench_tracking.py runs it inside the real node's network namespace
with nsenter, or on the host for 127.0.0.1). Standard library only: it runs with any python3.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from typing import Any

UA = "Mozilla/5.0 (X11; Linux x86_64) matomo-chart-bench"


def hit_query(site: int, tag: str, n: int, visitor: str) -> str:
    return urllib.parse.urlencode({
        "idsite": str(site), "rec": "1", "url": f"http://bench.example/{tag}/{n}", "action_name": f"bench {tag}",
        "_id": visitor, "send_image": "0", "apiv": "1", "rand": secrets.token_hex(4),
    })


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = math.ceil(p / 100 * len(sorted_values)) - 1  # nearest rank
    return sorted_values[min(len(sorted_values) - 1, max(0, k))]


def run(host: str, port: int, host_header: str, requests: int, concurrency: int, bulk: int, site: int,
        tag: str, timeout: float) -> dict[str, object]:
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    headers = {"Host": host_header, "User-Agent": UA, "Connection": "keep-alive"}

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            if bulk:
                body = json.dumps({"requests": ["?" + hit_query(site, tag, n * bulk + i, secrets.token_hex(8))
                                                for i in range(bulk)]}).encode()
                method, path, extra = "POST", "/matomo.php", {"Content-Type": "application/json"}
            else:
                body, method, path, extra = None, "GET", "/matomo.php?" + hit_query(site, tag, n, secrets.token_hex(8)), {}
            t = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request(method, path, body=body, headers={**headers, **extra})
                r = conn.getresponse()
                r.read()
                status = str(r.status)
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                statuses[status] += 1
        if conn is not None:
            conn.close()

    cpu0 = os.times()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    latencies.sort()
    ok = sum(c for s, c in statuses.items() if s in ("200", "204"))
    return {
        "requests": requests, "hits_per_request": bulk or 1, "concurrency": concurrency, "seconds": round(wall, 3),
        "accepted_requests": ok, "accepted_hits": ok * (bulk or 1),
        "requests_per_s": round(ok / wall, 1), "hits_per_s": round(ok * (bulk or 1) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "statuses": dict(statuses),
        "cpu_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 2),
    }


def spawn(host: str, port: int, requests: int, concurrency: int, *, bulk: int = 0, host_header: str = "localhost",
          site: int = 1, tag: str = "load", prefix: list[str] | None = None) -> dict[str, Any]:
    """This script run as a process of its own (after `prefix`, e.g. nsenter into a network namespace): its
    JSON line. Raises RuntimeError, with its stderr, when it fails."""
    argv = [*(prefix or []), sys.executable, os.path.abspath(__file__), "--host", host, "--port", str(port),
            "--host-header", host_header, "--requests", str(requests), "--concurrency", str(concurrency),
            "--bulk", str(bulk), "--site", str(site), "--tag", tag]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--host-header", default="localhost")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--bulk", type=int, default=0, help="hits per bulk POST (0: single GET hits)")
    ap.add_argument("--site", type=int, default=1)
    ap.add_argument("--tag", default="load")
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    print(json.dumps(run(a.host, a.port, a.host_header, a.requests, a.concurrency, a.bulk, a.site, a.tag, a.timeout)))


if __name__ == "__main__":
    main()
