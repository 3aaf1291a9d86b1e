"""`promote` (issue #28, docs/environments.md "Promote"): the decision is
one pure function over the gathered facts (fabops/promote.decide), tested
here as a table; its renderings (refusals, a dry run, success) against
golden files at 80 and 200 columns, and its --json against the schema."""
from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from fabops import errors, inventory
from fabops.promote import Ancestry, SourceFacts, TargetFacts, decide, parse_source, source_cmd, span
from tests import test_golden
from tests.conftest import json_schema
from tests.test_golden import NOW, SHA, WIDTHS, check, render

pytestmark = pytest.mark.unit
frozen = test_golden.frozen  # the golden files' clock and TZ (a fixture)

A, B, C = "a" * 40, "b" * 40, "c" * 40
HOUR = 3600.0


def host(name="stg1", deployed=A, age=2 * HOUR, min_age=HOUR, **kw) -> SourceFacts:
    return SourceFacts(host=name, deployed=deployed, deployed_at=NOW - age, now=NOW, min_age=min_age, **kw)


ON_MAIN = Ancestry("prod1", "origin/main", True)


def refusals(*sources, ancestry=ON_MAIN, force=False, targets=()):
    plan = decide("staging", "production", sources, ancestry, force, targets)
    return plan.code, plan.refusals


def test_agreeing_healthy_old_enough_on_the_branch_is_promoted():
    plan = decide("staging", "production", [host(), host("stg2")], ON_MAIN, targets=[TargetFacts("prod1", B, head=B)])
    assert plan.candidate == A and plan.refusals == [] and plan.code == errors.OK and plan.need is None
    assert [c.name for c in plan.checks] == ["lock", "agree", "healthy", "age", "bad", "ancestor", "descendant"]
    assert plan.already == () and plan.warnings == ()


def test_the_targets_are_asked_for_once_there_is_a_candidate():
    plan = decide("staging", "production", [host()])
    assert plan.need == "targets" and plan.candidate == A
    # none when there is nothing to ask them of; --force still reads them
    # (what they run and their pins), only not the ancestry
    assert decide("staging", "production", [host(), host("stg2", deployed=B)]).need is None
    assert decide("staging", "production", [host()], force=True).need == "targets"


def test_hosts_that_disagree_are_named_each_with_its_commit():
    code, why = refusals(host(), host("stg2", deployed=B))
    assert code == errors.FAILED
    assert why == ["staging hosts disagree: stg1 runs aaaaaaaaaa, stg2 runs bbbbbbbbbb"]


def test_a_host_with_nothing_deployed_is_refused():
    assert refusals(host(deployed=None)) == (errors.FAILED, ["stg1 has no deployed commit yet"])


@pytest.mark.parametrize("kw, said", [
    ({"down": ("bot",)}, "stg1: bot not running"),
    ({"health": "down"}, "stg1: its last health check found a service down"),
    ({"result": "broken"}, "stg1: its last run ended broken"),
    ({"in_progress": "20261129T120000-abc123"},
     "stg1: run 20261129T120000-abc123 has not finished, so its watch has not passed"),
])
def test_an_unhealthy_host_is_refused_saying_why(kw, said):
    assert refusals(host(**kw), host("stg2")) == (errors.FAILED, [said])


def test_too_young_says_how_long_it_still_needs():
    code, why = refusals(host(age=600), host("stg2", age=3 * HOUR))
    assert code == errors.FAILED
    assert why == ["stg1: aaaaaaaaaa has run healthy for 10m, promote needs 1h: 50m more (--min-age to change it)"]
    assert refusals(host(age=600, min_age=0)) == (errors.OK, [])  # --min-age 0
    # the host's clock is `date +%s` (whole seconds): just after the watch
    # it may read before deployed_at, found by tests/test_promote_systemd.py
    assert refusals(host(age=-0.6, min_age=0)) == (errors.OK, [])


def test_a_bad_target_newer_than_the_candidate_is_refused():
    newer = host(bad=((B, NOW - 60, "gate: bot died"), (C, NOW - 5 * HOUR, "older")))
    code, why = refusals(newer)
    assert code == errors.FAILED
    assert why == ["stg1: bbbbbbbbbb, newer than aaaaaaaaaa, is marked bad (gate: bot died)"]


