"""What one client can make the simulator hold: sessions (XAPI's caps), connections (timeouts for
idle and slow ones) and request bodies (too deep or too large a value gets XAPI's answer)."""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import threading
import time
import xmlrpc.client
from urllib.parse import urlsplit

import pytest

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.values import DateTime

LONG_AGO = DateTime("20200101T00:00:00Z")


@pytest.fixture(scope="module")
def sim():
    with Simulator(auth_failure_delay=0) as running:
        yield running


def login(proxy: xmlrpc.client.ServerProxy, sim: Simulator, originator: str,
          user: str | None = None) -> str:
    reply = proxy.session.login_with_password(user or sim.username, sim.password, "1.0",
                                              originator)
    assert reply["Status"] == "Success", reply
    return reply["Value"]


def logins(sim: Simulator, originator: str, count: int, user: str | None = None) -> list[str]:
    """``count`` logins made on the simulator's loop in one go (the wire is tested by login())."""
    async def many() -> list[str]:
        return [await sim.xapi.call("session.login_with_password",
                                    [user or sim.username, sim.password, "1.0", originator])
                for _ in range(count)]
    return asyncio.run_coroutine_threadsafe(many(), sim.loop).result(timeout=60)


def alive(sim: Simulator, refs: list[str]) -> list[bool]:
    return sim.run(lambda xapi: [xapi.db.exists("session", ref) for ref in refs])


def call_status(proxy: xmlrpc.client.ServerProxy, session: str) -> list[str] | str:
    reply = proxy.pool.get_all(session)
    return reply["Status"] if reply["Status"] == "Success" else reply["ErrorDescription"]


def age(sim: Simulator, refs: list[str]) -> None:
    """Make ``refs`` last active long ago, as if idle for years."""
    def set_old(xapi):
        for ref in refs:
            xapi.db.tables["session"][ref]["last_active"] = LONG_AGO
    sim.run(set_old)


# -- sessions -----------------------------------------------------------------------------------


