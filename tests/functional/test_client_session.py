"""XenAPISession against the simulator over real sockets: what os-xenapi 0.3.4 offered (attributes,
call_xenapi, get_rec, custom_task, http_connection, session.VM...), the session pool, close(),
and secrets kept out of logs, repr() and errors. The official SDK is the referee where values
are compared. Failure handling is in test_client_session_faults.py, plugins in
test_client_session_plugins.py."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import XenAPI as SDK

from os_xenapi.client import exception, objects
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

ORIGINATOR = "session-tests"
SECRET = "pw-9f3a7c-never-shown"


def server_sessions(sim: Simulator, originator: str = ORIGINATOR) -> list[str]:
    """Refs of the server's sessions made by ``originator``."""
    return sim.run(lambda xapi: [ref for ref, s in xapi.db.all("session").items()
                                 if s["originator"] == originator])


def connect(sim: Simulator, url: str | None = None, **options: Any) -> XenAPISession:
    options.setdefault("originator", ORIGINATOR)
    return XenAPISession(url or sim.url, sim.username, sim.password, **options)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=1, vms=2, auth_failure_delay=0) as simulator:
        yield simulator


@pytest.fixture
def session(sim: Simulator) -> Iterator[XenAPISession]:
    with connect(sim) as made:
        yield made
    assert server_sessions(sim) == []


@pytest.fixture
def sdk(sim: Simulator) -> Iterator[Any]:
    made = SDK.Session(sim.url)
    made.xenapi.login_with_password(sim.username, sim.password, "2.21", "sdk-referee")
    yield made.xenapi
    made.xenapi.session.logout()
    made("close")()


def guest(xenapi: Any) -> str:
    records = xenapi.VM.get_all_records()
    return next(ref for ref, vm in sorted(records.items())
                if not vm["is_a_template"] and not vm["is_control_domain"])


# --------------------------------------------------------------------------- what 0.3.4 offered


def test_connecting_fills_in_the_attributes_of_0_3_4(sim: Simulator, session: XenAPISession,
                                                     sdk: Any) -> None:
    host = sdk.host.get_all()[0]
    software = sdk.host.get_software_version(host)
    assert session.host_ref == host
    assert session.host_uuid == sdk.host.get_uuid(host)
    assert session.product_version == tuple(int(p) for p in software["product_version"].split("."))
    assert session.product_brand == software["product_brand"]
    assert session.platform_version == tuple(int(p) for p in
                                             software["platform_version"].split("."))
    assert (session.is_slave, session.is_local_connection) == (False, False)
    assert (session.url, session.master_url) == (sim.url, sim.url)
    assert (session.ip, session.originator, session.timeout, session.concurrent) == (
        "127.0.0.1", ORIGINATOR, 10, 5)
    with pytest.raises(session.XenAPI.Failure):  # how 0.3.4's callers catch XAPI errors
        session.call_xenapi("VM.get_record", "OpaqueRef:gone")


def test_call_xenapi_gives_what_the_official_sdk_gives(session: XenAPISession, sdk: Any) -> None:
    assert sorted(session.call_xenapi("VM.get_all")) == sorted(sdk.VM.get_all())
    vm = guest(sdk)
    assert session.call_xenapi("VM.get_name_label", vm) == sdk.VM.get_name_label(vm)


def test_xapi_failures_carry_the_details_the_official_sdk_gets(session: XenAPISession,
                                                             sdk: Any) -> None:
    with pytest.raises(exception.HandleInvalid) as ours:
        session.call_xenapi("VM.get_record", "OpaqueRef:no-such-vm")
    with pytest.raises(SDK.Failure) as theirs:
        sdk.VM.get_record("OpaqueRef:no-such-vm")
    assert ours.value.details == theirs.value.details == [
        "HANDLE_INVALID", "VM", "OpaqueRef:no-such-vm"]


