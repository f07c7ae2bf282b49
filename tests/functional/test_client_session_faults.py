"""XenAPISession under the simulator's faults, over real sockets: dropped connections (reads sent
again, writes never), expired sessions, a moved or unreachable master, slow calls, an overloaded
XAPI, failing calls, many threads, and close(). Every test ends with no session of the client
left on the server; faults check how often the call reached the wire."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from os_xenapi.client import exception
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.client.transport import Timeout
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

ORIGINATOR = "fault-tests"
QUICK = Retry(backoff=0.0, wait=0.01)


def server_sessions(sim: Simulator) -> list[str]:
    return sim.run(lambda xapi: [ref for ref, s in xapi.db.all("session").items()
                                 if s["originator"] == ORIGINATOR])


def pool_label(sim: Simulator) -> str:
    return sim.run(lambda xapi: xapi.db.get("pool", xapi.pool)["name_label"])


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=2, vms=1, auth_failure_delay=0) as simulator:
        yield simulator


@pytest.fixture
def connect(sim: Simulator) -> Iterator[Callable[..., XenAPISession]]:
    """Makes sessions to ``sim`` (the master by default); closes them and checks for leaks."""
    made: list[XenAPISession] = []

    def make(url: str | None = None, **options: Any) -> XenAPISession:
        options.setdefault("retry", QUICK)
        session = XenAPISession(url or sim.url, sim.username, sim.password, ORIGINATOR,
                                **options)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()
    assert server_sessions(sim) == []


# --------------------------------------------------------------------------- dropped connections


@pytest.mark.parametrize("after", [False, True], ids=["before-it-ran", "after-it-ran"])
def test_a_read_whose_connection_drops_is_sent_again(
    sim: Simulator, connect: Callable[..., XenAPISession], after: bool
) -> None:
    session = connect()
    fault = sim.faults.add(Fault.drop("VM.get_all", after=after, nth=1))
    assert session.call_xenapi("VM.get_all")
    assert (fault.calls, fault.hits) == (2, 1)
    assert session.stats.read_retries == 1


def test_a_write_that_ran_before_its_connection_dropped_is_not_repeated(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    template = session.VM.get_by_name_label("Debian Bookworm 12")[0]
    fault = sim.faults.add(Fault.drop("VM.clone", after=True, nth=1))
    with pytest.raises(exception.ConnectionLost, match="may have run.*did not send VM.clone "
                                                       "again") as lost:
        session.VM.clone(template, "cloned once")
    assert lost.value.may_have_executed
    assert (fault.calls, fault.hits) == (1, 1)
    assert len(session.VM.get_by_name_label("cloned once")) == 1


def test_a_write_dropped_before_it_ran_is_not_repeated_either(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    pool = session.pool.get_all()[0]
    fault = sim.faults.add(Fault.drop("pool.set_name_label", nth=1))
    with pytest.raises(exception.ConnectionLost, match="changes state"):
        session.pool.set_name_label(pool, "changed")
    assert fault.calls == 1
    assert pool_label(sim) == ""


def test_a_read_that_keeps_losing_its_connection_gives_up_after_the_policy(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(retry=Retry(reads=2, backoff=0.0))
    fault = sim.faults.add(Fault.drop("host.get_all"))
    with pytest.raises(exception.ConnectionLost):
        session.host.get_all()
    assert fault.calls == 3
    sim.faults.remove(fault.id)
    assert session.host.get_all()  # the session went back to the pool


def test_a_proxy_error_on_a_read_is_retried(sim: Simulator,
                                            connect: Callable[..., XenAPISession]) -> None:
    session = connect()
    fault = sim.faults.add(Fault.http_status("VM.get_all", 503, nth=1))
    assert session.VM.get_all()
    assert fault.calls == 2


# --------------------------------------------------------------------------- expired sessions


def test_an_expired_session_is_replaced_by_one_login_and_not_leaked(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    [dead] = server_sessions(sim)
    sim.expire_session(dead)
    assert session.VM.get_all()
    assert session.stats.relogins == 1
    [fresh] = server_sessions(sim)
    assert fresh != dead
    assert session.get_session_id() == fresh


def test_every_expired_session_of_the_pool_is_replaced_in_its_own_call(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(concurrent=3)
    barrier = threading.Barrier(3)
    sim.faults.add(Fault.latency("pool.get_all", 0.3, times=3))
    threads = [threading.Thread(target=lambda: (barrier.wait(10), session.pool.get_all()))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(server_sessions(sim)) == 3
    sim.expire_sessions()
    for _ in range(3):
        assert session.host.get_all()
    assert len(server_sessions(sim)) == 1  # three dead ones dropped, one login in their place
    assert session.stats.relogins == 1


def test_a_session_refused_again_after_the_new_login_is_raised(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    fault = sim.faults.add(Fault.fail("VM.get_all", "SESSION_INVALID", "OpaqueRef:x", times=2))
    with pytest.raises(exception.SessionInvalid):
        session.VM.get_all()
    assert fault.hits == 2
    assert session.stats.relogins == 1
    # Both refused sessions left the pool unlogged-out, as dead ones must; the fault had only
    # pretended they were dead, so the server still has them: remove them for the leak check.
    orphans = server_sessions(sim)
    assert len(orphans) == 2
    sim.run(lambda xapi: [xapi.db.destroy("session", ref) for ref in orphans])


def test_a_restarted_xapi_is_reconnected_transparently(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    sim.restart()
    assert session.VM.get_all()
    assert session.stats.relogins == 1


# --------------------------------------------------------------------------- the master


def test_host_is_slave_at_login_is_followed_to_the_master(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(sim.urls[1])
    assert session.is_slave is True
    assert session.master_url == sim.urls[0]
    assert session.host_ref == sim.run(lambda xapi: xapi.host_by_address(sim.addresses[1]))
    assert session.stats.redirects == 1


def test_a_master_moved_after_connecting_is_followed_on_the_next_call(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    sim.move_master(1)
    pool = session.pool.get_all()[0]
    session.pool.set_name_label(pool, "after the move")  # a write: sent once, at the master
    assert pool_label(sim) == "after the move"
    assert session.master_url == sim.urls[1]
    assert session.stats.redirects == 1


def test_an_unreachable_master_is_found_again_among_the_pool_hosts() -> None:
    with Simulator(hosts=3, auth_failure_delay=0) as sim:
        session = XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR, retry=QUICK)
        try:
            session.pool.get_all()
            sim.move_master(2)
            sim.set_host_reachable(0, False)
            assert session.host.get_all()
            assert session.master_url == sim.urls[2]
            assert session.stats.failovers == 1
            assert len(server_sessions(sim)) == 1  # the probe sessions were logged out
        finally:
            session.close()
        assert server_sessions(sim) == []


def test_no_master_to_be_found_raises_master_not_found(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(retry=Retry(failovers=2, wait=0.01))
    sim.set_host_reachable(0, False)  # the member still names host 0 as its master
    with pytest.raises(exception.MasterNotFound, match="127.0.0.2") as missing:
        session.VM.get_all()
    assert missing.value.may_have_executed is False
    assert session.stats.failovers == 2
    sim.set_host_reachable(0, True)
    assert session.VM.get_all()  # and it works again once the master is back


# --------------------------------------------------------------------------- slow and overloaded


def test_a_call_slower_than_the_read_timeout_times_out_and_is_not_repeated(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    fault = sim.faults.add(Fault.latency("VM.get_all", 1.0, nth=1))
    with pytest.raises(exception.ReadTimeout, match="within 0.2 s"):
        session.call_xenapi("VM.get_all", timeout=0.2)
    assert fault.calls == 1
    assert session.VM.get_all()  # the session and the transport are still good


def test_the_session_timeout_applies_to_every_call(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    # No plugin check: a plugin's process can take longer than 0.2 s to start on a busy machine.
    session = connect(timeout=Timeout(connect=2, read=0.2), plugin_version_check=False)
    sim.faults.add(Fault.latency("pool.get_all", 1.0, nth=1))
    with pytest.raises(exception.ReadTimeout):
        session.pool.get_all()


def test_too_many_pending_tasks_is_retried_after_a_pause(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect()
    pool = session.pool.get_all()[0]
    fault = sim.faults.add(Fault.fail("pool.set_name_label", "TOO_MANY_PENDING_TASKS", times=2))
    session.pool.set_name_label(pool, "third time")
    assert (fault.calls, fault.hits) == (3, 2)
    assert pool_label(sim) == "third time"
    assert session.stats.pending_retries == 2


def test_too_many_pending_tasks_beyond_the_policy_is_raised(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(retry=Retry(too_many_pending_tasks=1, wait=0.01))
    fault = sim.faults.add(Fault.fail("VM.get_all", "TOO_MANY_PENDING_TASKS"))
    with pytest.raises(exception.TooManyPendingTasks):
        session.VM.get_all()
    assert fault.calls == 2


# --------------------------------------------------------------------------- the pool under load


def test_sessions_go_back_to_the_pool_when_calls_fail(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(concurrent=1)
    sim.faults.add(Fault.drop("VBD.get_all"))
    for _ in range(10):
        with pytest.raises(exception.HandleInvalid):
            session.VM.get_record("OpaqueRef:gone")
        with pytest.raises(exception.ConnectionLost):
            session.VBD.get_all()
    assert session.VM.get_all()  # would wait for ever if a session had not come back
    assert len(server_sessions(sim)) == 1


def test_eight_threads_hammering_share_the_pool_safely(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(concurrent=3)
    vms = session.VM.get_all_records()
    expected = {ref: vm["uuid"] for ref, vm in vms.items()}
    refs = sorted(expected)
    errors: list[BaseException] = []

    def hammer(index: int) -> None:
        try:
            for step in range(40):
                ref = refs[(index + step) % len(refs)]
                assert session.VM.get_uuid(ref) == expected[ref]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert 1 <= len(server_sessions(sim)) <= 3
    assert session.stats.logins <= 3


def test_close_during_a_call_logs_that_session_out_when_the_call_returns(
    sim: Simulator, connect: Callable[..., XenAPISession]
) -> None:
    session = connect(concurrent=2)
    fault = sim.faults.add(Fault.latency("VM.get_all", 0.5, nth=1))
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(session.VM.get_all()))
    worker.start()
    while fault.calls == 0 and worker.is_alive():  # bounded by the worker's own call
        worker.join(0.01)
    session.close()
    worker.join(10)
    assert result and result[0]
    assert server_sessions(sim) == []


# --------------------------------------------------------------------------- the policy value


def test_reads_are_the_get_messages_and_event_from() -> None:
    for method in ("VM.get_record", "VM.get_all", "VM.get_all_records_where", "VM.get_by_uuid",
                   "host.get_software_version", "event.from"):
        assert Retry.is_read(method), method
    for method in ("VM.start", "VM.clone", "Async.VM.get_record", "task.create",
                   "VM.set_name_label", "session.logout", "event.inject"):
        assert not Retry.is_read(method), method


def test_pauses_start_at_once_for_reads_and_double_up_to_the_cap() -> None:
    policy = Retry(backoff=0.5, wait=2.0, backoff_max=5.0)
    assert [policy.read_pause(n) for n in (1, 2, 3, 4, 5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert [policy.wait_pause(n) for n in (1, 2, 3)] == [2.0, 4.0, 5.0]
    assert Retry.never().reads == Retry.never().too_many_pending_tasks == 0


def test_a_bad_policy_value_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="Retry.reads"):
        Retry(reads=-1)
    with pytest.raises(ValueError, match="Retry.wait"):
        Retry(wait="1")  # type: ignore[arg-type]
