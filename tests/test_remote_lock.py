"""remote.remote_lock_script, the host lock that agentless tasks (reset,
restart, health --fix over SSH) take with flock(1), run by a real sh on
this machine: what the shell decides when it finds the lock held."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from fabops import inventory
from fabops.remote import remote_lock_script

pytestmark = pytest.mark.skipif(shutil.which("flock") is None, reason="flock(1) is part of util-linux")


def host(tmp_path):
    return inventory.loads(f"hosts:\n  h: {{connection: local, home: {tmp_path / 'home'}, "
                           f"app: {{path: {tmp_path / 'app'}}}}}\n", "x.yml").hosts["h"]


def take(tmp_path, env=None, timeout=30, trigger="reset"):
    """Run the script; once it says LOCKED, close its stdin (the laptop
    ends): (exit code, output)."""
    script = str(remote_lock_script(host(tmp_path), {"trigger": trigger, "actor": "ops@laptop"}))
    proc = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        proc.stdin.close()
        rest = proc.stdout.read()
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, first + rest


def holder(tmp_path, record: dict):
    """Hold the lock from another process with `record` in it, as a run
    mid-change does; returns the process (the caller ends it)."""
    lock = tmp_path / "home" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps(record))
    proc = subprocess.Popen(["flock", str(lock), sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    subprocess.run(["sh", "-c", f"until ! flock -n {lock} true; do sleep 0.05; done"], timeout=10, check=True)
    return proc


def test_a_free_lock_is_taken(tmp_path):
    code, out = take(tmp_path)
    assert (code, out.splitlines()[0]) == (0, "LOCKED")


def test_a_run_mid_change_is_exit_4_with_its_record(tmp_path):
    proc = holder(tmp_path, {"trigger": "cron", "actor": "cron@host", "phase": "change", "run_id": "r1"})
    try:
        code, out = take(tmp_path)
    finally:
        proc.stdin.close()
        proc.wait(10)
    assert code == 4 and '"phase": "change"' in out, out


def test_a_holder_that_ends_between_the_two_looks_is_no_exit_4(tmp_path):
    """flock -n finds the lock held; before the shell reads the record, the
    holder ends and empties it. A flock(1) that answers "held" once, then
    as the real one, stands for that moment (a race no clock can time): the
    lock is free, and it is taken."""
    shim = tmp_path / "bin"
    shim.mkdir()
    seen = tmp_path / "seen"
    real = shutil.which("flock")
    (shim / "flock").write_text(f"#!/bin/sh\nif [ ! -e {seen} ]; then : > {seen}; exit 1; fi\nexec {real} \"$@\"\n")
    (shim / "flock").chmod(0o755)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "lock").write_text("")  # the ended holder's record: emptied
    code, out = take(tmp_path, env={**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"})
    assert seen.exists()  # the shim did answer "held" first
    assert (code, out.splitlines()[0] if out else "") == (0, "LOCKED"), (code, out)


@pytest.mark.parametrize("trigger", ["health", "restore-env"])
def test_only_an_emergency_tool_ends_a_watch(tmp_path, trigger):
    """health --fix and restore-env over SSH meet a run in its watch as on
    the host (queue.lock_waiter): exit 4, no request to end the watch
    (health --dry-run says busy); reset, under the same holder, asks."""
    record = {"trigger": "cron", "actor": "cron@host", "phase": "watch", "run_id": "r1",
              "watch_ends": 4102444800}
    import time

    proc = holder(tmp_path, record)
    end = tmp_path / "home" / "watch-end"
    try:
        code, out = take(tmp_path, trigger=trigger)
        assert code == 4 and '"phase": "watch"' in out, out
        assert not end.exists()
        # the control: reset, under the same holder, asks the watch to end
        script = str(remote_lock_script(host(tmp_path), {"trigger": "reset", "actor": "ops@laptop"}))
        reset = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not end.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        request = json.loads(end.read_text())
        assert (request["trigger"], request["for"]) == ("reset", "r1"), request
    finally:
        proc.stdin.close()
        proc.wait(10)
    # the watch ended (the holder went): reset has the lock, and names whose watch it ended first
    assert json.loads(reset.stdout.readline().removeprefix("ENDED ")) == record
    assert reset.stdout.readline() == "LOCKED\n"
    reset.stdin.close()
    assert reset.wait(10) == 0
