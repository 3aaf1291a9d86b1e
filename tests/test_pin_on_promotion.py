"""New-user trial (#24): `deploy --ref SHA --no-watch` printed `[local]
pinned to SHA: cron stays on it until …` at once, while the host pins only
when it promotes the deploy, after its watch (as the dry run says), so
`status` right after showed no pin. The host's watch event says the pin
its plan makes on promotion; a run that returned at its gate says that the
host pins it once its watch passes (`pinned` null, `pin_on_promotion` in
--json), and the pin itself once it is true (`--attach`, a watched run)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests import test_golden
from tests.test_golden import NOW, SHA, WIDTHS, check, render
from tests.test_port_held_sandbox import _until

frozen = test_golden.frozen  # the golden files' clock and TZ (a fixture)


def test_a_no_watch_deploy_with_ref_says_the_pin_is_made_on_promotion(sandbox, tmp_path, monkeypatch):
    import yaml

    monkeypatch.delenv("CI", raising=False)
    assert sandbox.result()[0] == 0
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["services"][0]["watch"] = "4s"  # long enough to look at the host within it
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    inv = str(sandbox.inventory)
    v2 = sandbox.origin.good("2")
    r = run_cli("deploy", "-i", inv, "-H", "local", "--ref", v2, "--no-watch", "--json")
    res = json.loads(r.stdout)["hosts"]["local"]
    assert r.returncode == 0 and res["watching"] is True, r.stdout + r.stderr
    assert (res["pinned"], res["pin_on_promotion"]) == (None, v2), res
    assert not sandbox.state.get("pin"), sandbox.state  # not yet: the watch runs on
    done = run_cli("deploy", "-i", inv, "-H", "local", "--attach", res["run_id"], "--json", timeout=60)
    end = json.loads(done.stdout)["hosts"]["local"]
    assert (done.returncode, end["result"], end.get("pinned")) == (0, "deployed", v2), done.stdout
    assert sandbox.state.get("pin") == v2, sandbox.state
    v3 = sandbox.origin.good("3")
    r = run_cli("deploy", "-i", inv, "-H", "local", "--ref", v3, "--no-watch")
    said = " ".join(r.stdout.split())
    assert r.returncode == 0 and f"[local] pins the host to {v3[:10]} once its watch passes: cron then stays on " \
                                  "it until" in said, r.stdout + r.stderr
    assert "pinned to" not in said and sandbox.state.get("pin") == v2, r.stdout
    # the host goes on watching, then promotes and pins: true now, said by history
    assert _until(lambda: sandbox.state.get("pin") == v3, 60.0), sandbox.state


def _no_watch_outcome(pin):
    """deploy --ref's outcome as the laptop makes it when it stops
    following at the watch event (deploy._finish), the event naming `pin`."""
    import yaml

    from fabops import inventory as inv
    from fabops.deploy import DeployOptions, DeployOutcome, _finish

    spec = {"app": {"path": "/srv/app"}, "services": [{"name": "voice-meeting-discord-bot.service"}]}
    h = inv.loads(yaml.safe_dump({"hosts": {"staging-eu-west-1": spec}}), "x.yml").hosts["staging-eu-west-1"]
    outcome = DeployOutcome(h.name, "20261129T114640-4f2e1a")
    outcome.events = [{"kind": "start", "t": NOW - 2, "trigger": "deploy", "actor": "alice@laptop"}]
    _finish(h, DeployOptions(watch=False, actor="alice@laptop"), outcome,
            {"kind": "watch", "seconds": 30, "from": SHA[1], "to": SHA[2], "pin": pin, "t": NOW})
    return outcome


@pytest.mark.parametrize("width", WIDTHS)
def test_the_pending_pin_line(width, frozen, capsys, monkeypatch):
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    outcome = _no_watch_outcome(SHA[2])
    text = render(capsys, monkeypatch, width, _report, FanoutResult([HostResult("staging-eu-west-1", value=outcome)]),
                  False, pins=True)
    assert "pinned to" not in text and f"pins the host to {SHA[2][:10]} once its watch passes" in " ".join(
        text.split()), text
    check("deploy-no-watch-pin", width, text)
