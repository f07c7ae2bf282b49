"""Soak test of XenAPISession under faults, one run or the property made of many.

    .venv/bin/python bench/soak.py [--calls 20000] [--threads 8] [--seed 4]    # one run
    .venv/bin/python bench/soak.py --runs 20 [--calls 20000] [--first-seed 1]  # the property

One run: ``threads`` threads share one ``XenAPISession(concurrent=threads)`` against an
in-process ``Simulator(hosts=2, vms=20)`` and make ``calls`` calls between them, planned in
advance from a seeded random generator: 80% reads (``VM.get_record``, ``VM.get_all``,
``host.get_all``, ``VM.get_power_state``, ``SR.get_all``, ``VM.get_all_records_where``) and 20%
writes that leave a uniquely named trace on the server (``task.create`` with label ``soak-<n>``,
``VM.add_to_other_config`` with key ``soak-<n>``). Faults:

* 5% of the calls get their connection dropped: just before the call, a one-shot drop fault
  (before or after the call runs, at random) is put on its method, and removed after it. Faults
  match calls by method, so that call runs alone among the calls of its method (a
  :class:`FaultGate`): the fault acts on it and on no other thread's call;
* 1% of the calls are preceded by the expiry of one of the client's sessions on the server, any
  of them: idle, in another thread's hands, or just made by a re-login;
* once, half way, the pool master moves to the other host.

Then it checks that no read failed, that no write ran twice (each trace is on the server at
most once, and present for every write that reported success), that any other error is absent,
that after ``close()`` the server holds no session of the client, and that every expiry is
matched by a re-login or by a logout that found the session gone.

The property (``--runs``, and ``make bench`` through :func:`run`) is that all of this holds in
every one of 20 runs with different seeds and thread counts (1, 2, 4, 8, 16 in turn); it prints
one line per run and exits non-zero if any run failed. ``tests/functional/test_client_soak.py``
runs a short form of it in ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from os_xenapi.client import exception
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.control import ControlError
from os_xenapi.simulator.faults import Fault

ORIGINATOR = "os-xenapi-soak"
READ_SHARE, DROP_SHARE, EXPIRE_SHARE = 0.80, 0.05, 0.01
READS = ("VM.get_record", "VM.get_all", "host.get_all", "VM.get_power_state", "SR.get_all",
         "VM.get_all_records_where")
WRITES = ("task.create", "VM.add_to_other_config")
THREADS = (1, 2, 4, 8, 16)  # the property's thread counts, one run after the other
RUNS, CALLS, QUICK_CALLS = 20, 20_000, 2_000
JOIN = 3600.0  # seconds to wait for a thread at the end of a run (it is a finding if it is left)


@dataclass
class Step:
    """One planned call and the faults that go with it."""

    index: int
    method: str
    drop: str | None = None  # None, "before" or "after"
    expire: bool = False
    move_master: bool = False


@dataclass
class Outcome:
    """What the threads saw, filled in under a lock."""

    ok: Counter = field(default_factory=Counter)
    written: set[str] = field(default_factory=set)  # traces of writes that reported success
    maybe: set[str] = field(default_factory=set)  # traces of writes that may have run
    failed_reads: list[str] = field(default_factory=list)
    other_errors: list[str] = field(default_factory=list)
    drops_injected: int = 0
    drop_hits: int = 0
    expiries: int = 0


@dataclass
class SoakResult:
    """The figures of one run, and what they say about the checks."""

    seed: int
    threads: int
    calls: int
    seconds: float
    failed_reads: list[str]
    other_errors: list[str]
    reads_ok: int
    writes_ok: int
    maybe: int
    maybe_ran: int
    traces: int
    repeated: int
    missing: int
    unexplained: int
    leaked: int
    expiries: int
    relogins: int
    logins: int
    logouts: int
    expired_at_logout: int
    drops_injected: int
    drop_hits: int
    read_retries: int
    redirects: int
    master_changes: int
    failovers: int
    master_followed: bool
    threads_left: int

    @property
    def checks(self) -> dict[str, bool]:
        return {
            "no failed read": not self.failed_reads,
            "no repeated write": not self.repeated,
            "every successful write on the server once": not self.missing and not self.unexplained,
            "no other error": not self.other_errors,
            "no leaked session": not self.leaked,
            "every expiry matched by a re-login or a logout":
                self.expiries == self.relogins + self.expired_at_logout,
            "master moved and followed": self.master_followed,
            "every thread finished": not self.threads_left,
            "every planned drop acted, on its own call": self.drop_hits == self.drops_injected,
        }

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def report(self) -> str:
        """The run's figures and checks, as the one-run command prints them."""
        lines = [
            f"soak: {self.calls} calls by {self.threads} threads in {self.seconds:.1f} s "
            f"({self.calls / max(self.seconds, 1e-9):.0f} calls/s), seed {self.seed}",
            f"  reads ok {self.reads_ok}, failed {len(self.failed_reads)}",
            f"  writes ok {self.writes_ok}, reported 'may have run' {self.maybe} (of which ran: "
            f"{self.maybe_ran}, did not: {self.maybe - self.maybe_ran}), traces on the server "
            f"{self.traces}, repeated {self.repeated}",
            f"  connection drops injected {self.drops_injected}, acted {self.drop_hits}; reads "
            f"sent again {self.read_retries}",
            f"  sessions expired {self.expiries}, re-logins {self.relogins}, logouts that found "
            f"the session expired {self.expired_at_logout}; logins {self.logins}, logouts "
            f"{self.logouts}, sessions left on the server {self.leaked}",
            f"  master moves followed: redirects {self.redirects}, master changes "
            f"{self.master_changes}, failovers {self.failovers}",
        ]
        lines += [f"  [{'ok' if ok else 'FAILED'}] {name}" for name, ok in self.checks.items()]
        lines += [f"    {line}" for line in (self.failed_reads + self.other_errors)[:10]]
        return "\n".join(lines)


