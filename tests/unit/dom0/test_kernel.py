"""kernel plugin: copy_vdi, create_kernel_ramdisk and remove_kernel_ramdisk.

copy_vdi plugs the VDI into dom0 through the XAPI session it is given. Here that session is
an official-SDK session logged in to the simulator over a real socket (xapi_session), and
XAPI failures are injected with the simulator's faults. The device XAPI reports (xvda...)
is a file the test writes under the scratch DOM0_ROOT, standing for the VDI's contents.
"""

import os

import pytest

from os_xenapi.simulator.faults import Fault

from . import harness, refusals

CODES = harness.dom0lib().errors
PLUGIN = harness.load_plugin("kernel")
LIB = harness.dom0lib()
KERNEL_BYTES = bytes(range(256)) * 64
IMAGE_ID = "5b9c7a1e-0d2f-4e3a-8b6c-1f2e3d4c5b6a"
NEW_UUID = "7e8f9a0b-1c2d-4e3f-8a9b-0c1d2e3f4a5b"


def _host_uuid(session):
    return session.xenapi.host.get_uuid(session.xenapi.host.get_all()[0])


def _dom0(session):
    return session.xenapi.host.get_control_domain(session.xenapi.host.get_all()[0])


def _next_dom0_device(session):
    """The device name XAPI will give the next disk plugged into dom0 (xvda, xvdb, ...)."""
    number = int(session.xenapi.VM.get_allowed_VBD_devices(_dom0(session))[0])
    return "xvd" + "abcdefghijklmnopqrstuvwxyz"[number]


@pytest.fixture
def vdi(xapi_session):
    xapi = xapi_session.xenapi
    sr = next(ref for ref in xapi.SR.get_all() if xapi.SR.get_type(ref) == "ext")
    return xapi.VDI.create({"SR": sr, "virtual_size": str(1 << 20), "type": "user",
                            "sharable": False, "read_only": False, "other_config": {},
                            "name_label": "kernel", "name_description": ""})


@pytest.fixture
def device(xapi_session, dom0_root):
    """The /dev node the VDI will appear as in dom0, holding the kernel's bytes and more."""
    (dom0_root / "dev").mkdir()
    path = dom0_root / "dev" / _next_dom0_device(xapi_session)
    path.write_bytes(KERNEL_BYTES + b"\0" * 4096)
    return path


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(LIB.vbd, "UNPLUG_RETRY_SECONDS", 0)


def _copy(session, vdi, size=None, **kwargs):
    size = len(KERNEL_BYTES) if size is None else size
    return harness.call("kernel", "copy_vdi", vdi, size, session=session,
                        host_uuid=_host_uuid(session), **kwargs)


def _dom0_vbds(session):
    return session.xenapi.VM.get_VBDs(_dom0(session))


def _boot_guest(dom0_root):
    return dom0_root / "boot" / "guest"


def test_copy_vdi_copies_image_size_bytes_to_boot_guest(xapi_session, vdi, device, dom0_root):
    uuid = xapi_session.xenapi.VDI.get_uuid(vdi)
    assert _copy(xapi_session, vdi) == "/boot/guest/" + uuid
    assert (_boot_guest(dom0_root) / uuid).read_bytes() == KERNEL_BYTES


def test_copy_vdi_also_writes_the_cached_image(xapi_session, vdi, device, dom0_root):
    _copy(xapi_session, vdi, cached_image=IMAGE_ID)
    assert (_boot_guest(dom0_root) / IMAGE_ID).read_bytes() == KERNEL_BYTES


def test_copy_vdi_of_a_mostly_empty_image_takes_disk_for_its_data_only(
        xapi_session, vdi, device, dom0_root):
    size = 64 << 20
    with open(str(device), "r+b") as disk:  # the kernel, then 64 MiB of nothing
        disk.truncate(size)
    _copy(xapi_session, vdi, size=size, cached_image=IMAGE_ID)
    for name in (xapi_session.xenapi.VDI.get_uuid(vdi), IMAGE_ID):
        copy = _boot_guest(dom0_root) / name
        assert copy.stat().st_size == size
        assert copy.stat().st_blocks * 512 < 4 << 20
        with open(str(copy), "rb") as handle:
            assert handle.read(len(KERNEL_BYTES)) == KERNEL_BYTES
            assert handle.read(1 << 20).count(0) == 1 << 20


