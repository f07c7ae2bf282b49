"""ipxe plugin: inject rewrites an iPXE ISO in the SR with a static network setup.

mount, umount and mkisofs are faked at dom0lib.commands.spawn: the fake mount fills the
mount point with an ISO's files, umount empties it, and mkisofs writes the list of files it
was given (with netcfg.ipxe's text) as the new "ISO", so each test can see what went in.
"""

import json
import os

import pytest

from . import harness, refusals, vhdfakes
from .vhdfakes import SR_PATH

CODES = harness.dom0lib().errors
VDI = "3d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a"
ARGS = {"sr_path": SR_PATH, "vdi_uuid": VDI, "boot_menu_url": "http://192.0.2.1/menu.ipxe",
        "ip_address": "192.0.2.50", "netmask": "255.255.255.0", "gateway": "192.0.2.1",
        "dns": "192.0.2.2", "mkisofs_cmd": "mkisofs"}


@pytest.fixture
def iso(dom0_root):
    sr_dir = vhdfakes.make_sr(dom0_root)
    (sr_dir / "iso").mkdir()
    path = sr_dir / "iso" / (VDI + ".img")
    path.write_bytes(b"original iso")
    path.chmod(0o640)
    return path


@pytest.fixture
def iso_commands(commands, tmp_path):
    """mount/umount/mkisofs fakes; returns the list of mount points mounted and unmounted."""
    mounted = []

    def mount(argv, text):
        mountpoint = argv[-1]
        mounted.append(mountpoint)
        for name, data in (("isolinux.bin", b"bin"), ("ipxe.krn", b"krn"),
                           ("isolinux.cfg", b"old cfg")):
            with open(os.path.join(mountpoint, name), "wb") as handle:
                handle.write(data)
        os.mkdir(os.path.join(mountpoint, "boot"))
        return 0, "", ""

    def umount(argv, text):
        for name in os.listdir(argv[-1]):
            path = os.path.join(argv[-1], name)
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        return 0, "", ""

    def mkisofs(argv, text):
        tree, output = argv[-1], argv[argv.index("-o") + 1]
        with open(os.path.join(tree, "netcfg.ipxe")) as handle:
            netcfg = handle.read()
        with open(os.path.join(tree, "isolinux.cfg")) as handle:
            isolinux = handle.read()
        with open(output, "w") as handle:
            json.dump({"files": sorted(os.listdir(tree)), "netcfg": netcfg,
                       "isolinux": isolinux}, handle)
        return 0, "", ""

    commands.on("mount", handler=mount)
    commands.on("umount", handler=umount)
    for builder in ("mkisofs", "genisoimage", "xorrisofs"):
        commands.on(builder, handler=mkisofs)
    return mounted


def _inject(**changes):
    return harness.call("ipxe", "inject", **dict(ARGS, **changes))


def test_inject_rebuilds_the_iso_with_the_isos_files_and_the_new_config(iso, iso_commands):
    assert _inject() is None
    rebuilt = json.loads(iso.read_text())
    assert rebuilt["files"] == ["boot", "ipxe.krn", "isolinux.bin", "isolinux.cfg", "netcfg.ipxe"]
    assert "KERNEL ipxe.krn" in rebuilt["isolinux"] and "INITRD netcfg.ipxe" in rebuilt["isolinux"]


def test_inject_writes_the_static_address_and_the_boot_menu_into_netcfg(iso, iso_commands):
    _inject()
    netcfg = json.loads(iso.read_text())["netcfg"].splitlines()
    assert netcfg[0] == "#!ipxe"
    assert {"set net0/ip 192.0.2.50", "set net0/netmask 255.255.255.0",
            "set net0/gateway 192.0.2.1", "set dns 192.0.2.2",
            "chain http://192.0.2.1/menu.ipxe || goto localboot"} <= set(netcfg)


def test_inject_mounts_read_only_and_unmounts(iso, iso_commands, commands):
    _inject()
    mount = next(argv for argv in commands.calls if argv[0] == "mount")
    assert mount[1:4] == ["-o", "loop,ro,nosuid,nodev,noexec", str(iso)]
    assert ["umount", iso_commands[0]] in commands.calls


def test_inject_runs_the_builder_with_a_fixed_argument_list(iso, iso_commands, commands):
    _inject(mkisofs_cmd="genisoimage")
    argv = commands.calls[-1]
    assert argv[0] == "genisoimage"
    assert argv[1:4] == ["-quiet", "-l", "-o"]
    assert argv[5:-1] == ["-c", "boot.cat", "-b", "isolinux.bin", "-no-emul-boot",
                          "-boot-load-size", "4", "-boot-info-table"]


def test_inject_keeps_the_isos_mode_and_leaves_no_staging(iso, iso_commands):
    _inject()
    assert oct(iso.stat().st_mode & 0o777) == "0o640"
    assert sorted(os.listdir(str(iso.parent.parent))) == ["iso"]


