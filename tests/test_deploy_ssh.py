"""`inv deploy` from the laptop to a real sshd: install, detached run, follow,
rollback, locking, and a connection cut mid-deploy (ssh tier)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import ROOT, one, run_cli
from tests.harness.apps import RemoteApp, process_name
from tests.harness.sandbox import Origin
from tests.harness.sshd import free_port

pytestmark = pytest.mark.ssh


@pytest.fixture
def remote_app(ssh_host, tmp_path, deploy_env):
    return RemoteApp(ssh_host, tmp_path)


@pytest.fixture
def installed_app(ssh_host, tmp_path, deploy_env):
    """A host with this fabops installed already (docs/testing.md, "A test
    host's fabops"): for the tests that are not about the install."""
    return RemoteApp(ssh_host, tmp_path, seed_venv=True)


def test_deploy_installs_fabops_then_deploys_then_noops(remote_app):
    code, res = remote_app.deploy_json()
    assert code == 0, res
    assert res["result"] == "deployed" and "install fabops" in res["install"]
    assert remote_app.version() == "1"
    assert remote_app.state["deployed"] == remote_app.origin.head
    marker = json.loads(remote_app.host.path("~/.fabops/app/venv/fabops-install.json").read_text())
    assert marker["python"] == "3.11"
    assert remote_app.host.path("~/.fabops/app/host.yml").exists()
    hist = remote_app.history()
    assert hist[-1]["trigger"] == ("ci" if os.environ.get("CI") == "true" else "deploy") and hist[-1]["actor"]

    code, res = remote_app.deploy_json()
    assert (code, res["result"]) == (0, "noop")
    assert "already installed" in res["install"]

    remote_app.origin.good("2")
    r = remote_app.deploy()
    assert r.returncode == 0, r.stderr
    assert "[h1]" in r.stdout and "✓ fetch" in r.stdout and "deployed" in r.stdout
    assert remote_app.version() == "2"
    assert "s3cr3t" not in r.stdout + r.stderr
    assert "DEPLOYED" in remote_app.host.path("/var/log/bot-update.log").read_text()


def test_crash_rolls_back_then_rollback_task_pins_and_unpin_clears(installed_app):
    assert installed_app.deploy_json()[0] == 0
    v1 = installed_app.origin.head
    v2 = installed_app.origin.good("2")
    assert installed_app.deploy_json()[0] == 0
    installed_app.origin.crash("3")
    code, res = installed_app.deploy_json()
    assert (code, res["result"]) == (2, "rolled_back"), res
    assert installed_app.version() == "2"

    r = run_cli("rollback", "-i", str(installed_app.inventory), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hosts"]["h1"]["result"] == "deployed"
    assert installed_app.version() == "1"
    assert installed_app.state["pin"] == v1
    st = json.loads(run_cli("status", "-i", str(installed_app.inventory), "--json").stdout)["hosts"]["h1"]
    assert st["pin"] == v1 and st["services"][0]["active"]

    r = run_cli("unpin", "-i", str(installed_app.inventory))
    assert r.returncode == 0 and f"was pinned to {v1[:10]}" in r.stdout, r.stderr
    assert installed_app.state["pin"] is None
    rh = json.loads(run_cli("history", "-i", str(installed_app.inventory), "--json").stdout)["hosts"]["h1"]
    assert [x["result"] for x in rh] == ["deployed", "deployed", "rolled_back", "deployed"]
    assert rh[-1]["trigger"] == "rollback" and rh[-1]["to"] == v1 and v2


def test_bad_ref_flag_is_usage_error(remote_app):
    r = remote_app.deploy("--ref", "$(touch /tmp/pwned)")
    assert r.returncode == 64 and "not a valid git ref" in r.stderr


def test_connection_cut_mid_deploy_host_finishes(installed_app):
    assert installed_app.deploy_json()[0] == 0
    slow = "#!/bin/sh\nset -e\nrm -rf vendor\nmkdir -p vendor\nsleep 4\ncp requirements.txt vendor/installed.txt\n"
    v2 = installed_app.origin.push("v2 slow deps", {"VERSION": "2\n", "requirements.txt": "slow==1\n", "install-deps.sh": slow})
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "fabops.cli", "deploy", "-i", str(installed_app.inventory), "--liveness", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, COLUMNS="200"),
    )
    # wait until the laptop follows the run (it printed the checkout step),
    # then freeze the SSH session's sshd processes: the link is dead, not closed
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "✓ checkout" in line:
            break
    assert any("✓ checkout" in x for x in seen), seen
    sessions = [p for p in installed_app.host.namespace_pids() if p != installed_app.host.pid and process_name(p) == "sshd"]
    for pid in sessions:
        os.kill(pid, signal.SIGSTOP)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        for pid in sessions:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
    assert proc.returncode == 3, (out, err)
    assert "lost contact: no event from the host for 1 s" in err and "goes on on the host" in err
    # the host-side run finishes on its own
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and installed_app.state.get("deployed") != v2:
        time.sleep(0.2)
    assert installed_app.state["deployed"] == v2
    assert installed_app.history()[-1]["result"] == "deployed"
    assert installed_app.version() == "2"
    # and the laptop can follow that run again by its id
    import re

    run_id = re.search(r"The run (\S+) goes on", err).group(1)
    code, res = installed_app.deploy_json("--attach", run_id)
    assert (code, res["result"], res["run_id"]) == (0, "deployed", run_id)


