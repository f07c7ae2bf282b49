"""migration plugin: transfer_vhd (rsync over ssh with host keys checked) and move_vhds_into_sr.

Commands (ip, rsync, vhd-util) are faked at dom0lib.commands.spawn; the SR and /images are
directories under the scratch DOM0_ROOT (vhdfakes.py).
"""

import json
import os

import pytest

from . import harness, refusals, vhdfakes
from .vhdfakes import NEW_UUIDS, OLD_UUIDS, SR_PATH

CODES = harness.dom0lib().errors
INSTANCE = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
IP_ADDR_SHOW = (
    "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
    "2: xenbr0    inet 192.0.2.10/24 brd 192.0.2.255 scope global xenbr0\\       valid_lft "
    "forever preferred_lft forever\n"
    "2: xenbr0    inet6 2001:db8::10/64 scope global \\       valid_lft forever\n")


@pytest.fixture
def sr(dom0_root, commands):
    vhdfakes.use_vhd_util(commands)
    commands.on("ip", stdout=IP_ADDR_SHOW)
    sr_dir = vhdfakes.make_sr(dom0_root)
    vhdfakes.make_chain(sr_dir, OLD_UUIDS[:2])
    return sr_dir


@pytest.fixture
def images(dom0_root, sr):
    """/images as 0.3.4's RPM made it: a symlink to <SR mount>/os-images."""
    target = sr / "os-images"
    target.mkdir()
    os.symlink(str(target), str(dom0_root / "images"))
    return target


@pytest.fixture
def known_hosts(dom0_root):
    directory = dom0_root / "root" / ".ssh"
    directory.mkdir(parents=True)
    path = directory / "known_hosts"
    path.write_text("192.0.2.20 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n")
    return path


@pytest.fixture
def rsync(commands):
    """rsync that records what the staging directory held when it ran."""
    seen = []

    def handle(argv, text):
        source = argv[-2]
        seen.append(sorted(os.listdir(source)))
        return 0, "", ""

    commands.on("rsync", handler=handle)
    return seen


def _received(images, names_and_parents):
    directory = images / ("instance" + INSTANCE)
    directory.mkdir()
    for name, parent in names_and_parents:
        vhdfakes.fake_vhd_util().make(directory / name, parent=parent, payload=name)
    return directory


def test_move_vhds_into_sr_imports_the_received_chain(sr, images):
    _received(images, [("0.vhd", None), ("1.vhd", None)])
    result = harness.call("migration", "move_vhds_into_sr", INSTANCE, SR_PATH, NEW_UUIDS)
    assert result == {"root": {"uuid": NEW_UUIDS[2]}}
    assert vhdfakes.chain_from(sr, NEW_UUIDS[2]) == [(NEW_UUIDS[2], "0.vhd"),
                                                     (NEW_UUIDS[1], "1.vhd")]


def test_move_vhds_into_sr_removes_the_received_directory(sr, images):
    _received(images, [("0.vhd", None)])
    harness.call("migration", "move_vhds_into_sr", INSTANCE, SR_PATH, NEW_UUIDS)
    assert os.listdir(str(images)) == []
    assert not [name for name in os.listdir(str(sr)) if name.startswith(".os-xenapi")]


def test_a_refused_import_keeps_the_received_vhds_for_a_retry(sr, images, failure):
    received = _received(images, [("0.vhd", None)])
    vhdfakes.fake_vhd_util().make(received / "0.vhd", hidden=True)
    before = refusals.tree_state(sr)
    with pytest.raises(failure) as info:
        harness.call("migration", "move_vhds_into_sr", INSTANCE, SR_PATH, NEW_UUIDS)
    assert info.value.params[0] == CODES.BAD_DATA
    assert refusals.tree_state(sr) == before


def test_a_symlink_among_the_received_files_is_ignored(sr, images, tmp_path, failure):
    received = _received(images, [])
    vhdfakes.fake_vhd_util().make(tmp_path / "elsewhere.vhd")
    os.symlink(str(tmp_path / "elsewhere.vhd"), str(received / "0.vhd"))
    with pytest.raises(failure) as info:
        harness.call("migration", "move_vhds_into_sr", INSTANCE, SR_PATH, NEW_UUIDS)
    assert info.value.params == [CODES.BAD_DATA, "VHD chain", "holds no VHD"]


def test_move_vhds_into_sr_without_received_vhds_is_not_found(sr, images, failure):
    with pytest.raises(failure) as info:
        harness.call("migration", "move_vhds_into_sr", INSTANCE, SR_PATH, NEW_UUIDS)
    assert info.value.params == [CODES.NOT_FOUND, "received VHDs", "/images/instance" + INSTANCE]


def test_move_vhds_into_sr_without_images_says_how_to_make_it(sr, failure):
    with pytest.raises(failure) as info:
        harness.call("migration", "move_vhds_into_sr", INSTANCE, SR_PATH, NEW_UUIDS)
    assert info.value.params[:2] == [CODES.NOT_FOUND, "/images"]


