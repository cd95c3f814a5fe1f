#!/usr/bin/python3
"""A stand-in for the Cloud SQL Auth Proxy v2, for a node with no route to Google.

It takes the real proxy's command line as the chart renders it and serves
the same ports and endpoints:
  --port (3306)            TCP: every connection is relayed to INSTANCE:3306,
                           where INSTANCE is the last part of the instance
                           connection name PROJECT:REGION:INSTANCE, resolved
                           as a host name (a Service in the pod's namespace
                           plays the Cloud SQL instance)
  --http-port (9090)       with --health-check: /startup, /liveness, /readiness
  --admin-port (9091)      with --quitquitquit: POST|GET /quitquitquit exits 0
  SIGTERM                  exits 0 with --exit-zero-on-sigterm (143 otherwise)
  `shutdown --admin-port N` (the chart's preStop): calls /quitquitquit.
What it does NOT do: TLS to Google, IAM, credentials, --private-ip; flags it
does not know are accepted and ignored.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import sys
import threading
import urllib.request

started = threading.Event()


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    rest: list[str] = []
    for a in argv:
        if a.startswith("--"):
            k, _, v = a[2:].partition("=")
            opts[k] = v or "true"
        else:
            rest.append(a)
    return opts, rest


def log(msg: str) -> None:
    sys.stderr.write(f'{{"severity":"INFO","message":"standin: {msg}"}}\n')
    sys.stderr.flush()


def pump(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(listener: socket.socket, host: str, port: int) -> None:
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((host, port), timeout=10)
            upstream.settimeout(None)
        except OSError as e:
            log(f"cannot reach {host}:{port}: {e}")
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path in ("/startup", "/liveness", "/readiness"):
            ok = started.is_set() or self.path == "/liveness"
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"starting")
        elif self.path == "/quitquitquit" and self.server.quit:  # type: ignore[attr-defined]
            self.send_response(200)
            self.end_headers()
            log("quitquitquit: exiting")
            threading.Timer(0.1, lambda: os._exit(0)).start()
        else:
            self.send_response(404)
            self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


def serve_http(address: str, port: int, quit_ok: bool) -> None:
    srv = http.server.ThreadingHTTPServer((address, port), Health)
    srv.quit = quit_ok  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def main() -> int:
    opts, rest = parse(sys.argv[1:])
    if rest and rest[0] == "shutdown":
        port = opts.get("admin-port", "9091")
        urllib.request.urlopen(f"http://127.0.0.1:{port}/quitquitquit", data=b"", timeout=5)
        return 0
    if not rest:
        log("no instance connection name")
        return 1
    instance = rest[-1].split("?")[0]
    host = instance.split(":")[-1]
    code = 0 if "exit-zero-on-sigterm" in opts else 143
    signal.signal(signal.SIGTERM, lambda *_: os._exit(code))
    address = opts.get("address", "127.0.0.1")
    port = int(opts.get("port", "5432"))
    if "health-check" in opts:
        serve_http(opts.get("http-address", "localhost"), int(opts.get("http-port", "9090")), False)
    if "quitquitquit" in opts:
        serve_http("127.0.0.1", int(opts.get("admin-port", "9091")), True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(64)
    log(f"listening on {address}:{port} for {instance} (relayed to {host}:3306)")
    started.set()
    relay(listener, host, 3306)
    return 0


if __name__ == "__main__":
    sys.exit(main())
