"""pytest fixtures shared by the glance plugin tests (test_glance.py, test_glance_upload.py):
a trustme CA, the local Glance stand-in serving HTTPS with its certificate, the CA bundle in
the scratch dom0, and the SR the images go to or come from.
"""

import pytest
import trustme

from . import glance_server, vhdfakes
from .glance_server import fake_vhd_text, image_tarball
from .vhdfakes import OLD_UUIDS

IMAGE = "6f1e2d3c-4b5a-4968-8776-655443322110"
CA_PATH = "/etc/pki/tls/certs/os-xenapi-test-ca.pem"
CHAIN = [("./0.vhd", fake_vhd_text(payload="leaf")), ("./1.vhd", fake_vhd_text(payload="base"))]


@pytest.fixture(scope="module")
def ca():
    """One CA for the module: making certificates is the slow part."""
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca, dom0_root):
    """The CA's certificate as a bundle in the scratch dom0's /etc/pki; returns its path."""
    directory = dom0_root / "etc" / "pki" / "tls" / "certs"
    directory.mkdir(parents=True)
    (directory / "os-xenapi-test-ca.pem").write_bytes(ca.cert_pem.bytes())
    return CA_PATH


@pytest.fixture
def sr(dom0_root, commands):
    """The SR, with vhd-util answered by the fake."""
    vhdfakes.use_vhd_util(commands)
    return vhdfakes.make_sr(dom0_root)


@pytest.fixture(scope="module")
def server_tls(ca):
    return glance_server.server_context(ca, "127.0.0.1", "localhost")


@pytest.fixture
def glance(server_tls):
    """Glance over HTTPS holding IMAGE, whose data is a two-VHD chain."""
    with glance_server.Server(server_tls) as server:
        server.glance.add_image(IMAGE, image_tarball(CHAIN))
        yield server


@pytest.fixture
def sr_chain(sr):
    """The SR holding a two-VHD chain, OLD_UUIDS[0] (leaf) and OLD_UUIDS[1]."""
    vhdfakes.make_chain(sr, OLD_UUIDS[:2])
    return sr