class FaultGate:
    """Lets a call that carries a planned fault run alone among the calls of its method.

    Without it, another thread's call of the same method can meet the fault first, and one call
    can meet several threads' faults in a row: more drops than planned, on calls nobody chose.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running: Counter = Counter()  # calls in progress, by method
        self._wanted: Counter = Counter()  # calls waiting to run alone, by method
        self._alone: set[str] = set()

    @contextlib.contextmanager
    def shared(self, method: str) -> Iterator[None]:
        """Around a call without a fault: waits while a faulted call of ``method`` runs or waits."""
        with self._cond:
            while method in self._alone or self._wanted[method]:
                self._cond.wait()
            self._running[method] += 1
        try:
            yield
        finally:
            with self._cond:
                self._running[method] -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def alone(self, method: str) -> Iterator[None]:
        """Around a call with a fault: no other call of ``method`` runs meanwhile."""
        with self._cond:
            self._wanted[method] += 1
            while method in self._alone or self._running[method]:
                self._cond.wait()
            self._wanted[method] -= 1
            self._alone.add(method)
        try:
            yield
        finally:
            with self._cond:
                self._alone.discard(method)
                self._cond.notify_all()


def plan(calls: int, seed: int, drop_share: float = DROP_SHARE,
         expire_share: float = EXPIRE_SHARE) -> list[Step]:
    rng = random.Random(seed)
    steps = []
    for index in range(calls):
        method = rng.choice(READS) if rng.random() < READ_SHARE else rng.choice(WRITES)
        drop = rng.choice(("before", "after")) if rng.random() < drop_share else None
        steps.append(Step(index, method, drop, rng.random() < expire_share,
                          move_master=index == calls // 2))
    return steps


def arguments(step: Step, vms: list[str], sr: str) -> tuple[Any, ...]:
    vm = vms[step.index % len(vms)]
    trace = f"soak-{step.index}"
    return {
        "VM.get_record": (vm,), "VM.get_all": (), "host.get_all": (),
        "VM.get_power_state": (vm,), "SR.get_all": (),
        "VM.get_all_records_where": (f'field "uuid" = "{sr}"',),
        "task.create": (trace, "soak"), "VM.add_to_other_config": (vm, trace, "1"),
    }[step.method]


def our_sessions(sim: Simulator) -> list[str]:
    return sim.run(lambda xapi: [ref for ref, s in xapi.db.all("session").items()
                                 if s["originator"] == ORIGINATOR])


def worker(sim: Simulator, session: XenAPISession, steps: list[Step], vms: list[str], sr: str,
           outcome: Outcome, lock: threading.Lock, gate: FaultGate, rng: random.Random) -> None:
    for step in steps:
        if step.move_master:
            sim.move_master(1)
        if step.expire:
            ours = our_sessions(sim)
            if ours:
                try:
                    sim.expire_session(rng.choice(ours))
                    with lock:
                        outcome.expiries += 1
                except ControlError:
                    pass  # already gone (expired by another thread, or logged out)
        with gate.alone(step.method) if step.drop else gate.shared(step.method):
            call(sim, session, step, vms, sr, outcome, lock)


def call(sim: Simulator, session: XenAPISession, step: Step, vms: list[str], sr: str,
         outcome: Outcome, lock: threading.Lock) -> None:
    """The step's call, with its drop fault if it has one; what it gave is noted in ``outcome``."""
    fault = None
    if step.drop:
        fault = sim.faults.add(Fault.drop(step.method, after=step.drop == "after", times=1))
    trace = f"soak-{step.index}"
    is_write = step.method in WRITES
    try:
        session.call_xenapi(step.method, *arguments(step, vms, sr))
    except exception.ConnectionLost as exc:
        with lock:
            if is_write:
                outcome.maybe.add(trace)
            else:
                outcome.failed_reads.append(f"{step.method}: {exc}")
    except Exception as exc:  # noqa: BLE001 - every other error is a finding
        with lock:
            target = outcome.other_errors if is_write else outcome.failed_reads
            target.append(f"{step.method}: {type(exc).__name__}: {exc}")
    else:
        with lock:
            outcome.ok[step.method] += 1
            if is_write:
                outcome.written.add(trace)
    finally:
        if fault is not None:
            try:
                sim.faults.remove(fault.id)
            except LookupError:
                pass
            with lock:
                outcome.drops_injected += 1
                outcome.drop_hits += fault.hits


