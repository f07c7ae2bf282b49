"""VDI contents over HTTP, ``PUT /import_raw_vdi`` and ``GET /export_raw_vdi``, against a running
simulator over real sockets (shared/xapi/PROTOCOL.md section 4). The official XenAPI SDK makes the
API calls; the transfers use http.client with the SDK's session the way nova does; qemu-img judges
the VHDs."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import time
import tracemalloc
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.vhd_reader import VhdReader

MiB = 1024 * 1024
GiB = 1024 * MiB


def qemu_img() -> str:
    """The qemu-img binary; its absence fails the test unless OS_XENAPI_ALLOW_MISSING_QEMU=1."""
    path = shutil.which("qemu-img")
    if path:
        return path
    if os.environ.get("OS_XENAPI_ALLOW_MISSING_QEMU") == "1":
        pytest.skip("qemu-img is absent and OS_XENAPI_ALLOW_MISSING_QEMU=1")
    pytest.fail("qemu-img is missing: run scripts/install-system-deps.sh (Debian qemu-utils), "
                "or set OS_XENAPI_ALLOW_MISSING_QEMU=1 to skip the qemu-img checks")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def session(sim: Simulator) -> Iterator[Any]:
    sdk = XenAPI.Session(sim.url)
    sdk.xenapi.login_with_password(sim.username, sim.password, "1.0", "vdi-transfer-test")
    yield sdk
    sdk.xenapi.session.logout()


@pytest.fixture(scope="module")
def x(session: Any) -> Any:
    return session.xenapi


@pytest.fixture(scope="module")
def data() -> bytes:
    return random.Random(64).randbytes(64 * MiB)


@pytest.fixture(scope="module")
def filled_vdi(sim: Simulator, session: Any, x: Any, data: bytes) -> str:
    """A 64 MiB VDI holding ``data``, uploaded as raw."""
    vdi = new_vdi(x, len(data))
    reply = put(sim, {"session_id": session._session, "vdi": vdi}, data)
    assert reply.status == 200
    return vdi


# -- helpers ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the simulator's dom0 Unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def connect(sim: Simulator) -> http.client.HTTPConnection:
    address = urllib.parse.urlsplit(sim.url)
    return http.client.HTTPConnection(address.hostname, address.port, timeout=60)


def _reply(conn: http.client.HTTPConnection) -> Reply:
    response = conn.getresponse()
    headers = {name.lower(): value for name, value in response.getheaders()}
    body = response.read()
    conn.close()
    return Reply(response.status, headers, body)


def put(sim: Simulator, query: dict[str, str], body: bytes | Iterable[bytes],
        headers: dict[str, str] | None = None, length: int | None = None,
        conn: http.client.HTTPConnection | None = None) -> Reply:
    """nova's _stream_to_vdi: PUT with a Content-Length, the body sent in 16 KiB pieces."""
    conn = conn or connect(sim)
    pieces = [body] if isinstance(body, bytes) else body
    length = len(body) if isinstance(body, bytes) else length
    conn.putrequest("PUT", "/import_raw_vdi?" + urllib.parse.urlencode(query),
                    skip_accept_encoding=True)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(length))
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    conn.endheaders()
    for piece in pieces:
        view = memoryview(piece)
        for i in range(0, len(view), 16384):
            conn.send(view[i : i + 16384])
    return _reply(conn)


def get(sim: Simulator, query: dict[str, str], headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None) -> Reply:
    conn = conn or connect(sim)
    conn.request("GET", "/export_raw_vdi?" + urllib.parse.urlencode(query),
                 headers=headers or {})
    return _reply(conn)


def new_vdi(x: Any, size: int) -> str:
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    return x.VDI.create({"name_label": "transfer", "name_description": "", "SR": sr,
                         "virtual_size": str(size), "type": "user", "sharable": False,
                         "read_only": False, "other_config": {}})


def event_from(x: Any, classes: list[str], token: str, timeout: float) -> dict:
    return getattr(x.event, "from")(classes, token, float(timeout))


def wait_task(x: Any, task: str, until: Any = None, seconds: float = 30.0) -> dict:
    """The task's record once ``until(record)`` holds (default: it is no longer pending),
    waiting on event.from rather than sleeping."""
    until = until or (lambda record: record["status"] != "pending")
    token = event_from(x, ["task"], "", 0.0)["token"]
    deadline = time.monotonic() + seconds
    for _ in range(10_000):
        record = x.task.get_record(task)
        if until(record):
            return record
        left = deadline - time.monotonic()
        assert left > 0, f"task {task} never got there: {record}"
        token = event_from(x, ["task"], token, min(left, 5.0))["token"]
    raise AssertionError("event loop bound reached")


