"""VM records and power states through the official XenAPI SDK against a running simulator
(shared/xapi/PROTOCOL.md sections 1.7, 2.1 and 2.2)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator

NULL = "OpaqueRef:NULL"
GiB = 1024**3
LINUX = "Debian Bookworm 12"
BARE = "Other install media"
STATES = ("Halted", "Paused", "Suspended", "Running")

# operation -> {source state: resulting state}, and XAPI's "expected" text when refused.
TRANSITIONS: dict[str, tuple[dict[str, str], str]] = {
    "start": ({"Halted": "Running"}, "halted"),
    "start_on": ({"Halted": "Running"}, "halted"),
    "clean_shutdown": ({"Running": "Halted"}, "running"),
    "hard_shutdown": (dict.fromkeys(("Paused", "Suspended", "Running"), "Halted"),
                      "paused, suspended, running"),
    "shutdown": (dict.fromkeys(("Paused", "Suspended", "Running"), "Halted"),
                 "paused, suspended, running"),
    "clean_reboot": ({"Running": "Running"}, "running"),
    "hard_reboot": ({"Paused": "Paused", "Running": "Running"}, "paused, running"),
    "suspend": ({"Running": "Suspended"}, "running"),
    "resume": ({"Suspended": "Running"}, "suspended"),
    "resume_on": ({"Suspended": "Running"}, "suspended"),
    "pause": ({"Running": "Paused"}, "running"),
    "unpause": ({"Paused": "Running"}, "paused"),
    "power_state_reset": (dict.fromkeys(STATES, "Halted"), ""),
}


# -- fixtures and helpers ----------------------------------------------------------------------------

def login(url: str, sim: Simulator) -> XenAPI.Session:
    session = XenAPI.Session(url)
    session.xenapi.login_with_password(sim.username, sim.password, "1.0", "lifecycle-test")
    return session


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0) as running:
        yield running


@pytest.fixture(scope="module")
def x(sim: Simulator) -> Iterator[Any]:
    session = login(sim.url, sim)
    yield session.xenapi
    session.xenapi.session.logout()


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def template(x: Any, name: str = LINUX) -> str:
    return x.VM.get_by_name_label(name)[0]


def default_sr(x: Any) -> str:
    return x.pool.get_default_SR(x.pool.get_all()[0])


def install(x: Any, name: str = "vm", source: str = LINUX, sr: str | None = None) -> str:
    """A VM installed from a template the way ``xe vm-install`` does: clone, point the disks at
    an SR (the default SR unless given), provision; plus a VIF on the pool network."""
    vm = x.VM.clone(template(x, source), name)
    other = x.VM.get_other_config(vm)
    sr_uuid = x.SR.get_uuid(sr or default_sr(x))
    other["disks"] = other["disks"].replace('sr=""', f'sr="{sr_uuid}"')
    x.VM.set_other_config(vm, other)
    x.VM.provision(vm)
    network = next(ref for ref, rec in x.network.get_all_records().items()
                   if rec["bridge"] == "xenbr0")
    x.VIF.create({"device": "0", "network": network, "VM": vm, "MAC": "", "MTU": "1500",
                  "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    return vm


def remove(x: Any, vm: str) -> None:
    """Delete a test VM and its disks."""
    if vm not in x.VM.get_all():
        return
    if x.VM.get_power_state(vm) != "Halted":
        x.VM.hard_shutdown(vm)
    vdis = [x.VBD.get_VDI(vbd) for vbd in x.VM.get_VBDs(vm) if x.VBD.get_type(vbd) == "Disk"]
    x.VM.destroy(vm)
    for vdi in vdis:
        x.VDI.destroy(vdi)


@pytest.fixture
def vm(x: Any) -> Iterator[str]:
    ref = install(x)
    yield ref
    remove(x, ref)


def bring_to(x: Any, vm: str, state: str) -> None:
    if state in ("Running", "Suspended"):
        x.VM.start(vm, False, False)
    if state == "Paused":
        x.VM.start(vm, True, False)
    if state == "Suspended":
        x.VM.suspend(vm)
    assert x.VM.get_power_state(vm) == state


def call(x: Any, op: str, vm: str) -> Any:
    host = x.host.get_all()[0]
    args = {"start": (False, False), "resume": (False, False),
            "start_on": (host, False, False), "resume_on": (host, False, False)}
    return getattr(x.VM, op)(vm, *args.get(op, ()))


def wait(x: Any, task: str) -> dict[str, Any]:
    """The task's record once it has finished, following it with event.from."""
    token = ""
    for _ in range(100):
        record = x.task.get_record(task)
        if record["status"] not in ("pending", "cancelling"):
            return record
        token = getattr(x.event, "from")([f"task/{task}"], token, 5.0)["token"]
    raise AssertionError(f"task {task} did not finish")