def traces_on_server(sim: Simulator) -> Counter:
    """How many times each ``soak-<n>`` trace is on the server (tasks and other_config keys)."""

    def collect(xapi: Any) -> Counter:
        found: Counter = Counter()
        for task in xapi.db.all("task").values():
            if task["name_label"].startswith("soak-"):
                found[task["name_label"]] += 1
        for vm in xapi.db.all("VM").values():
            for key in vm["other_config"]:
                if key.startswith("soak-"):
                    found[key] += 1
        return found

    return sim.run(collect)


def soak(calls: int = CALLS, threads: int = 8, seed: int = 4, *, drop_share: float = DROP_SHARE,
         expire_share: float = EXPIRE_SHARE) -> SoakResult:
    """One run, as the module docstring says; returns its figures (it raises nothing a call
    raised: those are findings in the result)."""
    steps = plan(calls, seed, drop_share, expire_share)
    outcome = Outcome()
    lock = threading.Lock()
    gate = FaultGate()
    with Simulator(hosts=2, vms=20, auth_failure_delay=0) as sim:
        session = XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR,
                                concurrent=threads, retry=Retry(backoff=0.05, wait=0.1))
        records = session.VM.get_all_records()
        vms = sorted(ref for ref, vm in records.items()
                     if not vm["is_a_template"] and not vm["is_control_domain"])
        sr = session.SR.get_record(session.SR.get_all()[0])["uuid"]
        started = time.perf_counter()
        workers = [threading.Thread(target=worker, daemon=True, args=(
            sim, session, steps[i::threads], vms, sr, outcome, lock, gate,
            random.Random(seed * 1000 + i)))
            for i in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(JOIN)
        elapsed = time.perf_counter() - started
        left_running = sum(thread.is_alive() for thread in workers)
        master_url = session.master_url
        session.close()
        stats = session.stats
        left = our_sessions(sim)
        traces = traces_on_server(sim)
        urls = list(sim.urls)

    repeated = [trace for trace, count in traces.items() if count > 1]
    maybe_ran = len(outcome.maybe & set(traces))
    done = (sum(outcome.ok.values()) + len(outcome.maybe) + len(outcome.failed_reads)
            + len(outcome.other_errors))
    return SoakResult(
        seed=seed, threads=threads, calls=done, seconds=elapsed,
        failed_reads=outcome.failed_reads, other_errors=outcome.other_errors,
        reads_ok=sum(outcome.ok[m] for m in READS), writes_ok=len(outcome.written),
        maybe=len(outcome.maybe), maybe_ran=maybe_ran, traces=sum(traces.values()),
        repeated=len(repeated), missing=len(outcome.written - set(traces)),
        unexplained=len(set(traces) - outcome.written - outcome.maybe), leaked=len(left),
        expiries=outcome.expiries, relogins=stats.relogins, logins=stats.logins,
        logouts=stats.logouts, expired_at_logout=stats.expired_at_logout,
        drops_injected=outcome.drops_injected, drop_hits=outcome.drop_hits,
        read_retries=stats.read_retries, redirects=stats.redirects,
        master_changes=stats.master_changes, failovers=stats.failovers,
        master_followed=master_url == urls[1] and stats.master_changes >= 1,
        threads_left=left_running,
    )


@contextlib.contextmanager
def quiet_client() -> Iterator[None]:
    """The client's warnings (the master moving, once a run) off stderr while soaking: the
    figures say what happened."""
    logger = logging.getLogger("os_xenapi")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- the property

COLUMNS = ("seed", "threads", "calls", "failed reads", "repeated writes", "leaked sessions",
           "expiries", "re-logins", "logouts of expired", "logouts", "time s", "result")


def row(result: SoakResult) -> list[str]:
    return [str(value) for value in (
        result.seed, result.threads, result.calls, len(result.failed_reads), result.repeated,
        result.leaked, result.expiries, result.relogins, result.expired_at_logout,
        result.logouts, f"{result.seconds:.1f}",
        "ok" if result.passed else "FAILED: " + ", ".join(
            name for name, ok in result.checks.items() if not ok))]


def table(rows: list[list[str]]) -> str:
    """``rows`` under COLUMNS, aligned, as a Markdown table."""
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i < len(cells) - 1 else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i < len(widths) - 1 else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(list(COLUMNS)), rule, *(line(r) for r in rows)])


