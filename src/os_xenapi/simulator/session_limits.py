"""XAPI's caps on sessions, so that a client that logs in without ever logging out cannot fill
the simulator's memory.

XAPI's database GC (``db_gc_util.ml`` ``timeout_sessions``, every 30 s) sorts the sessions into
groups and keeps at most a limit of the *unused* sessions of each (those with no pending task),
destroying the least recently active ones first (``timeout_sessions_common``):

* pool (host-to-host) sessions: one group, ``max_sessions`` = 400;
* sessions of ``root`` (or of no user name) with no originator: one group, 400;
* other sessions of ``root``: one group per ``originator``, ``max_sessions_per_originator`` = 500;
* sessions of any other user: one group per user name, ``max_sessions_per_user_name`` = 500.

The simulator applies the same rule at each login, to the new session's group, rather than at the
next sweep: the cap then holds at every moment instead of 30 s later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .xapi import Xapi

MAX_SESSIONS = 400  # xapi_globs.ml: max_tasks * 2, for pool sessions and anonymous root ones
MAX_SESSIONS_PER_ORIGINATOR = 500
MAX_SESSIONS_PER_USER_NAME = 500
_ROOT_NAMES = ("", "root")

Group = tuple[str, str]  # (kind, name): ("internal" | "external" | "originator" | "username", ...)


def group_of(record: dict[str, Any]) -> tuple[Group, int]:
    """The group a session record counts in, and that group's limit (as ``timeout_sessions``)."""
    if record["pool"]:
        return ("internal", ""), MAX_SESSIONS
    if record["auth_user_name"] in _ROOT_NAMES:
        if record["originator"] == "":
            return ("external", ""), MAX_SESSIONS
        return ("originator", record["originator"]), MAX_SESSIONS_PER_ORIGINATOR
    return ("username", record["auth_user_name"]), MAX_SESSIONS_PER_USER_NAME


class SessionLimits:
    """Which sessions belong to which group, kept as logins happen, and the cap applied to them."""

    def __init__(self, xapi: Xapi) -> None:
        self.xapi = xapi
        # Refs in login order; refs of sessions destroyed since are dropped when next looked at.
        self._groups: dict[Group, list[str]] = {}

    def admit(self, ref: str) -> list[str]:
        """Count the new session ``ref``; destroy the least recently active unused sessions of
        its group beyond the group's limit. Returns the refs destroyed."""
        sessions = self.xapi.db.tables["session"]
        group, limit = group_of(sessions[ref])
        members = [r for r in self._groups.get(group, ()) if r in sessions]
        members.append(ref)
        self._groups[group] = members
        if len(members) <= limit:
            return []
        busy = self.xapi.tasks.sessions_with_pending_tasks()
        unused = [r for r in members if r not in busy]
        overflow = len(unused) - limit
        if overflow <= 0:
            return []
        # Stable sort: among sessions last active in the same second, the older login goes first.
        doomed = sorted(unused, key=lambda r: sessions[r]["last_active"])[:overflow]
        for victim in doomed:
            self.xapi.local_sessions.discard(victim)
            self.xapi.db.destroy("session", victim)
        gone = set(doomed)
        self._groups[group] = [r for r in members if r not in gone]
        return doomed

    def prune(self) -> None:
        """Drop the refs of sessions gone since (logged out, expired, a restart) from the index."""
        sessions = self.xapi.db.tables["session"]
        for group, members in list(self._groups.items()):
            alive = [r for r in members if r in sessions]
            if alive:
                self._groups[group] = alive
            else:
                del self._groups[group]