def test_the_501st_session_of_an_originator_ends_the_oldest(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    sessions = logins(sim, "flood", 500)
    assert all(alive(sim, sessions))
    newest = login(proxy, sim, "flood")
    assert alive(sim, sessions + [newest]) == [False] + [True] * 500
    assert call_status(proxy, sessions[0]) == ["SESSION_INVALID", sessions[0]]
    assert call_status(proxy, newest) == "Success"


def test_the_least_recently_active_session_goes_first(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    sessions = logins(sim, "busy", 500)
    age(sim, sessions)
    assert call_status(proxy, sessions[0]) == "Success"  # the first login is in use again
    login(proxy, sim, "busy")
    assert alive(sim, sessions[:3]) == [True, False, True]


def test_originators_are_counted_apart(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    other = login(proxy, sim, "quiet")
    logins(sim, "noisy", 501)
    assert alive(sim, [other]) == [True]


def test_a_session_with_a_pending_task_is_kept(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    working = login(proxy, sim, "worker")
    assert proxy.task.create(working, "long job", "")["Status"] == "Success"
    idle = login(proxy, sim, "worker")
    logins(sim, "worker", 500)  # 501 unused sessions now: one too many
    assert alive(sim, [working, idle]) == [True, False]


def test_root_sessions_without_an_originator_are_capped_at_400(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    sessions = [login(proxy, sim, "")] + logins(sim, "", 400)
    assert alive(sim, sessions[:2]) == [False, True]
    counted = sim.run(lambda xapi: sum(
        1 for record in xapi.db.all("session").values()
        if record["originator"] == "" and not record["pool"]))
    assert counted == 400


def test_sessions_of_another_user_are_capped_per_user_name() -> None:
    with Simulator(username="alice", password="pw", auth_failure_delay=0) as sim:
        proxy = xmlrpc.client.ServerProxy(sim.url)
        first = login(proxy, sim, "tool-0")
        for index in range(500):
            logins(sim, f"tool-{index + 1}", 1)  # other originators, the same user
        assert alive(sim, [first]) == [False]


# -- connections --------------------------------------------------------------------------------

SHORT = 0.5  # the timeouts of the simulator below, in seconds
SLACK = 2.0  # how much later than due a close may come on a busy machine


@pytest.fixture(scope="module")
def impatient():
    with Simulator(auth_failure_delay=0, idle_timeout=SHORT, body_timeout=SHORT) as running:
        yield running


def open_connection(sim: Simulator) -> socket.socket:
    parts = urlsplit(sim.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=SHORT + SLACK + 5)


def closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """(seconds until the server closed ``sock``, what it sent before closing)."""
    started = time.monotonic()
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return time.monotonic() - started, received


def trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Send ``data`` a byte every 50 ms until it is all sent, ``stop`` is set or the server
    closes the connection."""
    for byte in data:
        if stop.wait(0.05):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


def test_a_connection_that_sends_nothing_is_closed(impatient: Simulator) -> None:
    with open_connection(impatient) as sock:
        elapsed, received = closed_after(sock)
    assert received == b""
    assert SHORT * 0.8 <= elapsed < SHORT + SLACK


def test_headers_trickled_a_byte_at_a_time_are_cut_off(impatient: Simulator) -> None:
    head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 400 + b"\r\n\r\n"
    stop = threading.Event()
    with open_connection(impatient) as sock:
        sender = threading.Thread(target=trickle, args=(sock, head, stop), daemon=True)
        sender.start()
        try:
            elapsed, _ = closed_after(sock)
        finally:
            stop.set()
            sender.join()
    assert elapsed < SHORT + SLACK  # the whole head would take 20 s at this pace


def test_a_body_trickled_a_byte_at_a_time_gets_408(impatient: Simulator) -> None:
    body = xmlrpc.client.dumps((), "system.listMethods").encode()
    head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    stop = threading.Event()
    with open_connection(impatient) as sock:
        sock.sendall(head)
        sender = threading.Thread(target=trickle, args=(sock, body, stop), daemon=True)
        sender.start()
        try:
            elapsed, received = closed_after(sock)
        finally:
            stop.set()
            sender.join()
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"Timed out waiting for the request" in received
    assert elapsed < SHORT + SLACK


def test_a_control_body_trickled_a_byte_at_a_time_gets_408(impatient: Simulator) -> None:
    body = b'{"method": "VM.start", "action": "fail", "error": ["SLOW"]}'
    head = (f"POST /_simulator/faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    stop = threading.Event()
    with open_connection(impatient) as sock:
        sock.sendall(head)
        sender = threading.Thread(target=trickle, args=(sock, body, stop), daemon=True)
        sender.start()
        try:
            elapsed, received = closed_after(sock)
        finally:
            stop.set()
            sender.join()
    assert received.startswith(b"HTTP/1.1 408 ")
    assert elapsed < SHORT + SLACK
    assert impatient.faults.list() == []


def test_an_idle_keep_alive_connection_is_closed(impatient: Simulator) -> None:
    body = xmlrpc.client.dumps((), "system.listMethods").encode()
    with open_connection(impatient) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        elapsed, received = closed_after(sock)  # the reply comes at once, then the wait
    assert received.startswith(b"HTTP/1.1 200 ")
    assert SHORT * 0.8 <= elapsed < SHORT + SLACK


def test_a_long_poll_being_served_is_not_idle(impatient: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(impatient.url)
    session = login(proxy, impatient, "poller")
    token = proxy.event_from(session, ["VM"], "", 0.0)["Value"]["token"]
    started = time.monotonic()
    reply = proxy.event_from(session, ["VM"], token, SHORT * 3)
    assert reply["Status"] == "Success"
    assert time.monotonic() - started >= SHORT * 3 * 0.9


def test_serving_goes_on_after_slow_clients(impatient: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(impatient.url)
    assert proxy.system.listMethods()  # plain clients are not affected


@pytest.mark.parametrize("name", ["idle_timeout", "body_timeout"])
@pytest.mark.parametrize("seconds", [0, -1, "5"])
def test_a_timeout_must_be_a_positive_number(name: str, seconds: object) -> None:
    with pytest.raises(ValueError, match=name):
        Simulator(**{name: seconds})


# -- request bodies -----------------------------------------------------------------------------

DEEP_JSON = (b'{"method": "system.isAlive:x", "id": 1, "params": ['
             + b"[" * 50_000 + b"]" * 50_000 + b"]}")
DEEP_XML = (b"<methodCall><methodName>system.isAlive:x</methodName><params><param>"
            + b"<value><array><data>" * 5000 + b"</data></array></value>" * 5000
            + b"</param></params></methodCall>")
LONG_INT = (b"<methodCall><methodName>system.isAlive:x</methodName><params><param><value><int>"
            + b"9" * 5000 + b"</int></value></param></params></methodCall>")
BIG_JSON_INT = b'{"method": "system.isAlive:x", "id": 1, "params": [18446744073709551616]}'


def post(sim: Simulator, path: str, body: bytes) -> tuple[int, str, bytes]:
    parts = urlsplit(sim.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        content_type = "application/json" if path == "/jsonrpc" else "text/xml"
        conn.request("POST", path, body, {"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path,body,says", [
    ("/jsonrpc", DEEP_JSON, b"Jsonrpc.Malformed_method_request(values nested more than"),
    ("/", DEEP_XML, b"Xmlrpc.Parse_error(values nested more than"),
    ("/", LONG_INT, b"Failure(&quot;Int64.of_string&quot;)"),
    ("/jsonrpc", BIG_JSON_INT, b"Failure(&quot;Int64.of_string&quot;)"),
], ids=["deep-json", "deep-xml", "5000-digit-int", "json-int-past-64-bits"])
def test_a_body_past_the_parsers_limits_gets_xapis_parse_error_page(
        sim: Simulator, caplog: pytest.LogCaptureFixture, path: str, body: bytes,
        says: bytes) -> None:
    with caplog.at_level(logging.WARNING):
        status, content_type, reply = post(sim, path, body)
    assert status == 500
    assert content_type.startswith("text/html")
    assert reply.startswith(b"<html><body><h1>HTTP 500 internal server error</h1>")
    assert says in reply
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    assert xmlrpc.client.ServerProxy(sim.url).system.listMethods()
