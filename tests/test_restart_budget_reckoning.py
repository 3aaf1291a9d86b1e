"""Review3 #7: the restart budget is one reckoning. health --fix and the
planner asked `len(recent) >= RESTART_LIMIT` themselves while status and
monitor showed host/state.budget_spent_until; now all ask it, and status
and monitor show the backoff by one rule (monitor.backoff_shown)."""
from __future__ import annotations

import pytest

from fabops.host.health import HealthFacts, plan_health
from fabops.host.plan import Plan, plan
from fabops.host.state import State, budget_spent_until
from fabops.monitor import backoff_shown
from tests.test_health_plan import HOST as HEALTH_HOST
from tests.test_plan import HOST, NOW, parse_row

# a hand edit of state.json may leave what is not a time in `restarts`
CASES = [
    [],
    [NOW - 60, NOW - 120],
    [NOW - 60, NOW - 120, NOW - 180],
    [NOW - 60, NOW - 120, None],
    [NOW - 60, "x", NOW - 120, NOW - 180],
    [NOW - 60, NOW - 120, NOW - 4000, NOW - 5000],
]


@pytest.mark.parametrize("restarts", CASES)
def test_health_and_the_planner_ask_the_one_budget(restarts):
    spent = budget_spent_until(restarts, NOW) is not None
    facts = HealthFacts(sick=(("bot", "bot is not running"),), prev={}, restarts=tuple(restarts), now=NOW,
                        lock="", restarted=(), before=())
    assert (plan_health(HEALTH_HOST, facts, True).kind == "backoff") == spent, restarts
    st, pfacts, opts, _ = parse_row("cron | dep=A | o=A h=A sick=bot | x")
    got = plan(HOST, State(**{**st.__dict__, "restarts": list(restarts)}), pfacts, opts)
    assert isinstance(got, Plan) and (got.kind == "abort") == spent, (restarts, got)


@pytest.mark.parametrize("services, shown", [
    ([{"name": "bot", "active": False}], True),  # status's facts: no ports
    ([{"name": "bot", "active": True}], False),
    ([{"name": "bot", "active": True, "port": 3013, "port_open": False, "http_expect": None}], True),
    ([{"name": "bot", "active": True, "port": 3013, "port_open": True, "http_expect": 200, "http_status": 502}],
     True),
    ([{"name": "bot", "active": True, "port": 3013, "port_open": True, "http_expect": 200, "http_status": 200}],
     False),
    ([], False),
])
def test_status_and_monitor_show_the_backoff_by_one_rule(services, shown):
    assert backoff_shown(services) == shown


def test_a_persons_deploy_restarts_past_the_spent_budget(sandbox, monkeypatch):
    """Trial #24: with 3 automatic restarts in the last hour a person's
    deploy was refused as broken (exit 5), 'a person is needed'. The
    budget limits cron's runs; a person's deploy restarts the service, and
    the budget's record stays the automatic restarts."""
    import json as _json
    import time as _time

    monkeypatch.delenv("CI", raising=False)
    code, _ = sandbox.result()
    assert code == 0
    spent = [_time.time() - 60 * i for i in range(3)]
    (sandbox.home / "state.json").write_text(_json.dumps(dict(sandbox.state, restarts=spent)))
    sandbox.stop()
    code, res = sandbox.result()  # cron: the backoff holds
    assert (code, res["result"]) == (5, "broken") and "restart backoff" in res["message"], res
    code, res = sandbox.result("--trigger", "deploy")
    # deployed, exit 1 for the warning every restart of a sick service says
    assert (code, res["result"]) == (1, "deployed") and res["warnings"][0].startswith("unhealthy on the deployed commit: "), res
    assert sandbox.health()["status"] == "ok" and sandbox.state["restarts"] == spent
