"""What a deploy waiting behind a run in its watch says (queue.waiting_line,
every 5 s): the watch's own countdown. With a 3 s watch it said `18 s left
at most`: the watch's end plus the grace this run gives the holder past it
(WATCH_GRACE, a guard against a stuck holder), a number a person could not
relate to the watch. The grace is said apart, once the watch is over."""
from __future__ import annotations

import re

import pytest

from fabops.host import queue
from tests import test_queue_unit
from tests.test_queue_unit import watching

clock = test_queue_unit.clock  # queue's wall clock, the test's (a fixture)


def holder(clock, ends_in: float, phase: str = "watch") -> dict:
    return {**watching(clock, ends_in), "phase": phase}


def seconds(line: str) -> int:
    return int(re.search(r": (?:up to )?(\d+) s (?:left|more)$", line).group(1))


def test_a_3_s_watch_says_3_s_left(clock):
    line = queue.waiting_line(holder(clock, 3.0), "deploy")
    assert line.startswith("waiting for the watch of cron by cron@host") and line.endswith(": 3 s left"), line
    assert "at most" not in line


@pytest.mark.parametrize("ends_in, said", [(3.0, 3), (2.4, 3), (0.2, 1), (30.0, 30)])
def test_the_countdown_is_the_watch_left_rounded_up(clock, ends_in, said):
    """Never more than the watch has left (by its record), never 0 while it runs."""
    assert seconds(queue.waiting_line(holder(clock, ends_in), "ci")) == said


def test_after_the_watch_the_grace_is_said_as_such(clock):
    h = holder(clock, 3.0)
    clock.now += 5.0  # the watch ended 2 s ago; the holder has yet to let go
    line = queue.waiting_line(h, "deploy")
    assert line.startswith("waiting for cron by cron@host") and "to finish after its watch" in line, line
    assert seconds(line) == queue.WATCH_GRACE - 2
    promoting = queue.waiting_line({**holder(clock, -1.0), "phase": "promote"}, "deploy")
    assert "to finish after its watch" in promoting and seconds(promoting) == queue.WATCH_GRACE - 1, promoting


def test_past_the_grace_it_is_a_plain_lock_wait(clock):
    h = holder(clock, 3.0)
    clock.now += 3.0 + queue.WATCH_GRACE + 0.1
    assert queue.waiting_line(h, "deploy") == "waiting for the lock held by cron@host (cron)"
    assert queue.watch_remaining(h) is None


def test_the_lines_follow_the_waiters_rule(clock, tmp_path):
    """The countdown, then the grace, cover exactly the time lock_waiter
    waits for the watch (the number said is never below what is left of it)."""
    should = queue.lock_waiter("deploy", lambda: "b" * 40, str(tmp_path / "watch-end"), "me", "mine")
    h = holder(clock, 3.0)
    start = clock.now
    while should(h):
        line = queue.waiting_line(h, "deploy")
        waited = clock.now - start
        bound = 3.0 if "s left" in line else 3.0 + queue.WATCH_GRACE
        assert waited + seconds(line) >= bound - 1e-9 and seconds(line) <= bound, (waited, line)
        clock.now += 0.5
    assert clock.now - start == pytest.approx(3.0 + queue.WATCH_GRACE, abs=0.5)
