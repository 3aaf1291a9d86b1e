"""monitor shows the last backup (issue #26): its age, result and whether
it is off the host, read in the same round trip as every other fact, and
warns when the last good one is older than twice backup.schedule, when
none was made in that long, and when a snapshot is on the host's own disk
only (setup --check's words). The rule as a table; the panel and the
several-hosts table at 80 and 200 columns; --json against the schema; a
real `backup` on the sandbox host in `monitor`. And #24: a BROKEN end
names the way out in the tool's own commands."""
import json
import shutil

import pytest
import yaml

from tests import test_golden as golden
from tests.conftest import ROOT, json_schema, one, run_cli
from tests.test_golden import NOW, WIDTHS, check, render

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still
DAY = 86400.0
RUN = "20261129T103000-a1b2c3"
GOOD = "20261126T103000-0f1e2d"
FAILED_MESSAGE = ("items FAILED: dump-pg (exited 1: pg_dump: error: connection to server on socket "
                  "\"/run/postgresql/.s.PGSQL.5432\" failed: No such file or directory); off-host copy: unreachable")


def _rec(age: float, ok: bool, snapshot: str, message: str = "") -> dict:
    return {"ts": NOW - age, "trigger": "backup", "result": "backed_up" if ok else "backup_failed",
            "snapshot": snapshot, "message": message or f"snapshot {snapshot}: 4 items ok, copied off the host"}


def _facts(records, first_age=30 * DAY, backup=None, state_extra=None):
    """process_recorded.json's output with the backup sections as the script
    prints them (the newest record, then the newest good one), judged at NOW."""
    from fabops import inventory, monitor
    from fabops.probe import MARK

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    entry = dict(case["host"], **({"backup": backup} if backup is not None else {}))
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": entry}}), "x.yml").hosts["sandbox"]
    # the last update check a minute before NOW, the time the rows are judged and shown at: no `cron stalled`
    output = case["output"].replace('"last_check": 1795890574.9047236', f'"last_check": {NOW - 60}')
    if state_extra:  # the state section holds state.json as written (indented): its first key gets company
        output = output.replace(f"{MARK}state\n{{\n", f"{MARK}state\n{{\n" + json.dumps(state_extra)[1:-1] + ",\n")
    shown = records[:1] + [next((r for r in records if r["result"] == "backed_up"), None)]
    lines = "\n".join(json.dumps(r) for r in shown if r)
    first = json.dumps({"ts": NOW - first_age, "trigger": "cron"}) if first_age is not None else ""
    output += f"\n{MARK}backup\n{lines}\n\n{MARK}first\n{first}\n"
    return monitor.judged(monitor.parse(output, host, NOW), host, NOW), host


@pytest.mark.parametrize("schedule, ok_age, first_age, repo, warned", [
    ("@daily", 0.5 * DAY, 30 * DAY, True, []),                  # fresh
    ("@daily", 1.9 * DAY, 30 * DAY, True, []),                  # one run missed or splayed: no warning
    ("@daily", 2.1 * DAY, 30 * DAY, True, ["backup late"]),     # past 2x
    ("0 3 * * 0", 10 * DAY, 30 * DAY, True, []),                # weekly by its weekday: 2x is 14 days
    ("0 3 * * 0", 15 * DAY, 30 * DAY, True, ["backup late"]),
    ("@hourly", 3 * 3600, 30 * DAY, True, ["backup late"]),
    ("off", 40 * DAY, 60 * DAY, True, []),                      # no schedule: no age rule
    ("@daily", None, 30 * DAY, True, ["no good backup yet"]),   # never, on an old host
    ("@daily", None, 1.5 * DAY, True, []),                      # never, on a new host: not yet due
    ("@daily", None, None, True, []),                           # no history at all
    ("off", None, 30 * DAY, True, []),                          # off and none: no noise
    ("@daily", 0.5 * DAY, 30 * DAY, False, ["no off-host copy"]),   # a snapshot on the host's disk alone
    ("off", None, 30 * DAY, False, []),                         # off, none, no repository: still no noise
])
def test_the_age_rule(schedule, ok_age, first_age, repo, warned):
    from fabops import monitor

    last = None if ok_age is None else {"snapshot": GOOD, "at": NOW - ok_age, "ok": True, "message": "ok",
                                        "offsite": True if repo else None}
    backup = {"schedule": None if schedule == "off" else schedule, "repository": repo, "last": last,
              "last_ok_at": None if ok_age is None else NOW - ok_age,
              "history_since": None if first_age is None else NOW - first_age}
    found = monitor.backup_findings(backup, NOW, "web1")
    assert [f.split(":")[0] for f in found] == warned, found


