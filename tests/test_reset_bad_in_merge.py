"""Review mend (#24): reset's `bad` update repeated the pipeline's rule
(maintenance/reset._bad_after: the entry's shape, the keep-20 cap) and
re-read state.json over an extra round trip. A reset now marks or clears
the commit in the one state merge its record already sends
(remote.state_merge_cmd -> host/state.merge_state_file -> marked_bad),
the rule the pipeline's failed gate uses too: one round trip, on `bad` as
the file has it under the merge's lock."""
import json
import time

import pytest
import yaml
from invoke import Context

from fabops import inventory
from fabops.host.state import bad_entry, marked_bad
from fabops.maintenance.reset import ResetPlan, _record as record_reset
from fabops.target import Target


@pytest.fixture
def host(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return inventory.loads(yaml.safe_dump({"hosts": {"h1": {
        "connection": "local", "home": str(home), "app": {"path": str(tmp_path / "app"), "remote": "origin"}}}}),
        "t.yml").hosts["h1"]


def _record(host, monkeypatch, result, bad_reason=None):
    """reset._record against `host`'s real home (local sh), the commands it
    ran counted: each Target.run is one round trip to a host."""
    ran = []
    original = Target.run

    def counted(self, cmd, what="", **kwargs):
        ran.append(what)
        return original(self, cmd, what, **kwargs)

    monkeypatch.setattr(Target, "run", counted)
    plan = ResetPlan(head="a" * 40, target="f" * 40, dirty=[], has_env=False)
    record_reset(Context(), host, plan, "f" * 40, result, "m", run_id="20261206T000000-abcdef", actor="t",
                  started=time.monotonic(), steps=[], saved="", own=[], bad_reason=bad_reason)
    with open(host.paths.state) as fh:
        return ran, json.load(fh)


def _seed(host, bad):
    with open(host.paths.state, "w") as fh:
        json.dump({"deployed": "a" * 40, "bad": bad, "health": {"status": "up"}}, fh)


def test_a_reset_whose_service_died_marks_its_commit_in_the_merge(host, monkeypatch):
    old = {("%040d" % n): {"at": float(n), "reason": "old", "notified": True} for n in range(20)}
    _seed(host, old)
    ran, state = _record(host, monkeypatch, "broken", bad_reason="bot died after starting " + "x" * 400)
    assert ran == ["recording the run"]  # one round trip: no read of state.json first
    entry = state["bad"]["f" * 40]
    assert set(entry) == {"at", "reason", "notified", "run_id"} and entry["run_id"] == "20261206T000000-abcdef"
    assert entry["reason"] == ("bot died after starting " + "x" * 400)[:300] and entry["notified"] is False
    # the pipeline's cap: the 20 most recent, the oldest (at 0.0) gone
    assert len(state["bad"]) == 20 and "%040d" % 0 not in state["bad"] and "%040d" % 19 in state["bad"]
    assert state["health"] == {"status": "up"} and state["last_result"] == "broken"  # other keys stay


def test_a_healthy_reset_clears_its_commit_in_the_merge(host, monkeypatch):
    _seed(host, {"f" * 40: {"at": 1.0, "reason": "port taken"}, "c" * 40: {"at": 2.0, "reason": "bot died"}})
    ran, state = _record(host, monkeypatch, "deployed")
    assert ran == ["recording the run"]
    assert state["bad"] == {"c" * 40: {"at": 2.0, "reason": "bot died"}} and state["deployed"] == "f" * 40


def test_the_pipelines_mark_and_a_resets_are_one_rule(tmp_path):
    """The entry and the cap in one place: marking through StateFile (the
    pipeline's save) gives what marked_bad gives."""
    from fabops.host.state import State, StateFile

    path = str(tmp_path / "state.json")
    sf = StateFile(path)
    state = sf.load()
    entry = bad_entry("died", "run-1", at=5.0)
    sf.save(state, bad=("b" * 40, entry))
    assert state.bad == marked_bad({}, "b" * 40, entry) == {"b" * 40: entry}
    assert json.loads(open(path).read())["bad"] == {"b" * 40: entry}
    assert isinstance(state, State)
