"""The client against hosts that answer what no XAPI would, over real sockets: a closed port, a
login that gives no session ref, a DTD in UTF-16, values nested without end; and error texts that
name the URL as the caller wrote it. The hostile hosts are in ``hostile.py``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hostile import closed_port_url, fixed, jsonrpc_reply, serve, xmlrpc_success

from os_xenapi.client import XenAPI
from os_xenapi.client import exception as exc
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.client.transport import Transport
from os_xenapi.simulator import Simulator

LOGIN = "session.login_with_password"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=1, vms=3, auth_failure_delay=0) as simulator:
        yield simulator


# --------------------------------------------------------------------------- a closed port


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


def test_a_pool_of_one_whose_xapi_went_away_is_asked_again_then_refused_naming_the_url(
    sim: Simulator
) -> None:
    # Once connected, a refusal may be a XAPI restart: the one host is asked again within the
    # failover budget, then the refusal itself is raised (no MasterNotFound: no other host).
    with XenAPISession(sim.url, sim.username, sim.password, "hostile",
                       plugin_version_check=False,
                       retry=Retry(failovers=2, wait=0.01, backoff=0.0)) as session:
        sim.set_host_reachable(0, False)
        try:
            with pytest.raises(exc.ConnectionRefused, match="connection refused") as info:
                session.VM.get_all()
            assert sim.url.split("//")[1] in str(info.value)
            assert session.stats.failovers == 2
        finally:
            sim.set_host_reachable(0, True)
        assert session.VM.get_all()


# --------------------------------------------------------------------------- odd answers


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