def test_a_failed_last_run_is_named_in_the_late_warning_and_none_yet_says_how():
    from fabops import monitor

    last = {"snapshot": RUN, "at": NOW - 3600, "ok": False, "message": FAILED_MESSAGE, "offsite": False}
    backup = {"schedule": "@daily", "repository": True, "last": last, "last_ok_at": NOW - 3 * DAY,
              "history_since": NOW - 30 * DAY}
    (late,) = monitor.backup_findings(backup, NOW, "web1")
    assert late.startswith("backup late: the last good backup is 3d 0h old, more than 2x its schedule "
                           "(backup.schedule @daily, every 1d); the last one failed 1h 0m ago: items FAILED: "), late
    # the reason's head whole (--json gives every finding whole; the panel's row cuts it)
    assert "off-host copy" not in late and late.endswith("No such file or directory)") and "…" not in late
    (never,) = monitor.backup_findings(dict(backup, last_ok_at=None), NOW, "web1", inventory="inv.yml")
    assert never.startswith("no good backup yet: none in the 30d 0h since the host's first run") and \
        never.endswith("; `fabops backup -i inv.yml -H web1` makes one now"), never


def test_a_failed_last_run_within_the_window_is_a_warning_until_a_good_one():
    from fabops import monitor

    last = {"snapshot": RUN, "at": NOW - 3600, "ok": False, "message": "items FAILED: dump-pg (exited 1)",
            "offsite": False}
    backup = {"schedule": "@daily", "repository": True, "last": last, "last_ok_at": NOW - 20 * 3600,
              "history_since": NOW - 30 * DAY}
    assert monitor.backup_findings(backup, NOW, "web1") == [
        "backup failed: the last one, 1h 0m ago: items FAILED: dump-pg (exited 1); the last good one is 20h 0m old"]
    never = monitor.backup_findings(dict(backup, last_ok_at=None, history_since=NOW - 3600), NOW, "web1")
    assert never == ["backup failed: the last one, 1h 0m ago: items FAILED: dump-pg (exited 1)"]
    ok = dict(last, ok=True, message="ok")
    assert monitor.backup_findings(dict(backup, last=ok, last_ok_at=NOW - 3600), NOW, "web1") == []


def test_a_finding_says_an_age_as_the_panel_row_does():
    """#26's trial: the row said `last backup 501 ms ago … last good one
    39.8 s ago` where the finding said `1 min` for both (whole minutes)."""
    from fabops import monitor
    from fabops.tasks.render import fmt_duration

    last = {"snapshot": RUN, "at": NOW - 0.501, "ok": False, "message": "items FAILED: x", "offsite": False}
    backup = {"schedule": "@daily", "repository": True, "last": last, "last_ok_at": NOW - 39.8,
              "history_since": NOW - 30 * DAY}
    assert monitor.backup_findings(backup, NOW, "web1") == [
        "backup failed: the last one, 501 ms ago: items FAILED: x; the last good one is 39.8 s old"]
    assert fmt_duration(0.501) == "501 ms" and fmt_duration(39.8) == "39.8 s"  # the row's words


# (expression, update_interval: the typical gap, schedule.update's; longest_gap: the backup rule's)
GAPS = [("*/5 * * * 1-5", 300, 2 * DAY + 300), ("0 3 * * 0", DAY, 7 * DAY), ("0 3 */2 * *", DAY, 2 * DAY),
        ("0 3 * * 1-5", DAY, 3 * DAY), ("@daily", DAY, DAY), ("@weekly", 7 * DAY, 7 * DAY),
        ("@monthly", None, 31 * DAY), ("@hourly", 3600, 3600), ("0 3 1 1 *", DAY, 366 * DAY),
        ("30 2 * * mon,fri", DAY, 4 * DAY), ("0 3 1 * 1", DAY, 7 * DAY), ("@reboot", None, None)]


@pytest.mark.parametrize("expr, typical, longest", GAPS)
def test_update_interval_is_the_typical_gap_and_longest_gap_the_longest(expr, typical, longest):
    """schedule.update's weekday-only cron is still 5 min apart (a stall is
    flagged after 15 min on a weekday, not 21 days); the backup rule allows
    the longest gap and no more (every 2 days: 2 days, not a month)."""
    from fabops import monitor

    assert (monitor.update_interval(expr), monitor.longest_gap(expr)) == (typical, longest)