def test_not_an_ancestor_is_refused_unless_forced():
    off = Ancestry("prod1", "origin/main", False)
    code, why = refusals(host(), ancestry=off)
    assert code == errors.FAILED
    assert why == ["aaaaaaaaaa is not an ancestor of origin/main (as prod1 fetched it); --force promotes it anyway"]
    missing = Ancestry("prod1", "origin/main", None)
    assert refusals(host(), ancestry=missing)[1] == [
        "aaaaaaaaaa is not an ancestor of origin/main (as prod1 fetched it): that history does not have it; "
        "--force promotes it anyway"]
    assert refusals(host(), ancestry=off, force=True) == (errors.OK, [])
    plan = decide("staging", "production", [host()], None, force=True, targets=())
    assert plan.code == errors.OK and plan.checks[-2].reasons == ("not checked: --force",)


def test_a_to_host_running_a_descendant_is_refused_unless_forced():
    # prod1 got a hotfix (C, a descendant of the candidate A) with deploy --ref: promoting A would drop it
    hotfixed = TargetFacts("prod1", C, pin=C, head=C, ahead=True)
    code, why = refusals(host(), targets=[hotfixed, TargetFacts("prod2", B, head=B)])
    assert code == errors.FAILED
    assert why == ["prod1 runs cccccccccc, a descendant of aaaaaaaaaa: promoting would move it back; "
                   "--force promotes it anyway"]
    plan = decide("staging", "production", [host()], ON_MAIN, True, [hotfixed])
    assert plan.code == errors.OK and plan.refusals == [] and plan.checks[-1].reasons == (why[0],)


def test_a_to_host_already_at_the_candidate_has_nothing_to_do():
    plan = decide("staging", "production", [host()], ON_MAIN, targets=[TargetFacts("prod1", A, pin=A, head=A),
                                                                      TargetFacts("prod2", B, head=B)])
    assert plan.refusals == [] and plan.already == ("prod1",) and plan.warnings == ()
    assert plan.to_dict()["already"] == ["prod1"]


def test_a_to_host_pinned_elsewhere_is_a_warning_not_a_refusal():
    pinned = TargetFacts("prod1", B, pin=B, pin_reason="hotfix by bob", head=B)
    plan = decide("staging", "production", [host()], ON_MAIN, targets=[pinned, TargetFacts("prod2", A, pin=A, head=A)])
    assert plan.refusals == [] and plan.code == errors.OK
    assert plan.warnings == ("prod1 is pinned to bbbbbbbbbb (hotfix by bob): promote replaces that pin with aaaaaaaaaa",)
    assert plan.to_dict()["warnings"] == list(plan.warnings)


def test_the_ancestry_is_checked_on_every_branch_of_the_to_hosts():
    main, release = Ancestry("prod1", "origin/main", True), Ancestry("prod3", "origin/release", False)
    targets = [TargetFacts("prod1", B, head=B, ancestry=main), TargetFacts("prod2", B, head=B),
               TargetFacts("prod3", B, head=B, ancestry=release)]
    plan = decide("staging", "production", [host()], targets=targets)
    assert [c.name for c in plan.checks].count("ancestor") == 2
    assert plan.refusals == ["aaaaaaaaaa is not an ancestor of origin/release (as prod3 fetched it); "
                             "--force promotes it anyway"]


def test_a_json_age_is_never_negative():
    from fabops.tasks.promote import _source_value

    # the host's clock is whole seconds: just after the watch it reads before deployed_at
    assert _source_value(host(age=-0.6), False)["age"] == 0.0
    assert _source_value(SourceFacts("stg1", A, None, NOW, HOUR), False)["age"] is None


def test_a_to_host_is_read_in_one_round_trip(monkeypatch):
    from fabops import promote
    from fabops.promote import read_target, target_cmd

    h = _stg1()
    assert "fetch" not in str(target_cmd(h, A, False)) and "fetch" in str(target_cmd(h, A, True))
    assert "merge-base --is-ancestor" in str(target_cmd(h, A, False))
    state = {"deployed": C, "pin": C, "pin_reason": "hotfix"}
    out = f"@@fabops:state\n{json.dumps(state)}\n\n@@fabops:head\n{C}\n@@fabops:ahead\nyes\n@@fabops:branch\nyes\n"
    monkeypatch.setattr(promote.Target, "of", staticmethod(lambda c, host: type("T", (), {"output": lambda s, cmd: out})()))
    assert read_target(None, h, A, True) == TargetFacts("stg1", C, C, "hotfix", C, True, Ancestry("stg1", "origin/main", True))
    # the checkout at the candidate itself is not ahead of it; no fetch, no ancestry
    out = out.replace(C, A)
    assert read_target(None, h, A, False) == TargetFacts("stg1", A, A, "hotfix", A, False, None)


