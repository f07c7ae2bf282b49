"""``os-xenapi demo``: a short tour of a simulated pool, printed with rich.

It starts an embedded simulator (two hosts, six VMs), logs in, shows the pool, its hosts and a few
VMs, starts a halted VM with ``Async.VM.start``, follows the task with ``event.from``, lists the
events the start caused, shuts the VM down again, logs out and stops the simulator. It runs in a
few seconds and needs no terminal: piped output is plain text.
"""

from __future__ import annotations

import time
import xmlrpc.client
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..simulator import Simulator

NULL = "OpaqueRef:NULL"
GiB = 1024**3
SHOWN_VMS = 4
TASK_TIMEOUT = 30.0  # seconds the demo waits for Async.VM.start before giving up
EVENT_WAIT = 5.0  # seconds one event.from call may block
USER_VMS = 'field "is_a_template" = "false" and field "is_control_domain" = "false"'

# The fields worth showing for an event, by (lowercase) class; others show their name_label.
EVENT_FIELDS = {
    "vm": ("power_state", "resident_on"),
    "vm_metrics": ("memory_actual", "VCPUs_number"),
    "task": ("status", "progress"),
    "vbd": ("currently_attached", "device"),
    "vif": ("currently_attached", "device"),
    "host": ("resident_VMs",),
    "host_metrics": ("memory_total", "live"),
    "vm_guest_metrics": ("PV_drivers_detected", "live"),
    "console": ("protocol",),
}


class XapiFailure(Exception):
    """A XAPI error reply; ``details`` is [CODE, param, ...]."""

    def __init__(self, method: str, details: list[str]) -> None:
        super().__init__(f"{method} failed: {' '.join(str(d) for d in details)}")
        self.method = method
        self.details = details


class DemoXapi:
    """The smallest XAPI client the demo needs: XML-RPC calls with the session ref put first.

    os-xenapi's own client does not exist yet, so this wraps the standard library's ServerProxy and
    unwraps XAPI's {Status, Value} and {Status, ErrorDescription} replies itself. The demo switches
    to os_xenapi.client.XenAPISession when that lands.
    """

    def __init__(self, url: str) -> None:
        self._proxy = xmlrpc.client.ServerProxy(url, allow_none=True)
        self.session = ""

    def _send(self, method: str, params: tuple[Any, ...]) -> Any:
        """Returns the reply's Value; raises XapiFailure with its ErrorDescription."""
        reply = getattr(self._proxy, method)(*params)
        if reply.get("Status") == "Success":
            return reply.get("Value")
        raise XapiFailure(method, reply.get("ErrorDescription") or ["(no ErrorDescription)"])

    def login(self, username: str, password: str) -> None:
        self.session = self._send(
            "session.login_with_password", (username, password, "2.21", "os-xenapi demo")
        )

    def logout(self) -> None:
        self._send("session.logout", (self.session,))
        self.session = ""

    def __call__(self, method: str, *params: Any) -> Any:
        """Call ``method`` (e.g. ``"VM.get_record"``) in the current session."""
        return self._send(method, (self.session, *params))

    def close(self) -> None:
        self._proxy("close")()


# -- formatting -------------------------------------------------------------------------------


def short(ref: str) -> str:
    """``OpaqueRef:1a2b3c4d-...`` as ``1a2b3c4d``: enough to tell refs apart on screen."""
    return ref.removeprefix("OpaqueRef:")[:8]


def gib(value: Any) -> str:
    """Bytes (XML-RPC sends XAPI's ints as strings) as ``12.5 GiB``."""
    return f"{int(value) / GiB:.1f} GiB"


def task_result(fragment: str) -> Any:
    """The value in a task's ``result``, which XAPI stores as an XML-RPC ``<value>`` fragment."""
    if not fragment:
        return ""
    document = f"<methodResponse><params><param>{fragment}</param></params></methodResponse>"
    return xmlrpc.client.loads(document)[0][0]


def add_row(table: Table, *cells: Any) -> None:
    """Add a row of plain text: names read from XAPI are never taken as rich markup."""
    table.add_row(*(Text(str(cell)) for cell in cells))


def say(console: Console, text: str) -> None:
    console.print(text, markup=False)


# -- the tour ---------------------------------------------------------------------------------


def show_pool(console: Console, xapi: DemoXapi, hosts: dict[str, dict]) -> None:
    table = Table(title="Pool")
    for column in ("name", "master", "default SR"):
        table.add_column(column)
    for pool in xapi("pool.get_all_records").values():
        sr = pool["default_SR"]
        sr_name = xapi("SR.get_name_label", sr) if sr != NULL else "(none)"
        add_row(
            table, pool["name_label"] or "(no name)", hosts[pool["master"]]["name_label"], sr_name
        )
    console.print(table)


def show_hosts(console: Console, xapi: DemoXapi, hosts: dict[str, dict]) -> None:
    table = Table(title="Hosts")
    for column in ("name", "address", "version", "memory free"):
        table.add_column(column)
    for ref, host in sorted(hosts.items(), key=lambda item: item[1]["name_label"]):
        version = host["software_version"]
        metrics = xapi("host_metrics.get_record", host["metrics"])
        free = int(xapi("host.compute_free_memory", ref))
        add_row(
            table,
            host["name_label"],
            host["address"],
            f"{version.get('product_brand', '?')} {version.get('product_version', '?')}",
            f"{gib(free)} of {gib(metrics['memory_total'])}",
        )
    console.print(table)


