"""#24 (an outside review): `cron stalled` counts schedule.update's own
runs on the host's calendar (monitor.stall_span, docs/monitor.md). A
weekday-only schedule (`*/5 * * * 1-5`) has no runs on a weekend, so a
Saturday with no update checks is no stall; a real stall on a Tuesday
still is, after the same 15 min as before. The calendar is the host's
(its `date +%z`), not the laptop's."""
import calendar
import datetime

import pytest
import yaml

from fabops import errors, inventory, monitor
from fabops.probe import MARK

WEEKDAYS = "*/5 * * * 1-5"


def at(text: str) -> float:
    """An ISO time, read as UTC (2026-12-04 is a Friday)."""
    return float(calendar.timegm(datetime.datetime.fromisoformat(text).timetuple()))


def host_with(schedule: str):
    entry = {"connection": "local", "sandbox": True, "app": {"path": "/tmp/app"},
             "services": [{"name": "bot", "manager": "process", "command": "true"}],
             "schedule": {"update": schedule}}
    return inventory.loads(yaml.safe_dump({"hosts": {"h": entry}}), "x.yml").hosts["h"]


def stall_findings(schedule: str, last: str, now: str, offset="+0000"):
    """evaluate's cron-stalled findings for a host whose last update check
    was at `last` and whose clock is at `offset` (the script's tz section)."""
    host = host_with(schedule)
    output = (f"{MARK}tz\n{offset}\n{MARK}state\n" + '{"deployed": "%s", "last_check": %r}\n' % ("a" * 40, at(last))
              + f"{MARK}end\n")
    facts = monitor.parse(output, host, at(now))
    return [(c, m) for c, m in monitor.evaluate(facts, host, at(now))[1] if m.startswith("cron stalled")]


@pytest.mark.unit
@pytest.mark.parametrize("last, now, stalled", [
    ("2026-12-04 23:55:10", "2026-12-05 12:00:00", False),   # Saturday noon after Friday's last run: no runs due
    ("2026-12-04 23:55:10", "2026-12-06 23:59:00", False),   # Sunday night: still none
    ("2026-12-04 23:55:10", "2026-12-07 00:08:00", False),   # Monday: two runs missed, not yet three
    ("2026-12-04 23:55:10", "2026-12-07 00:16:00", True),    # Monday: three runs missed
    ("2026-12-08 10:00:20", "2026-12-08 10:14:00", False),   # Tuesday: two runs missed
    ("2026-12-08 10:00:20", "2026-12-08 10:16:00", True),    # Tuesday: a real stall, news after 15 min as before
    ("2026-12-08 10:00:20", "2026-12-12 10:00:00", True),    # and still on the Saturday after it
])
def test_a_weekday_schedule_is_stalled_only_when_its_runs_were_due(last, now, stalled):
    found = stall_findings(WEEKDAYS, last, now)
    assert bool(found) == stalled, found
    assert all(code == errors.WARNING for code, _ in found)


@pytest.mark.unit
def test_an_every_day_schedule_keeps_three_intervals():
    assert not stall_findings("*/5 * * * *", "2026-12-05 10:00:20", "2026-12-05 10:15:10")
    assert stall_findings("*/5 * * * *", "2026-12-05 10:00:20", "2026-12-05 10:15:30") == [
        (errors.WARNING, "cron stalled: last update check 15 min ago (expected every 5 min)")]


@pytest.mark.unit
def test_a_weekday_stall_names_the_schedule():
    (_, text), = stall_findings(WEEKDAYS, "2026-12-04 23:55:10", "2026-12-07 00:20:00")
    assert text == f"cron stalled: last update check {2 * 1440 + 24} min ago (3 runs of schedule.update {WEEKDAYS} since)"


@pytest.mark.unit
def test_the_weekend_is_the_hosts():
    """A host at +0900 whose Friday's last run (23:55 there) was at 14:55
    UTC: Saturday 12:00 there is no stall, whatever the laptop's zone; the
    same check read on a UTC calendar would be (Friday 15:10 passed)."""
    assert not stall_findings(WEEKDAYS, "2026-12-04 14:55:10", "2026-12-05 03:00:00", offset="+0900")
    assert stall_findings(WEEKDAYS, "2026-12-04 14:55:10", "2026-12-05 03:00:00", offset="+0000")


@pytest.mark.unit
@pytest.mark.parametrize("text, seconds", [("+0900", 32400), ("-0330", -12600), ("+0000", 0), ("", None),
                                           ("UTC", None), (None, None)])
def test_utc_offset(text, seconds):
    assert monitor.utc_offset(text) == seconds