def test_the_25_class_helpers_of_0_3_4_are_on_the_session(session: XenAPISession) -> None:
    assert len(objects.HELPERS) == 25
    for attribute in objects.HELPERS:
        assert isinstance(getattr(session, attribute), objects.XenAPISessionObject)
    assert sorted(session.VM.get_all()) == sorted(session.call_xenapi("VM.get_all"))
    assert session.host.get_all() == [session.host_ref]


def test_vbd_plug_and_unplug_take_the_vm_and_hold_one_lock_per_vm(
    sim: Simulator, session: XenAPISession
) -> None:
    vm = guest(session)
    vbds = [vbd for vbd in session.VM.get_VBDs(vm)
            if session.VBD.get_type(vbd) == "Disk"]
    session.VBD.set_unpluggable(vbds[0], True)
    session.VM.start(vm, False, False)
    session.VBD.unplug(vbds[0], vm)
    assert session.VBD.get_currently_attached(vbds[0]) is False
    holders = []
    gate = threading.Event()
    lock = objects._vm_lock(vm)
    with lock.lock:  # while this VM's lock is held, its plug must wait
        worker = threading.Thread(target=lambda: (session.VBD.plug(vbds[0], vm),
                                                  holders.append("plugged"), gate.set()))
        worker.start()
        assert not gate.wait(0.3)
        assert holders == []
    assert gate.wait(10)
    worker.join(10)
    assert session.VBD.get_currently_attached(vbds[0]) is True
    assert objects._vm_lock("OpaqueRef:another-vm") is not objects._vm_lock(vm)


def test_get_rec_returns_none_for_an_object_that_is_gone(session: XenAPISession) -> None:
    vm = guest(session)
    assert session.get_rec("VM", vm)["uuid"] == session.VM.get_uuid(vm)
    assert session.get_rec("VM", "OpaqueRef:gone") is None


def test_get_all_refs_and_recs_pairs_each_ref_with_its_record(session: XenAPISession) -> None:
    pairs = dict(session.get_all_refs_and_recs("host"))
    assert list(pairs) == [session.host_ref]
    assert pairs[session.host_ref]["uuid"] == session.host_uuid


def test_custom_task_names_the_task_after_the_originator_and_destroys_it(
    session: XenAPISession,
) -> None:
    with pytest.raises(RuntimeError):
        with session.custom_task("upload", "a VDI") as task:
            assert session.task.get_name_label(task) == f"{ORIGINATOR}-upload"
            assert session.task.get_name_description(task) == "a VDI"
            raise RuntimeError("the block fails")
    assert session.get_rec("task", task) is None


def test_get_session_id_is_a_live_session_of_the_pool(sim: Simulator,
                                                      session: XenAPISession) -> None:
    ref = session.get_session_id()
    assert ref in server_sessions(sim)
    assert session.get_session_id() == ref  # a quiet program keeps one session


def test_swap_xapi_host_replaces_only_the_host() -> None:
    swap = XenAPISession.swap_xapi_host
    assert swap("https://10.0.0.1:8443", "10.0.0.2") == "https://10.0.0.2:8443"
    assert swap("http://xapi-10.0.0.1", "10.0.0.2") == "http://10.0.0.2"
    assert swap("https://[fd00::1]:443", "fd00::2") == "https://[fd00::2]:443"


def test_a_unix_socket_session_is_a_local_connection(sim: Simulator) -> None:
    with connect(sim, f"unix://{sim.unix_path}") as local:
        assert local.is_local_connection is True
        assert local.host_ref == sim.run(lambda xapi: xapi.master)
        assert local.call_xenapi("pool.get_all")


# --------------------------------------------------------------------------- HTTP handlers


def test_http_connection_reaches_the_master_for_http_handlers(session: XenAPISession) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "pool.get_all",
                       "params": [session.get_session_id()], "id": 1})
    with session.http_connection() as conn:
        assert isinstance(conn, http.client.HTTPConnection)
        conn.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
        reply = json.loads(conn.getresponse().read())
    assert reply["result"] == session.pool.get_all()


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    return context, hashlib.sha256(der).hexdigest()


