"""`logs --since` and a follow's notices (trial #6, #11): a bad --since is
exit 64 before any connection; where it cannot filter (files), one warning
line says so; a follow names an unreachable host once."""
import socket

import pytest
import yaml

from fabops import inventory
from fabops.errors import UsageError
from fabops.logs import since_unmet, since_value
from tests.conftest import run_cli

SINCE_FORMS = ["1 hour ago", "1 minute ago", "-24h", "-30min", "2h 15m ago", "1.5h ago", "+1h", "now", "today",
               "yesterday", "2026-11-28", "2026-11-28 10:00", "2026-11-28 10:00:00.5", "10:00", "@1764930000",
               "Mon 2026-11-30 10:00 UTC", "MONDAY 2026-11-30 10:00"]


@pytest.mark.parametrize("value", SINCE_FORMS)
def test_since_takes_journalctls_forms(value):
    assert since_value(value) == value


def test_since_normalizes_what_older_journalctl_misreads():
    assert since_value("2026-11-28T10:00") == "2026-11-28 10:00"  # systemd 252 refuses the T
    assert since_value(" 1  hour  ago ") == "1 hour ago"


@pytest.mark.parametrize("value", ["garbage", "1 hour", "NOW", "1 parsec ago", "2026-13-01", "2026-02-30", "25:00",
                                   "10:61", "yesterday 10:00", "Monx 2026-11-30", "", "-", "ago"])
def test_since_refuses_what_journalctl_refuses(value):
    with pytest.raises(UsageError, match="is not a time; give e.g. '1 hour ago'"):
        since_value(value)


def hosts(spec: dict):
    inv = inventory.loads(yaml.safe_dump({"hosts": spec}), "h.yml")
    return list(inv.hosts.values())


UNIT = {"app": {"path": "/srv/app"}, "services": [{"name": "bot.service"}]}
PROCESS = {"connection": "local", "app": {"path": "/srv/app"},
           "services": [{"name": "bot", "manager": "process", "command": "node bot.js"}]}


def test_since_warns_only_where_it_cannot_filter():
    assert since_unmet(hosts({"a": UNIT}), "journal", None, 100, False) is None
    assert since_unmet(hosts({"a": PROCESS}), "journal", None, 100, False) == \
        "--since applies to journal logs only; showing the last 100 lines of the process back end's log (bot)"
    assert since_unmet(hosts({"a": UNIT}), "update", None, 5, True) == \
        "--since applies to journal logs only; showing the last 5 error lines of the update log"
    assert since_unmet(hosts({"a": UNIT, "b": PROCESS}), "journal", None, 0, False) == \
        "--since applies to journal logs only; showing new lines only on b"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: connecting is refused


@pytest.fixture
def ghost(tmp_path):
    """An inventory whose one host refuses connections (loopback, a closed port)."""
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"hosts": {"ghost": {"address": "127.0.0.1", "port": closed_port(),
                                                        "app": {"path": "/srv/app"},
                                                        "services": [{"name": "bot.service"}]}}}))
    return str(path)


def test_a_bad_since_is_a_usage_error_before_connecting(ghost):
    for source in ("journal", "update"):
        r = run_cli("logs", "-i", ghost, "--source", source, "--since", "garbage", "-n", "2", "--connect-timeout", "2")
        assert r.returncode == 64, r.stdout + r.stderr  # not 3: nothing was connected to
        assert "--since 'garbage' is not a time" in r.stderr and "'1 hour ago'" in r.stderr


def test_since_on_a_file_warns_once_and_shows_the_last_lines(sandbox):
    log = sandbox.home.parent / "log" / "update.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("one\ntwo\nthree\n")
    inv = str(sandbox.inventory)
    r = run_cli("logs", "-i", inv, "--source", "update", "--since", "1 hour ago", "-n", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "two\nthree\n"  # stdout stays the log's lines
    assert r.stderr == "fabops: --since applies to journal logs only; showing the last 2 lines of the update log\n"
    r = run_cli("logs", "-i", inv, "--source", "update", "-n", "2")
    assert r.stdout == "two\nthree\n" and r.stderr == ""  # no --since, no warning
    r = run_cli("logs", "-i", inv, "--since", "-5min", "-n", "1", "--json")
    assert "process back end's log (bot)" in r.stderr


def test_follow_names_an_unreachable_host_once(ghost):
    """trial #11: `find-to-do: fabops: find-to-do: cannot resolve …`."""
    r = run_cli("logs", "-i", ghost, "-f", "-n", "1", "--connect-timeout", "2")
    assert r.returncode == 3, r.stdout + r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("fabops: ghost: ") and first.count("ghost") == 1, r.stderr
