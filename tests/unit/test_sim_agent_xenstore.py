"""The simulated guest agent over the simulated xenstore, as dom0's agent plugin drives it: a
request written at data/host/<id>, the answer read at data/guest/<id>. Nova's side of the
password exchange is played with OpenSSL's command line, exactly as Nova runs it."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from typing import Any

import pytest

from os_xenapi.simulator.agent_keys import GENERATOR, PRIME, encrypt_password
from os_xenapi.simulator.guest_agent import MAX_REQUESTS, GuestAgents
from os_xenapi.simulator.xapi import Config, Xapi
from os_xenapi.simulator.xenstore import Xenstore

NOVA_PRIVATE = 0x6E6F76612D707269766174  # any number Nova's SimpleDH may draw
openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs OpenSSL's openssl")


class Guest:
    """One running guest of a one-VM pool, its xenstore, and the agents of the pool."""

    def __init__(self, tmp_path: Any) -> None:
        self.xapi = Xapi(Config(vms=1, state_dir=str(tmp_path)))
        self.db = self.xapi.db
        self.host = self.xapi.master
        self.vm = next(ref for ref, rec in self.db.all("VM").items()
                       if not rec["is_a_template"] and not rec["is_control_domain"])
        self.store = Xenstore(self.db)
        self.agents = GuestAgents(self.store)
        self.db.update("VM", self.vm, power_state="Running", domid=7, resident_on=self.host)

    @property
    def domid(self) -> int:
        return int(self.db.get("VM", self.vm)["domid"])

    def home(self, domid: int | None = None) -> str:
        return f"/local/domain/{self.domid if domid is None else domid}"

    def send(self, name: str, value: Any = "", request_id: str = "r1",
             domid: int | None = None) -> dict[str, str] | None:
        """Write a request as the plugin does; the agent's answer (removed), or None."""
        home = self.home(domid)
        self.store.write(self.host, f"{home}/data/host/{request_id}",
                         json.dumps({"name": name, "value": value}))
        answer = f"{home}/data/guest/{request_id}"
        if not self.store.exists(self.host, answer):
            return None
        text = self.store.read(self.host, answer)
        self.store.rm(self.host, answer)
        return json.loads(text)


@pytest.fixture
def guest(tmp_path: Any) -> Guest:
    return Guest(tmp_path)


def nova_encrypt(secret: str, text: str, *options: str) -> str:
    """Nova's SimpleDH.encrypt: openssl aes-128-cbc -A -a -pass pass:<secret> -nosalt."""
    done = subprocess.run(["openssl", "aes-128-cbc", "-A", "-a", "-pass", f"pass:{secret}",
                           "-nosalt", *options], input=text.encode(), capture_output=True,
                          check=True)
    return done.stdout.decode().strip("\n")


def key_exchange(guest: Guest) -> str:
    """Nova's _exchange_key_with_agent; returns the shared secret Nova then holds."""
    answer = guest.send("keyinit", str(pow(GENERATOR, NOVA_PRIVATE, PRIME)))
    assert answer is not None and answer["returncode"] == "D0"
    return str(pow(int(answer["message"]), NOVA_PRIVATE, PRIME))


# -- the protocol --------------------------------------------------------------------------------

def test_version_is_answered_at_data_guest_and_the_request_removed(guest: Guest) -> None:
    assert guest.send("version", "agent") == {"returncode": "0", "message": "1.39.1"}
    assert not guest.store.exists(guest.host, f"{guest.home()}/data/host/r1")
    assert guest.agents.view(guest.vm).requests == [{"name": "version", "value": "agent"}]


def test_features_lists_the_commands_the_agent_knows(guest: Guest) -> None:
    answer = guest.send("features")
    assert answer is not None and answer["returncode"] == "0"
    assert set(answer["message"].split(",")) >= {"file_inject", "keyinit", "password",
                                                 "resetnetwork", "agentupdate"}


def test_command_the_agent_does_not_know_is_404(guest: Guest) -> None:
    assert guest.send("kmsactivate")["returncode"] == "404"
    guest.agents.configure(guest.vm, features=["version"])
    assert guest.send("features")["returncode"] == "404"


def test_a_request_that_is_not_json_gets_500(guest: Guest) -> None:
    guest.store.write(guest.host, f"{guest.home()}/data/host/bad", "{not json")
    answer = json.loads(guest.store.read(guest.host, f"{guest.home()}/data/guest/bad"))
    assert answer["returncode"] == "500"


