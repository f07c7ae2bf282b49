"""partition_utils plugin: wait_for_dev, make_partition and mkfs with their commands faked.

Commands are faked at dom0lib.commands.spawn (FakeCommands records every argument list), so
each test pins the exact command lines a call runs. Disks are files under the scratch
DOM0_ROOT (/dev/xvdb is DOM0_ROOT/dev/xvdb).
"""

import pytest

from . import harness, refusals

CODES = harness.dom0lib().errors
PLUGIN = harness.load_plugin("partition_utils")


@pytest.fixture
def disk(dom0_root):
    """/dev/xvdb, present in the scratch dom0."""
    (dom0_root / "dev").mkdir()
    path = dom0_root / "dev" / "xvdb"
    path.write_bytes(b"")
    return path


@pytest.fixture
def sfdisk(commands):
    commands.on("sfdisk", handler=lambda argv, text: (
        0, "sfdisk from util-linux 2.30.2\n" if argv[1:] == ["-v"] else "", ""))
    return commands


@pytest.fixture
def kpartx(commands, dom0_root):
    """kpartx -a maps partition 1 as DOM0_ROOT/dev/mapper/xvdbp1; -d removes the mapping."""
    mapper = dom0_root / "dev" / "mapper"

    def handle(argv, text):
        if argv[1] == "-avspp":
            mapper.mkdir(parents=True, exist_ok=True)
            (mapper / "xvdbp1").write_bytes(b"")
        elif argv[1] == "-dvspp":
            for node in mapper.glob("xvdbp*"):
                node.unlink()
        return 0, "", ""

    commands.on("kpartx", handler=handle)
    return mapper


def test_wait_for_dev_returns_the_path_of_a_present_device(disk):
    assert harness.call("partition_utils", "wait_for_dev", "/dev/xvdb", 0) == "/dev/xvdb"


def test_wait_for_dev_returns_null_when_the_device_never_appears(dom0_root):
    assert harness.call("partition_utils", "wait_for_dev", "/dev/xvdc", 0) is None


def test_wait_for_dev_sees_a_device_that_appears_while_it_waits(dom0_root, monkeypatch):
    lib = harness.dom0lib()
    (dom0_root / "dev").mkdir()
    sleeps = []

    def udev_creates_it(seconds):
        # Instead of sleeping: the device shows up during the first pause.
        sleeps.append(seconds)
        (dom0_root / "dev" / "xvdc1").write_bytes(b"")

    monkeypatch.setattr(lib.devices.time, "sleep", udev_creates_it)
    assert harness.call("partition_utils", "wait_for_dev", "/dev/xvdc1", 5) == "/dev/xvdc1"
    assert sleeps == [lib.devices.POLL_SECONDS]


def test_make_partition_writes_one_partition_to_the_end_of_the_disk(disk, sfdisk):
    assert harness.call("partition_utils", "make_partition", "xvdb", "2048", "-") is None
    assert sfdisk.calls == [["sfdisk", "-v"], ["sfdisk", "-uS", str(disk)]]
    assert sfdisk.inputs[1] == "2048,;\n"


@pytest.mark.parametrize("version,forced", [
    ("sfdisk from util-linux 2.23.2", True),
    ("sfdisk from util-linux 2.25.0", True),
    ("sfdisk from util-linux 2.26.1", False),
    ("sfdisk from util-linux 2.19.1", False),
    ("sfdisk (unknown build)", False),
])
def test_make_partition_forces_only_sfdisk_2_23_to_2_25(disk, commands, version, forced):
    commands.on("sfdisk", handler=lambda argv, text: (0, version if argv[1] == "-v" else "", ""))
    harness.call("partition_utils", "make_partition", dev="xvdb", partition_start=0,
                 partition_end="-")
    expected = ["sfdisk", "--force", "-uS", str(disk)] if forced else ["sfdisk", "-uS", str(disk)]
    assert commands.calls[-1] == expected


def test_make_partition_of_a_missing_disk_is_not_found_and_runs_nothing(dom0_root, sfdisk,
                                                                       failure):
    with pytest.raises(failure) as info:
        harness.call("partition_utils", "make_partition", "xvdq", 2048, "-")
    assert info.value.params == [CODES.NOT_FOUND, "device", "/dev/xvdq"]
    assert sfdisk.calls == []


def test_make_partition_reports_sfdisks_failure(disk, commands, failure):
    commands.on("sfdisk", handler=lambda argv, text: (
        (0, "sfdisk from util-linux 2.30", "") if argv[1] == "-v" else (1, "", "bad table")))
    with pytest.raises(failure) as info:
        harness.call("partition_utils", "make_partition", "xvdb", 2048, "-")
    assert info.value.params == [CODES.COMMAND_FAILED, "sfdisk", "1", "bad table"]