def dom0(x: Any) -> str:
    return next(ref for ref, rec in x.VM.get_all_records().items() if rec["is_control_domain"])


# -- the power-state table ---------------------------------------------------------------------------

@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("op", sorted(TRANSITIONS))
def test_power_operation_from_each_state(x: Any, vm: str, op: str, state: str) -> None:
    allowed, expected = TRANSITIONS[op]
    bring_to(x, vm, state)
    if state in allowed:
        call(x, op, vm)
        assert x.VM.get_power_state(vm) == allowed[state]
    else:
        assert failure(call, x, op, vm) == ["VM_BAD_POWER_STATE", vm, expected, state.lower()]
        assert x.VM.get_power_state(vm) == state


def test_allowed_operations_follow_the_power_state(x: Any, vm: str) -> None:
    halted = x.VM.get_allowed_operations(vm)
    assert {"start", "start_on", "clone", "copy", "destroy"} <= set(halted)
    assert "clean_shutdown" not in halted
    x.VM.start(vm, False, False)
    running = x.VM.get_allowed_operations(vm)
    assert {"clean_shutdown", "hard_shutdown", "suspend", "pause", "clean_reboot"} <= set(running)
    assert not {"start", "destroy", "clone"} & set(running)


def test_blocked_operation_is_refused_before_the_power_state_check(x: Any, vm: str) -> None:
    x.VM.set_blocked_operations(vm, {"clean_shutdown": "maintenance"})
    assert failure(x.VM.clean_shutdown, vm) == ["OPERATION_BLOCKED", vm, "maintenance"]


# -- start and what a running domain brings ------------------------------------------------------------

def test_start_records_domain_host_and_metrics(x: Any, vm: str) -> None:
    host = x.host.get_all()[0]
    x.VM.start(vm, False, False)
    record = x.VM.get_record(vm)
    assert record["resident_on"] == host
    assert int(record["domid"]) >= 1
    metrics = x.VM_metrics.get_record(record["metrics"])
    assert int(metrics["VCPUs_number"]) == int(record["VCPUs_at_startup"])
    assert int(metrics["memory_actual"]) == int(record["memory_dynamic_max"])
    assert metrics["state"] == ["running"]
    assert metrics["start_time"].value > "1970"


