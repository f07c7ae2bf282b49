"""The simulator's wire, over real sockets: XML-RPC and JSON-RPC shapes, value encoding, method
names, Async calls, XAPI's error order, HTTP limits and failures, keep-alive, the Unix socket and
login (shared/xapi/PROTOCOL.md sections 1.1 to 1.7)."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
import xmlrpc.client
from typing import Any
from urllib.parse import urlsplit

import pytest

from os_xenapi.simulator import Simulator

MAX_RPC_SIZE = 300 * 1024  # XAPI's http_limit_max_rpc_size
REF = re.compile(r"OpaqueRef:[0-9a-f-]+")
XAPI_DATE = re.compile(r"[0-9]{8}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
BAD_SESSION = "OpaqueRef:00000000-0000-0000-0000-000000000000"


# --------------------------------------------------------------------------- plumbing


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over an AF_UNIX stream socket, as dom0 tools reach /var/lib/xcp/xapi."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def exchange(
    conn: http.client.HTTPConnection, path: str, body: bytes | Any, headers: dict | None = None
) -> tuple[int, http.client.HTTPResponse, bytes]:
    conn.request("POST", path, body, headers or {})
    response = conn.getresponse()
    return response.status, response, response.read()


def post(url: str, path: str, body: bytes | Any, headers: dict | None = None):
    conn = connect(url)
    try:
        return exchange(conn, path, body, headers)
    finally:
        conn.close()


def xml_body(method: str, *params: Any) -> bytes:
    return xmlrpc.client.dumps(params, method, allow_none=True).encode()


def xml_result(body: bytes) -> dict:
    return xmlrpc.client.loads(body)[0][0]


def rpc(url: str, method: str, *params: Any, path: str = "/") -> dict:
    """One XML-RPC call; the whole ``{Status, Value | ErrorDescription}`` struct."""
    status, _, body = post(url, path, xml_body(method, *params))
    assert status == 200, body
    return xml_result(body)


def value(url: str, method: str, *params: Any) -> Any:
    result = rpc(url, method, *params)
    assert result["Status"] == "Success", result
    return result["Value"]


def error(url: str, method: str, *params: Any) -> list[str]:
    result = rpc(url, method, *params)
    assert result["Status"] == "Failure", result
    return result["ErrorDescription"]


def raw_value_element(body: bytes) -> ET.Element:
    """The ``<value>`` of the ``Value`` member of a success response."""
    struct = ET.fromstring(body).find("./params/param/value/struct")
    for member in struct.findall("member"):
        if member.findtext("name") == "Value":
            return member.find("value")
    raise AssertionError(f"no Value member in {body!r}")


def json_call(url: str, request: dict) -> dict:
    status, response, body = post(
        url, "/jsonrpc", json.dumps(request).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, body
    assert response.getheader("Content-Type", "").startswith("application/json")
    return json.loads(body)


def still_serving(url: str) -> None:
    assert rpc(url, "system.listMethods")["Status"] == "Success"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sim():
    with Simulator(hosts=1, vms=0, auth_failure_delay=0) as running:
        yield running


@pytest.fixture(scope="module")
def session(sim: Simulator) -> str:
    return value(sim.url, "session.login_with_password", sim.username, sim.password, "1.1", "")


@pytest.fixture(scope="module")
def host(sim: Simulator, session: str) -> str:
    return value(sim.url, "host.get_all", session)[0]


@pytest.fixture
def task(sim: Simulator, session: str) -> str:
    return value(sim.url, "task.create", session, "wire test", "made by task.create")


def wait_for_task(url: str, session: str, task: str, limit: float = 10.0) -> dict:
    """The task's record once it is no longer pending, woken by event.from rather than polling."""
    deadline = time.monotonic() + limit
    token = ""
    while True:
        record = value(url, "task.get_record", session, task)
        if record["status"] not in ("pending", "cancelling"):
            return record
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"task {task} still {record['status']} after {limit}s"
        token = value(url, "event.from", session, [f"task/{task}"], token, min(remaining, 5.0))[
            "token"
        ]


