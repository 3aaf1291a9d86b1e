"""The task tree as a user meets it: `inv --list`, `--help`, exit codes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fabops.tasks import ns
from tests.conftest import ROOT, run_cli

INV = str(Path(sys.executable).parent / "inv")


def test_inv_list_shows_every_task_with_a_summary():
    r = subprocess.run([INV, "--list"], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    for name in ns.task_names:
        line = next((ln for ln in r.stdout.splitlines() if ln.strip().startswith(name + " ")), None)
        assert line is not None, f"{name} missing from inv --list"
        assert len(line.split(None, 1)) == 2, f"{name} has no summary"


def test_fabops_program_serves_the_same_tree():
    r = run_cli("--list")
    assert r.returncode == 0
    for name in ns.task_names:
        assert name in r.stdout


@pytest.mark.parametrize("name", sorted(ns.task_names))
def test_every_flag_is_documented(name):
    task = ns[name]
    summary = (task.__doc__ or "").strip().splitlines()[0]
    assert summary and summary[0].isupper() and summary.endswith("."), f"{name}: docstring summary"
    for arg in task.get_arguments():
        assert arg.help, f"{name} --{arg.name} has no help"


def test_hosts_flag_is_capital_h():
    names = {tuple(a.names) for a in ns["ping"].get_arguments()}
    assert ("hosts", "H") in names


def test_unknown_task_and_bad_flag_are_usage_errors():
    assert run_cli("no-such-task").returncode == 64
    assert run_cli("ping", "--no-such-flag").returncode == 64


def test_unknown_host_exits_64_listing_known_names():
    r = run_cli("ping", "-H", "find-to-dos")
    assert r.returncode == 64
    assert "unknown host or group 'find-to-dos' (did you mean 'find-to-do'?)" in r.stderr
    assert "known: find-to-do, local, production, sandbox" in r.stderr


def test_bad_flag_value_is_a_usage_error_not_config():
    r = run_cli("ping", "-H", "local", "--parallel", "0")
    assert r.returncode == 64 and "--parallel must be at least 1" in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "hosts.yml"
    bad.write_text("hosts: {a: {port: x}}")
    quiet = run_cli("hosts", "-i", str(bad))
    loud = run_cli("hosts", "-i", str(bad), env={"FABOPS_DEBUG": "1"})
    assert quiet.returncode == 78 and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "ConfigError" in loud.stderr


def test_hosts_table_and_json():
    r = run_cli("hosts")
    assert r.returncode == 0 and "find-to-do" in r.stdout and "voice-meeting-discord-bot.service" in r.stdout
    import json

    data = json.loads(run_cli("hosts", "--json").stdout)
    assert data["default"] == "find-to-do"
    assert data["hosts"]["find-to-do"]["services"][1]["port"] == 3003


def test_local_sandbox_ping():
    r = run_cli("ping", "-H", "local", "--json")
    assert r.returncode == 0, r.stderr
    assert '"kernel": "Linux' in r.stdout


def test_local_needs_linux(monkeypatch):
    from fabops import inventory
    from fabops.connection import connect
    from fabops.errors import UsageError

    host = inventory.load(str(ROOT / "hosts.yml")).hosts["local"]
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(UsageError, match="connection: local needs Linux"):
        connect(host)
