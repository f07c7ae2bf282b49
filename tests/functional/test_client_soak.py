"""The short form of the soak property (``bench/soak.py``; the long one is in ``make bench``):
XenAPISession shared by 2 to 16 threads, under dropped connections, expired sessions and a master
move, loses no read, repeats no write, leaks no session, and matches every expiry to a re-login
or to a logout that found the session gone.

The fault rates are higher than the long form's (10% drops, 5% expiries) so that a few hundred
calls meet what 20,000 meet there: sessions that die again right after their re-login, expired
sessions still idle in the pool at close(), calls of every kind caught by the master move.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("os_xenapi_bench_soak", BENCH / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


soak = _soak_module()


@pytest.mark.parametrize(("seed", "threads"), [(1, 2), (2, 4), (3, 8), (4, 16)])
def test_no_lost_read_no_repeated_write_no_leaked_session_under_faults(
    seed: int, threads: int
) -> None:
    with soak.quiet_client():
        result = soak.soak(400, threads, seed, drop_share=0.10, expire_share=0.05)
    assert result.passed, result.report()
    assert result.calls == 400
    assert result.expiries > 0 and result.drops_injected > 0  # the faults did come