def test_a_symlinked_config_in_the_iso_is_replaced_not_followed(iso, iso_commands, commands,
                                                               tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me")
    mount = commands.handlers["mount"]

    def mount_with_a_trap(argv, text):
        result = mount(argv, text)
        os.symlink(str(target), os.path.join(argv[-1], "netcfg.ipxe"))
        return result

    commands.on("mount", handler=mount_with_a_trap)
    _inject()
    assert target.read_text() == "keep me"
    assert json.loads(iso.read_text())["netcfg"].startswith("#!ipxe")


def test_a_failed_build_leaves_the_old_iso_and_no_staging(iso, iso_commands, commands, failure):
    commands.on("mkisofs", returncode=1, stderr="mkisofs: No such file isolinux.bin")
    with pytest.raises(failure) as info:
        _inject()
    assert info.value.params[:3] == [CODES.COMMAND_FAILED, "mkisofs", "1"]
    assert iso.read_bytes() == b"original iso"
    assert sorted(os.listdir(str(iso.parent.parent))) == ["iso"]


def test_a_builder_that_writes_no_image_leaves_the_old_iso(iso, iso_commands, commands,
                                                           failure):
    commands.on("mkisofs")
    with pytest.raises(failure) as info:
        _inject()
    assert info.value.params == [CODES.NOT_FOUND, "ISO", "mkisofs wrote no image"]
    assert iso.read_bytes() == b"original iso"


def test_a_failed_mount_reports_it_and_leaves_nothing(iso, iso_commands, commands, failure):
    commands.on("mount", returncode=32, stderr="mount: wrong fs type")
    with pytest.raises(failure) as info:
        _inject()
    assert info.value.params[:3] == [CODES.COMMAND_FAILED, "mount", "32"]
    assert sorted(os.listdir(str(iso.parent.parent))) == ["iso"]


def test_a_failed_umount_is_reported_and_its_mount_point_kept(iso, iso_commands, commands,
                                                              failure):
    commands.on("umount", returncode=32, stderr="umount: target is busy")
    with pytest.raises(failure) as info:
        _inject()
    assert info.value.params[:2] == [CODES.COMMAND_FAILED, "umount"]
    assert os.path.isdir(iso_commands[0])
    assert iso.read_bytes() == b"original iso"


def test_a_missing_iso_is_not_found(iso, iso_commands, failure):
    iso.unlink()
    with pytest.raises(failure) as info:
        _inject()
    assert info.value.params == [CODES.NOT_FOUND, "ISO", f"{SR_PATH}/iso/{VDI}.img"]


def test_an_iso_directory_symlinked_out_of_the_sr_is_refused(dom0_root, iso_commands, tmp_path,
                                                             failure):
    sr_dir = vhdfakes.make_sr(dom0_root)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / (VDI + ".img")).write_bytes(b"x")
    os.symlink(str(tmp_path / "elsewhere"), str(sr_dir / "iso"))
    with pytest.raises(failure) as info:
        _inject()
    assert info.value.params[2] == "vdi_uuid"


HOSTILE = [
    ({"boot_menu_url": "http://x/menu\nshell"}, "boot_menu_url"),
    ({"boot_menu_url": "http://x/menu || shell"}, "boot_menu_url"),
    ({"boot_menu_url": "http://x/${net0/mac}"}, "boot_menu_url"),
    ({"boot_menu_url": "file:///etc/shadow"}, "boot_menu_url"),
    ({"boot_menu_url": "http://x/" + "a" * 3000}, "boot_menu_url"),
    ({"ip_address": "192.0.2.50\nshell"}, "ip_address"),
    ({"ip_address": "2001:db8::1"}, "ip_address"),
    ({"netmask": "255.0.255.0"}, "netmask"),
    ({"gateway": 3221225985}, "gateway"),
    ({"dns": "dns.example.org"}, "dns"),
    ({"mkisofs_cmd": "/tmp/evil"}, "mkisofs_cmd"),
    ({"mkisofs_cmd": "sh"}, "mkisofs_cmd"),
    ({"vdi_uuid": "../../../../etc/passwd"}, "vdi_uuid"),
    ({"sr_path": "/var/run/sr-mount/../.."}, "sr_path"),
]


@pytest.mark.parametrize("changes,argument", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_argument_is_refused_and_changes_nothing(iso, commands, dom0_root, failure,
                                                        changes, argument):
    refusals.assert_refused("ipxe", "inject", dict(ARGS, **changes), argument, commands,
                            dom0_root, failure)


@pytest.mark.parametrize("name,raw", refusals.NOT_JSON_PARAMS,
                         ids=[name for name, _ in refusals.NOT_JSON_PARAMS])
def test_params_that_are_not_the_json_protocol_are_refused(iso, commands, dom0_root, failure,
                                                           name, raw):
    refusals.assert_refused("ipxe", "inject", {}, "params", commands, dom0_root, failure,
                            raw_params=raw)


def test_runs_under_the_dom0_python_the_way_xapi_runs_it(iso, dom0_root):
    status, details = harness.run_like_xapi(
        harness.PLUGINS / "ipxe.py", "inject",
        {"params": json.dumps({"kwargs": dict(ARGS, mkisofs_cmd="/bin/sh")})},
        env_extra={"DOM0_ROOT": str(dom0_root)})
    assert (status, details[:3]) == ("Failure", [CODES.INVALID_ARGUMENT, "ipxe.inject",
                                                 "mkisofs_cmd"])
    assert iso.read_bytes() == b"original iso"
