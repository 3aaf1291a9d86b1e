"""A restart or health --fix is no update check (new-user trial, #24): after
`restart` (or `health --fix` on a broken host) monitor said `last update
check 2 s ago: deployed`, because their record wrote state.json's
`last_check` and `last_result`. They now write their own `verdict` with the
`last_check` it follows (host/record.healthy_again); the host's verdict is
that one while no update check has run since, else the check's result
(host/state.verdict_of, host_result), no clock compared. Monitor and status
keep the check's own time and result and say the restart or fix on its own
line; a broken check that a fix superseded is no BROKEN finding; the next
update check ends the verdict. Pure rules, golden panels at 80 and 200, and
the sandbox through the real console script."""
import json
import re

import pytest
import yaml

from fabops.host.state import host_result, verdict_of
from tests import test_golden as golden
from tests.conftest import ROOT, one, run_cli
from tests.test_golden import NOW, WIDTHS, check, render

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still
CHECK = 1795890574.9047236  # the recorded state's last_check


@pytest.mark.parametrize("state, standing, result", [
    ({}, False, None),
    ({"last_check": 5.0, "last_result": "broken"}, False, "broken"),
    # a fix after the check: its verdict stands
    ({"last_check": 5.0, "last_result": "broken", "verdict": {"result": "deployed", "check": 5.0}}, True, "deployed"),
    # an update check since (its last_check is another): the check's result is the host's
    ({"last_check": 9.0, "last_result": "broken", "verdict": {"result": "deployed", "check": 5.0}}, False, "broken"),
    ({"last_check": 9.0, "last_result": "noop", "verdict": {"result": "deployed", "check": 5.0}}, False, "noop"),
    # no check ever ran: a verdict written then stands
    ({"verdict": {"result": "deployed", "check": None}}, True, "deployed"),
    # not a verdict: a hand edit, or one without the check it follows
    ({"last_check": 5.0, "last_result": "broken", "verdict": "deployed"}, False, "broken"),
    ({"last_check": 5.0, "last_result": "broken", "verdict": {"result": "deployed"}}, False, "broken"),
])
def test_the_hosts_verdict(state, standing, result):
    assert (verdict_of(state) is not None, host_result(state)) == (standing, result)


def _facts(verdict):
    from fabops import inventory, monitor

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    assert f'"last_check": {CHECK}' in case["output"]
    output = case["output"].replace('"last_result": "deployed"', '"last_result": "broken", "verdict": '
                                    + json.dumps(verdict))
    return monitor.judged(monitor.parse(output, host, NOW), host, NOW), host


@pytest.mark.parametrize("width", WIDTHS)
def test_the_panel_says_a_fix_as_what_it_was(width, frozen, capsys, monkeypatch):
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console

    facts, host = _facts({"result": "deployed", "trigger": "health", "actor": "ec2-user@find-to-do",
                          "at": NOW - 40, "check": CHECK, "message": "every service healthy at 9faf75dc81 again"})
    assert not [f for f in facts["findings"] if "BROKEN" in f["message"]], facts["findings"]
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    said = " ".join(text.replace("│", " ").split())
    assert "last update check 19h 17m ago: broken" in said, text  # the check's own time and result
    assert "health --fix by ec2-user@find-to-do 40.0 s ago: every service healthy at 9faf75dc81 again" in said
    check("monitor-verdict", width, text)


def test_a_verdict_an_update_check_followed_is_not_said(frozen):
    facts, _ = _facts({"result": "deployed", "trigger": "restart", "actor": "a", "at": NOW - 40,
                       "check": CHECK - 300, "message": "restarted bot; healthy again"})
    assert facts["deploy"]["verdict"] is None
    assert [f["message"] for f in facts["findings"] if "BROKEN" in f["message"]], facts["findings"]


def _deploy(sandbox) -> dict:
    return one(run_cli("monitor", "-i", str(sandbox.inventory), "-H", "local", "--json").stdout)["deploy"]


def test_a_restart_keeps_the_last_update_checks_time_and_result(sandbox):
    code, _ = sandbox.result()
    assert code == 0
    checked = sandbox.state
    inv = str(sandbox.inventory)
    r = run_cli("restart", "-i", inv, "-H", "local")
    assert r.returncode == 0, r.stdout + r.stderr
    dep = _deploy(sandbox)
    assert (dep["last_check"], dep["last_result"]) == (checked["last_check"], checked["last_result"]), dep
    assert (dep["verdict"]["trigger"], dep["verdict"]["result"]) == ("restart", "deployed"), dep
    r = run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": "80"})
    said = re.sub(r"\s+", " ", r.stdout.replace("│", " "))
    # nothing was broken before it: healthy, not "healthy again" (#24: host/record.healthy_again)
    assert f"restart by {dep['verdict']['actor']} " in said and "; healthy " in said, r.stdout
    assert "healthy again" not in said, r.stdout
    # cron's next poll is the next update check: the restart's line goes, the check's time is new
    code, _ = sandbox.result()
    assert code == 0
    dep = _deploy(sandbox)
    assert dep["verdict"] is None and dep["last_check"] > checked["last_check"], dep
    r = run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": "80"})
    assert not [ln for ln in r.stdout.splitlines() if ln.lstrip("│ ").startswith("restart by")], r.stdout
    # a noop poll writes no history record: the restart is still the last
    # run, said on its own line in status' words (render.last_run_lines)
    assert "restart by" in re.sub(r"\s+", " ", r.stdout.replace("│", " ")).split("last run:")[1], r.stdout


def test_the_pipelines_state_carries_the_verdict_and_never_writes_it(tmp_path):
    """#24: the pipeline's State dropped `verdict` when it loaded, so its
    planner read a BROKEN that a person's restart had cleared
    (plan.said_already, a hold off the deployed commit). It loads it and
    decides on State.result (host_result); its saves leave the key to its
    writers (a restart that records meanwhile keeps its verdict)."""
    from fabops.host.state import StateFile

    path = tmp_path / "state.json"
    verdict = {"result": "deployed", "check": 5.0, "trigger": "restart", "message": "restarted bot; healthy again"}
    path.write_text(json.dumps({"deployed": "a" * 40, "last_check": 5.0, "last_result": "broken",
                                "verdict": verdict}))
    store = StateFile(str(path))
    state = store.load()
    assert (state.verdict, state.result()) == (verdict, "deployed"), state
    later = dict(verdict, message="restarted bot; healthy")  # a restart records while the run holds its State
    path.write_text(json.dumps({**json.loads(path.read_text()), "verdict": later}))
    state.broken_said = "x"
    store.save(state)
    assert json.loads(path.read_text())["verdict"] == later and state.verdict == later
    state.last_check = 9.0  # an update check: the verdict no longer stands
    assert state.result() == "broken"