def chunk(offset: int, payload: bytes) -> bytes:
    """One piece of XAPI's chunk protocol: 12-byte little-endian {offset, len} and the bytes."""
    return offset.to_bytes(8, "little") + len(payload).to_bytes(4, "little") + payload


END_CHUNK = bytes(12)


def sessions(sim: Simulator) -> int:
    return sim.run(lambda xapi: len(xapi.db.all("session")))


def raw_of_vhd(tmp_path: Path, image: bytes) -> bytes:
    (tmp_path / "image.vhd").write_bytes(image)
    subprocess.run([qemu_img(), "convert", "-f", "vpc", "-O", "raw", str(tmp_path / "image.vhd"),
                    str(tmp_path / "image.raw")], check=True)
    return (tmp_path / "image.raw").read_bytes()


# -- the nova round trip ------------------------------------------------------------------------


def test_raw_upload_completes_the_adopted_task_with_the_vdi(
        sim: Simulator, session: Any, x: Any, data: bytes) -> None:
    vdi = new_vdi(x, len(data))
    task = x.task.create("nova-VDI_IMPORT_for_instance-1", "")
    reply = put(sim, {"session_id": session._session, "task_id": task, "vdi": vdi,
                      "format": "raw"}, data)
    record = wait_task(x, task)
    x.task.destroy(task)
    assert (reply.status, reply.headers["task-id"]) == (200, task)
    assert (record["status"], record["progress"], record["result"]) == (
        "success", 1.0, f"<value>{vdi}</value>")


def test_raw_export_returns_the_uploaded_bytes(sim: Simulator, session: Any, filled_vdi: str,
                                               data: bytes) -> None:
    reply = get(sim, {"session_id": session._session, "vdi": filled_vdi, "format": "raw"})
    assert reply.status == 200
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(data).digest()


def test_vhd_export_reads_back_with_our_reader(sim: Simulator, session: Any, filled_vdi: str,
                                               data: bytes) -> None:
    reply = get(sim, {"session_id": session._session, "vdi": filled_vdi, "format": "vhd"})
    disk = bytearray(len(data))
    with VhdReader() as reader:
        for offset, piece in reader.feed(reply.body):
            disk[offset : offset + len(piece)] = piece
        reader.finish()
    assert disk == data


def test_vhd_export_converts_back_with_qemu_img(tmp_path: Path, sim: Simulator, session: Any,
                                               filled_vdi: str, data: bytes) -> None:
    reply = get(sim, {"session_id": session._session, "vdi": filled_vdi, "format": "vhd"})
    assert raw_of_vhd(tmp_path, reply.body) == data


def test_qemu_made_dynamic_vhd_imports(tmp_path: Path, sim: Simulator, session: Any, x: Any,
                                       data: bytes) -> None:
    (tmp_path / "in.raw").write_bytes(data)
    subprocess.run([qemu_img(), "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic",
                    str(tmp_path / "in.raw"), str(tmp_path / "in.vhd")], check=True)
    vdi = new_vdi(x, len(data))
    task = x.task.create("vhd import", "")
    put(sim, {"session_id": session._session, "task_id": task, "vdi": vdi, "format": "vhd"},
        (tmp_path / "in.vhd").read_bytes())
    assert wait_task(x, task)["status"] == "success"
    assert get(sim, {"session_id": session._session, "vdi": vdi}).body == data


def test_qemu_img_reads_the_exported_vhd_header(tmp_path: Path, sim: Simulator, session: Any,
                                                filled_vdi: str) -> None:
    reply = get(sim, {"session_id": session._session, "vdi": filled_vdi, "format": "vhd"})
    (tmp_path / "out.vhd").write_bytes(reply.body)
    info = json.loads(subprocess.run([qemu_img(), "info", "--output=json",
                                      str(tmp_path / "out.vhd")],
                                     check=True, capture_output=True, text=True).stdout)
    assert (info["format"], info["virtual-size"]) == ("vpc", 64 * MiB)


def test_vdi_may_be_named_by_uuid_and_format_in_any_case(
        sim: Simulator, session: Any, x: Any, filled_vdi: str, data: bytes) -> None:
    uuid = x.VDI.get_uuid(filled_vdi)
    reply = get(sim, {"session_id": session._session, "vdi": uuid, "format": "RAW"})
    assert reply.body[:MiB] == data[:MiB]


# -- the response --------------------------------------------------------------------------------


