"""host.reboot, host.shutdown and host.power_on in the simulator, judged by the official SDK:
XAPI's checks first (the host disabled, no guest running, no disk plugged into its control
domain), then a host that comes back enabled with a new boot time, or goes down."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator


@pytest.fixture()
def x() -> Iterator[Any]:
    with Simulator(hosts=2, vms=1, auth_failure_delay=0) as sim:
        session = XenAPI.Session(sim.url)
        session.xenapi.login_with_password(sim.username, sim.password, "1.0", "power-tests")
        yield session.xenapi
        session.xenapi.session.logout()


def member(x: Any) -> str:
    master = x.pool.get_master(x.pool.get_all()[0])
    return next(host for host in x.host.get_all() if host != master)


def details(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def test_an_enabled_host_is_not_rebooted_or_shut_down(x: Any) -> None:
    host = member(x)
    assert details(x.host.reboot, host) == ["HOST_NOT_DISABLED"]
    assert details(x.host.shutdown, host) == ["HOST_NOT_DISABLED"]


def test_a_host_running_a_guest_is_in_use(x: Any) -> None:
    master = x.pool.get_master(x.pool.get_all()[0])
    [vm] = [ref for ref, r in x.VM.get_all_records().items()
            if not r["is_a_template"] and not r["is_control_domain"]]
    x.VM.start_on(vm, master, False, False)
    x.host.disable(master)
    assert details(x.host.reboot, master) == ["HOST_IN_USE", master, "vm", vm]


def test_a_reboot_brings_the_host_back_enabled_with_a_new_boot_time(x: Any) -> None:
    host = member(x)
    booted = float(x.host.get_other_config(host)["boot_time"])
    x.host.disable(host)
    x.host.reboot(host)
    assert x.host.get_enabled(host) is True
    assert float(x.host.get_other_config(host)["boot_time"]) > booted
    assert x.host_metrics.get_live(x.host.get_metrics(host)) is True


def test_a_shut_down_host_is_not_live_and_powers_on_only_with_a_power_on_mode(x: Any) -> None:
    host = member(x)
    assert details(x.host.power_on, host) == ["HOST_IS_LIVE", host]
    x.host.disable(host)
    x.host.shutdown(host)
    assert x.host_metrics.get_live(x.host.get_metrics(host)) is False
    assert details(x.host.power_on, host) == ["HOST_POWER_ON_MODE_DISABLED"]
    x.host.set_power_on_mode(host, "wake-on-lan", {})
    x.host.power_on(host)
    assert x.host_metrics.get_live(x.host.get_metrics(host)) is True
    assert x.host.get_enabled(host) is True
