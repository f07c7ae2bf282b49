"""The client side of the wire: everything that talks to a XAPI pool, real or simulated.

``wire`` encodes requests and decodes replies (XML-RPC through ``xmlrpc_reply``, and JSON-RPC;
no I/O), ``connection`` knows how to reach a host (URLs, TLS, HTTP/HTTPS/Unix-socket pools),
``transport`` carries calls to one host, ``exception`` holds every error raised here (XAPI's own,
in ``failures``), and ``XenAPI`` is a drop-in for the official SDK's module.

``session`` is ``XenAPISession``, os-xenapi 0.3.4's session rebuilt on those: its pool of XAPI
sessions (``session_pool``), the master and failover (``master``), the retry policy (``retry``),
plugin calls (``plugin_calls``), ``session.VM``-style helpers (``objects``) and connections for
XAPI's HTTP handlers (``direct_http``). ``tasks`` runs Async calls to their end; ``events``
watches ``event.from`` and keeps an object cache. This package never imports
``os_xenapi.simulator``: the two meet only on the wire.
"""
