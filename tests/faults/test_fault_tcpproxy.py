"""The relay (tests/harness/relay.py) and its faults, against an echo server (no database needed)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness.basics import wait_until
from harness.relay import Relay


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    conn.sendall(data)
                except OSError:
                    return

    def loop() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()
    stop.set()
    t.join()
    srv.close()


def _talk(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_forwards(echo: tuple[str, int]) -> None:
    with Relay(echo) as proxy:
        assert _talk(proxy.port, b"hello") == b"hello"
        assert proxy.accepted == 1
        assert wait_until(lambda: proxy.bytes_c2s == 5 and proxy.bytes_s2c == 5, 10, interval=0.02, retry=(),
                          error=None)


def test_cut_all(echo: tuple[str, int]) -> None:
    with Relay(echo) as proxy:
        s = socket.create_connection(proxy.address, timeout=3)
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        assert proxy.cut_all() == 1
        with pytest.raises(OSError):
            s.sendall(b"y")
            data = s.recv(1)
            if not data:
                raise ConnectionResetError
        s.close()


def test_cut_after_bytes(echo: tuple[str, int]) -> None:
    with Relay(echo) as proxy:
        fired = proxy.cut_after_bytes(3, direction="c2s")
        got = _talk(proxy.port, b"abcdef")
        assert fired.is_set()
        assert got in (b"", b"a", b"ab", b"abc")
        assert proxy.bytes_c2s == 3
        assert _talk(proxy.port, b"again") == b"again"  # one-shot


def test_cut_on_pattern(echo: tuple[str, int]) -> None:
    with Relay(echo) as proxy:
        fired = proxy.cut_on(b"DROP")
        assert _talk(proxy.port, b"please DROP it") == b""
        assert fired.is_set()
        assert proxy.cuts == 1


def test_refuse_then_accept(echo: tuple[str, int]) -> None:
    with Relay(echo) as proxy:
        port = proxy.port
        proxy.refuse(0.5)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        time.sleep(0.8)
        assert proxy.port == port
        assert _talk(port, b"back") == b"back"


def test_reject(echo: tuple[str, int]) -> None:
    with Relay(echo) as proxy:
        proxy.reject(0.4)
        try:
            got = _talk(proxy.port, b"x")
        except OSError:
            got = b""
        assert got == b""
        time.sleep(0.5)
        assert _talk(proxy.port, b"y") == b"y"
