"""The simulated dom0's ssh, ssh-keyscan and rsync stand-ins (dom0env/bin) and their helpers
(dom0env/lib/simssh.py): known_hosts rules, the remote command and its path translation, and
the stand-ins run as subprocesses in a scratch DOM0_ROOT against a two-host simulator, which
they ask for its hosts over its Unix socket.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import DOM0ENV, dom0_environment

LIB = DOM0ENV / "lib"
BIN = DOM0ENV / "bin"
OTHER_HOST = "127.0.0.2"  # the simulator's second host
TIMEOUT = 60.0
FLAGS = "-logtprSe.iLsfxCIvu"  # what rsync -a --no-D --sparse sends its receiver


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, LIB / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_simssh() -> ModuleType:
    """simssh with dom0env's own simpaths and XenAPI (the official SDK owns ``XenAPI`` here)."""
    helpers = {"simpaths": _load("simpaths"), "XenAPI": _load("XenAPI")}
    sys.modules["simpaths"] = helpers["simpaths"]
    helpers["simtools"] = _load("simtools")
    saved = {name: sys.modules.get(name) for name in helpers}
    sys.modules.update(helpers)
    try:
        return _load("simssh")
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


simssh = load_simssh()
Refused = simssh.simpaths.Refused


def random_key() -> str:
    blob = b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + os.urandom(32)
    return base64.b64encode(blob).decode()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=2, auth_failure_delay=0) as simulator:
        yield simulator


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    made = tmp_path / "dom0"
    for directory in ("root/.ssh", "images", "src", "dev"):
        (made / directory).mkdir(parents=True)
    monkeypatch.setenv("DOM0_ROOT", str(made))
    return made


@pytest.fixture()
def key(root: Path) -> str:
    return simssh.host_key()


