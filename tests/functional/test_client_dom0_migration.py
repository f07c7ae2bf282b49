"""migration.transfer_vhd end to end: XenAPISession against a two-host simulator running
os-xenapi's own plugins in a scratch dom0 root. To this host the plugin copies with a local
rsync; to the other simulated host it goes through the simulated ssh (dom0env/bin/ssh), which
checks the host key against /root/.ssh/known_hosts and runs the receiving rsync in the same
dom0 root. The official XenAPI SDK gives the hosts' addresses.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import exception, vm_management
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import DOM0ENV, dom0_environment

ORIGINATOR = "dom0-migration-tests"
SR_UUID = "6d1f4c2a-8b3e-4f5a-9c7d-0e2b4a6c8d10"
SR_PATH = f"/var/run/sr-mount/{SR_UUID}"
MiB = 1024 * 1024
KEYSCAN_TIMEOUT = 30.0
# The ip stand-in's addresses: the plugin treats these as this host.
THIS_HOST_ADDRESSES = ("127.0.0.1", "192.0.2.10")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("dom0")
    (made / SR_PATH.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (made / "images").mkdir(exist_ok=True)
    return made


@pytest.fixture(scope="module")
def sim(root: Path) -> Iterator[Simulator]:
    with Simulator(hosts=2, auth_failure_delay=0, dom0_root=root) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def master_address(x: Any) -> str:
    return x.host.get_address(x.pool.get_master(x.pool.get_all()[0]))


@pytest.fixture(scope="module")
def other_address(x: Any, master_address: str) -> str:
    addresses = [record["address"] for record in x.host.get_all_records().values()]
    (other,) = [address for address in addresses if address != master_address]
    return other


@pytest.fixture()
def vhd(root: Path) -> tuple[str, bytes]:
    """A VHD file of the SR (3 MiB of known bytes, the middle MiB zeros): (VDI uuid, bytes)."""
    vdi = str(uuid.uuid4())
    rng = random.Random(vdi)
    data = rng.randbytes(MiB) + bytes(MiB) + rng.randbytes(MiB)
    (root / SR_PATH.lstrip("/") / f"{vdi}.vhd").write_bytes(data)
    return vdi, data


@pytest.fixture()
def instance() -> str:
    return str(uuid.uuid4())


@pytest.fixture()
def known_hosts(root: Path) -> Iterator[Path]:
    """dom0's /root/.ssh/known_hosts, empty; the test writes what it needs."""
    path = root / "root/.ssh/known_hosts"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    yield path
    path.unlink(missing_ok=True)


def keyscan(root: Path, sim: Simulator, *args: str) -> str:
    """What the simulated dom0's ssh-keyscan prints on stdout."""
    env = {**dom0_environment(root), "XAPI_SIM_SOCKET": sim.unix_path}
    done = subprocess.run([str(DOM0ENV / "bin/ssh-keyscan"), *args], env=env,
                          capture_output=True, text=True, timeout=KEYSCAN_TIMEOUT, check=True)
    return done.stdout


def connections(root: Path) -> list[dict[str, Any]]:
    """The connections the simulated ssh accepted so far."""
    log = root / "var/log/simssh-connections.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def received(root: Path, instance: str, seq_num: int = 0) -> Path:
    return root / "images" / f"instance{instance}" / f"{seq_num}.vhd"


def test_the_pools_master_is_this_host_for_the_plugin(master_address: str,
                                                      other_address: str) -> None:
    assert master_address in THIS_HOST_ADDRESSES
    assert other_address not in THIS_HOST_ADDRESSES


def test_transfer_vhd_to_this_host_copies_the_vhd_into_images(
        root: Path, session: XenAPISession, master_address: str, vhd: tuple[str, bytes],
        instance: str) -> None:
    vdi, data = vhd
    assert vm_management.transfer_vhd(session, instance, master_address, vdi, SR_PATH,
                                      0) is None  # as in 0.3.4
    assert received(root, instance).read_bytes() == data


def test_transfer_vhd_to_this_host_does_not_use_ssh(
        root: Path, session: XenAPISession, master_address: str, vhd: tuple[str, bytes],
        instance: str) -> None:
    before = connections(root)
    vm_management.transfer_vhd(session, instance, master_address, vhd[0], SR_PATH, 0)
    assert connections(root) == before


def test_transfer_vhd_names_the_copy_by_its_sequence_number(
        root: Path, session: XenAPISession, master_address: str, vhd: tuple[str, bytes],
        instance: str) -> None:
    vm_management.transfer_vhd(session, instance, master_address, vhd[0], SR_PATH, 2)
    assert os.listdir(received(root, instance, 2).parent) == ["2.vhd"]


