"""The simulated rrdd's clock and error texts, without a server (values through the SDK are in
tests/functional/test_sim_data_sources.py)."""

from __future__ import annotations

import math

import pytest

from os_xenapi.simulator.rrd import RrdClock, invalid_data_source, no_rrd
from os_xenapi.simulator.rrd_sources import STEP


class Wall:
    """A wall clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_clock_follows_the_wall_clock_plus_what_it_was_advanced() -> None:
    wall = Wall()
    clock = RrdClock(wall)
    clock.advance(12.5)
    wall.now += 3
    assert clock.now() == 1015.5
    assert clock.step() == int(1015.5 // STEP)


def test_frozen_clock_stays_put_while_the_wall_clock_runs_but_can_be_advanced() -> None:
    wall = Wall()
    clock = RrdClock(wall)
    clock.freeze()
    wall.now += 60
    assert clock.now() == 1000.0 and clock.frozen
    assert clock.advance(STEP) == 1000.0 + STEP


def test_thawed_clock_runs_on_from_where_it_stood() -> None:
    wall = Wall()
    clock = RrdClock(wall)
    clock.freeze()
    wall.now += 60
    assert clock.freeze(False) == 1000.0
    wall.now += 2
    assert clock.now() == 1002.0 and not clock.frozen


@pytest.mark.parametrize("seconds", [-1, math.inf, math.nan, True, "5", None])
def test_clock_refuses_what_is_not_a_finite_step_forward(seconds: object) -> None:
    with pytest.raises(ValueError, match="finite number of seconds, at least 0"):
        RrdClock(Wall()).advance(seconds)  # type: ignore[arg-type]


def test_freeze_takes_a_boolean_only() -> None:
    with pytest.raises(ValueError, match="true or false"):
        RrdClock(Wall()).freeze("yes")  # type: ignore[arg-type]


def test_errors_are_rrdds_exceptions_as_xapi_prints_them() -> None:
    assert no_rrd().description == [
        "INTERNAL_ERROR", "Rrd_interface.Rrdd_error([S(Rrdd_internal_error);S(Not_found)])"]
    assert invalid_data_source('a"b\\c').description == [
        "INTERNAL_ERROR",
        'Rrd_interface.Rrdd_error([S(Rrdd_internal_error);S(Rrd.Invalid_data_source("a\\"b\\\\c"))])']