def test_copy_vdi_leaves_no_vbd_and_no_temporary_file(xapi_session, vdi, device, dom0_root):
    _copy(xapi_session, vdi)
    assert _dom0_vbds(xapi_session) == []
    assert [name for name in os.listdir(str(_boot_guest(dom0_root))) if name.startswith(".")] == []


class _Recording:
    """A session whose xenapi calls go to the real session and are recorded."""

    def __init__(self, session):
        self.calls = []
        self.xenapi = self._Proxy(session.xenapi, self.calls, "")

    class _Proxy:
        def __init__(self, target, calls, name):
            self._target, self._calls, self._name = target, calls, name

        def __getattr__(self, attribute):
            name = f"{self._name}.{attribute}" if self._name else attribute
            target = getattr(self._target, attribute)
            if self._name:
                def call(*args):
                    self._calls.append((name, args))
                    return target(*args)
                return call
            return _Recording._Proxy(target, self._calls, name)


def test_copy_vdi_plugs_the_vdi_read_only_into_dom0(xapi_session, vdi, device):
    recording = _Recording(xapi_session)
    harness.call("kernel", "copy_vdi", vdi, 16, session=recording,
                 host_uuid=_host_uuid(xapi_session))
    record = next(args[0] for name, args in recording.calls if name == "VBD.create")
    assert (record["VM"], record["VDI"], record["mode"]) == (_dom0(xapi_session), vdi, "RO")
    names = [name for name, _ in recording.calls if name.startswith("VBD.")]
    assert names == ["VBD.create", "VBD.plug", "VBD.get_device", "VBD.unplug", "VBD.destroy"]


def test_a_vdi_shorter_than_image_size_is_bad_data_and_writes_nothing(xapi_session, vdi, device,
                                                                      dom0_root, failure):
    with pytest.raises(failure) as info:
        _copy(xapi_session, vdi, size=len(KERNEL_BYTES) + 8192)
    assert info.value.params[:2] == [CODES.BAD_DATA, "VDI"]
    assert os.listdir(str(_boot_guest(dom0_root))) == []
    assert _dom0_vbds(xapi_session) == []


def test_a_device_that_never_appears_is_not_found_and_the_vbd_is_removed(
        xapi_session, vdi, dom0_root, monkeypatch, failure):
    monkeypatch.setattr(PLUGIN, "DEVICE_WAIT_SECONDS", 0)
    with pytest.raises(failure) as info:
        _copy(xapi_session, vdi)
    assert info.value.params == [CODES.NOT_FOUND, "device", "/dev/" +
                                 _next_dom0_device(xapi_session)]
    assert _dom0_vbds(xapi_session) == []


def test_a_failed_plug_passes_xapis_error_and_destroys_the_vbd(xapi_simulator, xapi_session, vdi,
                                                               device, failure):
    xapi_simulator.faults.add(Fault.fail("VBD.plug", "SR_BACKEND_FAILURE_46", "", "busy", ""))
    with pytest.raises(failure) as info:
        _copy(xapi_session, vdi)
    assert info.value.params == ["SR_BACKEND_FAILURE_46", "", "busy", ""]
    assert _dom0_vbds(xapi_session) == []


def test_a_rejected_unplug_is_retried(xapi_simulator, xapi_session, vdi, device, fast_retries):
    fault = xapi_simulator.faults.add(Fault.fail("VBD.unplug", "DEVICE_DETACH_REJECTED", "VBD",
                                                 "OpaqueRef:x", "in use", times=2))
    _copy(xapi_session, vdi)
    assert xapi_simulator.faults.hits()[fault.id] == 2
    assert _dom0_vbds(xapi_session) == []