def test_make_partition_refuses_a_bounded_partition(disk, commands, dom0_root, failure):
    reason = refusals.assert_refused("partition_utils", "make_partition",
                                     {"dev": "xvdb", "partition_start": 2048,
                                      "partition_end": "4096"},
                                     "partition_end", commands, dom0_root, failure)
    assert "bounded partitions are not supported" in reason


def test_mkfs_ext3_maps_the_partition_makes_the_fs_and_unmaps(disk, commands, kpartx):
    commands.on("mkfs")
    harness.call("partition_utils", "mkfs", "xvdb", 1, "ext3", "ephemeral0")
    partition = str(kpartx / "xvdbp1")
    assert commands.calls == [["kpartx", "-avspp", str(disk)],
                              ["mkfs", "-t", "ext3", "-F", "-L", "ephemeral0", partition],
                              ["kpartx", "-dvspp", str(disk)]]
    assert list(kpartx.iterdir()) == []


def test_mkfs_swap_runs_mkswap_without_a_label(disk, commands, kpartx):
    commands.on("mkswap")
    harness.call("partition_utils", "mkfs", dev="xvdb", partnum="1", fs_type="swap",
                 fs_label="swap")
    assert commands.calls[1] == ["mkswap", str(kpartx / "xvdbp1")]


def test_mkfs_ext4_without_a_label_passes_no_l_option(disk, commands, kpartx):
    commands.on("mkfs")
    harness.call("partition_utils", "mkfs", dev="xvdb", partnum=1, fs_type="ext4")
    assert commands.calls[1] == ["mkfs", "-t", "ext4", "-F", str(kpartx / "xvdbp1")]


def test_mkfs_failure_still_removes_the_mappings_and_reports_mkfs(disk, commands, kpartx,
                                                                   failure):
    commands.on("mkfs", returncode=1, stderr="mkfs.ext3: No space left on device")
    with pytest.raises(failure) as info:
        harness.call("partition_utils", "mkfs", "xvdb", 1, "ext3", None)
    assert info.value.params[:3] == [CODES.COMMAND_FAILED, "mkfs", "1"]
    assert commands.calls[-1] == ["kpartx", "-dvspp", str(disk)]
    assert list(kpartx.iterdir()) == []


def test_mkfs_of_a_partition_kpartx_did_not_map_is_not_found(disk, commands, kpartx, failure,
                                                              monkeypatch):
    monkeypatch.setattr(PLUGIN, "MAPPER_WAIT_SECONDS", 0)
    commands.on("mkfs")
    with pytest.raises(failure) as info:
        harness.call("partition_utils", "mkfs", "xvdb", 2, "ext3", None)
    assert info.value.params == [CODES.NOT_FOUND, "partition", "/dev/mapper/xvdbp2"]
    assert "mkfs" not in commands.programs()
    assert commands.calls[-1] == ["kpartx", "-dvspp", str(disk)]


def test_mkfs_reports_the_mkfs_error_when_unmapping_fails_too(disk, commands, kpartx, failure):
    def kpartx_fails_to_unmap(argv, text):
        if argv[1] == "-avspp":
            kpartx.mkdir(parents=True, exist_ok=True)
            (kpartx / "xvdbp1").write_bytes(b"")
            return 0, "", ""
        return 1, "", "device busy"

    commands.on("kpartx", handler=kpartx_fails_to_unmap)
    commands.on("mkfs", returncode=1, stderr="bad superblock")
    with pytest.raises(failure) as info:
        harness.call("partition_utils", "mkfs", "xvdb", 1, "ext3", None)
    assert info.value.params == [CODES.COMMAND_FAILED, "mkfs", "1", "bad superblock"]
    assert commands.programs() == ["kpartx", "mkfs", "kpartx"]


def test_mkfs_reports_a_failed_unmapping_after_success(disk, commands, kpartx, failure):
    def kpartx_fails_to_unmap(argv, text):
        if argv[1] == "-avspp":
            kpartx.mkdir(parents=True, exist_ok=True)
            (kpartx / "xvdbp1").write_bytes(b"")
            return 0, "", ""
        return 1, "", "device-mapper: remove ioctl failed: Device or resource busy"

    commands.on("kpartx", handler=kpartx_fails_to_unmap)
    commands.on("mkfs")
    with pytest.raises(failure) as info:
        harness.call("partition_utils", "mkfs", "xvdb", 1, "ext3", None)
    assert info.value.params[:3] == [CODES.COMMAND_FAILED, "kpartx", "1"]