# --------------------------------------------------------------------------- endpoints


@pytest.mark.parametrize("path", ["/", "/RPC2", "/some/other/path"])
def test_xmlrpc_is_served_on_post_path(sim: Simulator, session: str, path: str) -> None:
    result = rpc(sim.url, "host.get_all", session, path=path)
    assert result["Status"] == "Success"
    assert len(result["Value"]) == 1


def test_xmlrpc_response_headers(sim: Simulator) -> None:
    status, response, _ = post(sim.url, "/", xml_body("system.listMethods"))
    assert status == 200
    assert response.getheader("Content-Type", "").startswith("text/xml")


def test_one_session_works_on_both_endpoints(sim: Simulator, session: str, host: str) -> None:
    reply = json_call(sim.url, {"method": "host.get_all", "params": [session], "id": 1})
    assert reply["result"] == [host]


def test_system_list_methods_lists_sync_wire_names(sim: Simulator) -> None:
    methods = value(sim.url, "system.listMethods")
    assert {"VM.get_all", "session.login_with_password", "event.from", "task.create"} <= set(
        methods
    )
    assert all(type(m) is str for m in methods)
    assert not [m for m in methods if m.startswith("Async.")]


def test_system_is_alive_echoes_its_parameter(sim: Simulator) -> None:
    assert value(sim.url, "system.isAlive:probe", "hello") == "hello"


# --------------------------------------------------------------------------- JSON-RPC shapes


def test_jsonrpc_v1_success_shape(sim: Simulator, session: str, host: str) -> None:
    reply = json_call(sim.url, {"method": "host.get_all", "params": [session], "id": 7})
    assert reply == {"result": [host], "error": None, "id": 7}


def test_jsonrpc_v1_failure_shape(sim: Simulator) -> None:
    reply = json_call(sim.url, {"method": "host.get_all", "params": [BAD_SESSION], "id": "a"})
    assert reply == {"result": None, "error": ["SESSION_INVALID", BAD_SESSION], "id": "a"}


def test_jsonrpc_v2_success_shape(sim: Simulator, session: str, host: str) -> None:
    reply = json_call(
        sim.url, {"jsonrpc": "2.0", "method": "host.get_all", "params": [session], "id": "x1"}
    )
    assert reply == {"jsonrpc": "2.0", "result": [host], "id": "x1"}


def test_jsonrpc_v2_failure_shape(sim: Simulator) -> None:
    reply = json_call(
        sim.url, {"jsonrpc": "2.0", "method": "host.get_all", "params": [BAD_SESSION], "id": 3}
    )
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": 1, "message": "SESSION_INVALID", "data": [BAD_SESSION]},
        "id": 3,
    }


def test_jsonrpc_v2_params_may_be_omitted(sim: Simulator) -> None:
    reply = json_call(sim.url, {"jsonrpc": "2.0", "method": "system.listMethods", "id": 1})
    assert "VM.get_all" in reply["result"]


def test_jsonrpc_ints_are_json_numbers(sim: Simulator, session: str, host: str) -> None:
    reply = json_call(
        sim.url, {"method": "host.get_API_version_major", "params": [session, host], "id": 1}
    )
    assert reply["result"] == 2


# --------------------------------------------------------------------------- XML-RPC encoding


def test_xmlrpc_response_starts_with_xml_declaration(sim: Simulator) -> None:
    _, _, body = post(sim.url, "/", xml_body("system.listMethods"))
    assert body.startswith(b'<?xml version="1.0"?>')


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_xmlrpc_status_is_the_first_struct_member(
    sim: Simulator, session: str, outcome: str
) -> None:
    call = session if outcome == "success" else BAD_SESSION
    _, _, body = post(sim.url, "/", xml_body("host.get_all", call))
    members = ET.fromstring(body).findall("./params/param/value/struct/member")
    assert members[0].findtext("name") == "Status"
    assert members[0].findtext("value") == outcome.capitalize()


