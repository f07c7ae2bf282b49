"""Python calls into dom0's network plugins: ``xenhost.network_config`` (OVS, Linux bridge and
``ip link`` commands from a fixed allow-list) and ``bandwidth.fetch_all_bandwidth``
(os-xenapi 0.3.4's ``host_network`` names and signatures).

The ``network_config`` commands return None, as in 0.3.4, ``ip_link_get_dev`` included: it
only tells whether the device exists, by raising (a ``XenAPI.Failure``) when it does not, which is
how Nova uses it. A command dom0 lacks raises ``Dom0PluginError`` with code
``OS_XENAPI_COMMAND_MISSING``; a failing one, ``OS_XENAPI_COMMAND_FAILED``.
"""

from __future__ import annotations

from typing import Any


def _network_config(session: Any, cmd: str, args: dict[str, Any]) -> None:
    session.call_plugin_serialized("xenhost", "network_config", cmd=cmd, args=args)


def ovs_create_port(session: Any, bridge: str, port: str, iface_id: str, mac: str,
                    status: str) -> None:
    """xenhost.network_config ovs_create_port: add ``port`` to ``bridge`` with Neutron's ids."""
    _network_config(session, "ovs_create_port", {"bridge": bridge, "port": port,
                                                 "iface-id": iface_id, "mac": mac,
                                                 "status": status})


def ovs_add_port(session: Any, bridge: str, port: str) -> None:
    """xenhost.network_config ovs_add_port: (re)add ``port`` to OVS bridge ``bridge``."""
    _network_config(session, "ovs_add_port", {"bridge_name": bridge, "port_name": port})


def ovs_del_port(session: Any, bridge: str, port: str) -> None:
    """xenhost.network_config ovs_del_port: remove ``port`` from ``bridge`` if it is there."""
    _network_config(session, "ovs_del_port", {"bridge_name": bridge, "port_name": port})


def ovs_del_br(session: Any, bridge_name: str) -> None:
    """xenhost.network_config ovs_del_br: remove OVS bridge ``bridge_name`` if it exists."""
    _network_config(session, "ovs_del_br", {"bridge_name": bridge_name})


def brctl_add_if(session: Any, bridge_name: str, interface_name: str) -> None:
    """xenhost.network_config brctl_add_if: add an interface to a Linux bridge."""
    _network_config(session, "brctl_add_if", {"bridge_name": bridge_name,
                                              "interface_name": interface_name})


def brctl_del_if(session: Any, bridge_name: str, interface_name: str) -> None:
    """xenhost.network_config brctl_del_if: remove an interface from a Linux bridge."""
    _network_config(session, "brctl_del_if", {"bridge_name": bridge_name,
                                              "interface_name": interface_name})


def brctl_del_br(session: Any, bridge_name: str) -> None:
    """xenhost.network_config brctl_del_br: remove a Linux bridge."""
    _network_config(session, "brctl_del_br", {"bridge_name": bridge_name})


def brctl_add_br(session: Any, bridge_name: str) -> None:
    """xenhost.network_config brctl_add_br: create a Linux bridge."""
    _network_config(session, "brctl_add_br", {"bridge_name": bridge_name})


def brctl_set_fd(session: Any, bridge_name: str, fd: int | str) -> None:
    """xenhost.network_config brctl_set_fd: set a Linux bridge's forward delay (0-30 s)."""
    _network_config(session, "brctl_set_fd", {"bridge_name": bridge_name, "fd": fd})


def brctl_set_stp(session: Any, bridge_name: str, stp_opt: str) -> None:
    """xenhost.network_config brctl_set_stp: turn STP ``on`` or ``off`` on a Linux bridge."""
    _network_config(session, "brctl_set_stp", {"bridge_name": bridge_name, "option": stp_opt})


def ip_link_add_veth_pair(session: Any, dev1_name: str, dev2_name: str) -> None:
    """xenhost.network_config ip_link_add_veth_pair: create a veth pair."""
    _network_config(session, "ip_link_add_veth_pair", {"dev1_name": dev1_name,
                                                       "dev2_name": dev2_name})


def ip_link_del_dev(session: Any, device: str) -> None:
    """xenhost.network_config ip_link_del_dev: delete a network device."""
    _network_config(session, "ip_link_del_dev", {"device_name": device})


def ip_link_get_dev(session: Any, device: str) -> None:
    """xenhost.network_config ip_link_get_dev: None if ``device`` exists (``ip link show``'s
    text is dropped, as 0.3.4 dropped it); raises ``Dom0PluginError`` (a XenAPI.Failure) with
    code ``OS_XENAPI_COMMAND_FAILED`` if it does not."""
    _network_config(session, "ip_link_get_dev", {"device_name": device})


def ip_link_set_dev(session: Any, device: str, option: str) -> None:
    """xenhost.network_config ip_link_set_dev: set a device ``up`` or ``down``."""
    _network_config(session, "ip_link_set_dev", {"device_name": device, "option": option})


def ip_link_set_promisc(session: Any, device: str, promisc_option: str) -> None:
    """xenhost.network_config ip_link_set_promisc: promiscuous mode ``on`` or ``off``."""
    _network_config(session, "ip_link_set_promisc", {"device_name": device,
                                                     "option": promisc_option})


def fetch_all_bandwidth(session: Any) -> dict[str, dict[str, dict[str, int]]]:
    """bandwidth.fetch_all_bandwidth: ``{domid: {vif: {"bw_in": n, "bw_out": n}}}`` in bytes."""
    return session.call_plugin_serialized("bandwidth", "fetch_all_bandwidth")
