"""The client side of the wire: everything that talks to a XAPI pool, real or simulated.

``wire`` encodes and decodes XML-RPC and JSON-RPC (no I/O), ``transport`` carries calls to one
host over HTTP, HTTPS or the dom0 Unix socket, ``exception`` holds every error raised here, and
``XenAPI`` is a drop-in for the official SDK's module. This package never imports
``os_xenapi.simulator``: the two meet only on the wire.
"""
