"""Soak test of XenAPISession under faults: not part of ``make test`` nor of ``make bench``.

    .venv/bin/python bench/soak.py [--calls 20000] [--threads 8] [--seed 4]

Eight threads share one ``XenAPISession(concurrent=8)`` against an in-process
``Simulator(hosts=2, vms=20)`` and make 20,000 calls between them, planned in advance from a
seeded random generator: 80% reads (``VM.get_record``, ``VM.get_all``, ``host.get_all``,
``VM.get_power_state``, ``SR.get_all``, ``VM.get_all_records_where``) and 20% writes that leave a
uniquely named trace on the server (``task.create`` with label ``soak-<n>``,
``VM.add_to_other_config`` with key ``soak-<n>``). Faults:

* 5% of the calls get their connection dropped: just before the call, a one-shot drop fault
  (before or after the call runs, at random) is put on its method, and removed after it;
* 1% of the calls are preceded by the expiry of one of the client's sessions on the server;
* once, half way, the pool master moves to the other host.

Then it checks that no read failed, that no write ran twice (each trace is on the server at
most once, and present for every write that reported success), that any other error is absent,
and that after ``close()`` the server holds no session of the client. It prints the figures and
exits non-zero if a check failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
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


def plan(calls: int, seed: int) -> list[Step]:
    rng = random.Random(seed)
    steps = []
    for index in range(calls):
        method = rng.choice(READS) if rng.random() < READ_SHARE else rng.choice(WRITES)
        drop = rng.choice(("before", "after")) if rng.random() < DROP_SHARE else None
        steps.append(Step(index, method, drop, rng.random() < EXPIRE_SHARE,
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


def worker(sim: Simulator, session: XenAPISession, steps: list[Step], vms: list[str], sr: str,
           outcome: Outcome, lock: threading.Lock, rng: random.Random) -> None:
    for step in steps:
        if step.move_master:
            sim.move_master(1)
        if step.expire:
            ours = sim.run(lambda xapi: [ref for ref, s in xapi.db.all("session").items()
                                         if s["originator"] == ORIGINATOR])
            if ours:
                try:
                    sim.expire_session(rng.choice(ours))
                    with lock:
                        outcome.expiries += 1
                except ControlError:
                    pass  # already gone (expired by another thread, or replaced)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    steps = plan(args.calls, args.seed)
    outcome = Outcome()
    lock = threading.Lock()
    with Simulator(hosts=2, vms=20, auth_failure_delay=0) as sim:
        session = XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR,
                                concurrent=args.threads, retry=Retry(backoff=0.05, wait=0.1))
        records = session.VM.get_all_records()
        vms = sorted(ref for ref, vm in records.items()
                     if not vm["is_a_template"] and not vm["is_control_domain"])
        sr = session.SR.get_record(session.SR.get_all()[0])["uuid"]
        started = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(
            sim, session, steps[i::args.threads], vms, sr, outcome, lock, random.Random(i)))
            for i in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(3600)
        elapsed = time.perf_counter() - started
        master_url = session.master_url
        session.close()
        stats = session.stats
        left = sim.run(lambda xapi: [ref for ref, s in xapi.db.all("session").items()
                                     if s["originator"] == ORIGINATOR])
        traces = traces_on_server(sim)
        urls = list(sim.urls)

    repeated = sorted(trace for trace, count in traces.items() if count > 1)
    missing = sorted(outcome.written - set(traces))
    unexplained = sorted(set(traces) - outcome.written - outcome.maybe)
    maybe_ran = len(outcome.maybe & set(traces))
    checks = {
        "no failed read": not outcome.failed_reads,
        "no repeated write": not repeated,
        "every successful write on the server once": not missing and not unexplained,
        "no other error": not outcome.other_errors,
        "no leaked session": not left,
        "master moved and followed": master_url == urls[1] and stats.master_changes >= 1,
    }
    calls = sum(outcome.ok.values()) + len(outcome.maybe) + len(outcome.failed_reads) + len(
        outcome.other_errors)
    print(f"soak: {calls} calls by {args.threads} threads in {elapsed:.1f} s "
          f"({calls / elapsed:.0f} calls/s), seed {args.seed}")
    print(f"  reads ok {sum(outcome.ok[m] for m in READS)}, failed {len(outcome.failed_reads)}")
    print(f"  writes ok {len(outcome.written)}, reported 'may have run' {len(outcome.maybe)} "
          f"(of which ran: {maybe_ran}, did not: {len(outcome.maybe) - maybe_ran}), "
          f"traces on the server {sum(traces.values())}, repeated {len(repeated)}")
    print(f"  connection drops injected {outcome.drops_injected}, acted {outcome.drop_hits} "
          f"(two one-shot drops due on the same call act once); reads sent again "
          f"{stats.read_retries}")
    print(f"  sessions expired {outcome.expiries}, re-logins {stats.relogins}, logins "
          f"{stats.logins}, logouts {stats.logouts}, sessions left on the server {len(left)}")
    print(f"  master moves followed: redirects {stats.redirects}, master changes "
          f"{stats.master_changes}, failovers {stats.failovers}")
    for name, passed in checks.items():
        print(f"  [{'ok' if passed else 'FAILED'}] {name}")
    for line in (outcome.failed_reads + outcome.other_errors)[:10]:
        print(f"    {line}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
