"""The client transport over real sockets: the simulator over HTTP, HTTPS (trustme certificates)
and its Unix socket, plus small stub servers for what the simulator does not do (no JSON-RPC,
silence, a dropped connection, IPv6)."""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from os_xenapi.client import exception as exc
from os_xenapi.client.transport import InsecureTransportWarning, Timeout, Transport
from os_xenapi.simulator import Simulator

LOGIN = "session.login_with_password"
QUICK = Timeout(connect=2, read=0.5)
XML_SUCCESS = (b'<?xml version="1.0"?><methodResponse><params><param><value><struct><member>'
               b"<name>Status</name><value>Success</value></member><member><name>Value</name>"
               b"<value>OpaqueRef:0ld</value></member></struct></value></param></params>"
               b"</methodResponse>")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=1, vms=1, auth_failure_delay=0) as simulator:
        yield simulator


def login(transport: Transport, sim: Simulator) -> str:
    return transport.call(LOGIN, [sim.username, sim.password, "2.21", "os-xenapi tests"])


def first_vm(transport: Transport, session: str) -> str:
    records = transport.call("VM.get_all_records", [session])
    return next(ref for ref, vm in records.items()
                if not vm["is_a_template"] and not vm["is_control_domain"])


# --------------------------------------------------------------------------- stub servers


