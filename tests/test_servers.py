"""The test servers themselves: loopback only, never root, nothing left behind."""

from __future__ import annotations

import os
import socket

import psutil

from tests.servers import HOST, postgres_server, redis_server


def accepts(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        return sock.connect_ex((host, port)) == 0


def other_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback."""
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def listeners(port: int) -> set[int]:
    """Pids holding a listening socket on ``port``: a server, and for a moment a child it
    forked and has not yet closed its copy in (PostgreSQL's backends)."""
    return {c.pid for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid}


def postmaster_or_its_child(pid: int, postmaster: psutil.Process) -> bool:
    if pid == postmaster.pid:
        return True
    try:
        process = psutil.Process(pid)
        return process.ppid() == postmaster.pid and process.username() == "postgres"
    except psutil.NoSuchProcess:  # a backend that has ended since: it was forked by it
        return True


def test_servers_listen_on_loopback_only_and_stop_clean():
    with postgres_server() as pg, redis_server() as rs:
        ports, folder = (pg.port, rs.port), pg.folder
        for port in ports:
            assert accepts(HOST, port)
            assert not any(accepts(address, port) for address in other_addresses())
        if os.geteuid() == 0:  # PostgreSQL refuses root; it runs as the package's user
            postmaster = psutil.Process(
                int((folder / "data" / "postmaster.pid").read_text().split()[0]))
            assert postmaster.username() == "postgres"
            # psutil names one of the processes sharing the listening socket: the
            # postmaster or a child it forked (which runs as the same user).
            holders = listeners(pg.port)
            assert holders and all(postmaster_or_its_child(pid, postmaster) for pid in holders)
        assert (folder / "data" / "PG_VERSION").exists()
    for port in ports:
        assert not accepts(HOST, port)
    assert not folder.exists()
