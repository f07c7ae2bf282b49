"""os-xenapi 0.3.4's small client helpers, kept by name for its consumers: the pool's default
SR, a VDI made for an instance, a pipe for streaming, and the paths of XAPI's raw VDI import and
export handlers.

(``os_xenapi.utils`` is another package: 0.3.4's operator helpers.)
"""

from __future__ import annotations

import logging
import os
from typing import IO, Any

from . import exception

LOG = logging.getLogger(__name__)

NULL_REF = "OpaqueRef:NULL"


def get_default_sr(session: Any) -> str:
    """The ref of the pool's default SR. Raises NotFound when the pool has none (XAPI answers
    ``OpaqueRef:NULL``, which 0.3.4 returned as if it were an SR)."""
    pool_ref = session.pool.get_all()[0]
    sr_ref = session.pool.get_default_SR(pool_ref)
    if sr_ref and sr_ref != NULL_REF:
        return sr_ref
    raise exception.NotFound("Cannot find default SR")


def _get_vdi_other_config(disk_type: str, instance: Any = None) -> dict[str, str]:
    """The VDI's other_config: its Nova disk type and, for an instance's disk, the instance's
    uuid, so that a VDI orphaned by a crash can be found and detached safely."""
    other_config = {"nova_disk_type": disk_type}
    if instance:
        other_config["nova_instance_uuid"] = instance["uuid"]
    return other_config


def create_vdi(session: Any, sr_ref: str, instance: Any, name_label: str, disk_type: str,
               virtual_size: int | str, read_only: bool = False) -> str:
    """``VDI.create`` of a non-sharable ``User`` VDI of ``virtual_size`` bytes in ``sr_ref``,
    tagged for ``instance`` (a mapping with ``uuid``, or None); returns the VDI's ref."""
    vdi_ref = session.VDI.create({
        "name_label": name_label,
        "name_description": "",
        "SR": sr_ref,
        "virtual_size": str(virtual_size),  # XAPI's int64 as XML-RPC carries it
        "type": "User",
        "sharable": False,
        "read_only": read_only,
        "xenstore_data": {},
        "other_config": _get_vdi_other_config(disk_type, instance=instance),
        "sm_config": {},
        "tags": [],
    })
    LOG.debug("Created VDI %s (%s, %s, %s) on %s.", vdi_ref, name_label, virtual_size,
              read_only, sr_ref)
    return vdi_ref


def create_pipe() -> tuple[IO[bytes], IO[bytes]]:
    """``(read end, write end)`` of a new pipe, unbuffered binary files (0.3.4 made eventlet
    GreenPipes; these are ordinary files, for threads)."""
    read_fd, write_fd = os.pipe()
    try:
        rfile = os.fdopen(read_fd, "rb", 0)
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    try:
        wfile = os.fdopen(write_fd, "wb", 0)
    except BaseException:
        rfile.close()
        os.close(write_fd)
        raise
    return rfile, wfile


def get_vdi_import_path(session: Any, task_ref: str, vdi_ref: str) -> str:
    """The path of XAPI's ``/import_raw_vdi`` handler for a VHD into ``vdi_ref`` under
    ``task_ref`` (the session id travels in the query string, as 0.3.4 sent it)."""
    return (f"/import_raw_vdi?session_id={session.get_session_id()}&task_id={task_ref}"
            f"&vdi={vdi_ref}&format=vhd")


def get_vdi_export_path(session: Any, task_ref: str, vdi_ref: str) -> str:
    """The path of XAPI's ``/export_raw_vdi`` handler for ``vdi_ref`` as a VHD under
    ``task_ref`` (the session id travels in the query string, as 0.3.4 sent it)."""
    return (f"/export_raw_vdi?session_id={session.get_session_id()}&task_id={task_ref}"
            f"&vdi={vdi_ref}&format=vhd")