@openssl
@pytest.mark.parametrize(("options", "derivation"), [((), "sha256"), (("-md", "md5"), "md5")])
def test_key_init_then_password_sets_the_password_nova_encrypted(
    guest: Guest, options: tuple[str, ...], derivation: str,
) -> None:
    """OpenSSL 1.1 and later derive the key with SHA-256, older ones (and real agents) MD5."""
    secret = key_exchange(guest)
    encrypted = nova_encrypt(secret, "correct horse battery\n", *options)
    assert guest.send("password", encrypted) == {"returncode": "0", "message": ""}
    view = guest.agents.view(guest.vm)
    assert (view.password, view.key_derivation) == ("correct horse battery", derivation)


@openssl
def test_agent_encryption_helper_matches_openssl(guest: Guest) -> None:
    secret = key_exchange(guest)
    assert encrypt_password(secret, "pw") == nova_encrypt(secret, "pw\n", "-md", "md5")


def test_password_key_is_used_once(guest: Guest) -> None:
    secret = key_exchange(guest)
    assert guest.send("password", encrypt_password(secret, "first"))["returncode"] == "0"
    assert guest.send("password", encrypt_password(secret, "second")) == {
        "returncode": "500", "message": "Password without key exchange"}
    assert guest.agents.view(guest.vm).password == "first"


def test_password_without_key_exchange_is_refused(guest: Guest) -> None:
    assert guest.send("password", "aGVsbG8=") == {
        "returncode": "500", "message": "Password without key exchange"}


@pytest.mark.parametrize(("encrypted", "message"), [
    ("not base64!", "Couldn't decode base64 data"),
    (base64.b64encode(b"x" * 16).decode(), "Invalid password data received"),
    (base64.b64encode(b"short").decode(), "Invalid password data received"),
])
def test_password_the_agent_cannot_read_is_500(guest: Guest, encrypted: str,
                                               message: str) -> None:
    key_exchange(guest)
    assert guest.send("password", encrypted) == {"returncode": "500", "message": message}
    assert guest.agents.view(guest.vm).password is None


def test_password_encrypted_with_another_key_is_refused(guest: Guest) -> None:
    key_exchange(guest)
    answer = guest.send("password", encrypt_password("123456789", "pw"))
    assert answer == {"returncode": "500", "message": "Invalid password data received"}


@pytest.mark.parametrize("public", ["abc", "1", str(PRIME - 1), str(PRIME + 5)])
def test_key_init_with_a_bad_public_key_is_500(guest: Guest, public: str) -> None:
    answer = guest.send("keyinit", public)
    assert answer is not None and answer["returncode"] == "500"


def test_file_inject_writes_the_file_into_the_guest(guest: Guest) -> None:
    value = {"b64_path": base64.b64encode(b"/root/.ssh/authorized_keys").decode(),
             "b64_file": base64.b64encode(b"ssh-ed25519 AAAA nova\n").decode()}
    assert guest.send("file_inject", value) == {"returncode": "0", "message": ""}
    assert guest.agents.view(guest.vm).files == {
        "/root/.ssh/authorized_keys": b"ssh-ed25519 AAAA nova\n"}


def test_older_agents_injectfile_takes_base64_of_path_comma_contents(guest: Guest) -> None:
    guest.agents.configure(guest.vm, features=["features", "injectfile"])
    assert guest.send("injectfile", base64.b64encode(b"/etc/motd,hi, there").decode()) == {
        "returncode": "0", "message": ""}
    assert guest.agents.view(guest.vm).files == {"/etc/motd": b"hi, there"}


def test_file_inject_of_a_relative_path_is_refused(guest: Guest) -> None:
    value = {"b64_path": base64.b64encode(b"etc/motd").decode(), "b64_file": ""}
    assert guest.send("file_inject", value)["returncode"] == "500"
    assert guest.agents.view(guest.vm).files == {}


def test_resetnetwork_reads_the_networking_nova_wrote(guest: Guest) -> None:
    interface = json.dumps({"mac": "02:00:00:00:00:01", "ips": [{"ip": "10.0.0.5"}]})
    guest.store.write(guest.host, f"{guest.home()}/vm-data/networking/020000000001", interface)
    assert guest.send("resetnetwork") == {"returncode": "0", "message": ""}
    view = guest.agents.view(guest.vm)
    assert (view.network_resets, view.networking) == (1, {"020000000001": interface})