def test_an_unplug_rejected_every_time_is_forced(xapi_simulator, xapi_session, vdi, device,
                                                 fast_retries):
    xapi_simulator.faults.add(Fault.fail("VBD.unplug", "DEVICE_DETACH_REJECTED", "VBD",
                                         "OpaqueRef:x", "in use"))
    _copy(xapi_session, vdi)
    assert _dom0_vbds(xapi_session) == []


def test_a_vbd_that_cannot_be_destroyed_is_reported_after_success(xapi_simulator, xapi_session,
                                                                  vdi, device, failure):
    xapi_simulator.faults.add(Fault.fail("VBD.destroy", "INTERNAL_ERROR", "injected"))
    with pytest.raises(failure) as info:
        _copy(xapi_session, vdi)
    [vbd] = _dom0_vbds(xapi_session)
    assert info.value.params == [CODES.CLEANUP_FAILED, "VBD", vbd, "INTERNAL_ERROR injected"]


def test_the_copys_own_error_wins_over_a_cleanup_failure(xapi_simulator, xapi_session, vdi,
                                                         device, failure):
    xapi_simulator.faults.add(Fault.fail("VBD.destroy", "INTERNAL_ERROR", "injected"))
    with pytest.raises(failure) as info:
        _copy(xapi_session, vdi, size=len(KERNEL_BYTES) + 8192)
    assert info.value.params[0] == CODES.BAD_DATA


def test_an_unknown_vdi_ref_is_xapis_handle_invalid(xapi_session, failure):
    with pytest.raises(failure) as info:
        _copy(xapi_session, "OpaqueRef:00000000-0000-4000-8000-000000000000")
    assert info.value.params[0] == "HANDLE_INVALID"


def test_create_kernel_ramdisk_copies_the_cached_image(dom0_root):
    _boot_guest(dom0_root).mkdir(parents=True)
    (_boot_guest(dom0_root) / IMAGE_ID).write_bytes(KERNEL_BYTES)
    assert harness.call("kernel", "create_kernel_ramdisk", IMAGE_ID, NEW_UUID) == (
        "/boot/guest/" + NEW_UUID)
    assert (_boot_guest(dom0_root) / NEW_UUID).read_bytes() == KERNEL_BYTES


def test_create_kernel_ramdisk_without_a_cached_image_returns_null(dom0_root):
    assert harness.call("kernel", "create_kernel_ramdisk", IMAGE_ID, NEW_UUID) is None
    assert os.listdir(str(_boot_guest(dom0_root))) == []


def test_create_kernel_ramdisk_refuses_a_cached_image_symlinked_out(dom0_root, tmp_path,
                                                                   failure):
    _boot_guest(dom0_root).mkdir(parents=True)
    (tmp_path / "shadow").write_text("root:secret")
    os.symlink(str(tmp_path / "shadow"), str(_boot_guest(dom0_root) / IMAGE_ID))
    with pytest.raises(failure) as info:
        harness.call("kernel", "create_kernel_ramdisk", IMAGE_ID, NEW_UUID)
    assert info.value.params[2] == "cached_image"
    assert not (_boot_guest(dom0_root) / NEW_UUID).exists()


def test_remove_kernel_ramdisk_removes_both_files(dom0_root):
    _boot_guest(dom0_root).mkdir(parents=True)
    for name in ("k1", "r1", "keep"):
        (_boot_guest(dom0_root) / name).write_bytes(b"x")
    assert harness.call("kernel", "remove_kernel_ramdisk", "/boot/guest/k1",
                        "/boot/guest/r1") is None
    assert os.listdir(str(_boot_guest(dom0_root))) == ["keep"]


def test_remove_kernel_ramdisk_of_missing_files_succeeds(dom0_root):
    assert harness.call("kernel", "remove_kernel_ramdisk", kernel_file="/boot/guest/gone") is None


