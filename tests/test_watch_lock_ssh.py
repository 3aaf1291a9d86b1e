"""A watch never locks people out, over SSH (#23; docs/pipeline.md,
"Lock"): a real sshd on loopback, fabops installed on the host by
`deploy`, the laptop's tasks as a person runs them. `deploy --no-watch`
returns at the gate while the host watches on, holding the lock; what meets
that watch:
- a second deploy waits for it, then deploys;
- `restart` and `reset` (agentless: flock(1) over SSH) end it and act at
  once: had they waited out the 120 s window, the watching run would have
  ended `deployed`, so its `superseded` result is the proof, with no clock;
and a CI deploy that meets cron's run mid-change waits for it (the laptop
sends the `ci` trigger; SSH does not forward $CI), where a person's deploy
is exit 4."""
import json
import subprocess
import time

import pytest
import yaml

from tests.conftest import run_cli
from tests.harness.apps import RemoteApp

pytestmark = pytest.mark.ssh


@pytest.fixture
def app(ssh_host, tmp_path, deploy_env, monkeypatch):
    monkeypatch.delenv("CI", raising=False)  # deploys here are a person's; the CI case says CI=true itself
    remote = RemoteApp(ssh_host, tmp_path, seed_venv=True)
    assert remote.deploy_json()[0] == 0
    return remote


def set_watch(app, seconds: str) -> None:
    data = yaml.safe_load(app.inventory.read_text())
    data["hosts"]["h1"]["services"][0]["watch"] = seconds
    app.inventory.write_text(yaml.safe_dump(data, sort_keys=False))


def holder(app) -> dict:
    try:
        return json.loads(app.host.path("~/.fabops/app/lock").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def wait_for_phase(app, phase: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = holder(app)
        if h.get("phase") == phase:
            return h
        time.sleep(0.05)
    raise AssertionError(f"no run reached {phase}: {holder(app)}")


def record(app, run_id: str) -> dict:
    return next(h for h in reversed(app.history()) if h["run_id"] == run_id)


def watching_deploy(app, version: str) -> str:
    """Deploy `version` with a 120 s watch and --no-watch: the run id of the
    host's run, which is watching when this returns."""
    set_watch(app, "120s")
    app.origin.good(version)
    code, res = app.deploy_json("--no-watch")
    assert code == 0 and res["watching"], res
    set_watch(app, "1s")  # what runs next watches briefly
    wait_for_phase(app, "watch")
    return res["run_id"]


def test_a_second_deploy_waits_for_the_watch_then_deploys(app):
    set_watch(app, "6s")
    v2 = app.origin.good("2")
    code, res = app.deploy_json("--no-watch")
    assert code == 0 and res["watching"], res
    wait_for_phase(app, "watch")
    v3 = app.origin.good("3")
    code, res = app.deploy_json()
    assert (code, res["result"], res["to"]) == (0, "deployed", v3), res
    shipped = [(h["trigger"], h["to"], h["result"]) for h in app.history()][-2:]
    assert shipped == [("deploy", v2, "deployed"), ("deploy", v3, "deployed")], shipped
    assert app.version() == "3"


@pytest.mark.parametrize("tool", ["restart", "reset"])
def test_restart_and_reset_end_a_watch_and_act_at_once(app, tool):
    run_id = watching_deploy(app, "2")
    r = run_cli(tool, "-i", str(app.inventory), "--actor", "ops@laptop", "--json",
                *(["--yes"] if tool == "reset" else []), timeout=120)
    end_file = app.host.path("~/.fabops/app/watch-end")
    assert r.returncode == 0, (r.stdout + r.stderr, end_file.read_text() if end_file.exists() else None,
                               app.host.path(f"~/.fabops/app/runs/{run_id}.jsonl").read_text()[-1500:])
    ended = record(app, run_id)
    assert ended["result"] == "superseded" and f"watch ended by {tool} by ops@laptop" in ended["message"], ended
    state = app.state
    assert ended["to"] not in state["bad"], state["bad"]  # no verdict on the commit
    if tool == "restart":
        said = json.loads(r.stdout)["hosts"]["h1"]["services"]
        assert all(f"run {run_id})" in (x["ended_watch"] or "") for x in said), said  # whose watch it ended
        # the deploy was not finished: the next run finishes it
        assert state["in_progress"]["run_id"] == run_id
        code, res = app.deploy_json()
        assert res["result"] == "deployed" and app.state["in_progress"] is None, res
    else:
        steps = json.loads(r.stdout)["hosts"]["h1"]["steps"]
        assert steps[0]["name"] == "end watch" and f"run {run_id})" in steps[0]["message"], steps
        assert state["in_progress"] is None and state["deployed"] == app.origin.head
    assert app.version() == "2"


def test_a_ci_deploy_over_ssh_waits_for_crons_run(app):
    slow = "#!/bin/sh\nset -e\nmkdir -p vendor\nsleep 4\ncp requirements.txt vendor/installed.txt\n"
    v2 = app.origin.push("v2 slow deps", {"VERSION": "2\n", "requirements.txt": "slow==1\n", "install-deps.sh": slow})
    h = app.host
    cron = subprocess.Popen(
        ["ssh", "-q", "-i", str(h.client_key), "-p", str(h.port), "-o", "BatchMode=yes", "-o",
         "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", f"{h.user}@{h.address}",
         "~/.fabops/app/venv/bin/fabops local-update --trigger cron --json -i ~/.fabops/app/host.yml"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (holder(app).get("target") == v2):
            time.sleep(0.05)
        assert holder(app).get("phase") == "change", holder(app)
        v3 = app.origin.good("3")
        r = run_cli("deploy", "-i", str(app.inventory), "--json", env={"CI": ""}, timeout=120)
        person = json.loads(r.stdout)["hosts"]["h1"]
        assert r.returncode == 4 and "locked: cron" in person.get("error", person.get("message", "")), r.stdout
        r = run_cli("deploy", "-i", str(app.inventory), "--json", env={"CI": "true"}, timeout=300)
        res = json.loads(r.stdout)["hosts"]["h1"]
        assert (r.returncode, res["result"], res["to"]) == (0, "deployed", v3), r.stdout + r.stderr
        out, _ = cron.communicate(timeout=120)
        assert json.loads(out)["hosts"]["h1"]["result"] == "deployed"
        assert [(x["trigger"], x["to"]) for x in app.history()][-2:] == [("cron", v2), ("ci", v3)]
    finally:
        if cron.poll() is None:
            cron.kill()
            cron.communicate()
