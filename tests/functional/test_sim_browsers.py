"""No web page can drive the simulator: no CORS headers, foreign ``Origin`` refused, and the
control API only for JSON requests (and, off loopback, only with the pool's credentials).

Browsers are the attacker here: any page a developer opens can send a "simple" cross-site
request (a form POST, ``fetch`` with ``mode: "no-cors"``) to 127.0.0.1. These tests send what a
browser would send, over real sockets, and check what comes back.
"""

from __future__ import annotations

import http.client
import json
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
    import xmlrpc.client

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
