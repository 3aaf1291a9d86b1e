"""Trial (#24, a new user's trial of the deploy, item 3): `inv deploy -H
local --attach RUN_ID` on a run that had ended minutes before replayed it
as if it were live: its stale pids, no line saying it had ended, and
without the pin line the run itself printed. Attaching to a run that has
ended says so plainly, with its result and when, replays the steps it
recorded as finished, says where the host is now if it has moved on, and
exits with the run's recorded code (docs/pipeline.md, "Deploy from a
laptop or CI")."""
import json

import pytest

from tests.conftest import one, run_cli
from tests.test_golden import NOW, SHA, WIDTHS, check, frozen, render  # noqa: F401 (frozen: a fixture)


def test_attach_to_an_ended_run_says_it_ended(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    inv = str(sandbox.inventory)
    sandbox.result()
    sandbox.origin.good("2")
    sandbox.result()
    r = run_cli("rollback", "-i", inv, "-H", "local", "--json", timeout=180)
    rollback = one(r.stdout)
    pinned, rid = rollback["to"], rollback["run_id"]
    # the pin still stands: said as the rollback said it
    r = run_cli("deploy", "-i", inv, "-H", "local", "--attach", rid, env={"COLUMNS": "200"}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"run {rid} (rollback by " in r.stdout and "already ended, at " in r.stdout and ": deployed, and it pinned the host" in r.stdout, r.stdout
    assert f"[local] pinned to {pinned[:10]}: cron stays on it" in r.stdout, r.stdout
    assert "pid" not in r.stdout and "moved on" not in r.stdout, r.stdout  # its live lines are not replayed
    # the host moves on: a deploy clears the pin and ships origin's head
    v3 = sandbox.origin.good("3")
    r = run_cli("deploy", "-i", inv, "-H", "local", "--json", timeout=180)
    assert r.returncode == 0 and sandbox.state["deployed"] == v3, r.stdout + r.stderr
    r = run_cli("deploy", "-i", inv, "-H", "local", "--attach", rid, env={"COLUMNS": "200"}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f": deployed, and it pinned the host to {pinned[:10]}; its recorded steps:" in r.stdout, r.stdout
    assert f"the host has moved on since: it is at {v3[:10]} now, not pinned" in r.stdout, r.stdout
    assert "cron stays on it" not in r.stdout, r.stdout
    # a run that failed: its recorded code (aborted, 2), with --json the recorded result
    (sandbox.app / "app.py").write_text((sandbox.app / "app.py").read_text() + "# a person's edit\n")
    sandbox.origin.good("4")
    r = run_cli("deploy", "-i", inv, "-H", "local", "--json", timeout=180)
    aborted = one(r.stdout)
    assert (r.returncode, aborted["result"]) == (2, "aborted"), r.stdout
    r = run_cli("deploy", "-i", inv, "-H", "local", "--attach", aborted["run_id"], env={"COLUMNS": "200"})
    assert r.returncode == 2 and "already ended, at " in r.stdout and ": aborted; its recorded steps:" in r.stdout, r.stdout + r.stderr
    assert "✗ preflight" in r.stdout and "local changes (M app.py)" in r.stdout, r.stdout
    r = run_cli("deploy", "-i", inv, "-H", "local", "--attach", aborted["run_id"], "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["hosts"]["local"] == dict(aborted, install=None), r.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_an_ended_runs_replay(width, frozen, capsys, monkeypatch):  # noqa: F811
    """The replay as printed, at 80 and 200 columns: a rollback that
    ended 7 minutes ago, the host moved on since."""
    from fabops.deploy import END, DeployOutcome, _replay
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _Printer, _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    host, run_id = "find-to-do", "20261129T133940-4f2e1a"
    result = {"result": "deployed", "exit_code": 0, "from": SHA[2], "to": SHA[1], "pinned": SHA[1],
              "run_id": run_id, "trigger": "rollback", "actor": "alice@laptop", "duration": 9.2,
              "subject": "Switch the recorder to the new voice gateway API", "author": "Alice",
              "message": f"{SHA[2][:10]} -> {SHA[1][:10]}", "warnings": [],
              "steps": [{"name": "fetch", "ok": True, "seconds": 0.4, "message": f"origin/main is {SHA[2][:10]}"},
                        {"name": "checkout", "ok": True, "seconds": 0.1, "message": SHA[1][:10]},
                        {"name": "restart voice-meeting-discord-bot.service", "ok": True, "seconds": 2.3,
                         "message": "ready (1 HTTP check)"},
                        {"name": "watch", "ok": True, "seconds": 30.0, "message": "stayed up through the 30 s watch"}]}
    recorded = [{"kind": "start", "t": NOW - 460}, {"kind": "heartbeat", "t": NOW - 450},
                {"kind": "log", "message": "voice-meeting-discord-bot.service active, pid 4242", "t": NOW - 450},
                {"kind": "result", "t": NOW - 420, **result}]

    def replayed():
        outcome = DeployOutcome(host, run_id)
        on_event = _Printer(len(host))(host)
        _replay(outcome, recorded, (SHA[2], None), f"`fabops history -H {host}`", on_event)
        on_event(END)
        _report(FanoutResult([HostResult(host, value=outcome)]), False, pins=outcome.pin_said)

    text = render(capsys, monkeypatch, width, replayed)
    flat = " ".join(text.split())
    assert "already ended, at 2026-11-29 13:39:40 UTC (7 min ago): deployed, and it pinned the host to" in flat, text
    assert "pid 4242" not in text and "cron stays on it" not in text, text
    assert f"the host has moved on since: it is at {SHA[2][:10]} now, not pinned" in flat, text
    check("deploy-attach-ended", width, text)


def test_attach_over_ssh_reads_whether_the_run_ended_in_one_round_trip(monkeypatch):
    """The same over SSH: one command reads the event file's last line
    and state.json (deploy.ended_cmd); a run that ended is replayed, not
    followed. Here with a stand-in for the link."""
    import yaml

    from fabops import deploy, inventory

    spec = {"app": {"path": "/srv/app"}, "services": [{"name": "bot"}]}
    h = inventory.loads(yaml.safe_dump({"hosts": {"h1": spec}}), "x.yml").hosts["h1"]
    result = {"result": "rolled_back", "exit_code": 2, "from": SHA[1], "to": SHA[2], "run_id": "r1",
              "trigger": "deploy", "actor": "alice@laptop", "message": "bot died; rolled back", "warnings": [],
              "steps": [{"name": "restart bot", "ok": False, "seconds": 1.0, "message": "bot died"}]}
    asked = []

    class Link:
        def output(self, cmd, timeout=None):
            asked.append(str(cmd))
            return json.dumps({"kind": "result", "t": NOW - 60, **result}) + "\n\n" + json.dumps(
                {"deployed": SHA[1], "pin": None})

    monkeypatch.setattr(deploy.Target, "of", staticmethod(lambda c, host: Link()))
    monkeypatch.setattr(deploy, "follow", lambda *a, **k: pytest.fail("an ended run is not followed"))
    seen = []
    outcome = deploy._deploy_host(None, h, deploy.DeployOptions(attach="r1"), seen.append)
    assert len(asked) == 1 and "runs/r1.jsonl" in asked[0] and "state.json" in asked[0], asked
    assert outcome.exit_code == 2 and outcome.result == result, outcome.result
    assert seen[0]["kind"] == "log" and ": rolled_back; its recorded steps:" in seen[0]["message"], seen
    assert [e["kind"] for e in seen] == ["log", "step", "result"], seen  # it left the host where it is now