def test_remove_kernel_ramdisk_of_a_directory_is_refused(dom0_root, failure):
    (_boot_guest(dom0_root) / "sub").mkdir(parents=True)
    with pytest.raises(failure) as info:
        harness.call("kernel", "remove_kernel_ramdisk", ramdisk_file="/boot/guest/sub")
    assert info.value.params[0] == CODES.NOT_FOUND
    assert (_boot_guest(dom0_root) / "sub").is_dir()


def test_remove_kernel_ramdisk_never_follows_a_symlink_out(dom0_root, tmp_path, failure):
    _boot_guest(dom0_root).mkdir(parents=True)
    (tmp_path / "precious").write_text("x")
    os.symlink(str(tmp_path / "precious"), str(_boot_guest(dom0_root) / "k1"))
    with pytest.raises(failure) as info:
        harness.call("kernel", "remove_kernel_ramdisk", kernel_file="/boot/guest/k1")
    assert info.value.params[2] == "kernel_file"
    assert (tmp_path / "precious").exists()


GOOD_REF = "OpaqueRef:00000000-0000-4000-8000-000000000000"
HOSTILE = [
    ("copy_vdi", {"vdi_ref": "OpaqueRef:../../etc", "image_size": 10}, "vdi_ref"),
    ("copy_vdi", {"vdi_ref": "xvda", "image_size": 10}, "vdi_ref"),
    ("copy_vdi", {"vdi_ref": GOOD_REF, "image_size": 0}, "image_size"),
    ("copy_vdi", {"vdi_ref": GOOD_REF, "image_size": 2 ** 40}, "image_size"),
    ("copy_vdi", {"vdi_ref": GOOD_REF, "image_size": "10; reboot"}, "image_size"),
    ("copy_vdi", {"vdi_ref": GOOD_REF, "image_size": 10, "cached_image": "../../etc/passwd"},
     "cached_image"),
    ("copy_vdi", {"vdi_ref": GOOD_REF, "image_size": 10, "cached_image": ".hidden"},
     "cached_image"),
    ("copy_vdi", {"vdi_ref": GOOD_REF, "image_size": 10, "cached_image": "a/b"}, "cached_image"),
    ("copy_vdi", {"vdi_ref": GOOD_REF, "image_size": 10, "cached_image": "x" * 65},
     "cached_image"),
    ("create_kernel_ramdisk", {"cached_image": "..", "new_image_uuid": NEW_UUID},
     "cached_image"),
    ("create_kernel_ramdisk", {"cached_image": IMAGE_ID, "new_image_uuid": "../../etc/cron.d"},
     "new_image_uuid"),
    ("remove_kernel_ramdisk", {"kernel_file": "/etc/passwd"}, "kernel_file"),
    ("remove_kernel_ramdisk", {"kernel_file": "/boot/guest/../../etc/shadow"}, "kernel_file"),
    ("remove_kernel_ramdisk", {"ramdisk_file": "/boot/guest/sub/file"}, "ramdisk_file"),
    ("remove_kernel_ramdisk", {"ramdisk_file": "boot/guest/x"}, "ramdisk_file"),
    ("remove_kernel_ramdisk", {"ramdisk_file": ["/boot/guest/x"]}, "ramdisk_file"),
]


# -- os-xenapi 0.3.4's plain arguments (its disk_management wrappers' keys) -------------------

def test_plain_copy_vdi_takes_0_3_4s_hyphenated_keys_and_answers_the_file_name(
        xapi_session, vdi, device, dom0_root):
    uuid = xapi_session.xenapi.VDI.get_uuid(vdi)
    text = harness.call_plain("kernel", "copy_vdi", {
        "vdi-ref": vdi, "image-size": str(len(KERNEL_BYTES)), "cached-image": IMAGE_ID,
        "host_uuid": _host_uuid(xapi_session)}, session=xapi_session)
    assert text == "/boot/guest/" + uuid
    assert (_boot_guest(dom0_root) / uuid).read_bytes() == KERNEL_BYTES
    assert (_boot_guest(dom0_root) / IMAGE_ID).read_bytes() == KERNEL_BYTES


