#!/usr/bin/python3 -B
"""xenhost: this host's data, uptime, enabled state, power, maintenance, PCI devices, network.

Host state is read and changed through the XAPI session the plugin is called with (no
`xe` command lines to build or parse). Network changes run one of a fixed set of command
shapes (dom0lib.netconf). host_join (Nova's pool code) uses pool.join through a session to
the joining host (dom0lib.pooljoin). The functions os-xenapi 0.3.4 took with plain string
arguments take them again and answer 0.3.4's JSON text.
"""

import json
import os
import re
import time

import dom0lib
import XenAPI
import XenAPIPlugin
from dom0lib import commands, locks, netconf, paths, pooljoin
from dom0lib.errors import BAD_DATA, NOT_FOUND, PluginError
from dom0lib.logs import get_logger
from dom0lib.validate import PCI_ADDRESS, UUID, Bool, Choice, Int, List, Object, Scalar, Str

CONFIG_FILE = "/usr/etc/xenhost.conf"
MAX_CONFIG_BYTES = 1024 * 1024
CONFIG_KEY = Str(128, r"[A-Za-z0-9_.-]+", what="a config key: A-Z a-z 0-9 _ . -")
PCI_DEVICES = "/sys/bus/pci/devices"
SM_CLEANUP = "/opt/xensource/sm/cleanup.py"
IPTABLES_WORD = Str(32, r"[A-Za-z0-9][A-Za-z0-9_-]*|--?[A-Za-z][a-z-]*",
                    what="an iptables program, option or table name")
IPTABLES_INPUT = Str(128 * 1024, multiline=True)
POWER_ACTIONS = {"reboot": "reboot", "shutdown": "shutdown", "startup": "power_on"}
# Nova sends {"action": '"reboot"'} with host_reboot (0.3.4 ignored it): it must name the
# function's own action.
ACTION_ARGUMENT = {action: Choice(json.dumps(action)) for action in POWER_ACTIONS}
# host_join: the joining host's XAPI URL (no user:password@ in it), names and passwords.
XAPI_URL = Str(2048, r"https?://([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?"
               r"(/[A-Za-z0-9._~/-]*)?", what="an http or https URL of a host's XAPI, "
               "without user or password in it")
HOST_ADDRESS = Str(255, r"[A-Za-z0-9][A-Za-z0-9.:-]*|\[[0-9A-Fa-f:.]+\]",
                   what="a host name or IP address")
USER_NAME = Str(256, min_len=1)
PASSWORD = Str(256)
LOG = get_logger("xenhost")


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _memory_free(xapi, host):
    """Free memory in bytes from the host's RRD data source (host_metrics.memory_free was
    removed from XAPI in favour of it), or None where XAPI offers no such source."""
    try:
        return int(float(xapi.host.query_data_source(host, "memory_free_kib")) * 1024)
    except XenAPI.Failure:
        return None


def _read_config():
    """Return the xenhost.conf settings ({} if the file does not exist yet)."""
    try:
        data = paths.read_bounded(paths.host_path(CONFIG_FILE), MAX_CONFIG_BYTES, what=CONFIG_FILE)
    except PluginError as exc:
        if exc.code == NOT_FOUND:
            return {}
        raise
    try:
        config = json.loads(data.decode("utf-8"))
    except ValueError:
        raise PluginError(BAD_DATA, CONFIG_FILE, "not JSON") from None
    if not isinstance(config, dict):
        raise PluginError(BAD_DATA, CONFIG_FILE, "not a JSON object")
    return config


@dom0lib.plain()
@dom0lib.takes()
def host_data(ctx):
    """Return this host's state: memory, names, address, CPU, capabilities, other-config,
    plus the settings in /usr/etc/xenhost.conf (the keys os-xenapi 0.3.4 returned)."""
    xapi = ctx.session.xenapi
    host = ctx.host_ref()
    record = xapi.host.get_record(host)
    metrics = {}
    if record.get("metrics", "OpaqueRef:NULL") != "OpaqueRef:NULL":
        metrics = xapi.host_metrics.get_record(record["metrics"])
    cpu_info = {}
    for key, value in record.get("cpu_info", {}).items():
        numeric = key in ("cpu_count", "socket_count", "family", "model", "stepping")
        cpu_info[key] = _int_or_none(value) if numeric else value
    data = {
        "enabled": bool(record["enabled"]),
        "host_memory": {
            "total": _int_or_none(metrics.get("memory_total")),
            "overhead": _int_or_none(record.get("memory_overhead")),
            "free": _memory_free(xapi, host),
            "free-computed": _int_or_none(xapi.host.compute_free_memory(host)),
        },
        "host_uuid": record["uuid"],
        "host_name-label": record["name_label"],
        "host_name-description": record["name_description"],
        "host_hostname": record["hostname"],
        "host_ip_address": record["address"],
        "host_other-config": record["other_config"],
        "host_capabilities": record["capabilities"],
        "host_cpu_info": cpu_info,
    }
    data.update(_read_config())
    return data