def test_xmlrpc_int_is_an_untyped_value(sim: Simulator, session: str, host: str) -> None:
    _, _, body = post(sim.url, "/", xml_body("host.get_API_version_major", session, host))
    assert b"<name>Value</name><value>2</value>" in body
    assert xml_result(body)["Value"] == "2"


def test_xmlrpc_datetime_is_xapi_text(sim: Simulator, session: str, task: str) -> None:
    _, _, body = post(sim.url, "/", xml_body("task.get_created", session, task))
    element = raw_value_element(body)
    stamp = element.findtext("dateTime.iso8601")
    assert stamp is not None and XAPI_DATE.fullmatch(stamp), body
    assert isinstance(xml_result(body)["Value"], xmlrpc.client.DateTime)


def test_xmlrpc_bool_is_a_boolean_element(sim: Simulator, session: str, host: str) -> None:
    _, _, body = post(sim.url, "/", xml_body("host.get_enabled", session, host))
    assert raw_value_element(body).findtext("boolean") == "1"


def test_xmlrpc_float_is_a_double_element(sim: Simulator, session: str, task: str) -> None:
    _, _, body = post(sim.url, "/", xml_body("task.get_progress", session, task))
    assert float(raw_value_element(body).findtext("double")) == 0.0


def test_xmlrpc_void_is_an_empty_value(sim: Simulator, session: str, task: str) -> None:
    _, _, body = post(sim.url, "/", xml_body("task.set_progress", session, task, 0.5))
    element = raw_value_element(body)
    assert len(element) == 0 and (element.text or "") == ""
    assert xml_result(body)["Value"] == ""


# --------------------------------------------------------------------------- method names


@pytest.mark.parametrize(
    ("underscored", "dotted"),
    [
        ("VM_get_all", "VM.get_all"),
        ("VM_metrics_get_all", "VM_metrics.get_all"),
        ("host_metrics_get_all", "host_metrics.get_all"),
        ("VM_guest_metrics_get_all", "VM_guest_metrics.get_all"),
    ],
)
def test_underscore_spelling_is_the_dotted_method(
    sim: Simulator, session: str, underscored: str, dotted: str
) -> None:
    assert value(sim.url, underscored, session) == value(sim.url, dotted, session)


def test_async_call_returns_a_task_that_completes(sim: Simulator, session: str, task: str) -> None:
    async_task = value(sim.url, "Async.task.cancel", session, task)
    assert REF.fullmatch(async_task) and async_task != task
    record = wait_for_task(sim.url, session, async_task)
    assert record["status"] == "success"
    assert record["progress"] == 1.0
    assert record["result"] == "<value></value>"  # void, as an XML-RPC fragment


def test_async_result_is_an_xmlrpc_value_fragment(sim: Simulator, session: str) -> None:
    async_task = value(sim.url, "Async.console.create", session, {"other_config": {}})
    record = wait_for_task(sim.url, session, async_task)
    assert record["status"] == "success"
    wrapped = f"<methodResponse><params><param>{record['result']}</param></params></methodResponse>"
    console = xmlrpc.client.loads(wrapped)[0][0]
    assert value(sim.url, "console.get_record", session, console)["other_config"] == {}


def test_async_of_a_message_without_async_mode_is_a_fault(sim: Simulator, session: str) -> None:
    assert error(sim.url, "Async.VM.get_all", session) == [
        "Fault",
        "No async mode for this operation (rpc: VM.get_all)",
    ]


# --------------------------------------------------------------------------- errors and their order


def test_unknown_method_gives_message_method_unknown(sim: Simulator, session: str) -> None:
    assert error(sim.url, "VM.frobnicate", session) == ["MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"]


def test_unknown_class_gives_message_method_unknown(sim: Simulator, session: str) -> None:
    assert error(sim.url, "Nope.get_all", session) == ["MESSAGE_METHOD_UNKNOWN", "Nope.get_all"]


