"""XenAPISession when its sessions die more than once: a session invalidated again right after
its re-login (another expiry, a XAPI restart), the re-login budget, every caller of a pool whose
sessions all die at once, and the accounting that lets a soak match each expiry to a re-login or
a logout. Real sessions, destroyed on the simulator, over real sockets.

To put an expiry between a re-login and the call sent again, the second call of the method waits
in the simulator (a latency fault) and the test expires the new session meanwhile; the wait is
only the window, the test goes on as soon as the call is seen to be held.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from os_xenapi.client import exception
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

ORIGINATOR = "relogin-tests"
QUICK = Retry(backoff=0.0, wait=0.01)
HOLD = 1.0  # seconds a held call waits in the simulator: the window for the test's expiry
SEEN = 20.0  # seconds to wait for a held call to reach the simulator before failing


def server_sessions(sim: Simulator) -> list[str]:
    return sim.run(lambda xapi: [ref for ref, s in xapi.db.all("session").items()
                                 if s["originator"] == ORIGINATOR])


class Caller(threading.Thread):
    """Runs one call in its own thread, keeping its result or its error."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self._call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test by outcome()
            self.error = exc

    def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; fail if the call ended or SEEN seconds passed."""
        deadline = time.monotonic() + SEEN
        while not condition():
            assert self.is_alive(), f"the call ended before it was held: {self.error!r}"
            assert time.monotonic() < deadline, "the call never reached the simulator"
            self.join(0.005)

    def outcome(self) -> Any:
        self.join(SEEN)
        assert not self.is_alive(), "the call did not return"
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=1, vms=1, auth_failure_delay=0) as simulator:
        yield simulator


@pytest.fixture
def connect(sim: Simulator) -> Iterator[Callable[..., XenAPISession]]:
    """Makes sessions to ``sim``; closes them and checks that none is left on the server."""
    made: list[XenAPISession] = []

    def make(**options: Any) -> XenAPISession:
        options.setdefault("retry", QUICK)
        session = XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR, **options)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()
    assert server_sessions(sim) == []


def a_vm(session: XenAPISession) -> str:
    return next(ref for ref, vm in session.VM.get_all_records().items()
                if not vm["is_a_template"] and not vm["is_control_domain"])


def hold_the_resent_call(sim: Simulator, method: str) -> Fault:
    """Hold the second call of ``method`` (the one sent again after a re-login) for HOLD s."""
    return sim.faults.add(Fault.latency(method, HOLD, nth=2))


# --------------------------------------------------------------------------- invalidated again


def test_a_read_whose_new_session_expires_before_it_runs_logs_in_once_more(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    vm = a_vm(session)
    [first] = server_sessions(sim)
    sim.expire_session(first)
    held = hold_the_resent_call(sim, "VM.get_power_state")
    caller = Caller(lambda: session.VM.get_power_state(vm))
    caller.start()
    caller.wait_until(lambda: held.calls == 2)
    [second] = server_sessions(sim)  # the re-login's session, whose call is held
    sim.expire_session(second)
    assert caller.is_alive(), "the held call ran before the test could expire its session"
    assert caller.outcome() == "Halted"
    assert held.calls == 3  # sent once per session: first, second, third
    [third] = server_sessions(sim)
    assert third not in (first, second)
    assert session.stats.relogins == 2


def test_a_write_whose_new_session_expires_before_it_runs_is_sent_on_a_third_session(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    pool = session.pool.get_all()[0]
    [first] = server_sessions(sim)
    sim.expire_session(first)
    held = hold_the_resent_call(sim, "pool.set_name_label")
    caller = Caller(lambda: session.pool.set_name_label(pool, "set once"))
    caller.start()
    caller.wait_until(lambda: held.calls == 2)
    [second] = server_sessions(sim)
    sim.expire_session(second)
    assert caller.is_alive(), "the held call ran before the test could expire its session"
    caller.outcome()  # XAPI ran none of the refused calls, so sending it again was safe
    assert sim.run(lambda xapi: xapi.db.get("pool", xapi.pool)["name_label"]) == "set once"
    assert session.stats.relogins == 2


@pytest.mark.parametrize("hosts", [1, 2])
def test_a_xapi_restart_right_after_a_re_login_is_survived_by_a_read(hosts: int) -> None:
    # The restart cuts the held call's connection and forgets every session: the read is sent
    # again (the connection broke), meets SESSION_INVALID a second time, and logs in again.
    # Failover rounds 0.25 s, 0.5 s apart (the same host again in a pool of one, the other hosts
    # too in a pool of two) leave the restart time to open the port again.
    with Simulator(hosts=hosts, vms=1, auth_failure_delay=0) as pool:
        with XenAPISession(pool.url, pool.username, pool.password, ORIGINATOR,
                           retry=Retry(backoff=0.0, wait=0.25)) as session:
            [first] = server_sessions(pool)
            pool.expire_session(first)
            held = hold_the_resent_call(pool, "VM.get_all")
            caller = Caller(session.VM.get_all)
            caller.start()
            caller.wait_until(lambda: held.calls == 2)
            pool.restart()
            assert caller.outcome()
            assert session.stats.relogins == 2
            assert len(server_sessions(pool)) == 1
        assert server_sessions(pool) == []


# --------------------------------------------------------------------------- the budget


def test_re_logins_stop_at_the_policy_budget_and_the_last_refusal_is_raised(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(retry=Retry(relogins=2, backoff=0.0))
    refused = sim.faults.add(Fault.fail("VM.get_all", "SESSION_INVALID", "OpaqueRef:x", times=3))
    with pytest.raises(exception.SessionInvalid):
        session.VM.get_all()
    assert (refused.calls, refused.hits) == (3, 3)  # the first session, then two re-logins
    assert session.stats.relogins == 2
    # The fault only pretended the sessions were dead; the client forgot them as dead ones (a
    # logout cannot end what XAPI says does not exist), so remove them for the leak check.
    orphans = server_sessions(sim)
    assert len(orphans) == 3
    sim.run(lambda xapi: [xapi.db.destroy("session", ref) for ref in orphans])
    assert session.VM.get_all()  # the pool's slot was given back


def test_a_session_refused_as_often_as_the_budget_allows_still_answers(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(retry=Retry(relogins=2, backoff=0.0))
    sim.faults.add(Fault.fail("VM.get_all", "SESSION_INVALID", "OpaqueRef:x", times=2))
    assert session.VM.get_all()
    assert session.stats.relogins == 2
    orphans = [ref for ref in server_sessions(sim) if ref != session.get_session_id()]
    assert len(orphans) == 2
    sim.run(lambda xapi: [xapi.db.destroy("session", ref) for ref in orphans])


def test_a_read_meeting_every_kind_of_trouble_in_one_call_answers_while_each_budget_lasts(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(retry=Retry(reads=2, relogins=2, too_many_pending_tasks=2, failovers=0,
                                  backoff=0.0, wait=0.0))
    troubles = [Fault.drop("VM.get_all", nth=1),
                Fault.fail("VM.get_all", "SESSION_INVALID", "OpaqueRef:x", nth=2),
                Fault.fail("VM.get_all", "TOO_MANY_PENDING_TASKS", nth=3),
                Fault.drop("VM.get_all", after=True, nth=4),
                Fault.fail("VM.get_all", "SESSION_INVALID", "OpaqueRef:x", nth=5),
                Fault.fail("VM.get_all", "TOO_MANY_PENDING_TASKS", nth=6)]
    for trouble in troubles:
        sim.faults.add(trouble)
    assert session.VM.get_all()  # the seventh try
    sim.faults.assert_all_hit()
    stats = session.stats
    assert (stats.read_retries, stats.relogins, stats.pending_retries) == (2, 2, 2)
    orphans = [ref for ref in server_sessions(sim) if ref != session.get_session_id()]
    assert len(orphans) == 2  # the two the faults pretended were dead
    sim.run(lambda xapi: [xapi.db.destroy("session", ref) for ref in orphans])


def test_a_re_login_whose_login_loses_its_connection_logs_in_again_in_the_same_slot(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(concurrent=1)
    [dead] = server_sessions(sim)
    sim.expire_session(dead)
    dropped = sim.faults.add(Fault.drop("session.login_with_password", nth=1))
    assert session.VM.get_all()
    assert dropped.hits == 1
    stats = session.stats
    assert (stats.relogins, stats.logins) == (1, 2)  # the lost login made no session
    assert len(server_sessions(sim)) == 1


def test_re_logins_after_the_first_wait_the_backoff() -> None:
    policy = Retry(backoff=0.5, backoff_max=1.5)
    assert [policy.relogin_pause(n) for n in (1, 2, 3, 4)] == [0.0, 0.5, 1.0, 1.5]
    assert Retry().relogins >= 2
    assert Retry.never().relogins == 1  # 0.3.4's one re-login even when nothing else repeats


def test_a_bad_relogin_budget_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="Retry.relogins"):
        Retry(relogins=-1)


# --------------------------------------------------------------------------- many callers at once


def test_callers_whose_sessions_all_die_at_once_make_one_login_per_dead_session(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    # Each of the pool's sessions is lent to one caller at a time, so the callers holding a dead
    # session are one per session: four dead sessions, four re-logins, never more.
    session = connect(concurrent=4)
    held = sim.faults.add(Fault.latency("VM.get_all", HOLD, times=4))
    barrier = threading.Barrier(4)
    callers = [Caller(lambda: (barrier.wait(SEEN), session.VM.get_all())[1]) for _ in range(4)]
    for caller in callers:
        caller.start()
    callers[0].wait_until(lambda: held.calls == 4)
    dead = sim.expire_sessions()
    assert len(dead) == 4
    assert all(caller.is_alive() for caller in callers), "a held call ran before the expiry"
    for caller in callers:
        assert caller.outcome()
    stats = session.stats
    assert stats.relogins == 4
    assert stats.logins == 8
    assert len(server_sessions(sim)) == 4


# --------------------------------------------------------------------------- accounting


def test_an_idle_session_that_expired_is_counted_when_close_logs_it_out(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    [dead] = server_sessions(sim)
    sim.expire_session(dead)
    session.close()
    stats = session.stats
    assert (stats.logouts, stats.expired_at_logout, stats.relogins) == (0, 1, 0)


def test_every_expiry_is_matched_by_a_re_login_or_a_logout(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(concurrent=3)
    barrier = threading.Barrier(3)
    sim.faults.add(Fault.latency("pool.get_all", 0.2, times=3))
    callers = [Caller(lambda: (barrier.wait(SEEN), session.pool.get_all())[1]) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.outcome()
    expired = sim.expire_sessions()  # three idle sessions
    assert session.VM.get_all()  # takes one of them: one re-login
    session.close()  # logs out the fresh one, finds the other two gone
    stats = session.stats
    assert len(expired) == 3
    assert stats.relogins + stats.expired_at_logout == 3
    assert (stats.relogins, stats.logouts) == (1, 1)
