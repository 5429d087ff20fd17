"""Mutual TLS between raftpy servers (issue 13, item 3): TcpTransport(tls=...)
and Server(tls=...) with certificates made here by the openssl command.

Each server listens on a loopback address of its own (127.0.0.2, .3, ...)
and its certificate names that address, so a certificate can be checked
against the server configured there.  What must be refused, each with a
logged reason and nothing delivered: a plain peer, a peer whose certificate
comes from another CA, a peer whose certificate does not name the host it
announces in its handshake, and (from the dialling side) a listener whose
certificate names another host.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from raftpy import Config, Configuration, Server, StateMachine, Tls
from raftpy.core.messages import AppendEntriesResult, TimeoutNow
from raftpy.errors import InvalidError
from raftpy.io.tcp import TcpTransport
from raftpy.io.tls import names_host

if shutil.which("openssl") is None:
    pytest.skip("the openssl command is needed to make test certificates "
                "(apt-get install openssl)", allow_module_level=True)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}", cwd=d)


def make_cert(d: Path, ca: str, name: str, san: str) -> None:
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
             "-addext", f"subjectAltName={san}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-copy_extensions", "copy",
             "-out", f"{name}.pem", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    for i in range(2, 6):
        make_cert(d, "ca", f"n{i}", f"IP:127.0.0.{i}")
    make_cert(d, "other-ca", "stranger", "IP:127.0.0.9")
    make_cert(d, "ca", "named", "DNS:localhost")
    return d


def tls(certs: Path, name: str) -> Tls:
    return Tls.from_files(certs / f"{name}.pem", certs / f"{name}.key", certs / "ca.pem")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Node:
    """A TcpTransport that records what it receives."""

    def __init__(self, server_id: int, host: str, tls_: Tls | None) -> None:
        self.id = server_id
        self.address = f"{host}:{free_port(host)}"
        self.transport = TcpTransport(Config(connect_timeout_ms=2000,
                                             connect_retry_delay_ms=100), tls=tls_)
        self.got: list[tuple[int, str, object]] = []
        self.failed: list[object] = []

    async def start(self) -> None:
        await self.transport.start(self.id, self.address,
                                   lambda f, a, m: self.got.append((f, a, m)),
                                   lambda t, m: self.failed.append(m))


async def wait(predicate, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def test_two_tls_transports_exchange_messages_both_ways(run_loop, certs) -> None:
    async def body() -> None:
        a, b = Node(2, "127.0.0.2", tls(certs, "n2")), Node(3, "127.0.0.3", tls(certs, "n3"))
        await a.start()
        await b.start()
        try:
            a.transport.send(3, b.address, TimeoutNow(5, 7, 2))
            await wait(lambda: b.got)
            assert b.got == [(2, a.address, TimeoutNow(5, 7, 2))]
            b.transport.send(2, a.address, AppendEntriesResult(5, 0, 7))
            await wait(lambda: a.got)
            assert a.got[0][:2] == (3, b.address)
            assert a.transport.stats.connections_refused_tls == 0
        finally:
            await a.transport.close()
            await b.transport.close()
    run_loop(asyncio.wait_for(body(), 30))


def _refused(run_loop, caplog, listener: Node, dialer: Node, claim: str | None = None) -> str:
    """dialer sends to listener; nothing may arrive; the refusal's logged reason."""
    async def body() -> None:
        await listener.start()
        await dialer.start()
        try:
            if claim is not None:               # announce another address than ours
                dialer.transport.handshake = _handshake(dialer.id, claim)
            for _ in range(3):
                dialer.transport.send(listener.id, listener.address, TimeoutNow(5, 7, 2))
            await wait(lambda: listener.transport.stats.connections_refused_tls
                       or dialer.transport.stats.connect_failures)
            await asyncio.sleep(0.3)
            assert listener.got == [], listener.got
        finally:
            await dialer.transport.close()
            await listener.transport.close()
    with caplog.at_level(logging.INFO, logger="raftpy.io.tcp"):
        run_loop(asyncio.wait_for(body(), 30))
    return "\n".join(r.getMessage() for r in caplog.records
                     if "refused" in r.getMessage() or "failed" in r.getMessage())


def _handshake(server_id: int, address: str) -> bytes:
    from raftpy.io.wire import encode_handshake
    return encode_handshake(server_id, address)


def test_a_plain_peer_is_refused_with_a_logged_reason(run_loop, caplog, certs) -> None:
    said = _refused(run_loop, caplog, Node(2, "127.0.0.2", tls(certs, "n2")),
                    Node(3, "127.0.0.3", None))
    assert "TLS handshake failed" in said, said


