"""The gate's settle window against the watch window (docs/benchmarks.md,
"Settle against watch"): the settle is skipped only when the service's watch
follows its gate; the watch starts from the PID the gate passed with; and a
crash at boot, or a death soon after the first good answer, is caught and
rolled back whatever settle and watch are set to."""
import pytest
import yaml

from fabops.host import readiness
from fabops.host.services import ServiceStatus
from tests.harness.apps import Sandbox
from tests.test_readiness_unit import Clock, Manager, Probe, svc


def test_the_settle_is_skipped_only_where_a_watch_follows_the_gate():
    assert readiness.settle_for(svc(settle=2.0, watch=30.0), watched=True) == 0.0
    assert readiness.settle_for(svc(settle=2.0, watch=0.0), watched=True) == 2.0  # nothing watches after
    assert readiness.settle_for(svc(settle=2.0, watch=30.0)) == 2.0  # rollback, restart, health --fix


def dies_one_second_after_its_answer(clock, probe):
    """Active from the start, pid 100, gone 1 s after the first HTTP 200."""
    def status(s):
        answered_at = probe.answered_at
        alive = answered_at is None or clock.t < answered_at + 1.0
        return ServiceStatus(s.name, alive, "active" if alive else "failed", 100 if alive else None)
    return Manager(status)


class AnsweringProbe(Probe):
    def __init__(self, clock):
        super().__init__(lambda n: 200)
        self.clock, self.answered_at = clock, None

    def http(self, check):
        if self.answered_at is None:
            self.answered_at = self.clock.t
        return super().http(check)


def test_a_death_after_the_first_answer_is_caught_by_the_settle_or_by_the_watch():
    service = svc(settle=2.0, watch=30.0)
    clock = Clock()
    probe = AnsweringProbe(clock)
    manager = dies_one_second_after_its_answer(clock, probe)
    r = readiness.wait_ready(manager, service, clock=clock, sleep=clock.sleep, probe=probe)
    assert not r.ok and r.phase == "settle" and "died" in r.message  # no watch after it: the settle catches it

    clock = Clock()
    probe = AnsweringProbe(clock)
    manager = dies_one_second_after_its_answer(clock, probe)
    r = readiness.wait_ready(manager, service, clock=clock, sleep=clock.sleep, probe=probe, watched=True)
    assert r.ok and r.pid == 100 and clock.t < 1.0  # the verdict at the first answer
    seen = readiness.watch(manager, [service], clock=clock, sleep=clock.sleep, probe=probe, gated={"bot": r.pid})
    assert not seen.ok and seen.phase == "watch" and "died" in seen.message
    assert clock.t - probe.answered_at < 1.0 + readiness.WATCH_POLL + 0.01


def test_the_watch_starts_from_the_pid_the_gate_passed_with():
    """systemd restarted the service between its gate and the watch's first
    look (a later service's gate ran meanwhile): a crash loop."""
    clock = Clock()
    restarted = Manager(lambda s: ServiceStatus(s.name, True, "active", 200))
    seen = readiness.watch(restarted, [svc(watch=30.0)], clock=clock, sleep=clock.sleep, probe=Probe(lambda n: 200),
                           gated={"bot": 100})
    assert not seen.ok and "restarted on its own" in seen.message and "100 -> 200" in seen.message
    assert clock.t < 1.0
    # without the gate's PID the watch takes the new process for the one that passed
    clock = Clock()
    seen = readiness.watch(restarted, [svc(watch=3.0)], clock=clock, sleep=clock.sleep, probe=Probe(lambda n: 200))
    assert seen.ok


def with_service(box, settle, watch):
    inv = yaml.safe_load(box.inventory.read_text())
    inv["hosts"]["local"]["services"][0].update(settle=settle, watch=watch)
    box.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))


def sandbox_with(tmp_path, settle, watch):
    box = Sandbox(tmp_path)
    with_service(box, settle, watch)
    return box


@pytest.mark.parametrize("settle,watch", [("0s", "0s"), ("0s", "2s"), ("300ms", "0s"), ("300ms", "2s")])
def test_a_crash_at_boot_is_rolled_back_in_every_mode(tmp_path, settle, watch):
    box = sandbox_with(tmp_path, settle, watch)
    try:
        assert box.result()[0] == 0
        v1 = box.origin.head
        bad = box.origin.crash("2")
        code, res = box.result("--trigger", "deploy")
        assert (code, res["result"]) == (2, "rolled_back"), res
        failed = [s["name"] for s in res["steps"] if not s["ok"]]
        assert failed == ["restart bot"], res  # the gate caught it, before any watch
        assert box.state["deployed"] == v1 and bad in box.state["bad"]
        assert box.health()["version"] == "1"
    finally:
        box.stop()


def test_with_no_settle_the_watch_rolls_back_a_death_after_the_gate(tmp_path):
    box = Sandbox(tmp_path)
    try:
        assert box.result()[0] == 0  # v1 through the sandbox's short watch: 8 s only cost time
        with_service(box, "0s", "8s")
        v1 = box.origin.head
        bad = box.origin.push("v2 dies 3 s after it starts", {"VERSION": "2\n", "BEHAVIOUR": "crash-after 3\n"})
        code, res = box.result("--trigger", "deploy")
        assert (code, res["result"]) == (2, "rolled_back"), res
        failed = [s for s in res["steps"] if not s["ok"]]
        assert [s["name"] for s in failed] == ["watch"] and "died" in failed[0]["message"], res
        assert box.state["deployed"] == v1 and bad in box.state["bad"]
        assert box.health()["version"] == "1"
    finally:
        box.stop()


def test_a_deploys_gate_leaves_the_settle_to_its_watch(tmp_path):
    """With a watch after it, the deploy's gate passes at the first good
    answer: a commit that dies 3 s after it starts is failed by the watch,
    not by a 5 s settle (on the tree before, the gate's settle caught it)."""
    box = Sandbox(tmp_path)
    try:
        assert box.result()[0] == 0  # v1 through the sandbox's short watch: 8 s only cost time
        with_service(box, "5s", "8s")
        box.origin.push("v2 dies 3 s after it starts", {"VERSION": "2\n", "BEHAVIOUR": "crash-after 3\n"})
        code, res = box.result("--trigger", "deploy")
        assert (code, res["result"]) == (2, "rolled_back"), res
        gate = next(s for s in res["steps"] if s["name"] == "restart bot")
        assert gate["ok"] and gate["message"].startswith("bot ready"), res
        assert [s["name"] for s in res["steps"] if not s["ok"]] == ["watch"], res
        assert box.health()["version"] == "1"
    finally:
        box.stop()
