"""glance plugin: download_vhd2 from a local Glance over HTTPS, and hostile input.

The image service is glance_server.py on 127.0.0.1 with a certificate from a trustme CA
(glance_fixtures.py), so certificate checks are real: the CA is handed to the plugin as a
bundle under the scratch dom0's /etc/pki, or not, to see it refuse. vhd-util is
stubs/fake_vhd_util.py behind FakeCommands; the SR is a directory under the scratch DOM0_ROOT.
"""

import io
import json
import logging
import os
import tarfile

import pytest

from . import glance_fixtures, glance_server, harness, refusals, vhdfakes
from .glance_fixtures import CA_PATH, CHAIN, IMAGE
from .glance_server import image_tarball
from .vhdfakes import NEW_UUIDS, OLD_UUIDS, SR_PATH

CODES = harness.dom0lib().errors
# The shared fixtures of glance_fixtures.py, made visible to pytest in this module.
ca = glance_fixtures.ca
ca_bundle = glance_fixtures.ca_bundle
glance = glance_fixtures.glance
server_tls = glance_fixtures.server_tls
sr = glance_fixtures.sr
sr_chain = glance_fixtures.sr_chain


def _download(server, ca_bundle=None, **changes):
    kwargs = {"image_id": IMAGE, "endpoint": server.url(), "uuid_stack": NEW_UUIDS,
              "sr_path": SR_PATH, "extra_headers": {"X-Auth-Token": "t0ken"}}
    if ca_bundle:
        kwargs["ca_bundle"] = ca_bundle
    kwargs.update(changes)
    return harness.call("glance", "download_vhd2", **kwargs)


def _refused_download(server, sr, failure, **changes):
    before = refusals.tree_state(sr)
    with pytest.raises(failure) as info:
        _download(server, **changes)
    assert refusals.tree_state(sr) == before
    return info.value.params


def test_download_imports_the_images_chain_and_returns_the_leaf(glance, sr, ca_bundle):
    assert _download(glance, ca_bundle) == {"root": {"uuid": NEW_UUIDS[2]}}
    assert vhdfakes.chain_from(sr, NEW_UUIDS[2]) == [(NEW_UUIDS[2], "leaf"),
                                                     (NEW_UUIDS[1], "base")]


def test_download_leaves_no_staging_area(glance, sr, ca_bundle):
    _download(glance, ca_bundle)
    assert vhdfakes.vhd_names(sr) == sorted(u + ".vhd" for u in NEW_UUIDS[1:])
    assert [name for name in os.listdir(str(sr)) if not name.endswith(".vhd")] == []


def test_download_v1_gets_the_image_with_the_callers_headers(glance, sr, ca_bundle):
    _download(glance, ca_bundle)
    [request] = glance.glance.requests
    assert (request.method, request.path) == ("GET", "/v1/images/" + IMAGE)
    assert request.headers["X-Auth-Token"] == "t0ken"


def test_download_v2_gets_the_images_file(glance, sr, ca_bundle):
    _download(glance, ca_bundle, api_version=2)
    assert glance.glance.requests[0].path == f"/v2/images/{IMAGE}/file"


def test_an_endpoint_path_prefix_is_kept(glance, sr, ca_bundle):
    data = image_tarball(CHAIN)
    glance.glance.answers[("GET", "/image/v1/images/" + IMAGE)] = (200, {}, data)
    _download(glance, ca_bundle, endpoint=glance.url() + "/image/")
    assert glance.glance.requests[0].path == "/image/v1/images/" + IMAGE


def test_download_by_host_name_checks_the_name_against_the_certificate(glance, sr, ca_bundle):
    assert _download(glance, ca_bundle, endpoint=glance.url("localhost"))["root"]


def test_a_certificate_from_an_unknown_ca_is_refused(glance, sr, failure):
    params = _refused_download(glance, sr, failure)
    assert params[:2] == [CODES.CERTIFICATE_ERROR, "127.0.0.1"]
    assert "CERTIFICATE_VERIFY_FAILED" in params[2]