def test_transfer_vhd_to_the_other_host_copies_the_vhd_over_ssh(
        root: Path, sim: Simulator, session: XenAPISession, other_address: str,
        vhd: tuple[str, bytes], instance: str, known_hosts: Path) -> None:
    known_hosts.write_text(keyscan(root, sim, other_address))
    vdi, data = vhd
    vm_management.transfer_vhd(session, instance, other_address, vdi, SR_PATH, 0)
    assert received(root, instance).read_bytes() == data


def test_transfer_vhd_to_the_other_host_connects_as_root_to_run_rsync_server(
        root: Path, sim: Simulator, session: XenAPISession, other_address: str,
        vhd: tuple[str, bytes], instance: str, known_hosts: Path) -> None:
    known_hosts.write_text(keyscan(root, sim, other_address))
    vm_management.transfer_vhd(session, instance, other_address, vhd[0], SR_PATH, 0)
    last = connections(root)[-1]
    assert (last["host"], last["user"]) == (other_address, "root")
    assert last["command"][:2] == ["rsync", "--server"]
    assert last["command"][-1] == f"{root}/images/instance{instance}/"


def test_transfer_vhd_accepts_a_hashed_known_hosts_entry(
        root: Path, sim: Simulator, session: XenAPISession, other_address: str,
        vhd: tuple[str, bytes], instance: str, known_hosts: Path) -> None:
    hashed = keyscan(root, sim, "-H", other_address)
    assert hashed.startswith("|1|")
    known_hosts.write_text(hashed)
    vm_management.transfer_vhd(session, instance, other_address, vhd[0], SR_PATH, 0)
    assert received(root, instance).read_bytes() == vhd[1]


def failed_transfer(session: XenAPISession, instance: str, host: str,
                    vdi: str) -> exception.Dom0PluginError:
    with pytest.raises(exception.Dom0PluginError) as info:
        vm_management.transfer_vhd(session, instance, host, vdi, SR_PATH, 0)
    return info.value


def test_transfer_vhd_without_a_known_hosts_entry_fails_host_key_verification(
        root: Path, sim: Simulator, session: XenAPISession, master_address: str,
        other_address: str, vhd: tuple[str, bytes], instance: str, known_hosts: Path) -> None:
    known_hosts.write_text(keyscan(root, sim, master_address))  # the other host is not there
    error = failed_transfer(session, instance, other_address, vhd[0])
    # rsync passes on ssh's 255, or says 12 (protocol stream) when it sees the pipe close
    # before ssh's exit: the real rsync races the same way. The cause is in the message.
    assert error.details[:2] == ["OS_XENAPI_COMMAND_FAILED", "rsync"]
    assert error.details[2] in ("255", "12")
    assert "Host key verification failed." in error.details[3]
    assert not received(root, instance).parent.exists()


def test_transfer_vhd_with_a_changed_host_key_is_refused(
        root: Path, sim: Simulator, session: XenAPISession, other_address: str,
        vhd: tuple[str, bytes], instance: str, known_hosts: Path) -> None:
    keyscan(root, sim, other_address)  # makes sure the host key exists
    other_key = base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + os.urandom(32)).decode()
    known_hosts.write_text(f"{other_address} ssh-ed25519 {other_key}\n")
    error = failed_transfer(session, instance, other_address, vhd[0])
    assert error.code == "OS_XENAPI_COMMAND_FAILED"
    assert f"Host key for {other_address} has changed" in error.details[3]
    assert not received(root, instance).parent.exists()


def test_transfer_vhd_to_a_host_that_is_not_simulated_is_refused_at_once(
        root: Path, session: XenAPISession, vhd: tuple[str, bytes], instance: str,
        known_hosts: Path) -> None:
    started = time.monotonic()
    error = failed_transfer(session, instance, "192.0.2.99", vhd[0])
    # ConnectTimeout is 30 s: a real connection attempt to this address would hang that long.
    assert time.monotonic() - started < 10.0
    assert "ssh: connect to host 192.0.2.99 port 22: Connection refused" in error.details[3]
    assert not received(root, instance).parent.exists()


def test_transfer_vhd_without_a_known_hosts_file_is_not_found(
        root: Path, session: XenAPISession, other_address: str, vhd: tuple[str, bytes],
        instance: str) -> None:
    # vm_management.transfer_vhd cannot name another file: the plugin's default is used.
    (root / "root/.ssh/known_hosts").unlink(missing_ok=True)
    with pytest.raises(exception.PluginNotFound) as info:
        vm_management.transfer_vhd(session, instance, other_address, vhd[0], SR_PATH, 0)
    assert info.value.details[1:] == ["known_hosts", "/root/.ssh/known_hosts"]
