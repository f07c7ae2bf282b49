"""glance plugin: upload_vhd2 to a local Glance over HTTPS (API v1 and v2).

The stand-in Glance (glance_server.py, fixtures in glance_fixtures.py) records every request,
so each test sees the headers, JSON patch and tarball the plugin sent.
"""

import gzip
import io
import json
import tarfile

import pytest

from . import glance_fixtures, harness, refusals
from .glance_fixtures import IMAGE
from .vhdfakes import OLD_UUIDS, SR_PATH

CODES = harness.dom0lib().errors
# The shared fixtures of glance_fixtures.py, made visible to pytest in this module.
ca = glance_fixtures.ca
ca_bundle = glance_fixtures.ca_bundle
glance = glance_fixtures.glance
server_tls = glance_fixtures.server_tls
sr = glance_fixtures.sr
sr_chain = glance_fixtures.sr_chain


def _upload(server, ca_bundle, **changes):
    kwargs = {"vdi_uuids": OLD_UUIDS[:2], "image_id": IMAGE, "endpoint": server.url(),
              "sr_path": SR_PATH, "extra_headers": {"X-Auth-Token": "t0ken"},
              "properties": {"os_type": "linux", "auto_disk_config": True},
              "ca_bundle": ca_bundle}
    kwargs.update(changes)
    return harness.call("glance", "upload_vhd2", **kwargs)


def _tar_members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {member.name: (archive.extractfile(member).read().decode()
                              if member.isreg() else None) for member in archive}


def test_upload_v1_checks_the_image_is_queued_then_puts_the_tarball(glance, sr_chain, ca_bundle):
    assert _upload(glance, ca_bundle) is None
    head, put = glance.glance.requests
    assert (head.method, head.path) == ("HEAD", "/v1/images/" + IMAGE)
    assert (put.method, put.path, put.chunked) == ("PUT", "/v1/images/" + IMAGE, True)


def test_upload_v1_sends_0_3_4s_image_headers_and_the_properties(glance, sr_chain, ca_bundle):
    _upload(glance, ca_bundle)
    headers = glance.glance.requests[1].headers
    assert {key: headers[key] for key in (
        "x-image-meta-disk-format", "x-image-meta-container-format", "x-image-meta-is-public",
        "x-image-meta-status", "x-glance-registry-purge-props", "x-image-meta-property-os-type",
        "x-image-meta-property-auto-disk-config", "X-Auth-Token")} == {
        "x-image-meta-disk-format": "vhd", "x-image-meta-container-format": "ovf",
        "x-image-meta-is-public": "False", "x-image-meta-status": "queued",
        "x-glance-registry-purge-props": "False", "x-image-meta-property-os-type": "linux",
        "x-image-meta-property-auto-disk-config": "True", "X-Auth-Token": "t0ken"}


def test_upload_sends_the_chain_as_a_tarball_of_numbered_vhds(glance, sr_chain, ca_bundle):
    _upload(glance, ca_bundle)
    members = _tar_members(glance.glance.requests[1].body)
    assert members == {".": None,
                       "./0.vhd": (sr_chain / (OLD_UUIDS[0] + ".vhd")).read_text(),
                       "./1.vhd": (sr_chain / (OLD_UUIDS[1] + ".vhd")).read_text()}


def test_upload_compresses_at_the_requested_level(glance, sr_chain, ca_bundle):
    _upload(glance, ca_bundle, properties={"xenapi_image_compression_level": "1"})
    body = glance.glance.requests[1].body
    assert gzip.decompress(body)
    # The gzip header's XFL byte says "fastest" (4) for level 1.
    assert body[8] == 4


def test_upload_leaves_the_sr_as_it_was(glance, sr_chain, ca_bundle):
    before = refusals.tree_state(sr_chain)
    _upload(glance, ca_bundle)
    assert refusals.tree_state(sr_chain) == before


def test_upload_of_an_image_no_longer_queued_is_wrong_state(glance, sr_chain, ca_bundle,
                                                             failure):
    glance.glance.status = "active"
    with pytest.raises(failure) as info:
        _upload(glance, ca_bundle)
    assert info.value.params == [CODES.WRONG_STATE, "image " + IMAGE, "active", "queued"]
    assert [request.method for request in glance.glance.requests] == ["HEAD"]