def test_export_has_no_length_and_ends_at_close(sim: Simulator, session: Any, x: Any,
                                                filled_vdi: str) -> None:
    reply = get(sim, {"session_id": session._session, "vdi": filled_vdi, "format": "vhd"})
    uuid = x.VDI.get_uuid(filled_vdi)
    assert "content-length" not in reply.headers and "transfer-encoding" not in reply.headers
    assert (reply.headers["connection"], reply.headers["cache-control"]) == (
        "close", "no-cache, no-store")
    assert (reply.headers["content-type"], reply.headers["content-disposition"]) == (
        "application/vhd", f'attachment; filename="{uuid}.vhd"')


def test_import_answers_200_before_the_body_is_read(sim: Simulator, session: Any,
                                                    x: Any) -> None:
    vdi = new_vdi(x, MiB)
    conn = connect(sim)
    conn.putrequest("PUT", "/import_raw_vdi?" + urllib.parse.urlencode(
        {"session_id": session._session, "vdi": vdi}))
    conn.putheader("Content-Length", str(MiB))
    conn.endheaders()
    response = conn.getresponse()  # nothing of the body sent yet
    assert (response.status, response.getheader("Connection")) == (200, "close")
    conn.close()


def test_internal_task_is_gone_once_the_transfer_ends(sim: Simulator, session: Any,
                                                     filled_vdi: str, x: Any) -> None:
    reply = get(sim, {"session_id": session._session, "vdi": filled_vdi})
    with pytest.raises(XenAPI.Failure) as info:
        x.task.get_record(reply.headers["task-id"])
    assert info.value.details[0] == "HANDLE_INVALID"


