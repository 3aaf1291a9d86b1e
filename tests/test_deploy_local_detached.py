"""`inv deploy` on a `connection: local` host runs the pipeline as over SSH:
detached, in a session of its own, followed through its event file. A
Ctrl-C at the terminal ends the following, never the run (it goes on to
its rollback and its record); and a deploy queued behind a run of its own
target reports that run's result instead of deploying it again (the trial
of the demo sandbox; docs/pipeline.md, "Lock")."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, one, run_cli


@pytest.fixture(autouse=True)
def a_persons_deploy(monkeypatch):
    """These are a person's deploys (trigger `deploy`): CI=true, which
    .ci/run sets, makes every deploy a `ci` one, with its own lock rules."""
    monkeypatch.delenv("CI", raising=False)


def poll(what, timeout: float = 120, every: float = 0.1):
    """`what()` once it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"never happened: {what.__doc__ or what}")


def run_events(sandbox) -> dict:
    """Every run's events on the sandbox host, by run id."""
    runs = sandbox.home / "runs"
    out = {}
    for f in runs.glob("*.jsonl") if runs.is_dir() else ():
        evs = []
        for line in f.read_text().splitlines():
            try:
                evs.append(json.loads(line))
            except ValueError:
                pass
        out[f.stem] = evs
    return out


def started(sandbox, step: str, actor: str = ""):
    """The id of a run (by `actor`, if given) that has started `step`."""
    for run_id, evs in run_events(sandbox).items():
        start = next((e for e in evs if e.get("kind") == "start"), {})
        if actor and start.get("actor") != actor:
            continue
        if any(e.get("kind") == "step" and e.get("step") == step and e.get("status") == "start" for e in evs):
            return run_id
    return None


def lock_free(sandbox) -> bool:
    from fabops.host.lock import peek_holder

    return peek_holder(str(sandbox.home / "lock")) == {}


def deploy_proc(sandbox, *args):
    """`fabops deploy` in a process group of its own, as a shell's job is
    (a terminal's Ctrl-C goes to the whole group)."""
    return subprocess.Popen([sys.executable, "-m", "fabops.cli", "deploy", "-i", str(sandbox.inventory), *args],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=dict(os.environ, COLUMNS="200"))


def test_ctrl_c_mid_gate_ends_the_following_and_the_run_rolls_back(sandbox):
    assert sandbox.result()[0] == 0
    v1 = sandbox.origin.head
    bad = sandbox.origin.unhealthy("2")
    proc = deploy_proc(sandbox)
    try:
        run_id = poll(lambda: started(sandbox, "restart bot"))
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at the terminal: the whole foreground group
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # one line that says the run goes on and how to follow it (deploy.StillRunning, #24's trial)
    assert proc.returncode == 130 and err.count("\n") == 1 and err.startswith(
        "fabops: interrupted: the run goes on on the host; ") and "--attach" in err, (proc.returncode, out, err)
    assert "Traceback" not in err

    def recorded():
        """the interrupted deploy's run recorded its rollback"""
        return [h for h in sandbox.history() if h.get("run_id") == run_id]

    (rec,) = poll(recorded)
    assert (rec["to"], rec["result"], rec["trigger"]) == (bad, "rolled_back", "deploy"), rec
    poll(lambda: lock_free(sandbox))  # the run let go of the host: it has ended
    state = sandbox.state
    assert state["deployed"] == v1 and state["in_progress"] is None and bad in state["bad"], state
    assert sandbox.head() == v1 and sandbox.health()["version"] == "1"
    r = run_cli("status", "-i", str(sandbox.inventory))
    assert "in progress or interrupted" not in r.stdout, r.stdout