@dom0lib.plain()
@dom0lib.takes()
def host_uptime(ctx):
    """Return {"uptime": text like uptime(1) prints, "uptime_seconds": float} from /proc."""
    uptime_text = paths.read_bounded(paths.host_path("/proc/uptime"), 4096, what="/proc/uptime")
    load_text = paths.read_bounded(paths.host_path("/proc/loadavg"), 4096, what="/proc/loadavg")
    try:
        seconds = float(uptime_text.split()[0])
        loads = [float(part) for part in load_text.split()[:3]]
    except (IndexError, ValueError):
        raise PluginError(BAD_DATA, "/proc/uptime or /proc/loadavg", "not numbers") from None
    if len(loads) != 3:
        raise PluginError(BAD_DATA, "/proc/loadavg", "fewer than three load averages")
    minutes = int(seconds) // 60
    days, hours, minutes = minutes // 1440, (minutes // 60) % 24, minutes % 60
    since = "{} day{}, ".format(days, "" if days == 1 else "s") if days else ""
    text = " {} up {}{:2d}:{:02d},  load average: {:.2f}, {:.2f}, {:.2f}".format(
        time.strftime("%H:%M:%S"), since, hours, minutes, *loads)
    return {"uptime": text, "uptime_seconds": seconds}


@dom0lib.plain()
@dom0lib.takes(enabled=Bool())
def set_host_enabled(ctx, enabled):
    """Enable or disable this host for new VMs; return {"status": "enabled"|"disabled"} as
    XAPI reports it afterwards."""
    xapi = ctx.session.xenapi
    host = ctx.host_ref()
    with locks.file_lock("xenhost-state"):
        if enabled:
            xapi.host.enable(host)
        else:
            xapi.host.disable(host)
        now_enabled = xapi.host.get_enabled(host)
    return {"status": "enabled" if now_enabled else "disabled"}


@dom0lib.takes(mode=Bool())
def host_maintenance_mode(ctx, mode):
    """Enter (true) or leave (false) maintenance: entering disables the host and evacuates
    its VMs to the rest of the pool (host.evacuate); leaving enables it again.
    Returns "on_maintenance" or "off_maintenance". If the evacuation fails, a host that was
    enabled is enabled again and XAPI's error is raised. New in plugin API 3.0."""
    xapi = ctx.session.xenapi
    host = ctx.host_ref()
    with locks.file_lock("xenhost-state"):
        if not mode:
            xapi.host.enable(host)
            return "off_maintenance"
        was_enabled = xapi.host.get_enabled(host)
        xapi.host.disable(host)
        try:
            xapi.host.evacuate(host)
        except Exception:
            if was_enabled:
                try:
                    xapi.host.enable(host)
                except Exception:
                    # Report the evacuation's error, which is what the caller must act on.
                    LOG.exception("could not enable the host again after a failed evacuation")
            raise
        return "on_maintenance"


def _power_action(ctx, action):
    """Disable the host, shut down its guests, then reboot, shut down or power on the host."""
    xapi = ctx.session.xenapi
    host = ctx.host_ref()
    with locks.file_lock("xenhost-state"):
        xapi.host.disable(host)
        for vm in xapi.host.get_resident_VMs(host):
            record = xapi.VM.get_record(vm)
            if record["is_control_domain"]:
                continue
            if record["power_state"] == "Running":
                xapi.VM.clean_shutdown(vm)
            elif record["power_state"] == "Paused":
                xapi.VM.hard_shutdown(vm)
        getattr(xapi.host, POWER_ACTIONS[action])(host)
    return {"power_action": action}


@dom0lib.plain(ignored={"action": ACTION_ARGUMENT["reboot"]})
@dom0lib.takes()
def host_reboot(ctx):
    """Reboot this host after shutting down its guests; return {"power_action": "reboot"}."""
    return _power_action(ctx, "reboot")


@dom0lib.plain(ignored={"action": ACTION_ARGUMENT["shutdown"]})
@dom0lib.takes()
def host_shutdown(ctx):
    """Shut this host down after its guests; return {"power_action": "shutdown"}."""
    return _power_action(ctx, "shutdown")


@dom0lib.plain(ignored={"action": ACTION_ARGUMENT["startup"]})
@dom0lib.takes()
def host_start(ctx):
    """Ask XAPI to power this host on (host.power_on), as 0.3.4 did; return
    {"power_action": "startup"}. A running host cannot start itself: kept for the name."""
    return _power_action(ctx, "startup")


@dom0lib.plain()
@dom0lib.takes(compute_uuid=UUID, url=XAPI_URL, user=USER_NAME, password=PASSWORD,
               master_addr=HOST_ADDRESS, master_user=USER_NAME, master_pass=PASSWORD,
               force=Bool())
