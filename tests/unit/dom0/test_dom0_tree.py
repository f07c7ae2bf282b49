"""The dom0 tree as a whole: it runs under Python 3.6, imports only what dom0 has (the
standard library, XenAPI, XenAPIPlugin and its own dom0lib, never os_xenapi), and every
plugin is an executable file with a python3 shebang."""

import ast
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from . import harness

PYTHON_FILES = sorted(harness.DOM0.rglob("*.py"))
PLUGIN_FILES = sorted(harness.PLUGINS.glob("*.py"))
DOM0_MODULES = {"XenAPI", "XenAPIPlugin", "dom0lib"}


def _imported_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_the_dom0_tree_has_python_files():
    assert len(PLUGIN_FILES) >= 7 and len(PYTHON_FILES) > len(PLUGIN_FILES)


def test_vermin_finds_nothing_newer_than_python_3_6():
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    assert vermin, "vermin is missing: pip install -e '.[test]'"
    result = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", str(harness.DOM0)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dom0_file_compiles_under_the_dom0_python():
    python = harness.dom0_python()
    script = "import sys\nfor f in sys.argv[1:]:\n    compile(open(f).read(), f, 'exec')\n"
    result = subprocess.run([python, "-c", script] + [str(p) for p in PYTHON_FILES],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(harness.DOM0)))
def test_dom0_file_never_imports_os_xenapi(path):
    for module, level in _imported_modules(path):
        assert level == 0, f"relative import in {path.name}"
        assert module != "os_xenapi" and not module.startswith("os_xenapi."), path.name


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(harness.DOM0)))
def test_dom0_file_imports_only_what_dom0_has(path):
    for module, _ in _imported_modules(path):
        top = module.split(".")[0]
        assert top in sys.stdlib_module_names or top in DOM0_MODULES, f"{path.name}: {module}"


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.name)
def test_plugin_is_executable_with_a_python3_shebang(path):
    assert path.read_text().splitlines()[0] == "#!/usr/bin/python3 -B"
    # Git records only the executable bit; the packages set the exact modes.
    assert os.stat(str(path)).st_mode & stat.S_IXUSR


@pytest.mark.parametrize("path", sorted((harness.PLUGINS / "dom0lib").glob("*.py")),
                         ids=lambda p: p.name)
def test_helper_module_is_not_executable(path):
    assert not os.stat(str(path)).st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.name)
def test_plugin_ends_by_dispatching_through_xenapiplugin(path):
    tail = path.read_text().rstrip().splitlines()
    main = tail.index('if __name__ == "__main__":')
    assert tail[main + 1].strip().startswith("XenAPIPlugin.dispatch(dom0lib.register(")
