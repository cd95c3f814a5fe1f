"""Google's side of a Cloud SQL instance (tools/images/cloudsql-instance.go) against the REAL Cloud SQL
Auth Proxy, without a node: both binaries from their images, in a network namespace of their own that
has only a loopback. What the real-node test's success is worth rests on this: the stand-in refuses what
Cloud SQL refuses, so a proxy that connects there really did the API calls, the certificate exchange and
the TLS that Cloud SQL asks for.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness.node import Netns, image_builder

CONNECTION_NAME = "matomo-test:europe-west1:matomo"
GREETING = b"greeting of the database\n"
API = "127.0.0.1:18080"


def binary_from(archive: Path, name: str, dest: Path) -> Path:
    """The file `name` of the image in a docker-archive."""
    with tarfile.open(archive) as outer:
        manifest = outer.extractfile("manifest.json")
        assert manifest is not None
        for layer in json.load(manifest)[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                try:
                    member = inner.getmember(name)
                except KeyError:
                    continue
                data = inner.extractfile(member)
                assert data is not None
                dest.write_bytes(data.read())
                dest.chmod(0o755)
                return dest
    raise AssertionError(f"no {name} in {archive}")


class Place:
    """The namespace, the processes started in it, and a database greeting every client."""

    def __init__(self, netns: Netns, tmp: Path) -> None:
        self.netns = netns
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Path:
        log = self.tmp / f"{name}.log"
        with open(log, "wb") as out:
            self.procs.append(subprocess.Popen(self.netns.wrap(argv), stdout=out, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=env))
        return log

    def connect(self, port: int, timeout: float = 10) -> socket.socket:
        return self.netns.run(lambda: socket.create_connection(("127.0.0.1", port), timeout=timeout))

    def wait_port(self, port: int) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                self.connect(port, 1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def database(self) -> int:
        """A TCP server on the namespace's loopback greeting every client (the MySQL server's part)."""
        listener: socket.socket = self.netns.run(lambda: socket.create_server(("127.0.0.1", 0)))

        def serve() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                with client:
                    client.sendall(GREETING)

        threading.Thread(target=serve, daemon=True).start()
        return int(listener.getsockname()[1])

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def first_bytes(sock: socket.socket) -> bytes:
    """What a client reads first (b"" when the connection is closed or reset without data)."""
    with sock:
        sock.settimeout(15)
        try:
            return sock.recv(100)
        except (ConnectionResetError, ssl.SSLError):
            return b""


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Place]:
    netns = Netns(f"matomo-csql-{os.getpid()}")
    netns.create()
    p = Place(netns, tmp_path)
    try:
        yield p
    finally:
        p.stop()
        netns.delete()


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    archives = image_builder.build(["cloud-sql-proxy", "cloudsql-instance"])
    d = tmp_path_factory.mktemp("cloudsql-binaries")
    return {"proxy": binary_from(archives["cloud-sql-proxy"], "cloud-sql-proxy", d / "cloud-sql-proxy"),
            "instance": binary_from(archives["cloudsql-instance"], "cloudsql-instance", d / "cloudsql-instance")}


def test_real_proxy_reaches_the_database_only_as_cloud_sql_allows(place: Place, binaries: dict[str, Path]) -> None:
    token = secrets.token_urlsafe(24)
    db = place.database()
    instance_log = place.start("instance", [str(binaries["instance"]), f"-instance={CONNECTION_NAME}",
                                            f"-backend=127.0.0.1:{db}", f"-api-address={API}",
                                            "-address=127.0.0.1"],
                               env={**os.environ, "CLOUDSQL_TOKEN": token})
    place.wait_port(18080)

    def proxy(name: str, port: int, args: list[str]) -> Callable[[], str]:
        log = place.start(name, [str(binaries["proxy"]), f"--port={port}", f"--sqladmin-api-endpoint=http://{API}/",
                                 *args])
        place.wait_port(port)
        return lambda: log.read_text()

    good = proxy("proxy", 13306, [f"--token={token}", CONNECTION_NAME])
    assert first_bytes(place.connect(13306)) == GREETING, good()
    log = instance_log.read_text()
    assert "generateEphemeralCert matomo-test:matomo: client certificate 1 signed" in log, log
    assert "tls: connection 1 from 127.0.0.1:" in log, log

    # another token: the API answers 401, the proxy gets no certificate, the client no database
    wrong_token = proxy("proxy-token", 13307, ["--token=not-the-token", CONNECTION_NAME])
    assert first_bytes(place.connect(13307)) == b""
    assert "Error 401" in wrong_token()

    # another region in the connection name: the proxy itself refuses what connectSettings says
    wrong_region = proxy("proxy-region", 13308, [f"--token={token}", "matomo-test:us-central1:matomo"])
    assert first_bytes(place.connect(13308)) == b""
    assert "provided region was mismatched" in wrong_region()

    # a TLS client without a certificate signed by the instance's CA never reaches the database
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = place.connect(3307)
    try:
        tls = ctx.wrap_socket(raw)
    except (ssl.SSLError, ConnectionResetError):
        got = b""
    else:
        got = first_bytes(tls)
    assert got == b""
    assert "handshake refused" in instance_log.read_text()
    assert token not in instance_log.read_text() + good() + wrong_token() + wrong_region()
