#!/usr/bin/python3 -B
"""config_file: read one setting of XAPI's /etc/xapi.conf (for example relax-xsm-sr-check).

Called with os-xenapi 0.3.4's plain arguments ({"key": ...}), the answer is the value as
bare text, not JSON, as 0.3.4 gave it.
"""

import dom0lib
import XenAPIPlugin
from dom0lib import paths
from dom0lib.validate import Str

XAPI_CONF = "/etc/xapi.conf"
MAX_CONF_BYTES = 1024 * 1024
KEY = Str(128, r"[A-Za-z0-9_.-]+", what="a xapi.conf key: A-Z a-z 0-9 _ . -")


@dom0lib.plain(answer=dom0lib.plain_text)
@dom0lib.takes(key=KEY)
def get_val(ctx, key):
    """Return the value of key in /etc/xapi.conf, or "" if it is not set there.

    If key is set more than once, the last line wins; "#" starts a comment line.
    Raises OS_XENAPI_NOT_FOUND if the file is missing.
    """
    data = paths.read_bounded(paths.host_path(XAPI_CONF), MAX_CONF_BYTES, what=XAPI_CONF)
    value = ""
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, setting = line.split("=", 1)
        if name.strip() == key:
            value = setting.strip()
    return value


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("config_file", get_val))
