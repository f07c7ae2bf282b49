"""os-xenapi 0.3.4's ``os_xenapi.client.utils`` and ``os_xenapi.client.i18n``: the helpers
against the simulator over a real socket (with the official SDK checking what they made), and
the translators with a real gettext catalogue."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import exception, i18n, utils
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

ORIGINATOR = "034-utils-tests"
INSTANCE = {"uuid": "0b0e9f5c-6d1d-4a59-8e0c-6d7c7b1f0a55", "name": "instance-1"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0) as made:
        yield made


@pytest.fixture(scope="module", params=["xmlrpc", "jsonrpc"])
def session(sim: Simulator, request: pytest.FixtureRequest) -> Iterator[XenAPISession]:
    with XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR,
                       protocol=request.param) as made:
        yield made


# ------------------------------------------------------------------------------ utils


def test_get_default_sr_is_the_pools_default_sr(x: Any, session: XenAPISession) -> None:
    assert utils.get_default_sr(session) == x.pool.get_default_SR(x.pool.get_all()[0])


def test_a_pool_without_a_default_sr_is_not_found(x: Any, session: XenAPISession) -> None:
    pool = x.pool.get_all()[0]
    default = x.pool.get_default_SR(pool)
    x.pool.set_default_SR(pool, "OpaqueRef:NULL")
    try:
        with pytest.raises(exception.NotFound, match="Cannot find default SR"):
            utils.get_default_sr(session)
    finally:
        x.pool.set_default_SR(pool, default)


def test_create_vdi_makes_a_user_vdi_tagged_for_the_instance(x: Any,
                                                             session: XenAPISession) -> None:
    sr = utils.get_default_sr(session)
    vdi = utils.create_vdi(session, sr, INSTANCE, "disk-0", "root", 2 ** 33)
    try:
        record = x.VDI.get_record(vdi)
        assert (record["name_label"], record["SR"], record["virtual_size"]) == (
            "disk-0", sr, str(2 ** 33))
        assert (record["type"], record["sharable"], record["read_only"]) == ("user", False, False)
        assert record["other_config"] == {"nova_disk_type": "root",
                                          "nova_instance_uuid": INSTANCE["uuid"]}
    finally:
        x.VDI.destroy(vdi)


def test_create_vdi_without_an_instance_tags_only_the_disk_type(x: Any,
                                                                session: XenAPISession) -> None:
    vdi = utils.create_vdi(session, utils.get_default_sr(session), None, "volume", "volume",
                           4096, read_only=True)
    try:
        assert x.VDI.get_other_config(vdi) == {"nova_disk_type": "volume"}
        assert x.VDI.get_read_only(vdi) is True
    finally:
        x.VDI.destroy(vdi)


def test_create_pipe_gives_unbuffered_binary_ends() -> None:
    rfile, wfile = utils.create_pipe()
    with rfile, wfile:
        wfile.write(b"vhd bytes")  # no flush: unbuffered, as 0.3.4's GreenPipes were
        assert rfile.read(9) == b"vhd bytes"


def test_the_export_path_serves_the_vdi_as_a_vhd(x: Any, session: XenAPISession) -> None:
    vdi = utils.create_vdi(session, utils.get_default_sr(session), INSTANCE, "export", "root",
                           2 * 1024 * 1024)
    try:
        with session.custom_task("export") as task, session.http_connection() as conn:
            conn.request("GET", utils.get_vdi_export_path(session, task, vdi))
            response = conn.getresponse()
            body = response.read()
        assert response.status == 200
        assert body[:8] == b"conectix" and body[-512:-504] == b"conectix"  # VHD footers
    finally:
        x.VDI.destroy(vdi)


def test_the_import_path_takes_a_vhd_into_the_vdi(x: Any, session: XenAPISession) -> None:
    source = utils.create_vdi(session, utils.get_default_sr(session), None, "source", "root",
                              2 * 1024 * 1024)
    target = utils.create_vdi(session, utils.get_default_sr(session), None, "target", "root",
                              2 * 1024 * 1024)
    try:
        with session.custom_task("export") as task, session.http_connection() as conn:
            conn.request("GET", utils.get_vdi_export_path(session, task, source))
            vhd = conn.getresponse().read()
        with session.custom_task("import") as task, session.http_connection() as conn:
            conn.request("PUT", utils.get_vdi_import_path(session, task, target), body=vhd)
            response = conn.getresponse()
            response.read()
        assert response.status == 200
    finally:
        x.VDI.destroy(source)
        x.VDI.destroy(target)


def test_the_paths_carry_the_session_task_and_vdi(session: XenAPISession) -> None:
    path = utils.get_vdi_import_path(session, "OpaqueRef:task", "OpaqueRef:vdi")
    head, _, query = path.partition("?")
    fields = dict(part.split("=", 1) for part in query.split("&"))
    assert head == "/import_raw_vdi" and fields["format"] == "vhd"
    assert (fields["task_id"], fields["vdi"]) == ("OpaqueRef:task", "OpaqueRef:vdi")
    assert fields["session_id"].startswith("OpaqueRef:")
    assert utils.get_vdi_export_path(session, "t", "v").startswith("/export_raw_vdi?session_id=")


# ------------------------------------------------------------------------------ i18n


def write_catalogue(path: Path, messages: dict[str, str]) -> None:
    """A gettext .mo file (GNU format, little endian) holding ``messages``, in UTF-8."""
    entries = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **messages}.items())
    ids = b"".join(key.encode() + b"\0" for key, _ in entries)
    strs = b"".join(value.encode() + b"\0" for _, value in entries)
    count = len(entries)
    table_start = 28
    data_start = table_start + count * 16
    originals, translations = [], []
    offset = data_start
    for key, _ in entries:
        originals.append((len(key.encode()), offset))
        offset += len(key.encode()) + 1
    for _, value in entries:
        translations.append((len(value.encode()), offset))
        offset += len(value.encode()) + 1
    header = struct.pack("<7I", 0x950412DE, 0, count, table_start, table_start + count * 8, 0, 0)
    tables = b"".join(struct.pack("<2I", *pair) for pair in originals + translations)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + tables + ids + strs)


def test_messages_without_a_catalogue_are_themselves(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("OS_XENAPI_LOCALEDIR", str(tmp_path))
    assert i18n._("Host not found") == "Host not found"
    assert i18n.get_available_languages() == ["en_US"]


def test_messages_come_from_the_os_xenapi_catalogue(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    write_catalogue(tmp_path / "fr/LC_MESSAGES/os-xenapi.mo", {"Host not found": "Hôte absent"})
    monkeypatch.setenv("OS_XENAPI_LOCALEDIR", str(tmp_path))
    monkeypatch.setenv("LANGUAGE", "fr")
    assert i18n._("Host not found") == "Hôte absent"
    assert i18n._LE("Host not found") == i18n._LW("Host not found") == "Hôte absent"
    assert i18n.get_available_languages() == ["en_US", "fr"]
    assert i18n.translate("Hôte absent", "de") == "Hôte absent"  # as oslo.i18n, not lazy
