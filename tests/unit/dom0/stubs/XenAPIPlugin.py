"""Test stand-in for dom0's XenAPIPlugin module (xapi installs the real one in dom0).

Used only by tests/unit/dom0: on PYTHONPATH when a plugin runs as a subprocess the way XAPI
runs it, and loaded into sys.modules while the unit tests import plugin files. It keeps
the real module's contract (PROTOCOL.md section 3): argv[1] is an XML-RPC methodCall of
(session_ref, args); one methodResponse struct {Status, Value | ErrorDescription} is
printed on stdout; Failure(code, params) reports [code] + params; any other exception
reports ['XENAPI_PLUGIN_FAILURE', method, class name, message]; an unknown function
reports ['UNKNOWN_XENAPI_PLUGIN_FUNCTION', method].
"""

import sys
import xmlrpc.client

import XenAPI


class Failure(Exception):
    """A plugin's deliberate XAPI error: code plus a list of string parameters."""

    def __init__(self, code, params):
        Exception.__init__(self, code, params)
        self.params = [code] + list(params)

    def __str__(self):
        return str(self.params)


def _response(struct):
    return xmlrpc.client.dumps((struct,), methodresponse=True, allow_none=False)


def dispatch(fn_table):
    """Run the function argv[1] names and print its XML-RPC response on stdout."""
    if len(sys.argv) != 2:
        raise Exception("Incorrect number of commandline arguments")
    params, method = xmlrpc.client.loads(sys.argv[1])
    session_ref, args = params[0], params[1]
    if method not in fn_table:
        print(_response({"Status": "Failure",
                         "ErrorDescription": ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", method]}))
        return
    session = XenAPI.xapi_local()
    session._session = session_ref
    try:
        result = fn_table[method](session, args)
        print(_response({"Status": "Success", "Value": result}))
    except Failure as exc:
        print(_response({"Status": "Failure", "ErrorDescription": exc.params}))
    except Exception as exc:
        print(_response({"Status": "Failure", "ErrorDescription": [
            "XENAPI_PLUGIN_FAILURE", method, exc.__class__.__name__, str(exc)]}))