def property_runs(runs: int = RUNS, calls: int = CALLS, first_seed: int = 1, *,
                  threads: tuple[int, ...] = THREADS, drop_share: float = DROP_SHARE,
                  expire_share: float = EXPIRE_SHARE,
                  each: Callable[[SoakResult], None] | None = None) -> list[SoakResult]:
    """``runs`` soaks, seeds ``first_seed``, ``first_seed + 1``... with thread counts taken in
    turn from ``threads``; ``each`` is called with every result as it comes."""
    results = []
    for number in range(runs):
        result = soak(calls, threads[number % len(threads)], first_seed + number,
                      drop_share=drop_share, expire_share=expire_share)
        results.append(result)
        if each is not None:
            each(result)
    return results


def run(quick: bool = False) -> dict[str, Any]:
    """The property as a ``make bench`` benchmark: 20 runs of 20,000 calls (2,000 with
    ``quick``). Prints the table on stderr as it goes; raises AssertionError if a run failed."""
    calls = QUICK_CALLS if quick else CALLS
    print("  " + table([]).replace("\n", "\n  "), file=sys.stderr, flush=True)
    with quiet_client():
        results = property_runs(RUNS, calls, each=lambda result: print(
            "  " + table([row(result)]).splitlines()[-1], file=sys.stderr, flush=True))
    failed = [result for result in results if not result.passed]
    total = sum(result.calls for result in results)
    seconds = sum(result.seconds for result in results)
    figures = {
        "runs": len(results), "failed_runs": len(failed), "calls": total,
        "failed_reads": sum(len(r.failed_reads) for r in results),
        "repeated_writes": sum(r.repeated for r in results),
        "leaked_sessions": sum(r.leaked for r in results),
        "expiries": sum(r.expiries for r in results),
        "relogins": sum(r.relogins for r in results),
        "expired_at_logout": sum(r.expired_at_logout for r in results),
        "per_run": [dict(zip(COLUMNS, row(r), strict=True)) for r in results],
    }
    if failed:
        raise AssertionError("soak property failed in runs with seeds "
                             + ", ".join(str(r.seed) for r in failed) + ":\n"
                             + "\n".join(r.report() for r in failed))
    return {
        "name": "soak", "title": f"soak property: {RUNS} runs of {calls} calls under faults",
        **figures,
        "rows": [
            ["runs that held every check", f"{len(results) - len(failed)}", f"of {len(results)}",
             "", ""],
            ["failed reads", str(figures["failed_reads"]), "", "0", ""],
            ["repeated writes", str(figures["repeated_writes"]), "", "0", ""],
            ["sessions left on the server", str(figures["leaked_sessions"]), "", "0", ""],
            ["expiries", str(figures["expiries"]), "",
             f"{figures['relogins']} + {figures['expired_at_logout']}", "re-logins + logouts"],
            ["calls", f"{total / seconds:.0f}", "calls/s", "", ""],
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--runs", type=int, default=0,
                        help="run the property: this many runs, thread counts 1, 2, 4, 8, 16")
    parser.add_argument("--first-seed", type=int, default=1, help="the property's first seed")
    args = parser.parse_args(argv)
    if args.runs <= 0:
        with quiet_client():
            result = soak(args.calls, args.threads, args.seed)
        print(result.report())
        return 0 if result.passed else 1
    print(table([]), flush=True)
    with quiet_client():
        results = property_runs(args.runs, args.calls, args.first_seed, each=lambda result: print(
            table([row(result)]).splitlines()[-1], flush=True))
    failed = [result for result in results if not result.passed]
    print(f"{len(results) - len(failed)} of {len(results)} runs held every check; "
          f"{sum(r.calls for r in results)} calls in {sum(r.seconds for r in results):.0f} s")
    for result in failed:
        print(result.report())
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
