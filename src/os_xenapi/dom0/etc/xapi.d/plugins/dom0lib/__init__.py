"""dom0lib: what the os-xenapi dom0 plugins share, installed beside them in /etc/xapi.d/plugins.

It runs in dom0 under Python 3.6 with the standard library, XenAPI and XenAPIPlugin only,
and never imports os_xenapi. Modules, one idea each:
  errors    the OS_XENAPI_* error codes and PluginError
  validate  declarative argument types (strings with patterns, bounded ints, lists, ...)
  protocol  the JSON calling convention: @takes, register(), the Call context
  plainargs os-xenapi 0.3.4's plain string arguments, for functions declared @plain
  commands  running dom0 commands: argument lists, time limits, clear errors
  paths     DOM0_ROOT (host_path), confinement of caller paths, bounded file reads
  logs      syslog (or stderr) logging
  locks     fcntl file locks
  xenstore  the xenstore-* commands, shared by the xenstore and agent plugins
  netconf   xenhost's network command shapes and the iptables allow-list
  argshape  exact command shapes with typed slots (netwrap's allow-list format)
  devices   disk names (xvd*, sd*, nbd*), their /dev paths, waiting for them
  vbd       a VDI plugged into dom0 for a with block, always unplugged and destroyed
  staging   SR mount paths and staging areas inside an SR
  vhdchain  numbering, checking and importing a VHD chain into an SR
  vhdtar    the gzip'd tar of a VHD chain, streamed in and out
  httpclient  HTTP(S) to an image service with verified TLS and sorted errors
"""

from dom0lib.errors import PluginError
from dom0lib.plainargs import as_text as plain_text
from dom0lib.plainargs import plain
from dom0lib.protocol import Call, register, takes

__all__ = ["Call", "PluginError", "plain", "plain_text", "register", "takes"]
