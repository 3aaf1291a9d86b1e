"""Every run recorded in the history gets its update-log line, in one format
(host/record.log_line), so `logs --source update --errors` and monitor's
errors in the last hour (tests/test_monitor_update_errors.py) see every
failed run (issue #24's trial: a reset that ended BROKEN was in the
history but not in the update log; reset, restore and restart runs wrote
none). A first deploy's line says `(first) -> X`, as the
history does, not `none -> X`. On the local sandbox through the real
console script."""
from __future__ import annotations

import json

from fabops.host.record import log_line
from fabops.shortsha import short_sha
from tests.conftest import run_cli

A, B = "a" * 40, "b" * 40


def _rec(**kw):
    rec = {"time": "2026-12-07T09:00:00+0000", "trigger": "reset", "actor": "ann@laptop", "result": "broken",
           "from": A, "to": B, "duration": 1.25, "message": "it died"}
    rec.update(kw)
    return rec


def test_one_line_format_for_every_record():
    assert log_line(_rec()) == (f"2026-12-07T09:00:00+0000 [reset ann@laptop] BROKEN {short_sha(A)} -> "
                                f"{short_sha(B)} in 1.2s: it died")
    first = log_line(_rec(trigger="deploy", result="deployed", **{"from": None}, subject="v1", author="Ann"))
    assert f"DEPLOYED (first) -> {short_sha(B)} \"v1\" (Ann) in " in first and "none" not in first
    assert f"] RESTORED at {short_sha(A)} in " in log_line(_rec(trigger="restore", result="restored", to=A))


def test_an_unverified_deploys_line_says_so():
    """#29's trial: a deploy with --allow-unverified read `DEPLOYED a -> b
    in 2.4s`, its warning in --json alone. Its word is `DEPLOYED!` (still
    found by a grep for DEPLOYED) and the warning ends the line; a signed
    deploy's line is as before."""
    warning = f"{short_sha(B)} is not signed by an allowed key (No principal matched): deployed anyway " \
              "(--allow-unverified)"
    line = log_line(_rec(trigger="deploy", result="deployed", message=f"{short_sha(A)} -> {short_sha(B)}",
                         subject="v10", author="Ann", warnings=[warning]))
    assert line == (f"2026-12-07T09:00:00+0000 [deploy ann@laptop] DEPLOYED! {short_sha(A)} -> {short_sha(B)} "
                    f"\"v10\" (Ann) in 1.2s: {warning}")
    signed = log_line(_rec(trigger="deploy", result="deployed", message="x", warnings=["disk is 91% full"]))
    assert "] DEPLOYED " in signed and signed.endswith(" in 1.2s: x"), signed


def test_deployed_bang_is_decided_by_the_records_field():
    """#29's leftovers: `deployed!` read the end of a warning's text. A
    record the pipeline writes now says `unverified` (true or false) and
    that decides; a record written before the field is read by its
    warning's words as before."""
    from fabops.host.record import RunResult, shown_result

    warning = f"{short_sha(B)} is not signed by an allowed key (no signature): deployed anyway (--allow-unverified)"
    assert shown_result(_rec(result="deployed", unverified=True)) == "deployed!"
    assert shown_result(_rec(result="deployed", unverified=False, warnings=[warning])) == "deployed"
    assert shown_result(_rec(result="deployed", warnings=[warning])) == "deployed!"  # an old record
    assert shown_result(_rec(result="deployed", warnings=["disk is 91% full"])) == "deployed"
    assert shown_result(_rec(result="rolled_back", unverified=True)) == "rolled_back"
    # the field's line says why even when no warning spells it
    line = log_line(_rec(trigger="deploy", result="deployed", message="x", unverified=True))
    assert "] DEPLOYED! " in line and line.endswith(" in 1.2s: x; deployed anyway (--allow-unverified)"), line
    run = RunResult("deployed", "r", "deploy", "ann", unverified=True)
    assert run.to_dict()["unverified"] is True and "unverified" not in RunResult("deployed", "r", "d", "a").to_dict()