def run(root: Path, sim: Simulator, command: str, *args: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a stand-in of dom0env/bin as a plugin would, in the scratch dom0."""
    environment = {**dom0_environment(root), "XAPI_SIM_SOCKET": sim.unix_path, **(env or {})}
    return subprocess.run([str(BIN / command), *args], env=environment, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False, cwd=root)


def ssh(root: Path, sim: Simulator, *args: str, known_hosts: str = "",
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The ssh stand-in with strict host key checking, as the plugin runs it."""
    options = ["-o", f"UserKnownHostsFile={known_hosts}"] if known_hosts else []
    return run(root, sim, "ssh", "-o", "StrictHostKeyChecking=yes", *options, *args, env=env)


def plugin_rsh(known_hosts: Path) -> str:
    """The -e string of the migration plugin."""
    return ("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes "
            f"-o UserKnownHostsFile={known_hosts} -o ConnectTimeout=30")


def trust(root: Path, key: str, host: str = OTHER_HOST) -> Path:
    path = root / "root/.ssh/known_hosts"
    path.write_text(f"{host} ssh-ed25519 {key}\n")
    return path


# -- known_hosts -----------------------------------------------------------------------------

def test_a_plain_host_name_matches_only_itself() -> None:
    assert simssh.hosts_field_matches("10.0.0.2", "10.0.0.2")
    assert not simssh.hosts_field_matches("10.0.0.2", "10.0.0.20")


def test_a_comma_list_matches_any_of_its_names() -> None:
    assert simssh.hosts_field_matches("compute-2,10.0.0.2", "10.0.0.2")


def test_a_bracketed_port_entry_matches_lookups_on_that_port_only() -> None:
    assert simssh.lookup_name("h", 2222) == "[h]:2222"
    assert simssh.hosts_field_matches("[h]:2222", simssh.lookup_name("h", 2222))
    assert not simssh.hosts_field_matches("[h]:2222", simssh.lookup_name("h", 22))


def test_a_hashed_entry_matches_the_name_it_was_made_from() -> None:
    field = simssh.hashed_name("10.0.0.2")
    assert field.startswith("|1|")
    assert simssh.hosts_field_matches(field, "10.0.0.2")
    assert not simssh.hosts_field_matches(field, "10.0.0.3")


def test_a_negated_pattern_excludes_a_host_a_wildcard_includes() -> None:
    assert simssh.hosts_field_matches("10.0.0.*", "10.0.0.7")
    assert not simssh.hosts_field_matches("10.0.0.*,!10.0.0.7", "10.0.0.7")


def test_host_names_match_whatever_their_case() -> None:
    assert simssh.hosts_field_matches("Compute-2.Example.ORG", "compute-2.example.org")


def test_the_same_key_is_known_past_comments_and_other_key_types(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    key = random_key()
    path.write_text(f"# comment\n\nh ssh-rsa {random_key()}\n@cert-authority h ssh-ed25519 "
                    f"{random_key()}\nh ssh-ed25519 {key} root@h\n")
    assert simssh.check_known_hosts(str(path), "h", key) == ("known", None)


def test_another_key_for_the_host_is_changed_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"other ssh-ed25519 {random_key()}\nh ssh-ed25519 {random_key()}\n")
    assert simssh.check_known_hosts(str(path), "h", random_key()) == ("changed", 2)


def test_a_line_with_the_same_key_wins_over_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    key = random_key()
    path.write_text(f"h ssh-ed25519 {random_key()}\nh ssh-ed25519 {key}\n")
    assert simssh.check_known_hosts(str(path), "h", key) == ("known", None)


def test_a_revoked_key_is_reported_revoked(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    key = random_key()
    path.write_text(f"h ssh-ed25519 {key}\n@revoked h ssh-ed25519 {key}\n")
    assert simssh.check_known_hosts(str(path), "h", key) == ("revoked", 2)


def test_a_host_with_only_other_key_types_listed_is_new(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"h ssh-rsa {random_key()}\n")
    assert simssh.check_known_hosts(str(path), "h", random_key()) == ("new", None)


def test_a_missing_known_hosts_file_has_no_entries(tmp_path: Path) -> None:
    assert simssh.check_known_hosts(str(tmp_path / "none"), "h", random_key()) == ("new", None)


# -- the host key ----------------------------------------------------------------------------

def test_the_host_key_is_made_once_as_an_openssh_ed25519_public_key(root: Path) -> None:
    key = simssh.host_key()
    blob = base64.b64decode(key)
    assert blob[:15] == b"\0\0\0\x0bssh-ed25519" and blob[15:19] == b"\0\0\0\x20"
    assert len(blob) == 51
    assert (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2] == [
        "ssh-ed25519", key]
    assert simssh.host_key() == key


def test_a_host_key_file_linked_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "planted.pub").write_text(f"ssh-ed25519 {random_key()}\n")
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key.pub").symlink_to(tmp_path / "planted.pub")
    with pytest.raises(Refused, match="outside"):
        simssh.host_key()


# -- the remote command ----------------------------------------------------------------------

def test_the_remote_command_is_split_as_a_shell_splits_it() -> None:
    assert simssh.split_remote_command(r"rsync --server . /images/a\ b/ 'c d' \"e\"") == [
        "rsync", "--server", ".", "/images/a b/", "c d", '"e"']


@pytest.mark.parametrize("command", ["rsync; reboot", "rsync $(reboot)", "rsync `reboot`",
                                     "rsync | sh", "rsync > /etc/passwd", 'rsync "$HOME"'])
def test_shell_syntax_in_the_remote_command_is_refused(command: str) -> None:
    with pytest.raises(simssh.SshError, match="command not found") as info:
        simssh.split_remote_command(command)
    assert info.value.status == 127


def test_a_remote_command_other_than_rsync_server_is_not_found() -> None:
    with pytest.raises(simssh.SshError, match="command not found"):
        simssh.server_argv(["cat", "/etc/shadow"])


def test_an_absolute_destination_is_translated_to_the_dom0_root(root: Path) -> None:
    argv = simssh.server_argv(["rsync", "--server", FLAGS, "--timeout=600", ".", "/images/i/"])
    assert argv == ["rsync", "--server", FLAGS, "--timeout=600", ".", f"{root}/images/i/"]


def test_a_relative_destination_starts_at_roots_home(root: Path) -> None:
    assert simssh.server_argv(["rsync", "--server", FLAGS, ".", "x"])[-1] == f"{root}/root/x"


def test_a_destination_climbing_out_of_the_root_is_refused(root: Path) -> None:
    with pytest.raises(Refused, match="outside"):
        simssh.server_argv(["rsync", "--server", FLAGS, ".", "/../../../etc/"])


def test_a_destination_linked_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    (root / "images/out").symlink_to(tmp_path)
    with pytest.raises(Refused, match="outside"):
        simssh.server_argv(["rsync", "--server", FLAGS, ".", "/images/out/"])


def test_pulling_from_a_simulated_host_is_refused(root: Path) -> None:
    with pytest.raises(Refused, match="only pushing"):
        simssh.server_argv(["rsync", "--server", "--sender", FLAGS, ".", "/images/x"])


def test_a_receiver_that_would_create_devices_is_refused(root: Path) -> None:
    with pytest.raises(Refused, match="not simulated"):
        simssh.server_argv(["rsync", "--server", "-logDtprSe.iLsfxCIvu", ".", "/images/"])


# -- ssh-keyscan -----------------------------------------------------------------------------

def test_keyscan_prints_the_host_key_line_of_a_simulated_host(root: Path, sim: Simulator,
                                                               key: str) -> None:
    done = run(root, sim, "ssh-keyscan", OTHER_HOST)
    assert (done.returncode, done.stdout) == (0, f"{OTHER_HOST} ssh-ed25519 {key}\n")


def test_every_simulated_host_has_the_one_key_of_the_dom0_root(root: Path, sim: Simulator,
                                                                key: str) -> None:
    done = run(root, sim, "ssh-keyscan", "-t", "ed25519", *sim.addresses)
    assert {line.split()[2] for line in done.stdout.splitlines()} == {key}


def test_keyscan_of_a_host_that_is_not_simulated_prints_no_key_and_fails(
        root: Path, sim: Simulator) -> None:
    done = run(root, sim, "ssh-keyscan", "192.0.2.99")
    assert (done.returncode, done.stdout) == (1, "")
    assert "192.0.2.99 port 22: Connection refused" in done.stderr


def test_keyscan_for_other_key_types_prints_no_key(root: Path, sim: Simulator) -> None:
    assert run(root, sim, "ssh-keyscan", "-t", "rsa,ecdsa", OTHER_HOST).stdout == ""


# -- ssh -------------------------------------------------------------------------------------

def test_ssh_to_a_host_that_is_not_simulated_is_refused(root: Path, sim: Simulator) -> None:
    done = ssh(root, sim, "root@192.0.2.99", "rsync", "--server", FLAGS, ".", "/images/")
    assert done.returncode == 255
    assert done.stderr == "ssh: connect to host 192.0.2.99 port 22: Connection refused\n"


def test_ssh_to_a_port_other_than_22_is_refused(root: Path, sim: Simulator, key: str) -> None:
    trust(root, key, f"[{OTHER_HOST}]:2222")
    done = ssh(root, sim, "-p", "2222", OTHER_HOST, "rsync", "--server", FLAGS, ".", "/images/")
    assert done.returncode == 255 and "port 2222: Connection refused" in done.stderr


def test_ssh_without_a_known_hosts_entry_fails_host_key_verification(
        root: Path, sim: Simulator, key: str) -> None:
    trust(root, key, "127.0.0.1")
    done = ssh(root, sim, OTHER_HOST, "rsync", "--server", FLAGS, ".", "/images/")
    assert done.returncode == 255
    assert done.stderr.endswith("Host key verification failed.\n")
    assert "No ED25519 host key is known for 127.0.0.2" in done.stderr


def test_ssh_with_a_changed_key_warns_that_the_identification_changed(
        root: Path, sim: Simulator, key: str) -> None:
    trust(root, random_key())
    done = ssh(root, sim, OTHER_HOST, "rsync", "--server", FLAGS, ".", "/images/")
    assert done.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr
    assert f"known_hosts:1\nHost key for {OTHER_HOST} has changed" in done.stderr


def test_ssh_checks_the_known_hosts_file_it_is_given(root: Path, sim: Simulator,
                                                     key: str) -> None:
    (root / "etc/ssh/elsewhere").write_text(f"{OTHER_HOST} ssh-ed25519 {random_key()}\n")
    done = ssh(root, sim, OTHER_HOST, "rsync", "--server", FLAGS, ".", "/images/",
               known_hosts=str(root / "etc/ssh/elsewhere"))
    assert "has changed" in done.stderr


def test_ssh_as_a_user_other_than_root_is_denied(root: Path, sim: Simulator, key: str) -> None:
    trust(root, key)
    done = ssh(root, sim, f"nova@{OTHER_HOST}", "rsync", "--server", FLAGS, ".", "/images/")
    assert (done.returncode, done.stderr) == (
        255, f"nova@{OTHER_HOST}: Permission denied (publickey).\n")


def test_ssh_runs_no_command_but_rsync_server(root: Path, sim: Simulator, key: str,
                                              tmp_path: Path) -> None:
    trust(root, key)
    done = ssh(root, sim, "-l", "root", OTHER_HOST, "touch", f"{tmp_path}/pwned")
    assert done.returncode == 127 and "command not found" in done.stderr
    assert not (tmp_path / "pwned").exists()


def test_ssh_refuses_to_switch_host_key_checking_off(root: Path, sim: Simulator) -> None:
    done = run(root, sim, "ssh", "-o", "StrictHostKeyChecking=no", OTHER_HOST, "rsync")
    assert done.returncode == 255 and "not simulated" in done.stderr


def test_ssh_refuses_a_known_hosts_file_outside_the_root(root: Path, sim: Simulator) -> None:
    done = ssh(root, sim, OTHER_HOST, "rsync", known_hosts="/etc/ssh/ssh_known_hosts")
    assert done.returncode == 255 and "outside the simulated dom0" in done.stderr


def test_ssh_without_the_simulators_socket_cannot_look_hosts_up(root: Path,
                                                                sim: Simulator) -> None:
    done = ssh(root, sim, OTHER_HOST, "rsync", env={"XAPI_SIM_SOCKET": ""})
    assert done.returncode == 255 and "XAPI_SIM_SOCKET is not set" in done.stderr


@pytest.mark.parametrize("command", ["ssh", "ssh-keyscan", "rsync"])
def test_the_stand_ins_refuse_to_run_without_a_dom0_root(root: Path, sim: Simulator,
                                                         command: str) -> None:
    done = run(root, sim, command, OTHER_HOST, "x", env={"DOM0_ROOT": ""})
    assert done.returncode != 0 and "DOM0_ROOT" in done.stderr


# -- rsync -----------------------------------------------------------------------------------

def test_rsync_copies_a_directory_under_the_root(root: Path, sim: Simulator) -> None:
    (root / "src/0.vhd").write_bytes(b"v" * 70000 + bytes(200000))
    done = run(root, sim, "rsync", "-a", "--sparse", f"{root}/src/", f"{root}/images/i/")
    assert done.returncode == 0, done.stderr
    assert (root / "images/i/0.vhd").read_bytes() == (root / "src/0.vhd").read_bytes()


def test_rsync_copies_no_special_files(root: Path, sim: Simulator) -> None:
    os.mkfifo(root / "src/fifo")
    assert run(root, sim, "rsync", "-a", f"{root}/src/", f"{root}/images/i/").returncode == 0
    assert not (root / "images/i/fifo").exists()


def test_rsync_pushes_to_a_simulated_host_with_the_plugins_remote_shell(
        root: Path, sim: Simulator, key: str) -> None:
    (root / "src/0.vhd").write_bytes(os.urandom(100000))
    done = run(root, sim, "rsync", "-a", "--sparse", "--timeout=600", "-e",
               plugin_rsh(trust(root, key)), f"{root}/src/", f"root@{OTHER_HOST}:/images/i/")
    assert done.returncode == 0, done.stderr
    assert (root / "images/i/0.vhd").read_bytes() == (root / "src/0.vhd").read_bytes()


def test_rsync_never_runs_the_ssh_found_on_path(root: Path, sim: Simulator, key: str,
                                                tmp_path: Path) -> None:
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "ssh").write_text(f"#!/bin/sh\ntouch {tmp_path}/sprung\nexit 99\n")
    (trap / "ssh").chmod(0o755)
    (root / "src/0.vhd").write_bytes(b"x")
    done = run(root, sim, "rsync", "-a", "-e", plugin_rsh(trust(root, key)), f"{root}/src/",
               f"root@{OTHER_HOST}:/images/i/", env={"PATH": f"{trap}:{BIN}"})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "sprung").exists()


