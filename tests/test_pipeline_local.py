"""The update pipeline as cron runs it: `fabops local-update` on the host with a
local Context, a real bare origin, real git and the process back end.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, one, run_cli
from tests.harness.apps import Sandbox
from tests.harness.sandbox import git


def test_fresh_deploy_then_noop(sandbox):
    code, res = sandbox.result()
    assert code == 0, res
    assert res["result"] == "deployed"
    v1 = sandbox.origin.head
    assert sandbox.state["deployed"] == v1
    assert sandbox.health()["version"] == "1"
    assert [s["name"] for s in res["steps"]][:3] == ["fetch", "preflight", "checkout"]
    assert len(sandbox.history()) == 1

    pid = sandbox.pid()
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "noop")
    assert sandbox.pid() == pid  # nothing restarted
    assert len(sandbox.history()) == 1  # no history record for a no-op
    assert sandbox.state["last_result"] == "noop" and sandbox.state["last_check"] > 0


def test_new_commit_is_deployed_and_rule_runs_only_when_watched_file_changed(sandbox):
    sandbox.result()
    v2 = sandbox.origin.good("2")
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "deployed")
    assert sandbox.state["deployed"] == v2 and sandbox.head() == v2
    assert sandbox.health()["version"] == "2"
    assert not any(s["name"].startswith("deps") for s in res["steps"])  # requirements.txt unchanged

    v3 = sandbox.origin.push("new dependency", {"requirements.txt": "http-server==1.0\nextra==2\n"})
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "deployed"), res
    assert any(s["name"] == "deps: sh install-deps.sh" for s in res["steps"])
    assert (sandbox.app / "vendor" / "installed.txt").read_text().endswith("extra==2\n")
    assert sandbox.state["deployed"] == v3


def test_crash_on_boot_rolls_back_and_cron_skips_it(sandbox):
    sandbox.result()
    v1 = sandbox.origin.head
    bad = sandbox.origin.crash("2")
    code, res = sandbox.result()
    assert code == 2 and res["result"] == "rolled_back", res
    assert "rolled back to" in res["message"]
    assert sandbox.state["deployed"] == v1 and sandbox.head() == v1
    assert sandbox.health()["version"] == "1"
    assert bad in sandbox.state["bad"]

    pid = sandbox.pid()
    # a dry run predicts what cron will do, with its exit code, and writes nothing
    code, res = sandbox.result("--dry-run")
    assert (code, res["result"]) == (1, "skipped_bad"), res
    code, res = sandbox.result("--dry-run", "--trigger", "deploy")  # a person's deploy tries it again
    assert (code, res["result"]) == (0, "would_deploy"), res
    assert [h["result"] for h in sandbox.history()] == ["deployed", "rolled_back"]
    code, res = sandbox.result()  # cron again: remembered bad target, no restart
    assert (code, res["result"]) == (1, "skipped_bad")
    assert sandbox.pid() == pid
    code, res = sandbox.result()
    assert "already reported" in res["message"]

    # the held host's service dies: cron restarts the deployed commit (the
    # budget as ever) and says the hold, not only "already reported"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and \
            Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        time.sleep(0.05)
    code, res = sandbox.result()
    assert (code, res["result"]) == (1, "deployed") and "restarted bot" in res["message"], res
    assert [w for w in res["warnings"] if w.startswith(f"origin is at {bad[:10]}, which failed its gate")], res
    assert sandbox.health()["version"] == "1" and sandbox.pid() != pid and sandbox.head() == v1
    assert f"origin is at {bad[:7]}" in json.dumps(res), res

    v3 = sandbox.origin.good("3")  # origin moves on: deployed
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "deployed")
    assert sandbox.state["deployed"] == v3
    results = [h["result"] for h in sandbox.history()]
    # skipped_bad recorded once
    assert results == ["deployed", "rolled_back", "skipped_bad", "deployed", "deployed"], results


def test_unhealthy_commit_rolls_back(tmp_path):
    box = Sandbox(tmp_path, timeout="3s")
    try:
        box.result()
        box.origin.unhealthy("2")
        code, res = box.result()
        assert (code, res["result"]) == (2, "rolled_back"), res
        assert "gave HTTP 500, expected 200" in res["message"]
        assert box.health()["version"] == "1"
    finally:
        box.stop()


def test_dependency_rule_failure_never_restarts_and_recovers(sandbox):
    sandbox.result()
    v1 = sandbox.origin.head
    pid = sandbox.pid()
    sandbox.origin.push("broken deps", {"requirements.txt": "fail\n"})
    code, res = sandbox.result()
    assert code == 2 and res["result"] == "aborted", res
    assert "dependency rule `sh install-deps.sh` failed" in res["message"]
    assert sandbox.pid() == pid  # never restarted
    assert sandbox.head() == v1
    # the rule was re-run for the deployed commit: vendor/ is whole again
    assert (sandbox.app / "vendor" / "installed.txt").read_text() == "http-server==1.0\n"
    assert any(s["name"].startswith("re-run") and s["ok"] for s in res["steps"])


def test_stash_saves_thousands_of_files_in_the_way(sandbox):
    """The list of files to save goes through a file, never the command
    line: 3000 paths of 40 characters are past the kernel's 128 KiB limit
    on one argument, which a list in the command would hit."""
    sandbox.result()
    names = {f"data/generated-{i:05d}-with-a-longer-name.json": "{}\n" for i in range(3000)}
    sandbox.origin.push("v2 tracks generated data", {**names, "VERSION": "2\n"})
    for rel in names:
        target = sandbox.app / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("made on the host\n")
    code, res = sandbox.result("--stash")
    assert res["result"] == "deployed", res
    import tarfile

    with tarfile.open(Path(res["saved"]) / "untracked.tar.gz") as tar:
        assert sorted(tar.getnames()) == sorted(names)
    assert (sandbox.app / "data" / "generated-00000-with-a-longer-name.json").read_text() == "{}\n"
    assert not (Path(res["saved"]) / ".in-the-way").exists()


def test_a_persons_work_is_refused_then_stashed_and_other_untracked_files_are_kept(sandbox):
    """docs/pipeline.md, "Local changes": a modified tracked file and an
    untracked file the target would overwrite are a person's work; any other
    untracked file is kept and reported."""
    sandbox.result()
    (sandbox.app / "app.py").write_text((sandbox.app / "app.py").read_text() + "\n# hotfix on the host\n")
    (sandbox.app / "notes.txt").write_text("local notes\n")
    (sandbox.app / "CHANGELOG.md").write_text("written on the host\n")
    sandbox.origin.push("v2 adds a changelog", {"VERSION": "2\n", "CHANGELOG.md": "from the repo\n"})
    code, res = sandbox.result()
    assert code == 2 and res["result"] == "aborted"
    assert "M app.py" in res["message"] and "?? CHANGELOG.md" in res["message"] and "--stash" in res["message"]
    assert "notes.txt" not in res["message"]

    code, res = sandbox.result("--stash")
    assert (code, res["result"]) == (1, "deployed"), res  # deployed, with a warning about notes.txt
    assert any("notes.txt" in w and "untracked" in w for w in res["warnings"]), res["warnings"]
    saved = Path(res["saved"])
    assert "hotfix on the host" in (saved / "tracked.patch").read_text()
    import tarfile

    with tarfile.open(saved / "untracked.tar.gz") as tar:
        assert tar.getnames() == ["CHANGELOG.md"]
        assert tar.extractfile("CHANGELOG.md").read() == b"written on the host\n"
    assert oct(saved.stat().st_mode & 0o777) == "0o700"
    assert (sandbox.app / ".env").exists()  # ignored files are never touched
    assert (sandbox.app / "notes.txt").read_text() == "local notes\n"  # kept where it was
    assert (sandbox.app / "CHANGELOG.md").read_text() == "from the repo\n"


def test_files_our_own_rules_create_never_make_a_later_run_refuse(sandbox):
    """A dependency rule that writes an untracked lock file and a __pycache__
    (as `npm install` and Python do): every later run, cron or deploy,
    recovery included, goes through, even when a later commit adds that very
    lock file."""
    rule = ("#!/bin/sh\nset -e\nmkdir -p vendor __pycache__\ncp requirements.txt vendor/installed.txt\n"
            "echo lock > package-lock.json\necho x > __pycache__/app.cpython.pyc\n")
    sandbox.origin.push("v1b rule writes files", {"install-deps.sh": rule, "requirements.txt": "http-server==1.1\n"})
    code, res = sandbox.result()
    assert res["result"] == "deployed", res
    assert (sandbox.app / "package-lock.json").exists()
    assert set(sandbox.state["own_files"]) >= {"package-lock.json", "__pycache__/app.cpython.pyc"}
    # a crash commit whose rule runs again, then the recovery re-runs it
    sandbox.origin.push("v2 crashes", {"VERSION": "2\n", "BEHAVIOUR": "crash\n", "requirements.txt": "http-server==1.2\n"})
    code, res = sandbox.result()
    assert res["result"] == "rolled_back", res
    sandbox.origin.push("v3 tracks the lock file", {"VERSION": "3\n", "BEHAVIOUR": "ok\n",
                                                      "package-lock.json": "lock from the repo\n"})
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "deployed"), res
    assert not res["warnings"], res["warnings"]
    # the rule rewrote the now-tracked lock file, as `npm install` does: still ours
    assert (sandbox.app / "package-lock.json").read_text() == "lock\n"
    sandbox.origin.good("4")
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "deployed"), res


def test_a_preflight_abort_is_recorded_shown_and_notified_once(sandbox, tmp_path):
    from tests.harness.webhook import Hook

    rec = Hook()
    try:
        env = {"FABOPS_DISCORD_WEBHOOK": rec.url}
        assert sandbox.update(env=env).returncode == 0
        target = sandbox.origin.push("新機能追加: 要約を送信", {".env.example": "DISCORD_TOKEN=\nPORT=\nNEW_API_KEY=\n"})
        for _ in range(3):  # cron, every few minutes
            r = sandbox.update(env=env)
            assert r.returncode == 2 and one(r.stdout)["result"] == "aborted"
        aborted = [h for h in sandbox.history() if h["result"] == "aborted"]
        assert len(aborted) == 3 and all(h["to"] == target for h in aborted)
        assert aborted[0]["subject"] == "新機能追加: 要約を送信"
        log = (sandbox.base / "host" / "log" / "update.log").read_text(encoding="utf-8")
        assert log.count("ABORTED") == 3 and "新機能追加: 要約を送信" in log and "NEW_API_KEY" in log
        texts = [t for t in rec.texts() if "aborted" in t.lower()]
        assert len(texts) == 1 and "NEW_API_KEY" in texts[0] and "新機能追加" in texts[0], rec.texts()
        state = sandbox.state
        assert state["last_result"] == "aborted" and state["failing"]["target"] == target
        assert state["failing"]["count"] == 3
        r = run_cli("monitor", "-i", str(sandbox.inventory), "--json")
        assert r.returncode == 1, r.stdout
        warn = [f["message"] for f in json.loads(r.stdout)["hosts"]["local"]["findings"]]
        assert any("updates failing since" in m and "NEW_API_KEY" in m for m in warn), warn
        assert "s3cr3t" not in r.stdout + log
        # a person adds the key: the next run converges and the warning goes away
        with open(sandbox.app / ".env", "a") as fh:
            fh.write("NEW_API_KEY=k\n")
        r = sandbox.update(env=env)
        assert r.returncode == 0 and one(r.stdout)["result"] == "deployed"
        assert sandbox.state["failing"] is None
        assert run_cli("monitor", "-i", str(sandbox.inventory)).returncode == 0
    finally:
        rec.close()


def test_a_failed_dependency_rule_is_retried_with_backoff_not_marked_bad(sandbox):
    sandbox.result()
    flaky = "#!/bin/sh\n[ -f /nonexistent-network ] || { echo 'npm ERR! network ETIMEDOUT' >&2; exit 1; }\n"
    target = sandbox.origin.push("v2 needs the network", {"VERSION": "2\n", "requirements.txt": "x==2\n",
                                                           "install-deps.sh": flaky})
    code, res = sandbox.result()
    assert (code, res["result"]) == (2, "aborted"), res
    st = sandbox.state
    assert target not in st["bad"] and st["retry"]["target"] == target and st["retry"]["attempts"] == 1
    first_wait = st["retry"]["next_at"] - time.time()
    assert 800 < first_wait <= 900
    code, res = sandbox.result()  # cron again before the next try
    assert (code, res["result"]) == (1, "deferred") and "next try" in res["message"]
    assert sandbox.head() != target and sandbox.health()["version"] == "1"
    # the time comes: tried again, fails again, now an hour
    st["retry"]["next_at"] = time.time() - 1
    (sandbox.home / "state.json").write_text(json.dumps(st))
    code, res = sandbox.result()
    assert res["result"] == "aborted"
    assert 3500 < sandbox.state["retry"]["next_at"] - time.time() <= 3600
    assert sandbox.state["retry"]["attempts"] == 2
    # the network is back (a fixed rule): once the time comes, it deploys
    from fabops.host import pipeline

    assert pipeline.RETRY_BACKOFF == (900.0, 3600.0)
    sandbox.origin.push("v3 works offline", {"VERSION": "3\n", "install-deps.sh": "#!/bin/sh\nmkdir -p vendor\n"
                                              "cp requirements.txt vendor/installed.txt\n"})
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "deployed"), res
    assert sandbox.state["retry"] is None


def test_missing_env_keys_abort_without_showing_values(sandbox):
    sandbox.result()
    sandbox.origin.push("needs a new key", {".env.example": "DISCORD_TOKEN=\nPORT=\nNEW_API_KEY=\n"})
    r = sandbox.update()
    res = one(r.stdout)
    assert r.returncode == 2 and res["result"] == "aborted"
    assert "NEW_API_KEY" in res["message"]
    assert "s3cr3t" not in r.stdout + r.stderr
    assert "s3cr3t" not in (sandbox.home / "history.jsonl").read_text() if (sandbox.home / "history.jsonl").exists() else True


def test_concurrent_runs_one_deploys_other_is_locked(sandbox):
    sandbox.result()
    sandbox.origin.good("2")
    cmd = [sys.executable, "-m", "fabops.cli", "local-update", "-i", str(sandbox.inventory), "--json", "--actor", "tester", "--trigger", "cron"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    results = sorted(one(o[0])["result"] for o in outs)
    assert codes == [0, 4] and results == ["deployed", "locked"], outs
    locked = next(one(o[0]) for o in outs if one(o[0])["result"] == "locked")
    assert "cron by tester" in locked["message"] and "pid" in locked["message"]


def test_kill_minus_9_mid_run_then_next_run_converges(sandbox):
    sandbox.result()
    v2 = sandbox.origin.push("slow deps", {"requirements.txt": "slow==1\n", "install-deps.sh": "#!/bin/sh\nset -e\nrm -rf vendor\nmkdir -p vendor\nsleep 30\ncp requirements.txt vendor/installed.txt\n"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabops.cli", "local-update", "-i", str(sandbox.inventory), "--run-id", "killed"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    events = sandbox.home / "runs" / "killed.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if events.exists() and '"deps: sh install-deps.sh"' in events.read_text():
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert sandbox.state["in_progress"]["run_id"] == "killed"
    # fix the deps step on origin so the next run can finish
    (sandbox.origin.work / "install-deps.sh").write_text((ROOT / "examples/sample-app/install-deps.sh").read_text())
    v3 = sandbox.origin.push("fast deps again")
    code, res = sandbox.result()
    assert (code, res["result"]) == (1, "deployed"), res  # deployed, with a warning about the interrupted run
    assert any("interrupted run killed" in w for w in res["warnings"])
    assert sandbox.state["deployed"] == v3 and sandbox.state["in_progress"] is None
    assert sandbox.health()["version"] == "1"


def test_first_run_adopts_a_healthy_head(sandbox):
    # Start the app by hand as the legacy scripts would have, then let fabops take over.
    sandbox.result()
    (sandbox.home / "state.json").unlink()
    (sandbox.home / "history.jsonl").unlink()
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "noop")
    assert sandbox.state["deployed"] == sandbox.head()


def test_unhealthy_service_at_deployed_commit_is_restarted(sandbox):
    sandbox.result()
    sandbox.stop()
    code, res = sandbox.result()
    assert (code, res["result"]) == (1, "deployed"), res
    assert "restarted bot" in res["message"]
    assert sandbox.health()["version"] == "1"


def test_ref_pins_and_cron_keeps_the_pin(sandbox):
    sandbox.result()
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    code, res = sandbox.result()
    assert code == 0
    code, res = sandbox.result("--ref", v1, "--trigger", "rollback")
    assert (code, res["result"]) == (0, "deployed"), res
    assert sandbox.state["pin"] == v1
    sandbox.origin.good("3")
    code, res = sandbox.result()  # cron: stays pinned
    assert (code, res["result"]) == (0, "noop")
    assert sandbox.head() == v1
    code, res = sandbox.result("--clear-pin", "--trigger", "deploy")
    assert (code, res["result"]) == (0, "deployed")
    assert sandbox.state["pin"] is None and sandbox.health()["version"] == "3"


def test_ref_names_what_the_remote_has_now_not_the_hosts_own_branch(sandbox):
    """The host's `main` is where fabops last checked out (checkout -B), so
    `--ref main` once resolved to the deployed commit and did nothing while
    origin/main had moved on. A tag and an abbreviated SHA still work."""
    sandbox.result()
    v1 = sandbox.origin.head
    v2 = sandbox.origin.good("2")
    code, res = sandbox.result("--ref", "main", "--trigger", "deploy")
    assert (code, res["result"], res["to"]) == (0, "deployed", v2), res
    git("tag", "release-1", v1, cwd=sandbox.origin.work)
    git("push", "-q", "origin", "release-1", cwd=sandbox.origin.work)
    code, res = sandbox.result("--ref", "release-1", "--trigger", "deploy")
    assert (code, res["result"], res["to"]) == (0, "deployed", v1), res
    code, res = sandbox.result("--ref", v2[:10], "--trigger", "deploy")
    assert (code, res["result"], res["to"]) == (0, "deployed", v2), res


def test_bad_ref_is_a_usage_error(sandbox):
    r = sandbox.update("--ref", "main..evil")
    assert r.returncode == 64 and "not a valid git ref" in r.stderr


def test_history_and_status_tasks_read_the_host(sandbox):
    sandbox.result()
    sandbox.origin.good("2")
    sandbox.result()
    r = run_cli("history", "-i", str(sandbox.inventory), "--json")
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)["hosts"]["local"]
    assert [x["result"] for x in recs] == ["deployed", "deployed"]
    assert all(x["trigger"] == "cron" for x in recs)
    r = run_cli("status", "-i", str(sandbox.inventory), "--json")
    data = json.loads(r.stdout)["hosts"]["local"]
    assert data["services"][0]["active"] and data["deployed"] == sandbox.origin.head
    r = run_cli("history", "-i", str(sandbox.inventory))
    assert "deployed" in r.stdout


def test_update_log_is_written(sandbox):
    sandbox.result()
    log = (sandbox.base / "host" / "log" / "update.log").read_text()
    assert "DEPLOYED" in log and "s3cr3t" not in log


def test_deploy_of_the_target_cron_is_deploying_waits_and_reports_its_result(sandbox):
    sandbox.result()
    slow = "#!/bin/sh\nset -e\nrm -rf vendor\nmkdir -p vendor\nsleep 2\ncp requirements.txt vendor/installed.txt\n"
    v2 = sandbox.origin.push("v2 slow deps", {"requirements.txt": "slow==1\n", "install-deps.sh": slow})
    cron = subprocess.Popen(
        [sys.executable, "-m", "fabops.cli", "local-update", "-i", str(sandbox.inventory), "--run-id", "cronrun",
         "--actor", "cron@host", "--trigger", "cron"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    events = sandbox.home / "runs" / "cronrun.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (events.exists() and "checkout" in events.read_text()):
        time.sleep(0.05)
    code, res = sandbox.result("--trigger", "deploy", "--actor", "ci@github")  # --wait 0, yet it waits
    cron.wait(timeout=60)
    assert cron.returncode == 0
    assert (code, res["result"]) == (0, "deployed"), res
    assert "waited for run cronrun (cron by cron@host); it ended deployed" in res["message"]
    assert [h["run_id"] for h in sandbox.history()][-1] == "cronrun"  # no second record
    assert sandbox.state["deployed"] == v2


def test_other_target_holder_means_locked_not_wait(sandbox):
    from fabops.host.lock import HostLock

    sandbox.result()
    with HostLock(str(sandbox.home / "lock"), {"actor": "bob", "trigger": "cron", "target": "0" * 40, "run_id": "x"}).acquire():
        code, res = sandbox.result("--trigger", "deploy", "--wait", "0")  # explicit 0 wins over CI's 300 s
    assert (code, res["result"]) == (4, "locked")
    assert "cron by bob (target 0000000000" in res["message"]


@pytest.mark.skipif(not __import__("shutil").which("script"), reason="needs util-linux script(1) for a pseudo-terminal")
def test_deploy_on_a_terminal_shows_a_live_board_and_in_ci_plain_lines(sandbox):
    sandbox.result()
    sandbox.origin.good("2")
    env = dict(os.environ, COLUMNS="120")
    env.pop("CI", None)
    cmd = f"{sys.executable} -m fabops.cli deploy -i {sandbox.inventory}"
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, env=env, cwd=ROOT,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, r.stdout
    assert "progress" in r.stdout and "done" in r.stdout and "deployed" in r.stdout
    sandbox.origin.good("3")
    r = run_cli("deploy", "-i", str(sandbox.inventory), env={"CI": "true"})
    assert r.returncode == 0, r.stderr
    assert "[local] ✓ fetch" in r.stdout and "progress" not in r.stdout
    assert sandbox.history()[-1]["trigger"] == "ci"


def test_ci_deploy_writes_the_github_step_summary(sandbox, tmp_path):
    summary = tmp_path / "summary.md"
    r = run_cli("deploy", "-i", str(sandbox.inventory), env={"CI": "true", "GITHUB_STEP_SUMMARY": str(summary),
                                                             "GITHUB_ACTOR": "octocat"})
    assert r.returncode == 0, r.stderr
    text = summary.read_text()
    assert "### fabops deploy" in text and "| local | deployed |" in text
    assert sandbox.history()[-1]["actor"] == "octocat@github-actions"
    # what shipped: the subject (UTF-8 intact) and author, in the summary and the table
    sandbox.origin.push("新機能追加 | 会議の要約", {"VERSION": "2\n"})
    r = run_cli("deploy", "-i", str(sandbox.inventory), env={"CI": "true", "GITHUB_STEP_SUMMARY": str(summary),
                                                             "GITHUB_ACTOR": "octocat"})
    assert r.returncode == 0, r.stderr
    assert "新機能追加 \\| 会議の要約 (" in summary.read_text(encoding="utf-8")
    assert "新機能追加 | 会議の要約" in r.stdout
    rec = sandbox.history()[-1]
    assert rec["subject"] == "新機能追加 | 会議の要約" and rec["author"]


def test_retry_schedule_is_15_minutes_then_hourly():
    from fabops.host.pipeline import retry_delay

    assert [retry_delay(n) for n in (1, 2, 3, 10)] == [900.0, 3600.0, 3600.0, 3600.0]
    assert retry_delay(0) == 900.0  # never sooner than the first step


def test_the_actor_is_known_without_user_or_logname(monkeypatch):
    """Cron and `env -i` may set neither; the history once said `unknown`."""
    import pwd

    from fabops.deploy import default_actor as laptop_actor
    from fabops.host.record import default_actor

    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("LOGNAME", raising=False)
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert default_actor().split("@")[0] == me and laptop_actor().split("@")[0] == me


def test_only_run_update_tells_a_dry_run_from_a_real_one(tmp_path, monkeypatch):
    """A Pipeline's options cannot ask it to plan (a Pipeline that planned
    would deploy the dry run's scratch fetch): host/update.run_update picks
    DryRun, which fetches into refs of its own and adds no trend sample."""
    from invoke import Context

    from fabops import inventory
    from fabops.host import metrics
    from fabops.host.dry_run import DryRun
    from fabops.host.pipeline import Pipeline, UpdateOptions

    host = inventory.loads(f"hosts:\n  h: {{connection: local, app: {{path: {tmp_path}}}}}\n", "x.yml").hosts["h"]
    with pytest.raises(TypeError):
        UpdateOptions(dry_run=True)
    assert not Pipeline(Context(), host, UpdateOptions()).git.scratch
    assert DryRun(Context(), host, UpdateOptions()).git.scratch
    sampled = []
    monkeypatch.setattr(metrics, "record", lambda path, *services: sampled.append(path))
    Pipeline(Context(), host, UpdateOptions(trigger="cron"))._sample()
    DryRun(Context(), host, UpdateOptions(trigger="cron"))._sample()
    Pipeline(Context(), host, UpdateOptions(trigger="manual"))._sample()
    assert len(sampled) == 1


def test_a_branch_missing_after_the_fetch_fails_the_fetch_step_once(sandbox, monkeypatch):
    """The fetch succeeded but the branch's ref does not resolve: the plan
    aborts at the fetch, and the run reports one fetch step, failed (it
    had two: the fetch's own, ok, then another, failed)."""
    from invoke import Context

    from fabops import inventory
    from fabops.host import git
    from fabops.host.pipeline import Pipeline, UpdateOptions

    host = next(iter(inventory.load(str(sandbox.inventory)).hosts.values()))
    real = git.Git.fetch
    # the fetch runs, and hands back a tracking ref that does not resolve
    monkeypatch.setattr(git.Git, "fetch", lambda self, remote, branch: real(self, remote, branch) and "origin/gone")
    res = Pipeline(Context(), host, UpdateOptions(trigger="manual")).run()
    assert res.result == "aborted" and "does not exist after fetch" in res.message, res
    assert [(st.name, st.ok) for st in res.steps] == [("fetch", False)], res.steps
    assert "does not exist after fetch" in res.steps[0].message


def test_a_dry_run_says_what_the_real_run_then_does(sandbox):
    """A checkout already at origin's commit, never deployed, its service
    down: the real run deploys it (a full converge), so the dry run must not
    say "noop". Once deployed, a dry run is a no-op while the service is up,
    and a restart when it is down, as the real run then does."""
    code, res = sandbox.result("--dry-run")
    assert (code, res["result"]) == (0, "would_deploy"), res
    assert "first deploy" in res["message"] and res["plan"]["changed_files"] is None
    code, res = sandbox.result()
    assert res["result"] == "deployed", res

    code, res = sandbox.result("--dry-run")
    assert (code, res["result"]) == (0, "noop"), res
    assert sandbox.result()[1]["result"] == "noop"

    sandbox.stop()  # the bot dies
    code, res = sandbox.result("--dry-run")
    # exit 1 as the real run (the planner's warning, #24's trial: the dry run said 0)
    assert (code, res["result"]) == (1, "would_deploy"), res
    assert "would restart bot" in res["message"] and res["plan"]["restart"] == ["bot"]
    code, res = sandbox.result()
    assert code == 1 and res["result"] == "deployed" and "restarted bot" in res["message"], res


def test_status_keeps_the_deploy_after_rollback_and_unpin(sandbox):
    """#24: the state merge over the connection (unpin) wrote state.json
    without a final newline and `status` then showed `deployed - (-)`."""
    sandbox.result()
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    assert sandbox.result()[0] == 0
    inv = str(sandbox.inventory)
    r = run_cli("rollback", "-i", inv)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli("unpin", "-i", inv)
    assert r.returncode == 0 and "was pinned to" in r.stdout + r.stderr, r.stdout + r.stderr
    assert (sandbox.home / "state.json").read_text().endswith("}\n")
    r = run_cli("status", "-i", inv)
    assert r.returncode == 0, r.stdout + r.stderr  # the app is up: nothing to flag
    assert f"deployed {v1[:10]}" in r.stdout and "deployed - (-)" not in r.stdout, r.stdout
    data = one(run_cli("status", "-i", inv, "--json").stdout)
    assert data["deployed"] == v1 and data["pin"] is None, data


def test_no_watch_on_a_local_host_returns_at_the_gate_and_the_run_watches_on(sandbox):
    """#24: `deploy -H local --no-watch` ran the whole watch. It returns at
    the gate; the run goes on in its own process and rolls back a commit
    that dies after its gate, after the deploy has returned."""
    import yaml

    assert sandbox.result()[0] == 0
    v1 = sandbox.origin.head
    inv = yaml.safe_load(sandbox.inventory.read_text())
    inv["hosts"]["local"]["services"][0]["watch"] = "8s"
    sandbox.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    bad = sandbox.origin.push("v2 dies after its gate", {"VERSION": "2\n", "BEHAVIOUR": "crash-after 2\n"})
    t0 = time.monotonic()
    r = run_cli("deploy", "-i", str(sandbox.inventory), "--no-watch", "--json")
    took = time.monotonic() - t0
    res = one(r.stdout)
    assert r.returncode == 0 and res["result"] == "deployed" and res["watching"] is True, r.stdout + r.stderr
    assert res["to"] == bad and "the host watches it for" in res["message"], res
    assert took < 8, took  # returned at the gate, not after the 8 s watch
    assert sandbox.health()["version"] == "2"
    # the message's `--attach ID` follows the run to its end, here as over SSH
    r = run_cli("deploy", "-i", str(sandbox.inventory), "--attach", res["run_id"], "--json", timeout=60)
    assert r.returncode == 2 and one(r.stdout)["result"] == "rolled_back", r.stdout + r.stderr
    last = sandbox.history()[-1]
    assert (last["to"], last["result"], last["run_id"]) == (bad, "rolled_back", res["run_id"]), last
    assert sandbox.state["deployed"] == v1 and bad in sandbox.state["bad"]
    assert sandbox.health()["version"] == "1"
    # it failed its watch, not its gate, and says so in words (#24's trial:
    # `failed its gate before (bot died 1 s after passing its gate (state stale))`)
    r = run_cli("deploy", "-i", str(sandbox.inventory), "--dry-run", "--json")
    said = one(r.stdout)["plan"]["known_bad"]
    assert said.startswith(f"{bad[:10]} failed its watch before (bot died "), said
    assert "s after passing its gate: its process is gone), so cron skips it" in said, said
    runs = sandbox.home / "runs"
    assert oct((runs / f"{res['run_id']}.jsonl").stat().st_mode & 0o777) == "0o600"
    assert oct((runs / f"{res['run_id']}.host.yml").stat().st_mode & 0o777) == "0o600"
    r = run_cli("deploy", "-i", str(sandbox.inventory), "--attach", "20990101T000000-abcdef")
    assert r.returncode == 64 and "no run 20990101T000000-abcdef on this host" in r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_an_invoke_config_file_changes_nothing_fabops_runs(sandbox, tmp_path):
    """~/.invoke.yaml's `run: {dry: true}` made status read nothing and a
    deploy abort (review of #24): fabops' contexts load no Invoke or Fabric
    config file; its settings are hosts.yml's."""
    import os

    home = tmp_path / "user-home"
    home.mkdir()
    (home / ".invoke.yaml").write_text("run:\n  dry: true\n  echo: true\n")
    env = dict(os.environ, HOME=str(home))
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "deployed"), res
    v2 = sandbox.origin.good("2")
    r = sandbox.update(env=env)
    assert r.returncode == 0 and one(r.stdout)["to"] == v2, r.stdout + r.stderr
    st = run_cli("status", "-i", str(sandbox.inventory), "--json", env=env)
    assert st.returncode == 0, st.stdout + st.stderr
    assert v2 in st.stdout, st.stdout


def test_an_update_log_spelled_with_a_tilde_is_the_homes(sandbox, tmp_path):
    """logs.update: ~/... is the host user's home, as its shell reads it
    (it was a directory named `~` under cron's working directory)."""
    import yaml

    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["logs"] = {"update": "~/fabops-log/update.log"}
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    home = tmp_path / "user-home"
    home.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    r = run_cli("local-update", "-i", str(sandbox.inventory), "--json", env={"HOME": str(home)}, cwd=work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DEPLOYED" in (home / "fabops-log" / "update.log").read_text()
    assert not (work / "~").exists() and not (ROOT / "~").exists()
