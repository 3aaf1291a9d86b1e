"""Load and faults against the real pipeline (cron path, real git, real
processes). Bounded loops; `FABOPS_LONG=1` runs 10x the iterations."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, one, require
from tests.harness.apps import Sandbox

LONG = os.environ.get("FABOPS_LONG") == "1"


@pytest.fixture
def box(tmp_path):
    b = Sandbox(tmp_path, timeout="5s")
    yield b
    b.stop()


def update_proc(box, *args, pause_at=None):
    """`fabops local-update` as cron runs it; with `pause_at`, stopped at that
    step boundary (tests/harness/paused_update.py injects the pause)."""
    cmd = ["-m", "tests.harness.paused_update", pause_at] if pause_at else ["-m", "fabops.cli", "local-update"]
    return subprocess.Popen(
        [sys.executable, *cmd, "-i", str(box.inventory), "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
    )


def consistent(box):
    assert subprocess.run(["git", "fsck", "--no-progress"], cwd=box.app, capture_output=True).returncode == 0
    state = box.state  # parses: never a torn file
    assert state["in_progress"] is None
    return state


@pytest.mark.parametrize("step", ["fetch", "preflight", "checkout", "deps: sh install-deps.sh", "restart bot"])
def test_sigkill_at_each_step_boundary_then_the_next_run_converges(box, step):
    assert box.result()[0] == 0
    new = box.origin.push("v2 with new deps", {"VERSION": "2\n", "requirements.txt": "http-server==1.0\nnew==2\n"})
    proc = update_proc(box, "--run-id", "victim", pause_at=step)
    events = box.home / "runs" / "victim.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (events.exists() and '"paused"' in events.read_text()):
        time.sleep(0.05)
    assert '"paused"' in events.read_text()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    code, res = box.result()
    assert res["result"] == "deployed" and code in (0, 1), res
    state = consistent(box)
    assert state["deployed"] == new and box.health()["version"] == "2"


def test_concurrent_updates_exactly_one_deploys(box):
    require(os.cpu_count() is not None, "needs cpu_count")
    assert box.result()[0] == 0
    n = 50 if LONG else 20
    new = box.origin.good("2")
    procs = [update_proc(box, "--actor", f"racer{i}") for i in range(n)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        results.append((p.returncode, one(out)["result"]))
    deployed = [r for r in results if r[1] == "deployed"]
    assert len(deployed) == 1, results
    assert all(r in ((4, "locked"), (0, "noop")) for r in results if r[1] != "deployed"), results
    state = consistent(box)
    assert state["deployed"] == new
    assert [h["result"] for h in box.history()].count("deployed") == 2  # v1 and v2, once each


def test_alternating_good_and_crash_commits_never_leave_the_service_down(box):
    assert box.result()[0] == 0
    rounds = 200 if LONG else 20
    records = 1
    for i in range(rounds):
        if i % 2:
            box.origin.crash(f"bad{i}")
            expect = "rolled_back"
        else:
            box.origin.good(f"good{i}")
            expect = "deployed"
        code, res = box.result()
        assert res["result"] == expect, (i, res)
        records += 1
        assert box.health()["status"] == "ok"  # never down after a run
    assert len(box.history()) == records  # exactly one record per non-noop run
    consistent(box)


def test_full_log_disk_aborts_cleanly(box, tmp_path):
    require(os.geteuid() == 0, "needs root to mount a small tmpfs in a private mount namespace")
    assert box.result()[0] == 0
    v1 = box.head()
    box.origin.good("2")
    logdir = box.base / "host" / "log"
    script = (f"mount -t tmpfs -o size=1m fabops-full {logdir} && "
              f"(dd if=/dev/zero of={logdir}/filler bs=64k 2>/dev/null || true) && "
              f"exec {sys.executable} -m fabops.cli local-update -i {box.inventory} --json")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    res = one(r.stdout)
    assert r.returncode == 2 and res["result"] == "aborted", res
    assert "disk full" in res["message"] and "log dir" in res["message"]
    assert box.head() == v1  # the checkout is unchanged
    assert consistent(box)["deployed"] == v1
