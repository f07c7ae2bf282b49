"""``os-xenapi simulator``: serve a simulated pool until SIGINT or SIGTERM.

The master listens on ``--listen`` (loopback by default); with ``--hosts N`` the other hosts of the
pool listen on the next N-1 addresses, on the same port. The first line printed,
``XAPI simulator listening on http://HOST:PORT``, appears only once connections are accepted, so a
script can start the command and wait for that line. With ``--state-dir DIR`` the pool is kept in
DIR and comes back from there when the command is started again, as XAPI comes back after a restart.
A stop signal while the pool is still being built ends the command at once, with nothing served
or saved. Errors lead with the option the user gave (``--unix PATH: ...``, ``--listen HOST:PORT:``).
"""

from __future__ import annotations

import ipaddress
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from ..simulator import Simulator
from ..simulator.errors import Interrupted
from ..simulator.listen_errors import ListenError
from ..simulator.persist import StateError
from ..simulator.runner import DEFAULT_PASSWORD  # well known: fine on loopback, not on a network

DEFAULT_LISTEN = "127.0.0.1:0"
MAX_VMS = 10_000  # 15 to 20 s and 150 MiB to build; a pool this big is already a stress test
DEFAULT_USER = "root"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_Handler = Callable[[int, FrameType | None], Any] | int | None


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT``, ``PORT`` or ``HOST`` into (IPv4 address, port); port 0 picks a free one.

    ``localhost`` stands for 127.0.0.1. Raises click.UsageError for IPv6, other host names and
    ports outside 0-65535.
    """
    text = value.strip()
    if text.startswith("[") or text.count(":") > 1:
        raise click.UsageError(
            f"--listen {value!r}: the simulator supports only IPv4 for now; "
            "use an IPv4 address such as 127.0.0.1"
        )
    if text.isdigit():
        host, port_text = "127.0.0.1", text
    elif ":" in text:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, "0"
    if not port_text.isdigit() or int(port_text) > 65535:
        raise click.UsageError(f"--listen {value!r}: the port must be a number from 0 to 65535")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise click.UsageError(
            f"--listen {value!r}: {host!r} is not an IPv4 address (HOST:PORT, PORT or HOST)"
        ) from None
    return str(address), int(port_text)


def check_listen_address(host: str, password_given: bool) -> None:
    """Refuse a non-loopback ``host`` unless the password was chosen on the command line.

    Loopback means 127.0.0.0/8 or ::1. Raises click.UsageError naming the address.
    """
    address = ipaddress.ip_address(host)
    if address.is_unspecified:
        raise click.UsageError(
            f"--listen {host}: the simulator gives each host the address it listens on, so it "
            "needs the address of one interface, not a wildcard"
        )
    if not address.is_loopback and not password_given:
        raise click.UsageError(
            f"refusing to listen on {host}: it is not a loopback address, and anyone who can "
            f"reach it could log in with the default password; pass --password to serve it anyway"
        )


def check_host_count(host: str, hosts: int) -> None:
    """Refuse ``--hosts`` that would run past the last address of ``host``'s /24.

    Host i of the pool listens on ``host`` + i. Raises click.UsageError.
    """
    last = int(host.rsplit(".", 1)[1])
    if last + hosts - 1 > 255:
        prefix = host.rsplit(".", 1)[0]
        raise click.UsageError(
            f"--hosts {hosts} from {host} would need addresses past {prefix}.255; "
            "start from a lower address or use fewer hosts"
        )


def check_vm_count(vms: int) -> None:
    """Refuse more than MAX_VMS VMs, saying what each costs. Raises click.UsageError."""
    if vms > MAX_VMS:
        raise click.UsageError(
            f"--vms {vms}: the simulator builds at most {MAX_VMS} VMs (each takes 1 to 2 ms and "
            f"about 15 KiB: {MAX_VMS} take 15 to 20 s and 150 MiB)"
        )


def start_error(exc: ListenError | StateError, listen: str, unix_path: str | None,
                state_dir: str | None) -> click.ClickException:
    """The error to show for a start that failed, led by the option the user gave."""
    if isinstance(exc, StateError):
        return click.ClickException(f"--state-dir {state_dir}: {exc}")
    if exc.unix:
        lead = f"--unix {unix_path}" if unix_path else "the Unix socket"
        return click.ClickException(f"{lead}: {exc.reason}")
    text = f"--listen {listen}: {exc}"
    if exc.host:
        text += f" (the address of host {exc.host + 1} of the pool, asked for by --hosts)"
    return click.ClickException(text)


def _announce(sim: Simulator, password_given: bool) -> None:
    """Print where the pool is served; the first line is the one scripts wait for."""
    click.echo(f"XAPI simulator listening on {sim.url}")  # click.echo always flushes
    click.echo(f"Unix socket: {sim.unix_path}")
    for index, url in enumerate(sim.urls):
        role = " (master)" if index == 0 else ""
        click.echo(f"Host {index + 1}{role}: {url}")
    if password_given:
        click.echo(f"Log in as {sim.username} with the password given by --password.")
    else:
        click.echo(f"Log in as {sim.username} with password {sim.password}.")
    click.echo("Stop with Ctrl+C or SIGTERM.")


def _trap_stop_signals(stop: threading.Event) -> dict[int, _Handler]:
    """Make SIGINT and SIGTERM set ``stop``; returns the handlers they replaced."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@click.command(short_help="Serve a simulated XAPI pool until Ctrl+C or SIGTERM.")
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Address of the pool master: HOST:PORT, PORT or HOST; port 0 picks a free one. "
    "Only loopback addresses unless --password is given.",
)
@click.option(
    "--unix",
    "unix_path",
    type=click.Path(dir_okay=False),
    help="Also serve the dom0 Unix socket here [default: a file in a temporary directory].",
)
@click.option(
    "--hosts",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Hosts in the pool; the others listen on the addresses after the master's, same port.",
)
@click.option(
    "--vms",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help=f"Halted VMs to create, each with a disk and a VIF; at most {MAX_VMS}.",
)
@click.option("--user", default=DEFAULT_USER, show_default=True, help="User name that may log in.")
@click.option(
    "--password",
    default=None,
    help=f"Password that logs in [default: {DEFAULT_PASSWORD}]; "
    "required to listen on a non-loopback address.",
)
@click.option(
    "--auth-delay",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds before a failed login is answered, as XAPI slows down password guessing.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="Keep the pool (state.json) and its VDI contents in this directory; a pool saved there "
    "is loaded instead of a new one, and --hosts and --vms are then ignored.",
)
@click.option(
    "--plugins-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Serve the dom0 plugins of this directory to host.call_plugin "
    "[default: os-xenapi's own, src/os_xenapi/dom0/etc/xapi.d/plugins].",
)
@click.option(
    "--dom0-root",
    type=click.Path(file_okay=False),
    help="Root directory of the simulated dom0, where plugins find DOM0_ROOT "
    "[default: dom0 in the state directory].",
)
def simulator(
    listen: str,
    unix_path: str | None,
    hosts: int,
    vms: int,
    user: str,
    password: str | None,
    auth_delay: float,
    plugins_dir: str | None,
    dom0_root: str | None,
    state_dir: str | None,
) -> None:
    """Serve a simulated XAPI pool until interrupted (Ctrl+C or SIGTERM)."""
    host, port = parse_listen(listen)
    if password == "":
        raise click.UsageError("--password must not be empty")
    # The default password, even typed out, is no password: anyone knows it.
    password_given = password is not None and password != DEFAULT_PASSWORD
    check_listen_address(host, password_given)
    check_host_count(host, hosts)
    check_vm_count(vms)
    sim = Simulator(
        hosts,
        vms,
        listen=host,
        port=port,
        unix_path=unix_path,
        username=user,
        password=password if password is not None else DEFAULT_PASSWORD,
        auth_failure_delay=auth_delay,
        plugins_dir=plugins_dir,
        dom0_root=dom0_root,
        state_dir=state_dir,
    )
    stop = threading.Event()
    previous = _trap_stop_signals(stop)
    try:
        try:
            sim.start(interrupt=stop)  # returns once every listener accepts connections
        except Interrupted:
            pass  # Ctrl+C or SIGTERM while the pool was being built: nothing was served
        except (ListenError, StateError) as exc:
            raise start_error(exc, listen, unix_path, state_dir) from None
        except OSError as exc:
            raise click.ClickException(f"cannot start the XAPI simulator: {exc}") from None
        else:
            try:
                if not stop.is_set():
                    _announce(sim, password_given)
                    stop.wait()
            finally:
                sim.stop()  # returns once the state directory is written and released
    finally:
        _restore_signals(previous)
    click.echo("XAPI simulator stopped.")
