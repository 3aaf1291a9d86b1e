"""host/queue.py's rules on their own, with a clock of the test's: who
waits for a held lock, and for how long (the real waits are proven on a
sandbox in test_watch_lock.py and over SSH in test_watch_lock_ssh.py)."""
from __future__ import annotations

import pytest

from fabops.host import queue


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(queue.time, "time", c)
    return c


def watching(clock, ends_in: float, run_id: str = "r1") -> dict:
    return {"run_id": run_id, "trigger": "cron", "actor": "cron@host", "phase": "watch",
            "watch_ends": clock.now + ends_in, "target": "a" * 40}


def waiter(tmp_path, trigger="deploy", wait=None, longest=None, ours="b" * 40):
    return queue.lock_waiter(trigger, lambda: ours, str(tmp_path / "watch-end"), "me@laptop", "mine", wait,
                             longest_watch=longest)


def test_a_deploy_waits_for_a_watch_until_its_end_and_the_grace(tmp_path, clock):
    should = waiter(tmp_path, longest=30)
    holder = watching(clock, 10)
    assert should(holder)
    clock.now += 10 + queue.WATCH_GRACE - 0.1
    assert should(holder)
    clock.now += 0.2
    assert not should(holder)  # past the grace: a stuck holder, and this run is exit 4


def test_a_watch_end_far_away_is_capped_by_our_longest_watch(tmp_path, clock):
    """A record that says its watch ends in an hour (a clock step, a hand
    edit) holds a deploy no longer than our own longest watch + grace."""
    should = waiter(tmp_path, longest=30)
    holder = watching(clock, 3600)
    assert should(holder)
    clock.now += 30 + queue.WATCH_GRACE - 0.1
    assert should(holder)
    clock.now += 0.2
    assert not should(holder)
    assert waiter(tmp_path, longest=None)(holder)  # without the cap it would have waited on


def test_the_cap_counts_from_when_this_run_first_saw_each_watch(tmp_path, clock):
    should = waiter(tmp_path, longest=5)
    assert should(watching(clock, 3600, "r1"))
    clock.now += 5 + queue.WATCH_GRACE + 1
    assert not should(watching(clock, 3600, "r1"))
    assert should(watching(clock, 3600, "r2"))  # a new holder's watch is waited for afresh


@pytest.mark.parametrize("trigger, wait, holder_phase, expect", [
    ("deploy", None, "watch", True),
    ("ci", None, "watch", True),
    ("deploy", 0, "watch", False),  # --wait 0 opts out of waiting for a watch
    ("deploy", None, "change", False),  # mid-change: exit 4, never a blind queue
    ("cron", None, "watch", False),  # cron comes back at its next poll
    ("manual", None, "watch", False),
])
def test_who_waits_for_a_watch(tmp_path, clock, trigger, wait, holder_phase, expect):
    holder = {**watching(clock, 10), "phase": holder_phase}
    assert waiter(tmp_path, trigger=trigger, wait=wait, longest=30)(holder) is expect


def test_a_deploy_of_the_holders_own_target_waits_for_its_result(tmp_path, clock):
    holder = {**watching(clock, 10), "phase": "change"}
    assert waiter(tmp_path, ours=holder["target"])(holder)
    assert not waiter(tmp_path, ours="c" * 40)(holder)


@pytest.mark.parametrize("trigger", queue.EMERGENCY_TRIGGERS)
def test_an_emergency_tool_asks_the_watch_to_end_and_waits_only_for_that(tmp_path, clock, trigger):
    should = waiter(tmp_path, trigger=trigger, longest=30)
    holder = watching(clock, 3600)
    assert should(holder)
    req = queue.watch_end_request(str(tmp_path / "watch-end"), clock.now - 1, "r1")
    assert req and req["trigger"] == trigger and req["for"] == "r1"
    clock.now += queue.END_WAIT + 0.1
    assert not should(holder)  # the watch never recorded its end: this run stops waiting
    assert not waiter(tmp_path, trigger=trigger)({**holder, "phase": "change"})  # mid-change: exit 4


def test_a_holder_is_described_by_what_it_recorded():
    """A restart records no target and an agentless tool no pid: the
    description names neither (it said `target ?, pid None`)."""
    from fabops.host.lock import describe_holder

    said = describe_holder({"trigger": "restart", "actor": "root@vm", "target": None, "pid": None, "since": 0})
    assert said.startswith("restart by root@vm (since ") and "None" not in said and "?" not in said, said
    full = describe_holder({"trigger": "cron", "actor": "c@h", "target": "a" * 40, "pid": 7, "since": 0, "run_id": "r"})
    assert full.startswith("cron by c@h (target aaaaaaaaaa, pid 7, since ") and full.endswith(", run r)"), full
    assert describe_holder({"trigger": "cron", "actor": "c@h"}) == "cron by c@h"
    assert describe_holder({}) == "another process (no details recorded)"


def test_the_waiter_names_the_run_of_our_target_it_waits_for(tmp_path, clock):
    """Its result is this run's (pipeline._reported): kept through the
    holder's release (an empty record), in its watch too, and forgotten
    once a run of another target holds the lock."""
    ours = "a" * 40
    should = waiter(tmp_path, ours=ours, longest=30)
    assert should.same_target is None
    change = {**watching(clock, 10), "phase": "change"}
    assert should(change) and should.same_target == change
    assert not should({}) and should.same_target == change  # letting go: the record is empty a moment
    assert should(watching(clock, 10, "r1")) and should.same_target["run_id"] == "r1"
    other = {**watching(clock, 10, "r2"), "target": "c" * 40}
    assert should(other) and should.same_target is None  # waits for its watch, but its result is not ours
