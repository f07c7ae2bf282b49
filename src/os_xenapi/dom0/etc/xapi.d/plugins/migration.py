#!/usr/bin/python3 -B
"""migration: send one VHD of a VDI chain to another host, and import a received chain.

Nova's resize and cold migration: the source host calls transfer_vhd once per VHD of the
instance's chain (seq_num 0 is the leaf), which rsyncs it into /images/instance<uuid>/ on
the destination; the destination then calls move_vhds_into_sr, which imports the received
chain into its SR (dom0lib.vhdchain). rsync runs over ssh as root with the destination's
host key checked against a known_hosts file (os-xenapi 0.3.4 switched checking off).

/images must be a directory (or a symlink to one) on the SR's filesystem, as 0.3.4's RPM
made it: <SR mount>/os-images, linked from /images. Paths are confined to the SR and
/images; nothing the caller names can reach elsewhere.
"""

import ipaddress
import os
import re
import stat

import dom0lib
import XenAPIPlugin
from dom0lib import commands, locks, paths, staging, vhdchain
from dom0lib.errors import NOT_FOUND, NOT_SUPPORTED, PluginError
from dom0lib.validate import UUID, Int, Invalid, List, Str, Type

IMAGES = "/images"
DEFAULT_KNOWN_HOSTS = "/root/.ssh/known_hosts"
KNOWN_HOSTS = Str(128, r"/(root/\.ssh|etc/ssh)/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}",
                  what="a known_hosts file in /root/.ssh or /etc/ssh, such as "
                       "/root/.ssh/known_hosts")
SSH_CONNECT_TIMEOUT = 30
# rsync gives up when no data moves for this long; the whole transfer has a larger limit.
RSYNC_IO_TIMEOUT = 600
RSYNC_TIME_LIMIT = 6 * 3600.0
IP_TIMEOUT = 30.0
_DNS_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
# The only characters a path may have to ride in rsync's -e string, which rsync splits itself.
_SAFE_IN_E = re.compile(r"[A-Za-z0-9_./-]+")


class Host(Type):
    """The destination host: an IPv4 or IPv6 address, or a DNS name."""

    def check(self, value):
        if not isinstance(value, str) or len(value) > 253:
            raise Invalid("must be an IP address or a host name of at most 253 characters")
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
        if not _DNS_NAME.fullmatch(value):
            raise Invalid("must be an IP address or a DNS host name (letters, digits, - and .)")
        return value.lower()


def _images_dir():
    images = paths.host_path(IMAGES)
    if not os.path.isdir(images):
        raise PluginError(NOT_FOUND, IMAGES, "make it a directory on the SR's filesystem "
                                             "(see the dom0 README)")
    return images


def _instance_dir(instance_uuid):
    """The real path of /images/instance<uuid>, confined to /images (it may not exist)."""
    return paths.confine(_images_dir(), "instance" + instance_uuid.lower(), "instance_uuid")


def _regular_vhds(directory):
    """The regular *.vhd files of a received directory (symlinks and the rest are ignored)."""
    names = []
    for name in sorted(os.listdir(directory)):
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if name.endswith(".vhd") and stat.S_ISREG(mode):
            names.append(name)
    return names


@dom0lib.takes(instance_uuid=UUID, sr_path=staging.SR_PATH,
               uuid_stack=List(UUID, vhdchain.MAX_CHAIN, min_items=1))