def test_start_attaches_disks_and_vifs(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    vbd = x.VM.get_VBDs(vm)[0]
    assert x.VBD.get_currently_attached(vbd) is True
    assert x.VBD.get_device(vbd) == "xvda"
    assert x.VIF.get_currently_attached(x.VM.get_VIFs(vm)[0]) is True


def test_running_linux_vm_reports_guest_metrics(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    guest = x.VM_guest_metrics.get_record(x.VM.get_guest_metrics(vm))
    assert guest["os_version"]["distro"] == "debian"
    assert guest["PV_drivers_detected"] is True
    assert guest["networks"]["0/ip"].startswith("10.")


def test_domids_count_up_on_the_host(x: Any, vm: str) -> None:
    other = install(x, "second")
    try:
        x.VM.start(vm, False, False)
        x.VM.start(other, False, False)
        first, second = int(x.VM.get_domid(vm)), int(x.VM.get_domid(other))
        assert second > first >= 1
        x.VM.clean_reboot(vm)
        assert int(x.VM.get_domid(vm)) > second
    finally:
        remove(x, other)


def test_shutdown_returns_domain_fields_to_halted_values(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    x.VM.clean_shutdown(vm)
    record = x.VM.get_record(vm)
    assert (record["domid"], record["resident_on"], record["guest_metrics"]) == ("-1", NULL, NULL)
    assert x.VBD.get_currently_attached(record["VBDs"][0]) is False
    assert x.VIF.get_currently_attached(record["VIFs"][0]) is False


def test_start_and_shutdown_move_host_free_memory(x: Any, vm: str) -> None:
    host = x.host.get_all()[0]
    before = int(x.host.compute_free_memory(host))
    x.VM.start(vm, False, False)
    used = int(x.VM.get_memory_dynamic_max(vm)) + int(x.VM.get_memory_overhead(vm))
    assert int(x.host.compute_free_memory(host)) == before - used
    x.VM.hard_shutdown(vm)
    assert int(x.host.compute_free_memory(host)) == before


def test_start_beyond_free_memory_fails_with_needed_and_available(x: Any, vm: str) -> None:
    host = x.host.get_all()[0]
    free = int(x.host.compute_free_memory(host))
    x.VM.set_memory_limits(vm, str(GiB), str(free + GiB), str(free + GiB), str(free + GiB))
    assert failure(x.VM.start, vm, False, False) == [
        "HOST_NOT_ENOUGH_FREE_MEMORY", str(free + GiB), str(free)]
    assert x.VM.get_power_state(vm) == "Halted"


def test_start_paused_gives_a_paused_vm(x: Any, vm: str) -> None:
    x.VM.start(vm, True, False)
    assert x.VM.get_power_state(vm) == "Paused"
    assert x.VM_metrics.get_state(x.VM.get_metrics(vm)) == ["paused"]


def test_suspend_writes_a_suspend_image_that_resume_deletes(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    x.VM.suspend(vm)
    image = x.VM.get_suspend_VDI(vm)
    assert x.VDI.get_type(image) == "suspend"
    assert x.VM.get_resident_on(vm) == NULL
    x.VM.resume(vm, False, False)
    assert x.VM.get_suspend_VDI(vm) == NULL
    assert image not in x.VDI.get_all()


def test_clean_shutdown_needs_pv_drivers_on_hvm_guest(x: Any) -> None:
    bare = install(x, "bare", BARE)
    try:
        x.VM.start(bare, False, False)
        assert x.VM.get_guest_metrics(bare) == NULL
        assert failure(x.VM.clean_shutdown, bare) == ["VM_LACKS_FEATURE", bare]
        x.VM.hard_shutdown(bare)
    finally:
        remove(x, bare)


def test_template_cannot_start(x: Any) -> None:
    debian = template(x)
    assert failure(x.VM.start, debian, False, False) == ["VM_IS_TEMPLATE", debian, "start"]


# -- Async calls and tasks ---------------------------------------------------------------------------

def test_async_start_returns_a_task_whose_result_is_empty(x: Any, vm: str) -> None:
    task = x.Async.VM.start(vm, False, False)
    record = wait(x, task)
    assert (record["status"], record["result"], float(record["progress"])) == (
        "success", "<value></value>", 1.0)
    assert x.VM.get_power_state(vm) == "Running"


def test_async_clone_result_is_the_new_vm(x: Any, vm: str) -> None:
    record = wait(x, x.Async.VM.clone(vm, "async clone"))
    new = record["result"].removeprefix("<value>").removesuffix("</value>")
    try:
        assert x.VM.get_name_label(new) == "async clone"
    finally:
        remove(x, new)


@pytest.fixture(scope="module")
def slow() -> Iterator[tuple[Simulator, Any]]:
    with Simulator(auth_failure_delay=0, operation_delay=0.6) as running:
        session = login(running.url, running)
        yield running, session.xenapi
        session.xenapi.session.logout()


@pytest.fixture
def slow_vm(slow: tuple[Simulator, Any]) -> Iterator[str]:
    _, sx = slow
    ref = install(sx, "slow")
    yield ref
    remove(sx, ref)


def test_task_progress_moves_while_the_operation_runs(slow: tuple[Simulator, Any],
                                                      slow_vm: str) -> None:
    _, sx = slow
    task = sx.Async.VM.start(slow_vm, False, False)
    assert sx.VM.get_current_operations(slow_vm) == {task: "start"}
    seen, token = set(), ""
    for _ in range(100):
        record = sx.task.get_record(task)
        seen.add(float(record["progress"]))
        if record["status"] != "pending":
            break
        token = getattr(sx.event, "from")([f"task/{task}"], token, 5.0)["token"]
    assert record["status"] == "success"
    assert any(0.0 < p < 1.0 for p in seen)
    assert sx.VM.get_current_operations(slow_vm) == {}


def test_operation_in_progress_blocks_a_conflicting_one(slow: tuple[Simulator, Any],
                                                        slow_vm: str) -> None:
    _, sx = slow
    task = sx.Async.VM.start(slow_vm, False, False)
    assert failure(sx.VM.destroy, slow_vm) == [
        "OTHER_OPERATION_IN_PROGRESS", "VM", slow_vm, "start", task]
    assert wait(sx, task)["status"] == "success"


def test_cancelled_start_leaves_the_vm_halted(slow: tuple[Simulator, Any], slow_vm: str) -> None:
    _, sx = slow
    host = sx.host.get_all()[0]
    free = sx.host.compute_free_memory(host)
    task = sx.Async.VM.start(slow_vm, False, False)
    sx.task.cancel(task)
    record = wait(sx, task)
    assert (record["status"], record["error_info"]) == ("cancelled", ["TASK_CANCELLED", task])
    assert sx.VM.get_power_state(slow_vm) == "Halted"
    assert sx.VM.get_current_operations(slow_vm) == {}
    assert sx.host.compute_free_memory(host) == free


def test_hard_shutdown_cancels_a_clean_shutdown_in_progress(slow: tuple[Simulator, Any],
                                                            slow_vm: str) -> None:
    _, sx = slow
    sx.VM.start(slow_vm, False, False)
    task = sx.Async.VM.clean_shutdown(slow_vm)
    assert sx.VM.get_current_operations(slow_vm) == {task: "clean_shutdown"}
    sx.VM.hard_shutdown(slow_vm)
    assert wait(sx, task)["status"] == "cancelled"
    assert sx.VM.get_power_state(slow_vm) == "Halted"


# -- create, destroy, clone, copy, provision -----------------------------------------------------------

def vm_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "name_label": "from scratch", "user_version": "1", "is_a_template": False,
        "affinity": NULL, "memory_static_max": str(GiB), "memory_dynamic_max": str(GiB),
        "memory_dynamic_min": str(GiB // 2), "memory_static_min": str(GiB // 2),
        "VCPUs_params": {}, "VCPUs_max": "2", "VCPUs_at_startup": "1",
        "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
        "actions_after_crash": "restart", "PV_bootloader": "pygrub", "PV_kernel": "",
        "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "", "HVM_boot_params": {}, "platform": {}, "PCI_bus": "",
        "other_config": {}, "recommendations": "",
    }
    record.update(overrides)
    return record


def test_create_gives_a_halted_vm_with_metrics(x: Any) -> None:
    vm = x.VM.create(vm_record())
    try:
        record = x.VM.get_record(vm)
        assert (record["power_state"], record["domid"], record["resident_on"]) == (
            "Halted", "-1", NULL)
        assert x.VM_metrics.get_install_time(record["metrics"]).value > "1970"
        assert "start" in record["allowed_operations"]
        assert "mac_seed" in record["other_config"]
    finally:
        x.VM.destroy(vm)


def test_create_of_a_template_gives_a_template(x: Any) -> None:
    vm = x.VM.create(vm_record(is_a_template=True))
    try:
        assert x.VM.get_is_a_template(vm) is True
        assert "start" not in x.VM.get_allowed_operations(vm)
    finally:
        x.VM.destroy(vm)


def test_create_with_memory_out_of_order_is_refused(x: Any) -> None:
    record = vm_record(memory_dynamic_min=str(2 * GiB))
    assert failure(x.VM.create, record) == ["MEMORY_CONSTRAINT_VIOLATION_ORDER"]


def test_destroy_removes_devices_and_metrics_but_keeps_vdis(x: Any) -> None:
    vm = install(x, "to destroy")
    record = x.VM.get_record(vm)
    vdi = x.VBD.get_VDI(record["VBDs"][0])
    x.VM.destroy(vm)
    assert vm not in x.VM.get_all()
    assert record["VBDs"][0] not in x.VBD.get_all()
    assert record["VIFs"][0] not in x.VIF.get_all()
    assert record["metrics"] not in x.VM_metrics.get_all()
    assert vdi in x.VDI.get_all()
    x.VDI.destroy(vdi)


def test_destroy_of_a_running_vm_is_refused(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    assert failure(x.VM.destroy, vm) == ["VM_BAD_POWER_STATE", vm, "halted, suspended", "running"]


def test_destroy_of_a_default_template_is_refused(x: Any) -> None:
    debian = template(x)
    assert failure(x.VM.destroy, debian) == ["VM_IS_TEMPLATE", debian, "destroy"]


def test_destroy_of_a_vm_marked_default_template_is_refused(x: Any, vm: str) -> None:
    x.VM.add_to_other_config(vm, "default_template", "true")
    assert failure(x.VM.destroy, vm) == ["VM_CANNOT_DELETE_DEFAULT_TEMPLATE"]
    x.VM.remove_from_other_config(vm, "default_template")


def test_clone_of_a_template_is_a_template_without_default_mark(x: Any) -> None:
    debian = template(x)
    clone = x.VM.clone(debian, "my template")
    try:
        record = x.VM.get_record(clone)
        assert record["is_a_template"] is True
        assert record["is_default_template"] is False
        assert "default_template" not in record["other_config"]
        assert record["other_config"]["mac_seed"] != x.VM.get_other_config(debian)["mac_seed"]
        assert record["parent"] == NULL
        assert "destroy" in record["allowed_operations"]
    finally:
        x.VM.destroy(clone)


def test_clone_makes_new_disks_and_macs(x: Any, vm: str) -> None:
    clone = x.VM.clone(vm, "clone")
    try:
        record = x.VM.get_record(clone)
        assert record["uuid"] != x.VM.get_uuid(vm)
        assert (record["name_label"], record["power_state"]) == ("clone", "Halted")
        old_vbd, new_vbd = x.VM.get_VBDs(vm)[0], record["VBDs"][0]
        old_vdi, new_vdi = x.VBD.get_VDI(old_vbd), x.VBD.get_VDI(new_vbd)
        assert new_vdi != old_vdi
        assert x.VDI.get_SR(new_vdi) == x.VDI.get_SR(old_vdi)
        assert x.VBD.get_userdevice(new_vbd) == x.VBD.get_userdevice(old_vbd)
        old_mac = x.VIF.get_MAC(x.VM.get_VIFs(vm)[0])
        assert x.VIF.get_MAC(record["VIFs"][0]) != old_mac
    finally:
        remove(x, clone)


def test_copy_puts_full_disk_copies_in_the_given_sr(x: Any, vm: str) -> None:
    sr = default_sr(x)
    copy = x.VM.copy(vm, "copy", sr)
    try:
        old = x.VBD.get_VDI(x.VM.get_VBDs(vm)[0])
        new = x.VBD.get_VDI(x.VM.get_VBDs(copy)[0])
        assert new != old and x.VDI.get_SR(new) == sr
        assert x.VDI.get_virtual_size(new) == x.VDI.get_virtual_size(old)
    finally:
        remove(x, copy)


def test_copy_with_null_sr_keeps_each_disk_in_its_sr(x: Any, vm: str) -> None:
    copy = x.VM.copy(vm, "copy", NULL)
    try:
        old = x.VBD.get_VDI(x.VM.get_VBDs(vm)[0])
        new = x.VBD.get_VDI(x.VM.get_VBDs(copy)[0])
        assert x.VDI.get_SR(new) == x.VDI.get_SR(old)
    finally:
        remove(x, copy)


def test_provision_turns_a_template_clone_into_a_vm_with_its_disks(x: Any, vm: str) -> None:
    record = x.VM.get_record(vm)
    assert record["is_a_template"] is False
    assert "disks" not in record["other_config"]
    vbd = record["VBDs"][0]
    vdi = x.VDI.get_record(x.VBD.get_VDI(vbd))
    assert (x.VBD.get_userdevice(vbd), x.VBD.get_bootable(vbd)) == ("0", True)
    assert (vdi["name_label"], vdi["name_description"]) == ("0", "Created by template provisioner")
    assert (int(vdi["virtual_size"]), vdi["SR"]) == (10 * GiB, default_sr(x))


def test_provision_of_a_vm_is_refused(x: Any, vm: str) -> None:
    assert failure(x.VM.provision, vm) == ["PROVISION_ONLY_ALLOWED_ON_TEMPLATE"]


def test_provision_puts_disks_with_a_blank_sr_in_the_default_sr(x: Any) -> None:
    clone = x.VM.clone(template(x), "blank sr")
    try:
        x.VM.provision(clone)
        vdi = x.VBD.get_VDI(x.VM.get_VBDs(clone)[0])
        assert x.VDI.get_SR(vdi) == default_sr(x)
    finally:
        remove(x, clone)


def test_provision_with_an_unknown_sr_is_refused(x: Any) -> None:
    clone = x.VM.clone(template(x), "unknown sr")
    other = x.VM.get_other_config(clone)
    other["disks"] = other["disks"].replace('sr=""', 'sr="no-such-sr"')
    x.VM.set_other_config(clone, other)
    try:
        assert failure(x.VM.provision, clone) == ["UUID_INVALID", "sr", "no-such-sr"]
    finally:
        x.VM.destroy(clone)


def test_allowed_devices_skip_the_ones_in_use(x: Any, vm: str) -> None:
    vbd_devices = x.VM.get_allowed_VBD_devices(vm)
    assert "0" not in vbd_devices and vbd_devices[0] == "1"
    assert x.VM.get_allowed_VIF_devices(vm) == ["1", "2", "3", "4", "5", "6"]


def test_memory_limits_change_only_while_halted(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    assert failure(x.VM.set_memory_limits, vm, str(GiB), str(GiB), str(GiB), str(GiB)) == [
        "VM_BAD_POWER_STATE", vm, "halted", "running"]
    x.VM.set_memory_dynamic_range(vm, str(GiB // 2), str(GiB))
    assert x.VM.get_memory_dynamic_min(vm) == str(GiB // 2)


# -- the control domain --------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["clean_shutdown", "hard_shutdown", "suspend", "pause",
                                "clean_reboot"])
def test_control_domain_refuses_power_operations(x: Any, op: str) -> None:
    assert failure(getattr(x.VM, op), dom0(x)) == [
        "OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain"]


def test_control_domain_cannot_be_destroyed_while_running(x: Any) -> None:
    domain = dom0(x)
    assert failure(x.VM.destroy, domain) == [
        "VM_BAD_POWER_STATE", domain, "halted, suspended", "running"]


def test_dom0_refuses_a_vcpu_change(x: Any) -> None:
    assert failure(x.VM.set_VCPUs_max, dom0(x), "4") == [
        "OPERATION_NOT_ALLOWED", "This operation is not allowed on dom0"]


def test_control_domain_power_state_cannot_be_reset(x: Any) -> None:
    domain = dom0(x)
    assert failure(x.VM.power_state_reset, domain) == ["CANNOT_RESET_CONTROL_DOMAIN", domain]


# -- hosts and the pool ----------------------------------------------------------------------------

def test_host_servertime_is_now(x: Any) -> None:
    stamp = x.host.get_servertime(x.host.get_all()[0])
    moment = datetime.datetime.strptime(stamp.value, "%Y%m%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - moment).total_seconds()) < 60


@pytest.fixture
def pool2() -> Iterator[tuple[Simulator, Any]]:
    with Simulator(hosts=2, auth_failure_delay=0) as running:
        session = login(running.url, running)
        yield running, session.xenapi


def diskless_vm(xapi: Any) -> str:
    vm = xapi.VM.clone(template(xapi), "diskless")
    xapi.VM.set_is_a_template(vm, False)
    return vm


def test_designate_new_master_moves_the_master(pool2: tuple[Simulator, Any]) -> None:
    sim2, px = pool2
    old = px.pool.get_master(px.pool.get_all()[0])
    new = next(h for h in px.host.get_all() if h != old)
    px.pool.designate_new_master(new)
    session = login(sim2.urls[1], sim2)
    assert session.xenapi.pool.get_master(session.xenapi.pool.get_all()[0]) == new
    with pytest.raises(XenAPI.Failure) as info:
        login(sim2.urls[0], sim2)
    assert info.value.details == ["HOST_IS_SLAVE", session.xenapi.host.get_address(new)]


def test_disabled_host_refuses_start_on(pool2: tuple[Simulator, Any]) -> None:
    _, px = pool2
    host = px.host.get_all()[1]
    vm = diskless_vm(px)
    px.host.disable(host)
    assert px.host.get_enabled(host) is False
    assert failure(px.VM.start_on, vm, host, False, False) == ["HOST_DISABLED", host]


def test_start_skips_a_disabled_host(pool2: tuple[Simulator, Any]) -> None:
    _, px = pool2
    master = px.pool.get_master(px.pool.get_all()[0])
    vm = diskless_vm(px)
    px.host.disable(master)
    px.VM.start(vm, False, False)
    assert px.VM.get_resident_on(vm) not in ("OpaqueRef:NULL", master)


def test_enabled_host_accepts_start_on_again(pool2: tuple[Simulator, Any]) -> None:
    _, px = pool2
    host = px.host.get_all()[1]
    vm = diskless_vm(px)
    px.host.disable(host)
    px.host.enable(host)
    px.VM.start_on(vm, host, False, False)
    assert px.VM.get_resident_on(vm) == host


def test_start_on_a_host_without_the_disks_sr_is_refused(pool2: tuple[Simulator, Any]) -> None:
    _, px = pool2
    vm = install(px, "local disk")
    sr = px.VDI.get_SR(px.VBD.get_VDI(px.VM.get_VBDs(vm)[0]))
    other = next(h for h in px.host.get_all()
                 if all(px.PBD.get_host(p) != h for p in px.SR.get_PBDs(sr)))
    assert failure(px.VM.start_on, vm, other, False, False) == ["VM_REQUIRES_SR", vm, sr]


def test_start_picks_the_host_that_has_the_disks(pool2: tuple[Simulator, Any]) -> None:
    _, px = pool2
    slave = next(h for h in px.host.get_all() if h != px.pool.get_master(px.pool.get_all()[0]))
    local = next(px.PBD.get_SR(p) for p in px.host.get_PBDs(slave))
    vm = install(px, "on the slave's disk", sr=local)
    px.VM.start(vm, False, False)
    assert px.VM.get_resident_on(vm) == slave
