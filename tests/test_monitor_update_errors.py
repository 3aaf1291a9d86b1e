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
from tests.test_golden import frozen  # noqa: F401 (the panel's clock)


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


def test_the_update_logs_share_is_read_apart_and_a_process_host_has_no_journal(tmp_path):
    """#24's trial: `errors in the last hour: 2` while `logs --errors` showed 1
    line (the other was the update log's), and `journal: 0B` on a host whose
    only service is process-managed (its log is a file, not the journal)."""
    now = time.time()
    log = tmp_path / "update.log"
    log.write_text(f"{_stamp(now - 600, 0)} [cron cron] ABORTED a -> b in 1.0s: preflight failed\n")
    host = _host(tmp_path, log)
    svc_log = tmp_path / "home" / "services" / "bot.log"
    assert host.paths.service_log("bot") == str(svc_log)
    svc_log.parent.mkdir(parents=True)
    svc_log.write_text("Error: the bot could not reach discord\nok\n")
    script = monitor.monitor_script(host, window=0)
    assert "journalctl --disk-usage" not in script
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         timeout=60).stdout
    facts = monitor.parse(out, host, now)
    assert (facts["errors_last_hour"], facts["errors_last_hour_update"]) == (2, 1), out
    # a recorded journal size is not shown for it either (an older script's output)
    assert monitor.parse(out + f"\n{monitor.MARK}journal\n0B\n", host, now)["journal_usage"] is None


@pytest.mark.parametrize("width", (80, 200))
def test_the_panel_says_where_the_hours_errors_are(width, frozen, capsys, monkeypatch):
    """A process-managed host's panel (tests/test_golden's recorded one) with
    an error in the service log and one in the update log: where each is,
    the command whole at 80 columns, and no `journal:` (#24's trial)."""
    import json

    from fabops import errors
    from fabops.probe import MARK
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console
    from tests.conftest import ROOT
    from tests.test_golden import check, render

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    facts = monitor.parse(case["output"] + f"\n{MARK}errors\n1\n{MARK}errors_update\n1\n", host, case["now"])
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    said = " ".join(text.replace("│", " ").split())
    # named as every hint names a command (deploy.suggest: -H), one clause after another (#24's fresh-clone trial)
    assert "1 in the update log; `fabops logs -H sandbox --source update --errors` shows the update log's" in said, text
    assert "journal:" not in text and ") (" not in said, text
    check("monitor-errors-where", width, text)