def show_vms(console: Console, vms: dict[str, dict]) -> None:
    shown = sorted(vms.values(), key=lambda v: v["name_label"])[:SHOWN_VMS]
    table = Table(title="VMs", caption=f"{len(shown)} of {len(vms)} VMs")
    for column in ("name", "power state", "memory", "VCPUs"):
        table.add_column(column)
    for vm in shown:
        add_row(
            table,
            vm["name_label"],
            vm["power_state"],
            gib(vm["memory_static_max"]),
            vm["VCPUs_max"],
        )
    console.print(table)


def current_token(xapi: DemoXapi) -> str:
    """An event.from token for "now": changes after it are what comes next."""
    return xapi("event.from", ["pool"], "", 0.0)["token"]


def wait_for_task(console: Console, xapi: DemoXapi, task: str, token: str) -> dict:
    """Print each change of ``task`` as event.from reports it; returns its finished record.

    Raises click.ClickException if it does not finish within TASK_TIMEOUT or disappears.
    """
    deadline = time.monotonic() + TASK_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise click.ClickException(f"task {task} did not finish within {TASK_TIMEOUT:.0f} s")
        reply = xapi("event.from", [f"task/{task}"], token, min(EVENT_WAIT, remaining))
        token = reply["token"]
        for event in reply["events"]:
            if event["operation"] == "del":
                raise click.ClickException(f"task {task} was destroyed before it finished")
            record = event["snapshot"]
            say(
                console,
                f"  task {short(task)}  {record['status']:<9} "
                f"progress {float(record['progress']):.0%}",
            )
            if record["status"] not in ("pending", "cancelling"):
                return record


def describe(event: dict, names: dict[str, str]) -> str:
    """A field or two of the event's object, one a line, with refs named where the demo can."""
    snapshot = event.get("snapshot")
    if event["operation"] == "del" or not snapshot:
        return "(deleted)"
    parts = []
    for field in EVENT_FIELDS.get(event["class"], ("name_label",)):
        if field not in snapshot:
            continue
        value = snapshot[field]
        if isinstance(value, str) and value.startswith("OpaqueRef:"):
            value = names.get(value, short(value))
        elif isinstance(value, list):
            value = f"{len(value)} ref(s)"
        elif field.startswith("memory"):
            value = gib(value)
        parts.append(f"{field}={value}")
    return "\n".join(parts)


def start_vm(console: Console, xapi: DemoXapi, vm: str, names: dict[str, str]) -> None:
    """Async.VM.start ``vm``, follow its task, then list the events the start caused."""
    name = names[vm]
    token = current_token(xapi)
    task = xapi("Async.VM.start", vm, False, False)
    say(console, f"Async.VM.start({name}) returned task {short(task)}; event.from follows it:")
    record = wait_for_task(console, xapi, task, token)
    if record["status"] != "success":
        raise click.ClickException(
            f"Async.VM.start({name}) ended {record['status']}: {' '.join(record['error_info'])}"
        )
    say(
        console,
        f"  result {record['result']!r} decodes to {task_result(record['result'])!r} "
        "(VM.start returns nothing)",
    )

    table = Table(title="Events caused by Async.VM.start")
    for column in ("class", "operation", "ref", "details"):
        table.add_column(column)
    for event in xapi("event.from", ["*"], token, 0.0)["events"]:
        add_row(
            table, event["class"], event["operation"], short(event["ref"]), describe(event, names)
        )
    console.print(table)
    xapi("task.destroy", task)
    say(
        console,
        f"{name} is {xapi('VM.get_power_state', vm)} on "
        f"{names.get(xapi('VM.get_resident_on', vm), '?')}.",
    )


def tour(console: Console, sim: Simulator) -> None:
    """The whole demo against a running simulator."""
    xapi = DemoXapi(sim.url)
    try:
        xapi.login(sim.username, sim.password)
        say(console, f"Logged in as {sim.username}; session {short(xapi.session)}.")
        hosts = xapi("host.get_all_records")
        vms = xapi("VM.get_all_records_where", USER_VMS)
        names = {ref: record["name_label"] for ref, record in {**hosts, **vms}.items()}
        show_pool(console, xapi, hosts)
        show_hosts(console, xapi, hosts)
        show_vms(console, vms)
        halted = sorted(
            (r["name_label"], ref) for ref, r in vms.items() if r["power_state"] == "Halted"
        )
        if not halted:
            raise click.ClickException("the simulated pool has no halted VM to start")
        vm = halted[0][1]
        start_vm(console, xapi, vm, names)
        xapi("VM.hard_shutdown", vm)
        say(
            console, f"VM.hard_shutdown({names[vm]}): it is {xapi('VM.get_power_state', vm)} again."
        )
        xapi.logout()
        say(console, "Logged out.")
    except XapiFailure as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        xapi.close()


@click.command(short_help="Tour a simulated pool and start a VM in it.")
def demo() -> None:
    """Tour a simulated pool: hosts, VMs, an Async.VM.start and its events."""
    console = Console()
    with Simulator(hosts=2, vms=6, auth_failure_delay=0) as sim:
        console.rule("os-xenapi demo")
        say(console, f"A simulated pool of 2 hosts and 6 VMs is listening on {sim.url}.")
        tour(console, sim)
    say(console, "Simulator stopped.")