def test_restart_is_agentless_locked_and_polls_readiness(installed_app):
    assert installed_app.deploy_json()[0] == 0
    pid_before = int(installed_app.host.path("~/.fabops/app/services/bot.pid").read_text().split()[0])
    r = run_cli("restart", "-i", str(installed_app.inventory), "--json")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)["hosts"]["h1"]["services"]
    assert items[0]["ok"] and items[0]["phase"] == "ready" and items[0]["http_status"] == 200
    pid_after = int(installed_app.host.path("~/.fabops/app/services/bot.pid").read_text().split()[0])
    assert pid_after != pid_before
    # the lock file is the one the host side uses: hold it and restart refuses
    from fabops.host.lock import HostLock

    with HostLock(str(installed_app.host.path("~/.fabops/app/lock")), {"actor": "alice@laptop", "trigger": "deploy", "target": "abc123"}).acquire():
        r = run_cli("restart", "-i", str(installed_app.inventory))
    assert r.returncode == 4
    assert "locked: deploy by alice@laptop (target abc123" in r.stderr
    r = run_cli("restart", "-i", str(installed_app.inventory), "--service", "nope")
    assert r.returncode == 64 and "unknown service 'nope'" in r.stderr


def test_dry_run_changes_nothing(remote_app):
    # before any install: the plan says it would install, and nothing is written
    code, res = remote_app.deploy_json("--dry-run")
    assert (code, res["result"]) == (0, "would_install"), res
    assert "would install fabops" in res["message"] and res["to"] == remote_app.origin.head
    # no verdict before the install (#24), only what a run that goes ahead would do after its gate
    assert f"then the host's planner decides, from the head of main (now {remote_app.origin.head[:10]}); " \
           "if it goes ahead, it would watch " in res["message"], res
    # a rollback's commit is the host's planner's pick, after the install: none named (#24)
    r = run_cli("rollback", "-i", str(remote_app.inventory), "--dry-run", "--json")
    res = one(r.stdout)
    assert (r.returncode, res["result"], res["to"]) == (0, "would_install", None) and \
        "then the host's planner decides, from its history: it picks the commit to roll back to" in res["message"], res
    assert not remote_app.host.path("~/.fabops/app/venv").exists()
    assert remote_app.deploy_json()[0] == 0
    pid = remote_app.host.path("~/.fabops/app/services/bot.pid").read_text()
    v2 = remote_app.origin.push("deps change", {"requirements.txt": "new==1\n"})
    code, res = remote_app.deploy_json("--dry-run")
    assert code == 0, res
    assert res["plan"]["to"] == v2 and res["plan"]["rules"] == ["sh install-deps.sh"] and res["plan"]["restart"] == ["bot"]
    assert "would deploy" in res["message"]
    assert remote_app.state["deployed"] != v2
    assert remote_app.host.path("~/.fabops/app/services/bot.pid").read_text() == pid
    assert len(remote_app.history()) == 1


