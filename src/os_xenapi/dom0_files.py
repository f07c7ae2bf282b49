"""Where this installation of os-xenapi keeps its dom0 side: the plugins XAPI runs from
``/etc/xapi.d/plugins``, the dom0lib package they share, their RPM spec and their Debian files.

They are package data under ``os_xenapi/dom0`` (files to install in a dom0, not modules of the
library), found through :mod:`importlib.resources`, so that a checkout, an editable install and
an installed wheel or sdist give the simulator, the pytest fixtures and the bootstrap command the
same tree. XAPI executes a plugin as a file, so the tree must be a directory with modes: when
os_xenapi is imported from something else (a zip), it is copied once per process to a private
directory, with the modes the dom0 packages give (plugins 0755, the rest 0644), and removed at
exit.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: Where XAPI looks for plugins, relative to the dom0 tree (and to dom0's root).
PLUGINS = Path("etc", "xapi.d", "plugins")

_lock = threading.Lock()
_copy: Path | None = None


def dom0_dir() -> Path:
    """The directory holding ``etc/xapi.d/plugins``, ``xenapi-plugins.spec`` and ``debian/``."""
    tree = files("os_xenapi").joinpath("dom0")
    if isinstance(tree, Path):  # a package on a file system: use it where it is
        return tree
    return _copied(tree)


def plugins_dir() -> Path:
    """os-xenapi's dom0 plugins: the executable ``*.py`` files XAPI finds, and ``dom0lib/``."""
    return dom0_dir() / PLUGINS


def _copied(tree: Traversable) -> Path:
    """A private on-disk copy of ``tree``, made on the first call and removed at exit."""
    global _copy
    with _lock:
        if _copy is None:
            target = Path(tempfile.mkdtemp(prefix="os-xenapi-dom0-"))
            atexit.register(shutil.rmtree, target, ignore_errors=True)
            _copy_tree(tree, target)
            # The rule of the RPM spec and tools/build_dom0_package.py: the *.py files directly
            # in the plugins directory are the plugins, and XAPI runs them as executables.
            for plugin in (target / PLUGINS).glob("*.py"):
                plugin.chmod(0o755)
            _copy = target
        return _copy


def _copy_tree(source: Traversable, target: Path) -> None:
    for entry in source.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            (target / entry.name).mkdir(mode=0o755)
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())
            (target / entry.name).chmod(0o644)
