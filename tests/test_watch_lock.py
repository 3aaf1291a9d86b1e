"""A watch never locks people out (#23; docs/pipeline.md, "Lock"): real
runs of `fabops local-update` on this machine, a real bare origin and the
process back end. One run (cron's) deploys and then watches its service
for a long window; meanwhile a deploy waits for the watch and then deploys,
`--wait 0` stays exit 4, and the emergency tools (rollback, restart) end the
watch at once instead of waiting it out. The watch's verdict is never
reached in the emergency cases: had they waited, cron's run would have
ended `deployed`, so the assertions on its result need no clock."""
import json
import re
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import ROOT, one, run_cli


def long_watch(sandbox, seconds: str) -> None:
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["services"][0]["watch"] = seconds
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))


class CronRun:
    """cron's local-update (or another trigger's), started in the
    background; ended at teardown."""

    def __init__(self, sandbox, run_id: str = "cronrun", trigger: str = "cron", actor: str = "cron@host"):
        self.sandbox = sandbox
        self.run_id = run_id
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fabops.cli", "local-update", "-i", str(sandbox.inventory), "--json",
             "--trigger", trigger, "--actor", actor, "--run-id", run_id],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for_watch(self, timeout: float = 90) -> dict:
        """Poll the lock's holder record until it says the run watches."""
        lock = self.sandbox.home / "lock"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                holder = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            if holder.get("phase") == "watch":
                return holder
            time.sleep(0.05)
        raise AssertionError("cron's run never reached its watch")

    def wait_for_event(self, text: str, timeout: float = 90) -> None:
        """Poll this run's event log until it says `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                if text in events(self.sandbox, self.run_id):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"run {self.run_id} never said {text!r}")

    def result(self):
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, one(out)

    def end(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def cron_run(sandbox):
    runs = []

    def start(**kw):
        runs.append(CronRun(sandbox, **kw))
        return runs[-1]

    yield start
    for run in runs:
        run.end()


def events(sandbox, run_id: str) -> str:
    return (sandbox.home / "runs" / f"{run_id}.jsonl").read_text()


def test_a_deploy_that_meets_a_watch_waits_for_it_then_deploys(sandbox, cron_run):
    sandbox.result()
    long_watch(sandbox, "6s")
    v2 = sandbox.origin.good("2")
    cron = cron_run()
    holder = cron.wait_for_watch()
    assert holder["trigger"] == "cron" and holder["watch_ends"] > holder["since"]
    v3 = sandbox.origin.good("3")
    code, res = sandbox.result("--trigger", "deploy", "--actor", "alice@laptop", "--run-id", "dep1")
    assert (code, res["result"], res["to"]) == (0, "deployed", v3), res
    said = events(sandbox, "dep1")
    # the watch's own countdown (6 s at most), not its end + the grace (#3: `21 s left at most`)
    left = [int(n) for n in re.findall(r"waiting for the watch of cron by cron@host [^\n]*: (\d+) s left\b", said)]
    assert left and max(left) <= 6, said
    code, theirs = cron.result()
    assert (code, theirs["result"], theirs["to"]) == (0, "deployed", v2), theirs
    assert [(h["trigger"], h["to"]) for h in sandbox.history()][-2:] == [("cron", v2), ("deploy", v3)]
    assert sandbox.state["deployed"] == v3 and sandbox.state["previous"] == v2


def test_wait_0_still_exits_4_during_a_watch(sandbox, cron_run):
    sandbox.result()
    long_watch(sandbox, "6s")
    sandbox.origin.good("2")
    cron = cron_run()
    cron.wait_for_watch()
    sandbox.origin.good("3")  # another target: a deploy of cron's own target waits for its result
    code, res = sandbox.result("--trigger", "deploy", "--wait", "0")
    assert (code, res["result"]) == (4, "locked"), res
    assert "cron by cron@host" in res["message"]
    assert cron.result()[1]["result"] == "deployed"


def test_rollback_during_a_watch_ends_it_and_acts_at_once(sandbox, cron_run):
    code, first = sandbox.result()
    v1 = first["to"]
    long_watch(sandbox, "120s")  # a verdict would take two minutes
    v2 = sandbox.origin.good("2")
    cron = cron_run()
    cron.wait_for_watch()
    long_watch(sandbox, "1s")  # the rollback's own watch
    code, res = sandbox.result("--trigger", "rollback", "--ref", v1, "--actor", "alice@laptop", "--run-id", "rb1")
    assert (code, res["result"], res["to"]) == (0, "deployed", v1), res
    assert "ending the watch of cron by cron@host" in events(sandbox, "rb1")
    code, theirs = cron.result()
    assert theirs["result"] == "superseded", theirs
    assert "watch ended by rollback by alice@laptop" in theirs["message"], theirs
    assert f"rollback target stays {v1[:10]}" in theirs["message"], theirs
    state = sandbox.state
    assert v2 not in state["bad"], state["bad"]  # ending a watch is no verdict on the commit
    assert state["failing"] is None and code == 1, (code, state["failing"])  # not a failure, not done
    assert state["deployed"] == v1 and state["pin"] == v1 and state["in_progress"] is None
    rb = sandbox.history()[-1]
    assert rb["trigger"] == "rollback" and rb["warnings"] == [], rb  # it ended that watch itself: no news
    assert "finishing run cronrun (cron), whose watch this rollback ended" in events(sandbox, "rb1")


def test_a_deploy_queued_behind_a_watch_never_ships_over_a_rollback(sandbox, cron_run):
    """A deploy waits for cron's watch; an operator rolls back meanwhile.
    Both want the lock when the watch ends, and either may get it first:
    the rollback stands either way, and the queued deploy says why it did
    not ship (before this rule, it shipped v3 over the rollback, clearing
    its pin, or won the lock and left the rollback to time out)."""
    code, first = sandbox.result()
    v1 = first["to"]
    long_watch(sandbox, "120s")
    sandbox.origin.good("2")
    cron = cron_run()
    cron.wait_for_watch()
    v3 = sandbox.origin.good("3")
    queued = cron_run(run_id="dep2", trigger="ci", actor="ci@runner")
    queued.wait_for_event("waiting for the watch of cron by cron@host")
    long_watch(sandbox, "1s")  # the rollback's own watch
    code, res = sandbox.result("--trigger", "rollback", "--ref", v1, "--actor", "alice@laptop", "--run-id", "rb1")
    assert (code, res["result"], res["to"]) == (0, "deployed", v1), res
    assert cron.result()[1]["result"] == "superseded"
    code, theirs = queued.result()
    assert (code, theirs["result"]) == (1, "superseded"), theirs
    assert "a rollback by alice@laptop was asked while this deploy waited" in theirs["message"], theirs
    state = sandbox.state
    assert state["deployed"] == v1 and state["pin"] == v1 and v3 not in (state["deployed"], state["previous"])
    # the queued deploy changed nothing, and says why in the history
    # (either may have taken the lock first, so either record may come last)
    last = {h["run_id"]: h for h in sandbox.history()[-3:]}
    assert set(last) == {"cronrun", "rb1", "dep2"}, last
    assert last["dep2"]["result"] == "superseded" and "rollback by alice" in last["dep2"]["message"], last
    assert state["last_result"] == "deployed"


def test_restart_during_a_watch_is_no_crash_and_the_next_run_finishes_the_deploy(sandbox, cron_run):
    v1 = sandbox.result()[1]["to"]
    long_watch(sandbox, "120s")
    v2 = sandbox.origin.good("2")
    cron = cron_run()
    cron.wait_for_watch()
    r = run_cli("restart", "-i", str(sandbox.inventory), "--actor", "bob@laptop")
    assert r.returncode == 0, r.stdout + r.stderr
    # it says whose watch it ended (before this, only cron's record did)
    assert "· ended the watch of cron by cron@host" in r.stdout and "run cronrun)" in r.stdout, r.stdout
    code, theirs = cron.result()
    assert theirs["result"] == "superseded" and "watch ended by restart by bob@laptop" in theirs["message"], theirs
    state = sandbox.state
    assert v2 not in state["bad"] and state["in_progress"]["to"] == v2, state
    long_watch(sandbox, "1s")
    code, res = sandbox.result()
    assert (code, res["result"], res["to"]) == (1, "deployed", v2), res  # exit 1: it says what it finished
    assert any("interrupted run cronrun" in w for w in res["warnings"]), res["warnings"]
    assert sandbox.state["in_progress"] is None and sandbox.state["deployed"] == v2
    # the checkout was on v2 already (cron's run put it there): said so, and
    # what it promoted from, never `v2 -> v2` (#24); history shows v2's subject
    assert res["message"] == f"already at {v2[:10]}, now deployed (was {v1[:10]})", res
    assert sandbox.history()[-1]["message"] == res["message"]


def test_rollback_without_to_during_a_watch_goes_to_the_last_commit_that_completed_its_watch(sandbox, cron_run):
    """state.previous is the commit before the deployed one; while a run is
    under way, the last commit that completed its watch is the deployed one."""
    sandbox.result()
    v2 = sandbox.origin.good("2")
    assert sandbox.result()[1]["to"] == v2
    long_watch(sandbox, "120s")
    sandbox.origin.good("3")
    cron = cron_run()
    cron.wait_for_watch()
    long_watch(sandbox, "1s")
    r = run_cli("rollback", "-i", str(sandbox.inventory), "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert cron.result()[1]["result"] == "superseded"
    state = sandbox.state
    assert state["deployed"] == v2 and state["pin"] == v2, state


def test_a_malformed_or_stale_watch_end_request_stops_nothing(sandbox):
    from fabops.host.queue import watch_end_request

    path = sandbox.home / "watch-end"
    sandbox.result()
    for text in ('{"at": "soon"}', "[1, 2]", '{"at": [1]}', "not json", '{"at": 99999999999}'):
        path.write_text(text)
        assert watch_end_request(str(path), 0) is None, text
        code, res = sandbox.result()
        assert (code, res["result"]) == (0, "noop"), (text, res)
    path.write_text('{"at": %d, "for": "another-run", "trigger": "reset", "actor": "x"}' % int(time.time()))
    assert watch_end_request(str(path), 0, "this-run") is None
    assert watch_end_request(str(path), 0, "another-run")["trigger"] == "reset"


def test_a_dry_run_during_a_watch_says_it_waits_as_the_real_deploy_does(sandbox, cron_run):
    """Trial #3 (#23: a dry run and the real run cannot disagree): the
    holder's own in_progress is not an interrupted run, it holds the lock
    in its watch; the dry run says it waits for that watch, names the
    holder, then plans again (as if the watch passes), with no "finish"."""
    v1 = sandbox.result()[1]["to"]
    long_watch(sandbox, "120s")  # outlasts the dry runs; the fixture ends the run
    v2 = sandbox.origin.good("2")
    cron = cron_run()
    cron.wait_for_watch()
    assert sandbox.state["in_progress"]["run_id"] == "cronrun"
    v3 = sandbox.origin.good("3")
    code, res = sandbox.result("--trigger", "deploy", "--actor", "alice@laptop", "--dry-run")
    assert (code, res["result"], res["to"]) == (0, "would_deploy", v3), res
    assert "would wait up to" in res["message"] and "for the watch of cron by cron@host" in res["message"], res
    assert "then plan again" in res["message"], res
    actions = [w["action"] for w in res["plan"]["would"]]
    assert "finish" not in actions and actions[0] == "wait", res["plan"]["would"]
    assert not res["warnings"], res["warnings"]
    # planned from where the watch leaves the host once it passes: v2 deployed
    assert res["from"] == v2 and res["plan"]["from"] == v2, res
    # a rollback ends the watch instead, and finishes that run: said so, not
    # as an interrupted run
    code, res = sandbox.result("--trigger", "rollback", "--ref", v1, "--dry-run")
    actions = [(w["action"], w["target"]) for w in res["plan"]["would"]]
    assert (code, actions[0]) == (0, ("end watch", "cronrun")), res
    assert "finish" not in dict(actions) and not res["warnings"], res
    assert "after ending the watch of cron by cron@host" in res["message"], res
    assert cron.proc.poll() is None and sandbox.state["in_progress"]["run_id"] == "cronrun"  # nothing changed


def test_a_restart_whose_holder_finished_its_watch_first_says_so_and_records_its_verdict(sandbox):
    """#24's trial: a restart asked a run in its watch's last moment (phase
    `promote`) to end it; the run promoted its commit first and let go. The
    restart said `ended the watch of …: its commit is not promoted; the next
    run finishes it` and recorded no verdict, beside a run that promoted it.
    Here the holder is a stand-in that holds the host lock with a promoting
    run's record for a second, then lets go having left no run in progress,
    as a promotion leaves state.json: the restart says the holder finished
    first, and records its verdict on the commit the service runs."""
    v1 = sandbox.result()[1]["to"]
    lock = sandbox.home / "lock"
    holder = {"actor": "cron@host", "trigger": "cron", "run_id": "promoting", "target": v1, "phase": "promote",
              "watch_ends": time.time() - 1, "since": time.time() - 5}
    hold = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.ftruncate(fd, 0)\nos.pwrite(fd, sys.argv[2].encode(), 0)\nprint('held', flush=True)\n"
         "time.sleep(1.5)\nos.ftruncate(fd, 0)\n", str(lock), json.dumps(holder)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "held"
        r = run_cli("restart", "-i", str(sandbox.inventory), "--actor", "bob@laptop")
    finally:
        hold.kill()
        hold.communicate()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ended the watch" not in r.stdout and "not promoted" not in r.stdout, r.stdout
    assert "finished before its watch could be ended: its own result stands" in r.stdout, r.stdout
    last = sandbox.history()[-1]
    assert (last["trigger"], last["from"], last["to"], last["result"]) == ("restart", v1, v1, "deployed"), last
