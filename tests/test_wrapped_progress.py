"""Progress lines in a pipe are wrapped like every other plain line (#24:
deploy's `[host] = rolled_back: …` line ran to ~130 columns in a pipe, a CI
log). Printed outside a table, they go through _base.wrap: broken at
spaces, continuation lines indented under the text after `[host] ✓ ` or
`[host] = `, at $COLUMNS or, in a pipe without it, 80."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, one
from tests.test_golden import check
from tests.test_piped_output import too_long, trailing

# a step and a result as a rolled-back deploy sends them (fabops/host events)
EVENTS = [
    {"kind": "step", "step": "fetch", "status": "start"},
    {"kind": "step", "step": "fetch", "status": "ok", "seconds": 0.02, "message": "origin/main is bfdc15f611"},
    {"kind": "log", "message": "bot check GET http://127.0.0.1:60953/health: HTTP 200"},
    {"kind": "step", "step": "restart bot", "status": "failed", "seconds": 0.24,
     "message": "bot died after starting: its process is gone, twice within the 1 s watch after its gate"},
    {"kind": "result", "result": "rolled_back",
     "message": "bfdc15f611 failed (bot died after starting: its process is gone); rolled back to "
                "3f3397bd8e, healthy"},
]


@pytest.mark.parametrize("width", (80, 200))
def test_deploy_progress_lines_wrap_with_a_hanging_indent(width, capsys, monkeypatch):
    from fabops.tasks.deploy import _Printer

    monkeypatch.setenv("COLUMNS", str(width))
    on_event = _Printer(5)("local")
    capsys.readouterr()
    for event in EVENTS:
        on_event(event)
    text = capsys.readouterr().out
    assert not trailing(text) and not too_long(text, width), text
    check("deploy-progress", width, text)
    if width == 80:  # continuation lines sit under the words after the mark, not at column 0
        lines = text.splitlines()
        result = next(i for i, ln in enumerate(lines) if ln.startswith("[local] = rolled_back"))
        assert lines[result + 1].startswith(" " * len("[local] = ")) and lines[result + 1].strip(), text
        assert len(lines) > len(EVENTS) - 1  # something wrapped (the start event prints nothing)
    else:
        assert len(text.splitlines()) == len(EVENTS) - 1  # 200 columns: one line each


def test_a_log_line_is_left_whole(capsys, monkeypatch):
    """The control: logs' lines (observe's PrefixWriter, not wrapped) are
    data for grep, shown whole at any width."""
    from fabops.tasks.render import PrefixWriter

    monkeypatch.setenv("COLUMNS", "80")
    long = " ".join(["word"] * 40)
    PrefixWriter("host | ").write(long + "\n")
    PrefixWriter("[host] ", wrapped=True).write(long + "\n")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "host | " + long and len(out) > 2 and out[2].startswith(" " * 7), out


def piped(*args, env=None):
    """The real `fabops` as a pipe runs it, without COLUMNS: 80 then."""
    full = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "fabops.cli", *args], capture_output=True, text=True, env=full,
                          cwd=ROOT, timeout=180, stdin=subprocess.DEVNULL)


def test_piped_deploy_and_local_update_lines_fit_80_columns(sandbox):
    assert sandbox.result()[0] == 0
    inv = str(sandbox.inventory)
    sandbox.origin.crash("a commit whose subject is long enough to make the summary line run past 80")
    r = piped("deploy", "-H", "local", "-i", inv)
    assert r.returncode == 2 and "[local] = rolled_back: " in r.stdout, r.stdout + r.stderr
    assert not trailing(r.stdout) and not too_long(r.stdout, 80), r.stdout
    assert max(len(ln) for ln in r.stdout.splitlines()) > 60  # long lines were there to wrap
    sandbox.origin.good("v3 with a subject that also goes on for a while, as subjects do")
    r = piped("local-update", "--verbose", "-i", inv)
    assert r.returncode == 0 and "local: deployed: " in r.stdout, r.stdout + r.stderr
    assert not trailing(r.stdout) and not too_long(r.stdout, 80), r.stdout
    # COLUMNS, when set, is the width a pipe gets
    sandbox.origin.crash("v4")
    r = piped("local-update", "--verbose", "-i", inv, env={"COLUMNS": "60"})
    assert r.returncode == 2 and not too_long(r.stdout, 60) and not trailing(r.stdout), r.stdout
    # the failure's one-line summary is on stderr, whole in a pipe (for_stderr: grep, CI annotations)
    assert len([ln for ln in r.stderr.splitlines() if " local: rolled_back: " in ln]) == 1, r.stderr
    assert one(piped("status", "--json", "-i", inv).stdout)  # the host is still readable afterwards


@pytest.mark.parametrize("width", (80, 200))
def test_deploy_dry_run_plan_lines_wrap_under_the_host(width, capsys, monkeypatch):
    """deploy --dry-run's plan and would lines were printed through rich,
    which wrapped them at spaces but back to column 0, under `[host]`."""
    from types import SimpleNamespace

    from fabops.tasks.deploy import _plans

    monkeypatch.setenv("COLUMNS", str(width))
    plan = {"changed_files": 12, "dirty": ["a", "b"], "pin": "3f2a9c1d7e5b8a0c4d6e", "to": "9b8c7d6e5f4a3b2c1d0e",
            "bad": True, "known_bad": "9b8c7d6e5f failed its watch before (bot died 1 s after passing its gate: its "
                                      "process is gone), so cron skips it; this deploy tries it again",
            "would": [{"action": "checkout", "target": "9b8c7d6e5f",
                       "why": "deploy 3f2a9c1d7e -> 9b8c7d6e5f: Switch the recorder to the new voice gateway "
                              "API (Alice)"},
                      {"action": "restart", "target": "voice-meeting-discord-bot.service",
                       "why": "its files changed (node-bot/package.json, node-bot/src/recorder.js)"}]}
    outcome = SimpleNamespace(results=[SimpleNamespace(ok=True, host="find-to-do",
                                                       value=SimpleNamespace(result={"plan": plan}))])
    capsys.readouterr()
    _plans(outcome)
    text = capsys.readouterr().out
    assert not trailing(text) and not too_long(text, width), text
    check("deploy-plan", width, text)
    if width == 80:
        continued = [ln for ln in text.splitlines() if not ln.startswith("[find-to-do] ")]
        assert continued and all(ln.startswith(" " * len("[find-to-do] ")) for ln in continued), text
