"""Python calls into dom0's ``glance`` plugin: dom0 downloads or uploads a VHD chain to the
Glance image service itself (os-xenapi 0.3.4's ``host_glance`` names and signatures).

As in 0.3.4 the plugin also needs ``endpoint`` (and may take ``api_version``, ``ca_bundle``,
``insecure``), which the caller's ``callback(kwargs)`` puts in before each try. Retryable
failures are retried ``num_retries`` times; a missing image raises PluginImageNotFound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import exception


def _image_not_found(exc: exception.Dom0PluginError) -> bool:
    params = [str(p) for p in exc.params]
    return exc.code == "OS_XENAPI_NOT_FOUND" and params[:1] == ["image"]


def download_vhd(session: Any, num_retries: int, callback: Callable[[dict], Any] | None,
                 retry_cb: Callable[..., Any] | None, image_id: str, sr_path: str,
                 extra_headers: dict[str, str], uuid_stack: list[str] | str = "") -> dict:
    """glance.download_vhd2: import the image's VHD chain; ``{"root": {"uuid": ...}}``."""
    try:
        return session.call_plugin_serialized_with_retry(
            "glance", "download_vhd2", num_retries, callback, retry_cb, image_id=image_id,
            sr_path=sr_path, extra_headers=extra_headers, uuid_stack=uuid_stack)
    except exception.Dom0PluginError as exc:
        if _image_not_found(exc):
            raise exception.PluginImageNotFound(image_id=image_id) from exc
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
    except exception.Dom0PluginError as exc:
        if _image_not_found(exc):
            raise exception.PluginImageNotFound(image_id=image_id) from exc
        raise
