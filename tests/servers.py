"""Throwaway PostgreSQL and Redis servers, started by the tests themselves.

Both listen on 127.0.0.1 only, on a free port, with their files in a temp folder, and
are stopped at the end of the session; nothing is assumed to be running already. The
binaries come from Debian's ``postgresql`` and ``redis-server`` packages, which
``scripts/ensure-system-deps.sh`` installs.

PostgreSQL refuses to run as root (CI runs as root): there the server runs as the
``postgres`` system user the Debian package creates, in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
_INSTALL_HINT = "install it with: sh scripts/ensure-system-deps.sh"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120, **kwargs)


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        pytest.fail(f"PostgreSQL server binaries not found (Debian package postgresql); "
                    f"{_INSTALL_HINT}")
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    """A running throwaway cluster; :meth:`create_database` gives each test its own."""

    port: int
    user: str
    password: str
    folder: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{HOST}:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        name = f"t_{secrets.token_hex(6)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        """Stop the server (fast shutdown: every connection is cut), as in an outage."""
        prefix, _, _ = _as_server_user()
        done = _run([*prefix, str(postgres_bin() / "pg_ctl"), "-D", str(self.folder / "data"),
                     "-m", "fast", "-w", "stop"])
        if done.returncode != 0:
            pytest.fail(f"pg_ctl stop failed ({done.returncode}): {done.stderr[-1000:]}")

    def start(self) -> None:
        """Start it again after :meth:`stop`, on the same port with the same data."""
        prefix, _, _ = _as_server_user()
        done = _run([*prefix, str(postgres_bin() / "pg_ctl"), "-D", str(self.folder / "data"),
                     "-l", str(self.folder / "server.log"), "-w", "-t",
                     str(int(START_TIMEOUT_S)), "start"])
        if done.returncode != 0:
            pytest.fail(f"pg_ctl start failed ({done.returncode}): {done.stderr[-1000:]}")

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) so the server never runs as root."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"running as root and there is no 'postgres' system user; {_INSTALL_HINT}")
    return ["runuser", "-u", "postgres", "--"], entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + pg_ctl into a temp folder; loopback TCP on a free port, socket in the folder."""
    bindir = postgres_bin()
    prefix, uid, gid = _as_server_user()
    # Not under pytest's tmp_path: its parents are root-only, and the server user must
    # reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="peakops-pg-"))
    try:
        if uid is not None:
            os.chown(folder, uid, gid)
        data, pwfile, log = folder / "data", folder / "pw", folder / "server.log"
        server = PostgresServer(port=free_port(), user="peakops",
                                password=secrets.token_hex(12), folder=folder)
        pwfile.write_text(server.password + "\n")
        if uid is not None:
            os.chown(pwfile, uid, gid)
        init = _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", server.user,
                     f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                     "-E", "UTF8", "--locale=C", "--no-sync"])
        if init.returncode != 0:
            pytest.fail(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
        pwfile.unlink()
        # Server options go in the config file: pg_ctl -o would hand them to a shell.
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '{HOST}'\nport = {server.port}\n"
                       f"unix_socket_directories = '{folder}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "max_connections = 100\nshared_buffers = 32MB\n")
        start = _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                      "-w", "-t", str(int(START_TIMEOUT_S)), "start"])
        if start.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"pg_ctl start failed ({start.returncode}): {start.stderr[-1000:]}"
                        f"\n{tail}")
        try:
            yield server
        finally:
            _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                  "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    port: int
    password: str

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@{HOST}:{self.port}/{db}"


@contextlib.contextmanager
def redis_server(port: int | None = None, password: str | None = None
                 ) -> Iterator[RedisServer]:
    """redis-server on loopback and a free port (or ``port``, to restart one); no
    persistence, files in a temp folder."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail(f"redis-server not found (Debian package redis-server); {_INSTALL_HINT}")
    import redis

    folder = Path(tempfile.mkdtemp(prefix="peakops-redis-"))
    server = RedisServer(port=port or free_port(), password=password or secrets.token_hex(12))
    log = folder / "server.log"
    proc = subprocess.Popen(
        [exe, "--bind", HOST, "--port", str(server.port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--logfile", str(log), "--daemonize", "no",
         "--requirepass", server.password],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = redis.Redis.from_url(server.url(), socket_timeout=5)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    pytest.fail(f"redis-server did not start (exit {proc.poll()}): {tail}")
                time.sleep(0.05)
        client.close()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def postgres_instance() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_instance: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = postgres_instance.create_database()
    try:
        yield postgres_instance.url(name)
    finally:
        postgres_instance.drop_database(name)


@pytest.fixture(scope="session")
def redis_instance() -> Iterator[RedisServer]:
    """One redis-server for the session."""
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_instance: RedisServer) -> Iterator[str]:
    """Database 0 of the session's Redis, emptied before and after the test."""
    import redis
    url = redis_instance.url(0)
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
