"""The acceptance scenario of the simulator core, driven by two unrelated clients.

The official XenAPI SDK (XML-RPC) and a plain JSON-RPC client over http.client run the same life of
a VM: login, pool and host records, a VM from a template with a VDI and a VBD, Async.VM.start and
its task, the change seen through event.from, shutdown, clean-up, logout. Along the way each error
of XAPI's check order is produced once.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import json
import xmlrpc.client
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import XenAPI

from os_xenapi.simulator import Simulator


class Failure(Exception):
    """An API failure, as either client reports it: ``details`` is [CODE, params...]."""

    def __init__(self, details: list[str]) -> None:
        super().__init__(details)
        self.details = details


class SdkClient:
    """The official SDK, unmodified: calls go through ``session.xenapi.<Class>.<method>``."""

    def __init__(self, url: str) -> None:
        self.session = XenAPI.Session(url)

    def login(self, user: str, password: str) -> None:
        try:
            self.session.xenapi.login_with_password(user, password, "2.21", "acceptance-test")
        except XenAPI.Failure as exc:
            raise Failure(exc.details) from None

    def logout(self) -> None:
        self.session.xenapi.session.logout()

    @property
    def handle(self) -> str:
        return self.session.handle

    def __call__(self, method: str, *args: Any) -> Any:
        target = functools.reduce(getattr, method.split("."), self.session.xenapi)
        try:
            return target(*args)
        except XenAPI.Failure as exc:
            raise Failure(exc.details) from None

    def int_value(self, value: Any) -> int:
        return int(value)  # XAPI sends ints untyped over XML-RPC: the SDK gives str


class JsonRpcClient:
    """JSON-RPC 2.0 over one keep-alive http.client connection, no library in between."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.ids = itertools.count(1)
        self.handle: str | None = None

    def send(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params,
                           "id": next(self.ids)})
        self.connection.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        assert response.status == 200
        reply = json.loads(response.read())
        if "error" in reply:
            error = reply["error"]
            assert error["code"] == 1
            raise Failure([error["message"], *error["data"]])
        return reply["result"]

    def login(self, user: str, password: str) -> None:
        self.handle = self.send("session.login_with_password",
                                [user, password, "2.21", "acceptance-test"])

    def logout(self) -> None:
        self.send("session.logout", [self.handle])

    def __call__(self, method: str, *args: Any) -> Any:
        return self.send(method, [self.handle, *args])

    def int_value(self, value: Any) -> int:
        assert isinstance(value, int)  # JSON-RPC carries real numbers
        return value


def _expect(code: str, call: Callable[[], Any]) -> list[str]:
    with pytest.raises(Failure) as caught:
        call()
    assert caught.value.details[0] == code, caught.value.details
    return caught.value.details


@pytest.fixture(scope="module")
def sim():
    with Simulator(hosts=2, vms=2, auth_failure_delay=0) as running:
        yield running


def _scenario(sim: Simulator, make_client: Callable[[str], Any]) -> None:
    client = make_client(sim.url)

    # Login: a wrong password, a slave, then the master.
    details = _expect("SESSION_AUTHENTICATION_FAILED", lambda: client.login("root", "wrong"))
    assert details[1] == "root"
    details = _expect("HOST_IS_SLAVE", lambda: make_client(sim.urls[1]).login(sim.username,
                                                                               sim.password))
    assert details[1] == "127.0.0.1"
    client.login(sim.username, sim.password)

    # Pool and hosts.
    [pool] = client("pool.get_all")
    pool_record = client("pool.get_record", pool)
    master = pool_record["master"]
    assert client("host.get_record", master)["address"] == "127.0.0.1"
    assert client.int_value(client("host.get_API_version_major", master)) == 2
    assert len(client("host.get_all")) == 2

    # The check order's errors, each once.
    _expect("MESSAGE_METHOD_UNKNOWN", lambda: client("VM.no_such_message"))
    details = _expect("MESSAGE_PARAMETER_COUNT_MISMATCH", lambda: client("VM.clone", "x"))
    assert details[1:] == ["VM.clone", "2", "1"]
    _expect("HANDLE_INVALID", lambda: client("VM.get_record", "OpaqueRef:missing"))
    _expect("UUID_INVALID", lambda: client("VM.get_by_uuid", "not-a-uuid"))
    _expect("Fault", lambda: client("Async.VM.get_record", master))

    # A VM from a template, with a VDI and a VBD of our own.
    templates = client("VM.get_all_records_where",
                       'field "is_a_template"="true" and field "name__label"="Debian Bookworm 12"')
    [template] = list(templates)
    vm = client("VM.clone", template, "acceptance-vm")
    client("VM.provision", vm)
    client("VM.set_is_a_template", vm, False)
    sr = pool_record["default_SR"]
    vdi = client("VDI.create", {
        "name_label": "acceptance-data", "name_description": "", "SR": sr,
        "virtual_size": "1073741824", "type": "user", "sharable": False, "read_only": False,
        "other_config": {},
    })
    vbd = client("VBD.create", {
        "VM": vm, "VDI": vdi, "userdevice": "1", "bootable": False, "mode": "RW",
        "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    })
    assert vbd in client("VM.get_VBDs", vm)
    details = _expect("VM_BAD_POWER_STATE", lambda: client("VM.clean_shutdown", vm))
    assert details[1:] == [vm, "running", "halted"]

    # Start it through a task and see the change through event.from.
    token = client("event.from", ["vm"], "", 0.0)["token"]
    task = client("Async.VM.start", vm, False, False)
    batch = client("event.from", [f"task/{task}"], "", 30.0)
    while client("task.get_status", task) == "pending":
        batch = client("event.from", [f"task/{task}"], batch["token"], 30.0)
    task_record = client("task.get_record", task)
    assert task_record["status"] == "success", task_record["error_info"]
    assert task_record["result"] == "<value></value>"
    client("task.destroy", task)
    changes = client("event.from", ["vm"], token, 30.0)
    ours = [e for e in changes["events"] if e["ref"] == vm]
    assert ours and ours[-1]["operation"] == "mod"
    assert ours[-1]["snapshot"]["power_state"] == "Running"
    assert client("VM.get_resident_on", vm) in client("host.get_all")

    # Shut it down and clean everything up.
    client("VM.clean_shutdown", vm)
    assert client("VM.get_power_state", vm) == "Halted"
    vdis = [client("VBD.get_VDI", v) for v in client("VM.get_VBDs", vm)]
    client("VM.destroy", vm)
    for disk in vdis:
        client("VDI.destroy", disk)
    _expect("HANDLE_INVALID", lambda: client("VBD.get_record", vbd))
    _expect("HANDLE_INVALID", lambda: client("VDI.get_record", vdi))

    # Log out: the session is gone.
    handle = client.handle
    client.logout()
    if isinstance(client, JsonRpcClient):
        details = _expect("SESSION_INVALID", lambda: client.send("VM.get_all", [handle]))
        assert details[1] == handle


def test_official_sdk_drives_the_scenario_over_xmlrpc(sim: Simulator) -> None:
    _scenario(sim, SdkClient)


def test_plain_http_client_drives_the_scenario_over_jsonrpc(sim: Simulator) -> None:
    _scenario(sim, JsonRpcClient)


def test_official_sdk_sees_session_invalid_after_logout(sim: Simulator) -> None:
    client = SdkClient(sim.url)
    client.login(sim.username, sim.password)
    handle = client.handle
    client.logout()
    proxy = xmlrpc.client.ServerProxy(sim.url)
    reply = proxy.VM.get_all(handle)
    assert reply == {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", handle]}