HOSTILE = [
    ("wait_for_dev", {"dev_path": "/dev/../etc/shadow", "max_seconds": 0}, "dev_path"),
    ("wait_for_dev", {"dev_path": "/etc/shadow", "max_seconds": 0}, "dev_path"),
    ("wait_for_dev", {"dev_path": "/dev/xvdb", "max_seconds": 100000}, "max_seconds"),
    ("wait_for_dev", {"dev_path": "/dev/xvdb", "max_seconds": -1}, "max_seconds"),
    ("wait_for_dev", {"dev_path": "/dev/xvdb", "max_seconds": "5s"}, "max_seconds"),
    ("wait_for_dev", {"dev_path": "/dev/mapper/../../etc", "max_seconds": 0}, "dev_path"),
    ("make_partition", {"dev": "../xvdb", "partition_start": 0, "partition_end": "-"}, "dev"),
    ("make_partition", {"dev": "xvdb; reboot", "partition_start": 0, "partition_end": "-"},
     "dev"),
    ("make_partition", {"dev": "-xvdb", "partition_start": 0, "partition_end": "-"}, "dev"),
    ("make_partition", {"dev": "/dev/xvdb", "partition_start": 0, "partition_end": "-"}, "dev"),
    ("make_partition", {"dev": "xvdb", "partition_start": "0,;\n1", "partition_end": "-"},
     "partition_start"),
    ("make_partition", {"dev": "xvdb", "partition_start": 2 ** 60, "partition_end": "-"},
     "partition_start"),
    ("make_partition", {"dev": "xvdb", "partition_start": [0], "partition_end": "-"},
     "partition_start"),
    ("make_partition", {"dev": "hda", "partition_start": 0, "partition_end": "-"}, "dev"),
    ("mkfs", {"dev": "xvdb", "partnum": 1, "fs_type": "ext3", "fs_label": "-O^has_journal"},
     "fs_label"),
    ("mkfs", {"dev": "xvdb", "partnum": 1, "fs_type": "ext3", "fs_label": "a" * 17},
     "fs_label"),
    ("mkfs", {"dev": "xvdb", "partnum": 1, "fs_type": "xfs; reboot", "fs_label": None},
     "fs_type"),
    ("mkfs", {"dev": "xvdb", "partnum": 0, "fs_type": "ext3", "fs_label": None}, "partnum"),
    ("mkfs", {"dev": "xvdb", "partnum": "1/../2", "fs_type": "ext3", "fs_label": None},
     "partnum"),
    ("mkfs", {"dev": "xvdb" * 10, "partnum": 1, "fs_type": "ext3", "fs_label": None}, "dev"),
]


@pytest.mark.parametrize("function,kwargs,argument", HOSTILE,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(HOSTILE)])
def test_hostile_argument_is_refused_and_changes_nothing(disk, commands, dom0_root, failure,
                                                        function, kwargs, argument):
    refusals.assert_refused("partition_utils", function, kwargs, argument, commands, dom0_root,
                            failure)


@pytest.mark.parametrize("name,raw", refusals.NOT_JSON_PARAMS,
                         ids=[name for name, _ in refusals.NOT_JSON_PARAMS])
@pytest.mark.parametrize("function", ["wait_for_dev", "make_partition", "mkfs"])
def test_params_that_are_not_the_json_protocol_are_refused(disk, commands, dom0_root, failure,
                                                           function, name, raw):
    refusals.assert_refused("partition_utils", function, {}, "params", commands, dom0_root,
                            failure, raw_params=raw)


def test_runs_under_the_dom0_python_the_way_xapi_runs_it(dom0_root):
    (dom0_root / "dev").mkdir()
    (dom0_root / "dev" / "xvdb").write_bytes(b"")
    status = harness.run_like_xapi(
        harness.PLUGINS / "partition_utils.py", "wait_for_dev",
        {"params": '{"args": ["/dev/xvdb", 0]}'}, env_extra={"DOM0_ROOT": str(dom0_root)})
    assert status == ("Success", '"/dev/xvdb"')


def test_the_plugin_exports_0_3_4s_functions():
    assert {"wait_for_dev", "make_partition", "mkfs"} <= set(vars(PLUGIN))


def test_make_partition_without_sfdisk_is_command_missing(disk, commands, failure):
    with pytest.raises(failure) as info:
        harness.call("partition_utils", "make_partition", "xvdb", 2048, "-")
    assert info.value.params == [CODES.COMMAND_MISSING, "sfdisk"]
