"""`fabops TASK | head`: a reader that goes away ends every task quietly with
exit 141 (docs/errors.md), also when the task prints from a fan-out worker
or a follow's thread, where a lost connection raises BrokenPipeError too
(issue #24: `setup --check | head -1` said "the connection failed", exit 3)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

INV = os.path.join(os.path.dirname(sys.executable), "inv")


def _closed_pipe_run(argv, env=None):
    """Run `argv` with stdout a pipe whose reader is already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(argv, cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, timeout=120,
                              env=dict(os.environ, COLUMNS="80", **(env or {})))
    finally:
        os.close(write)


@pytest.mark.parametrize("program, env", [("fabops", {}), ("inv", {}), ("inv", {"FABOPS_AGENT": "0"})])
def test_setup_check_into_a_closed_pipe_ends_quietly(sandbox, program, env):
    """setup writes its items from the worker: the closed pipe is no host's failure."""
    cmd = [sys.executable, "-m", "fabops.cli"] if program == "fabops" else [INV]
    r = _closed_pipe_run(cmd + ["setup", "-i", str(sandbox.inventory), "-H", "local", "--check"], env)
    assert r.returncode == 141, r.stderr
    assert r.stderr == "", r.stderr


def test_a_connection_broken_pipe_is_still_unreachable(monkeypatch):
    """A BrokenPipeError while stdout is fine is the host's link: exit 3."""
    from fabops import fanout

    def lost(_host):
        raise BrokenPipeError(32, "Broken pipe")

    result = fanout.run_hosts(["h1"], lost)
    assert result.code == 3 and "the connection failed" in str(result.results[0].error)


def test_logs_follow_into_a_closed_pipe_ends_quietly(sandbox):
    """logs -f prints from one thread per host: the follow stops, exit 141, no traceback."""
    log = sandbox.home.parent / "log" / "update.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"line {i}\n" for i in range(20)))
    r = _closed_pipe_run([sys.executable, "-m", "fabops.cli", "logs", "-i", str(sandbox.inventory), "-H", "local",
                          "--source", "update", "-f", "-n", "5"])
    assert r.returncode == 141, r.stderr
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