def test_the_pins_reason_travels_with_the_run():
    """promote's words for the pin are the run's own (local-update --pin-reason),
    written with the pin in the run's locked save: a host already pinned to
    the candidate for another reason still gets them (a noop that pins);
    one pinned there with them has nothing to write."""
    from fabops.deploy import DeployOptions, local_update_argv
    from fabops.host.plan import Opts, plan
    from tests.test_plan import HOST, parse_row

    why = "promoted from staging by alice@laptop"
    st, facts, opts, _ = parse_row("promote | dep=A pin=A | ref=A o=B h=A | -")
    st.pin_reason = "deploy by bob@laptop"
    ours = Opts(trigger="promote", ref="A", pin_reason=why)
    assert plan(HOST, st, facts, ours).pin == "A"
    st.pin_reason = why
    assert plan(HOST, st, facts, ours).pin is None
    assert plan(HOST, st, facts, opts).pin is None  # a run without a reason of its own: as before
    argv = local_update_argv(_stg1(), "r1", DeployOptions(ref=A, trigger="promote", pin_reason=why), "cfg")
    assert argv[argv.index("--pin-reason") + 1] == why
    assert "--pin-reason" not in local_update_argv(_stg1(), "r1", DeployOptions(pin_reason=why), "cfg")


def test_a_host_mid_deploy_is_exit_4_and_outranks_nothing_worse():
    holder = {"trigger": "cron", "actor": "ec2-user@stg1", "run_id": "r1", "phase": "change"}
    code, why = refusals(host(holder=holder, in_progress="r1"))
    assert code == errors.LOCKED
    assert len(why) == 1 and why[0].startswith("stg1 is mid-deploy: locked: cron by ec2-user@stg1")
    # a held lock beside an unhealthy host: FAILED is the worse (docs/errors.md)
    assert refusals(host(holder=holder), host("stg2", down=("bot",)))[0] == errors.FAILED


def test_every_reason_is_its_own_line():
    code, why = refusals(host(age=60, down=("bot",)), host("stg2", age=60))
    assert len(why) == 3 and code == errors.FAILED


def test_span_reads_as_a_person_writes_it():
    assert [span(s) for s in (0, 45, 600, 3600, 3900, 90000)] == ["0s", "45s", "10m", "1h", "1h 5m", "1d 1h"]


def test_the_facts_are_read_from_one_round_trip():
    h = inventory.loads(yaml.safe_dump({"hosts": {"stg1": {"connection": "local", "app": {"path": "/srv/app"},
                                                            "promote_after": "30m"}}}), "x.yml").hosts["stg1"]
    assert h.promote_after == 1800.0
    assert "date +%s" in str(source_cmd(h)) and "flock" in str(source_cmd(h))
    state = {"deployed": A, "deployed_at": NOW - 100, "bad": {B: {"at": NOW - 50, "reason": "gate"}},
             "health": {"status": "ok"}, "in_progress": None, "last_result": "deployed"}
    out = (f"@@fabops:lock\nHELD\n{json.dumps({'trigger': 'deploy', 'actor': 'x'})}\n@@fabops:now\n{int(NOW)}\n"
           f"@@fabops:state\n{json.dumps(state)}\n@@fabops:end\n")
    f = parse_source(out, h, 1800.0)
    assert (f.deployed, f.now, f.min_age, f.health, f.result) == (A, NOW, 1800.0, "ok", "deployed")
    assert f.bad == ((B, NOW - 50, "gate"),) and f.holder == {"trigger": "deploy", "actor": "x"}


# ---------------------------------------------------------------- renderings

STG = ["stg1", "stg2"]


def _plan(kind):
    if kind == "disagree":
        return decide("staging", "production", [host(deployed=SHA[0] + "0" * 20), host("stg2", deployed=SHA[1] + "0" * 20)])
    if kind == "unhealthy":
        return decide("staging", "production", [host(deployed=SHA[0] + "0" * 20, age=600, down=("bot",)),
                                                 host("stg2", deployed=SHA[0] + "0" * 20,
                                                      bad=((SHA[2] + "0" * 20, NOW - 30, "gate: bot died 1.2 s after start"),))],
                      Ancestry("prod1", "origin/main", False),
                      targets=[TargetFacts("prod2", "5e6f7a8b9c" + "0" * 30, head="5e6f7a8b9c" + "0" * 30, ahead=True)])
    # prod1 already at the candidate, prod2 pinned elsewhere (a warning)
    cand, other = SHA[0] + "0" * 20, SHA[1] + "0" * 20
    return decide("staging", "production", [host(deployed=cand), host("stg2", deployed=cand)], ON_MAIN,
                  targets=[TargetFacts("prod1", cand, pin=cand, head=cand),
                           TargetFacts("prod2", other, pin=other, pin_reason="hotfix by bob@laptop", head=other)])


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["disagree", "unhealthy", "ok"])
def test_the_plan_renders_each_check(kind, width, frozen, capsys, monkeypatch):
    from fabops.tasks.promote import render_plan

    text = render(capsys, monkeypatch, width, render_plan, _plan(kind), kind == "ok")
    assert ("refused:" in text) == (kind != "ok")
    check(f"promote-{kind}", width, text)


