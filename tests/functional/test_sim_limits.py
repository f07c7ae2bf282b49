"""What one client can make the simulator hold: sessions (XAPI's caps), connections (timeouts for
idle and slow ones) and request bodies (too deep or too large a value gets XAPI's answer)."""

from __future__ import annotations

import asyncio
import xmlrpc.client

import pytest

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.values import DateTime

LONG_AGO = DateTime("20200101T00:00:00Z")


@pytest.fixture(scope="module")
def sim():
    with Simulator(auth_failure_delay=0) as running:
        yield running


def login(proxy: xmlrpc.client.ServerProxy, sim: Simulator, originator: str,
          user: str | None = None) -> str:
    reply = proxy.session.login_with_password(user or sim.username, sim.password, "1.0",
                                              originator)
    assert reply["Status"] == "Success", reply
    return reply["Value"]


def logins(sim: Simulator, originator: str, count: int, user: str | None = None) -> list[str]:
    """``count`` logins made on the simulator's loop in one go (the wire is tested by login())."""
    async def many() -> list[str]:
        return [await sim.xapi.call("session.login_with_password",
                                    [user or sim.username, sim.password, "1.0", originator])
                for _ in range(count)]
    return asyncio.run_coroutine_threadsafe(many(), sim.loop).result(timeout=60)


def alive(sim: Simulator, refs: list[str]) -> list[bool]:
    return sim.run(lambda xapi: [xapi.db.exists("session", ref) for ref in refs])


def call_status(proxy: xmlrpc.client.ServerProxy, session: str) -> list[str] | str:
    reply = proxy.pool.get_all(session)
    return reply["Status"] if reply["Status"] == "Success" else reply["ErrorDescription"]


def age(sim: Simulator, refs: list[str]) -> None:
    """Make ``refs`` last active long ago, as if idle for years."""
    def set_old(xapi):
        for ref in refs:
            xapi.db.tables["session"][ref]["last_active"] = LONG_AGO
    sim.run(set_old)


# -- sessions -----------------------------------------------------------------------------------


def test_the_501st_session_of_an_originator_ends_the_oldest(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    sessions = logins(sim, "flood", 500)
    assert all(alive(sim, sessions))
    newest = login(proxy, sim, "flood")
    assert alive(sim, sessions + [newest]) == [False] + [True] * 500
    assert call_status(proxy, sessions[0]) == ["SESSION_INVALID", sessions[0]]
    assert call_status(proxy, newest) == "Success"


def test_the_least_recently_active_session_goes_first(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    sessions = logins(sim, "busy", 500)
    age(sim, sessions)
    assert call_status(proxy, sessions[0]) == "Success"  # the first login is in use again
    login(proxy, sim, "busy")
    assert alive(sim, sessions[:3]) == [True, False, True]


def test_originators_are_counted_apart(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    other = login(proxy, sim, "quiet")
    logins(sim, "noisy", 501)
    assert alive(sim, [other]) == [True]


def test_a_session_with_a_pending_task_is_kept(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    working = login(proxy, sim, "worker")
    assert proxy.task.create(working, "long job", "")["Status"] == "Success"
    idle = login(proxy, sim, "worker")
    logins(sim, "worker", 500)  # 501 unused sessions now: one too many
    assert alive(sim, [working, idle]) == [True, False]


def test_root_sessions_without_an_originator_are_capped_at_400(sim: Simulator) -> None:
    proxy = xmlrpc.client.ServerProxy(sim.url)
    sessions = [login(proxy, sim, "")] + logins(sim, "", 400)
    assert alive(sim, sessions[:2]) == [False, True]
    counted = sim.run(lambda xapi: sum(
        1 for record in xapi.db.all("session").values()
        if record["originator"] == "" and not record["pool"]))
    assert counted == 400


def test_sessions_of_another_user_are_capped_per_user_name() -> None:
    with Simulator(username="alice", password="pw", auth_failure_delay=0) as sim:
        proxy = xmlrpc.client.ServerProxy(sim.url)
        first = login(proxy, sim, "tool-0")
        for index in range(500):
            logins(sim, f"tool-{index + 1}", 1)  # other originators, the same user
        assert alive(sim, [first]) == [False]
