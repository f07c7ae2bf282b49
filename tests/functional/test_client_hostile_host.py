"""The client against a host that means harm, over real sockets: replies too long to hold and
replies trickled a byte at a time (the whole-call deadline). The hostile hosts are in
``hostile.py``; where a real XAPI answer is needed, the simulator gives it."""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
from hostile import (
    Host,
    TrickledTLS,
    chunked,
    fixed,
    head,
    jsonrpc_reply,
    outcome_within,
    read_request,
    serve,
    trickled,
)

from os_xenapi.client import XenAPI
from os_xenapi.client import exception as exc
from os_xenapi.client.session import XenAPISession
from os_xenapi.client.transport import Timeout, Transport
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

LOGIN = "session.login_with_password"
MiB = 1 << 20
QUICK = Timeout(connect=2, read=2)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=1, vms=3, auth_failure_delay=0) as simulator:
        yield simulator


# --------------------------------------------------------------------------- replies too long


def test_a_reply_announced_longer_than_the_limit_is_refused_before_reading_it() -> None:
    def announce_a_gib(host: Host, conn: socket.socket, body: bytes) -> None:
        host.send(conn, head(1 << 30) + b'{"jsonrpc":"2.0","id":1,"result":"' + b"A" * MiB)
        host.stop.wait(10)  # the rest never comes: a client that waits for it times out

    with serve(announce_a_gib) as host, Transport(host.url, protocol="jsonrpc",
                                                  timeout=QUICK) as transport:
        with pytest.raises(exc.ProtocolError, match=r"max_reply_size \(256 MiB\)") as info:
            transport.call("VM.get_all_records", ["OpaqueRef:s"])
    assert "1073741824 bytes" in str(info.value) and host.url in str(info.value)


def test_a_chunked_reply_is_counted_and_refused_past_the_limit() -> None:
    endless = b'{"jsonrpc":"2.0","id":1,"result":"' + b"A" * (64 * MiB)
    with serve(chunked(endless, piece=MiB)) as host, Transport(
            host.url, protocol="jsonrpc", max_reply_size=MiB, timeout=QUICK) as transport:
        with pytest.raises(exc.ProtocolError, match=r"max_reply_size \(1 MiB\)"):
            transport.call("VM.get_all_records", ["OpaqueRef:s"])
        assert host.closed.wait(10)  # the client hung up on the rest
    assert host.sent < 32 * MiB  # what loopback buffers hold, not the 64 MiB offered


@pytest.mark.parametrize("framing", [fixed, chunked], ids=["content-length", "chunked"])
def test_a_reply_of_exactly_the_limit_is_read_and_one_byte_more_is_not(
    framing: Callable[[bytes], Callable[..., None]]
) -> None:
    reply = jsonrpc_reply("OpaqueRef:" + "x" * 200_000)
    with serve(framing(reply)) as host:
        with Transport(host.url, protocol="jsonrpc", max_reply_size=len(reply)) as transport:
            assert transport.call(LOGIN, ["root", "pw"]) == "OpaqueRef:" + "x" * 200_000
        with Transport(host.url, protocol="jsonrpc", max_reply_size=len(reply) - 1) as transport:
            with pytest.raises(exc.ProtocolError, match="max_reply_size"):
                transport.call(LOGIN, ["root", "pw"])


def test_after_a_refused_reply_the_transport_goes_on_with_a_new_connection(
    sim: Simulator
) -> None:
    with Transport(sim.url, protocol="xmlrpc", max_reply_size=64 * 1024) as transport:
        session = transport.call(LOGIN, [sim.username, sim.password, "2.21", "hostile"])
        with pytest.raises(exc.ProtocolError, match=r"max_reply_size \(64 KiB\)"):
            transport.call("VM.get_all_records", [session])
        assert transport.call("VM.get_all", [session])
        transport.call("session.logout", [session])


def test_xenapisession_and_the_sdk_session_take_the_limit_too(sim: Simulator) -> None:
    with pytest.raises(exc.ProtocolError, match=r"max_reply_size \(1 KiB\)"):
        XenAPISession(sim.url, sim.username, sim.password, "hostile", max_reply_size=1024)
    sdk = XenAPI.Session(sim.url, max_reply_size=1024)
    sdk.xenapi.login_with_password(sim.username, sim.password, "2.21", "hostile")
    try:
        with pytest.raises(exc.ProtocolError, match=r"max_reply_size \(1 KiB\)"):
            sdk.xenapi.VM.get_all_records()
    finally:
        sdk.xenapi.session.logout()
        sdk.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "256"])