def test_unknown_method_with_a_dead_session_gives_session_invalid(sim: Simulator) -> None:
    # XAPI checks the session before looking for an extension of that name.
    assert error(sim.url, "VM.frobnicate", BAD_SESSION) == ["SESSION_INVALID", BAD_SESSION]


def test_count_mismatch_is_checked_before_types_and_session(sim: Simulator) -> None:
    # Dead session, a wrong-typed argument and one argument short: the count wins.
    assert error(sim.url, "host.set_display", BAD_SESSION, 42) == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "host.set_display",
        "2",
        "1",
    ]


def test_extra_arguments_are_a_count_mismatch_without_defaults(
    sim: Simulator, session: str, host: str
) -> None:
    assert error(sim.url, "host.get_record", session, host, "extra") == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "host.get_record",
        "1",
        "2",
    ]


def test_type_error_is_checked_before_session(sim: Simulator, host: str) -> None:
    # Dead session and an enum value that does not exist: unmarshalling fails first.
    failure = error(sim.url, "host.set_display", BAD_SESSION, host, "sideways")
    assert failure[0] == "INVALID_VALUE"
    assert "sideways" in failure[1:]


def test_session_is_checked_before_the_operation(sim: Simulator) -> None:
    # Dead session and a dangling ref: the session check comes before the handler's lookup.
    assert error(sim.url, "host.get_record", BAD_SESSION, "OpaqueRef:gone") == [
        "SESSION_INVALID",
        BAD_SESSION,
    ]


def test_unknown_ref_gives_handle_invalid(sim: Simulator, session: str) -> None:
    assert error(sim.url, "VM.get_record", session, "OpaqueRef:gone") == [
        "HANDLE_INVALID",
        "VM",
        "OpaqueRef:gone",
    ]


def test_ref_of_another_class_gives_handle_invalid(sim: Simulator, session: str, host: str) -> None:
    assert error(sim.url, "VM.get_record", session, host) == ["HANDLE_INVALID", "VM", host]


def test_unknown_uuid_gives_uuid_invalid(sim: Simulator, session: str) -> None:
    uuid = "0badc0de-0000-4000-8000-000000000000"
    assert error(sim.url, "VM.get_by_uuid", session, uuid) == ["UUID_INVALID", "VM", uuid]


def test_bad_enum_value_gives_invalid_value(sim: Simulator, session: str, host: str) -> None:
    failure = error(sim.url, "host.set_display", session, host, "sideways")
    assert failure[0] == "INVALID_VALUE"
    assert "sideways" in failure[1:]


def test_enum_values_are_matched_case_insensitively(
    sim: Simulator, session: str, host: str
) -> None:
    value(sim.url, "host.set_display", session, host, "ENABLED")
    assert value(sim.url, "host.get_display", session, host) == "enabled"


# --------------------------------------------------------------------------- unparsable requests


def assert_html_500(status: int, response: http.client.HTTPResponse, body: bytes) -> None:
    assert status == 500, body
    assert response.getheader("Content-Type", "").startswith("text/html")
    assert b"<html" in body.lower()


def test_malformed_xml_gives_html_500_and_serving_goes_on(sim: Simulator) -> None:
    assert_html_500(*post(sim.url, "/", b"<methodCall><methodName>VM.get_all</methodName"))
    still_serving(sim.url)


def test_xml_that_is_not_a_method_call_gives_html_500(sim: Simulator) -> None:
    assert_html_500(*post(sim.url, "/", b"<?xml version='1.0'?><hello/>"))
    still_serving(sim.url)