def test_rsync_refuses_a_source_outside_the_root(root: Path, sim: Simulator) -> None:
    done = run(root, sim, "rsync", "-a", "/etc/", f"{root}/images/i/")
    assert done.returncode == 1 and "outside the simulated dom0" in done.stderr


def test_rsync_refuses_a_destination_linked_out_of_the_root(root: Path, sim: Simulator,
                                                           tmp_path: Path) -> None:
    (root / "images/out").symlink_to(tmp_path)
    done = run(root, sim, "rsync", "-a", f"{root}/src/", f"{root}/images/out/")
    assert done.returncode == 1 and "outside the simulated dom0" in done.stderr


def test_rsync_names_a_missing_destination_directory_as_dom0_does(root: Path,
                                                                  sim: Simulator) -> None:
    done = run(root, sim, "rsync", "-a", f"{root}/src/", f"{root}/images/nodir/sub/")
    assert done.returncode == 1
    assert "destination /images/nodir/sub/: its directory does not exist" in done.stderr
    assert str(root) not in done.stderr


def test_rsync_refuses_a_device_as_source(root: Path, sim: Simulator) -> None:
    (root / "dev/null").symlink_to("/dev/null")
    done = run(root, sim, "rsync", f"{root}/dev/null", f"{root}/images/x")
    assert done.returncode == 1 and "not a regular file" in done.stderr


