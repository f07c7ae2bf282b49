"""XenAPIPlugin for the simulator's dom0: how a plugin file answers ``host.call_plugin``.

A plugin ends with ``XenAPIPlugin.dispatch({"name": fn, ...})``. XAPI starts it with one
argument, an XML-RPC methodCall whose method is the function's name and whose params are the
caller's session ref and the string-to-string ``args`` map. ``dispatch`` then, as the module dom0
ships does:

* refuses any other number of arguments by raising (the plugin exits non-zero, and the client
  gets ``XENAPI_PLUGIN_FAILURE ["non-zero exit", stdout, stderr]``);
* answers ``UNKNOWN_XENAPI_PLUGIN_FUNCTION [name]`` for a function not in the table;
* calls ``fn(session, args)`` with ``session = XenAPI.xapi_local()`` logged in as the caller,
  and prints ``{Status: Success, Value: result}``; ``result`` should be a string, as XAPI
  refuses anything else;
* prints ``raise Failure(code, [params])`` as ``{Status: Failure, ErrorDescription: [code,
  *params]}``: the client sees the plugin's own error;
* prints any other exception ``e`` as ``["XENAPI_PLUGIN_FAILURE", name, type(e).__name__,
  str(e)]``, including one raised while writing the answer (e.g. a ``None`` result);
* lets ``SystemExit`` through, so ``sys.exit(n)`` is a plain exit.

Written for Python 3.6 with the standard library only.
"""

import sys
import xmlrpc.client

import XenAPI


class Failure(Exception):
    """An error the client receives as a XAPI error ``[code, *params]``."""

    def __init__(self, code, params):
        if not isinstance(params, list):
            raise TypeError("XenAPIPlugin.Failure params must be a list of strings, "
                            f"not {type(params).__name__}")
        Exception.__init__(self, code, params)
        self.params = [code] + params

    def __str__(self):
        return f"XenAPIPlugin.Failure({self.params!r})"


def success_message(result):
    """The methodResponse text of a successful call."""
    return xmlrpc.client.dumps(({"Status": "Success", "Value": result},), methodresponse=True)


def failure_message(description):
    """The methodResponse text of a failed call; ``description`` is ``[code, *params]``."""
    return xmlrpc.client.dumps(
        ({"Status": "Failure", "ErrorDescription": description},), methodresponse=True
    )


def dispatch(fn_table):
    """Run the function XAPI asked for (``sys.argv[1]``) and print its answer on stdout."""
    if len(sys.argv) != 2:
        raise Exception(
            f"XenAPIPlugin.dispatch needs exactly one argument, the methodCall XML; "
            f"got {len(sys.argv) - 1}"
        )
    params, name = xmlrpc.client.loads(sys.argv[1])
    if name not in fn_table:
        print(failure_message(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", name]))
        return
    session = XenAPI.xapi_local()
    session._session = params[0]
    args = params[1]
    try:
        answer = success_message(fn_table[name](session, args))
    except SystemExit:
        raise
    except Failure as failure:
        answer = failure_message(failure.params)
    except Exception as exc:
        answer = failure_message(["XENAPI_PLUGIN_FAILURE", name, type(exc).__name__, str(exc)])
    print(answer)
