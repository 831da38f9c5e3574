"""A real S3 (and Rekognition) endpoint over HTTP for tests, and a fault-injecting proxy.

moto's server runs in a thread of the test process on a free loopback port; code under
test reaches it only through ``endpoint_url``. Test files import the fixture:
``from tests.s3server import moto_endpoint  # noqa: F401``.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a moto server (S3, Rekognition, ...) on 127.0.0.1 and a free port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str):
    """A boto3 S3 client on ``endpoint`` with the dummy credentials."""
    import boto3
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def new_bucket(endpoint: str, prefix: str = "peakops") -> str:
    """Create an empty bucket with a fresh name on ``endpoint``; return the name."""
    import uuid
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def aws_env(home: Path) -> dict[str, str]:
    """Dummy credentials, and no shared config files from the real home."""
    return {**DUMMY_CREDENTIALS, "AWS_CONFIG_FILE": str(home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials")}


# --------------------------------------------------------------------------- proxy

Match = Callable[[str, str], bool]
"""(method, path) -> whether a fault applies to this request."""

S3_SLOW_DOWN = (503, {"Content-Type": "application/xml"},
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                b"<Message>Please reduce your request rate.</Message></Error>")
REKOGNITION_THROTTLED = (400, {"Content-Type": "application/x-amz-json-1.1",
                               "x-amzn-ErrorType": "ThrottlingException"},
                         b'{"__type": "ThrottlingException", "message": "Rate exceeded"}')

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer",
        "upgrade", "content-length"}


class FaultProxy:
    """HTTP proxy on loopback in front of ``upstream``.

    ``fail_next(n, response, match)`` answers the next ``n`` matching requests itself
    (e.g. 503 SlowDown); ``kill()`` stops it dead, as a crashed endpoint: the listener
    closes, requests in flight get no answer; ``revive()`` listens on the same port again.
    ``got_bytes`` counts the body bytes of the GET answers it passed on (what a reader
    fetched); ``ignore_range`` drops the Range header, as a store that does not honour it.
    """

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port or 80))
        self.port = 0
        self.dead = False
        self.faults_sent = 0
        self.requests: list[tuple[str, str]] = []
        self.got_bytes = 0
        self.ignore_range = False
        self._faults: list[tuple[int, tuple[int, dict, bytes], Match]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.dead = False
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def fail_next(self, count: int, response: tuple[int, dict, bytes],
                  match: Match = lambda method, path: True) -> None:
        with self._lock:
            self._faults.append((count, response, match))

    def take_fault(self, method: str, path: str) -> tuple[int, dict, bytes] | None:
        with self._lock:
            self.requests.append((method, path))
            for i, (count, response, match) in enumerate(self._faults):
                if count > 0 and match(method, path):
                    self._faults[i] = (count - 1, response, match)
                    self.faults_sent += 1
                    return response
        return None

    def kill(self) -> None:
        """Refuse new connections and drop requests in flight, from any thread."""
        self.dead = True
        server, self._server = self._server, None
        if server is not None:
            threading.Thread(target=server.shutdown, daemon=True).start()
            server.socket.close()

    def revive(self) -> None:
        self.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self) -> None:
        proxy = self.owner
        if proxy.dead:
            return self._drop()
        body = self._body()
        if proxy.dead:  # killed while the body was arriving
            return self._drop()
        fault = proxy.take_fault(self.command, self.path)
        if fault is not None:
            status, headers, payload = fault
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP
                       and not (proxy.ignore_range and k.lower() == "range")}
            if self.command not in ("GET", "HEAD", "DELETE") or body:
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if proxy.dead:
                return self._drop()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP:
                    self.send_header(name, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client hung up
                    return self._drop()
            if self.command == "GET":
                with proxy._lock:
                    proxy.got_bytes += len(payload)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
