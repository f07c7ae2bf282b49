"""The client against a host that means harm, over real sockets: replies too long to hold, replies
trickled a byte at a time, a closed port, values nested without end, DTDs in any encoding.

The hostile hosts are small threaded socket servers in this file (the simulator is a well-behaved
XAPI); where a real XAPI answer is needed, the simulator gives it.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from os_xenapi.client import XenAPI
from os_xenapi.client import exception as exc
from os_xenapi.client.session import XenAPISession
from os_xenapi.client.transport import Timeout, Transport
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

LOGIN = "session.login_with_password"
MiB = 1 << 20
QUICK = Timeout(connect=2, read=2)


def jsonrpc_reply(result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()


def head(length: int | None, content_type: str = "application/json") -> bytes:
    framing = (b"Transfer-Encoding: chunked" if length is None else
               b"Content-Length: %d" % length)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%s\r\n\r\n"
            % (content_type.encode(), framing))


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --------------------------------------------------------------------------- the hostile host


class Host:
    """A TCP server on 127.0.0.1 that reads each HTTP request and calls ``answer(conn, body)``.

    ``stop`` is set when the test ends, so an answer that waits on it ends with the test. ``sent``
    counts the bytes the answers wrote with :meth:`send`; ``closed`` is set once the client has
    gone away in the middle of an answer.
    """

    def __init__(self, answer: Callable[[Host, socket.socket, bytes], None],
                 unix_path: str | None = None) -> None:
        self.answer = answer
        self.stop = threading.Event()
        self.closed = threading.Event()
        self.sent = 0
        self.requests: list[bytes] = []
        if unix_path is None:
            self._server = socket.create_server(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        else:
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(unix_path)
            self._server.listen()
            self.url = f"unix://{unix_path}"
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # the server socket was closed: the test is over
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while not self.stop.is_set():
                    body = _read_request(conn)
                    if body is None:
                        return
                    self.requests.append(body)
                    self.answer(self, conn, body)
            except OSError:
                self.closed.set()

    def __enter__(self) -> Host:
        self._accepting.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way (close does not)
        self._server.close()
        self._accepting.join(10)
        for conn in self._conns:  # a client that kept its connection open: end its recv()
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already
        for thread in self._threads:
            thread.join(10)


def _read_request(conn: socket.socket) -> bytes | None:
    """One request's body (by its Content-Length), or None at the end of the stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    header, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            return None
        body += piece
    return body


def serve(answer: Callable[[Host, socket.socket, bytes], None],
          unix_path: str | None = None) -> Host:
    return Host(answer, unix_path)


def fixed(reply: bytes, content_type: str = "application/json") -> Callable[..., None]:
    """An answer that sends ``reply`` with its Content-Length, to every request."""
    def answer(host: Host, conn: socket.socket, body: bytes) -> None:
        host.send(conn, head(len(reply), content_type) + reply)
    return answer


def chunked(reply: bytes, piece: int = 65536) -> Callable[..., None]:
    """An answer that sends ``reply`` chunked, ``piece`` bytes a chunk."""
    def answer(host: Host, conn: socket.socket, body: bytes) -> None:
        host.send(conn, head(None))
        for start in range(0, len(reply), piece):
            host.send(conn, chunk(reply[start:start + piece]))
        host.send(conn, b"0\r\n\r\n")
    return answer


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

TRICKLE = 0.2  # seconds between two bytes: well inside any socket read timeout used here


def trickled(where: str) -> Callable[..., None]:
    """An answer that sends its bytes one at a time, TRICKLE s apart, until the test ends:
    from the status line on (``where="headers"``) or once the headers are out (``"body"``)."""
    def answer(host: Host, conn: socket.socket, body: bytes) -> None:
        reply = jsonrpc_reply("OpaqueRef:" + "t" * 4000)
        message = head(len(reply)) + reply
        if where == "body":
            start = len(head(len(reply)))
            host.send(conn, message[:start])
            message = message[start:]
        for index in range(len(message)):
            host.send(conn, message[index:index + 1])
            if host.stop.wait(TRICKLE):
                return
    return answer


