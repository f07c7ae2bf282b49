"""The real programs the simulated dom0's stand-ins may start, by absolute path from fixed lists.

A plugin's PATH is ``dom0env/bin`` alone, so whatever a plugin starts by name is a stand-in. A
few stand-ins do their work with a real tool of this machine (mke2fs writes the file system,
xorriso reads and builds ISO images, rsync copies files). They never look such a tool up on a
PATH, which a venv, a merged /usr/sbin or a package could fill with anything: each tool is the
first executable file of its fixed list below, and it runs with TOOL_ENV, whose PATH is
``dom0env/bin`` again, so a program the tool itself starts by name is a stand-in too.
"""

import os

from simpaths import Refused

BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "bin")
# name -> the places it may be, in order; nothing else is ever run.
REAL_TOOLS = {
    "mke2fs": ("/usr/sbin/mke2fs", "/sbin/mke2fs"),
    "mkswap": ("/usr/sbin/mkswap", "/sbin/mkswap"),
    "xorriso": ("/usr/bin/xorriso", "/bin/xorriso"),
    "rsync": ("/usr/bin/rsync", "/bin/rsync"),
}
TOOL_ENV = {"PATH": BIN, "LC_ALL": "C"}
INSTALL_HINT = "scripts/install-system-deps.sh installs it"


def real_tool(name):
    """The absolute path of the real tool name, the first executable regular file of its list.

    Raises Refused naming the places looked at when none is there, and KeyError for a name
    that has no list (a stand-in asking for a tool nobody vetted is a bug).
    """
    places = REAL_TOOLS[name]
    for path in places:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise Refused(f"{name} is not installed on this machine (looked in {', '.join(places)}; "
                  f"{INSTALL_HINT})")
