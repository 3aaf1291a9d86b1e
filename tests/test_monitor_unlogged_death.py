"""A process service that died and that no stop has met yet: monitor said
`errors in the last hour: 0` beside `bot is down: its process is gone`,
because the back end's death line (`gone` in host/services.py) is written
by the next stop only, and a look writes nothing. monitor shows that death
already, beside the hour's count and not in it (when it died is unknown:
a death days old is no error of the last hour), and still writes nothing; `logs --errors` reads the log,
so it shows the line from that stop on (docs/monitor.md). On the local
sandbox through the real `fabops` console script, plus the pure rule."""
import json
import re
import time
from pathlib import Path

import pytest

from fabops.host.services import ServiceStatus, unlogged_deaths
from tests import test_golden as golden
from tests.conftest import ROOT, one, run_cli

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still


def _flat(text: str) -> str:
    """Output joined back where 80 columns wrapped it (the panel's borders out)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def test_a_death_no_stop_has_met_is_listed_by_monitor_which_writes_nothing(sandbox):
    code, _ = sandbox.result()
    assert code == 0
    inv = str(sandbox.inventory)
    services = sandbox.home / "services"
    log, note = services / "bot.log", services / "bot.pid.gone"
    pid = sandbox.pid()
    sandbox.stop()  # SIGKILL: the pidfile stays, naming a process that is gone (`stale`)
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    before = log.read_bytes()
    assert "error" not in before.decode().lower()  # the sample app's own lines count nothing

    facts = one(run_cli("monitor", "-i", inv, "-H", "local", "--json").stdout)
    bot = facts["services"][0]
    assert bot["state"] == "stale" and bot["pid"] == pid, bot
    assert facts["unlogged_deaths"] == [{"service": "bot", "pid": pid}], facts["unlogged_deaths"]
    assert facts["errors_last_hour"] == 0, facts  # beside the hour's count, not in it: when it died is unknown
    r = run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": "80"})
    assert r.returncode == 2, r.stdout + r.stderr
    assert all(len(line) <= 80 for line in r.stdout.splitlines()), r.stdout
    said = _flat(r.stdout)
    assert "errors in the last hour: 0 (+1 death not logged yet) " in said, r.stdout
    assert f"not logged yet: bot's process {pid} exited (a restart or stop logs it)" in said, r.stdout
    # a look is a read: no line in the log, no note
    assert log.read_bytes() == before and not note.exists()
    r = run_cli("logs", "-i", inv, "-H", "local", "--errors", "-n", "50")
    assert "fabops:" not in r.stdout, r.stdout  # the log reader: nothing written yet

    r = run_cli("restart", "-i", inv, "-H", "local")
    assert r.returncode == 0, r.stdout + r.stderr
    written = [ln for ln in log.read_text().splitlines() if ln.startswith("fabops:")]
    assert len(written) == 1 and f"bot's process {pid} exited (error: found gone at " in written[0], written
    facts = one(run_cli("monitor", "-i", inv, "-H", "local", "--json").stdout)
    # the same death, once: now counted in the hour its line was written
    assert facts["unlogged_deaths"] == [] and facts["errors_last_hour"] == 1, facts
    r = run_cli("logs", "-i", inv, "-H", "local", "--errors", "-n", "50")
    assert written[0] in r.stdout, r.stdout


RUNNING = ServiceStatus("bot", True, "active", 4242, 1.0)


def test_unlogged_deaths_rule():
    stale = ServiceStatus("bot", False, "stale", 4242)
    # found gone, no note: the death is not written yet
    assert unlogged_deaths({"bot": stale}, "") == [("bot", 4242)]
    # the note names an older PID (the last death written), not this one
    assert unlogged_deaths({"bot": stale}, "bot 4000") == [("bot", 4242)]
    # the note names this PID: `gone` wrote it already
    assert unlogged_deaths({"bot": stale}, "bot 4242") == []
    # running, stopped (no pidfile) or unknown: no death to count
    for st in (RUNNING, ServiceStatus("bot", False, "inactive"), ServiceStatus("bot", False, "unknown")):
        assert unlogged_deaths({"bot": st}, "") == []
    # per service, in the statuses' order; junk lines in the notes are ignored
    api = ServiceStatus("api", False, "stale", 77)
    assert unlogged_deaths({"api": api, "bot": stale}, "junk\nbot 4242\napi x") == [("api", 77)]


@pytest.mark.parametrize("width", golden.WIDTHS)
def test_the_panel_names_the_death_it_counts(width, frozen, capsys, monkeypatch):
    """The panel at 80 and 200 columns: the recorded sandbox's sections
    with bot found gone (pidfile 20393, no process) and a note naming an
    older death: no error in the hour, the death not logged yet beside
    the count and named under it."""
    import yaml

    from fabops import errors, inventory, monitor
    from fabops.probe import MARK
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    output = re.sub(r"(?m)^bot active 20393 \d+$", "bot stale 20393 -", case["output"])
    output += f"\n{MARK}gone\nbot 20001\n"
    facts = monitor.parse(output, host, case["now"])
    assert (facts["errors_last_hour"], facts["unlogged_deaths"]) == (0, [{"service": "bot", "pid": 20393}]), facts
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    text = golden.render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    assert "errors in the last hour: 0 (+1 death not logged yet)" in _flat(text), text
    assert "not logged yet: bot's process 20393 exited (a restart or stop logs it)" in _flat(text), text
    golden.check("monitor-unlogged-death", width, text)
