"""Fixtures of the consumer-contract suite: a simulator running os-xenapi's own dom0 plugins, and
XenAPISessions made exactly as Nova, Neutron and Ceilometer made theirs.

Each consumer built its session from its configuration and nothing else:
``XenAPISession(url, username, password, originator="nova")`` (``"neutron"``, ``"ceilometer"``),
with no retry policy, protocol or TLS option, so the defaults are what it got.
:func:`consumer_session` makes a session exactly so, and every test talks to the simulator
through one. Simulators are module-scoped: a module gets one pool, and a module that needs
another pool (more hosts, other plugins) overrides ``sim``.

What the simulator cannot do on main yet (issue 10, item 7: the guest agent's test switches) is
reached through :func:`set_guest_agent`, marked ASSUMED API, so that it can be adapted in one
place once the simulator's side lands.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import default_plugins_dir, dom0_of

LINUX_TEMPLATE = "Debian Bookworm 12"  # runs with PV drivers, so with a guest agent
NO_TOOLS_TEMPLATE = "Other install media"  # runs without PV drivers or agent
AGENT_TARBALL = b"an agent build, as Nova's agent_update downloads it"


def consumer_session(sim: Simulator, originator: str, url: str | None = None) -> XenAPISession:
    """A session made as the consumers made theirs: URL, user, password, originator."""
    return XenAPISession(url or sim.url, sim.username, sim.password, originator=originator)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scratch directory that stands for dom0's "/"."""
    return tmp_path_factory.mktemp("dom0")


@pytest.fixture(scope="module")
def sim(root: Path) -> Iterator[Simulator]:
    """A one-host pool whose dom0 runs os-xenapi's own plugins in ``root``."""
    with Simulator(auth_failure_delay=0, dom0_root=root) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def nova(sim: Simulator) -> Iterator[XenAPISession]:
    """Nova's session (nova/virt/xenapi/driver.py)."""
    with consumer_session(sim, "nova") as made:
        yield made


@pytest.fixture(scope="module")
def neutron(sim: Simulator) -> Iterator[XenAPISession]:
    """Neutron's root-helper session (neutron/agent/linux/xenapi_root_helper.py)."""
    with consumer_session(sim, "neutron") as made:
        yield made


@pytest.fixture(scope="module")
def ceilometer(sim: Simulator) -> Iterator[XenAPISession]:
    """Ceilometer's inspector session (ceilometer/compute/virt/xenapi/inspector.py)."""
    with consumer_session(sim, "ceilometer") as made:
        yield made


# ------------------------------------------------------------------------------- instances


def boot_instance(x: Any, name: str, template: str = LINUX_TEMPLATE, vifs: int = 1) -> str:
    """A running VM named ``name`` made from ``template`` with its disks and ``vifs`` VIFs
    (devices "0", "1"... on the pool's first network); made with the official SDK, as the
    simulator's referee, so that the consumer sessions under test only read it."""
    vm = x.VM.clone(x.VM.get_by_name_label(template)[0], name)
    x.VM.provision(vm)
    network = x.network.get_all()[0]
    for device in range(vifs):
        x.VIF.create({"VM": vm, "network": network, "device": str(device), "MAC": "",
                      "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
                      "qos_algorithm_params": {}})
    x.VM.start(vm, False, False)
    return vm


def halted_instance(x: Any, name: str) -> str:
    """A halted VM named ``name``."""
    vm = x.VM.clone(x.VM.get_by_name_label(LINUX_TEMPLATE)[0], name)
    x.VM.provision(vm)
    return vm


# ------------------------------------------------------------------- the simulated dom0's state


def xenstore_read(sim: Simulator, path: str) -> str | None:
    """What the master's simulated xenstore holds at ``path`` (None if nothing), read inside
    the simulator, not through the plugins under test."""
    def read(xapi: Any) -> str | None:
        store = dom0_of(xapi).xenstore
        return store.read(xapi.master, path) if store.exists(xapi.master, path) else None
    return sim.run(read)


def xenstore_write(sim: Simulator, path: str, value: str) -> None:
    """Write ``value`` at ``path`` in the master's simulated xenstore, as a guest would."""
    sim.run(lambda xapi: dom0_of(xapi).xenstore.write(xapi.master, path, value))


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    """Return once ``condition()`` holds, checking every 20 ms; AssertionError naming ``what``
    after ``seconds``. For state a plugin run in another process changes, which sends no event."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds:g} s"
        time.sleep(0.02)


def plugins_with(directory: Path, files: dict[str, str]) -> Path:
    """A copy of os-xenapi's dom0 plugins in ``directory``, with ``files`` (name: text) added
    or replacing the plugin of that name, executable as XAPI needs."""
    target = directory / "plugins"
    shutil.copytree(default_plugins_dir(), target)
    for name, text in files.items():
        (target / name).write_text(text)
        (target / name).chmod(0o755)
    return target


# ------------------------------------------------------------------ the simulated guest agent


@pytest.fixture(scope="module")
def agent_build() -> Iterator[str]:
    """The URL of an agent build (AGENT_TARBALL) on a local HTTP server, for agent_update."""
    class Build(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(AGENT_TARBALL)))
            self.end_headers()
            self.wfile.write(AGENT_TARBALL)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Build)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/xenagent.tgz"
    server.shutdown()
    server.server_close()


def set_guest_agent(sim: Simulator, vm: str, *, silent: bool | None = None,
                    features: list[str] | None = None) -> None:
    """Change what the simulated guest agent of running VM ``vm`` does: ``silent=True`` stops
    it answering (the agent plugin times out), ``silent=False`` makes it answer again;
    ``features`` is what it answers when the plugin asks for its features."""
    mode = None if silent is None else ("silent" if silent else "answer")
    sim.set_guest_agent(vm, mode=mode, features=features)


# Nova's SimpleDH (nova/virt/xenapi/agent.py): the group, and how it encrypts with the secret.
NOVA_DH_PRIME = 162259276829213363391578010288127
NOVA_DH_GENERATOR = 5
NOVA_DH_PRIVATE = 0x4E6F7661444800  # any number Nova's SimpleDH may draw


def nova_public_key() -> str:
    return str(pow(NOVA_DH_GENERATOR, NOVA_DH_PRIVATE, NOVA_DH_PRIME))


def nova_encrypt(agent_public: str, text: str) -> str:
    """SimpleDH.compute_shared then .encrypt: openssl aes-128-cbc -A -a -pass pass:<secret>
    -nosalt over ``text``, as Nova runs it."""
    secret = str(pow(int(agent_public), NOVA_DH_PRIVATE, NOVA_DH_PRIME))
    done = subprocess.run(["openssl", "aes-128-cbc", "-A", "-a", "-pass", f"pass:{secret}",
                           "-nosalt"], input=text.encode(), capture_output=True, timeout=30,
                          check=True)
    return done.stdout.decode().strip("\n")
