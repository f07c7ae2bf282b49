#!/usr/bin/python3 -B
"""kernel: copy a PV guest's kernel or ramdisk from a VDI into /boot/guest, and remove it again.

Nova downloads a kernel or ramdisk image into a VDI; copy_vdi plugs that VDI into dom0
(through the caller's XAPI session, dom0lib.vbd: the VBD is always removed again), copies
its first image-size bytes to /boot/guest/<VDI uuid> and returns that path for the VM's
PV_kernel / PV_ramdisk. Every file these functions touch is an entry of /boot/guest named
by a UUID or an image id: nothing outside that directory can be read, written or removed.

os-xenapi 0.3.4's plain arguments are accepted with its names (vdi-ref, image-size,
cached-image, new-image-uuid, kernel-file, ramdisk-file) and answered with its bare text:
the file name, "" for no cached image, "ok" once files are removed.
"""

import os
import tempfile

import dom0lib
import XenAPIPlugin
from dom0lib import devices, paths, vbd
from dom0lib.errors import BAD_DATA, NOT_FOUND, PluginError
from dom0lib.validate import OPAQUE_REF, UUID, Int, Nullable, Str

KERNEL_DIR = "/boot/guest"
# Nova refuses kernels and ramdisks above max_kernel_ramdisk_size (16 MiB by default).
MAX_IMAGE_BYTES = 256 * 1024 * 1024
CHUNK = 1024 * 1024
# How long dom0's udev may take to make the /dev node of a freshly plugged VBD.
DEVICE_WAIT_SECONDS = 10.0
IMAGE_NAME = Str(64, r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
                 what="an image id: 1-64 characters of A-Z a-z 0-9 _ . -, not starting with . _ -")
KERNEL_FILE = Str(76, r"/boot/guest/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
                  what="a file directly in /boot/guest, as copy_vdi returned it")


def _kernel_dir():
    directory = paths.host_path(KERNEL_DIR)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    return os.path.realpath(directory)


def _entry(directory, name, argument):
    """directory/name, refusing a name whose symlink leads out of directory."""
    paths.confine(directory, name, argument)
    return os.path.join(directory, name)


def _temporary(directory):
    fd, path = tempfile.mkstemp(prefix=".copy-", dir=directory)
    return os.fdopen(fd, "wb"), path


def _publish(temporary, targets):
    """Make each target a copy of the temporary file (the last one by renaming it)."""
    for target in targets[1:]:
        handle, extra = _temporary(os.path.dirname(target))
        with handle, open(temporary, "rb") as source:
            _copy_stream(source, handle, os.path.getsize(temporary))
        os.chmod(extra, 0o644)
        os.replace(extra, target)
    os.chmod(temporary, 0o644)
    os.replace(temporary, targets[0])


def _copy_stream(source, target, size):
    """Copy exactly size bytes, a chunk at a time; return how many there were.

    Chunks of zeros are skipped over rather than written, so the copy of a mostly empty VDI
    takes no more disk than its data (image_size may be far more than the kernel it holds).
    """
    copied = 0
    while copied < size:
        chunk = source.read(min(CHUNK, size - copied))
        if not chunk:
            break
        if chunk.count(0) == len(chunk):
            target.seek(len(chunk), os.SEEK_CUR)
        else:
            target.write(chunk)
        copied += len(chunk)
    target.truncate(copied)
    return copied


def _copy_into(directory, source_path, size, targets):
    handle, temporary = _temporary(directory)
    try:
        with handle, open(source_path, "rb") as source:
            copied = _copy_stream(source, handle, size)
            handle.flush()
            os.fsync(handle.fileno())
        if copied < size:
            raise PluginError(BAD_DATA, "VDI",
                              f"holds {copied} bytes, fewer than image_size {size}")
        _publish(temporary, targets)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


@dom0lib.plain(renamed={"vdi-ref": "vdi_ref", "image-size": "image_size",
                         "cached-image": "cached_image"}, answer=dom0lib.plain_text)
@dom0lib.takes(vdi_ref=OPAQUE_REF, image_size=Int(1, MAX_IMAGE_BYTES),
               cached_image=Nullable(IMAGE_NAME))
def copy_vdi(ctx, vdi_ref, image_size, cached_image=None):
    """Copy the first image_size bytes of the VDI to /boot/guest/<VDI uuid> (and, if
    cached_image is given, to /boot/guest/<cached_image> for create_kernel_ramdisk);
    return "/boot/guest/<VDI uuid>".

    XAPI's errors (HANDLE_INVALID, VDI_IN_USE...) pass through. Raises OS_XENAPI_BAD_DATA if
    the VDI is shorter, OS_XENAPI_NOT_FOUND if its device never appears in dom0,
    OS_XENAPI_CLEANUP_FAILED if the VBD could not be removed afterwards.
    """
    xapi = ctx.session.xenapi
    vdi_uuid = str(xapi.VDI.get_uuid(vdi_ref)).lower()
    if not UUID.regex.fullmatch(vdi_uuid):
        raise PluginError(BAD_DATA, "VDI uuid", "XAPI reported no UUID for " + vdi_ref)
    directory = _kernel_dir()
    targets = [_entry(directory, vdi_uuid, "vdi_ref")]
    if cached_image:
        targets.append(_entry(directory, cached_image, "cached_image"))
    with vbd.attached_to_dom0(xapi, ctx.host_ref(), vdi_ref, read_only=True) as device:
        source = devices.dev_path(device)
        if not devices.wait_for(source, DEVICE_WAIT_SECONDS):
            raise PluginError(NOT_FOUND, "device", "/dev/" + device)
        _copy_into(directory, source, image_size, targets)
    return KERNEL_DIR + "/" + vdi_uuid


@dom0lib.plain(renamed={"cached-image": "cached_image", "new-image-uuid": "new_image_uuid"},
               answer=dom0lib.plain_text)
@dom0lib.takes(cached_image=IMAGE_NAME, new_image_uuid=UUID)
def create_kernel_ramdisk(ctx, cached_image, new_image_uuid):
    """Copy /boot/guest/<cached_image> to /boot/guest/<new_image_uuid> and return the new
    path; return null if there is no such cached image (0.3.4 returned "")."""
    directory = _kernel_dir()
    source = _entry(directory, cached_image, "cached_image")
    if not os.path.isfile(source):
        return None
    target = _entry(directory, new_image_uuid.lower(), "new_image_uuid")
    _copy_into(directory, source, os.path.getsize(source), [target])
    return KERNEL_DIR + "/" + new_image_uuid.lower()


@dom0lib.plain(renamed={"kernel-file": "kernel_file", "ramdisk-file": "ramdisk_file"},
               answer=lambda result: "ok")
@dom0lib.takes(kernel_file=Nullable(KERNEL_FILE), ramdisk_file=Nullable(KERNEL_FILE))
def remove_kernel_ramdisk(ctx, kernel_file=None, ramdisk_file=None):
    """Remove the given files of /boot/guest; files already gone are not an error.

    Returns null (0.3.4 returned "ok"). Raises OS_XENAPI_NOT_FOUND for an entry that is not
    a file (a directory).
    """
    directory = _kernel_dir()
    for argument, shown in (("kernel_file", kernel_file), ("ramdisk_file", ramdisk_file)):
        if not shown:
            continue
        path = _entry(directory, os.path.basename(shown), argument)
        if os.path.isdir(path) and not os.path.islink(path):
            raise PluginError(NOT_FOUND, "kernel or ramdisk file", shown + " (a directory)")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return None


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register(
        "kernel", copy_vdi, create_kernel_ramdisk, remove_kernel_ramdisk))