def test_a_certificate_for_another_host_is_refused(ca, sr, ca_bundle, failure):
    with glance_server.Server(glance_server.server_context(ca, "glance.example.org")) as server:
        server.glance.add_image(IMAGE, image_tarball(CHAIN))
        params = _refused_download(server, sr, failure, ca_bundle=ca_bundle)
    assert params[:2] == [CODES.CERTIFICATE_ERROR, "127.0.0.1"]


def test_insecure_skips_the_certificate_check_and_logs_a_warning(glance, sr, caplog):
    with caplog.at_level(logging.WARNING):
        assert _download(glance, insecure=True)["root"]["uuid"] == NEW_UUIDS[2]
    assert "TLS certificate checks are OFF for 127.0.0.1" in caplog.text


def test_plain_http_endpoints_still_work(sr):
    with glance_server.Server() as server:
        server.glance.add_image(IMAGE, image_tarball(CHAIN))
        assert _download(server)["root"]["uuid"] == NEW_UUIDS[2]


def test_a_missing_image_is_not_found(glance, sr, ca_bundle, failure):
    params = _refused_download(glance, sr, failure, ca_bundle=ca_bundle, image_id="missing")
    assert params == [CODES.NOT_FOUND, "image", "missing"]


def test_a_forbidden_image_is_a_permanent_http_error(glance, sr, ca_bundle, failure):
    glance.glance.answers[("GET", "/v1/images/" + IMAGE)] = (403, {}, b"no")
    params = _refused_download(glance, sr, failure, ca_bundle=ca_bundle)
    assert params == [CODES.HTTP_ERROR, "GET /v1/images/" + IMAGE, "403", "Forbidden"]


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_a_transient_http_status_is_retryable(glance, sr, ca_bundle, failure, status):
    glance.glance.answers[("GET", "/v1/images/" + IMAGE)] = (status, {}, b"later")
    params = _refused_download(glance, sr, failure, ca_bundle=ca_bundle)
    assert params[0] == CODES.RETRYABLE and params[2].startswith(str(status))


def test_a_redirect_is_not_followed(glance, sr, ca_bundle, failure):
    glance.glance.answers[("GET", "/v1/images/" + IMAGE)] = (
        302, {"Location": "http://elsewhere/"}, b"")
    params = _refused_download(glance, sr, failure, ca_bundle=ca_bundle)
    assert params[0] == CODES.HTTP_ERROR and params[3] == "redirects are not followed"


def test_a_checksum_mismatch_is_retryable_and_imports_nothing(glance, sr, ca_bundle, failure):
    glance.glance.checksums[IMAGE] = "0" * 32
    params = _refused_download(glance, sr, failure, ca_bundle=ca_bundle)
    assert params[:2] == [CODES.RETRYABLE, "image " + IMAGE]
    assert params[2].startswith("checksum mismatch")


def test_a_base64_content_md5_is_checked_too(glance, sr, ca_bundle, failure):
    data = image_tarball(CHAIN)
    glance.glance.answers[("GET", "/v1/images/" + IMAGE)] = (
        200, {"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="}, data)
    assert _refused_download(glance, sr, failure, ca_bundle=ca_bundle)[0] == CODES.RETRYABLE


def test_a_truncated_body_is_retryable(glance, sr, ca_bundle, failure):
    data = image_tarball(CHAIN)
    glance.glance.answers[("GET", "/v1/images/" + IMAGE)] = (
        200, {"Content-Length": str(len(data) + 5000), "Connection": "close"}, data)
    assert _refused_download(glance, sr, failure, ca_bundle=ca_bundle)[0] == CODES.RETRYABLE


def test_a_body_that_is_not_a_gzipd_tar_is_bad_data(glance, sr, ca_bundle, failure):
    glance.glance.add_image(IMAGE, b"<html>maintenance</html>")
    params = _refused_download(glance, sr, failure, ca_bundle=ca_bundle)
    assert params[:2] == [CODES.BAD_DATA, "image"]


def test_a_refused_service_is_retryable(sr, failure):
    with glance_server.Server() as server:
        url = server.url()
    params = _refused_download(server, sr, failure, endpoint=url)
    assert params[:2] == [CODES.RETRYABLE, "image service 127.0.0.1"]