def move_vhds_into_sr(ctx, instance_uuid, sr_path, uuid_stack):
    """Import the chain received in /images/instance<uuid> into the SR under UUIDs taken
    from the end of uuid_stack; return {"root": {"uuid": <leaf UUID>}}.

    The received directory is removed once the import succeeded; after a failure it stays
    as it was, so the call can be repeated. Raises OS_XENAPI_NOT_FOUND (no received
    directory), OS_XENAPI_NOT_SUPPORTED (/images not on the SR's filesystem),
    OS_XENAPI_INVALID_ARGUMENT (uuid_stack), OS_XENAPI_BAD_DATA (a broken chain).
    """
    sr_dir = staging.sr_directory(sr_path)
    received = _instance_dir(instance_uuid)
    if not os.path.isdir(received):
        raise PluginError(NOT_FOUND, "received VHDs", f"{IMAGES}/instance{instance_uuid}")
    if not staging.same_filesystem(received, sr_dir):
        raise PluginError(NOT_SUPPORTED, IMAGES, "is not on the SR's filesystem, so VHDs cannot "
                                                 "be moved into the SR")
    with locks.file_lock("migration-" + instance_uuid.lower()):
        with staging.staging_area(sr_dir) as area:
            for name in _regular_vhds(received):
                os.link(os.path.join(received, name), os.path.join(area, name),
                        follow_symlinks=False)
            leaf = vhdchain.import_vhds(sr_dir, area, uuid_stack)
        staging.remove_tree(received)
    return {"root": {"uuid": leaf}}


def _local_addresses():
    """The addresses of this host's interfaces, from `ip -o addr show`."""
    output = commands.run(["ip", "-o", "addr", "show"], timeout=IP_TIMEOUT).stdout
    addresses = set()
    for line in output.splitlines():
        words = line.split()
        for index, word in enumerate(words[:-1]):
            if word in ("inet", "inet6"):
                try:
                    addresses.add(str(ipaddress.ip_address(words[index + 1].split("/")[0])))
                except ValueError:
                    pass
    return addresses


def _known_hosts_file(known_hosts):
    """The real path of a known_hosts file inside /root/.ssh or /etc/ssh."""
    directory, name = os.path.split(known_hosts)
    path = paths.confine(paths.host_path(directory), name, "known_hosts")
    if not os.path.isfile(path):
        raise PluginError(NOT_FOUND, "known_hosts", known_hosts)
    if not _SAFE_IN_E.fullmatch(path):
        raise PluginError(NOT_SUPPORTED, "known_hosts", "its real path has characters rsync's "
                                                        "-e option cannot carry")
    return path


def _remote_shell(known_hosts_path):
    return ("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes "
            f"-o UserKnownHostsFile={known_hosts_path} -o ConnectTimeout={SSH_CONNECT_TIMEOUT}")


@dom0lib.takes(instance_uuid=UUID, host=Host(), vdi_uuid=UUID, sr_path=staging.SR_PATH,
               seq_num=Int(0, vhdchain.MAX_CHAIN - 1), known_hosts=KNOWN_HOSTS)
def transfer_vhd(ctx, instance_uuid, host, vdi_uuid, sr_path, seq_num,
                 known_hosts=DEFAULT_KNOWN_HOSTS):
    """Send the SR's <vdi_uuid>.vhd to host as /images/instance<uuid>/<seq_num>.vhd.

    A host that is this one gets a local copy; any other is reached as root over ssh, and
    its key must be in known_hosts (new in plugin API 3.0). Raises OS_XENAPI_NOT_FOUND (SR,
    VHD, known_hosts, /images) or OS_XENAPI_COMMAND_FAILED (rsync, with ssh's complaint).
    """
    sr_dir = staging.sr_directory(sr_path)
    staging.vhd_in_sr(sr_dir, vdi_uuid, "vdi_uuid")
    destination_dir = f"{IMAGES}/instance{instance_uuid.lower()}/"
    if host in _local_addresses():
        destination = [_instance_dir(instance_uuid) + "/"]
        remote = []
    else:
        address = f"[{host}]" if ":" in host else host
        destination = [f"root@{address}:{destination_dir}"]
        remote = [f"--timeout={RSYNC_IO_TIMEOUT}",
                  "-e", _remote_shell(_known_hosts_file(known_hosts))]
    with staging.staging_area(sr_dir) as area:
        staging.link_chain(sr_dir, area, [vdi_uuid], first=seq_num, argument="vdi_uuid")
        commands.run(["rsync", "-a", "--sparse"] + remote + [area + "/"] + destination,
                     timeout=RSYNC_TIME_LIMIT)
    return None


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("migration", move_vhds_into_sr, transfer_vhd))
