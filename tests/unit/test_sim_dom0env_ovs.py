"""The simulated dom0's ovs-ofctl and ovsdb-client (dom0env/bin), run as subprocesses the way a
plugin runs them, on bridges the ovs-vsctl stand-in made in a scratch DOM0_ROOT."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from os_xenapi.simulator.plugins import DOM0ENV, dom0_environment

BIN = DOM0ENV / "bin"
TIMEOUT = 60.0


def run(root: Path, command: str, *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / command), *args], env=dom0_environment(root),
                          input=stdin, capture_output=True, text=True, timeout=TIMEOUT,
                          check=False, cwd=root)


def ok(root: Path, command: str, *args: str, stdin: str | None = None) -> str:
    done = run(root, command, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


def flows(root: Path, *args: str) -> list[str]:
    """The flows dump-flows prints, without the reply header and the volatile counters."""
    lines = ok(root, "ovs-ofctl", "dump-flows", "br-int", *args).splitlines()
    assert lines[0] in ("NXST_FLOW reply (xid=0x4):", "OFPST_FLOW reply (OF1.3) (xid=0x2):")
    shown = []
    for line in lines[1:]:
        head, _, rest = line.partition(" actions=")
        fields = [part for part in head.split(", ")
                  if not part.strip().startswith(("duration=", "idle_age=", "n_"))]
        shown.append(", ".join(part.strip() for part in fields) + " actions=" + rest)
    return shown


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    made = tmp_path / "dom0"
    made.mkdir()
    ok(made, "ovs-vsctl", "add-br", "br-int", "--", "add-port", "br-int", "tap1",
       "--", "add-port", "br-int", "patch-tun")
    return made


def test_add_flow_then_dump_shows_it_with_canonical_fields(root: Path) -> None:
    ok(root, "ovs-ofctl", "add-flow", "br-int", "priority=10,in_port=1,actions=NORMAL")
    ok(root, "ovs-ofctl", "add-flow", "br-int",
       "table=2, priority=5, dl_type=0x0800, nw_proto=6, tcp_dst=80 actions=drop")
    assert flows(root) == ["cookie=0x0, table=0, priority=10,in_port=1 actions=NORMAL",
                           "cookie=0x0, table=2, priority=5,tcp,tp_dst=80 actions=drop"]


def test_the_protocol_option_may_follow_the_verb_as_neutron_puts_it(root: Path) -> None:
    ok(root, "ovs-ofctl", "add-flows", "-O", "OpenFlow10", "br-int", "-",
       stdin="priority=3,ip,actions=normal\n\n# a comment\npriority=2,arp,actions=drop\n")
    out = ok(root, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int")
    assert out.startswith("OFPST_FLOW reply (OF1.3) (xid=0x2):\n")
    assert "idle_age" not in out  # OpenFlow 1.3 replies have no Nicira idle age
    assert flows(root, "arp") == ["cookie=0x0, table=0, priority=2,arp actions=drop"]


def test_adding_the_same_match_and_priority_replaces_the_flow(root: Path) -> None:
    ok(root, "ovs-ofctl", "add-flow", "br-int", "priority=1,in_port=2,actions=drop")
    ok(root, "ovs-ofctl", "add-flow", "br-int", "priority=1,in_port=2,actions=output:1")
    assert flows(root) == ["cookie=0x0, table=0, priority=1,in_port=2 actions=output:1"]


def test_mod_flows_changes_the_actions_of_every_flow_it_selects(root: Path) -> None:
    ok(root, "ovs-ofctl", "add-flows", "br-int", "-",
       stdin="priority=1,in_port=1,dl_vlan=5,actions=drop\npriority=2,in_port=1,actions=drop\n"
             "priority=3,in_port=2,actions=drop\n")
    ok(root, "ovs-ofctl", "mod-flows", "br-int", "in_port=1,actions=normal")
    assert [line.rsplit(" ", 1)[1] for line in flows(root)] == \
        ["actions=drop", "actions=normal", "actions=normal"]


def test_strict_mod_flows_needs_the_exact_match_and_priority(root: Path) -> None:
    ok(root, "ovs-ofctl", "add-flow", "br-int", "priority=7,in_port=1,dl_vlan=5,actions=drop")
    ok(root, "ovs-ofctl", "mod-flows", "-O", "OpenFlow13", "br-int", "--strict",
       "priority=7,in_port=1,actions=normal")  # not the same match: OpenFlow 1.3 adds nothing
    assert flows(root) == ["cookie=0x0, table=0, priority=7,in_port=1,dl_vlan=5 actions=drop"]
    ok(root, "ovs-ofctl", "--strict", "mod-flows", "br-int",
       "priority=7,in_port=1,dl_vlan=5,actions=normal")
    assert flows(root) == ["cookie=0x0, table=0, priority=7,in_port=1,dl_vlan=5 actions=normal"]


def test_mod_flows_under_openflow10_adds_a_flow_when_none_matches(root: Path) -> None:
    ok(root, "ovs-ofctl", "mod-flows", "br-int", "priority=4,in_port=9,actions=drop")
    assert flows(root) == ["cookie=0x0, table=0, priority=4,in_port=9 actions=drop"]


def test_del_flows_by_match_and_by_cookie_mask(root: Path) -> None:
    ok(root, "ovs-ofctl", "add-flows", "br-int", "-",
       stdin="cookie=0x12,priority=1,in_port=1,actions=drop\n"
             "cookie=0x34,priority=2,in_port=1,actions=drop\n"
             "cookie=0x12,priority=3,in_port=2,actions=drop\n")
    ok(root, "ovs-ofctl", "del-flows", "br-int", "cookie=0x12/-1,in_port=1")
    assert flows(root) == ["cookie=0x12, table=0, priority=3,in_port=2 actions=drop",
                           "cookie=0x34, table=0, priority=2,in_port=1 actions=drop"]
    ok(root, "ovs-ofctl", "del-flows", "br-int")
    assert flows(root) == []


def test_flows_are_kept_per_bridge(root: Path) -> None:
    ok(root, "ovs-vsctl", "add-br", "br-tun")
    ok(root, "ovs-ofctl", "add-flow", "br-tun", "priority=1,actions=drop")
    assert flows(root) == []
    assert "priority=1 actions=drop" in ok(root, "ovs-ofctl", "dump-flows", "br-tun")


@pytest.mark.parametrize(("args", "message"), [
    (["dump-flows", "br-missing"], "ovs-ofctl: br-missing is not a bridge or a socket"),
    (["add-flow", "br-int", "priority=1,in_port=1"], "ovs-ofctl: must specify an action"),
    (["add-flow", "br-int", "in_prot=1,actions=drop"], "ovs-ofctl: unknown field in_prot"),
    (["add-flow", "br-int", "in_port=one,actions=drop"], "invalid numeric format for in_port"),
    (["del-flows", "br-int", "in_port=1,actions=drop"], "ovs-ofctl: unknown keyword actions"),
    (["-O", "OpenFlow99", "dump-flows", "br-int"], "OpenFlow99: unknown OpenFlow protocol"),
    (["--bundle", "add-flow", "br-int", "actions=drop"], "unrecognized option '--bundle'"),
    (["replace-flows", "br-int", "-"], "unknown command 'replace-flows'"),
])
def test_refusals_are_ovs_ofctls_and_change_nothing(root: Path, args: list[str],
                                                    message: str) -> None:
    before = (root / "var/lib/simnet.json").read_text()
    done = run(root, "ovs-ofctl", *args)
    assert done.returncode == 1 and message in done.stderr
    assert (root / "var/lib/simnet.json").read_text() == before


def test_show_and_port_dumps_number_the_ports_ovs_vsctl_added(root: Path) -> None:
    shown = ok(root, "ovs-ofctl", "show", "br-int")
    assert " 1(tap1): addr:fe:" in shown and " 2(patch-tun): addr:fe:" in shown
    assert " LOCAL(br-int): addr:" in shown
    ports = ok(root, "ovs-ofctl", "dump-ports", "br-int", "2")
    assert ports.startswith("OFPST_PORT reply (xid=0x2): 1 ports\n  port   2: rx pkts=0")
    assert "2(patch-tun)" in ok(root, "ovs-ofctl", "dump-ports-desc", "br-int")


def test_a_port_added_after_a_deletion_takes_the_free_number(root: Path) -> None:
    ok(root, "ovs-vsctl", "del-port", "tap1", "--", "add-port", "br-int", "tap2")
    shown = ok(root, "ovs-ofctl", "show", "br-int")
    assert " 1(tap2):" in shown and " 2(patch-tun):" in shown


# -- ovsdb-client --------------------------------------------------------------------------------

def monitor(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "ovsdb-client"), *args], env=dom0_environment(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)


def read_update(process: subprocess.Popen[str]) -> dict:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else ""
    return json.loads(line)


def test_monitor_prints_the_interface_table_then_each_change(root: Path) -> None:
    process = monitor(root, "monitor", "Interface", "name,ofport,external_ids", "--format=json")
    try:
        first = read_update(process)
        assert first["headings"] == ["row", "action", "name", "ofport", "external_ids"]
        assert sorted((row[1], row[2], row[3]) for row in first["data"]) == [
            ("initial", "br-int", 65534), ("initial", "patch-tun", 2), ("initial", "tap1", 1)]
        tap1 = next(row[0] for row in first["data"] if row[2] == "tap1")
        ok(root, "ovs-vsctl", "set", "Interface", "tap1", "external_ids:iface-id=port-1")
        changed = read_update(process)["data"]
        assert [row[:2] for row in changed] == [[tap1, "old"], [tap1, "new"]]
        assert changed[1][4] == ["map", [["iface-id", "port-1"]]]
        ok(root, "ovs-vsctl", "del-port", "tap1")
        assert read_update(process)["data"] == [[tap1, "delete", "tap1", 1,
                                                 ["map", [["iface-id", "port-1"]]]]]
    finally:
        process.kill()
        process.wait(TIMEOUT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_monitor_with_a_timeout_dies_of_sigalrm_as_ovsdb_client(root: Path) -> None:
    done = subprocess.run([str(BIN / "ovsdb-client"), "--timeout=1", "monitor", "Interface",
                           "name", "--format=json"], env=dom0_environment(root),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == -signal.SIGALRM
    assert json.loads(done.stdout.splitlines()[0])["headings"] == ["row", "action", "name"]


@pytest.mark.parametrize(("args", "message"), [
    (["monitor", "tcp:192.0.2.1:6640", "Interface"],
     'failed to connect to "tcp:192.0.2.1:6640" (Connection refused)'),
    (["monitor", "Interface", "name,bogus"], "does not contain column bogus"),
    (["monitor", "Bridge"], "table Bridge is not simulated"),
    (["transact", "[]"], "only the monitor command is simulated"),
])
def test_ovsdb_client_refusals(root: Path, args: list[str], message: str) -> None:
    done = run(root, "ovsdb-client", *args)
    assert done.returncode == 1 and message in done.stderr
