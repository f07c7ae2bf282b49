#!/usr/bin/env python3
"""A dom0 plugin that exercises every way a plugin can answer XAPI, for the simulator's tests.

Each function shows one behaviour: a string result, XenAPIPlugin.Failure, another exception, a
non-zero exit, junk or malformed output, a non-string result, a call back into XAPI with the
caller's session, the xenstore commands, and the dom0 root. Written for dom0's Python 3.6.
"""

import json
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client

import XenAPIPlugin


def echo(session, args):
    """The arguments, as JSON with sorted keys."""
    return json.dumps(args, sort_keys=True)


def whitespace(session, args):
    """A string of blanks, which XAPI reads as an empty string."""
    return "   "


def fail(session, args):
    """A XenAPIPlugin.Failure, which the client receives as its own error."""
    raise XenAPIPlugin.Failure(args.get("code", "PROBE_FAILURE"), ["first", "second"])


def crash(session, args):
    """Any other exception, which XenAPIPlugin wraps in XENAPI_PLUGIN_FAILURE."""
    raise ValueError("the probe was asked to fail")


def exit_non_zero(session, args):
    """Some output, then exit status 3."""
    sys.stdout.write("partial output\n")
    sys.stderr.write("something went wrong\n")
    sys.exit(3)


def kill_self(session, args):
    """Death by SIGKILL."""
    sys.stdout.write("about to die\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _print_and_leave(text):
    sys.stdout.write(text)
    sys.stdout.flush()
    os._exit(0)  # so that dispatch prints nothing more


def junk(session, args):
    """Text that is not XML."""
    _print_and_leave("this is not XML\n")


def nothing(session, args):
    """No output at all, and exit status 0."""
    _print_and_leave("")


def fault(session, args):
    """An XML-RPC <fault> instead of a Status struct."""
    _print_and_leave(xmlrpc.client.dumps(xmlrpc.client.Fault(7, "seven"), methodresponse=True))


def bare_value(session, args):
    """A plain XML-RPC response with no Status struct, as a generic XML-RPC server writes."""
    _print_and_leave(xmlrpc.client.dumps(("bare",), methodresponse=True))


def trailing_junk(session, args):
    """A correct answer followed by junk, which XAPI's reader never looks at."""
    answer = XenAPIPlugin.success_message("kept")
    _print_and_leave(answer + "\ntrailing junk <<<\n")


def non_string(session, args):
    """An int, which XAPI refuses as a plugin result."""
    return 42


def none(session, args):
    """None, which xmlrpc.client cannot write without allow_none."""
    return None


def host_record(session, args):
    """The uuid and name of args['host'], read back through XenAPI.xapi_local()."""
    record = session.xenapi.host.get_record(args["host"])
    return json.dumps({"uuid": record["uuid"], "name_label": record["name_label"]})


def attach_to_dom0(session, args):
    """A VBD of args['vdi'] in the control domain of args['host'], made with the caller's
    session; returns the VBD ref."""
    dom0 = session.xenapi.host.get_control_domain(args["host"])
    return session.xenapi.VBD.create({
        "VM": dom0, "VDI": args["vdi"], "userdevice": "autodetect", "bootable": False,
        "mode": "RW", "type": "Disk", "empty": False, "other_config": {},
        "qos_algorithm_type": "", "qos_algorithm_params": {},
    })


def _run(*argv):
    # capture_output= and text= came with Python 3.7; dom0 has 3.6.
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: UP022
                          universal_newlines=True)  # noqa: UP021
    return {"status": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def xenstore(session, args):
    """Runs the xenstore command args['command'] with args['argv'] (a JSON list)."""
    return json.dumps(_run("xenstore-" + args["command"], *json.loads(args.get("argv", "[]"))))


def hang(session, args):
    """Tells the test its pid (in host other_config 'probe-pid'), then sleeps until killed."""
    # No sleep(1) here: the simulated dom0's PATH holds only its stand-ins.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    pids = f"{os.getpid()} {child.pid}"
    session.xenapi.host.add_to_other_config(args["host"], "probe-pid", pids)
    time.sleep(3600)
    return "woke up"


def dom0_file(session, args):
    """Writes args['text'] to /etc/probe.conf of the simulated dom0; returns where and cwd."""
    path = os.path.join(os.environ.get("DOM0_ROOT", "/"), "etc", "probe.conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(args["text"])
    return json.dumps({"path": path, "cwd": os.getcwd()})


def environment(session, args):
    """The plugin's environment and argv."""
    return json.dumps({"env": dict(os.environ), "argv": sys.argv})


if __name__ == "__main__":
    XenAPIPlugin.dispatch({
        "echo": echo, "whitespace": whitespace, "fail": fail, "crash": crash,
        "exit_non_zero": exit_non_zero, "kill_self": kill_self, "junk": junk,
        "nothing": nothing, "fault": fault, "bare_value": bare_value,
        "trailing_junk": trailing_junk, "non_string": non_string, "none": none,
        "host_record": host_record, "attach_to_dom0": attach_to_dom0, "xenstore": xenstore,
        "hang": hang, "dom0_file": dom0_file, "environment": environment,
    })