def test_a_restarts_line_says_healthy_not_deployed():
    """#24's review: a person's restart or health --fix records `deployed`
    (the verdict rules, host/record.healthy_again), and its line read
    `DEPLOYED at X`, as if a commit shipped: `HEALTHY at X`, its message
    saying what it did. local-update's restart is an update check, whose
    result stays its own word; no error filter matches either line."""
    import subprocess

    from fabops.logs import error_filter

    errors_only = "cat" + str(error_filter("update", False))  # logs --source update --errors' grep
    for trigger in ("restart", "health"):
        line = log_line(_rec(trigger=trigger, result="deployed", to=A, message=f"restarted bot at {short_sha(A)}; "
                                                                              "healthy"))
        assert f"[{trigger} ann@laptop] HEALTHY at {short_sha(A)} in 1.2s: restarted bot at " in line, line
        kept = subprocess.run(errors_only, shell=True, input=line + "\n", capture_output=True, text=True).stdout
        assert "DEPLOYED" not in line and kept == "", (line, kept)
    failed = log_line(_rec())  # and the same grep keeps a failure's line, as before
    assert subprocess.run(errors_only, shell=True, input=failed + "\n", capture_output=True, text=True).stdout
    line = log_line(_rec(trigger="cron", result="deployed", to=A, message="restarted bot; healthy again"))
    assert f"] DEPLOYED at {short_sha(A)} in " in line, line


def test_a_deploys_line_says_its_from_and_to_once():
    """#24's trial: `DEPLOYED A -> B "subject" (author) in 1.2s: A -> B`, the
    span twice. A message that is the span again is left out; any other is
    said after it, as before."""
    span = f"{short_sha(A)} -> {short_sha(B)}"
    line = log_line(_rec(result="deployed", message=span))
    assert line.count(span) == 1 and line.endswith(" in 1.2s"), line
    line = log_line(_rec(result="rolled_back", message=f"watch: bot died; rolled back to {short_sha(A)}"))
    assert line.endswith(f"in 1.2s: watch: bot died; rolled back to {short_sha(A)}"), line


def _log(sandbox) -> list:
    return (sandbox.home.parent / "log" / "update.log").read_text().splitlines()


def _runs(sandbox) -> list:
    return [ln for ln in _log(sandbox) if ln[:4].isdigit()]  # a run's line starts with its time


def test_reset_restart_and_backup_runs_each_get_their_line(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    inv = str(sandbox.inventory)
    code, res = sandbox.result()
    assert code == 0 and res["result"] == "deployed", res
    first = sandbox.head()
    assert f"] DEPLOYED (first) -> {short_sha(first)} " in _runs(sandbox)[-1], _log(sandbox)
    r = run_cli("restart", "-i", inv, "-H", "local")
    assert r.returncode == 0, r.stdout + r.stderr
    # a restart's record says `deployed` (the verdict rules); its line what it found (record.shown_result)
    assert f"] HEALTHY at {short_sha(first)} in " in _runs(sandbox)[-1] and "[restart " in _runs(sandbox)[-1]
    r = run_cli("backup", "-i", inv, "-H", "local", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[backup " in _runs(sandbox)[-1] and f"] BACKED_UP at {short_sha(first)} in " in _runs(sandbox)[-1]
    r = run_cli("backup", "-i", inv, "-H", "local", "--restore", json.loads(r.stdout)["hosts"]["local"]["run_id"],
                "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[restore " in _runs(sandbox)[-1] and f"] RESTORED at {short_sha(first)} in " in _runs(sandbox)[-1]
    bad = sandbox.origin.crash("2")
    r = run_cli("reset", "-i", inv, "-H", "local", "--yes", timeout=180)
    assert r.returncode == 5, r.stdout + r.stderr
    line = _runs(sandbox)[-1]
    assert f"[reset " in line and f"] BROKEN {short_sha(first)} -> {short_sha(bad)} in " in line, _log(sandbox)
    assert len(_runs(sandbox)) == len(sandbox.history()), (_log(sandbox), sandbox.history())
    r = run_cli("logs", "-i", inv, "-H", "local", "--source", "update", "--errors")
    assert "] BROKEN " in r.stdout, r.stdout + r.stderr
