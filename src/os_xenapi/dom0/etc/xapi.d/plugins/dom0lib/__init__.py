"""dom0lib: what the os-xenapi dom0 plugins share, installed beside them in /etc/xapi.d/plugins.

It runs in dom0 under Python 3.6 with the standard library, XenAPI and XenAPIPlugin only,
and never imports os_xenapi. Modules, one idea each:
  errors    the OS_XENAPI_* error codes and PluginError
  validate  declarative argument types (strings with patterns, bounded ints, lists, ...)
  protocol  the JSON calling convention: @takes, register(), the Call context
  commands  running dom0 commands: argument lists, time limits, clear errors
  paths     DOM0_ROOT (host_path), confinement of caller paths, bounded file reads
  logs      syslog (or stderr) logging
  locks     fcntl file locks
  xenstore  the xenstore-* commands, shared by the xenstore and agent plugins
"""

from dom0lib.errors import PluginError
from dom0lib.protocol import Call, register, takes

__all__ = ["Call", "PluginError", "register", "takes"]