def test_the_json_envelope_validates(frozen):
    from fabops.fanout import FanoutResult, HostResult
    from fabops.host.report import envelope_of
    from fabops.tasks.promote import _source_value

    plan = _plan("unhealthy")
    doc = envelope_of({"stg1": _source_value(host(), False), "stg2": _source_value(host("stg2"), True)},
                      plan.code, promote=plan.to_dict())
    jsonschema.validate(json.loads(json.dumps(doc)), json_schema())
    assert doc["promote"]["refused"] and doc["promote"]["checks"][0] == {"name": "lock", "ok": True, "reasons": [],
                                                                         "code": 0}
    ok = envelope_of({"stg1": _source_value(host(age=-0.6), True)}, errors.OK, promote=_plan("ok").to_dict())
    jsonschema.validate(json.loads(json.dumps(ok)), json_schema())  # already and warnings
    assert ok["promote"]["already"] == ["prod1"] and len(ok["promote"]["warnings"]) == 1
    del FanoutResult, HostResult


# ---------------------------------------------------------------- the lock


def _look(holder=None) -> str:
    state = {"deployed": A, "deployed_at": NOW - 2 * HOUR, "last_result": "deployed"}
    held = f"HELD\n{json.dumps(holder)}\n" if holder else ""
    return f"@@fabops:lock\n{held}@@fabops:now\n{int(NOW)}\n@@fabops:state\n{json.dumps(state)}\n@@fabops:end\n"


class _Host:
    """A host whose looks answer in turn (read_source's round trips)."""

    def __init__(self, monkeypatch, *looks):
        from fabops import promote

        self.looks, self.asked = list(looks), 0
        monkeypatch.setattr(promote.Target, "of", staticmethod(lambda c, host: self))

    def output(self, cmd):
        self.asked += 1
        return self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]


def _stg1():
    return inventory.loads(yaml.safe_dump({"hosts": {"stg1": {"connection": "local", "app": {"path": "/srv/app"}}}}),
                           "x.yml").hosts["stg1"]


def test_a_run_in_its_watch_is_waited_for_as_a_deploy_waits(monkeypatch):
    import time

    from fabops.promote import read_source

    watching = {"trigger": "cron", "actor": "c", "phase": "watch", "watch_ends": time.time() + 5}
    fake = _Host(monkeypatch, _look(watching), _look(watching), _look())
    said, slept = [], []
    facts = read_source(None, _stg1(), None, None, said.append, clock=lambda: 0.0, sleep=slept.append)
    assert facts.holder == {} and fake.asked == 3 and len(slept) == 2
    assert said == ["waiting for cron by c"]
    assert facts.min_age == 3600.0  # no promote_after: the documented default


def test_a_run_mid_change_is_exit_4_unless_wait_is_given(monkeypatch):
    from fabops.promote import read_source

    changing = {"trigger": "deploy", "actor": "d", "phase": "change", "run_id": "r9"}
    _Host(monkeypatch, _look(changing))
    facts = read_source(None, _stg1(), 0.0, None, clock=lambda: 0.0, sleep=lambda s: None)
    assert facts.holder == changing
    assert decide("staging", "production", [facts], ON_MAIN, targets=()).code == errors.LOCKED
    ticks = iter(range(0, 1000, 2))
    fake = _Host(monkeypatch, _look(changing), _look(changing), _look())
    facts = read_source(None, _stg1(), 0.0, 10.0, clock=lambda: float(next(ticks)), sleep=lambda s: None)
    assert facts.holder == {} and fake.asked == 3  # --wait 10: waited until it was free
    fake = _Host(monkeypatch, _look(changing))
    facts = read_source(None, _stg1(), 0.0, 3.0, clock=lambda: float(next(ticks)), sleep=lambda s: None)
    assert facts.holder == changing  # still held when --wait ran out: refused, exit 4
