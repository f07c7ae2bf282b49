#!/usr/bin/python3 -B
"""glance: download an image's VHD chain into an SR, and upload a VDI chain as an image.

Images are gzip'd tars of 0.vhd (the leaf), 1.vhd... (dom0lib.vhdtar), streamed over
HTTP(S) with bounded memory (dom0lib.httpclient): certificates are checked against dom0's
trust store or a CA bundle the caller names, unless insecure is set, which is logged. A
download lands in a staging area inside the SR and is imported only once the whole image
arrived, matched its announced MD5 and passed vhd-util's checks (dom0lib.vhdchain). Failures
a retry may cure are OS_XENAPI_RETRYABLE, so the client can retry them as 0.3.4 retried
RetryableError.
"""

import json

import dom0lib
import XenAPIPlugin
from dom0lib import httpclient, staging, vhdchain, vhdtar
from dom0lib.errors import RETRYABLE, WRONG_STATE, InvalidArgument, PluginError
from dom0lib.logs import get_logger
from dom0lib.validate import UUID, Bool, Int, List, Map, Nullable, Scalar, Str

IMAGE_ID = Str(64, r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
               what="an image id: 1-64 characters of A-Z a-z 0-9 _ . -")
PROPERTIES = Map(Str(128, r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}", what="a property name"),
                 Scalar(1024), 128)
COMPRESSION_PROPERTY = "xenapi_image_compression_level"
# A tar's end is padded to a 10 KiB record and gzip adds a trailer; allow that, not more.
MAX_TRAILING_BYTES = 1024 * 1024
V2_PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
LOG = get_logger("glance")


def _image_path(api_version, image_id):
    return ("/v1/images/" if api_version == 1 else "/v2/images/") + image_id


def _check_download(body, response, image_id):
    """Raise RETRYABLE if the body is shorter than announced or its MD5 differs."""
    length = response.getheader("content-length")
    if length and length.isdigit() and int(length) != body.count:
        raise PluginError(RETRYABLE, "image " + image_id,
                          f"received {body.count} of {length} bytes")
    expected = httpclient.expected_md5(response)
    if expected is None:
        LOG.info("image %s: the service announced no checksum; not verified", image_id)
    elif body.md5() is None:
        LOG.warning("image %s: MD5 is unavailable here (FIPS?); not verified", image_id)
    elif body.md5() != expected:
        raise PluginError(RETRYABLE, "image " + image_id,
                          f"checksum mismatch: expected {expected}, got {body.md5()}")


@dom0lib.takes(image_id=IMAGE_ID, endpoint=httpclient.ENDPOINT,
               uuid_stack=List(UUID, vhdchain.MAX_CHAIN, min_items=1), sr_path=staging.SR_PATH,
               extra_headers=httpclient.HEADERS, api_version=Int(1, 2),
               ca_bundle=Nullable(httpclient.CA_BUNDLE), insecure=Bool())
def download_vhd2(ctx, image_id, endpoint, uuid_stack, sr_path, extra_headers, api_version=1,
                  ca_bundle=None, insecure=False):
    """Download image_id from the Glance endpoint (API v1 or v2) and import its VHD chain
    into the SR under UUIDs from the end of uuid_stack; return {"root": {"uuid": <leaf>}}.

    ca_bundle and insecure are new in plugin API 3.0. Raises OS_XENAPI_NOT_FOUND (image,
    SR), OS_XENAPI_RETRYABLE, OS_XENAPI_HTTP_ERROR, OS_XENAPI_CERTIFICATE_ERROR,
    OS_XENAPI_BAD_DATA (not a VHD chain); the SR is unchanged after any failure.
    """
    sr_dir = staging.sr_directory(sr_path)
    context = httpclient.tls_context(endpoint, ca_bundle, insecure)
    path = _image_path(api_version, image_id) + ("/file" if api_version == 2 else "")
    with staging.staging_area(sr_dir) as area:
        with httpclient.Connection(endpoint, context) as connection:
            response = connection.request("GET", path, dict(extra_headers))
            httpclient.check_status(response, "GET " + path, image_id)
            body = httpclient.Body(response, endpoint.host)
            vhdtar.extract(body, area)
            body.drain(MAX_TRAILING_BYTES)
            _check_download(body, response, image_id)
        leaf = vhdchain.import_vhds(sr_dir, area, uuid_stack)
    return {"root": {"uuid": leaf}}


def _compression(properties):
    value = properties.get(COMPRESSION_PROPERTY)
    if value is None:
        return vhdtar.DEFAULT_COMPRESSION
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = 0
    if isinstance(value, bool) or not 1 <= level <= 9:
        raise InvalidArgument("properties", COMPRESSION_PROPERTY + " must be 1 to 9")
    return level