def test_plain_copy_vdi_refuses_the_python_names_which_are_not_0_3_4s(xapi_session, vdi,
                                                                       failure):
    with pytest.raises(failure) as info:
        harness.call_plain("kernel", "copy_vdi", {"vdi_ref": vdi, "image-size": "10"},
                           session=xapi_session)
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "kernel.copy_vdi", "vdi_ref"]
    assert "vdi-ref, image-size, cached-image" in info.value.params[3]


def test_plain_copy_vdi_names_the_hyphenated_key_in_its_errors(xapi_session, vdi, failure):
    with pytest.raises(failure) as info:
        harness.call_plain("kernel", "copy_vdi", {"vdi-ref": vdi, "image-size": "big"},
                           session=xapi_session)
    assert info.value.params[2:] == ["image-size", "must be an integer, got string"]


def test_plain_create_kernel_ramdisk_answers_the_file_name(dom0_root):
    _boot_guest(dom0_root).mkdir(parents=True)
    (_boot_guest(dom0_root) / IMAGE_ID).write_bytes(KERNEL_BYTES)
    text = harness.call_plain("kernel", "create_kernel_ramdisk",
                              {"cached-image": IMAGE_ID, "new-image-uuid": NEW_UUID})
    assert text == "/boot/guest/" + NEW_UUID


def test_plain_create_kernel_ramdisk_without_a_cached_image_answers_empty_text(dom0_root):
    text = harness.call_plain("kernel", "create_kernel_ramdisk",
                              {"cached-image": IMAGE_ID, "new-image-uuid": NEW_UUID})
    assert text == ""


def test_plain_remove_kernel_ramdisk_answers_ok(dom0_root):
    _boot_guest(dom0_root).mkdir(parents=True)
    (_boot_guest(dom0_root) / "k1").write_bytes(b"x")
    text = harness.call_plain("kernel", "remove_kernel_ramdisk",
                              {"kernel-file": "/boot/guest/k1", "ramdisk-file": ""})
    assert text == "ok"
    assert os.listdir(str(_boot_guest(dom0_root))) == []


@pytest.mark.parametrize("function,kwargs,argument", HOSTILE,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(HOSTILE)])
def test_hostile_argument_is_refused_and_changes_nothing(commands, dom0_root, failure, function,
                                                        kwargs, argument):
    _boot_guest(dom0_root).mkdir(parents=True)
    (_boot_guest(dom0_root) / IMAGE_ID).write_bytes(b"kernel")
    refusals.assert_refused("kernel", function, kwargs, argument, commands, dom0_root, failure)


@pytest.mark.parametrize("name,raw", refusals.NOT_JSON_PARAMS,
                         ids=[name for name, _ in refusals.NOT_JSON_PARAMS])
@pytest.mark.parametrize("function", ["copy_vdi", "create_kernel_ramdisk",
                                      "remove_kernel_ramdisk"])
def test_params_that_are_not_the_json_protocol_are_refused(commands, dom0_root, failure,
                                                           function, name, raw):
    refusals.assert_refused("kernel", function, {}, "params", commands, dom0_root, failure,
                            raw_params=raw)


def test_runs_under_the_dom0_python_the_way_xapi_runs_it(dom0_root):
    _boot_guest(dom0_root).mkdir(parents=True)
    (_boot_guest(dom0_root) / "k1").write_bytes(b"x")
    status = harness.run_like_xapi(
        harness.PLUGINS / "kernel.py", "remove_kernel_ramdisk",
        {"params": '{"kwargs": {"kernel_file": "/boot/guest/k1"}}'},
        env_extra={"DOM0_ROOT": str(dom0_root)})
    assert status == ("Success", "null")
    assert os.listdir(str(_boot_guest(dom0_root))) == []