def test_a_late_weekday_backup_names_its_longest_gap():
    from fabops import monitor

    backup = {"schedule": "0 3 * * 1-5", "repository": True, "last": None, "last_ok_at": NOW - 7 * DAY,
              "history_since": NOW - 30 * DAY}
    (late,) = monitor.backup_findings(backup, NOW, "web1")
    assert late == ("backup late: the last good backup is 7d 0h old, more than 2x its schedule "
                    "(backup.schedule 0 3 * * 1-5, at most 3d apart)"), late
    assert monitor.backup_findings(dict(backup, last_ok_at=NOW - 5 * DAY), NOW, "web1") == []


def test_the_facts_from_the_sections():
    from fabops.host.backup import NO_OFF_HOST

    recs = [_rec(3600, False, RUN, FAILED_MESSAGE), _rec(3 * DAY, True, GOOD)]
    repo = {"url": "local:/srv/restic", "password_file": "/srv/pw"}
    facts, _ = _facts(recs, backup={"repository": repo}, state_extra={"backup_offsite": [GOOD]})
    b = facts["backup"]
    assert b["last"] == {"snapshot": RUN, "at": NOW - 3600, "ok": False, "message": FAILED_MESSAGE,
                         "offsite": False}, b
    assert (b["schedule"], b["repository"], b["last_ok_at"], b["history_since"]) == \
        ("@daily", True, NOW - 3 * DAY, NOW - 30 * DAY)
    recs = [_rec(3600, False, RUN, FAILED_MESSAGE), _rec(DAY, True, GOOD)]
    facts, _ = _facts(recs[1:], backup={"repository": repo}, state_extra={"backup_offsite": [GOOD]})
    assert facts["backup"]["last"]["offsite"] is True and facts["code"] == 0, facts["findings"]
    facts, _ = _facts(recs[1:])  # no repository: where it is, and the warning setup --check gives
    assert facts["backup"]["last"]["offsite"] is None
    assert [f["message"] for f in facts["findings"]] == [NO_OFF_HOST] and facts["code"] == 1
    facts, _ = _facts([], backup={"schedule": None})
    assert facts["backup"]["last"] is None and facts["findings"] == [] and facts["code"] == 0
    for f in (facts, _facts(recs)[0]):
        import jsonschema

        jsonschema.validate(f, json_schema("facts"))


def test_a_fixture_without_the_sections_reads_as_not_read():
    from fabops import inventory, monitor

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    assert monitor.parse(case["output"], host, NOW)["backup"] is None