def outcome_within(seconds: float, call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    """(what ``call`` raised or None, seconds it took), failing the test if it is still running
    after ``seconds``: the thread is left to end when the hostile host stops."""
    result: list[Any] = []

    def run() -> None:
        started = time.monotonic()
        try:
            call()
            result.append((None, time.monotonic() - started))
        except BaseException as error:  # noqa: BLE001 - handed to the test
            result.append((error, time.monotonic() - started))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"still waiting after {seconds} s"
    return result[0]


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


class TrickledTLS:
    """A TLS server whose side of the handshake comes one byte every TRICKLE s."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.stop = threading.Event()
        self.handshake_bytes = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(TRICKLE)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
            while not self.stop.is_set():
                try:
                    tls.do_handshake()
                    return  # not reached while the client gives up first
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLError, OSError):
                    return
                pending = outgoing.read()
                try:
                    for index in range(len(pending)):
                        conn.sendall(pending[index:index + 1])
                        self.handshake_bytes += 1
                        if self.stop.wait(TRICKLE):
                            return
                    incoming.write(conn.recv(65536))
                except TimeoutError:
                    continue
                except OSError:
                    return

    def __enter__(self) -> TrickledTLS:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(10)


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


# --------------------------------------------------------------------------- a closed port


def closed_port_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_a_closed_port_is_one_connection_refused_error_naming_the_url(
    caplog: pytest.LogCaptureFixture
) -> None:
    url = closed_port_url()
    caplog.set_level(logging.WARNING, logger="os_xenapi")
    started = time.monotonic()
    with pytest.raises(exc.ConnectionRefused) as info:
        XenAPISession(url, "root", "pw")
    assert time.monotonic() - started < 2  # no rounds of looking for a master elsewhere
    assert "connection refused" in str(info.value) and url in str(info.value)
    assert not info.value.may_have_executed
    assert [record.getMessage() for record in caplog.records] == []


def test_the_sdk_session_on_a_closed_port_says_connection_refused_too() -> None:
    url = closed_port_url()
    with pytest.raises(exc.ConnectionRefused, match=f"{url}: connection refused"):
        XenAPI.Session(url).xenapi.login_with_password("root", "pw", "2.21", "hostile")


def test_a_missing_unix_socket_is_refused_naming_the_path(tmp_path: Any) -> None:
    missing = tmp_path / "xapi"
    with pytest.raises(exc.ConnectionRefused, match=f"connection refused \\(no socket at {missing}"):
        XenAPISession(f"unix://{missing}", "root", "pw")


def test_a_pool_of_one_whose_xapi_went_away_is_refused_without_a_failover(
    sim: Simulator
) -> None:
    with XenAPISession(sim.url, sim.username, sim.password, "hostile",
                       plugin_version_check=False) as session:
        sim.set_host_reachable(0, False)
        try:
            with pytest.raises(exc.ConnectionRefused, match="connection refused"):
                session.VM.get_all()
            assert session.stats.failovers == 0
        finally:
            sim.set_host_reachable(0, True)
        assert session.VM.get_all()


# --------------------------------------------------------------------------- odd answers


def xmlrpc_success(value_xml: str) -> bytes:
    return ("<methodResponse><params><param><value><struct><member><name>Status</name><value>"
            f"Success</value></member><member><name>Value</name>{value_xml}</member></struct>"
            "</value></param></params></methodResponse>").encode()


@pytest.mark.parametrize("result", [42, None, ["OpaqueRef:a"], {"ref": "OpaqueRef:a"}, ""],
                         ids=["int", "null", "array", "object", "empty"])
def test_a_login_whose_result_is_not_a_session_ref_is_a_protocol_error(result: Any) -> None:
    with serve(fixed(jsonrpc_reply(result))) as host:
        with Transport(host.url, protocol="jsonrpc") as transport:
            with pytest.raises(exc.ProtocolError, match="not a session reference"):
                transport.call(LOGIN, ["root", "pw"])
        with pytest.raises(exc.ProtocolError, match="not a session reference"):
            XenAPISession(host.url, "root", "pw")


def test_the_sdk_session_refuses_a_login_answered_with_a_struct() -> None:
    reply = xmlrpc_success("<value><struct><member><name>a</name><value>b</value></member>"
                           "</struct></value>")
    with serve(fixed(reply, "text/xml")) as host:
        session = XenAPI.Session(host.url)
        with pytest.raises(exc.ProtocolError, match="dict, not a session reference"):
            session.xenapi.login_with_password("root", "pw", "2.21", "hostile")
        assert session.handle is None


def test_a_utf16_reply_with_a_comment_before_its_doctype_is_refused_over_the_wire() -> None:
    reply = ('<!-- hi --><!DOCTYPE methodResponse [<!ENTITY ref "OpaqueRef:EXPANDED">]>'
             + xmlrpc_success("<value>&ref;</value>").decode()).encode("utf-16")
    with serve(fixed(reply, "text/xml")) as host:
        with pytest.raises(exc.ProtocolError, match="DOCTYPE"):
            XenAPI.Session(host.url).xenapi.login_with_password("root", "pw", "2.21", "hostile")


def test_deep_nesting_over_the_wire_is_a_protocol_error_in_both_protocols() -> None:
    deep_json = b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    deep_xml = xmlrpc_success("<value><array><data>" * 1000 + "</data></array></value>" * 1000)
    with serve(fixed(deep_json)) as json_host, serve(fixed(deep_xml, "text/xml")) as xml_host:
        for url, protocol in ((json_host.url, "jsonrpc"), (xml_host.url, "xmlrpc")):
            with Transport(url, protocol=protocol) as transport:
                with pytest.raises(exc.ProtocolError, match="nested"):
                    transport.call("VM.get_all", ["OpaqueRef:s"])


# --------------------------------------------------------------------------- the URL as given


def test_errors_name_the_url_as_the_caller_wrote_it() -> None:
    port = closed_port_url().rpartition(":")[2]
    given = f"HTTP://LocalHost:{port}/"
    with pytest.raises(exc.ConnectionRefused) as info:
        XenAPISession(given, "root", "pw")
    assert f"cannot connect to {given}: connection refused" in str(info.value)


def test_a_closed_session_names_the_url_as_given(sim: Simulator) -> None:
    given = sim.url + "/"
    session = XenAPISession(given, sim.username, sim.password, "hostile",
                            plugin_version_check=False)
    session.close()
    with pytest.raises(exc.SessionClosed, match=f"for {given} is closed"):
        session.VM.get_all()
