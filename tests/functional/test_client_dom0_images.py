"""The VHD-chain plugin calls on their success path, end to end: host_glance.download_vhd and
upload_vhd against a local Glance over HTTPS (a trustme CA the simulated dom0 trusts), and
vm_management.receive_vhd, through XenAPISession and a simulator running os-xenapi's own plugins
with the simulated dom0's vhd-util. The SR is the seeded default one (ext, so it shows in dom0
as /var/run/sr-mount/<uuid>); the official SDK scans it and checks the VDIs that result.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import random
import ssl
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from os_xenapi.client import exception, host_glance, vm_management
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import dom0env_module

ORIGINATOR = "dom0-images-tests"
MiB = 1024 * 1024
SIZE = 4 * MiB
CA_BUNDLE = "/etc/ssl/certs/os-xenapi-test-ca.pem"
IMAGE = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"


simvhd = dom0env_module("simvhd")
BASE_DATA = random.Random(1).randbytes(3 * MiB)
LEAF_DATA = random.Random(2).randbytes(MiB)
LEAF_AT = 2 * MiB
# What the two-VHD chain holds: the base's bytes with the leaf's written over them.
CHAIN_BYTES = (BASE_DATA[:LEAF_AT] + LEAF_DATA + BASE_DATA[LEAF_AT + MiB:]
               + bytes(SIZE - len(BASE_DATA)))


def make_chain(directory: Path) -> None:
    """0.vhd (the leaf) on 1.vhd (its base), as an image or a migration delivers them."""
    simvhd.create(str(directory / "1.vhd"), SIZE)
    simvhd.write(str(directory / "1.vhd"), 0, BASE_DATA)
    simvhd.create(str(directory / "0.vhd"), SIZE, parent=str(directory / "1.vhd"))
    simvhd.write(str(directory / "0.vhd"), LEAF_AT, LEAF_DATA)


def image_tarball(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("0.vhd", "1.vhd"):
            archive.add(str(directory / name), arcname=name)
    return buffer.getvalue()


class Glance(http.server.BaseHTTPRequestHandler):
    """Glance API v2, as much as the plugin uses: image data, the PATCH, the status, the PUT."""

    protocol_version = "HTTP/1.1"
    images: dict[str, bytes] = {}
    uploads: dict[str, bytes] = {}
    missing: set[str] = set()  # images Glance does not have: 404 for every request

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
               ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _image(self) -> tuple[str, bool]:
        parts = self.path.strip("/").split("/")
        return parts[2], parts[3:] == ["file"]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        image, data = self._image()
        if image in self.missing:
            self._reply(404, b"no such image")
        elif data and image in self.images:
            body = self.images[image]
            self._reply(200, body, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        elif data:
            self._reply(404, b"no such image")
        else:
            self._reply(200, json.dumps({"id": image, "status": "queued"}).encode(),
                        {"Content-Type": "application/json"})

    def do_PATCH(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self._image()[0] in self.missing:
            self._reply(404, b"no such image")
        else:
            self._reply(200, b"{}", {"Content-Type": "application/json"})

    def do_PUT(self) -> None:  # noqa: N802
        image, _ = self._image()
        chunks = []
        for _ in range(1 << 20):
            size = int(self.rfile.readline().strip(), 16)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
            if size == 0:
                break
        self.uploads[image] = b"".join(chunks)
        self._reply(204)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Path:
    """The scratch dom0: the test CA in its trust directory, and /images for migrations."""
    made = tmp_path_factory.mktemp("dom0")
    bundle = made / CA_BUNDLE.lstrip("/")
    bundle.parent.mkdir(parents=True)
    ca.cert_pem.write_to_path(str(bundle))
    (made / "images").mkdir()
    return made


@pytest.fixture(scope="module")
def glance(ca: trustme.CA) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Glance)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def sr(x: Any) -> str:
    return x.pool.get_default_SR(x.pool.get_all()[0])


def sr_path(x: Any, sr: str) -> str:
    return f"/var/run/sr-mount/{x.SR.get_uuid(sr)}"


def vdi_bytes(sim: Simulator, vdi_uuid: str) -> bytes:
    return Path(sim.run(lambda xapi: str(xapi.vdis.path(vdi_uuid)))).read_bytes()


def https(glance: str):  # noqa: ANN201 (the callback's type is the client's business)
    def endpoint(kwargs: dict) -> None:
        kwargs.update(endpoint=glance, api_version=2, ca_bundle=CA_BUNDLE)
    return endpoint


def test_download_vhd_imports_the_images_chain_as_vdis_of_the_sr(
        sim: Simulator, x: Any, sr: str, session: XenAPISession, glance: str,
        tmp_path: Path) -> None:
    make_chain(tmp_path)
    Glance.images[IMAGE] = image_tarball(tmp_path)
    stack = [str(uuid.uuid4()), str(uuid.uuid4())]
    made = host_glance.download_vhd(session, 0, https(glance), None, IMAGE, sr_path(x, sr),
                                    {"X-Auth-Token": "t"}, stack)
    assert made == {"root": {"uuid": stack[-1]}}
    x.SR.scan(sr)
    leaf = x.VDI.get_record(x.VDI.get_by_uuid(stack[-1]))
    base = x.VDI.get_record(x.VDI.get_by_uuid(stack[0]))
    assert (leaf["managed"], leaf["sm_config"]["vhd-parent"]) == (True, stack[0])
    assert leaf["virtual_size"] == str(SIZE)
    assert vdi_bytes(sim, stack[-1]) == CHAIN_BYTES
    assert vdi_bytes(sim, stack[0])[:len(BASE_DATA)] == BASE_DATA
    assert base["read_only"] is True


def test_download_vhd_leaves_no_staging_area_in_the_sr(root: Path, x: Any, sr: str,
                                                       session: XenAPISession, glance: str,
                                                       tmp_path: Path) -> None:
    make_chain(tmp_path)
    Glance.images[IMAGE] = image_tarball(tmp_path)
    host_glance.download_vhd(session, 0, https(glance), None, IMAGE, sr_path(x, sr), {},
                             [str(uuid.uuid4()), str(uuid.uuid4())])
    directory = root / sr_path(x, sr).lstrip("/")
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]


def test_upload_vhd_sends_the_vdis_bytes_as_a_vhd_in_a_gzipped_tar(
        sim: Simulator, x: Any, sr: str, session: XenAPISession, glance: str,
        tmp_path: Path) -> None:
    vdi = x.VDI.create({"SR": sr, "virtual_size": str(SIZE), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}, "name_label": "to-upload"})
    vdi_uuid = x.VDI.get_uuid(vdi)
    data = random.Random(3).randbytes(MiB + 512)
    with open(sim.run(lambda xapi: str(xapi.vdis.ensure(vdi_uuid, SIZE))), "r+b") as handle:
        handle.write(data)
    image = str(uuid.uuid4())
    assert host_glance.upload_vhd(session, 0, https(glance), None, image, sr_path(x, sr), {},
                                  [vdi_uuid], {"os_type": "linux"}) is None  # as in 0.3.4
    with tarfile.open(fileobj=io.BytesIO(Glance.uploads[image]), mode="r:gz") as archive:
        assert archive.getnames() == [".", "./0.vhd"]  # 0.3.4's layout
        archive.extractall(tmp_path, filter="data")
    sent = str(tmp_path / "0.vhd")
    assert simvhd.info(sent)["size"] == SIZE
    assert simvhd.read(sent, 0, SIZE) == data + bytes(SIZE - len(data))
    x.VDI.destroy(vdi)


def test_upload_vhd_to_a_missing_image_is_plugin_image_not_found(
        x: Any, sr: str, session: XenAPISession, glance: str) -> None:
    vdi = x.VDI.create({"SR": sr, "virtual_size": str(SIZE), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}, "name_label": "orphan"})
    image = str(uuid.uuid4())
    Glance.missing.add(image)
    try:
        with pytest.raises(exception.PluginImageNotFound, match=image):  # Nova: ImageNotFound
            host_glance.upload_vhd(session, 3, https(glance), None, image, sr_path(x, sr), {},
                                   [x.VDI.get_uuid(vdi)], {})
    finally:
        x.VDI.destroy(vdi)


def test_download_vhd_of_a_missing_image_gives_up_at_once_as_retries_exceeded(
        x: Any, sr: str, session: XenAPISession, glance: str) -> None:
    image = str(uuid.uuid4())
    Glance.missing.add(image)
    tries: list[dict] = []

    def endpoint(kwargs: dict) -> None:
        tries.append(dict(kwargs))
        https(glance)(kwargs)

    with pytest.raises(exception.PluginRetriesExceeded) as info:  # Nova: CouldNotFetchImage
        host_glance.download_vhd(session, 3, endpoint, None, image, sr_path(x, sr), {},
                                 [str(uuid.uuid4())])
    assert isinstance(info.value, exception.PluginImageNotFound)
    assert image in str(info.value) and len(tries) == 1  # no retry can make the image appear


def test_receive_vhd_moves_a_received_chain_into_the_sr(sim: Simulator, root: Path, x: Any,
                                                        sr: str,
                                                        session: XenAPISession) -> None:
    instance = str(uuid.uuid4())
    received = root / "images" / f"instance{instance}"
    received.mkdir()
    make_chain(received)
    stack = [str(uuid.uuid4()), str(uuid.uuid4())]
    made = vm_management.receive_vhd(session, instance, sr_path(x, sr), stack)
    assert made == {"root": {"uuid": stack[-1]}}
    assert not received.exists()
    x.SR.scan(sr)
    assert vdi_bytes(sim, stack[-1]) == CHAIN_BYTES