def test_a_bad_limit_is_refused_by_name(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_reply_size"):
        Transport("http://127.0.0.1:1", max_reply_size=bad)


# --------------------------------------------------------------------------- replies trickled


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickled_reply_ends_in_a_read_timeout_when_the_timeout_is_up(where: str) -> None:
    with serve(trickled(where)) as host, Transport(host.url, protocol="jsonrpc", timeout=Timeout(connect=2, read=1)) as transport:
        error, took = outcome_within(5, lambda: transport.call("VM.get_all", ["OpaqueRef:s"]))
    assert isinstance(error, exc.ReadTimeout), error
    assert "within 1 s" in str(error) and error.may_have_executed
    assert 1 <= took < 2


def test_the_xmlrpc_fallback_of_auto_is_bounded_by_the_same_deadline() -> None:
    trickle = trickled("body")

    def no_jsonrpc(host: Host, conn: socket.socket, body: bytes) -> None:
        if body.startswith(b"{"):
            host.send(conn, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        else:
            trickle(host, conn, body)

    with serve(no_jsonrpc) as host, Transport(host.url, timeout=Timeout(read=1)) as transport:
        error, took = outcome_within(5, lambda: transport.call("VM.get_all", ["OpaqueRef:s"]))
    assert isinstance(error, exc.ReadTimeout), error
    assert transport.protocol == "xmlrpc" and took < 2


def test_xenapisession_timeout_bounds_a_trickled_login() -> None:
    with serve(trickled("headers")) as host:
        error, took = outcome_within(
            5, lambda: XenAPISession(host.url, "root", "pw", timeout=1))
    assert isinstance(error, exc.ReadTimeout), error
    assert took < 2


def test_a_trickled_reply_over_the_unix_socket_times_out_too(tmp_path: Any) -> None:
    with serve(trickled("body"), unix_path=str(tmp_path / "xapi")) as host:
        with Transport(host.url, protocol="jsonrpc", timeout=Timeout(read=1)) as transport:
            error, took = outcome_within(5, lambda: transport.call("VM.get_all", ["OpaqueRef:s"]))
    assert isinstance(error, exc.ReadTimeout), error
    assert took < 2


def test_a_trickled_tls_handshake_is_a_connect_timeout_and_nothing_is_sent(
    tmp_path: Any
) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with TrickledTLS(context) as host, Transport(host.url, verify=str(ca_file),
                                                 timeout=Timeout(read=1)) as transport:
        error, took = outcome_within(5, lambda: transport.call("VM.get_all", ["OpaqueRef:s"]))
    assert isinstance(error, exc.ConnectTimeout), error
    assert not error.may_have_executed and took < 2
    assert host.handshake_bytes > 0  # the server was trickling, not silent


def test_a_finished_calls_deadline_never_cuts_the_next_call_on_its_connection(
    sim: Simulator
) -> None:
    with Transport(sim.url, protocol="jsonrpc", maxsize=1, timeout=Timeout(read=0.5)) as transport:
        session = transport.call(LOGIN, [sim.username, sim.password, "2.21", "hostile"])
        transport.call("VM.get_all", [session])  # its deadline is 0.5 s from now
        sim.faults.add(Fault.latency("VM.get_all_records", 1.0, nth=1))
        records = transport.call("VM.get_all_records", [session], timeout=Timeout(read=5))
        assert len(records) > 3  # answered on the same kept-alive connection after 1 s
        transport.call("session.logout", [session])


def test_event_from_gets_its_own_wait_beyond_the_read_timeout(sim: Simulator) -> None:
    with XenAPISession(sim.url, sim.username, sim.password, "hostile", plugin_version_check=False,
                       timeout=Timeout(connect=2, read=0.3)) as session:
        token = session.call_xenapi("event.from", ["vm"], "", 0.0)["token"]
        started = time.monotonic()
        nothing = session.call_xenapi("event.from", ["vm"], token, 1.0)
        assert nothing["events"] == [] and time.monotonic() - started >= 1.0


def test_a_connect_slower_than_the_read_timeout_leaves_the_read_its_whole_time() -> None:
    # A TCP listener with a backlog of 0 whose queue another connection fills: Linux drops the
    # client's SYN, which TCP sends again a second later, when the queue has room. The read
    # timeout (0.5 s) counts from the connection made; the connect timeout (10 s) bounds the
    # connect.
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    done = threading.Event()

    def serve_late() -> None:
        done.wait(0.3)
        server.accept()[0].close()  # the filler, taking its place in the queue away
        conn, _ = server.accept()
        with conn:
            read_request(conn)
            reply = jsonrpc_reply(["OpaqueRef:vm"])
            conn.sendall(head(len(reply)) + reply)

    thread = threading.Thread(target=serve_late, daemon=True)
    thread.start()
    try:
        with Transport(f"http://127.0.0.1:{port}", protocol="jsonrpc",
                       timeout=Timeout(connect=10, read=0.5)) as transport:
            error, took = outcome_within(
                8, lambda: transport.call("VM.get_all", ["OpaqueRef:s"]))
    finally:
        done.set()
        thread.join(10)
        filler.close()
        server.close()
    assert error is None, error
    assert took >= 0.5  # the connect did wait for the queue


def test_a_compressed_reply_is_refused_whatever_its_size() -> None:
    # 1 KiB of gzip inflating to 1 MiB: XAPI never compresses, and no decoder runs on a reply.
    packed = gzip.compress(b'{"jsonrpc":"2.0","id":1,"result":"' + b"A" * MiB + b'"}')

    def answer(host: Host, conn: socket.socket, body: bytes) -> None:
        host.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(packed), packed))

    with serve(answer) as host, Transport(host.url, protocol="jsonrpc",
                                          timeout=QUICK) as transport:
        with pytest.raises(exc.ProtocolError, match=r"compressed \(Content-Encoding: gzip\)"):
            transport.call("VM.get_all", ["OpaqueRef:s"])
