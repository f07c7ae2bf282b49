"""Logging for the dom0 plugins: syslog through /dev/log when dom0 has it, else stderr.

XAPI ignores a plugin's stderr when the call succeeds, so syslog is where an operator
finds what a plugin did. Messages never carry argument values (some are secrets).
"""

import logging
import logging.handlers
import os
import sys

from dom0lib.paths import host_path

ROOT_LOGGER = "os-xenapi-plugins"
_FORMAT = "%(name)s[%(process)d]: %(levelname)s %(message)s"


def _handler() -> logging.Handler:
    socket_path = host_path("/dev/log")
    if os.path.exists(socket_path):
        try:
            handler = logging.handlers.SysLogHandler(address=socket_path)
        except OSError:
            handler = None
        if handler is not None:
            return handler
    return logging.StreamHandler(sys.stderr)


def get_logger(plugin: str) -> logging.Logger:
    """Return the logger of one plugin, attaching the syslog or stderr handler once per process."""
    root = logging.getLogger(ROOT_LOGGER)
    if not root.handlers:
        handler = _handler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    return logging.getLogger(ROOT_LOGGER + "." + plugin)
