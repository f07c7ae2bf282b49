"""Helpers for the dom0 plugin unit tests: load plugin files, fake commands, run plugins like XAPI.

The plugins import XenAPIPlugin, which only dom0 has. For in-process tests, load_plugin()
puts the stand-in from stubs/ into sys.modules while a plugin file is imported (XenAPI is
the official SDK, a test extra), then takes it out again; the plugin and dom0lib keep
their reference. Commands are faked at dom0lib.commands.spawn, the point where a process
would start, so run()'s own checks stay real. run_like_xapi() runs a plugin file as a
subprocess with argv[1] an XML-RPC methodCall, as XAPI does, with stubs/ on PYTHONPATH.
"""

import contextlib
import glob
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUBS = HERE / "stubs"
REPO = HERE.parents[2]
DOM0 = REPO / "src" / "os_xenapi" / "dom0"
PLUGINS = DOM0 / "etc" / "xapi.d" / "plugins"
SESSION_REF = "OpaqueRef:11111111-2222-3333-4444-555555555555"

_stand_ins = {}
_plugins = {}


def _load_file(module_name, path):
    spec = importlib.util.spec_from_file_location(module_name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def xenapiplugin_stand_in():
    """The XenAPIPlugin stand-in module the loaded plugins raise Failure from."""
    if "XenAPIPlugin" not in _stand_ins:
        _stand_ins["XenAPIPlugin"] = _load_file("XenAPIPlugin", STUBS / "XenAPIPlugin.py")
    return _stand_ins["XenAPIPlugin"]


@contextlib.contextmanager
def _importing_from_plugins():
    """Import with the plugins directory on sys.path and the XenAPIPlugin stand-in present."""
    saved_path = list(sys.path)
    saved_bytecode = sys.dont_write_bytecode
    had_stand_in = "XenAPIPlugin" in sys.modules
    sys.modules["XenAPIPlugin"] = xenapiplugin_stand_in()
    sys.path.insert(0, str(PLUGINS))
    # Keep __pycache__ out of the plugin tree, which is packaged as is.
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.path[:] = saved_path
        sys.dont_write_bytecode = saved_bytecode
        if not had_stand_in:
            del sys.modules["XenAPIPlugin"]


def load_plugin(name):
    """Import plugins/<name>.py as a module (once per test session) and return it."""
    if name not in _plugins:
        with _importing_from_plugins():
            _plugins[name] = _load_file("dom0_plugin_" + name, PLUGINS / (name + ".py"))
    return _plugins[name]


def dom0lib():
    """The dom0lib package the loaded plugins use, with all its modules imported."""
    with _importing_from_plugins():
        for path in sorted((PLUGINS / "dom0lib").glob("*.py")):
            importlib.import_module("dom0lib." + path.stem if path.stem != "__init__"
                                    else "dom0lib")
    return sys.modules["dom0lib"]


def fake_xenstore_module():
    if "fake_xenstore" not in _stand_ins:
        _stand_ins["fake_xenstore"] = _load_file("dom0_fake_xenstore", STUBS / "fake_xenstore.py")
    return _stand_ins["fake_xenstore"]


class FakeCommands:
    """Replaces dom0lib.commands.spawn: records every argument list and answers from handlers.

    A handler is (exit code, stdout, stderr) or a function of (argv, input_text) returning
    one. A program without a handler behaves like a missing command.
    """

    def __init__(self):
        self.calls = []
        self.inputs = []
        self.handlers = {}

    def on(self, program, returncode=0, stdout="", stderr="", handler=None):
        self.handlers[program] = handler or (lambda argv, text: (returncode, stdout, stderr))

    def use_xenstore(self, tree):
        for program in ("xenstore-read", "xenstore-write", "xenstore-exists", "xenstore-rm",
                        "xenstore-ls"):
            self.handlers[program] = lambda argv, text: tree.command(argv)

    def programs(self):
        return [os.path.basename(argv[0]) for argv in self.calls]

    def spawn(self, argv, input_text=None, timeout=None):
        lib = sys.modules["dom0lib"]
        self.calls.append(list(argv))
        self.inputs.append(input_text)
        program = os.path.basename(argv[0])
        if program not in self.handlers:
            raise lib.errors.PluginError(lib.errors.COMMAND_MISSING, program)
        returncode, stdout, stderr = self.handlers[program](list(argv), input_text)
        return lib.commands.Completed(returncode, stdout, stderr)


def call(plugin, function, *args, session=None, host_uuid=None, raw_params=None, **kwargs):
    """Call a plugin function the way XenAPIPlugin.dispatch would; return the decoded JSON.

    Raises the stand-in XenAPIPlugin.Failure on a plugin error.
    """
    module = load_plugin(plugin)
    table = sys.modules["dom0lib"].register(plugin, getattr(module, function))
    xapi_args = {}
    if raw_params is not None:
        xapi_args["params"] = raw_params
    elif args or kwargs:
        xapi_args["params"] = json.dumps({"args": list(args), "kwargs": kwargs})
    if host_uuid is not None:
        xapi_args["host_uuid"] = host_uuid
    return json.loads(table[function](session, xapi_args))


def call_plain(plugin, function, args, session=None):
    """Call a plugin function with os-xenapi 0.3.4's plain string arguments, as Nova and
    Neutron call them; return the answer text as XAPI hands it back (not decoded).

    Raises the stand-in XenAPIPlugin.Failure on a plugin error.
    """
    module = load_plugin(plugin)
    table = sys.modules["dom0lib"].register(plugin, getattr(module, function))
    return table[function](session, dict(args))


def nova_marker(details):
    """What Nova's agent and xenstore code see in a plugin failure: the last line of the
    last detail (nova.virt.xenapi.agent._call_agent, vmops._process_plugin_exception)."""
    return details[-1].splitlines()[-1]


def dom0_python():
    """The interpreter that plays dom0's: Python 3.6 when one is installed, else this one."""
    candidates = [os.environ.get("DOM0_TEST_PYTHON", "")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.6*/bin/python3.6")))
    candidates += ["/usr/bin/python3.6"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def run_like_xapi(plugin_path, function, args, env_extra=None, python=None, timeout=30,
                  direct=False):
    """Run a plugin file as XAPI does: argv = [plugin, methodCall]; parse stdout's response.

    With direct, the file is executed itself (its shebang picks the interpreter, as when
    forkexecd runs it); otherwise python (default dom0_python()) runs it.
    Returns ("Success", value) or ("Failure", [code, ...]).
    """
    document = xmlrpc.client.dumps((SESSION_REF, args), methodname=function)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(STUBS)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(env_extra or {})
    interpreter = [] if direct else [python or dom0_python()]
    argv = interpreter + [str(plugin_path), document]
    completed = subprocess.run(argv, capture_output=True, env=env,
                               timeout=timeout, check=False)
    assert completed.returncode == 0, completed.stderr.decode()
    (struct,), _ = xmlrpc.client.loads(completed.stdout.decode())
    if struct["Status"] == "Success":
        return "Success", struct["Value"]
    return "Failure", struct["ErrorDescription"]


def install_xenstore_launchers(bin_dir, database, tree):
    """Write xenstore-* launcher scripts backed by the fake tree saved in database."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    database.write_text(json.dumps(tree.nodes))
    for program in ("xenstore-read", "xenstore-write", "xenstore-exists", "xenstore-rm",
                    "xenstore-ls"):
        launcher = bin_dir / program
        launcher.write_text(
            f"#!{sys.executable}\nimport sys\nsys.dont_write_bytecode = True\nsys.path.insert(0, {str(STUBS)!r})\n"
            "import fake_xenstore\n"
            "sys.exit(fake_xenstore.run_command_line(sys.argv))\n")
        launcher.chmod(0o755)
