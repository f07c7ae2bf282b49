#!/usr/bin/python3 -B
"""console: the tail of a guest's console log, as written by xenconsoled.

xenconsoled writes guest consoles to /var/log/xen/guest/console.<domid> once the xenstore
key /local/logconsole/@ is set to /var/log/xen/guest/console.%d. Called with os-xenapi
0.3.4's plain arguments ({"dom_id": "5"}), the answer is the base64 text itself, not JSON.
"""

import base64
import zlib

import dom0lib
import XenAPIPlugin
from dom0lib import paths
from dom0lib.validate import DOM_ID

CONSOLE_DIR = "/var/log/xen/guest"
MAX_CONSOLE_BYTES = 100 * 1024


@dom0lib.plain(answer=dom0lib.plain_text)
@dom0lib.takes(dom_id=DOM_ID)
def get_console_log(ctx, dom_id):
    """Return base64(zlib(last 100 KiB of the guest's console log)).

    Raises OS_XENAPI_NOT_FOUND if the guest has no console log, OS_XENAPI_INVALID_ARGUMENT
    if its log is a symlink that leads out of the console directory.
    """
    directory = paths.host_path(CONSOLE_DIR)
    log_path = paths.confine(directory, f"console.{dom_id:d}", "dom_id")
    data = paths.read_tail(log_path, MAX_CONSOLE_BYTES, what="console log")
    return base64.b64encode(zlib.compress(data)).decode("ascii")


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("console", get_console_log))
