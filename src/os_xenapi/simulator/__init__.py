"""A XAPI server for tests and demos: real clients talk to it over sockets.

``Simulator`` runs a simulated pool in a background thread; ``os-xenapi simulator`` runs one from
the command line.
"""

from .errors import ApiError
from .runner import Simulator

__all__ = ["ApiError", "Simulator"]
