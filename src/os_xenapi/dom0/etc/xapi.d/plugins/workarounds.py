#!/usr/bin/python3 -B
"""workarounds: safe_copy_vdis, a copy of a VHD chain imported into the same SR under new UUIDs.

Nova used it where hard links or VDI.copy could not serve: each VHD is copied (not linked)
into a staging area in the SR, then imported like a downloaded image (dom0lib.vhdchain), so
the copies share nothing with the originals.
"""

import dom0lib
import XenAPIPlugin
from dom0lib import staging, vhdchain
from dom0lib.validate import UUID, List


@dom0lib.takes(sr_path=staging.SR_PATH, vdi_uuids=List(UUID, vhdchain.MAX_CHAIN, min_items=1),
               uuid_stack=List(UUID, vhdchain.MAX_CHAIN, min_items=1))
def safe_copy_vdis(ctx, sr_path, vdi_uuids, uuid_stack):
    """Copy the chain vdi_uuids (leaf first) within the SR, naming the copies from the end of
    uuid_stack; return {"root": {"uuid": <the new leaf's UUID>}}.

    Raises OS_XENAPI_NOT_FOUND for a missing SR or VHD, OS_XENAPI_INVALID_ARGUMENT when
    uuid_stack is too short or names a VDI the SR holds, OS_XENAPI_BAD_DATA for a broken chain.
    """
    sr_dir = staging.sr_directory(sr_path)
    with staging.staging_area(sr_dir) as area:
        staging.link_chain(sr_dir, area, vdi_uuids, copy=True)
        leaf = vhdchain.import_vhds(sr_dir, area, uuid_stack)
    return {"root": {"uuid": leaf}}


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("workarounds", safe_copy_vdis))
