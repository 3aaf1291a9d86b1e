"""A run killed with SIGKILL names the step it was in (issue #24): the
in-progress record in state.json follows the pipeline from step to step
(host/pipeline.py, Pipeline._note_step), so `status` and the next run say
`deps: ...` or `watch`, not the `checkout` it was written with."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import ROOT, one, run_cli
from tests.harness.apps import Sandbox


@pytest.fixture
def box(tmp_path):
    b = Sandbox(tmp_path, timeout="5s")
    yield b
    b.stop()


def started(events, step: str) -> bool:
    if not events.exists():
        return False
    return any(e.get("kind") == "step" and e.get("step") == step and e.get("status") == "start"
               for e in map(json.loads, events.read_text().splitlines()))


def slow_deps(box):
    """v2, whose dependency rule says it started, then takes its time (the
    first time only: the run that finishes it runs the rule again)."""
    marker = box.base / "deps-started"
    script = f"#!/bin/sh\nif [ ! -e '{marker}' ]; then touch '{marker}'; sleep 300; fi\nmkdir -p vendor\n"
    box.origin.push("v2 slow deps", {"VERSION": "2\n", "requirements.txt": "slow==1\n", "install-deps.sh": script})
    return "deps: sh install-deps.sh", lambda events: marker.exists()


def long_watch(box):
    """v2, good, on a host whose watch lasts longer than the test."""
    inv = yaml.safe_load(box.inventory.read_text())
    inv["hosts"]["local"]["services"][0]["watch"] = "300s"
    box.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    box.origin.good("2")
    return "watch", lambda events: started(events, "watch")


@pytest.mark.parametrize("slow", [slow_deps, long_watch])
def test_status_names_the_step_a_killed_run_was_in(box, slow, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert box.result()[0] == 0  # v1
    fast = box.inventory.read_text()
    step, reached = slow(box)
    proc = subprocess.Popen([sys.executable, "-m", "fabops.cli", "local-update", "-i", str(box.inventory), "--json",
                             "--trigger", "cron", "--run-id", "victim"], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = box.home / "runs" / "victim.jsonl"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not reached(events) and proc.poll() is None:
            time.sleep(0.05)
        assert reached(events), "the run never reached the slow step"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its rule's `sleep`
        proc.wait()
    assert box.state["in_progress"]["step"] == step
    r = run_cli("status", "-i", str(box.inventory), "--json")
    assert one(r.stdout)["in_progress"]["step"] == step, r.stdout
    r = run_cli("status", "-i", str(box.inventory))
    assert f"run victim in progress or interrupted at step {step}" in " ".join(r.stdout.split()), r.stdout
    # monitor names it too, in its panel and its --json (#24: it said nothing of it)
    r = run_cli("monitor", "-i", str(box.inventory), "--json")
    dep = one(r.stdout)["deploy"]
    assert (dep["in_progress"], dep["in_progress_run"], dep["in_progress_step"]) == (True, "victim", step), dep
    r = run_cli("monitor", "-i", str(box.inventory))
    assert f"run victim in progress or interrupted at step {step}" in " ".join(r.stdout.split()), r.stdout
    # the next run finishes it (with the watch as short as before), and
    # says where it had stopped
    box.inventory.write_text(fast)
    code, res = box.result()
    assert f"finishing after an interrupted run victim (cron, step {step})" in res["warnings"], res
    assert box.state["in_progress"] is None
