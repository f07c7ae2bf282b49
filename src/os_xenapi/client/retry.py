"""When :class:`~os_xenapi.client.session.XenAPISession` repeats a call: a policy value.

    session = XenAPISession(url, user, pw, retry=Retry(reads=5, too_many_pending_tasks=10))
    session = XenAPISession(url, user, pw, retry=Retry.never())

A call is repeated only where that is safe:

* **any** call that XAPI refused with ``SESSION_INVALID`` (it did not run it): the session logs in
  again in place of the dead session and sends the call on the new one, up to ``relogins`` times
  in one call, since a new session can be invalidated again before the call reaches it (another
  expiry, a XAPI restart). The first re-login goes at once, later ones after ``backoff``,
  doubling, at most ``backoff_max`` seconds.

* a **read** (``*.get_*``, which covers ``get_record``, ``get_all*`` and ``get_by_*``, plus
  ``event.from``) whose connection broke after the request went out (so XAPI may or may not have
  answered it), or that met HTTP 502/503/504 from a proxy: up to ``reads`` more times. The first
  repeat goes at once (a broken kept-alive connection is the usual cause), later ones after
  ``backoff``, doubling, at most ``backoff_max`` seconds.
* **any** call that XAPI refused with ``TOO_MANY_PENDING_TASKS`` (it did not run it): up to
  ``too_many_pending_tasks`` more times, after ``wait`` seconds, doubling, at most ``backoff_max``.
* **any** call whose request certainly never left (refused connection, connect timeout): the
  session looks for the pool master among the hosts of the pool (it may have moved, see
  :mod:`.master`; in a pool of one, the same host again, as its XAPI may be restarting) and
  sends the call again, up to ``failovers`` times, rounds after the first ``wait`` seconds
  apart. Before the session ever connected (no host known: a wrong address, a closed port) the
  error is raised at once.

A call that changes state is never repeated after its request may have reached XAPI: the error
says it may have run. A read that timed out is not repeated either (XAPI is slow, not gone; a
second wait rarely helps). ``HOST_IS_SLAVE`` (go to the master, at most
:data:`~os_xenapi.client.master.MAX_REDIRECTS` times) is not counted here. Each budget is counted
on its own: a read that meets broken connections and dead sessions in one call keeps trying until
one of them runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

READ_METHODS = frozenset({"event.from", "system.listMethods"})


@dataclass(frozen=True)
class Retry:
    """How often, and after which pauses, a call may be repeated. Counts are repeats, not tries."""

    reads: int = 3
    too_many_pending_tasks: int = 5
    failovers: int = 3
    backoff: float = 0.25
    wait: float = 1.0
    backoff_max: float = 15.0
    relogins: int = 3  # as the official SDK; last, to keep positions

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "int":
                if type(value) is not int or value < 0:
                    raise ValueError(f"Retry.{item.name} must be a whole number >= 0, not {value!r}")
            elif type(value) not in (int, float) or not 0 <= value <= 3600:
                raise ValueError(f"Retry.{item.name} must be seconds in [0, 3600], not {value!r}")

    @classmethod
    def never(cls) -> Retry:
        """A policy that repeats nothing and looks for no new master; one re-login after
        ``SESSION_INVALID`` and the ``HOST_IS_SLAVE`` redirects still happen."""
        return cls(reads=0, too_many_pending_tasks=0, failovers=0, relogins=1)

    @staticmethod
    def is_read(method: str) -> bool:
        """Whether ``method`` only reads, so that sending it twice changes nothing."""
        if method.startswith("Async."):
            return False
        if method in READ_METHODS:
            return True
        return method.rpartition(".")[2].startswith("get_")

    def read_pause(self, repeat: int) -> float:
        """Seconds before repeat number ``repeat`` (1, 2, ...) of a read: 0 for the first."""
        if repeat <= 1:
            return 0.0
        return min(self.backoff_max, self.backoff * 2 ** (repeat - 2))

    def relogin_pause(self, relogin: int) -> float:
        """Seconds before re-login number ``relogin`` (1, 2, ...) of one call: 0 for the first."""
        return self.read_pause(relogin)

    def wait_pause(self, repeat: int) -> float:
        """Seconds before repeat ``repeat`` after TOO_MANY_PENDING_TASKS or a failover round."""
        return min(self.backoff_max, self.wait * 2 ** (max(repeat, 1) - 1))


DEFAULT_RETRY = Retry()