class Stub:
    """A threaded HTTP server on ``host`` that answers POSTs with ``answer(path, body)``."""

    def __init__(self, answer: Callable[[str, bytes], tuple[int, str, bytes]],
                 host: str = "127.0.0.1", family: int = socket.AF_INET,
                 context: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, str | None]] = []  # (path, Host header)
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append((self.path, self.headers.get("Host")))
                status, content_type, reply = answer(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self.server = Server((host, 0), Handler)
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def xmlrpc_only(path: str, body: bytes) -> tuple[int, str, bytes]:
    """A host without JSON-RPC, as a stdlib XML-RPC server is: 404 off its paths."""
    if path != "/":
        return 404, "text/plain", b"Not Found"
    return 200, "text/xml", XML_SUCCESS


def old_xapi(path: str, body: bytes) -> tuple[int, str, bytes]:
    """An XAPI from before JSON-RPC: every path reaches the XML-RPC parser."""
    if body.startswith(b"{"):
        return 500, "text/html", b"<html><body>Xmlrpc.Parse_error(...)</body></html>"
    return 200, "text/xml", XML_SUCCESS


# --------------------------------------------------------------------------- protocols


def test_auto_settles_on_jsonrpc_when_the_host_serves_it(sim: Simulator) -> None:
    with Transport(sim.url) as transport:
        assert transport.protocol is None
        assert login(transport, sim).startswith("OpaqueRef:")
        assert transport.protocol == "jsonrpc"


@pytest.mark.parametrize("protocol", ["jsonrpc", "xmlrpc"])
def test_forced_protocol_calls_the_simulator(sim: Simulator, protocol: str) -> None:
    with Transport(sim.url, protocol=protocol) as transport:
        session = login(transport, sim)
        assert transport.call("session.get_this_host", [session, session]).startswith("OpaqueRef:")
        assert transport.protocol == protocol


def test_xmlrpc_leaves_api_ints_as_strings_and_jsonrpc_gives_numbers(sim: Simulator) -> None:
    with Transport(sim.url, protocol="xmlrpc") as xml, Transport(sim.url, protocol="jsonrpc") as js:
        session = login(xml, sim)
        vm = first_vm(xml, session)
        assert isinstance(xml.call("VM.get_VCPUs_max", [session, vm]), str)
        assert isinstance(js.call("VM.get_VCPUs_max", [session, vm]), int)


def test_auto_falls_back_to_xmlrpc_when_jsonrpc_is_not_found() -> None:
    with Stub(xmlrpc_only) as stub, Transport(f"http://127.0.0.1:{stub.port}") as transport:
        assert transport.call(LOGIN, ["root", "pw"]) == "OpaqueRef:0ld"
        assert transport.protocol == "xmlrpc"
        assert [path for path, _ in stub.requests] == ["/jsonrpc", "/"]


def test_auto_falls_back_when_an_old_xapi_cannot_parse_json() -> None:
    with Stub(old_xapi) as stub, Transport(f"http://127.0.0.1:{stub.port}") as transport:
        transport.call(LOGIN, ["root", "pw"])
        transport.call("VM.get_all", ["OpaqueRef:0ld"])
        assert transport.protocol == "xmlrpc"
        assert [path for path, _ in stub.requests] == ["/jsonrpc", "/", "/"]


def test_forced_jsonrpc_reports_a_host_without_it() -> None:
    with Stub(xmlrpc_only) as stub, Transport(f"http://127.0.0.1:{stub.port}",
                                              protocol="jsonrpc") as transport:
        with pytest.raises(exc.HTTPStatusError, match="HTTP 404") as info:
            transport.call("VM.get_all", ["OpaqueRef:0ld"])
        assert info.value.status == 404 and not info.value.may_have_executed


# --------------------------------------------------------------------------- XAPI errors


@pytest.mark.parametrize("protocol", ["jsonrpc", "xmlrpc"])
def test_xapi_errors_arrive_typed_with_exact_details(sim: Simulator, protocol: str) -> None:
    with Transport(sim.url, protocol=protocol) as transport:
        session = login(transport, sim)
        with pytest.raises(exc.HandleInvalid) as info:
            transport.call("VM.get_record", [session, "OpaqueRef:nope"])
        assert info.value.details == ["HANDLE_INVALID", "VM", "OpaqueRef:nope"]


def test_a_dead_session_is_reported_without_its_ref(sim: Simulator) -> None:
    with Transport(sim.url) as transport:
        session = login(transport, sim)
        transport.call("session.logout", [session])
        with pytest.raises(exc.SessionInvalid) as info:
            transport.call("VM.get_all", [session])
        assert info.value.details == ["SESSION_INVALID", session]
        assert session not in str(info.value) and session not in repr(info.value)


def test_a_wrong_password_is_never_echoed(sim: Simulator) -> None:
    with Transport(sim.url) as transport:
        with pytest.raises(exc.SessionAuthenticationFailed) as info:
            transport.call(LOGIN, ["root", "not-the-password"])
        assert "not-the-password" not in str(info.value) + repr(info.value)


def test_logs_name_methods_but_never_sessions_or_passwords(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Transport(sim.url) as transport:
        session = login(transport, sim)
        transport.call("VM.get_all", [session])
        with pytest.raises(exc.HandleInvalid):
            transport.call("VM.get_record", [session, "OpaqueRef:nope"])
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "VM.get_all" in text
    assert session not in text and sim.password not in text


def test_an_oversized_request_is_an_http_error_that_did_not_run(sim: Simulator) -> None:
    with Transport(sim.url, protocol="xmlrpc") as transport:
        session = login(transport, sim)
        with pytest.raises(exc.HTTPStatusError) as info:
            transport.call("VM.set_name_description", [session, "OpaqueRef:x", "x" * 400_000])
        assert info.value.status == 413 and not info.value.may_have_executed


# --------------------------------------------------------------------------- connections


def test_threads_share_one_transport(sim: Simulator) -> None:
    errors: list[BaseException] = []
    with Transport(sim.url, maxsize=4) as transport:
        session = login(transport, sim)

        def work() -> None:
            try:
                for _ in range(20):
                    transport.call("VM.get_all", [session])
            except BaseException as error:  # noqa: BLE001 - reported by the assertion below
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors and not any(thread.is_alive() for thread in threads)


def test_unix_socket_reaches_the_simulator(sim: Simulator) -> None:
    with Transport(f"unix://{sim.unix_path}") as transport:
        session = transport.call(LOGIN, ["root", ""])  # the local socket trusts root
        assert transport.call("VM.get_all", [session])


def test_a_missing_unix_socket_is_refused_and_not_sent(tmp_path: Path) -> None:
    with Transport(f"unix://{tmp_path}/xapi") as transport:
        with pytest.raises(exc.ConnectionRefused) as info:
            transport.call("VM.get_all", ["OpaqueRef:x"])
        assert not info.value.may_have_executed


def test_connection_refused_is_not_sent() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with Transport(f"http://127.0.0.1:{port}") as transport:
        with pytest.raises(exc.ConnectionRefused, match="cannot connect") as info:
            transport.call("VM.start", ["OpaqueRef:s", "OpaqueRef:vm", False, False])
        assert not info.value.may_have_executed and info.value.method == "VM.start"


def test_a_silent_server_gives_a_quick_read_timeout() -> None:
    # The kernel accepts the connection into the backlog; nobody ever reads or answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with Transport(f"http://127.0.0.1:{port}", protocol="xmlrpc", timeout=QUICK) as transport:
            started = time.monotonic()
            with pytest.raises(exc.ReadTimeout, match="within 0.5 s") as info:
                transport.call("VM.clean_shutdown", ["OpaqueRef:s", "OpaqueRef:vm"])
            assert time.monotonic() - started < 5
            assert info.value.may_have_executed


def test_logins_wait_only_for_the_login_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with Transport(f"http://127.0.0.1:{port}", protocol="xmlrpc",
                       timeout=Timeout(read=60), login_timeout=QUICK) as transport:
            with pytest.raises(exc.ReadTimeout, match="within 0.5 s"):
                transport.call(LOGIN, ["root", "pw"])


def test_a_connection_dropped_after_the_request_may_have_run() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def take_and_drop() -> None:
            server.settimeout(10)
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                received = b""
                while b"</methodCall>" not in received:  # bounded by the 10 s timeout
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    received += chunk

        dropper = threading.Thread(target=take_and_drop, daemon=True)
        dropper.start()
        with Transport(f"http://127.0.0.1:{port}", protocol="xmlrpc") as transport:
            with pytest.raises(exc.ConnectionLost, match="may have run") as info:
                transport.call("VM.clean_shutdown", ["OpaqueRef:s", "OpaqueRef:vm"])
        dropper.join(timeout=10)
        assert info.value.may_have_executed


def test_ipv6_literal_urls_connect_and_send_a_bracketed_host() -> None:
    try:
        stub = Stub(xmlrpc_only, host="::1", family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with stub, Transport(f"http://[::1]:{stub.port}", protocol="xmlrpc") as transport:
        assert transport.call(LOGIN, ["root", "pw"]) == "OpaqueRef:0ld"
    assert stub.requests == [("/", f"[::1]:{stub.port}")]


# --------------------------------------------------------------------------- TLS


class TLS:
    """A trustme CA, and a certificate from it for 127.0.0.1 and ::1."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "::1")
        self.ca_file = tmp_path / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        der = ssl.PEM_cert_to_DER_cert(self.cert.cert_chain_pems[0].bytes().decode())
        self.fingerprint = hashlib.sha256(der).hexdigest()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context


@pytest.fixture
def tls(tmp_path: Path) -> TLS:
    return TLS(tmp_path)


@pytest.fixture
def https_sim(tls: TLS) -> Iterator[Simulator]:
    with Simulator(hosts=1, auth_failure_delay=0, ssl_context=tls.server_context()) as simulator:
        yield simulator


def test_https_verified_against_the_ca(https_sim: Simulator, tls: TLS) -> None:
    assert https_sim.url.startswith("https://")
    with Transport(https_sim.url, verify=str(tls.ca_file)) as transport:
        assert login(transport, https_sim).startswith("OpaqueRef:")


def test_https_is_verified_by_default(https_sim: Simulator) -> None:
    with Transport(https_sim.url) as transport:
        with pytest.raises(exc.TLSError, match="verify='sha256:<fingerprint>'") as info:
            login(transport, https_sim)
        assert not info.value.may_have_executed


def test_https_with_another_ca_fails_with_a_tls_error(https_sim: Simulator, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with Transport(https_sim.url, verify=str(other)) as transport:
        with pytest.raises(exc.TLSError, match="certificate verify failed"):
            login(transport, https_sim)


def test_https_with_the_pinned_fingerprint(https_sim: Simulator, tls: TLS) -> None:
    pinned = ":".join(tls.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
    with Transport(https_sim.url, verify=f"sha256:{pinned}") as transport:
        assert login(transport, https_sim).startswith("OpaqueRef:")


def test_https_with_a_wrong_fingerprint_fails(https_sim: Simulator) -> None:
    with Transport(https_sim.url, verify="sha256:" + "00" * 32) as transport:
        with pytest.raises(exc.TLSError, match="ingerprint") as info:
            login(transport, https_sim)
        assert not info.value.may_have_executed


def test_https_without_verification_warns_once(https_sim: Simulator) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Transport(https_sim.url, verify=False) as transport:
            session = login(transport, https_sim)
            transport.call("VM.get_all", [session])
    assert [w.category for w in caught] == [InsecureTransportWarning]
    assert "127.0.0.1" in str(caught[0].message)


def test_https_over_ipv6_checks_the_ip_in_the_certificate(tls: TLS) -> None:
    reply = json.dumps({"jsonrpc": "2.0", "result": "OpaqueRef:0ld", "id": 1}).encode()
    try:
        stub = Stub(lambda path, body: (200, "application/json", reply), host="::1",
                    family=socket.AF_INET6, context=tls.server_context())
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with stub, Transport(f"https://[::1]:{stub.port}", verify=str(tls.ca_file)) as transport:
        assert transport.call(LOGIN, ["root", "pw"]) == "OpaqueRef:0ld"
