"""os_xenapi.dom0_files finds the dom0 tree of the os_xenapi that is imported: in place when it is
on a file system, and as a private copy, with the dom0 packages' modes, when os_xenapi is imported
from a zip (where files have neither a path nor an exec bit)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import os_xenapi
from os_xenapi import dom0_files
from os_xenapi.simulator.plugins import default_plugins_dir

PACKAGE = Path(os_xenapi.__file__).resolve().parent
DOM0 = PACKAGE / "dom0"


def _dom0_sources() -> list[Path]:
    """The dom0 tree's files as git has them (no caches)."""
    listed = subprocess.run(["git", "-C", str(PACKAGE), "ls-files", "-z", "--", str(DOM0)],
                            capture_output=True, text=True, check=True, timeout=30).stdout
    return [PACKAGE / name for name in listed.split("\0") if name]  # relative to -C


def test_plugins_dir_is_the_imported_packages_own_tree():
    plugins = dom0_files.plugins_dir()
    assert plugins == DOM0 / "etc" / "xapi.d" / "plugins"
    assert (plugins / "dom0_plugin_version.py").is_file()
    assert (plugins / "dom0lib" / "__init__.py").is_file()


def test_the_simulator_serves_the_plugins_dom0_files_finds():
    assert default_plugins_dir() == dom0_files.plugins_dir()


# Imports os_xenapi from the zip in argv[1] (first on sys.path, before the test venv's own), and
# prints where the plugins are, every file's mode and bytes, and whether the module is the zip's.
FROM_ZIP = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from os_xenapi import dom0_files
tree = dom0_files.dom0_dir()
files = {p.relative_to(tree).as_posix(): [p.stat().st_mode & 0o777, p.read_text()]
         for p in tree.rglob("*") if p.is_file()}
json.dump({"module": dom0_files.__file__, "tree": str(tree),
           "plugins": str(dom0_files.plugins_dir()), "again": str(dom0_files.dom0_dir()),
           "files": files}, sys.stdout)
"""


def test_from_a_zip_the_tree_is_copied_with_the_packages_modes_and_removed_at_exit(tmp_path):
    archive = tmp_path / "os_xenapi.zip"
    sources = _dom0_sources()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in [PACKAGE / "__init__.py", PACKAGE / "dom0_files.py", *sources]:
            # writestr with a bare ZipInfo: no mode at all, as in most zips.
            zipped.writestr(zipfile.ZipInfo(path.relative_to(PACKAGE.parent).as_posix()),
                            path.read_bytes())
    result = subprocess.run([sys.executable, "-c", FROM_ZIP, str(archive)], capture_output=True,
                            text=True, timeout=60, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)

    assert found["module"].startswith(str(archive))
    tree = Path(found["tree"])
    assert found["again"] == found["tree"]
    assert found["plugins"] == str(tree / "etc" / "xapi.d" / "plugins")
    assert not tree.is_relative_to(tmp_path) and not tree.exists()  # removed at exit
    expected = {}
    for path in sources:
        name = path.relative_to(DOM0).as_posix()
        plugin = path.parent == DOM0 / "etc" / "xapi.d" / "plugins" and path.suffix == ".py"
        expected[name] = [0o755 if plugin else 0o644, path.read_text()]
    assert found["files"] == expected
