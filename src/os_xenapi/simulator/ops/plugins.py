"""host.call_plugin, host.call_extension and host.has_extension: running dom0 scripts.

The scripts run in the simulated dom0 of :mod:`..plugins`; what XAPI makes of their output is in
:mod:`..plugin_reply`. The plugin receives the *caller's* session (``Context.get_session_id`` in
``xapi_host.ml``), and runs on the host named by the call, whose xenstore its commands see.
"""

from __future__ import annotations

import json
from typing import Any

from .. import codec
from ..dispatch import Context, api
from ..errors import ApiError
from ..plugin_reply import extension_result, plugin_result
from ..plugins import dom0_of


@api("host", "call_plugin")
async def call_plugin(ctx: Context, host: str, plugin: str, fn: str, args: dict) -> str:
    """Run ``fn`` of dom0 plugin ``plugin`` on ``host`` with ``args``; returns its string."""
    ctx.db.get("host", host)  # HANDLE_INVALID, as forwarding to the host finds no address
    dom0 = dom0_of(ctx.xapi)
    path = dom0.find_plugin(plugin)
    call = codec.encode_xmlrpc_call(fn, [ctx.session or "", args]).decode("utf-8")
    return plugin_result(await dom0.run(host, path, [call]))


@api("host", "has_extension")
def has_extension(ctx: Context, host: str, name: str) -> bool:
    """Whether ``host`` has an extension of that name."""
    ctx.db.get("host", host)
    try:
        dom0_of(ctx.xapi).find_extension(name)
    except ApiError:
        return False
    return True


def _parse_call(call: str) -> tuple[str, list[Any]]:
    """(method, params) of a JSON-RPC request string; raises INTERNAL_ERROR if malformed."""
    try:
        request = json.loads(call)
    except ValueError as exc:
        raise ApiError("INTERNAL_ERROR", f"Jsonrpc.call_of_string: invalid JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        raise ApiError("INTERNAL_ERROR", "Jsonrpc.call_of_string: no string 'method' in the call")
    params = request.get("params", [])
    if isinstance(params, dict):
        params = [params]
    if not isinstance(params, list):
        raise ApiError("INTERNAL_ERROR", "Jsonrpc.call_of_string: 'params' must be an array")
    return request["method"], params


@api("host", "call_extension")
async def call_extension(ctx: Context, host: str, call: str) -> Any:
    """Run the extension named by the JSON-RPC ``call``; returns the Value it answers."""
    ctx.db.get("host", host)
    method, params = _parse_call(call)
    dom0 = dom0_of(ctx.xapi)
    path = dom0.find_extension(method)
    try:
        body = codec.encode_xmlrpc_call(method, params)
    except TypeError as exc:
        raise ApiError("INTERNAL_ERROR", method, f"cannot pass these params on: {exc}") from None
    done = await dom0.run(host, path, ["--xmlrpc"], stdin=body)
    return extension_result(str(path), done)
