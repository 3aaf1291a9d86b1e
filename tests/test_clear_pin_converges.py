"""Trial (#24's fresh-clone trial, item 2): `fabops local-update
--clear-pin` on a host pinned to OLD (origin/main ahead) said `clearing
pin OLD`, then `noop: up to date at OLD`, and left the checkout on OLD
with no pin: the next run would deploy NEW. Clearing the pin converges on
the branch in the same run, as a deploy does after clearing one: the plan
sees the pin as cleared (host/plan.choose_target)."""
from fabops.host.plan import Facts, Opts, Plan, plan
from fabops.host.state import State
from tests.test_plan import HOST

A, B = "a" * 40, "b" * 40


def test_a_follower_that_clears_the_pin_plans_the_branch_head():
    pinned = State(deployed=A, pin=A)
    facts = Facts(origin=B, head=A, problems=(), changed=())
    for trigger in ("manual", "cron"):
        p = plan(HOST, pinned, facts, Opts(trigger=trigger, clear_pin=True))
        assert isinstance(p, Plan) and (p.kind, p.target, p.clear_pin) == ("deploy", B, True), p
        assert not any("pinned to" in line for line in p.says), p.says
        kept = plan(HOST, pinned, facts, Opts(trigger=trigger))  # without --clear-pin the pin holds
        assert kept.target == A, kept


def test_local_update_clear_pin_deploys_the_branch_in_the_same_run(sandbox):
    sandbox.result()
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    code, res = sandbox.result("--ref", v1, "--trigger", "deploy")  # deploy --ref OLD pins the host
    assert sandbox.state["pin"] == v1 and sandbox.head() == v1
    v3 = sandbox.origin.good("3")
    code, res = sandbox.result("--clear-pin", "--trigger", "manual")
    assert (code, res["result"], res["to"]) == (0, "deployed", v3), res
    assert sandbox.state["pin"] is None and sandbox.head() == v3 and sandbox.health()["version"] == "3"