@pytest.mark.parametrize(
    "body",
    [
        b'{"method": "VM.get_all", "params": [',
        b'{"method": "system.listMethods", "params": []}',
        b'{"jsonrpc": "2.0", "method": "system.listMethods", "params": []}',
        b'{"method": "system.listMethods", "params": [], "id": null}',
        b'{"jsonrpc": "1.5", "method": "system.listMethods", "params": [], "id": 1}',
    ],
    ids=["malformed-json", "v1-without-id", "v2-without-id", "null-id", "unknown-version"],
)
def test_unparsable_jsonrpc_gives_html_500_and_serving_goes_on(sim: Simulator, body: bytes) -> None:
    assert_html_500(*post(sim.url, "/jsonrpc", body, {"Content-Type": "application/json"}))
    still_serving(sim.url)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<methodCall><methodName>system.isAlive:x</methodName>
<params><param><value>&lol9;</value></param></params></methodCall>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE methodCall [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>system.isAlive:x</methodName>
<params><param><value>&secret;</value></param></params></methodCall>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE methodCall SYSTEM "http://127.0.0.1:9/evil.dtd">
<methodCall><methodName>system.listMethods</methodName><params/></methodCall>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_entity_tricks_are_refused_quickly(sim: Simulator, body: bytes) -> None:
    started = time.monotonic()
    status, response, reply = post(sim.url, "/", body)
    elapsed = time.monotonic() - started
    assert_html_500(status, response, reply)
    assert b"root:" not in reply and b"lollol" not in reply
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    still_serving(sim.url)


# --------------------------------------------------------------------------- size limit


def padded_call(size: int) -> bytes:
    """A valid ``system.listMethods`` call of exactly ``size`` bytes (whitespace padding)."""
    call = xml_body("system.listMethods")
    head, tail = call.split(b"<methodName>", 1)
    padding = size - len(call)
    assert padding >= 0
    return head + b" " * padding + b"<methodName>" + tail


def test_body_of_exactly_300_kib_is_served(sim: Simulator) -> None:
    status, _, body = post(sim.url, "/", padded_call(MAX_RPC_SIZE))
    assert status == 200
    assert xml_result(body)["Status"] == "Success"


def test_body_over_300_kib_is_refused_with_413_and_serving_goes_on(sim: Simulator) -> None:
    status, _, _ = post(sim.url, "/", padded_call(MAX_RPC_SIZE + 1))
    assert status == 413
    still_serving(sim.url)


def test_chunked_body_over_300_kib_is_refused_with_413(sim: Simulator) -> None:
    big = padded_call(MAX_RPC_SIZE + 4096)
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    conn = connect(sim.url)
    try:
        conn.request("POST", "/", chunks, encode_chunked=True)
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    still_serving(sim.url)


def test_jsonrpc_body_over_300_kib_is_refused_with_413(sim: Simulator) -> None:
    request = {"method": "system.listMethods", "params": ["x" * (MAX_RPC_SIZE + 1)], "id": 1}
    status, _, _ = post(sim.url, "/jsonrpc", json.dumps(request).encode())
    assert status == 413
    still_serving(sim.url)


# --------------------------------------------------------------------------- connections


def test_keep_alive_serves_many_calls_on_one_socket(sim: Simulator, session: str) -> None:
    conn = connect(sim.url)
    try:
        status, response, _ = exchange(conn, "/", xml_body("host.get_all", session))
        assert status == 200
        assert (response.getheader("Connection") or "").lower() != "close"
        first = conn.sock
        assert first is not None
        for _ in range(50):
            status, _, body = exchange(conn, "/", xml_body("host.get_all", session))
            assert status == 200 and xml_result(body)["Status"] == "Success"
            assert conn.sock is first
    finally:
        conn.close()


def test_unix_socket_serves_xmlrpc(sim: Simulator, session: str, host: str) -> None:
    conn = UnixHTTPConnection(sim.unix_path)
    try:
        status, _, body = exchange(conn, "/", xml_body("host.get_all", session))
    finally:
        conn.close()
    assert status == 200
    assert xml_result(body) == {"Status": "Success", "Value": [host]}


def test_unix_socket_login_skips_the_password_check(sim: Simulator) -> None:
    conn = UnixHTTPConnection(sim.unix_path)
    try:
        login = xml_body("session.login_with_password", sim.username, "not the password")
        _, _, body = exchange(conn, "/", login)
    finally:
        conn.close()
    result = xml_result(body)
    assert result["Status"] == "Success", result
    assert value(sim.url, "session.get_uuid", result["Value"], result["Value"])


# --------------------------------------------------------------------------- login and sessions


def test_login_returns_a_session_ref(sim: Simulator) -> None:
    ref = value(sim.url, "session.login_with_password", sim.username, sim.password)
    assert REF.fullmatch(ref)


def test_wrong_password_gives_authentication_failed_with_uname_and_message(
    sim: Simulator,
) -> None:
    failure = error(sim.url, "session.login_with_password", sim.username, "wrong", "1.1", "")
    assert failure[:2] == ["SESSION_AUTHENTICATION_FAILED", sim.username]
    assert len(failure) == 3 and failure[2]


def test_unknown_user_gives_authentication_failed(sim: Simulator) -> None:
    failure = error(sim.url, "session.login_with_password", "mallory", sim.password)
    assert failure[:2] == ["SESSION_AUTHENTICATION_FAILED", "mallory"]


def test_authentication_failure_without_delay_is_immediate(sim: Simulator) -> None:
    started = time.monotonic()
    error(sim.url, "session.login_with_password", sim.username, "wrong")
    assert time.monotonic() - started < 0.25


def test_authentication_failure_waits_the_configured_delay() -> None:
    with Simulator(hosts=1, vms=0, auth_failure_delay=0.3) as slow:
        started = time.monotonic()
        failure = error(slow.url, "session.login_with_password", slow.username, "wrong")
        elapsed = time.monotonic() - started
    assert failure[0] == "SESSION_AUTHENTICATION_FAILED"
    assert 0.3 <= elapsed < 3.0, f"took {elapsed:.3f}s"


def test_authentication_delay_does_not_hold_up_other_calls() -> None:
    with Simulator(hosts=1, vms=0, auth_failure_delay=1.0) as slow:
        session = value(slow.url, "session.login_with_password", slow.username, slow.password)
        failures: list[list[str]] = []
        worker = threading.Thread(
            target=lambda: failures.append(
                error(slow.url, "session.login_with_password", slow.username, "wrong")
            )
        )
        worker.start()
        latencies = []
        while worker.is_alive():  # calls made all through the failed login's delay
            started = time.monotonic()
            value(slow.url, "host.get_all", session)
            latencies.append(time.monotonic() - started)
        worker.join()
    assert failures and failures[0][0] == "SESSION_AUTHENTICATION_FAILED"
    assert len(latencies) >= 5
    assert max(latencies) < 0.5, f"a call waited {max(latencies):.2f}s behind a failed login"


def test_login_on_a_slave_gives_host_is_slave_with_master_address() -> None:
    with Simulator(hosts=2, vms=0, auth_failure_delay=0) as pool:
        master, slave = pool.urls
        failure = error(slave, "session.login_with_password", pool.username, pool.password)
    assert failure == ["HOST_IS_SLAVE", urlsplit(master).hostname]


def test_master_session_used_on_a_slave_gives_host_is_slave() -> None:
    with Simulator(hosts=2, vms=0, auth_failure_delay=0) as pool:
        master, slave = pool.urls
        session = value(master, "session.login_with_password", pool.username, pool.password)
        failure = error(slave, "host.get_all", session)
    assert failure == ["HOST_IS_SLAVE", urlsplit(master).hostname]


def test_call_after_logout_gives_session_invalid(sim: Simulator) -> None:
    ref = value(sim.url, "session.login_with_password", sim.username, sim.password)
    assert value(sim.url, "session.logout", ref) == ""
    assert error(sim.url, "host.get_all", ref) == ["SESSION_INVALID", ref]


def test_session_get_this_host_is_the_host_logged_into(
    sim: Simulator, session: str, host: str
) -> None:
    assert value(sim.url, "session.get_this_host", session, session) == host