def test_a_second_deploy_of_a_failing_target_reports_the_first_runs_result(sandbox):
    assert sandbox.result()[0] == 0
    v1 = sandbox.origin.head
    bad = sandbox.origin.unhealthy("2")
    first = deploy_proc(sandbox, "--actor", "bgtester", "--json")
    try:
        # the first run has fetched (the lock's record names its target)
        first_id = poll(lambda: started(sandbox, "checkout", "bgtester"))
        r = run_cli("deploy", "-i", str(sandbox.inventory), "--actor", "second", timeout=180)
        out1, err1 = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 2 and one(out1)["result"] == "rolled_back", out1 + err1
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"waited for run {first_id} (deploy by bgtester); it ended rolled_back" in r.stdout, r.stdout
    assert "deploying it again" not in r.stdout, r.stdout
    # said once while it waited, not every 5 s
    assert r.stdout.count("waiting for the lock held by bgtester (deploy)") == 1, r.stdout
    # one failed gate, one record: the second deploy ran no gate of its own
    assert [(h["run_id"], h["to"], h["result"]) for h in sandbox.history()][-1] == (first_id, bad, "rolled_back")
    assert sum(1 for h in sandbox.history() if h.get("to") == bad) == 1, sandbox.history()
    assert sandbox.state["deployed"] == v1 and sandbox.health()["version"] == "1"


def test_a_refused_ref_is_its_one_error_line_not_also_a_failed_step(sandbox):
    """docs/errors.md: a refused flag is its one `fabops:` line. deploy and
    rollback also printed the failed step's progress line (`[local] ✗
    fetch … --ref nosuchref: …`) on stdout."""
    sandbox.result()
    for task, flag in (("deploy", "--ref"), ("rollback", "--to")):
        r = run_cli(task, "-i", str(sandbox.inventory), "-H", "local", flag, "nosuchref", env={"CI": "true"})
        assert r.returncode == 64, (task, r.stdout, r.stderr)
        assert r.stderr == f"fabops: local: {flag} nosuchref: no such branch, tag or commit on origin\n", r.stderr
        assert r.stdout == "", (task, r.stdout)


def test_a_failed_step_is_still_said_in_progress_lines():
    """What the held line waits for: the next event, or half a second of
    heartbeats; only a refused flag's result drops it."""
    import io
    from contextlib import redirect_stdout

    from fabops.tasks.deploy import _Printer

    now = [0.0]
    buf = io.StringIO()
    with redirect_stdout(buf):
        on_event = _Printer(5, clock=lambda: now[0])("h1")
        on_event({"kind": "step", "step": "restart bot", "status": "failed", "seconds": 1.0, "message": "HTTP 500"})
        on_event({"kind": "heartbeat"})
        assert "✗" not in buf.getvalue()
        now[0] += 0.6
        on_event({"kind": "heartbeat"})
        assert "✗ restart bot (1.00s) HTTP 500" in buf.getvalue()
        on_event({"kind": "step", "step": "fetch", "status": "failed", "seconds": 0.1, "message": "--ref x: no"})
        on_event({"kind": "result", "result": "aborted", "exit_code": 64, "message": "--ref x: no"})
    assert "fetch" not in buf.getvalue() and "--ref x" not in buf.getvalue(), buf.getvalue()


@pytest.mark.skipif(not shutil.which("script"), reason="needs util-linux script(1) for a pseudo-terminal")
def test_on_a_terminal_deploy_and_rollback_show_a_board_then_each_result_once(sandbox):
    """The board's last frame stayed above the summary (each host's result
    twice), and rollback printed plain lines where deploy shows the board."""
    assert sandbox.result()[0] == 0
    sandbox.origin.good("2")
    env = dict(os.environ, COLUMNS="120")
    env.pop("CI", None)
    for task in ("deploy", "rollback"):
        cmd = f"{sys.executable} -m fabops.cli {task} -i {sandbox.inventory}"
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, env=env,
                           cwd=ROOT, stdin=subprocess.DEVNULL, timeout=120)
        assert r.returncode == 0, (task, r.stdout)
        assert "progress" in r.stdout and "done (" in r.stdout, (task, r.stdout)  # the board ran
        # what stays on the screen: all after the board's last erase, which
        # clears its last frame (before the fix that frame came after it)
        shown = r.stdout.rsplit("\x1b[2K", 1)[1]
        assert "progress" not in shown and "done (" not in shown, (task, shown)
        assert shown.count("deployed") == 1 and f"{task}\x1b" in shown, (task, shown)