def test_images_on_another_filesystem_is_not_supported(sr, images, monkeypatch, failure):
    _received(images, [("0.vhd", None)])
    monkeypatch.setattr(harness.dom0lib().staging, "same_filesystem", lambda a, b: False)
    with pytest.raises(failure) as info:
        harness.call("migration", "move_vhds_into_sr", INSTANCE, SR_PATH, NEW_UUIDS)
    assert info.value.params[:2] == [CODES.NOT_SUPPORTED, "/images"]


def test_a_received_directory_symlinked_out_of_images_is_refused(sr, images, tmp_path, failure):
    os.symlink(str(tmp_path), str(images / ("instance" + INSTANCE)))
    with pytest.raises(failure) as info:
        harness.call("migration", "move_vhds_into_sr", INSTANCE, SR_PATH, NEW_UUIDS)
    assert info.value.params[2] == "instance_uuid"


def test_transfer_vhd_rsyncs_over_ssh_with_the_host_key_checked(sr, known_hosts, rsync,
                                                                 commands):
    assert harness.call("migration", "transfer_vhd", INSTANCE, "192.0.2.20", OLD_UUIDS[1],
                        SR_PATH, 1) is None
    argv = commands.calls[-1]
    assert argv[:4] == ["rsync", "-a", "--sparse", "--timeout=600"]
    assert argv[4:6] == ["-e", "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes "
                               f"-o UserKnownHostsFile={known_hosts} -o ConnectTimeout=30"]
    assert argv[-1] == f"root@192.0.2.20:/images/instance{INSTANCE}/"


def test_transfer_vhd_stages_the_vhd_under_its_sequence_number(sr, known_hosts, rsync):
    harness.call("migration", "transfer_vhd", INSTANCE, "192.0.2.20", OLD_UUIDS[1], SR_PATH, 1)
    assert rsync == [["1.vhd"]]


def test_transfer_vhd_removes_its_staging_area(sr, known_hosts, rsync, commands):
    harness.call("migration", "transfer_vhd", INSTANCE, "192.0.2.20", OLD_UUIDS[0], SR_PATH, 0)
    staged = commands.calls[-1][-2]
    assert os.path.dirname(staged.rstrip("/")) == str(sr)
    assert not os.path.exists(staged)


def test_transfer_vhd_to_an_ipv6_host_brackets_the_address(sr, known_hosts, rsync, commands):
    harness.call("migration", "transfer_vhd", INSTANCE, "2001:DB8::20", OLD_UUIDS[0], SR_PATH, 0)
    assert commands.calls[-1][-1] == f"root@[2001:db8::20]:/images/instance{INSTANCE}/"


def test_transfer_vhd_to_this_host_copies_locally_without_ssh(sr, images, rsync, commands):
    harness.call("migration", "transfer_vhd", INSTANCE, "192.0.2.10", OLD_UUIDS[0], SR_PATH, 0)
    argv = commands.calls[-1]
    assert argv[:3] == ["rsync", "-a", "--sparse"] and "-e" not in argv
    assert argv[-1] == str(images / ("instance" + INSTANCE)) + "/"


def test_transfer_vhd_accepts_a_known_hosts_file_in_etc_ssh(sr, dom0_root, rsync, commands):
    (dom0_root / "etc" / "ssh").mkdir(parents=True)
    (dom0_root / "etc" / "ssh" / "ssh_known_hosts").write_text("")
    harness.call("migration", "transfer_vhd", INSTANCE, "compute-2.example.org", OLD_UUIDS[0],
                 SR_PATH, 0, known_hosts="/etc/ssh/ssh_known_hosts")
    assert f"UserKnownHostsFile={dom0_root}/etc/ssh/ssh_known_hosts" in commands.calls[-1][5]


def test_transfer_vhd_without_the_known_hosts_file_runs_no_rsync(sr, rsync, commands, failure):
    with pytest.raises(failure) as info:
        harness.call("migration", "transfer_vhd", INSTANCE, "192.0.2.20", OLD_UUIDS[0], SR_PATH, 0)
    assert info.value.params == [CODES.NOT_FOUND, "known_hosts", "/root/.ssh/known_hosts"]
    assert "rsync" not in commands.programs()


def test_a_known_hosts_symlink_out_of_its_directory_is_refused(sr, dom0_root, tmp_path, rsync,
                                                               failure):
    (dom0_root / "root" / ".ssh").mkdir(parents=True)
    (tmp_path / "attacker_hosts").write_text("")
    os.symlink(str(tmp_path / "attacker_hosts"), str(dom0_root / "root" / ".ssh" / "known_hosts"))
    with pytest.raises(failure) as info:
        harness.call("migration", "transfer_vhd", INSTANCE, "192.0.2.20", OLD_UUIDS[0], SR_PATH, 0)
    assert info.value.params[2] == "known_hosts"


