"""monitor's "errors in the last hour" counts the update log's lines of the
last hour that `logs --source update --errors` keeps (a failed, aborted or
rolled-back run's line, a line saying error), in the same round trip: it
counted only the journal and the process back end's logs, though the docs
said the update log was read. An update-log line's time is read from its
head (host/record.log_line: `%Y-%m-%dT%H:%M:%S%z`, the writer's offset)."""
import calendar
import os
import shutil
import subprocess
import time

import pytest
import yaml

from fabops import inventory, monitor
from fabops.shell import sh


def _stamp(epoch: float, hours: int) -> str:
    """`epoch` as a writer `hours` east of UTC stamps it."""
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch + hours * 3600))
    return f"{local}{'+' if hours >= 0 else '-'}{abs(hours):02d}00"


@pytest.mark.parametrize("utc", ["2024-02-29T23:59:59", "2027-01-01T00:00:00", "2026-03-01T12:30:05",
                                 "2000-02-28T06:00:00"])
@pytest.mark.parametrize("hours", [0, 9, -8])
def test_a_lines_time_is_read_exactly_whatever_its_offset(utc, hours):
    epoch = calendar.timegm(time.strptime(utc, "%Y-%m-%dT%H:%M:%S"))
    line = f"{_stamp(epoch, hours)} [cron cron] ABORTED a -> b in 1.0s: x\n"
    counts = [subprocess.run(["sh", "-c", sh("awk -v c={c} {prog}", c=c, prog=monitor._LOG_TIME_AWK)], input=line,
                             capture_output=True, text=True, timeout=30).stdout for c in (epoch, epoch + 1)]
    assert counts == ["1\n", "0\n"], (line, counts)


def _host(tmp_path, log):
    return inventory.loads(yaml.safe_dump({"hosts": {"h": {
        "connection": "local", "app": {"path": str(tmp_path / "app")}, "home": str(tmp_path / "home"),
        "logs": {"update": str(log)},
        "services": [{"name": "bot", "manager": "process", "command": "true"}]}}}), "x.yml").hosts["h"]


@pytest.mark.parametrize("shell", [s for s in ("sh", "dash") if shutil.which(s)])
def test_the_update_logs_failures_of_the_last_hour_are_counted(tmp_path, shell):
    now = time.time()
    log = tmp_path / "update.log"
    log.write_text("\n".join([
        f"{_stamp(now - 7200, 0)} [cron cron] ABORTED a -> b in 1.0s: two hours ago",
        f"{_stamp(now - 600, 9)} [cron cron] ABORTED a -> b in 1.0s: preflight failed",
        f"{_stamp(now - 1200, -5)} [reset ann@laptop] BROKEN a -> b in 1.0s: it died",
        f"{_stamp(now - 300, 0)} [backup cron] BACKUP_FAILED at b in 1.0s: items FAILED: dump-pg",
        f"{_stamp(now - 60, 0)} [cron cron] DEPLOYED a -> b in 1.0s: ok",
        "--- npm ci (20261207T090000-a1b2c3)", "npm ERR! error: no time to tell its hour",
    ]) + "\n")
    host = _host(tmp_path, log)
    out = subprocess.run([shell, "-c", monitor.monitor_script(host, window=0)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60).stdout
    assert monitor.parse(out, host, now)["errors_last_hour"] == 3, out
    os.utime(log, (now - 7200, now - 7200))  # not written in the last hour: not read
    out = subprocess.run([shell, "-c", monitor.monitor_script(host, window=0)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60).stdout
    assert monitor.parse(out, host, now)["errors_last_hour"] == 0, out
