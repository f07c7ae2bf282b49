"""os-xenapi 0.3.4's names that Nova, Neutron and Ceilometer use outside the wrappers, against
the simulator over real sockets: ``XenAPISession.host_checked`` and ``PLUGIN_REQUIRED_VERSION``,
``session.apply_session_helpers``, ``objects.synchronized``, ``XenAPI.UDSTransport`` /
``UDSHTTPConnection`` and ``xapi_local()`` finding dom0's socket at either of its paths."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import uuid
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import XenAPI, connection, objects
from os_xenapi.client import session as session_module
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

ORIGINATOR = "034-names-tests"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0, dom0_root=tmp_path_factory.mktemp("dom0")) as made:
        yield made


@pytest.fixture(scope="module")
def session(sim: Simulator) -> Iterator[XenAPISession]:
    with XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR,
                       retry=Retry(wait=0.01, backoff=0.0)) as made:
        yield made


@pytest.fixture
def socket_link(sim: Simulator) -> Iterator[str]:
    """A path to the simulator's Unix socket without "_" (the SDK's URLs write "/" as "_")."""
    directory = Path("/tmp") / f"osxuds{uuid.uuid4().hex}"
    directory.mkdir()
    link = directory / "xapi"
    link.symlink_to(sim.unix_path)
    yield str(link)
    shutil.rmtree(directory)


# ------------------------------------------------------------------------ XenAPISession


def test_host_checked_starts_false_and_keeps_what_nova_sets(session: XenAPISession) -> None:
    assert session.host_checked is False
    session.host_checked = True  # Nova's ensure_correct_host, once the host is the right one
    assert session.host_checked is True
    session.host_checked = False


def test_plugin_required_version_is_the_json_protocol(session: XenAPISession) -> None:
    assert XenAPISession.PLUGIN_REQUIRED_VERSION == "3.0"
    assert session.plugin_version == XenAPISession.PLUGIN_REQUIRED_VERSION


def test_a_session_requiring_a_later_minor_version_refuses_naming_both(sim: Simulator) -> None:
    class Demanding(XenAPISession):
        PLUGIN_REQUIRED_VERSION = "3.9"

    with pytest.raises(XenAPI.Failure) as info:
        Demanding(sim.url, sim.username, sim.password, ORIGINATOR)
    assert "version 3.0" in info.value.details[0] and "needs version 3.9" in info.value.details[0]


def test_apply_session_helpers_is_there_and_helps_a_nova_style_fake(
    session: XenAPISession,
) -> None:
    class Fake:  # as Nova's fake: anything with call_xenapi gets session.VM and friends
        def call_xenapi(self, method: str, *args: Any) -> Any:
            return session.call_xenapi(method, *args)

    fake = Fake()
    session_module.apply_session_helpers(fake)
    assert fake.host.get_uuid(session.host_ref) == session.host_uuid  # type: ignore[attr-defined]
    assert session_module.apply_session_helpers is objects.apply_session_helpers


# ------------------------------------------------------------------------ objects.synchronized


def dom0_vbd(session: XenAPISession) -> tuple[str, str, str]:
    """(vbd, dom0 vm, vdi): a new VDI with an unplugged VBD on the control domain."""
    dom0 = session.call_xenapi("host.get_control_domain", session.host_ref)
    sr = session.call_xenapi("pool.get_default_SR", session.call_xenapi("pool.get_all")[0])
    vdi = session.call_xenapi("VDI.create", {
        "name_label": "lock-test", "name_description": "", "SR": sr, "virtual_size": "1048576",
        "type": "user", "sharable": False, "read_only": False, "other_config": {}})
    vbd = session.call_xenapi("VBD.create", {
        "VM": dom0, "VDI": vdi, "userdevice": "autodetect", "bootable": False, "mode": "RO",
        "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
        "qos_algorithm_type": "", "qos_algorithm_params": {}})
    return vbd, dom0, vdi


def test_synchronized_vbd_lock_is_the_one_vbd_plug_takes(session: XenAPISession) -> None:
    vbd, dom0, vdi = dom0_vbd(session)
    plugged = threading.Event()
    plugger = threading.Thread(target=lambda: (session.VBD.plug(vbd, dom0), plugged.set()))

    @objects.synchronized("vbd-" + dom0)
    def plug_while_holding_the_vms_lock() -> bool:
        plugger.start()
        return plugged.wait(0.5)  # must not happen while the lock is held

    try:
        assert plug_while_holding_the_vms_lock() is False
        assert plugged.wait(30)  # once the lock is free the plug goes through
        plugger.join(timeout=30)
        assert session.call_xenapi("VBD.get_currently_attached", vbd) is True
        session.VBD.unplug(vbd, dom0)
    finally:
        session.call_xenapi("VBD.destroy", vbd)
        session.call_xenapi("VDI.destroy", vdi)


def test_synchronized_keeps_the_functions_name_and_result() -> None:
    @objects.synchronized("some-name")
    def answer(x: int) -> int:
        """Doc."""
        return x * 2

    assert answer(21) == 42 and answer.__name__ == "answer" and answer.__doc__ == "Doc."


def test_an_external_lock_waits_for_another_holder_of_its_file(tmp_path: Path) -> None:
    entered = threading.Event()

    @objects.synchronized("ext", external=True, lock_path=str(tmp_path))
    def guarded() -> None:
        entered.set()

    fd = os.open(tmp_path / "os-xenapi-ext", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process's holder, as far as flock knows
        runner = threading.Thread(target=guarded)
        runner.start()
        assert not entered.wait(0.5)
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert entered.wait(10)
        runner.join(timeout=10)
    finally:
        os.close(fd)


def test_an_external_lock_without_lock_path_is_refused() -> None:
    with pytest.raises(ValueError, match="needs lock_path"):
        objects.synchronized("ext", external=True)
    with pytest.raises(ValueError, match="file name"):
        objects.synchronized("a/b", external=True, lock_path="/tmp")


# ------------------------------------------------------------------------ XenAPI: Unix socket


def test_uds_transport_carries_xmlrpc_over_the_unix_socket(socket_link: str) -> None:
    url = "http://" + socket_link.replace("/", "_") + "/"
    transport = XenAPI.UDSTransport()
    transport.add_extra_header("X-Test", "1")
    proxy = xmlrpc.client.ServerProxy(url, transport=transport)
    reply = proxy.session.login_with_password("root", "", "1.0", ORIGINATOR)
    assert reply["Status"] == "Success" and reply["Value"].startswith("OpaqueRef:")
    assert proxy.session.logout(reply["Value"])["Status"] == "Success"
    transport.close()


def test_uds_http_connection_reaches_the_socket_named_with_underscores(socket_link: str) -> None:
    conn = XenAPI.UDSHTTPConnection(socket_link.replace("/", "_"), timeout=10)
    body = xmlrpc.client.dumps(("root", "", "1.0", ORIGINATOR), "session.login_with_password")
    conn.request("POST", "/", body, {"Content-Type": "text/xml"})
    reply = xmlrpc.client.loads(conn.getresponse().read())[0][0]
    conn.close()
    assert reply["Status"] == "Success"


def test_a_session_given_a_uds_transport_uses_that_socket(socket_link: str) -> None:
    url = "http://" + socket_link.replace("/", "_") + "/"
    with XenAPI.Session(url, transport=XenAPI.UDSTransport()) as local:
        local.xenapi.login_with_password("root", "", "1.0", ORIGINATOR)
        assert local.xenapi.host.get_all()
        assert local.transport.url == "unix://" + socket_link


def test_xapi_local_finds_the_older_socket_path(socket_link: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "LOCAL_SOCKETS", (str(tmp_path / "missing"), socket_link))
    with XenAPI.xapi_local() as local:
        assert local.transport.url == "unix://" + socket_link
        local.xenapi.login_with_password("root", "", "1.0", ORIGINATOR)
        assert local.xenapi.host.get_all()


def test_xapi_local_prefers_the_current_socket_path(socket_link: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "old-xapi"
    other.symlink_to(socket_link)
    monkeypatch.setattr(connection, "LOCAL_SOCKETS", (socket_link, str(other)))
    with XenAPI.xapi_local() as local:
        assert local.transport.url == "unix://" + socket_link


def test_a_uds_transport_with_an_ordinary_url_is_refused() -> None:
    with pytest.raises(ValueError, match="_var_lib_xcp_xapi"):
        XenAPI.Session("http://xapi.example/", transport=XenAPI.UDSTransport())