def test_upload_v2_patches_checks_status_and_puts_the_file(glance, sr_chain, ca_bundle):
    _upload(glance, ca_bundle, api_version=2)
    patch, get, put = glance.glance.requests
    assert (patch.method, patch.path) == ("PATCH", "/v2/images/" + IMAGE)
    assert patch.headers["Content-Type"] == "application/openstack-images-v2.1-json-patch"
    assert json.loads(patch.body) == [
        {"op": "add", "path": "/container_format", "value": "ovf"},
        {"op": "add", "path": "/disk_format", "value": "vhd"},
        {"op": "add", "path": "/visibility", "value": "private"},
        {"op": "add", "path": "/auto-disk-config", "value": "True"},
        {"op": "add", "path": "/os-type", "value": "linux"}]
    assert (get.method, get.path) == ("GET", "/v2/images/" + IMAGE)
    assert (put.method, put.path, put.chunked) == ("PUT", f"/v2/images/{IMAGE}/file", True)
    assert put.headers["Content-Type"] == "application/octet-stream"


def test_upload_v2_of_an_active_image_is_wrong_state(glance, sr_chain, ca_bundle, failure):
    glance.glance.status = "active"
    with pytest.raises(failure) as info:
        _upload(glance, ca_bundle, api_version=2)
    assert info.value.params[0] == CODES.WRONG_STATE


def test_an_upload_the_service_refuses_is_an_http_error(glance, sr_chain, ca_bundle, failure):
    glance.glance.answers[("PUT", "/v1/images/" + IMAGE)] = (413, {}, b"too big")
    with pytest.raises(failure) as info:
        _upload(glance, ca_bundle)
    assert info.value.params == [CODES.HTTP_ERROR, "PUT /v1/images/" + IMAGE, "413",
                                 "Request Entity Too Large"]


def test_an_upload_the_service_fails_is_retryable(glance, sr_chain, ca_bundle, failure):
    glance.glance.answers[("PUT", "/v1/images/" + IMAGE)] = (502, {}, b"gateway")
    with pytest.raises(failure) as info:
        _upload(glance, ca_bundle)
    assert info.value.params[0] == CODES.RETRYABLE


def test_upload_of_an_image_glance_lost_is_not_found(glance, sr_chain, ca_bundle, failure):
    glance.glance.answers[("HEAD", "/v1/images/" + IMAGE)] = (404, {}, b"")
    with pytest.raises(failure) as info:
        _upload(glance, ca_bundle)
    assert info.value.params == [CODES.NOT_FOUND, "image", IMAGE]


def test_upload_to_an_untrusted_service_sends_nothing(glance, sr_chain, failure):
    with pytest.raises(failure) as info:
        _upload(glance, None)
    assert info.value.params[0] == CODES.CERTIFICATE_ERROR
    assert glance.glance.requests == []


def test_upload_of_a_missing_vhd_is_not_found(glance, sr_chain, ca_bundle, failure):
    with pytest.raises(failure) as info:
        _upload(glance, ca_bundle, vdi_uuids=[OLD_UUIDS[2]])
    assert info.value.params == [CODES.NOT_FOUND, "VHD", OLD_UUIDS[2]]
    assert glance.glance.requests == []


def test_upload_runs_under_the_dom0_python_the_way_xapi_runs_it(glance, sr_chain, ca_bundle,
                                                                 dom0_root):
    params = {"args": [OLD_UUIDS[:2], IMAGE, glance.url(), SR_PATH, {}, {}, 2, ca_bundle]}
    status = harness.run_like_xapi(harness.PLUGINS / "glance.py", "upload_vhd2",
                                   {"params": json.dumps(params)},
                                   env_extra={"DOM0_ROOT": str(dom0_root)})
    assert status == ("Success", "null")
    assert set(_tar_members(glance.glance.requests[-1].body)) == {".", "./0.vhd", "./1.vhd"}