def _hostile_tar(kind):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        def add(name, data=b"VHD\n", **fields):
            info = tarfile.TarInfo(name)
            info.size = len(data) if fields.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
            for key, value in fields.items():
                setattr(info, key, value)
            archive.addfile(info, io.BytesIO(data) if info.size else None)
        if kind == "traversal":
            add("../../../../etc/cron.d/evil.vhd")
        elif kind == "absolute":
            add("/etc/cron.d/0.vhd")
        elif kind == "symlink":
            add("0.vhd", type=tarfile.SYMTYPE, linkname="/etc/shadow")
        elif kind == "hardlink":
            add("0.vhd", type=tarfile.LNKTYPE, linkname="/etc/shadow")
        elif kind == "device":
            add("0.vhd", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        elif kind == "subdirectory":
            add("sub/0.vhd")
        elif kind == "duplicate":
            add("0.vhd")
            add("./0.vhd")
        elif kind == "other-file":
            add("0.vhd")
            add("README")
        elif kind == "too-many":
            for number in range(40):
                add(f"{number}.vhd")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "hardlink", "device",
                                  "subdirectory", "duplicate", "other-file", "too-many"])
def test_a_hostile_archive_is_bad_data_and_writes_nothing_outside(glance, sr, ca_bundle,
                                                                   dom0_root, failure, kind):
    glance.glance.add_image(IMAGE, _hostile_tar(kind))
    before = refusals.tree_state(dom0_root)
    with pytest.raises(failure) as info:
        _download(glance, ca_bundle)
    assert info.value.params[:2] == [CODES.BAD_DATA, "image"]
    assert refusals.tree_state(dom0_root) == before


def test_a_missing_ca_bundle_is_not_found(glance, sr, failure):
    params = _refused_download(glance, sr, failure, ca_bundle=CA_PATH)
    assert params == [CODES.NOT_FOUND, "CA bundle", CA_PATH]


def test_a_ca_bundle_symlinked_out_of_its_directory_is_refused(glance, sr, dom0_root, tmp_path,
                                                               ca, failure):
    (dom0_root / "etc" / "pki").mkdir(parents=True)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    os.symlink(str(tmp_path / "ca.pem"), str(dom0_root / "etc" / "pki" / "ca.pem"))
    params = _refused_download(glance, sr, failure, ca_bundle="/etc/pki/ca.pem")
    assert params[2] == "ca_bundle"


def test_a_ca_bundle_without_certificates_is_bad_data(glance, sr, dom0_root, failure):
    (dom0_root / "etc" / "ssl").mkdir(parents=True)
    (dom0_root / "etc" / "ssl" / "empty.pem").write_text("not a certificate\n")
    params = _refused_download(glance, sr, failure, ca_bundle="/etc/ssl/empty.pem")
    assert params[:2] == [CODES.BAD_DATA, "CA bundle"]


# -- hostile input ------------------------------------------------------------------------------

DOWNLOAD = {"image_id": IMAGE, "endpoint": "https://127.0.0.1:9292", "uuid_stack": NEW_UUIDS,
            "sr_path": SR_PATH, "extra_headers": {}}
UPLOAD = {"vdi_uuids": OLD_UUIDS[:2], "image_id": IMAGE, "endpoint": "https://127.0.0.1:9292",
          "sr_path": SR_PATH, "extra_headers": {}, "properties": {}}
