"""The client side of the wire: everything that talks to a XAPI pool, real or simulated.

``wire`` encodes requests and decodes replies (XML-RPC through ``xmlrpc_reply``, and JSON-RPC;
no I/O), ``connection`` knows how to reach a host (URLs, TLS, HTTP/HTTPS/Unix-socket pools),
``transport`` carries calls to one host, ``exception`` holds every error raised here (XAPI's own,
in ``failures``), and ``XenAPI`` is a drop-in for the official SDK's module. This package never
imports ``os_xenapi.simulator``: the two meet only on the wire.
"""