def test_agentupdate_records_the_url_and_checksum(guest: Guest) -> None:
    assert guest.send("agentupdate", "http://mirror/agent.tgz,d41d8cd98f00b204e9800998ecf8427e") \
        == {"returncode": "0", "message": ""}
    assert guest.agents.view(guest.vm).updates == [
        {"url": "http://mirror/agent.tgz", "md5sum": "d41d8cd98f00b204e9800998ecf8427e"}]
    assert guest.send("agentupdate", "no-comma")["returncode"] == "500"


def test_request_log_keeps_the_latest(guest: Guest) -> None:
    for number in range(MAX_REQUESTS + 5):
        guest.send("version", str(number))
    requests = guest.agents.view(guest.vm).requests
    assert len(requests) == MAX_REQUESTS and requests[-1]["value"] == str(MAX_REQUESTS + 4)


# -- who answers, and how tests change it --------------------------------------------------------

def test_silent_agent_leaves_the_request_unanswered(guest: Guest) -> None:
    guest.agents.configure(guest.vm, mode="silent")
    assert guest.send("version") is None
    assert guest.store.exists(guest.host, f"{guest.home()}/data/host/r1")


def test_rebooting_agent_restarts_the_domain_then_answers_again(guest: Guest) -> None:
    guest.agents.configure(guest.vm, mode="reboot")
    before = guest.domid
    assert guest.send("version") is None
    assert guest.domid != before
    assert not guest.store.exists(guest.host, f"/local/domain/{before}/name")
    assert guest.agents.view(guest.vm).mode == "answer"
    assert guest.send("version")["returncode"] == "0"


def test_key_from_before_a_reboot_is_lost(guest: Guest) -> None:
    secret = key_exchange(guest)
    guest.agents.configure(guest.vm, mode="reboot")
    guest.send("version")
    assert guest.send("password", encrypt_password(secret, "pw"))["message"] == \
        "Password without key exchange"


@pytest.mark.parametrize(("state", "domid"), [("Paused", 7), ("Halted", -1)])
def test_guest_that_is_not_running_does_not_answer(guest: Guest, state: str, domid: int) -> None:
    guest.db.update("VM", guest.vm, power_state=state, domid=domid)
    assert guest.send("version", domid=7) is None
    assert guest.agents.view(guest.vm).requests == []


def test_dom0_runs_no_agent(guest: Guest) -> None:
    assert guest.send("version", domid=0) is None
    dom0 = next(ref for ref, rec in guest.db.all("VM").items() if rec["is_control_domain"])
    with pytest.raises(ValueError, match="control domain"):
        guest.agents.view(dom0)


def test_agent_is_found_by_vm_uuid_too(guest: Guest) -> None:
    uuid = guest.db.get("VM", guest.vm)["uuid"]
    assert guest.agents.configure(uuid, mode="silent").vm == guest.vm


def test_unknown_vm_is_a_lookup_error(guest: Guest) -> None:
    with pytest.raises(LookupError, match="no VM 'OpaqueRef:nope'"):
        guest.agents.view("OpaqueRef:nope")


@pytest.mark.parametrize(("options", "named"), [
    ({"mode": "asleep"}, "mode"), ({"version": ""}, "version"),
    ({"features": "version"}, "features"), ({"features": ["a b"]}, "features"),
])
def test_bad_option_is_refused_naming_it(guest: Guest, options: dict[str, Any],
                                         named: str) -> None:
    with pytest.raises(ValueError, match=named):
        guest.agents.configure(guest.vm, **options)


def test_agent_of_a_destroyed_vm_is_forgotten(guest: Guest) -> None:
    guest.agents.configure(guest.vm, mode="silent")
    guest.db.update("VM", guest.vm, power_state="Halted", domid=-1, resident_on="OpaqueRef:NULL")
    guest.db.destroy("VM", guest.vm)
    other = guest.db.create("VM", {"name_label": "other", "is_a_template": False})
    guest.agents.view(other)
    assert list(guest.agents._agents) == [other]


def test_view_is_a_copy(guest: Guest) -> None:
    guest.send("version")
    guest.agents.view(guest.vm).requests.clear()
    assert len(guest.agents.view(guest.vm).requests) == 1