HOSTILE = [
    ("download_vhd2", {"endpoint": "file:///etc/shadow"}, "endpoint"),
    ("download_vhd2", {"endpoint": "https://user:secret@glance:9292"}, "endpoint"),
    ("download_vhd2", {"endpoint": "https://glance:9292/?x=1"}, "endpoint"),
    ("download_vhd2", {"endpoint": "https://glance:99999"}, "endpoint"),
    ("download_vhd2", {"endpoint": "https://glance example:9292"}, "endpoint"),
    ("download_vhd2", {"endpoint": "https://-glance:9292"}, "endpoint"),
    ("download_vhd2", {"endpoint": "https://glance/" + "a" * 3000}, "endpoint"),
    ("download_vhd2", {"image_id": "../../v2/images"}, "image_id"),
    ("download_vhd2", {"image_id": "x?y=1"}, "image_id"),
    ("download_vhd2", {"extra_headers": {"Host": "evil"}}, "extra_headers"),
    ("download_vhd2", {"extra_headers": {"Transfer-Encoding": "chunked"}}, "extra_headers"),
    ("download_vhd2", {"extra_headers": {"X-A": "v\r\nX-Injected: 1"}}, "extra_headers"),
    ("download_vhd2", {"extra_headers": {"X A": "v"}}, "extra_headers"),
    ("download_vhd2", {"extra_headers": {f"X-{n}": "v" for n in range(40)}}, "extra_headers"),
    ("download_vhd2", {"extra_headers": ["X-Auth-Token: x"]}, "extra_headers"),
    ("download_vhd2", {"ca_bundle": "/etc/shadow"}, "ca_bundle"),
    ("download_vhd2", {"ca_bundle": "/etc/pki/../shadow"}, "ca_bundle"),
    ("download_vhd2", {"api_version": 3}, "api_version"),
    ("download_vhd2", {"insecure": "yes"}, "insecure"),
    ("download_vhd2", {"uuid_stack": ["../../etc"]}, "uuid_stack"),
    ("download_vhd2", {"sr_path": "/tmp"}, "sr_path"),
    ("upload_vhd2", {"vdi_uuids": [OLD_UUIDS[0], OLD_UUIDS[0]]}, "vdi_uuids"),
    ("upload_vhd2", {"properties": {"nested": {"a": 1}}}, "properties"),
    ("upload_vhd2", {"properties": {"bad name": "x"}}, "properties"),
    ("upload_vhd2", {"properties": {"k": "v\r\nX-Injected: 1"}}, "properties"),
    ("upload_vhd2", {"properties": {f"k{n}": "v" for n in range(200)}}, "properties"),
    ("upload_vhd2", {"properties": {"xenapi_image_compression_level": 12}}, "properties"),
    ("upload_vhd2", {"vdi_uuids": ["../" + OLD_UUIDS[0]]}, "vdi_uuids"),
]


@pytest.mark.parametrize("function,changes,argument", HOSTILE,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(HOSTILE)])
def test_hostile_argument_is_refused_and_changes_nothing(sr_chain, commands, dom0_root, failure,
                                                        function, changes, argument):
    base = DOWNLOAD if function == "download_vhd2" else UPLOAD
    refusals.assert_refused("glance", function, dict(base, **changes), argument, commands,
                            dom0_root, failure)


@pytest.mark.parametrize("name,raw", refusals.NOT_JSON_PARAMS,
                         ids=[name for name, _ in refusals.NOT_JSON_PARAMS])
@pytest.mark.parametrize("function", ["download_vhd2", "upload_vhd2"])
def test_params_that_are_not_the_json_protocol_are_refused(sr, commands, dom0_root, failure,
                                                           function, name, raw):
    refusals.assert_refused("glance", function, {}, "params", commands, dom0_root, failure,
                            raw_params=raw)


def test_download_runs_under_the_dom0_python_the_way_xapi_runs_it(glance, sr, ca_bundle,
                                                                   dom0_root, tmp_path):
    bin_dir = vhdfakes.install_vhd_util_launcher(tmp_path / "bin")
    params = {"args": [IMAGE, glance.url(), NEW_UUIDS, SR_PATH, {}],
              "kwargs": {"ca_bundle": ca_bundle}}
    status = harness.run_like_xapi(
        harness.PLUGINS / "glance.py", "download_vhd2", {"params": json.dumps(params)},
        env_extra={"DOM0_ROOT": str(dom0_root),
                   "PATH": str(bin_dir) + os.pathsep + os.environ["PATH"]})
    assert status == ("Success", json.dumps({"root": {"uuid": NEW_UUIDS[2]}}))
    assert vhdfakes.vhd_names(sr) == sorted(u + ".vhd" for u in NEW_UUIDS[1:])
