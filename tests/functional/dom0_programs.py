"""Every program os-xenapi's dom0 plugins can start, read off their code: the sealed-dom0 tests
check each one against the simulated dom0.

A plugin starts a program only through ``dom0lib.commands.run`` (or ``spawn``). Each call site
gives its argument list either literally (``["sfdisk", "-v"]``, ``["vhd-util"] + args``), which
names the program, or from a value worked out elsewhere: those sites are listed in DYNAMIC with
the code that yields their programs, evaluated in dom0's own Python. A call site of neither kind
fails :func:`inventory`, so a new plugin cannot start a program the tests never see.
"""

from __future__ import annotations

import ast
import json
import subprocess

from os_xenapi.simulator.plugins import DOM0ENV, default_plugins_dir, dom0_environment

PLUGINS = default_plugins_dir()
RUNNERS = {"run", "spawn"}
# (file, the argument list's source) -> Python (run with the plugins importable) whose value is
# the programs that site can start.
DYNAMIC = {
    ("netwrap.py", "allowed_argv(cmd, cmd_input)"): "netwrap.PROGRAMS",
    ("xenhost.py", "argv"): "sorted(netconf.IPTABLES_PROGRAMS)",
    ("xenhost.py", "netconf.network_argv(cmd, args)"):
        "sorted({build(collections.defaultdict(lambda: 'x'))[0]"
        " for _, build in netconf.NETWORK_COMMANDS.values()})",
    ("partition_utils.py", "_mkfs_argv(fs_type, partition, fs_label)"):
        "sorted({partition_utils._mkfs_argv(kind, 'p', None)[0]"
        " for kind in ('swap', 'ext3', 'ext4')})",
    ("ipxe.py", "[mkisofs_cmd, ...]"): "['mkisofs', 'genisoimage', 'xorrisofs']",
}
# Programs started by their dom0 path, not looked up on PATH: files of the simulated dom0 root.
BY_DOM0_PATH = {("xenhost.py", "[paths.host_path(SM_CLEANUP), ...]"): "/opt/xensource/sm/cleanup.py"}


def _call_sites() -> list[tuple[str, ast.expr]]:
    """(file, argument-list expression) of every commands.run / commands.spawn call."""
    sites = []
    files = sorted(PLUGINS.glob("*.py")) + sorted((PLUGINS / "dom0lib").glob("*.py"))
    for path in files:
        if path.name == "commands.py":
            continue  # the runner itself
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in RUNNERS and isinstance(node.func.value, ast.Name) and \
                    node.func.value.id == "commands":
                sites.append((path.name, node.args[0]))
    return sites


def _literal_program(argv: ast.expr) -> str | None:
    while isinstance(argv, ast.BinOp) and isinstance(argv.op, ast.Add):
        argv = argv.left
    if isinstance(argv, ast.List) and argv.elts and isinstance(argv.elts[0], ast.Constant) \
            and isinstance(argv.elts[0].value, str):
        return argv.elts[0].value
    return None


def _key(file: str, argv: ast.expr) -> tuple[str, str]:
    if isinstance(argv, ast.List) and argv.elts:
        return file, f"[{ast.unparse(argv.elts[0])}, ...]"
    return file, ast.unparse(argv)


def _evaluate(expressions: dict[tuple[str, str], str]) -> dict[tuple[str, str], list[str]]:
    """The value of each expression, in dom0's Python with the plugins importable."""
    modules = sorted({file[:-3] for file, _ in expressions})
    script = (
        "import collections, importlib, json, sys\n"
        "from dom0lib import netconf\n"
        f"mods = {{name: importlib.import_module(name) for name in {modules!r}}}\n"
        "globals().update(mods)\n"
        f"exprs = {json.dumps({' | '.join(k): v for k, v in expressions.items()})}\n"
        "print(json.dumps({key: list(eval(text)) for key, text in exprs.items()}))\n"
    )
    env = dom0_environment(PLUGINS)
    env["PYTHONPATH"] = f"{DOM0ENV / 'lib'}:{PLUGINS}"
    done = subprocess.run([env["XAPI_SIM_PYTHON"], "-B", "-c", script], env=env, cwd=PLUGINS,
                          capture_output=True, text=True, timeout=60, check=True)
    values = json.loads(done.stdout)
    return {key: values[" | ".join(key)] for key in expressions}


def inventory() -> dict[str, set[str]]:
    """{program name: the plugin files that can start it} for every program looked up on the
    plugins' PATH. Raises AssertionError naming a call site that is neither literal nor listed."""
    found: dict[str, set[str]] = {}
    dynamic: dict[tuple[str, str], str] = {}
    for file, argv in _call_sites():
        program = _literal_program(argv)
        key = _key(file, argv)
        if program is not None:
            found.setdefault(program, set()).add(file)
        elif key in DYNAMIC:
            dynamic[key] = DYNAMIC[key]
        elif key not in BY_DOM0_PATH:
            raise AssertionError(f"{file} starts a program the sealed-dom0 tests do not know: "
                                 f"commands.run({ast.unparse(argv)}); add it to DYNAMIC")
    missing = set(DYNAMIC) - set(dynamic)
    assert not missing, f"DYNAMIC lists call sites the plugins no longer have: {missing}"
    for (file, _), programs in _evaluate(dynamic).items():
        for program in programs:
            found.setdefault(program, set()).add(file)
    return found