def test_task_progress_moves_as_bytes_arrive(sim: Simulator, session: Any, x: Any,
                                             data: bytes) -> None:
    vdi = new_vdi(x, len(data))
    task = x.task.create("progress", "")
    conn = connect(sim)
    halves = [data[: len(data) // 2], data[len(data) // 2 :]]

    def pieces() -> Iterator[bytes]:
        yield halves[0]
        seen = wait_task(x, task, lambda record: float(record["progress"]) >= 0.4)
        assert (seen["status"], float(seen["progress"]) < 0.6) == ("pending", True)
        yield halves[1]

    put(sim, {"session_id": session._session, "task_id": task, "vdi": vdi}, pieces(),
        length=len(data), conn=conn)
    assert wait_task(x, task)["progress"] == 1.0


def test_cancelling_the_task_stops_the_upload(sim: Simulator, session: Any, x: Any,
                                             data: bytes) -> None:
    vdi = new_vdi(x, len(data))
    task = x.task.create("cancel", "")
    conn = connect(sim)

    def pieces() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        wait_task(x, task, lambda record: float(record["progress"]) >= 0.4)
        x.task.cancel(task)
        yield data[len(data) // 2 :]

    try:
        put(sim, {"session_id": session._session, "task_id": task, "vdi": vdi}, pieces(),
            length=len(data), conn=conn)
    except OSError:
        pass  # the simulator closed the connection under the rest of the body
    record = wait_task(x, task)
    tail = get(sim, {"session_id": session._session, "vdi": vdi}).body[-MiB:]
    assert (record["status"], record["error_info"][0]) == ("cancelled", "TASK_CANCELLED")
    assert tail == bytes(MiB)


def test_import_records_physical_utilisation_with_an_event(sim: Simulator, session: Any,
                                                          x: Any) -> None:
    vdi = new_vdi(x, 4 * MiB)
    token = event_from(x, ["vdi"], "", 0.0)["token"]
    put(sim, {"session_id": session._session, "vdi": vdi}, b"\x01" * (2 * MiB))
    events = event_from(x, ["vdi"], token, 5.0)["events"]
    assert [e["operation"] for e in events if e["ref"] == vdi][-1:] == ["mod"]
    assert int(x.VDI.get_physical_utilisation(vdi)) >= 2 * MiB


# -- credentials -----------------------------------------------------------------------------------


def test_no_credentials_get_401_and_fail_the_task(sim: Simulator, x: Any) -> None:
    task = x.task.create("no credentials", "")
    reply = get(sim, {"vdi": "whatever", "task_id": task})
    record = x.task.get_record(task)
    assert (reply.status, reply.headers["www-authenticate"]) == (
        401, 'Basic realm="get_export_raw_vdi"')
    assert (record["status"], record["error_info"]) == (
        "failure", ["SESSION_AUTHENTICATION_FAILED"])


def test_unknown_session_gets_401(sim: Simulator, filled_vdi: str) -> None:
    reply = get(sim, {"session_id": "OpaqueRef:no-such-session", "vdi": filled_vdi})
    assert reply.status == 401


def test_session_cookie_is_taken_before_the_query(sim: Simulator, session: Any,
                                                  filled_vdi: str) -> None:
    reply = get(sim, {"session_id": "OpaqueRef:no-such-session", "vdi": filled_vdi},
                headers={"Cookie": f"session_id={session._session}"})
    assert reply.status == 200


def test_basic_auth_uses_a_session_only_for_the_request(sim: Simulator, filled_vdi: str,
                                                       data: bytes) -> None:
    before = sessions(sim)
    token = f"{sim.username}:{sim.password}".encode()
    reply = get(sim, {"vdi": filled_vdi},
                headers={"Authorization": "Basic " + base64.b64encode(token).decode()})
    assert (reply.status, reply.body[:MiB]) == (200, data[:MiB])
    assert sessions(sim) == before


def test_basic_auth_with_a_wrong_password_gets_401(sim: Simulator, filled_vdi: str) -> None:
    token = base64.b64encode(f"{sim.username}:wrong".encode()).decode()
    reply = get(sim, {"vdi": filled_vdi}, headers={"Authorization": f"Basic {token}"})
    assert reply.status == 401


def test_unix_socket_needs_no_credentials(sim: Simulator, filled_vdi: str, data: bytes) -> None:
    assert sim.unix_path is not None
    before = sessions(sim)
    reply = get(sim, {"vdi": filled_vdi}, conn=UnixConnection(sim.unix_path))
    assert (reply.status, reply.body[:MiB]) == (200, data[:MiB])
    assert sessions(sim) == before


# -- refusals --------------------------------------------------------------------------------------


def test_transfer_encoding_is_refused_with_404(sim: Simulator, session: Any, x: Any) -> None:
    vdi, task = new_vdi(x, MiB), x.task.create("te", "")
    conn = connect(sim)
    conn.request("PUT", "/import_raw_vdi?" + urllib.parse.urlencode(
        {"session_id": session._session, "vdi": vdi, "task_id": task}), body=iter([b"abc"]))
    reply = _reply(conn)
    assert reply.status == 404
    assert x.task.get_error_info(task) == ["INTERNAL_ERROR", "Cannot handle encoding: chunked"]


def test_chunked_vhd_is_refused_with_404(sim: Simulator, session: Any, x: Any) -> None:
    vdi, task = new_vdi(x, MiB), x.task.create("chunked vhd", "")
    reply = put(sim, {"session_id": session._session, "vdi": vdi, "task_id": task,
                      "format": "vhd", "chunked": "true"}, END_CHUNK)
    assert reply.status == 404
    assert x.task.get_error_info(task) == ["INTERNAL_ERROR", "Cannot handle chunked VHD"]


def test_unknown_format_is_refused_with_404(sim: Simulator, session: Any, x: Any,
                                            filled_vdi: str) -> None:
    task = x.task.create("bad format", "")
    reply = get(sim, {"session_id": session._session, "vdi": filled_vdi, "task_id": task,
                      "format": "iso"})
    assert reply.status == 404
    assert x.task.get_error_info(task) == ["INTERNAL_ERROR", "Unknown format iso"]


def test_tar_format_is_refused_as_not_supported(sim: Simulator, session: Any,
                                                filled_vdi: str) -> None:
    reply = get(sim, {"session_id": session._session, "vdi": filled_vdi, "format": "tar"})
    assert reply.status == 404 and b"not supported" in reply.body


def test_unknown_vdi_is_500_naming_uuid_invalid(sim: Simulator, session: Any, x: Any) -> None:
    task = x.task.create("unknown vdi", "")
    reply = get(sim, {"session_id": session._session, "vdi": "no-such-vdi", "task_id": task})
    assert reply.status == 500 and b"UUID_INVALID: [ VDI; no-such-vdi ]" in reply.body
    assert x.task.get_status(task) == "pending"  # XAPI fails before it adopts the task


def test_body_larger_than_the_vdi_fails_the_task(sim: Simulator, session: Any, x: Any) -> None:
    vdi, task = new_vdi(x, MiB), x.task.create("too big", "")
    try:
        put(sim, {"session_id": session._session, "vdi": vdi, "task_id": task},
            bytes(MiB + 4096))
    except OSError:
        pass  # the simulator may close the connection under the last bytes
    record = wait_task(x, task)
    assert record["status"] == "failure" and "past the end of the VDI" in record["error_info"][1]


# -- chunked=true and imports without a VDI --------------------------------------------------------


def test_chunked_upload_writes_only_the_chunks(sim: Simulator, session: Any, x: Any) -> None:
    vdi, task = new_vdi(x, 16 * MiB), x.task.create("chunked", "")
    body = chunk(MiB, b"a" * 4096) + chunk(10 * MiB + 7, b"bc") + END_CHUNK
    put(sim, {"session_id": session._session, "vdi": vdi, "task_id": task, "chunked": "true"},
        body)
    assert wait_task(x, task)["status"] == "success"
    disk = get(sim, {"session_id": session._session, "vdi": vdi}).body
    expected = bytearray(16 * MiB)
    expected[MiB : MiB + 4096] = b"a" * 4096
    expected[10 * MiB + 7 : 10 * MiB + 9] = b"bc"
    assert disk == expected
    assert int(x.VDI.get_physical_utilisation(vdi)) < MiB


def test_chunked_upload_without_the_end_chunk_fails(sim: Simulator, session: Any,
                                                    x: Any) -> None:
    vdi, task = new_vdi(x, MiB), x.task.create("chunked, no end", "")
    put(sim, {"session_id": session._session, "vdi": vdi, "task_id": task, "chunked": "true"},
        chunk(0, b"x" * 100))
    record = wait_task(x, task)
    assert record["status"] == "failure" and "final chunk header" in record["error_info"][1]


def test_raw_upload_into_an_sr_creates_an_imported_vdi(sim: Simulator, session: Any,
                                                       x: Any) -> None:
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    task = x.task.create("into sr", "")
    put(sim, {"session_id": session._session, "sr_id": sr, "task_id": task}, b"z" * MiB)
    result = wait_task(x, task)["result"]
    vdi = result.removeprefix("<value>").removesuffix("</value>")
    record = x.VDI.get_record(vdi)
    assert (record["name_label"], record["virtual_size"], record["SR"]) == (
        "Imported VDI", str(MiB), sr)


def test_import_without_vdi_or_sr_is_400_vdi_missing(sim: Simulator, session: Any,
                                                     x: Any) -> None:
    task = x.task.create("nothing to import into", "")
    reply = put(sim, {"session_id": session._session, "task_id": task}, b"z")
    assert reply.status == 400 and x.task.get_error_info(task) == ["VDI_MISSING"]


def test_vhd_upload_into_an_sr_is_400(sim: Simulator, session: Any, x: Any) -> None:
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    task = x.task.create("vhd into sr", "")
    reply = put(sim, {"session_id": session._session, "sr_id": sr, "task_id": task,
                      "format": "vhd"}, b"z")
    assert reply.status == 400
    assert x.task.get_error_info(task) == [
        "INTERNAL_ERROR", "Importing a VHD directly into an SR not yet supported"]


# -- bounded memory --------------------------------------------------------------------------------


def test_sparse_gigabyte_vdi_exports_as_a_small_vhd_quickly(
        tmp_path: Path, sim: Simulator, session: Any, x: Any) -> None:
    vdi = new_vdi(x, GiB)
    put(sim, {"session_id": session._session, "vdi": vdi, "chunked": "true"},
        chunk(100 * MiB, b"a" * MiB) + chunk(900 * MiB, b"b" * 10) + END_CHUNK)
    started = time.monotonic()
    reply = get(sim, {"session_id": session._session, "vdi": vdi, "format": "vhd"})
    assert time.monotonic() - started < 5.0
    assert len(reply.body) < 5 * MiB
    (tmp_path / "sparse.vhd").write_bytes(reply.body)
    info = json.loads(subprocess.run([qemu_img(), "info", "--output=json",
                                      str(tmp_path / "sparse.vhd")],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["virtual-size"] == GiB


def test_transfers_stream_in_bounded_memory(sim: Simulator, session: Any, x: Any) -> None:
    vdi = new_vdi(x, 64 * MiB)
    source = random.Random(7)
    tracemalloc.start()
    try:
        put(sim, {"session_id": session._session, "vdi": vdi},
            (source.randbytes(MiB) for _ in range(64)), length=64 * MiB)
        conn = connect(sim)
        conn.request("GET", "/export_raw_vdi?" + urllib.parse.urlencode(
            {"session_id": session._session, "vdi": vdi, "format": "vhd"}))
        response = conn.getresponse()
        total = 0
        for _ in range(1000):
            piece = response.read(MiB)
            if not piece:
                break
            total += len(piece)
        conn.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total > 64 * MiB
    assert peak < 24 * MiB, f"peak {peak / MiB:.1f} MiB for a 64 MiB VDI"
