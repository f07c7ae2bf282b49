"""os-xenapi 0.3.4's public names that consumers imported beside the session (issue 10, item 2):
``os_xenapi.client.XenAPI.UDSHTTPConnection`` / ``UDSTransport`` (XML-RPC over dom0's Unix
socket), ``os_xenapi.client.utils`` (default SR, VDI creation, pipes, VDI import/export paths)
and ``os_xenapi.client.i18n``, each used against the simulator as 0.3.4's callers used it."""

from __future__ import annotations

import shutil
import tempfile
import uuid
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from os_xenapi.client import XenAPI
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

ORIGINATOR = "names-referee"
VHD_COOKIE = b"conectix"  # the first bytes of a VHD footer


@pytest.fixture(scope="module")
def socket_path() -> Iterator[str]:
    """A Unix socket path with no "_" in it: 0.3.4 named the socket as a host name with "/"
    written "_" (``http://_var_xapi_xapi``)."""
    directory = Path(tempfile.gettempdir()) / f"os-xenapi-uds-{uuid.uuid4().hex}"
    directory.mkdir()
    yield str(directory / "xapi")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def sim(root: Path, socket_path: str) -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0, dom0_root=root, unix_path=socket_path) as simulator:
        yield simulator


def uds_host(path: str) -> str:
    return path.replace("/", "_")


@pytest.fixture()
def instance() -> dict[str, str]:
    return {"uuid": str(uuid.uuid4()), "name": "instance-0000002a"}


# ------------------------------------------------------------------------------ XenAPI (UDS)


def test_uds_http_connection_reaches_xapi_on_the_unix_socket(sim: Simulator,
                                                             socket_path: str) -> None:
    body = xmlrpc.client.dumps((sim.username, sim.password, "1.0", "nova"),
                               "session.login_with_password")
    connection = XenAPI.UDSHTTPConnection(uds_host(socket_path))
    try:
        connection.request("POST", "/", body, {"Content-Type": "text/xml"})
        reply = connection.getresponse()
        answer = xmlrpc.client.loads(reply.read())[0][0]
    finally:
        connection.close()
    assert reply.status == 200
    assert answer["Status"] == "Success" and answer["Value"].startswith("OpaqueRef:")


def test_uds_transport_carries_xmlrpc_calls_over_the_unix_socket(sim: Simulator,
                                                                 socket_path: str) -> None:
    proxy = xmlrpc.client.ServerProxy(f"http://{uds_host(socket_path)}",
                                      transport=XenAPI.UDSTransport())
    login = proxy.session.login_with_password(sim.username, sim.password, "1.0", "nova")
    assert login["Status"] == "Success"
    hosts = proxy.host.get_all(login["Value"])
    proxy.session.logout(login["Value"])
    assert hosts["Status"] == "Success" and len(hosts["Value"]) == 1


# -------------------------------------------------------------------------------- client.utils


def test_utils_get_default_sr_is_the_pools_default_sr(x: Any, nova: XenAPISession) -> None:
    from os_xenapi.client import utils

    assert utils.get_default_sr(nova) == x.pool.get_default_SR(x.pool.get_all()[0])


def test_utils_create_vdi_makes_a_user_vdi_tagged_for_nova(x: Any, nova: XenAPISession,
                                                           instance: dict[str, str]) -> None:
    from os_xenapi.client import utils

    sr = utils.get_default_sr(nova)
    vdi = utils.create_vdi(nova, sr, instance, "instance-0000002a", "root", 1 << 30)
    record = x.VDI.get_record(vdi)
    x.VDI.destroy(vdi)
    assert (record["SR"], record["name_label"], record["virtual_size"]) == (
        sr, "instance-0000002a", str(1 << 30))
    assert (record["type"], record["sharable"], record["read_only"]) == ("user", False, False)
    assert record["other_config"] == {"nova_disk_type": "root",
                                      "nova_instance_uuid": instance["uuid"]}


def test_utils_create_vdi_without_an_instance_records_only_the_disk_type(
    x: Any, nova: XenAPISession,
) -> None:
    from os_xenapi.client import utils

    vdi = utils.create_vdi(nova, utils.get_default_sr(nova), None, "volume", "user", 1 << 20,
                           read_only=True)
    record = x.VDI.get_record(vdi)
    x.VDI.destroy(vdi)
    assert record["other_config"] == {"nova_disk_type": "user"}
    assert record["read_only"] is True


def test_utils_create_pipe_gives_a_binary_pipe_read_then_write_end() -> None:
    from os_xenapi.client import utils

    rfile, wfile = utils.create_pipe()
    try:
        wfile.write(b"\x00vhd bytes")
        wfile.close()
        assert rfile.read() == b"\x00vhd bytes"
    finally:
        rfile.close()


def test_utils_vdi_export_path_exports_the_vdi_as_vhd(x: Any, nova: XenAPISession) -> None:
    from os_xenapi.client import utils

    vdi = x.VDI.create({"name_label": "export", "name_description": "",
                        "SR": utils.get_default_sr(nova), "virtual_size": str(2 << 20),
                        "type": "user", "sharable": False, "read_only": False,
                        "other_config": {}})
    try:
        with nova.custom_task("export") as task, nova.http_connection() as connection:
            connection.request("GET", utils.get_vdi_export_path(nova, task, vdi))
            reply = connection.getresponse()
            data = reply.read()
    finally:
        x.VDI.destroy(vdi)
    assert reply.status == 200
    assert data[:8] == VHD_COOKIE and data[-512:][:8] == VHD_COOKIE


def test_utils_vdi_import_path_names_session_task_vdi_and_vhd(x: Any,
                                                              nova: XenAPISession) -> None:
    from os_xenapi.client import utils

    with nova.custom_task("import") as task:
        path = utils.get_vdi_import_path(nova, task, "OpaqueRef:the-vdi")
    parts = urlsplit(path)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert parts.path == "/import_raw_vdi"
    assert (query["task_id"], query["vdi"], query["format"]) == (task, "OpaqueRef:the-vdi",
                                                                  "vhd")
    assert x.session.get_originator(query["session_id"]) == "nova"


# --------------------------------------------------------------------------------- client.i18n


def test_i18n_underscore_gives_the_text_back_untranslated() -> None:
    from os_xenapi.client.i18n import _

    assert _("Unable to log in to XenAPI") == "Unable to log in to XenAPI"