def _text(value):
    """A property value as 0.3.4 sent it: the string itself, else str() (True -> "True")."""
    return value if isinstance(value, str) else str(value)


def _require_queued(status, image_id):
    if status != "queued":
        raise PluginError(WRONG_STATE, "image " + image_id, status or "unknown", "queued")


def _send_tar(connection, path, headers, image_id, area, names, level):
    upload = connection.chunked("PUT", path, headers, image_id)
    vhdtar.write(area, names, upload, level)
    httpclient.check_status(upload.finish(), "PUT " + path, image_id)


def _upload_v1(endpoint, context, image_id, headers, properties, area, names, level):
    path = _image_path(1, image_id)
    with httpclient.Connection(endpoint, context) as connection:
        response = connection.request("HEAD", path, headers)
        httpclient.check_status(response, "HEAD " + path, image_id)
        _require_queued(response.getheader("x-image-meta-status"), image_id)
    put_headers = dict(headers)
    put_headers.update({
        "Content-Type": "application/octet-stream",
        "x-image-meta-disk-format": "vhd", "x-image-meta-container-format": "ovf",
        "x-image-meta-is-public": "False", "x-image-meta-status": "queued",
        "x-glance-registry-purge-props": "False"})
    for key, value in sorted(properties.items()):
        if value is not None:
            put_headers["x-image-meta-property-" + key.replace("_", "-")] = _text(value)
    with httpclient.Connection(endpoint, context) as connection:
        _send_tar(connection, path, put_headers, image_id, area, names, level)


def _upload_v2(endpoint, context, image_id, headers, properties, area, names, level):
    path = _image_path(2, image_id)
    changes = [("container_format", "ovf"), ("disk_format", "vhd"), ("visibility", "private")]
    changes += [(key.replace("_", "-"), _text(value)) for key, value in sorted(properties.items())
                if value is not None]
    patch = [{"op": "add", "path": "/" + key, "value": value} for key, value in changes]
    with httpclient.Connection(endpoint, context) as connection:
        response = connection.request("PATCH", path, dict(headers, **{
            "Content-Type": V2_PATCH_TYPE}), body=json.dumps(patch).encode("utf-8"))
        httpclient.check_status(response, "PATCH " + path, image_id)
        httpclient.read_small(response, endpoint.host)
        response = connection.request("GET", path, headers)
        httpclient.check_status(response, "GET " + path, image_id)
        try:
            status = json.loads(httpclient.read_small(response, endpoint.host).decode("utf-8"))
            status = status.get("status") if isinstance(status, dict) else None
        except ValueError:
            status = None
        _require_queued(status, image_id)
    with httpclient.Connection(endpoint, context) as connection:
        _send_tar(connection, path + "/file", dict(headers, **{
            "Content-Type": "application/octet-stream"}), image_id, area, names, level)


@dom0lib.takes(vdi_uuids=List(UUID, vhdchain.MAX_CHAIN, min_items=1), image_id=IMAGE_ID,
               endpoint=httpclient.ENDPOINT, sr_path=staging.SR_PATH,
               extra_headers=httpclient.HEADERS, properties=Nullable(PROPERTIES),
               api_version=Int(1, 2),
               ca_bundle=Nullable(httpclient.CA_BUNDLE), insecure=Bool())
def upload_vhd2(ctx, vdi_uuids, image_id, endpoint, sr_path, extra_headers, properties=None,
                api_version=1, ca_bundle=None, insecure=False):
    """Upload the SR's VHD chain vdi_uuids (leaf first) as image_id's data: a gzip'd tar
    (compressed at properties' xenapi_image_compression_level, 1-9). The image must be
    "queued"; its disk format becomes vhd, container ovf, and properties are set on it.

    Returns null. Raises OS_XENAPI_NOT_FOUND (image, SR, VHD), OS_XENAPI_WRONG_STATE,
    OS_XENAPI_RETRYABLE, OS_XENAPI_HTTP_ERROR, OS_XENAPI_CERTIFICATE_ERROR.
    """
    properties = properties or {}
    if len(set(uuid.lower() for uuid in vdi_uuids)) != len(vdi_uuids):
        raise InvalidArgument("vdi_uuids", "repeats a UUID")
    level = _compression(properties)
    sr_dir = staging.sr_directory(sr_path)
    context = httpclient.tls_context(endpoint, ca_bundle, insecure)
    with staging.staging_area(sr_dir) as area:
        staged = staging.link_chain(sr_dir, area, vdi_uuids)
        names = [f"{number}.vhd" for number in range(len(staged))]
        upload = _upload_v1 if api_version == 1 else _upload_v2
        upload(endpoint, context, image_id, dict(extra_headers), properties, area, names, level)
    return None


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("glance", download_vhd2, upload_vhd2))