def test_http_connection_checks_the_pinned_certificate_too(
    tls: tuple[ssl.SSLContext, str]
) -> None:
    context, fingerprint = tls
    with Simulator(auth_failure_delay=0, ssl_context=context) as https_sim:
        with connect(https_sim, verify=f"sha256:{fingerprint}") as pinned:
            with pinned.http_connection() as conn:
                assert isinstance(conn, http.client.HTTPSConnection)
        other = "sha256:" + "ab" * 32
        with pytest.raises(exception.TLSError):
            connect(https_sim, verify=other)
        assert server_sessions(https_sim) == []


# --------------------------------------------------------------------------- the pool of sessions


def test_sessions_are_made_only_when_threads_need_them(sim: Simulator,
                                                       session: XenAPISession) -> None:
    assert len(server_sessions(sim)) == 1
    fault = sim.faults.add(Fault.latency("pool.get_all", 0.5, times=3))
    started = threading.Barrier(3)

    def call() -> None:
        started.wait(10)
        session.pool.get_all()

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert fault.hits == 3
    assert len(server_sessions(sim)) == 3
    assert session.stats.logins == 3


def test_close_logs_out_every_session_and_later_calls_are_refused(sim: Simulator) -> None:
    baseline = len(sim.run(lambda xapi: xapi.db.all("session")))
    made = connect(sim, concurrent=4)
    made.get_session_id()
    made.close()
    assert server_sessions(sim) == []
    assert len(sim.run(lambda xapi: xapi.db.all("session"))) == baseline
    with pytest.raises(exception.SessionClosed, match="closed"):
        made.call_xenapi("pool.get_all")
    made.close()  # a second close does nothing


def test_a_failed_login_raises_and_leaves_no_session(sim: Simulator) -> None:
    with pytest.raises(exception.SessionAuthenticationFailed) as failed:
        XenAPISession(sim.url, "root", "wrong-password", ORIGINATOR)
    assert "wrong-password" not in str(failed.value) + repr(failed.value)
    assert server_sessions(sim) == []


# --------------------------------------------------------------------------- secrets


def test_passwords_and_session_refs_never_reach_logs_repr_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="os_xenapi")
    seen_refs: set[str] = set()
    shown: list[str] = []
    with Simulator(hosts=2, auth_failure_delay=0, password=SECRET) as pool_sim:

        def remember() -> None:
            seen_refs.update(pool_sim.run(lambda xapi: list(xapi.db.all("session"))))

        with XenAPISession(pool_sim.urls[1], "root", SECRET, ORIGINATOR) as made:
            remember()
            shown.append(repr(made))
            refusals = 1 + made.retry.relogins  # the first session's and every re-login's
            pool_sim.faults.add(Fault.fail("VM.get_all", "SESSION_INVALID",
                                           made.get_session_id(), times=refusals))
            with pytest.raises(exception.SessionInvalid) as invalid:
                made.call_xenapi("VM.get_all")
            shown += [str(invalid.value), repr(invalid.value)]
            pool_sim.expire_sessions()
            made.call_xenapi("pool.get_all")
            remember()
            with pytest.raises(exception.HandleInvalid) as handle:
                made.call_xenapi("session.get_record", "OpaqueRef:not-a-session")
            shown += [str(handle.value), repr(made), repr(made.VM), str(made.stats)]
        with pytest.raises(exception.SessionAuthenticationFailed) as refused:
            XenAPISession(pool_sim.url, "root", SECRET + "-wrong", ORIGINATOR)
        shown += [str(refused.value), repr(refused.value)]
    text = caplog.text + "\n".join(shown)
    assert seen_refs and caplog.records
    assert SECRET not in text
    for ref in seen_refs:
        assert ref not in text
