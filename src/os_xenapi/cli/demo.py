"""``os-xenapi demo``: a short tour of a simulated pool, printed with rich.

It starts an embedded simulator (two hosts, six VMs), logs in with os-xenapi's ``XenAPISession``,
shows the pool, its hosts and a few VMs, starts a halted VM with ``Async.VM.start`` and a progress
bar fed by ``client.tasks`` (which follows the task through ``event.from``), lists the events the
start caused, shuts the VM down again, logs out and stops the simulator. It runs in a
few seconds and needs no terminal: piped output is plain text.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from ..client.exception import Failure
from ..client.session import XenAPISession
from ..client.tasks import run_async
from ..simulator import Simulator

NULL = "OpaqueRef:NULL"
GiB = 1024**3
SHOWN_VMS = 4
TASK_TIMEOUT = 30.0  # seconds the demo waits for Async.VM.start before giving up
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
    """The demo's view of os-xenapi's ``XenAPISession``: ``xapi("VM.get_record", ref)``."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.session = XenAPISession(url, username, password, originator="os-xenapi-demo")

    def __call__(self, method: str, *params: Any) -> Any:
        """Call ``method`` (e.g. ``"VM.get_record"``) through the session pool."""
        try:
            return self.session.call_xenapi(method, *params)
        except Failure as exc:
            raise XapiFailure(method, list(exc.details)) from None

    def close(self) -> None:
        """Log every pooled XAPI session out."""
        self.session.close()


# -- formatting -------------------------------------------------------------------------------


def short(ref: str) -> str:
    """``OpaqueRef:1a2b3c4d-...`` as ``1a2b3c4d``: enough to tell refs apart on screen."""
    return ref.removeprefix("OpaqueRef:")[:8]


def gib(value: Any) -> str:
    """Bytes (XML-RPC sends XAPI's ints as strings) as ``12.5 GiB``."""
    return f"{int(value) / GiB:.1f} GiB"


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
    """Async.VM.start ``vm`` with a progress bar, then list the events the start caused."""
    name = names[vm]
    token = current_token(xapi)
    with Progress(
        TextColumn("Async.VM.start({task.fields[vm]})"), BarColumn(), TaskProgressColumn(),
        console=console, transient=False,
    ) as bar:
        line = bar.add_task("start", total=1.0, vm=name)
        try:
            result = run_async(
                xapi.session, "VM.start", vm, False, False, timeout=TASK_TIMEOUT,
                progress=lambda fraction: bar.update(line, completed=fraction),
            )
        except Failure as exc:
            raise XapiFailure("Async.VM.start", list(exc.details)) from None
    say(console, f"  the task succeeded; its result decodes to {result!r} (VM.start returns nothing)")

    table = Table(title="Events caused by Async.VM.start")
    for column in ("class", "operation", "ref", "details"):
        table.add_column(column)
    for event in xapi("event.from", ["*"], token, 0.0)["events"]:
        add_row(
            table, event["class"], event["operation"], short(event["ref"]), describe(event, names)
        )
    console.print(table)
    say(
        console,
        f"{name} is {xapi('VM.get_power_state', vm)} on "
        f"{names.get(xapi('VM.get_resident_on', vm), '?')}.",
    )


def tour(console: Console, sim: Simulator) -> None:
    """The whole demo against a running simulator."""
    try:
        xapi = DemoXapi(sim.url, sim.username, sim.password)
    except Failure as exc:
        raise click.ClickException(f"login failed: {exc}") from None
    try:
        say(console, f"Logged in as {sim.username} with XenAPISession ({xapi.session.protocol}).")
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
        xapi.close()
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
