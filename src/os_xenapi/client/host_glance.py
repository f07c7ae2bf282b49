"""Python calls into dom0's ``glance`` plugin: dom0 downloads or uploads a VHD chain to the
Glance image service itself (os-xenapi 0.3.4's ``host_glance`` names and signatures).

As in 0.3.4 the plugin also needs ``endpoint`` (and may take ``api_version``, ``ca_bundle``,
``insecure``), which the caller's ``callback(kwargs)`` puts in before each try. Retryable
failures are retried ``num_retries`` times, then PluginRetriesExceeded. A missing image,
however the plugin spells it (``OS_XENAPI_NOT_FOUND image``, or 0.3.4's ``ImageNotFound``),
raises PluginImageNotFound from ``upload_vhd``, and from ``download_vhd``
DownloadImageNotFound, which is a PluginRetriesExceeded too: 0.3.4 retried a download's 404
until it gave up, and Nova maps that to CouldNotFetchImage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import exception

IMAGE_NOT_FOUND = "ImageNotFound"  # 0.3.4's plugin: XenAPI.Failure('ImageNotFound')


def _image_not_found(exc: exception.Failure) -> bool:
    """Whether ``exc`` says the image is missing, in any of the plugins' spellings."""
    details = exc.details if isinstance(exc.details, list | tuple) else [exc.details]
    if exc.code == "OS_XENAPI_NOT_FOUND":
        return [str(p) for p in exc.params][:1] == ["image"]
    if len(details) == 4 and details[3] == IMAGE_NOT_FOUND:  # through XenAPIPlugin's wrapper
        return True
    return bool(details) and details[0] == IMAGE_NOT_FOUND


def download_vhd(session: Any, num_retries: int, callback: Callable[[dict], Any] | None,
                 retry_cb: Callable[..., Any] | None, image_id: str, sr_path: str,
                 extra_headers: dict[str, str], uuid_stack: list[str] | str = "") -> dict:
    """glance.download_vhd2: import the image's VHD chain; ``{"root": {"uuid": ...}}``."""
    try:
        return session.call_plugin_serialized_with_retry(
            "glance", "download_vhd2", num_retries, callback, retry_cb, image_id=image_id,
            sr_path=sr_path, extra_headers=extra_headers, uuid_stack=uuid_stack)
    except exception.Failure as exc:
        if _image_not_found(exc):
            raise exception.DownloadImageNotFound(image_id=image_id,
                                                  num_retries=num_retries) from exc
        raise


def upload_vhd(session: Any, num_retries: int, callback: Callable[[dict], Any] | None,
               retry_cb: Callable[..., Any] | None, image_id: str, sr_path: str,
               extra_headers: dict[str, str], vdi_uuids: list[str] | str = "",
               properties: dict[str, Any] | None = None) -> None:
    """glance.upload_vhd2: upload the SR's VHD chain ``vdi_uuids`` as the image's data."""
    try:
        session.call_plugin_serialized_with_retry(
            "glance", "upload_vhd2", num_retries, callback, retry_cb, image_id=image_id,
            sr_path=sr_path, extra_headers=extra_headers, vdi_uuids=vdi_uuids,
            properties=properties)
    except exception.Failure as exc:
        if _image_not_found(exc):
            raise exception.PluginImageNotFound(image_id=image_id) from exc
        raise
