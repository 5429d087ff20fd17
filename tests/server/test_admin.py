"""The admin endpoint (raftpy.admin) and the ``raftpy`` admin commands: three real
Servers (DiskStore, TcpTransport on loopback) as BlockingServers, on uvloop and on
asyncio, each with its endpoint on a Unix socket; the CLI run in-process and once as
a real process.  Every call has a timeout."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import pytest
from test_blocking import CALL_S, close_all, free_ports, leader_of, make_cluster, wait_until

from raftpy import (
    BlockingServer,
    InvalidError,
    NoConnectionError,
    NotLeaderError,
    Role,
    Server,
    admin,
)
from raftpy.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, main


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request):
    return request.param


@pytest.fixture
def sock_dir():
    """A short directory for the sockets: a Unix socket path holds 107 bytes, and
    pytest's tmp_path can be longer."""
    path = tempfile.mkdtemp(prefix="rpadm-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(list(argv))
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def with_endpoints(servers: list[BlockingServer], root) -> dict[int, str]:
    """An admin endpoint for each server, closed by close_endpoints."""
    paths = {}
    for bs in servers:
        path = os.path.join(root, f"admin-{bs.server.id}.sock")
        bs.endpoint = bs.call(lambda s, p=path: admin.serve_admin(s, p), CALL_S, "serve")
        paths[bs.server.id] = path
    return paths


def close_endpoints(servers: list[BlockingServer]) -> None:
    for bs in servers:
        endpoint = getattr(bs, "endpoint", None)
        if endpoint is not None and not bs.closed:
            bs.call(lambda s, e=endpoint: e.close(), CALL_S, "close endpoint")


def test_admin_commands_on_a_cluster(tmp_path, loop_kind, sock_dir):
    servers = make_cluster(tmp_path, loop_kind, 3)
    try:
        leader = leader_of(servers)
        leader.barrier()         # changes wait for an entry of the leader's term
        follower = next(bs for bs in servers if bs is not leader)
        paths = with_endpoints(servers, sock_dir)
        lp, fp = paths[leader.server.id], paths[follower.server.id]
        assert stat.S_IMODE(os.stat(lp).st_mode) == 0o600        # owner only

        code, out, err = cli("status", lp)
        assert code == EXIT_OK, err
        assert f"server {leader.server.id} at {leader.server.address}: leader" in out
        assert out.count("member ") == 3 and out.count("follower ") == 2
        code, out, _ = cli("status", fp, "--json")
        doc = json.loads(out)
        assert code == EXIT_OK and doc["state"] == "FOLLOWER"
        assert doc["leader_id"] == leader.server.id and doc["address"] == follower.server.address

        # a follower refuses changes and names the leader
        code, _, err = cli("add", fp, "4", "127.0.0.1:1")
        assert code == EXIT_REFUSED
        assert f"the leader is {leader.server.id} at {leader.server.address}" in err
        with pytest.raises(NotLeaderError) as info:
            admin.remove(fp, 4, CALL_S)
        assert info.value.leader_id == leader.server.id

        port = free_ports(1)[0]
        assert cli("add", lp, "4", f"127.0.0.1:{port}")[:2] == (EXIT_OK, "done\n")
        conf = {s["id"]: s["role"] for s in admin.status(lp)["configuration"]}
        assert conf[4] == "spare"
        code, _, err = cli("add", lp, "4", f"127.0.0.1:{port}")
        assert code == EXIT_REFUSED and "DuplicateIdError" in err
        assert cli("remove", lp, "4")[0] == EXIT_OK
        assert 4 not in {s["id"] for s in admin.status(lp)["configuration"]}

        code, out, _ = cli("snapshot", lp)
        assert code == EXIT_OK and out.startswith("snapshot taken at index ")
        assert leader.metrics().snapshots_taken == 1

        code, out, _ = cli("transfer", lp, str(follower.server.id))
        assert (code, out) == (EXIT_OK, f"leader is now {follower.server.id}\n")
        wait_until(follower, lambda s: s.state.name == "LEADER", "the transfer")
        assert admin.status(fp)["state"] == "LEADER"
    finally:
        close_endpoints(servers)
        close_all(servers)


def test_assign_voter_to_spare_and_back_through_admin(tmp_path, loop_kind, sock_dir):
    servers = make_cluster(tmp_path, loop_kind, 3)
    try:
        leader = leader_of(servers)
        leader.barrier()         # changes wait for an entry of the leader's term
        paths = with_endpoints(servers, sock_dir)
        lp = paths[leader.server.id]
        victim = next(bs for bs in servers if bs is not leader).server.id
        admin.assign(lp, victim, "spare", CALL_S)
        conf = {s["id"]: s["role"] for s in admin.status(lp)["configuration"]}
        assert conf[victim] == "spare"
        assert cli("assign", lp, str(victim), "voter")[0] == EXIT_OK
        wait_until(leader, lambda s: s.raft.configuration.get(victim).role == Role.VOTER,
                   "promotion")
    finally:
        close_endpoints(servers)
        close_all(servers)


def test_unreachable_endpoints(tmp_path):
    missing = str(tmp_path / "nothing.sock")
    code, _, err = cli("status", missing)
    assert code == EXIT_UNREACHABLE and f"cannot reach the admin endpoint {missing}" in err
    port = free_ports(1)[0]
    code, _, err = cli("status", f"127.0.0.1:{port}", "--timeout", "2")
    assert code == EXIT_UNREACHABLE and "cannot reach" in err
    with pytest.raises(NoConnectionError):
        admin.snapshot(missing)
    # something that is not an admin endpoint: a listener that answers garbage
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
        code, _, err = cli("status", endpoint, "--timeout", "0.5")
        assert code == EXIT_UNREACHABLE and "no reply within 0.5 s" in err


def test_bad_requests_get_errors_and_the_endpoint_goes_on(tmp_path, loop_kind, sock_dir):
    address = f"127.0.0.1:{free_ports(1)[0]}"
    path = os.path.join(sock_dir, "admin.sock")
    with BlockingServer(1, address, tmp_path, _machine(), loop=loop_kind,
                        default_timeout_s=CALL_S) as bs:
        endpoint = bs.call(lambda s: admin.serve_admin(s, path), CALL_S)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(CALL_S)
            sock.connect(path)
            replies = sock.makefile("rb")
            for bad in (b"not json\n", b'{"op": "explode"}\n', b'{"op": "remove"}\n',
                        b"[1, 2]\n"):
                sock.sendall(bad)
                reply = json.loads(replies.readline())
                assert reply["ok"] is False and reply["error"] == "InvalidError", reply
            sock.sendall(b'{"op": "status"}\n')          # same connection: still served
            assert json.loads(replies.readline())["ok"] is True
            sock.sendall(b"x" * (admin.LINE_MAX_BYTES + 10) + b"\n")
            reply = json.loads(replies.readline())
            assert not reply["ok"] and "longer than" in reply["message"]
            assert replies.readline() == b""              # and that one is closed
        assert admin.status(path)["id"] == 1               # the endpoint goes on
        bs.call(lambda s: endpoint.close(), CALL_S)
        assert not os.path.exists(path)


def test_cli_as_a_process(tmp_path, sock_dir):
    address = f"127.0.0.1:{free_ports(1)[0]}"
    path = os.path.join(sock_dir, "admin.sock")
    with BlockingServer(1, address, tmp_path, _machine(), default_timeout_s=CALL_S) as bs:
        endpoint = bs.call(lambda s: admin.serve_admin(s, path), CALL_S)
        done = subprocess.run([sys.executable, "-m", "raftpy.cli", "status", path],
                              capture_output=True, text=True, timeout=60)
        bs.call(lambda s: endpoint.close(), CALL_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"server 1 at {address}: ")


def _machine():
    from server_harness import Counter
    return Counter()


def test_status_of_a_server_object_not_started(tmp_path, loop_kind, sock_dir):
    # The endpoint may start before the Server does: status says so, changes refuse.
    import asyncio
    path = os.path.join(sock_dir, "admin.sock")
    too_long = os.path.join(sock_dir, "x" * 120)

    async def go():
        server = Server(1, "127.0.0.1:1", tmp_path, _machine())
        with pytest.raises(InvalidError, match="at most 107 bytes"):
            await admin.serve_admin(server, too_long)
        endpoint = await admin.serve_admin(server, path)
        try:
            doc = await asyncio.to_thread(admin.status, path)
            assert doc["state"] == "UNAVAILABLE" and doc["configuration"] == []
            with pytest.raises(NotLeaderError):
                await asyncio.to_thread(admin.remove, path, 2)
        finally:
            await endpoint.close()
            await server.close()
    if loop_kind == "uvloop":
        import uvloop
        uvloop.run(asyncio.wait_for(go(), 60))
    else:
        asyncio.run(asyncio.wait_for(go(), 60))
