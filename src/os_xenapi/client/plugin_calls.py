"""Calls into the dom0 plugins, the part of :class:`~os_xenapi.client.session.XenAPISession`
that speaks the plugins' protocol (``src/os_xenapi/dom0/README.md``).

* ``call_plugin(plugin, fn, args)`` is ``host.call_plugin`` on the session's host with a
  string-to-string ``args`` map, plus ``host_uuid``, which it puts in the caller's dict as
  os-xenapi 0.3.4 did.
* Plugin names: XAPI runs the file whose name matches exactly, and as in 0.3.4 ``.py`` is added
  to any name without it (``"xenstore"`` and ``"theirs"`` are ``xenstore.py`` and
  ``theirs.py``). A plugin file without the suffix (xen-api's ``echo``) is reached with
  ``call_xenapi("host.call_plugin", host_ref, "echo", fn, args)``.
* ``call_plugin_serialized(plugin, fn, *args, **kwargs)`` sends ``{"args": [...], "kwargs": {...}}``
  as JSON in the ``params`` key and decodes the JSON the plugin returns. Never pickle.
* Plugin errors arrive as typed failures: ``OS_XENAPI_*`` codes as
  :class:`~os_xenapi.client.exception.Dom0PluginError` (and subclasses), with the plugin's code and
  details in ``.details``; XenAPIPlugin's own as ``XENAPI_PLUGIN_FAILURE`` and friends.
* At connect time the plugin API version (``dom0_plugin_version.get_version``) must have major
  version 3, the JSON protocol; anything else is refused with both versions named. A dom0 without
  ``dom0_plugin_version.py`` is accepted with a warning: the session is still useful for plain XAPI
  calls, and a later plugin call fails with ``XENAPI_MISSING_PLUGIN`` naming the file.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import exception

LOG = logging.getLogger(__name__)

REQUIRED_PLUGIN_VERSION = "3.0"
MAX_PARAMS_BYTES = 128 * 1024  # what the plugins accept (Linux caps one argv string there too)
_VERSION = re.compile(r"(\d+)\.(\d+)")


def plugin_file(plugin: str) -> str:
    """The file name XAPI must find for ``plugin``: ``xenstore`` gives ``xenstore.py``, as
    every name without the suffix does (0.3.4's rule)."""
    if not isinstance(plugin, str) or not plugin or "/" in plugin:
        raise ValueError(f"a plugin is a file name under /etc/xapi.d/plugins, not {plugin!r}")
    return plugin if plugin.endswith(".py") else f"{plugin}.py"


def _version(text: Any) -> tuple[int, int] | None:
    found = _VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def is_retryable_plugin_error(exc: BaseException) -> bool:
    """Whether ``call_plugin_serialized_with_retry`` tries again after ``exc``: a busy or
    timed-out os-xenapi plugin, a plugin killed by a signal, XenAPIPlugin's ``RetryableError``
    (0.3.4's convention) or a lost connection (0.3.4 retried ``ECONNRESET``)."""
    if isinstance(exc, exception.Dom0PluginError):
        return exc.retryable
    if isinstance(exc, exception.Failure):
        params = [str(p) for p in exc.params]
        if exc.code == "XENAPI_PLUGIN_FAILURE" and params and "signal" in params[0]:
            return True
        return len(params) >= 2 and params[1] == "RetryableError"
    return isinstance(exc, exception.ConnectionLost | exception.RequestNotSent) and not \
        isinstance(exc, exception.TLSError)


class PluginCalls:
    """Plugin calls of a XenAPISession (which provides ``call_xenapi``, ``host_ref``...)."""

    # The plugin API version the session requires at connect time (0.3.4's name; it was "2.1",
    # the pickle protocol). A subclass may ask for a later minor version.
    PLUGIN_REQUIRED_VERSION: str = REQUIRED_PLUGIN_VERSION

    host_ref: str
    host_uuid: str
    platform_version: tuple[int, ...]
    plugin_version: str | None
    _cached_xsm_sr_relaxed: bool | None

    def call_xenapi(self, method: str, *args: Any, timeout: Any = None) -> Any:
        raise NotImplementedError

    def _wait_pause(self, attempt: int) -> float:
        raise NotImplementedError

    def call_plugin(self, plugin: str, fn: str, args: Mapping[str, str] | None = None) -> str:
        """Run ``fn`` of dom0 plugin ``plugin`` (``.py`` added if missing) on this session's
        host; returns its string.

        ``args`` must map str to str (XAPI's type); TypeError names the first key that does not,
        before anything is sent. ``host_uuid`` is added to ``args`` itself when it is a dict, as
        0.3.4 did (callers have read it back).
        """
        if args is None:
            args = {}
        for key, value in args.items():
            if key == "host_uuid":
                continue  # replaced below, whatever it was
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"{plugin}.{fn}: plugin arguments map str to str, but {key!r} "
                                f"is {type(key).__name__} -> {type(value).__name__}")
        if isinstance(args, dict):
            args["host_uuid"] = self.host_uuid
        sent = {**args, "host_uuid": self.host_uuid}  # a copy: the caller may change theirs
        return self.call_xenapi("host.call_plugin", self.host_ref, plugin_file(plugin), fn, sent)

    def call_plugin_serialized(self, plugin: str, fn: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` with JSON-encoded arguments and return its decoded JSON result.

        Raises TypeError/ValueError for arguments JSON cannot carry, the typed failure the
        plugin raised, or PluginProtocolError if the answer is not JSON.
        """
        try:
            params = json.dumps({"args": list(args), "kwargs": kwargs}, allow_nan=False,
                                separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{plugin}.{fn}: the arguments must be JSON values (str, int, "
                            f"float, bool, None, lists, dicts with str keys): {exc}") from None
        if len(params.encode("utf-8")) > MAX_PARAMS_BYTES:
            raise ValueError(f"{plugin}.{fn}: the arguments take {len(params)} bytes as JSON; "
                             f"dom0 plugins accept at most {MAX_PARAMS_BYTES}")
        reply = self.call_plugin(plugin, fn, {"params": params})
        try:
            return json.loads(reply)
        except ValueError as exc:
            raise exception.PluginProtocolError(plugin=plugin, fn=fn, reason=str(exc)[:80]) \
                from None

    def call_plugin_serialized_with_retry(
        self, plugin: str, fn: str, num_retries: int, callback: Callable[[dict], Any] | None,
        retry_cb: Callable[..., Any] | None = None, *args: Any, **kwargs: Any,
    ) -> Any:
        """:meth:`call_plugin_serialized`, tried up to ``num_retries + 1`` times.

        Before each try ``callback(kwargs)`` runs (it may change ``kwargs``, as 0.3.4's callers
        did to pick a Glance endpoint); after a retryable failure (see
        :func:`is_retryable_plugin_error`) ``retry_cb(exc=exc)`` runs and the session waits as
        its retry policy says (``wait``, doubling). Other errors are raised at once; when the
        tries run out, PluginRetriesExceeded.
        """
        if type(num_retries) is not int or num_retries < 0:
            raise ValueError(f"num_retries must be a whole number >= 0, not {num_retries!r}")
        for attempt in range(1, num_retries + 2):
            if callback is not None:
                callback(kwargs)
            try:
                return self.call_plugin_serialized(plugin, fn, *args, **kwargs)
            except Exception as exc:
                if not is_retryable_plugin_error(exc):
                    raise
                LOG.warning("%s.%s failed (%s), try %d of %d", plugin, fn, type(exc).__name__,
                            attempt, num_retries + 1)
                if retry_cb is not None:
                    retry_cb(exc=exc)
                if attempt <= num_retries:
                    time.sleep(self._wait_pause(attempt))
        raise exception.PluginRetriesExceeded(num_retries=num_retries)

    def is_xsm_sr_check_relaxed(self) -> bool:
        """Whether the host relaxes the SR check of cross-pool storage migration
        (``relax-xsm-sr-check`` in dom0's /etc/xapi.conf; when unset, True from platform
        version 2.1.0). Asked once per session."""
        if self._cached_xsm_sr_relaxed is None:
            try:
                value = self.call_plugin_serialized("config_file", "get_val", "relax-xsm-sr-check")
            except exception.PluginNotFound:
                value = ""  # no /etc/xapi.conf: the setting is not there
            if value:
                self._cached_xsm_sr_relaxed = str(value).strip().lower() == "true"
            else:
                self._cached_xsm_sr_relaxed = tuple(self.platform_version) >= (2, 1, 0)
        return self._cached_xsm_sr_relaxed

    def _verify_plugin_version(self, host: str) -> None:
        """Refuse dom0 plugins of another major version, or an older minor one, than
        ``PLUGIN_REQUIRED_VERSION`` (PluginVersionMismatch, a XenAPI.Failure, naming both)."""
        wanted = self.PLUGIN_REQUIRED_VERSION
        try:
            found = self.call_plugin_serialized("dom0_plugin_version", "get_version")
        except exception.XenAPIMissingPlugin:
            LOG.warning("host %s has no os-xenapi dom0 plugins (dom0_plugin_version.py is "
                        "missing); plugin calls will fail until they are installed", host)
            self.plugin_version = None
            return
        except (exception.XenAPIPluginFailure, exception.Dom0PluginError,
                exception.PluginProtocolError) as exc:
            # 0.3.x plugins unpickle 'params' and fail on JSON: they predate protocol 3.0.
            raise exception.PluginVersionMismatch(
                host=host, required=wanted,
                found=f"older than 3.0 (get_version failed on the JSON protocol: {exc.__class__.__name__})",
            ) from None
        required = _version(wanted)
        have = _version(found)
        if have is None or required is None or have[0] != required[0] or have < required:
            raise exception.PluginVersionMismatch(host=host, required=wanted,
                                                  found=str(found)[:40])
        self.plugin_version = found
