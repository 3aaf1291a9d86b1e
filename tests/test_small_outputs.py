"""Small wrong outputs a new user met after the demo (#24): each says what
is true, once, in words, and a flag combination that cannot work is a usage
error (exit 64) instead of silence. Unit tier and the local sandbox."""
import json

import pytest

from tests.conftest import run_cli


@pytest.fixture
def one_host(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("hosts:\n  web1: {address: 192.0.2.1, app: {path: /srv/app}}\ngroups:\n  webs: [web1]\n")
    return path


def test_hosts_check_counts_in_words(one_host):
    r = run_cli("hosts", "--check", "-i", str(one_host))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{one_host}: OK (1 host, 1 group)"


@pytest.mark.parametrize("args, message", [
    # 0 runs would print "no history yet" over a history that exists:
    # refused, not read as "all" (docs/pipeline.md)
    (("history", "-n", "0"), "fabops: history -n must be at least 1 (0 runs would show nothing), not 0"),
    (("history", "-n", "-3"), "fabops: -n cannot be negative, not -3"),
    (("logs", "-n", "0"), "fabops: logs -n 0 shows nothing without --follow"),
    (("backup-env", "--list", "--download", "/tmp/x"), "fabops: backup-env --list makes no backup to --download"),
])
def test_refused_before_connecting(one_host, args, message):
    # web1 is TEST-NET-1: reaching for it would fail (or hang) with exit 3
    r = run_cli(*args, "-i", str(one_host), "--connect-timeout", "1")
    assert r.returncode == 64, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_health_logs_and_history_on_a_sandbox(sandbox):
    inv = str(sandbox.inventory)
    # nothing logged yet: said, on stderr (stdout stays the log's lines)
    r = run_cli("logs", "-i", inv, "--source", "health", "-n", "5")
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr.strip() == "local: no log lines yet (--source health)"
    r = run_cli("logs", "-i", inv, "--source", "health", "-n", "5", "--json")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")  # JSON lines: none is the empty answer

    assert sandbox.result()[0] == 0
    r = run_cli("health", "-i", inv)
    assert r.returncode == 0 and r.stdout == "local: OK: all services healthy\n", r.stdout + r.stderr
    r = run_cli("health", "-i", inv, "--json")
    (check,) = json.loads(r.stdout)["hosts"]["local"]["checks"]
    # the check ran and answered: the report says so
    assert (check["ok"], check["http_status"], check["requests"]) == (True, 200, 1), check

    sandbox.stop()
    r = run_cli("health", "-i", inv, "--fix", "--dry-run")
    assert r.returncode == 2 and r.stdout.startswith("local: FAILED: bot "), r.stdout + r.stderr
    assert "--fix would restart bot" in r.stdout and "would_restart" not in r.stdout
    r = run_cli("health", "-i", inv, "--json")
    (check,) = json.loads(r.stdout)["hosts"]["local"]["checks"]
    # a service that is not running gets no HTTP check: none is reported
    assert (check["ok"], check["http_status"], check["requests"]) == (False, None, 0), check