def test_the_script_reads_them_in_its_one_round_trip(tmp_path):
    """The fact script's own sections, run by sh on a history file: the
    newest backup record and the newest good one, whatever runs are
    between them, and the first record."""
    import subprocess

    from fabops import inventory, monitor

    home = tmp_path / "home"
    home.mkdir()
    recs = [{"ts": 1.0, "trigger": "cron", "result": "deployed"}, _rec(5 * DAY, True, GOOD),
            {"ts": 2.0, "trigger": "deploy", "result": "deployed"}, _rec(DAY, False, RUN, FAILED_MESSAGE),
            {"ts": 3.0, "trigger": "cron", "result": "up_to_date"}]
    # as host/files.append_json writes them
    (home / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    host = inventory.loads(yaml.safe_dump({"hosts": {"h": {
        "connection": "local", "app": {"path": str(tmp_path / "app")}, "home": str(home),
        "services": [{"name": "bot", "manager": "process", "command": "true"}]}}}), "x.yml").hosts["h"]
    out = subprocess.run(["sh", "-c", monitor.monitor_script(host, window=0)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60).stdout
    b = monitor.parse(out, host, NOW)["backup"]
    assert (b["last"]["snapshot"], b["last"]["ok"], b["last_ok_at"], b["history_since"]) == \
        (RUN, False, NOW - 5 * DAY, 1.0), b


@pytest.mark.skipif(not shutil.which("dash"), reason="needs dash, Debian's /bin/sh")
def test_the_first_record_survives_dash_with_backslashes(tmp_path):
    """Debian's /bin/sh is dash, whose echo reads backslashes: a first
    record whose message holds `\\n` or `\\\\` (as JSON escapes them) came
    out as invalid JSON and history_since was None. printf '%s\\n' keeps it."""
    import subprocess

    from fabops import inventory, monitor

    home = tmp_path / "home"
    home.mkdir()
    first = {"ts": 1.0, "trigger": "deploy", "result": "failed", "message": "C:\\temp\nline two \\c"}
    (home / "history.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(_rec(DAY, True, GOOD)) + "\n")
    host = inventory.loads(yaml.safe_dump({"hosts": {"h": {
        "connection": "local", "app": {"path": str(tmp_path / "app")}, "home": str(home),
        "services": [{"name": "bot", "manager": "process", "command": "true"}]}}}), "x.yml").hosts["h"]
    out = subprocess.run(["dash", "-c", monitor.monitor_script(host, window=0)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60).stdout
    assert monitor.parse(out, host, NOW)["backup"]["history_since"] == 1.0, out


def _panel(capsys, monkeypatch, width, facts, host) -> str:
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console

    return render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))


@pytest.mark.parametrize("width", WIDTHS)
def test_the_panel_says_a_failed_last_backup_and_the_late_warning(width, frozen, capsys, monkeypatch):
    recs = [_rec(3600, False, RUN, FAILED_MESSAGE), _rec(3 * DAY, True, GOOD)]
    text = _panel(capsys, monkeypatch, width, *_facts(recs))
    said = " ".join(text.replace("│", " ").split())
    assert "last backup 1h 0m ago (backup.schedule @daily): FAILED, on this host only; last good one 3d 0h ago" \
        in said, text
    assert "backup late: the last good backup is 3d 0h old" in said and "no off-host copy" in said, text
    # the reason once: the finding carries it whole, the row drops its why (#24's trial)
    assert said.count("dump-pg") == 1 and "why:" not in said, text
    check("monitor-backup", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_panel_says_a_good_backup_off_the_host(width, frozen, capsys, monkeypatch):
    repo = {"url": "local:/srv/restic", "password_file": "/srv/pw"}
    facts, host = _facts([_rec(5 * 3600, True, GOOD)], backup={"repository": repo},
                         state_extra={"backup_offsite": [GOOD]})
    text = _panel(capsys, monkeypatch, width, facts, host)
    said = " ".join(text.replace("│", " ").split())
    assert "last backup 5h 0m ago (backup.schedule @daily): ok, copied off the host" in said, text
    check("monitor-backup-ok", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_several_hosts_name_the_backup_warning_in_their_row(width, frozen, capsys, monkeypatch):
    from fabops.fanout import HostResult
    from fabops.tasks.observe import render_all
    from fabops.tasks.render import console

    late, host = _facts([_rec(3600, False, RUN, FAILED_MESSAGE), _rec(3 * DAY, True, GOOD)])
    fine, _ = _facts([_rec(3600, True, RUN)], backup={"repository": {"url": "local:/r", "password_file": "/p"}},
                     state_extra={"backup_offsite": [RUN]})
    results = [HostResult("web1", value=late, code=late["code"]), HostResult("web2", value=fine, code=fine["code"])]
    text = render(capsys, monkeypatch, width, lambda: console().print(render_all(results, {"web1": host, "web2": host})))
    row = next(ln for ln in golden.SGR.sub("", text).splitlines() if ln.startswith(" web1"))
    assert "backup late" in row, text
    check("monitor-backup-hosts", width, text)


# ---------------------------------------------------------------- #24: a BROKEN end's way out


def _broken(head=None, trigger="update"):
    from fabops import monitor
    from fabops.probe import MARK

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    from fabops import inventory

    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    output = case["output"].replace('"last_result": "deployed"', '"last_result": "broken"')
    if head:
        output = output.replace(f"\n{MARK}pstat1\n", f"\n{MARK}head\n{head}\n\n{MARK}pstat1\n")
    if trigger != "update":
        output += f"\n{MARK}last\n" + json.dumps({"trigger": trigger, "result": "broken"}) + "\n"
    return monitor.judged(monitor.parse(output, host, case["now"]), host, case["now"]), host


def test_a_broken_end_says_what_to_do_next():
    said = [f["message"] for f in _broken()[0]["findings"]]
    assert said == ["the last update ended BROKEN: a person is needed: `fabops rollback -H sandbox` goes back to "
                    "the last good commit before 9faf75dc81, `fabops deploy -H sandbox --ref COMMIT` deploys a "
                    "fixed one"], said
    said = [f["message"] for f in _broken(trigger="reset")[0]["findings"]]
    assert said[0].startswith("the last reset ended BROKEN: a person is needed: `fabops rollback -H sandbox`"), said
    # the checkout elsewhere: the way back to the deployed commit (checkout_moved_text's words)
    said = [f["message"] for f in _broken(head="c0ffee0123456789abcdef0123456789abcdef01")[0]["findings"]]
    assert said == ["the last update ended BROKEN: a person is needed: the checkout is at c0ffee0123, not the "
                    "deployed 9faf75dc81, so a restart would start c0ffee0123 again; `fabops rollback -H sandbox "
                    "--to 9faf75dc81` goes back to 9faf75dc81, `fabops deploy -H sandbox` deploys the branch's "
                    "head"], said
    # the restart backoff's finding already gave that way out: said once
    from fabops import monitor

    dep = {"deployed": "9faf75dc81", "head": "c0ffee0123", "last_run": {"trigger": "reset"}}
    assert monitor.broken_text(dep, "sandbox", said_moved=True) == \
        "the last reset ended BROKEN: a person is needed: the way out is above"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_broken_panel(width, frozen, capsys, monkeypatch):
    text = _panel(capsys, monkeypatch, width, *_broken())
    assert "--ref COMMIT" in " ".join(text.replace("│", " ").split()), text
    check("monitor-broken", width, text)


# ---------------------------------------------------------------- the sandbox


def test_a_real_backup_shows_up_in_monitor(sandbox, tmp_path):
    """A real `fabops backup` on the sandbox host, failed then good: monitor's
    --json and panel show each, read from the host's own history; with no
    repository the off-host warning is setup --check's."""
    from fabops.host.backup import NO_OFF_HOST

    assert sandbox.result()[0] == 0
    inv = str(sandbox.inventory)
    facts = one(run_cli("monitor", "-i", inv, "-H", "local", "--json").stdout)
    assert facts["backup"]["last"] is None and not [f for f in facts["findings"] if "backup" in f["message"]], facts

    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["backup"] = {"dump": [{"name": "pg", "command": "echo 'pg_dump: refused' >&2; exit 1"}]}
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli("backup", "-i", inv, "-H", "local").returncode == 2
    r = run_cli("monitor", "-i", inv, "-H", "local", "--json")
    facts = one(r.stdout)
    last = facts["backup"]["last"]
    assert last["ok"] is False and "dump-pg" in last["message"] and last["offsite"] is None, last
    assert facts["backup"]["last_ok_at"] is None and NO_OFF_HOST in [f["message"] for f in facts["findings"]]
    human = run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": "200"}).stdout
    assert "FAILED, on this host only; last good one never │" in " ".join(human.split()), human
    assert human.count("dump-pg") == 1 and "backup failed: the last one, " in human, human

    del data["hosts"]["local"]["backup"]
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli("backup", "-i", inv, "-H", "local").returncode == 0
    facts = one(run_cli("monitor", "-i", inv, "-H", "local", "--json").stdout)
    last = facts["backup"]["last"]
    assert last["ok"] is True and facts["backup"]["last_ok_at"] == pytest.approx(last["at"]), facts["backup"]
    assert (sandbox.home / "backups" / last["snapshot"] / "manifest.json").is_file()
    human = run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": "80"}).stdout
    assert "(backup.schedule @daily): ok, on this host only" in " ".join(human.replace("│", " ").split()), human


def test_a_backup_copied_off_the_host_and_one_that_was_not(sandbox):
    """With a real restic repository (a local one: the copy's success is
    the fact here, not the transport): monitor says the snapshot is off the
    host; when the next run cannot reach it, that run is FAILED, `not
    copied off the host`, and the good one before it is named."""
    import shutil

    from tests.conftest import require

    require(shutil.which("restic") is not None, "restic is not installed (apt-get install restic)")
    assert sandbox.result()[0] == 0
    inv = str(sandbox.inventory)
    pw = sandbox.base / "restic-password"
    pw.write_text("monitor-test-pw\n")
    pw.chmod(0o600)
    data = yaml.safe_load(sandbox.inventory.read_text())
    repo = {"url": f"local:{sandbox.base / 'restic'}", "password_file": str(pw)}
    data["hosts"]["local"]["backup"] = {"repository": repo}
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    r = run_cli("backup", "-i", inv, "-H", "local", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    facts = one(run_cli("monitor", "-i", inv, "-H", "local", "--json").stdout)
    first = facts["backup"]["last"]
    assert first["ok"] and first["offsite"] is True and facts["backup"]["repository"], facts["backup"]
    assert not [f for f in facts["findings"] if "backup" in f["message"]], facts["findings"]

    (sandbox.base / "not-a-dir").write_text("")  # a repository under a plain file: out of reach
    data["hosts"]["local"]["backup"]["repository"]["url"] = f"local:{sandbox.base / 'not-a-dir' / 'restic'}"
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli("backup", "-i", inv, "-H", "local", timeout=300).returncode == 2
    facts = one(run_cli("monitor", "-i", inv, "-H", "local", "--json").stdout)
    last = facts["backup"]["last"]
    assert not last["ok"] and last["offsite"] is False and last["snapshot"] != first["snapshot"], last
    assert facts["backup"]["last_ok_at"] == pytest.approx(first["at"])
    human = " ".join(run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": "80"}).stdout
                     .replace("│", " ").split())
    assert "FAILED, not copied off the host; last good one " in human and "ago: off-host copy" in human, human
    assert human.count("off-host copy:") == 1, human