def test_a_certificate_of_another_ca_is_refused(run_loop, caplog, certs) -> None:
    stranger = Tls.from_files(certs / "stranger.pem", certs / "stranger.key", certs / "ca.pem")
    said = _refused(run_loop, caplog, Node(2, "127.0.0.2", tls(certs, "n2")),
                    Node(9, "127.0.0.9", stranger))
    assert "TLS handshake failed" in said, said
    assert "certificate" in said.lower(), said


def test_a_peer_announcing_a_host_its_certificate_does_not_name_is_refused(
        run_loop, caplog, certs) -> None:
    # n3's certificate names 127.0.0.3; its handshake claims to be at 127.0.0.4.
    said = _refused(run_loop, caplog, Node(2, "127.0.0.2", tls(certs, "n2")),
                    Node(3, "127.0.0.3", tls(certs, "n3")), claim="127.0.0.4:9000")
    assert "does not name '127.0.0.4'" in said, said


def test_the_dialler_checks_the_listeners_certificate_against_its_address(
        run_loop, caplog, certs) -> None:
    # The listener at 127.0.0.2 presents n5's certificate (127.0.0.5).
    said = _refused(run_loop, caplog, Node(2, "127.0.0.2", tls(certs, "n5")),
                    Node(3, "127.0.0.3", tls(certs, "n3")))
    assert "connect to" in said and "failed" in said, said
    assert "127.0.0.2" in said and ("IP address mismatch" in said or "certificate" in said), said


def test_contexts_that_are_not_mutual_tls_are_refused(certs) -> None:
    good = tls(certs, "n2")
    lax_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)          # no client certificates
    with pytest.raises(InvalidError, match="client certificates"):
        Tls(lax_server, good.client)
    lax_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lax_client.check_hostname = False
    with pytest.raises(InvalidError, match="host name"):
        Tls(good.server, lax_client)
    with pytest.raises(InvalidError, match="TLS files"):
        Tls.from_files(certs / "missing.pem", certs / "n2.key", certs / "ca.pem")


def test_names_host() -> None:
    cert = {"subjectAltName": (("DNS", "raft-*.example"), ("DNS", "*.db.example"),
                               ("IP Address", "10.0.0.1"), ("IP Address", "::1"))}
    assert names_host(cert, "10.0.0.1") and names_host(cert, "[::1]")
    assert names_host(cert, "a.db.example") and names_host(cert, "A.DB.example.")
    assert not names_host(cert, "db.example") and not names_host(cert, "x.a.db.example")
    assert not names_host(cert, "10.0.0.2") and not names_host(cert, "raft-1.example")
    assert not names_host(None, "10.0.0.1") and not names_host({}, "10.0.0.1")


class Counter(StateMachine):
    def __init__(self) -> None:
        self.count = 0

    def apply(self, command: bytes) -> int:
        self.count += 1
        return self.count

    def snapshot(self) -> bytes:
        return self.count.to_bytes(8, "little")

    def restore(self, data: bytes) -> None:
        self.count = int.from_bytes(bytes(data[:8]), "little")


def test_a_cluster_of_servers_with_tls_elects_and_commits(run_loop, certs, tmp_path) -> None:
    async def body() -> None:
        hosts = {i: f"127.0.0.{i}:{free_port(f'127.0.0.{i}')}" for i in (2, 3, 4)}
        conf = Configuration.of(*hosts.items())
        config = Config(election_timeout_ms=300, heartbeat_timeout_ms=50)
        for i in hosts:
            (tmp_path / str(i)).mkdir()
        servers = [Server(i, hosts[i], tmp_path / str(i), Counter(), config,
                          tls=tls(certs, f"n{i}")) for i in hosts]
        for s in servers:
            await s.bootstrap(conf)
            await s.start()
        try:
            deadline = asyncio.get_running_loop().time() + 20
            while not any(s.state.name == "LEADER" for s in servers):
                assert asyncio.get_running_loop().time() < deadline, "no leader"
                await asyncio.sleep(0.05)
            leader = next(s for s in servers if s.state.name == "LEADER")
            results = await leader.apply_many([b"x" * 8] * 10)
            assert results[-1] == 10
            await wait(lambda: all(s.last_applied == leader.last_applied for s in servers))
        finally:
            for s in servers:
                await s.close()
    run_loop(asyncio.wait_for(body(), 60))


def test_tls_is_for_the_default_transport_only(tmp_path, certs) -> None:
    with pytest.raises(InvalidError, match="default transport"):
        Server(2, "127.0.0.2:1", tmp_path, Counter(), transport=TcpTransport(Config()),
               tls=tls(certs, "n2"))
