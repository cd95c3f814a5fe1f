"""A small TCP fault proxy for tests: accept, forward, and break on command.

The proxy listens on 127.0.0.1 (port chosen by the OS unless given) and
forwards every accepted connection to one upstream address. Faults:

* ``cut_all()``                    close every live connection now (both sides).
* ``cut_after_bytes(n)``           one-shot: after ``n`` more forwarded bytes
                                   (counted from arming, either direction or one),
                                   the connection carrying byte ``n`` is cut
                                   mid-stream (bytes up to ``n`` are delivered).
* ``cut_on(pattern)``              one-shot: when ``pattern`` passes client->server
                                   (or server->client), cut that connection;
                                   ``deliver=False`` drops the chunk holding it
                                   (the server never sees the statement),
                                   ``deliver=True`` forwards it first (the server
                                   acts, the client never sees the answer).
* ``refuse(seconds)``              close the listening socket so connects get
                                   ECONNREFUSED; re-listen on the same port after
                                   ``seconds`` (``None``: until ``accept()``).
* ``reject(seconds)``              keep listening but reset each new connection
                                   (a server that accepts and dies at once).
* ``latency``                      seconds of delay before each forwarded chunk.

Counters: ``accepted``, ``bytes_c2s``, ``bytes_s2c``, ``cuts``.
Threads only; no dependency beyond the standard library. Everything stops
with ``stop()`` (or the context manager), even with connections alive.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_CHUNK = 65536


@dataclass
class _Trigger:
    kind: str  # "bytes" | "pattern"
    direction: str  # "c2s" | "s2c" | "any"
    remaining: int = 0
    pattern: bytes = b""
    deliver: bool = False
    fired: threading.Event = field(default_factory=threading.Event)


class _Conn:
    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self._lock = threading.Lock()

    def close(self, reset: bool = True) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.upstream):
            if reset:
                # SO_LINGER 0: the peer sees a reset, as when a proxy or a node dies
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def run(self) -> None:
        socks = [self.client, self.upstream]
        try:
            while not self.closed.is_set():
                try:
                    ready, _, _ = select.select(socks, [], [], 0.2)
                except (OSError, ValueError):
                    break
                for src in ready:
                    direction = "c2s" if src is self.client else "s2c"
                    dst = self.upstream if src is self.client else self.client
                    try:
                        data = src.recv(_CHUNK)
                    except OSError:
                        data = b""
                    if not data:
                        self.close(reset=False)
                        return
                    if self.proxy.latency:
                        time.sleep(self.proxy.latency)
                    send, cut = self.proxy._inspect(direction, data)
                    if send:
                        try:
                            dst.sendall(send)
                        except OSError:
                            self.close()
                            return
                    self.proxy._count(direction, len(send))
                    if cut:
                        self.proxy._note_cut()
                        self.close()
                        return
        finally:
            self.close(reset=False)
            self.proxy._forget(self)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` and injects faults on command."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = listen_host
        self.port = listen_port
        self.latency = 0.0
        self.accepted = 0
        self.bytes_c2s = 0
        self.bytes_s2c = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._triggers: list[_Trigger] = []
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._reject_until = 0.0
        self._refuse_timer: threading.Timer | None = None
        self._listen_lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> TcpProxy:
        self._listen()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._refuse_timer:
            self._refuse_timer.cancel()
        self._unlisten()
        self.cut_all(count=False)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def live(self) -> int:
        with self._lock:
            return len(self._conns)

    # ---- faults ----------------------------------------------------------
    def cut_all(self, count: bool = True) -> int:
        """Closes (resets) every live connection; returns how many."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        if count and conns:
            self._note_cut(len(conns))
        return len(conns)

    def cut_after_bytes(self, nbytes: int, direction: str = "any") -> threading.Event:
        """Arms a one-shot cut after ``nbytes`` more bytes; returns an Event set when it fires."""
        trig = _Trigger("bytes", direction, remaining=nbytes)
        with self._lock:
            self._triggers.append(trig)
        return trig.fired

    def cut_on(
        self, pattern: bytes, direction: str = "c2s", deliver: bool = False
    ) -> threading.Event:
        """Arms a one-shot cut when ``pattern`` is seen in one chunk; returns its Event."""
        trig = _Trigger("pattern", direction, pattern=pattern, deliver=deliver)
        with self._lock:
            self._triggers.append(trig)
        return trig.fired

    def disarm(self) -> None:
        with self._lock:
            self._triggers.clear()

    def refuse(self, seconds: float | None = None, cut: bool = True) -> None:
        """Stops listening (ECONNREFUSED) for ``seconds``; ``cut`` also drops live ones."""
        self._unlisten()
        if cut:
            self.cut_all()
        if seconds is not None:
            self._refuse_timer = threading.Timer(seconds, self.accept)
            self._refuse_timer.daemon = True
            self._refuse_timer.start()

    def accept(self) -> None:
        """Listens again (after ``refuse``) and stops rejecting."""
        self._reject_until = 0.0
        if not self._stopping.is_set():
            self._listen()

    def reject(self, seconds: float) -> None:
        """Accepts but resets every new connection for ``seconds``."""
        self._reject_until = time.monotonic() + seconds

    # ---- internals -------------------------------------------------------
    def _listen(self) -> None:
        with self._listen_lock:
            if self._listener is not None:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            deadline = time.monotonic() + 5
            while True:
                try:
                    sock.bind((self.host, self.port))
                    break
                except OSError as exc:  # the port may linger for a moment after refuse()
                    if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                        sock.close()
                        raise
                    time.sleep(0.05)
            sock.listen(128)
            self.port = sock.getsockname()[1]
            self._listener = sock
            thread = threading.Thread(target=self._accept_loop, args=(sock,), daemon=True)
            self._accept_thread = thread
            thread.start()

    def _unlisten(self) -> None:
        with self._listen_lock:
            sock, self._listener = self._listener, None
            thread, self._accept_thread = self._accept_thread, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        if thread is not None:
            thread.join(timeout=2)

    def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                ready, _, _ = select.select([sock], [], [], 0.2)
            except (OSError, ValueError):
                return
            if sock is not self._listener:
                return
            if not ready:
                continue
            try:
                client, _ = sock.accept()
            except OSError:
                return
            if time.monotonic() < self._reject_until:
                with contextlib.suppress(OSError):
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, client, upstream)
            with self._lock:
                self._conns.add(conn)
                self.accepted += 1
            threading.Thread(target=conn.run, daemon=True).start()

    def _forget(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _count(self, direction: str, n: int) -> None:
        with self._lock:
            if direction == "c2s":
                self.bytes_c2s += n
            else:
                self.bytes_s2c += n

    def _note_cut(self, n: int = 1) -> None:
        with self._lock:
            self.cuts += n

    def _inspect(self, direction: str, data: bytes) -> tuple[bytes, bool]:
        """Returns (bytes to forward, cut after forwarding) and consumes fired triggers."""
        with self._lock:
            for trig in list(self._triggers):
                if trig.direction not in ("any", direction):
                    continue
                if trig.kind == "bytes":
                    if len(data) >= trig.remaining:
                        self._triggers.remove(trig)
                        trig.fired.set()
                        return data[: trig.remaining], True
                    trig.remaining -= len(data)
                elif trig.pattern in data:
                    self._triggers.remove(trig)
                    trig.fired.set()
                    return (data if trig.deliver else b""), True
        return data, False


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Polls ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