def test_an_unknown_host_key_is_rsyncs_reported_failure(sr, known_hosts, commands, failure):
    commands.on("rsync", returncode=255,
                stderr="Host key verification failed.\nrsync: connection unexpectedly closed")
    with pytest.raises(failure) as info:
        harness.call("migration", "transfer_vhd", INSTANCE, "192.0.2.99", OLD_UUIDS[0], SR_PATH, 0)
    assert info.value.params[:3] == [CODES.COMMAND_FAILED, "rsync", "255"]
    assert "Host key verification failed." in info.value.params[3]
    assert not [name for name in os.listdir(str(sr)) if name.startswith(".os-xenapi")]


def test_transfer_vhd_of_a_missing_vhd_is_not_found_before_anything_runs(sr, known_hosts,
                                                                          commands, failure):
    with pytest.raises(failure) as info:
        harness.call("migration", "transfer_vhd", INSTANCE, "192.0.2.20", OLD_UUIDS[2], SR_PATH, 0)
    assert info.value.params == [CODES.NOT_FOUND, "VHD", OLD_UUIDS[2]]
    assert commands.calls == []


def _transfer(**changes):
    kwargs = {"instance_uuid": INSTANCE, "host": "192.0.2.20", "vdi_uuid": OLD_UUIDS[0],
              "sr_path": SR_PATH, "seq_num": 0}
    kwargs.update(changes)
    return kwargs


HOSTILE = [
    ("transfer_vhd", _transfer(host="-oProxyCommand=reboot"), "host"),
    ("transfer_vhd", _transfer(host="evil.example; reboot"), "host"),
    ("transfer_vhd", _transfer(host="root@evil.example"), "host"),
    ("transfer_vhd", _transfer(host="evil.example:/etc"), "host"),
    ("transfer_vhd", _transfer(host="a" * 300), "host"),
    ("transfer_vhd", _transfer(instance_uuid="../../etc"), "instance_uuid"),
    ("transfer_vhd", _transfer(vdi_uuid="../" + OLD_UUIDS[0]), "vdi_uuid"),
    ("transfer_vhd", _transfer(seq_num=30), "seq_num"),
    ("transfer_vhd", _transfer(seq_num="0; reboot"), "seq_num"),
    ("transfer_vhd", _transfer(known_hosts="/etc/shadow"), "known_hosts"),
    ("transfer_vhd", _transfer(known_hosts="/root/.ssh/../../etc/shadow"), "known_hosts"),
    ("transfer_vhd", _transfer(known_hosts="/root/.ssh/kh -o ProxyCommand=x"), "known_hosts"),
    ("transfer_vhd", _transfer(sr_path="/var/run/sr-mount/../../../root"), "sr_path"),
    ("move_vhds_into_sr", {"instance_uuid": "x/../../etc", "sr_path": SR_PATH,
                           "uuid_stack": NEW_UUIDS}, "instance_uuid"),
    ("move_vhds_into_sr", {"instance_uuid": INSTANCE, "sr_path": SR_PATH,
                           "uuid_stack": ["../../../etc/passwd"]}, "uuid_stack"),
    ("move_vhds_into_sr", {"instance_uuid": INSTANCE, "sr_path": SR_PATH,
                           "uuid_stack": NEW_UUIDS * 11}, "uuid_stack"),
    ("move_vhds_into_sr", {"instance_uuid": INSTANCE, "sr_path": SR_PATH,
                           "uuid_stack": {"0": NEW_UUIDS[0]}}, "uuid_stack"),
]


@pytest.mark.parametrize("function,kwargs,argument", HOSTILE,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(HOSTILE)])
def test_hostile_argument_is_refused_and_changes_nothing(sr, images, known_hosts, commands,
                                                        dom0_root, failure, function, kwargs,
                                                        argument):
    refusals.assert_refused("migration", function, kwargs, argument, commands, dom0_root,
                            failure)


@pytest.mark.parametrize("name,raw", refusals.NOT_JSON_PARAMS,
                         ids=[name for name, _ in refusals.NOT_JSON_PARAMS])
@pytest.mark.parametrize("function", ["transfer_vhd", "move_vhds_into_sr"])
def test_params_that_are_not_the_json_protocol_are_refused(sr, commands, dom0_root, failure,
                                                           function, name, raw):
    refusals.assert_refused("migration", function, {}, "params", commands, dom0_root, failure,
                            raw_params=raw)


def test_runs_under_the_dom0_python_the_way_xapi_runs_it(sr, images, dom0_root, tmp_path):
    _received(images, [("0.vhd", None), ("1.vhd", None)])
    bin_dir = vhdfakes.install_vhd_util_launcher(tmp_path / "bin")
    params = {"args": [INSTANCE, SR_PATH, NEW_UUIDS]}
    status = harness.run_like_xapi(
        harness.PLUGINS / "migration.py", "move_vhds_into_sr", {"params": json.dumps(params)},
        env_extra={"DOM0_ROOT": str(dom0_root),
                   "PATH": str(bin_dir) + os.pathsep + os.environ["PATH"]})
    assert status == ("Success", json.dumps({"root": {"uuid": NEW_UUIDS[2]}}))