@pytest.mark.parametrize("option", ["--delete", "--rsync-path=/bin/sh", "-L", "--server"])
def test_rsync_refuses_options_the_plugins_do_not_pass(root: Path, sim: Simulator,
                                                       option: str) -> None:
    done = run(root, sim, "rsync", "-a", option, f"{root}/src/", f"{root}/images/i/")
    assert done.returncode == 1 and f"option {option} is not simulated" in done.stderr


@pytest.mark.parametrize("rsh", ["sh -c reboot", "ssh -o ProxyCommand=reboot",
                                 "ssh -o StrictHostKeyChecking=no", "/usr/bin/ssh"])
def test_rsync_refuses_a_remote_shell_other_than_the_plugins_ssh(root: Path, sim: Simulator,
                                                                rsh: str) -> None:
    done = run(root, sim, "rsync", "-a", "-e", rsh, f"{root}/src/", f"{OTHER_HOST}:/images/")
    assert done.returncode == 1 and "not simulated" in done.stderr


@pytest.mark.parametrize("paths", [[f"{OTHER_HOST}:/etc/", "images/"],
                                   ["src/", f"{OTHER_HOST}::module/"],
                                   ["src/", "rsync://h/module/"]])
def test_rsync_refuses_pulling_and_daemons(root: Path, sim: Simulator,
                                           paths: list[str]) -> None:
    done = run(root, sim, "rsync", "-a", *paths)
    assert done.returncode == 1 and "not simulated" in done.stderr
