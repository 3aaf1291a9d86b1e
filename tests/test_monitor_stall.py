"""#24 (an outside review): `cron stalled` counts schedule.update's own
runs on the host's calendar (monitor.stall_span, docs/monitor.md). A
weekday-only schedule (`*/5 * * * 1-5`) has no runs on a weekend, so a
Saturday with no update checks is no stall; a real stall on a Tuesday
still is, after the same 15 min as before. The calendar is the host's
(its `date +%z`), not the laptop's."""
import calendar
import dataclasses
import datetime
import json
import os

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


# ------------------------------------------------ a DST change since the last check (#24 review)

BERLIN = "Europe/Berlin"  # CEST +0200 until 2026-10-25 03:00, then CET +0100


def stall_across(last: str, now: str, tz: str, tzlast: str):
    """As stall_findings, for a host whose clock read `tz` now and
    `tzlast` at its last check (the script's tz and tzlast sections)."""
    host = host_with(WEEKDAYS)
    output = (f"{MARK}tz\n{tz}\n{MARK}tzlast\n{tzlast}\n{MARK}state\n"
              + '{"deployed": "%s", "last_check": %r}\n' % ("a" * 40, at(last)) + f"{MARK}end\n")
    facts = monitor.parse(output, host, at(now))
    return [m for _, m in monitor.evaluate(facts, host, at(now))[1] if m.startswith("cron stalled")]


@pytest.mark.unit
@pytest.mark.parametrize("now, stalled", [
    ("2026-10-25 11:00:00", False),   # Sunday noon CET: the weekend, no runs due (was: stalled 2224 min ago)
    ("2026-10-25 23:08:00", False),   # Monday 00:08 CET: two runs missed
    ("2026-10-25 23:16:00", True),    # Monday 00:16 CET: three runs missed
])
def test_a_fall_back_weekend_is_stepped_from_the_checks_own_offset(now, stalled):
    """Berlin, last check Friday 23:55:10 CEST (21:55:10 UTC), monitor
    after the clock went back: Friday's check is read at +0200, its
    weekend is no stall, and Monday's third run (00:10 CET) is the
    stall's start."""
    found = stall_across("2026-10-23 21:55:10", now, tz="+0100", tzlast="+0200")
    assert bool(found) == stalled, found


@pytest.mark.unit
def test_a_spring_forward_is_never_said_early():
    """Berlin, Friday 23:55:10 CET (22:55:10 UTC) before 2026-03-29's
    change; Monday's 00:10 CEST is Sunday 22:10 UTC: the span is stepped
    in wall-clock time and not shortened (the change's time is unknown),
    so it is no stall then, and is one by Monday 00:10 CET's time."""
    assert not stall_across("2026-03-27 22:55:10", "2026-03-29 22:16:00", tz="+0200", tzlast="+0100")
    assert stall_across("2026-03-27 22:55:10", "2026-03-29 23:11:00", tz="+0200", tzlast="+0100")


@pytest.mark.unit
def test_no_tzlast_keeps_the_current_offset():
    """A host whose date has no -d @ (the section is empty): now's offset
    stands in, as before."""
    assert stall_across("2026-12-04 23:55:10", "2026-12-05 12:00:00", tz="+0000", tzlast="") == []
    assert stall_across("2026-12-08 10:00:20", "2026-12-08 10:16:00", tz="+0000", tzlast="")


@pytest.mark.unit
def test_the_calendar_is_stepped_once_per_schedule():
    """monitor --watch evaluates every host on every refresh: the schedule's
    8 years of days (cron_gaps) are stepped once, not twice per evaluation
    (15 ms each time at load 9; #24 review). Counted in calls of the
    calendar's day test, not timed: 20 evaluations step only the few days
    around each check (stall_span)."""
    import sys

    calls = [0]

    def count(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "runs_on":
            calls[0] += 1

    stall_findings(WEEKDAYS, "2026-12-08 10:00:20", "2026-12-08 10:16:00")  # the first steps the calendar
    sys.setprofile(count)
    try:
        for _ in range(20):
            assert stall_findings(WEEKDAYS, "2026-12-08 10:00:20", "2026-12-08 10:16:00")
    finally:
        sys.setprofile(None)
    assert calls[0] <= 20 * 20, calls[0]


@pytest.mark.unit
@pytest.mark.skipif(not os.path.exists("/usr/share/zoneinfo/" + BERLIN), reason="no tzdata for Europe/Berlin")
@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize("reader", ["python3", "shell"])
def test_the_host_script_reads_the_offset_at_the_last_check(tmp_path, shell, reader):
    """The script's state section (_home_parts) and its tzlast section, as
    the facts' python3 prints it (host/monitorfacts.py) and as the shell
    does on a host without python3 (_shell_home_parts), on a real shell,
    date and python3, in Berlin's zone: state.json's last_check, a Friday
    before the fall-back, is at +0200 while now is at +0100; the state is
    printed as it was read. A state with no last_check prints no offset."""
    import subprocess
    from fabops.probe import split_sections
    from fabops.shell import sh

    state = tmp_path / "state.json"
    host = host_with(WEEKDAYS)
    host = dataclasses.replace(host, home=str(tmp_path))
    tzlast = (sh("python3 -I -S -c {src} 3 tzlast 1 {f}", src=monitor._facts_source(False, False), f=str(state))
              if reader == "python3" else "\n".join(monitor._shell_home_parts(host)[:2]))
    script = "NL='\n'\n" + monitor._home_parts(host)[0] + "\n" + tzlast + f"\necho; echo {MARK}end\n"
    env = {"PATH": "/usr/bin:/bin", "TZ": BERLIN}
    for record, offset in [({"last_check": at("2026-10-23 21:55:10") + 0.5, "deployed": "a" * 40}, "+0200"),
                           ({"last_check": at("2026-10-26 12:00:00")}, "+0100"), ({"deployed": "b"}, "")]:
        state.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        out = subprocess.run([shell, "-c", script], capture_output=True, text=True, env=env, check=True).stdout
        sections = split_sections(out)
        assert sections["tzlast"].strip() == offset, out
        assert json.loads(sections["state"]) == record