def host_join(ctx, compute_uuid, url, user, password, master_addr, master_user, master_pass,
              force=False):
    """Make the host whose XAPI is at url (logged in as user) join this host's pool, whose
    master is master_addr (master_user, master_pass), with pool.join (pool.join_force if
    force); its nova-compute VM compute_uuid is shut down first and started again after,
    whatever happened. Returns null.

    XAPI's errors pass through with the passwords hidden; OS_XENAPI_RETRYABLE if the joining
    host cannot be reached, OS_XENAPI_CLEANUP_FAILED if the compute VM did not start again.
    """
    pooljoin.join(ctx.session, url, user, password, compute_uuid, master_addr, master_user,
                  master_pass, force)
    return None


@dom0lib.plain(params_object=True,
               answer=lambda value: json.dumps("None" if value is None else value))
@dom0lib.takes(key=CONFIG_KEY)
def get_config(ctx, key):
    """Return the value stored under key in /usr/etc/xenhost.conf, or null (0.3.4's plain
    form, {"params": '{"key": ...}'}: the string "None")."""
    return _read_config().get(key)


@dom0lib.plain(params_object=True)
@dom0lib.takes(key=CONFIG_KEY, value=Scalar(1024))
def set_config(ctx, key, value):
    """Store value under key in /usr/etc/xenhost.conf; null removes the key."""
    with locks.file_lock("xenhost-config"):
        config = _read_config()
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
        text = json.dumps(config, indent=1, sort_keys=True) + "\n"
        paths.write_atomically(paths.host_path(CONFIG_FILE), text.encode("utf-8"))
    return None


@dom0lib.plain(json_keys=("cmd_args",),
               ignored={"run_as_root": Bool(), "attempts": Int(0, 100)})
@dom0lib.takes(cmd_args=List(IPTABLES_WORD, 8, min_items=1), process_input=IPTABLES_INPUT)
def iptables_config(ctx, cmd_args, process_input=None):
    """Run iptables-save/-restore (or the ip6tables ones) and return {"out", "err"}.

    Only the options in dom0lib.netconf's allow-list are accepted; restore reads the rules
    from process_input. Nova's plain call also sends run_as_root and attempts, which are
    checked and not used (0.3.4 ignored them too).
    """
    argv = netconf.iptables_argv(cmd_args, process_input is not None)
    result = commands.run(argv, input_text=process_input)
    return {"out": result.stdout, "err": result.stderr}


@dom0lib.takes(cmd=Choice(*sorted(netconf.NETWORK_COMMANDS)), args=Object(8))
def network_config(ctx, cmd, args):
    """Run one allow-listed OVS / ip / brctl command; return its standard output.

    args is checked against the command's own shape (dom0lib.netconf.NETWORK_COMMANDS).
    """
    return commands.run(netconf.network_argv(cmd, args)).stdout


@dom0lib.takes()
def get_pci_device_details(ctx):
    """Return `lspci -vmmnk`'s text: every PCI device with its numeric ids and driver."""
    return commands.run(["lspci", "-vmmnk"]).stdout


@dom0lib.takes(pci_device=PCI_ADDRESS)
def get_pci_type(ctx, pci_device):
    """Return "type-VF" (an SR-IOV virtual function), "type-PF" (a physical function with
    VFs) or "type-PCI" for a device address, read from sysfs."""
    address = pci_device.lower()
    if address.count(":") == 1:
        address = "0000:" + address
    # The address matched a strict pattern, so it names one entry of the directory; those
    # entries are symlinks into /sys/devices by design, so confine() does not apply.
    directory = paths.host_path(PCI_DEVICES) + "/" + address
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        raise PluginError(NOT_FOUND, "PCI device", address) from None
    if "physfn" in entries:
        return "type-VF"
    if any(entry.startswith("virtfn") for entry in entries):
        return "type-PF"
    return "type-PCI"


@dom0lib.takes(sr_uuid=UUID, vdi_uuid=UUID)
def query_gc(ctx, sr_uuid, vdi_uuid):
    """Return whether the storage garbage collector is running on the SR (vdi_uuid is
    accepted for 0.3.4's signature and not used)."""
    output = commands.run([paths.host_path(SM_CLEANUP), "-q", "-u", sr_uuid]).stdout
    match = re.search(r"Currently running:\s*(True|False)", output)
    if not match:
        raise PluginError(BAD_DATA, "cleanup.py -q", "no 'Currently running' line")
    return match.group(1) == "True"


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register(
        "xenhost", host_data, host_uptime, set_host_enabled, host_maintenance_mode,
        host_reboot, host_shutdown, host_start, host_join, get_config, set_config,
        iptables_config, network_config, get_pci_device_details, get_pci_type, query_gc))
