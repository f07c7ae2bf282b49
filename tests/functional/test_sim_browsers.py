"""No web page can drive the simulator: no CORS headers, foreign ``Origin`` refused, and the
control API only for JSON requests (and, off loopback, only with the pool's credentials).

Browsers are the attacker here: any page a developer opens can send a "simple" cross-site
request (a form POST, ``fetch`` with ``mode: "no-cors"``) to 127.0.0.1. These tests send what a
browser would send, over real sockets, and check what comes back.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import xmlrpc.client
from typing import Any
from urllib.parse import urlsplit

import pytest

from os_xenapi.simulator import Simulator

CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Headers",
                "Access-Control-Allow-Methods", "Access-Control-Allow-Credentials")


def request(url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request on a fresh connection."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def xml_call(method: str, *params: Any) -> bytes:
    return xmlrpc.client.dumps(params, method).encode()


def login_json(sim: Simulator) -> bytes:
    return json.dumps({"method": "session.login_with_password", "id": 1,
                       "params": [sim.username, sim.password, "1.0", "page"]}).encode()


@pytest.fixture(scope="module")
def sim():
    with Simulator(auth_failure_delay=0) as running:
        yield running


# -- no CORS headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("path,body,content_type", [
    ("/", xml_call("system.listMethods"), "text/xml"),
    ("/jsonrpc", b'{"method": "system.listMethods", "params": [], "id": 1}', "application/json"),
    ("/", b"<methodCall><oops", "text/xml"),
], ids=["xmlrpc", "jsonrpc", "parse-error"])
def test_replies_carry_no_cors_headers(sim: Simulator, path: str, body: bytes,
                                       content_type: str) -> None:
    _status, headers, _ = request(sim.url, "POST", path, body, {"Content-Type": content_type})
    assert not [name for name in CORS_HEADERS if name in headers], headers


def test_a_cors_preflight_gets_no_permission(sim: Simulator) -> None:
    status, headers, _ = request(sim.url, "OPTIONS", "/jsonrpc", headers={
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert not [name for name in CORS_HEADERS if name in headers], (status, headers)


# -- foreign origins ----------------------------------------------------------------------------

EVIL = "http://evil.example"


def session_count(sim: Simulator) -> int:
    return sim.run(lambda xapi: len(xapi.db.all("session")))


@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1", "https://127.0.0.1"],
                         ids=["other-site", "null", "other-port", "other-scheme"])
def test_a_login_form_posted_by_a_web_page_is_refused(sim: Simulator, origin: str) -> None:
    before = session_count(sim)
    body = xml_call("session.login_with_password", sim.username, sim.password, "1.0", "page")
    status, headers, reply = request(sim.url, "POST", "/", body, {
        "Origin": origin, "Content-Type": "text/plain"})  # what a cross-site form can send
    assert status == 403
    assert headers["Content-Type"].startswith("text/html")
    assert origin.encode() in reply
    assert session_count(sim) == before


def test_a_jsonrpc_call_from_a_web_page_is_refused(sim: Simulator) -> None:
    status, _, _ = request(sim.url, "POST", "/jsonrpc", login_json(sim),
                           {"Origin": EVIL, "Content-Type": "text/plain"})
    assert status == 403


def test_a_rebound_host_name_does_not_make_a_page_same_origin(sim: Simulator) -> None:
    port = urlsplit(sim.url).port
    status, _, _ = request(sim.url, "POST", "/jsonrpc", login_json(sim), {
        "Origin": f"http://rebind.example:{port}", "Host": f"rebind.example:{port}"})
    assert status == 403


@pytest.mark.parametrize("path", ["/_simulator/hosts", "/_simulator/faults", "/export_raw_vdi"])
def test_a_read_for_a_rebound_host_name_is_refused_without_any_origin(sim: Simulator,
                                                                      path: str) -> None:
    # A browser sends no Origin with a same-origin GET: the Host header gives the page away.
    port = urlsplit(sim.url).port
    status, _, _ = request(sim.url, "GET", path, None, {"Host": f"rebind.example:{port}"})
    assert status == 403


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "localhost:9000",
                                  "127.0.0.1", "[::1]:9000"])
def test_a_read_naming_an_address_or_localhost_is_served(sim: Simulator, host: str) -> None:
    # Through a tunnel the port may be another: only a host name can have been rebound.
    status, _, _ = request(sim.url, "GET", "/_simulator/hosts", None,
                           {"Host": host.format(port=urlsplit(sim.url).port)})
    assert status == 200


@pytest.mark.parametrize("origin", ["{url}", "http://localhost:{port}"], ids=["url", "localhost"])
def test_a_page_of_the_simulators_own_origin_is_served(sim: Simulator, origin: str) -> None:
    origin = origin.format(url=sim.url, port=urlsplit(sim.url).port)
    status, _, reply = request(sim.url, "POST", "/jsonrpc", login_json(sim),
                               {"Origin": origin, "Content-Type": "application/json"})
    assert status == 200
    assert json.loads(reply)["result"].startswith("OpaqueRef:")


def test_a_control_request_from_a_web_page_is_refused(sim: Simulator) -> None:
    status, _, reply = request(sim.url, "POST", "/_simulator/sessions/expire", b"{}",
                               {"Origin": EVIL, "Content-Type": "application/json"})
    assert status == 403
    assert EVIL in json.loads(reply)["error"]


# -- the control API wants JSON -----------------------------------------------------------------


def fault_count(sim: Simulator) -> int:
    return len(sim.faults.list())


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"],
                         ids=["none", "text", "form", "multipart"])
def test_a_control_change_not_declared_json_is_refused(sim: Simulator,
                                                       content_type: str | None) -> None:
    spec = json.dumps({"method": "VM.start", "action": "fail", "error": ["X"]}).encode()
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, _, reply = request(sim.url, "POST", "/_simulator/faults", spec, headers)
    assert status == 415
    error = json.loads(reply)["error"]
    assert "application/json" in error
    assert (content_type or "no Content-Type") in error
    assert fault_count(sim) == 0


def test_a_restart_without_json_is_refused_on_the_unix_socket_too(sim: Simulator) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(sim.unix_path)
        sock.sendall(b"POST /_simulator/restart HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 415 ")


def test_control_reads_need_no_content_type(sim: Simulator) -> None:
    status, _, reply = request(sim.url, "GET", "/_simulator/hosts")
    assert status == 200
    assert json.loads(reply)["hosts"][0]["master"] is True


def test_a_json_control_change_from_loopback_needs_no_credentials(sim: Simulator) -> None:
    sim.add_fault("VM.start", "fail", error=["X"])
    status, _, reply = request(sim.url, "DELETE", "/_simulator/faults", None,
                               {"Content-Type": "application/json"})
    assert status == 200
    assert [fault["method"] for fault in json.loads(reply)["removed"]] == ["VM.start"]
    assert fault_count(sim) == 0


# -- off loopback, the control API wants the pool's credentials ---------------------------------


def network_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, or None if it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def exposed():
    address = network_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to listen on")
    with Simulator(listen=address, auth_failure_delay=0, password="s3cret") as running:
        yield running


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def test_off_loopback_a_control_request_without_credentials_is_refused(exposed: Simulator) -> None:
    status, headers, reply = request(exposed.url, "POST", "/_simulator/sessions/expire", b"{}",
                                     {"Content-Type": "application/json"})
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert urlsplit(exposed.url).hostname in json.loads(reply)["error"]


def test_off_loopback_control_reads_need_credentials_too(exposed: Simulator) -> None:
    assert request(exposed.url, "GET", "/_simulator/faults")[0] == 401


def test_off_loopback_basic_auth_with_the_pools_password_is_served(exposed: Simulator) -> None:
    status, _, reply = request(exposed.url, "GET", "/_simulator/hosts", None,
                               basic(exposed.username, exposed.password))
    assert status == 200
    assert json.loads(reply)["hosts"][0]["address"] == urlsplit(exposed.url).hostname


@pytest.mark.parametrize("user,password", [("root", "xenroot"), ("nobody", "s3cret")],
                         ids=["default-password", "other-user"])
def test_off_loopback_wrong_credentials_are_refused(exposed: Simulator, user: str,
                                                    password: str) -> None:
    status, _, reply = request(exposed.url, "GET", "/_simulator/hosts", None,
                               basic(user, password))
    assert status == 401
    assert password not in json.loads(reply)["error"]  # a secret never comes back


def live_session(sim: Simulator) -> str:
    status, _, reply = request(sim.url, "POST", "/jsonrpc", login_json(sim),
                               {"Content-Type": "application/json"})
    assert status == 200
    return json.loads(reply)["result"]


def test_off_loopback_a_session_ref_in_the_query_is_served(exposed: Simulator) -> None:
    session = live_session(exposed)
    status, _, _ = request(exposed.url, "GET", f"/_simulator/hosts?session_id={session}")
    assert status == 200


def test_off_loopback_a_session_ref_in_a_cookie_is_served(exposed: Simulator) -> None:
    session = live_session(exposed)
    status, _, _ = request(exposed.url, "DELETE", "/_simulator/faults", None,
                           {"Cookie": f"session_id={session}", "Content-Type": "application/json"})
    assert status == 200


def test_off_loopback_a_dead_session_ref_is_refused(exposed: Simulator) -> None:
    session = live_session(exposed)
    exposed.expire_session(session)
    status, _, _ = request(exposed.url, "GET", f"/_simulator/hosts?session_id={session}")
    assert status == 401


def test_off_loopback_credentials_do_not_excuse_a_request_that_is_not_json(
        exposed: Simulator) -> None:
    headers = basic(exposed.username, exposed.password)
    headers["Content-Type"] = "text/plain"
    assert request(exposed.url, "POST", "/_simulator/restart", b"", headers)[0] == 415
