"""Test stand-in for dom0's XenAPI module, for plugins run as subprocesses in tests/unit/dom0.

It offers what XenAPIPlugin and the plugins touch: Failure, and xapi_local() returning a
session whose ``xenapi`` attribute refuses use with a clear message, since these tests run
plugins that never call XAPI. (In-process unit tests use the official SDK instead.)
"""


class Failure(Exception):
    """A XAPI error: details is [code, param, ...]."""

    def __init__(self, details):
        Exception.__init__(self, details)
        self.details = details


class _LocalSession:
    def __init__(self):
        self._session = None

    @property
    def xenapi(self):
        raise RuntimeError("the XenAPI stand-in has no XAPI to call; this test's plugin "
                           "function must not use the session")


def xapi_local():
    """Return a session object bound to nothing (the real one talks to xapi's Unix socket)."""
    return _LocalSession()