def test_dry_run_runs_the_preflight_and_exits_as_the_real_run_would(installed_app, monkeypatch):
    """`deploy --dry-run` once said "noop" and exit 0 where the real run
    aborted: it now runs the read-only preflight (fetch, local changes,
    .env keys, disk, lock holder) and predicts the real run's result."""
    monkeypatch.delenv("CI", raising=False)  # a person's deploy: under CI a deploy waits for the lock
    assert installed_app.deploy_json()[0] == 0
    history = len(installed_app.history())
    code, res = installed_app.deploy_json("--dry-run")
    assert (code, res["result"]) == (0, "noop"), res

    # 1. an untracked file the target would overwrite: a person's work
    installed_app.host.path("~/app/notes.txt").write_text("mine\n")
    installed_app.origin.push("add notes", {"notes.txt": "theirs\n"})
    code, res = installed_app.deploy_json("--dry-run")
    assert (code, res["result"]) == (2, "would_abort"), res
    assert "local changes" in res["message"] and "notes.txt" in res["message"]
    real_code, real = installed_app.deploy_json()
    assert (real_code, real["result"]) == (2, "aborted") and "notes.txt" in real["message"]
    code, res = installed_app.deploy_json("--dry-run", "--stash")  # what --stash would do instead
    assert (code, res["result"]) == (0, "would_deploy"), res
    installed_app.host.path("~/app/notes.txt").unlink()

    # 2. a key the new .env.example needs and the host's .env lacks
    installed_app.origin.push("needs a key", {".env.example": "DISCORD_TOKEN=\nNEW_SECRET=\n"})
    code, res = installed_app.deploy_json("--dry-run")
    assert (code, res["result"]) == (2, "would_abort") and "NEW_SECRET" in res["message"], res
    assert "s3cr3t-token-value" not in json.dumps(res)
    assert installed_app.deploy_json()[0] == 2
    with installed_app.host.path("~/app/.env").open("a") as fh:
        fh.write("NEW_SECRET=x\n")
    code, res = installed_app.deploy_json("--dry-run")
    assert (code, res["result"]) == (0, "would_deploy") and res["plan"]["to"] == installed_app.origin.head, res

    # 3. a run holding the lock: the real run would stop with exit 4
    from fabops.host.lock import HostLock

    lock = HostLock(str(installed_app.host.path("~/.fabops/app/lock")),
                    {"actor": "alice@laptop", "trigger": "cron", "target": "abc123"})
    with lock.acquire():
        code, res = installed_app.deploy_json("--dry-run")
        assert (code, res["result"]) == (4, "locked") and "alice@laptop" in res["message"], res
        code, res = installed_app.deploy_json("--dry-run", "--wait", "30")
        assert (code, res["result"]) == (0, "would_deploy") and "locked now" in res["message"], res

    # a dry run wrote no history, no state, and left the lock free
    assert len(installed_app.history()) == history + 2  # the two real aborts only
    assert installed_app.deploy_json()[0] == 0


def test_two_hosts_parallel_then_rolling_stops_at_first_failure(sshd_factory, tmp_path, deploy_env):
    h1 = sshd_factory("127.0.0.1")
    h2 = sshd_factory("127.0.0.2")
    origin = Origin(tmp_path)
    entries = {}
    for name, host in (("h1", h1), ("h2", h2)):
        port = free_port()
        host.ssh(f"git clone --quiet {origin.bare} ~/app && printf 'DISCORD_TOKEN=x\\nPORT={port}\\n' > ~/app/.env")
        svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": port,
               "check": {"url": f"http://127.0.0.1:{port}/health"}, "timeout": "20s", "settle": "200ms", "watch": "1s"}
        entries[name] = host.inventory_entry(app={"path": "~/app"}, services=[svc],
                                             deps=[{"when": ["requirements.txt"], "run": "sh install-deps.sh"}])
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"hosts": entries, "groups": {"web": ["h1", "h2"]}}, sort_keys=False))
    r = run_cli("deploy", "-i", str(inv), "-H", "web", "--parallel", "2", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[h1]" in r.stdout and "[h2]" in r.stdout
    origin.crash("2")
    r = run_cli("deploy", "-i", str(inv), "-H", "web", "--rolling", "1", "--json", timeout=300)
    data = json.loads(r.stdout)
    assert r.returncode == 2 and data["code"] == 2 and data["schema"] == 1
    data = data["hosts"]
    assert data["h1"]["result"] == "rolled_back"
    assert data["h2"]["code"] == 2 and "skipped" in data["h2"]["error"]
    h2_state = json.loads(h2.path("~/.fabops/app/state.json").read_text())
    assert h2_state["deployed"] != origin.head  # h2 was never touched


def test_twenty_concurrent_deploys_one_host(installed_app):
    """20 laptops deploy the same push at once: one run deploys it, the others
    wait for it and report its result or find the host locked (exit 4); sshd's
    MaxStartups (100:30:200 in the fixture) is not what rejects them."""
    assert installed_app.deploy_json()[0] == 0
    new = installed_app.origin.good("2")
    procs = [subprocess.Popen([sys.executable, "-m", "fabops.cli", "deploy", "-i", str(installed_app.inventory), "--json",
                               "--actor", f"dev{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env=dict(os.environ, COLUMNS="200")) for i in range(20)]
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        outcomes.append((p.returncode, out, err))
    codes = sorted(c for c, _, _ in outcomes)
    assert set(codes) <= {0, 4}, outcomes
    assert codes.count(0) >= 1
    records = [h for h in installed_app.history() if h["to"] == new and h["result"] == "deployed"]
    assert len(records) == 1  # deployed exactly once
    assert installed_app.state["deployed"] == new and installed_app.version() == "2"
    for code, out, err in outcomes:
        if code == 4:
            assert "locked:" in out + err
    assert installed_app.host.ssh("git -C ~/app fsck --no-progress", check=False).returncode == 0
