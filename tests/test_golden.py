"""Every table as CI logs and pipes get it (80 columns) and as a wide
terminal does (200), against golden files in tests/fixtures/golden/.
Nothing may wrap a SHA or a time, and no line may pass the width.
Regenerate after an intended change with FABOPS_UPDATE_GOLDEN=1."""
import json
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
NOW = 1795960000.0  # 2026-11-29 13:46:40 UTC
WIDTHS = (80, 200)
SGR = re.compile(r"\x1b\[[0-9;:]*m")  # a terminal's style codes (test_a_terminal_gets_the_same_lines_in_colour)


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(time, "time", lambda: NOW)
    yield
    monkeypatch.undo()
    time.tzset()


def check(name: str, width: int, text: str) -> None:
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(ln for ln in lines if len(ln) > width)
    # no padding to the width: the output as printed, not stripped here (#24)
    assert not [ln for ln in lines if ln != ln.rstrip()], "lines end in spaces:\n" + "\n".join(
        repr(ln) for ln in lines if ln != ln.rstrip())
    path = GOLDEN / f"{name}-{width}.txt"
    body = "\n".join(lines) + "\n"
    if os.environ.get("FABOPS_UPDATE_GOLDEN") == "1":
        path.write_text(body)
    assert path.exists(), f"no golden file {path.name}: run with FABOPS_UPDATE_GOLDEN=1 and review it"
    assert body == path.read_text(), f"{path.name} differs (FABOPS_UPDATE_GOLDEN=1 to accept an intended change)"


def render(capsys, monkeypatch, width, fn, *args, **kwargs) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    capsys.readouterr()
    fn(*args, **kwargs)
    return capsys.readouterr().out


SHA = ["3f2a9c1d7e5b8a0c4d6e", "9b8c7d6e5f4a3b2c1d0e", "0a1b2c3d4e5f6a7b8c9d"]
HISTORY = [
    {"ts": NOW - 7200, "trigger": "cron", "actor": "ec2-user@find-to-do", "from": SHA[0], "to": SHA[1],
     "result": "deployed", "duration": 12.4, "subject": "新機能追加: 要約を送信", "author": "Aiko Tanaka",
     "message": "deployed"},
    {"ts": NOW - 3600, "trigger": "deploy", "actor": "alice@laptop", "from": SHA[1], "to": SHA[2],
     "result": "rolled_back", "duration": 41.0, "subject": "Switch the recorder to the new voice gateway API",
     "author": "Alice", "message": "watch: voice-meeting-discord-bot.service died 3.1 s after start "
                                   "(systemd restarted it: NRestarts 1); rolled back to 9b8c7d6e5f"},
    {"ts": NOW - 60, "trigger": "ci", "actor": "github-actions", "from": SHA[1], "to": SHA[1], "result": "noop",
     "duration": 0.4, "message": "up to date at 9b8c7d6e5f"},
]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("wide", [False, True])
def test_history(width, wide, frozen, capsys, monkeypatch):
    from fabops.tasks.render import history_table

    text = render(capsys, monkeypatch, width, history_table, "find-to-do", HISTORY, wide=wide)
    assert "3f2a9c1d7e→9b8c7d6e5f" in text and "UTC" in text  # 10-character SHAs, times with their zone
    if not wide:  # cut at the width: the cut keeps why it failed (#24) and how it ended (trial #8)
        # (a SHA keeps its one length, fabops/shortsha.py: at 80 columns the
        # cut takes the three characters from the head, 'died 3.1 s…')
        assert "died 3.1 s" in text and "rolled back to 9b8c7d6e5f" in text
    check("history" + ("-wide" if wide else ""), width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_history_first_deploy(width, frozen, capsys, monkeypatch):
    """A first deploy has no `from`: it reads `(first)`, not `-→…` (#24)."""
    from fabops.tasks.render import history_table

    first = {"ts": NOW - 9000, "trigger": "deploy", "actor": "alice@laptop", "from": None, "to": SHA[0],
             "result": "deployed", "duration": 8.2, "subject": "Initial import", "author": "Alice",
             "message": "deployed"}
    text = render(capsys, monkeypatch, width, history_table, "find-to-do", [first] + HISTORY[:1])
    assert "(first)→3f2a9c1d7e" in text and "-→" not in text
    check("history-first", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_history_keeps_the_outcome(width, frozen, capsys, monkeypatch):
    """Trial #8: `6ccd907 failed (bot died after starting: its process is
    gone); rolled back …` lost where the run ended. At 80 columns the
    subject and the leading SHA (the facts line shows both SHAs) go first,
    then the middle of the reason: its head and its outcome stay."""
    from fabops.tasks.render import history_table

    bad, good = "6ccd907a404e" + "1" * 28, "d1f80fc0df8b" + "2" * 28
    rec = {"ts": NOW - 600, "trigger": "deploy", "actor": "demo@vm", "from": good, "to": bad,
           "result": "rolled_back", "duration": 9.3, "subject": "Break the bot on purpose", "author": "Demo",
           "message": "6ccd907a404e failed (bot died after starting: its process is gone); "
                      "rolled back to d1f80fc0df8b, healthy"}
    text = render(capsys, monkeypatch, width, history_table, "local", [rec])
    assert "failed (bot died after" in text and "rolled back to d1f80fc" in text and ", healthy" in text, text
    check("history-outcome", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_status_continues_under_its_text(width, frozen, capsys, monkeypatch):
    """Trial #7: a long `status` line went on at column 0, and broke inside
    `inv unpin`. Each continues two columns in, and the code span stays
    whole on one line (the pin's reason puts it at the edge at 80)."""
    from fabops.tasks.render import status_panel

    data = {"services": [{"name": "bot", "active": True, "state": "active", "pid": 7, "uptime": 60.0}],
            "deployed": SHA[0], "deployed_at": NOW - 600, "head": SHA[0], "pin": SHA[0],
            "pin_reason": "rollback by " + "a" * 21 + "@laptop", "last_check": NOW - 60,
            "last_result": "rolled_back",
            "failing": {"since": NOW - 1200, "count": 1, "target": SHA[2],
                        "reason": "0a1b2c3d4e failed (bot died after starting: its process is gone); "
                                  "rolled back to 3f2a9c1d7e, healthy"},
            "last_run": {"ts": NOW - 1200, "trigger": "deploy", "actor": "demo@vm", "result": "rolled_back",
                         "from": SHA[0], "to": SHA[2]}}
    text = render(capsys, monkeypatch, width, status_panel, "local", data)
    lines = text.splitlines()
    after = lines[[i for i, ln in enumerate(lines) if ln.startswith("└")][0] + 1:]
    starts = ("deployed ", "📌 pinned", "last check", "updates failing", "last run:")
    assert all(ln.startswith(starts) or ln.startswith("  ") and ln[2] != " " for ln in after), text
    assert "`fabops unpin -H local`" in text, text
    # which commit failed, and where the host is (#24's trial read `rolled_back A -> B` as "to B")
    assert "rolled back: 0a1b2c3d4e failed, back on 3f2a9c1d7e" in " ".join(text.split()), text
    check("status-wrap", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_status_says_a_deferred_reason_once(width, frozen, capsys, monkeypatch):
    """#24: a deferred update's reason was said twice, on the `updates
    deferred` line and again on `will retry T at … (REASON)`: one line, with
    its next try, as monitor says it (monitor.failing_words)."""
    from fabops.tasks.render import status_panel

    reason = "npm ci failed: npm ERR! network request to registry.npmjs.org timed out"
    data = {"services": [{"name": "bot", "active": True, "state": "active", "pid": 7, "uptime": 600.0}],
            "deployed": SHA[1], "deployed_at": NOW - 7200, "head": SHA[1], "last_check": NOW - 60,
            "last_result": "deferred",
            "failing": {"since": NOW - 600, "count": 2, "target": SHA[2], "result": "deferred", "reason": reason},
            "retry": {"target": SHA[2], "attempts": 2, "next_at": NOW + 240, "reason": reason},
            "last_run": {"ts": NOW - 60, "trigger": "cron", "actor": "ec2-user@find-to-do", "result": "deferred",
                         "from": SHA[1], "to": SHA[2]}}
    text = render(capsys, monkeypatch, width, status_panel, "find-to-do", data)
    flat = " ".join(text.split())
    assert flat.count("registry.npmjs.org") == 1 and "next try" in flat, text
    check("status-deferred", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_status(width, frozen, capsys, monkeypatch):
    from fabops.tasks.render import status_panel

    data = {
        "services": [
            {"name": "voice-meeting-python-api.service", "active": True, "state": "active", "pid": 4242,
             "uptime": 86400.0 * 3},
            {"name": "voice-meeting-discord-bot.service", "active": False, "state": "activating", "pid": None},
        ],
        "deployed": SHA[1], "deployed_at": NOW - 7200, "head": SHA[1], "pin": SHA[0],
        "pin_reason": "rollback by alice@laptop", "last_check": NOW - 120, "last_result": "skipped_bad",
        "failing": {"since": NOW - 3600, "count": 12, "target": SHA[2],
                    "reason": "watch: voice-meeting-discord-bot.service died 3.1 s after start"},
        "retry": None,
        "last_run": {"ts": NOW - 120, "trigger": "cron", "actor": "ec2-user@find-to-do", "result": "skipped_bad",
                     "from": SHA[1], "to": SHA[2]},
    }
    text = render(capsys, monkeypatch, width, status_panel, "find-to-do", data)
    assert "python-api" in text and "discord-bot" in text
    check("status", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_status_says_what_a_restart_did(width, frozen, capsys, monkeypatch):
    """#24's review: a person's restart read `restart by ann: deployed at X`
    on the last-run line; its record's `deployed` is for the verdict rules
    (host/record.shown_result). The line says what it did, its message;
    while its verdict stands, the verdict's line says it, once."""
    from fabops.tasks.render import status_panel

    run = {"ts": NOW - 300, "trigger": "restart", "actor": "ann@laptop", "result": "deployed", "from": SHA[1],
           "to": SHA[1], "duration": 4.2, "message": f"restarted voice-meeting-discord-bot.service at {SHA[1][:10]};"
                                                     " healthy again"}
    data = {"services": [{"name": "voice-meeting-discord-bot.service", "active": True, "state": "active",
                          "pid": 4243, "uptime": 300.0}],
            "deployed": SHA[1], "deployed_at": NOW - 7200, "head": SHA[1], "last_check": NOW - 60,
            "last_result": "noop", "last_run": run}
    text = render(capsys, monkeypatch, width, status_panel, "find-to-do", data)
    flat = " ".join(text.split())
    assert f"restart by ann@laptop: restarted voice-meeting-discord-bot.service at {SHA[1][:10]}; healthy again" \
        in flat and "deployed at" not in flat, text
    check("status-restart", width, text)
    # before the next update check: the verdict's line, and no last-run line saying it again
    verdict = {"result": "deployed", "trigger": "restart", "actor": "ann@laptop", "at": run["ts"],
               "message": run["message"]}
    text = render(capsys, monkeypatch, width, status_panel, "find-to-do",
                  dict(data, last_check=NOW - 900, verdict=verdict))
    assert " ".join(text.split()).count("healthy again") == 1 and "last run:" not in text, text


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_panel(width, frozen, capsys, monkeypatch):
    from fabops import errors, inventory, monitor
    from fabops.tasks.render import console
    from fabops.tasks.observe import render_host

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "systemd_bot_down.json").read_text())
    import yaml

    host = inventory.loads(yaml.safe_dump({"hosts": {"find-to-do": case["host"]}}), "x.yml").hosts["find-to-do"]
    facts = monitor.parse(case["output"], host, case["now"])
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    check("monitor", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_panel_with_a_state_json_moved_aside(width, frozen, capsys, monkeypatch):
    """#24: a corrupt state.json that a merge moved aside is a warning that
    names the copy and when it was moved, whole at 80 columns."""
    from fabops import errors, inventory, monitor
    from fabops.probe import MARK
    from fabops.tasks.render import console
    from fabops.tasks.observe import render_host

    import yaml

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    output = case["output"] + f"\n{MARK}aside\nstate.json.corrupt-{int((NOW - 600) * 1e9)}\n"
    facts = monitor.parse(output, host, case["now"])
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    assert "state lost" in " ".join(text.split()) and "13:36 UTC" in text, text
    check("monitor-aside", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_panel_shows_the_last_run(width, frozen, capsys, monkeypatch):
    """#29 trial: an env-set that was `reverted` showed on status' panel and
    in monitor --json's deploy.last_run, never on monitor's panel. The panel
    says it in status' one line (render.last_run_lines), under the check."""
    from fabops import errors, inventory, monitor
    from fabops.tasks.render import console
    from fabops.tasks.observe import render_host

    import yaml

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    facts = monitor.parse(case["output"], host, case["now"])
    facts["deploy"]["last_run"] = {"ts": NOW - 300, "trigger": "env-set", "actor": "alice@laptop",
                                   "from": SHA[0], "to": SHA[0], "result": "reverted",
                                   "message": "bot failed its check after the restart; .env put back"}
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    assert "last run: 11-29 13:41 UTC env-set by alice@laptop: reverted" in " ".join(text.split()), text
    check("monitor-last-run", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_several_hosts(width, frozen, capsys, monkeypatch):
    """The summary table first (one row per host), then the panel of the
    host that is not OK; an unreachable host is a row with its error."""
    from fabops import errors, inventory, monitor
    from fabops.errors import UnreachableError
    from fabops.fanout import HostResult
    from fabops.tasks.render import console
    from fabops.tasks.observe import render_all

    import yaml

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "systemd_bot_down.json").read_text())
    inv = inventory.loads(yaml.safe_dump({"hosts": {"find-to-do": case["host"]}}), "x.yml")
    host = inv.hosts["find-to-do"]
    facts = monitor.parse(case["output"], host, case["now"])
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    results = [HostResult("find-to-do", value=facts, code=code),
               HostResult("staging", error=UnreachableError("cannot connect to ec2-user@10.20.30.40:2222: timed out"),
                          code=3, seconds=10.0)]
    text = render(capsys, monkeypatch, width,
                  lambda: console().print(render_all(results, {"find-to-do": host, "staging": host})))
    assert "staging" in text and "UNREACHABLE" in text  # the error itself: stderr, one line per host
    # in the table's row: why each host is not OK survives the cut (#24): the
    # failed service before the warnings, the error's reason after its address
    rows = {ln.split()[0]: ln for ln in SGR.sub("", text).splitlines()
            if ln.startswith(" find-to-do") or ln.startswith(" staging")}
    assert "discord-bot is fail" in rows["find-to-do"] and rows["staging"].rstrip().endswith("timed out"), rows
    check("monitor-hosts", width, text)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("wide", [False, True])
def test_hosts(width, wide):
    from tests.conftest import run_cli

    args = ["hosts", "-i", "tests/fixtures/golden/hosts.yml"] + (["--wide"] if wide else [])
    r = run_cli(*args, env={"COLUMNS": str(width)})
    assert r.returncode == 0, r.stderr
    check("hosts" + ("-wide" if wide else ""), width, r.stdout)


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_summary(width, frozen, capsys, monkeypatch):
    from fabops.errors import UnreachableError
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _summary

    ok = HostResult("find-to-do", value=SimpleNamespace(result={
        "result": "rolled_back", "from": SHA[1], "to": SHA[2], "duration": 41.0,
        "subject": "Switch the recorder to the new voice gateway API", "author": "Alice",
        "message": "watch: voice-meeting-discord-bot.service died 3.1 s after start; rolled back to 9b8c7d6e5f"}))
    down = HostResult("staging", error=UnreachableError("cannot connect to ec2-user@10.20.30.40:2222: timed out"),
                      code=3, seconds=10.0)
    text = render(capsys, monkeypatch, width, _summary, FanoutResult([ok, down]))
    # the cut keeps why it failed, not the subject before it (#24), and
    # how it ended (trial #8)
    assert "died 3.1 s" in text and "rolled back to 9b8c7d6e5f" in text  # one SHA length (shortsha)
    check("deploy", width, text)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("wide", [False, True])
def test_ping(width, wide, capsys, monkeypatch):
    from fabops.errors import UnreachableError
    from fabops.fanout import HostResult
    from fabops.probe import Probe
    from fabops.tasks.ping import ping_table

    results = [
        HostResult("find-to-do", value=Probe(kernel="Linux 6.1.115-126.197.amzn2023.x86_64 x86_64",
                                             uptime_seconds=86400 * 12 + 3600 * 5, python="3.9.16",
                                             user="ec2-user", seconds=0.084)),
        HostResult("bare-host", value=Probe(kernel="Linux 5.10.0-33-cloud-amd64 x86_64", uptime_seconds=600,
                                            python=None, user="admin", seconds=0.231)),
        HostResult("staging", error=UnreachableError("cannot connect"), code=3, seconds=10.0),
    ]
    text = render(capsys, monkeypatch, width, ping_table, results, wide=wide)
    assert "84 ms" in text and "3.9.16" in text and "none" in text
    check("ping" + ("-wide" if wide else ""), width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_setup_lines(width, capsys, monkeypatch):
    from fabops.setup import ItemResult
    from fabops.tasks.setup import item_lines

    unit = ("--- /etc/systemd/system/voice-meeting-discord-bot.service\n"
            "+++ /etc/systemd/system/voice-meeting-discord-bot.service (fabops)\n"
            "@@ -5 +5 @@\n"
            "-ExecStart=/usr/bin/node index.js\n"
            "+ExecStart=/home/ec2-user/.nvm/versions/node/v20.18.0/bin/node "
            "/home/ec2-user/voice-meeting-bot/node-bot/index.js --max-old-space-size=512\n")
    items = [
        ItemResult("venv", "ok", "fabops 0.1.0 in /home/ec2-user/.fabops/venv (Python 3.9.16)"),
        ItemResult("unit voice-meeting-discord-bot.service", "would change", "ExecStart differs", unit),
        ItemResult("sudoers", "warning", "/etc/sudoers.d/90-cloud-init-users still grants ec2-user "
                                         "NOPASSWD: ALL; fabops' drop-in is least privilege only without it"),
        ItemResult("cron", "changed", "block of 4 lines installed", "+*/5 * * * * fabops local-update\n"),
    ]
    text = "".join(ln + "\n" for item in items for ln in item_lines("find-to-do", item, width, diff=True))
    assert "↳ " in text if width == 80 else "↳" not in text
    check("setup", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_setup_lines_keep_a_path_whole(width):
    """#29's trial: setup broke a sandbox's keyring path mid-word
    (`…/host/home` then `/allowed_signers.gpg`). A path too long for the
    text's column starts left of it instead; only one longer than the
    line is broken, after a `/`."""
    from fabops.setup import ItemResult
    from fabops.tasks.setup import item_lines

    path = "/tmp/pytest-of-trial/pytest-12/test_setup_local0/host/home/allowed_signers.gpg"
    deep = "/tmp/pytest-of-trial/pytest-12/test_setup_with_a_much_longer_name0/sandbox/host/home/allowed_signers.gpg"
    items = [ItemResult("verified commits", "changed", path), ItemResult("verified commits", "ok", deep)]
    lines = [ln for item in items for ln in item_lines("local", item, width, diff=False)]
    assert any(ln.strip() == path or ln.endswith(" " + path) for ln in lines), lines
    if width == 80:
        assert [ln.strip() for ln in lines[-2:]] == [deep[:deep.rfind("/", 0, 80) + 1], deep[deep.rfind("/", 0, 80) + 1:]]
    check("setup-path", width, "".join(ln + "\n" for ln in lines))


def unfold(lines, pre):
    """The diff lines back from what diff_lines showed: each `↳`
    continuation joined to its line with the one space it was broken at."""
    out = []
    for ln in lines:
        if ln.lstrip().startswith("↳ "):
            out[-1] += " " + ln.lstrip()[2:]
        else:
            assert ln.startswith(pre.rstrip()), ln
            out.append(ln[len(pre):])
    return out


@pytest.mark.parametrize("width", WIDTHS)
def test_cron_diff_lines(width):
    """cron --install's diff, as a terminal and a pipe get it (trial #9: a
    pipe got 238 columns; setup's fold broke words and left a space at the
    break). One renderer for setup and cron: wrapped at spaces, the `↳`
    under the diff text, no word broken, no line ending in a space."""
    import yaml

    from fabops import cron, inventory
    from fabops.tasks.setup import diff_lines

    host = inventory.loads(yaml.safe_dump({"hosts": {"find-to-do": {
        "app": {"path": "/home/ec2-user/voice-meeting-bot"}, "env": {"PATH": "/opt/node/bin:/usr/bin:/bin"}}}}),
        "h.yml").hosts["find-to-do"]
    old = "MAILTO=me@example.com\n0 4 * * * /usr/local/bin/backup.sh --all\n\n"
    diff = cron.diff(old, cron.apply_block(old, host.app.name, cron.render_block(host, splay=30)))
    shown = diff_lines("find-to-do", diff, width)
    assert all(ln == ln.rstrip() for ln in shown), [ln for ln in shown if ln != ln.rstrip()]
    assert unfold(shown, "[find-to-do]   ") == [ln.rstrip() for ln in diff.rstrip("\n").split("\n")]
    # continuations sit one column past the diff's +/-/space column
    assert all(ln.startswith(" " * 16 + "↳ ") for ln in shown if "↳" in ln)
    assert "↳" in "".join(shown) if width == 80 else max(map(len, diff.splitlines())) > 185 or "↳" not in "".join(shown)
    check("cron-diff", width, "".join(ln + "\n" for ln in shown))


@pytest.mark.parametrize("width", WIDTHS)
def test_cron_install_dry_run_says_its_refusal(width, capsys, monkeypatch):
    """#24's trial: `cron --install --dry-run` on a host without fabops
    ended in `WARNING: … refuses until …` and exited 2. It says the refusal
    as every dry run does (`would stop:` and the real run's words), then
    the block it would install once fabops is there."""
    import yaml

    from fabops import cron, inventory
    from fabops.shell import program
    from fabops.tasks.cron import _say

    host = inventory.loads(yaml.safe_dump({"hosts": {"find-to-do": {
        "app": {"path": "/home/ec2-user/voice-meeting-bot"}}}}), "h.yml").hosts["find-to-do"]
    # a block of its own: the golden follows this refusal, not render_block's lines
    new = cron.apply_block("", host.app.name, "*/5 * * * * fabops local-update --trigger cron\n")
    missing = "/home/ec2-user/.fabops/venv/bin/fabops is not installed (the block's lines run it)"
    v = {"block": cron.current_block(new, host.app.name), "changed": True, "diff": cron.diff("", new),
         "table": None, "missing": missing}
    text = render(capsys, monkeypatch, width, _say, "find-to-do", v, True, False, True, None)
    assert text.startswith("[find-to-do] would stop: ") and "WARNING" not in text and "would change" not in text
    assert f"{missing}: run `{program()} setup -H find-to-do` (it installs fabops there and this block) instead" in " ".join(
        text.split()), text
    check("cron-install-refused", width, text)


def test_diff_lines_break_a_word_only_when_it_alone_is_too_long():
    from fabops.tasks.setup import diff_lines

    word = "+" + "x" * 150
    shown = diff_lines("h", f"{word}\n+a b\n", 80)
    assert all(len(ln) <= 80 for ln in shown)
    assert "".join(ln.split(" ")[-1] for ln in shown[:-1]) == word  # whole, in pieces as wide as fit
    assert shown[-1] == "[h]   +a b"


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_summary_says_an_unchanged_commit_plainly(width, frozen, capsys, monkeypatch):
    """#24: a deploy that moved no commit (up to date, a restart of the
    deployed one) printed `X→X`, which read as a redeploy: history's words
    (`at X`, render.span) at 80 columns, `unchanged` under `to` in the table."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _summary

    rows = [("find-to-do", {"result": "noop", "from": SHA[1], "to": SHA[1], "duration": 2.1,
                            "message": f"up to date at {SHA[1][:10]}"}),
            ("staging", {"result": "deployed", "from": SHA[1], "to": SHA[2], "duration": 48.5,
                         "subject": "Switch the recorder to the new voice gateway API", "author": "Alice",
                         "message": f"{SHA[1][:10]} -> {SHA[2][:10]}"})]
    text = render(capsys, monkeypatch, width, _summary,
                  FanoutResult([HostResult(h, value=SimpleNamespace(result=res)) for h, res in rows]))
    assert f"{SHA[1][:10]}→{SHA[1][:10]}" not in text, text
    assert (f"at {SHA[1][:10]}" if width < 120 else "unchanged") in text, text
    # the row names `A→B`; the message under it said `A -> B` again (#24's trial)
    assert f"{SHA[1][:10]} -> {SHA[2][:10]}" not in text and "(Alice)" in text, text
    check("deploy-unchanged", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_summary_says_a_first_deploy_plainly(width, frozen, capsys, monkeypatch):
    """#24: a first deploy (no `from`) printed `-→X`, where history and the
    update log say `(first)→X` / `(first) -> X` (render.span): the summary
    says it their way, at 80 columns and in the table's `from`."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _summary

    res = {"result": "deployed", "from": None, "to": SHA[0], "duration": 30.2, "subject": "Initial import",
           "author": "Alice", "message": f"first deploy, at {SHA[0][:10]}"}
    text = render(capsys, monkeypatch, width, _summary, FanoutResult([HostResult("find-to-do", value=SimpleNamespace(
        result=res))]))
    assert "-→" not in text and " - " not in text, text
    assert (f"(first)→{SHA[0][:10]}" if width < 120 else "(first)") in text, text
    check("deploy-first", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_summary_says_no_first_deploy_for_a_locked_run(width, frozen, capsys, monkeypatch):
    """#24: a deploy locked out of the host (from and to null: it read
    nothing) printed `(first)→-`, as if the host had never been deployed:
    it has no commits to show, `-` (render.looked), and a first deploy
    beside it still says `(first)`."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _summary

    run = "20261129T134628-a1b2c3"
    locked = {"result": "locked", "from": None, "to": None, "duration": 1.0,
              "message": f"locked: deploy by root@vm (pid 10008, since 2026-11-29 13:46:28 UTC, run {run}) (use "
                         f"--wait SECONDS to queue behind it, or --attach {run} to follow it)"}
    res = {"result": "deployed", "from": None, "to": SHA[0], "duration": 30.2, "subject": "Initial import",
           "author": "Alice", "message": f"first deploy, at {SHA[0][:10]}"}
    text = render(capsys, monkeypatch, width, _summary, FanoutResult([
        HostResult("local", value=SimpleNamespace(result=locked)),
        HostResult("find-to-do", value=SimpleNamespace(result=res))]))
    assert text.count("(first)") == 1 and "(first)→-" not in text, text
    # the holder's run id whole, and the next steps (#24's trial: `run 20…`)
    flat = " ".join(text.split())
    assert f"run {run})" in flat and f"--attach {run} to follow it)" in flat and "…" not in text, text
    check("deploy-locked", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_summary_says_an_unsigned_commit_from_its_sha(width, frozen, capsys, monkeypatch):
    """#29 trial at 80 columns: the row read `is not signed by an allowed key
    (no signature); only `--ref 43b7946560 --al…`: its SHA dropped and the
    command cut. A message that gives a command to type is said whole,
    wrapped, from its start (deploy._whole)."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _summary

    res = {"result": "aborted", "from": SHA[0], "to": SHA[1], "duration": 2.1, "subject": "Bump the recorder",
           "author": "Mallory", "message": f"{SHA[1][:10]} is not signed by an allowed key (no signature); "
                                           f"only `--ref {SHA[1]} --allow-unverified` deploys it"}
    text = render(capsys, monkeypatch, width, _summary, FanoutResult([HostResult("find-to-do", value=SimpleNamespace(
        result=res))]))
    flat = " ".join(text.split())
    assert f"{SHA[1][:10]} is not signed by an allowed key" in flat and "…" not in text, text
    assert f"`--ref {SHA[1]} --allow-unverified` deploys it" in flat, text
    check("deploy-unsigned", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_summary_keeps_each_outcome(width, frozen, capsys, monkeypatch, tmp_path):
    """Trial #8/#20: the summary cut `… commit them, o…` (a refused deploy:
    what to do was lost) and `waited for run … which ended depl…` (how the
    run it waited for ended) at 80 columns."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.host.plan import Facts, Opts, plan
    from fabops.host.queue import result_of
    from fabops.host.state import State
    from fabops.tasks.deploy import _summary
    from tests.test_plan import HOST

    refused = plan(HOST, State(deployed=SHA[1]), Facts(
        origin=SHA[2], head=SHA[1], problems=(), app="/home/ec2-user/apps/voice-meeting-discord-bot",
        local_changes=("package.json", "src/bot.js")), Opts(trigger="deploy"))
    assert refused.kind == "abort", refused
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps({"run_id": "20261129T114000-4f2e1a", "result": "deployed",
                                   "message": f"{SHA[1][:10]} -> {SHA[2][:10]}"}) + "\n")
    _, waited = result_of(str(history), {"run_id": "20261129T114000-4f2e1a", "trigger": "cron",
                                    "actor": "ec2-user@find-to-do"})
    rows = [("find-to-do", {"result": "aborted", "from": SHA[1], "to": SHA[2], "duration": 1.2,
                            "message": refused.message}),
            ("staging", {"result": "deployed", "from": SHA[1], "to": SHA[2], "duration": 48.5,
                         "subject": "Switch the recorder to the new voice gateway API", "author": "Alice",
                         "message": waited})]
    text = render(capsys, monkeypatch, width, _summary,
                  FanoutResult([HostResult(h, value=SimpleNamespace(result=res)) for h, res in rows]))
    assert "commit them, or --stash saves them aside" in text and "local changes (package.json" in text, text
    assert "it ended deployed: " in text, text
    check("deploy-outcome", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_live_board(width, capsys, monkeypatch):
    """The table a terminal sees while hosts deploy: one line per host, fed
    the events a run sends. At 80 columns the step joins the detail, and a
    host's detail keeps why it failed (#24: `watch: voice-meeti…` was all
    that was left): the service's shared prefix and the SHAs' tails go first."""
    from fabops.tasks.deploy import _LiveBoard
    from fabops.tasks.render import console

    def board():
        b = _LiveBoard(["find-to-do", "staging-eu-west-1"], {
            "voice-meeting-discord-bot.service": "discord-bot", "voice-meeting-python-api.service": "python-api"})
        running, ended = b("find-to-do"), b("staging-eu-west-1")
        for i, step in enumerate(("preflight", "fetch", "checkout")):
            running({"kind": "step", "step": step, "status": "start"})
            running({"kind": "step", "step": step, "status": "ok", "seconds": 0.1 * i})
        running({"kind": "step", "step": "deps: npm ci --omit=dev", "status": "start"})
        running({"kind": "log", "message": "npm ci --omit=dev … 20 s"})
        for step in ("preflight", "fetch", "checkout", "deps", "restart", "gate", "watch"):
            ended({"kind": "step", "step": step, "status": "start"})
            ended({"kind": "step", "step": step, "status": "ok" if step != "watch" else "failed"})
        ended({"kind": "result", "result": "rolled_back", "from": SHA[1], "to": SHA[2], "message": (
            f"watch: voice-meeting-discord-bot.service died 3.1 s after start; rolled back to {SHA[1][:10]}")})
        console().print(b._table())

    text = render(capsys, monkeypatch, width, board)
    assert len([ln for ln in text.splitlines() if ln.strip()]) == 5  # title, header, rule, two hosts
    assert "discord-bot died 3.1 s after start" in text and "deps: npm ci" in text, text
    check("deploy-live", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_dry_run_says_its_plan_once(width, frozen, capsys, monkeypatch):
    """#24: `deploy --dry-run` said its plan three times (the progress's
    `= would_deploy: would deploy A -> B`, the summary's message, the
    `would checkout B: deploy A -> B` line). The `would` lines say it."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    plan = {"kind": "deploy", "from": SHA[1], "to": SHA[2], "changed_files": 3, "dirty": [], "pin": None,
            "bad": False, "would": [
                {"action": "checkout", "target": SHA[2][:10], "why": f"deploy {SHA[1][:10]} -> {SHA[2][:10]}"},
                {"action": "restart", "target": "voice-meeting-discord-bot.service", "why": "its files changed"}]}
    res = {"result": "would_deploy", "exit_code": 0, "from": SHA[1], "to": SHA[2], "duration": 0.4,
           "subject": "Switch the recorder to the new voice gateway API", "author": "Alice",
           "message": f"would deploy {SHA[1][:10]} -> {SHA[2][:10]}", "plan": plan}
    ok = HostResult("find-to-do", value=SimpleNamespace(result=res, install=None))
    text = render(capsys, monkeypatch, width, _report, FanoutResult([ok]), False, dry_run=True)
    assert " ".join(text.split()).count(f"{SHA[1][:10]} -> {SHA[2][:10]}") == 1, text
    # the plan lines, then the summary row after every one (#24)
    assert text.index("would restart") < text.index("would_deploy"), text
    assert "would checkout" in text and "would restart" in text and "new voice gateway API" in text
    check("deploy-dry-run", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_dry_run_says_its_warnings(width, frozen, capsys, monkeypatch):
    """#24's trial: `deploy --dry-run` with untracked files in the app
    directory printed a clean plan and exited 1, its reason only in --json's
    `warnings`. Every warning the JSON has is printed, in the planner's words
    the real run warns with (the plan's known-bad line once, in `plan:`)."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    kept = ("keeping 2 untracked files that the repository does not have: data/b.txt, data/notes.txt "
            "(add them to .gitignore to silence this)")
    plan = {"kind": "deploy", "from": SHA[1], "to": SHA[2], "changed_files": 1, "dirty": [], "pin": None,
            "bad": False, "known_bad": None, "would": [
                {"action": "checkout", "target": SHA[2][:10], "why": f"deploy {SHA[1][:10]} -> {SHA[2][:10]}"},
                {"action": "restart", "target": "bot", "why": "its files changed"}]}
    res = {"result": "would_deploy", "exit_code": 1, "from": SHA[1], "to": SHA[2], "duration": 0.15,
           "message": f"would deploy {SHA[1][:10]} -> {SHA[2][:10]}", "plan": plan, "warnings": [kept]}
    ok = HostResult("local", value=SimpleNamespace(result=res, install=None))
    text = render(capsys, monkeypatch, width, _report, FanoutResult([ok]), False, dry_run=True)
    flat = " ".join(text.split())
    assert f"[local] warning: {kept}" in flat, text
    assert text.index("warning:") < text.index("would checkout"), text
    check("deploy-dry-run-warnings", width, text)


def _watching_outcome(host: str, run_id: str):
    """A --no-watch deploy's outcome as fabops.deploy makes it when the
    host's watch starts (its message names `--attach ID`)."""
    import yaml

    from fabops import inventory
    from fabops.deploy import DeployOptions, DeployOutcome, _finish

    spec = {"app": {"path": "/srv/app"}, "services": [{"name": "voice-meeting-discord-bot.service"}]}
    h = inventory.loads(yaml.safe_dump({"hosts": {host: spec}}), "x.yml").hosts[host]
    outcome = DeployOutcome(host, run_id)
    outcome.events = [{"kind": "start", "t": NOW - 2, "trigger": "deploy", "actor": "alice@laptop"},
                      {"kind": "step", "step": "fetch", "status": "ok", "seconds": 0.2, "t": NOW - 1.8}]
    _finish(h, DeployOptions(watch=False, actor="alice@laptop"), outcome,
            {"kind": "watch", "seconds": 30, "from": SHA[1], "to": SHA[2], "t": NOW})
    return outcome


@pytest.mark.parametrize("width", WIDTHS)
def test_deploy_no_watch_names_its_attach_command_whole(width, frozen, capsys, monkeypatch):
    """#24 (trial at 80 columns): `deploy --no-watch`'s summary row cut the
    command that follows the watch (`… rolls back on its own…`). The
    message is shown whole, wrapped: under the facts, four columns in (80),
    or under the table after `[host] ` (200); the `--attach ID` command on
    one line."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    run_id = "20261129T114640-4f2e1a"
    outcome = _watching_outcome("staging-eu-west-1", run_id)
    assert f"--attach {run_id}`" in outcome.result["message"]  # what the pipeline says, not a copy
    text = render(capsys, monkeypatch, width, _report, FanoutResult([HostResult("staging-eu-west-1", value=outcome)]),
                  False)
    command = f"`fabops deploy -H staging-eu-west-1 --attach {run_id}`"
    assert any(command in line for line in text.splitlines()), text
    assert "…" not in text and " ".join(text.split()).count("rolls back on its own") == 1, text
    lines = text.splitlines()
    head = "    passed its gate" if width == 80 else "[staging-eu-west-1] passed its gate"
    at = next(i for i, ln in enumerate(lines) if ln.startswith(head))
    indent = len(head) - len("passed its gate")
    assert lines[at + 1:] and all(ln.startswith(" " * indent) and ln[indent] != " " for ln in lines[at + 1:]), text
    check("deploy-no-watch", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_refused_flag_is_one_line_on_stderr_and_no_row(width, frozen, capsys, monkeypatch):
    """#24: an unknown `--ref` or a bad `--attach` (exit 64) was said twice:
    a summary row cut with `…` and the `fabops: host: …` line on stderr.
    It is the stderr line alone; the other hosts keep their rows."""
    from fabops.errors import UsageError
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    missing = "no run 20261129T114640-4f2e1a on this host (/home/ec2-user/.fabops/voice-meeting-bot/runs/" \
              "20261129T114640-4f2e1a.jsonl is missing)"
    refused = HostResult("find-to-do", error=UsageError(missing, host="find-to-do"), code=64, seconds=0.1)
    monkeypatch.setenv("COLUMNS", str(width))
    capsys.readouterr()
    _report(FanoutResult([refused]), False)
    text, err = capsys.readouterr()
    assert text == "" and err == f"fabops: find-to-do: {missing}\n", (text, err)
    ok = HostResult("staging", value=SimpleNamespace(install=None, result={
        "result": "noop", "from": SHA[1], "to": SHA[1], "duration": 0.4, "message": f"up to date at {SHA[1][:10]}"}))
    text = render(capsys, monkeypatch, width, _report, FanoutResult([refused, ok]), False)
    assert "staging" in text and "find-to-do" not in text and "no run" not in text, text
    check("deploy-refused", width, text)


def test_a_refused_flag_is_no_result_line_in_the_progress(capsys, monkeypatch):
    """The host's `= aborted: --ref nosuchref: …` progress line said the
    refusal a third time; a run's other results keep theirs."""
    from fabops.tasks.deploy import _Printer

    monkeypatch.setenv("COLUMNS", "80")
    on_event = _Printer(5)("local")
    capsys.readouterr()
    why = "--ref nosuchref: no such branch, tag or commit on origin"
    on_event({"kind": "result", "result": "aborted", "exit_code": 64, "message": why})
    assert capsys.readouterr().out == ""
    on_event({"kind": "result", "result": "aborted", "exit_code": 2, "message": "local changes"})
    assert capsys.readouterr().out == "[local] = aborted: local changes\n"


@pytest.mark.parametrize("attach", ["../x", "a/b", "", "-x", "x y"])
def test_attach_takes_a_run_id_only(attach):
    """`--attach ../x` named runs/../x.jsonl on the host: not a run id,
    refused before any connection (exit 64), one line."""
    from tests.conftest import run_cli

    r = run_cli("deploy", "-i", "tests/fixtures/golden/hosts.yml", "-H", "find-to-do", "--attach", attach)
    assert r.returncode == 64 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.startswith(f"fabops: --attach {attach}: not a run id") and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["test_history", "test_status", "test_monitor_panel", "test_monitor_several_hosts",
                                  "test_deploy_summary", "test_deploy_live_board",
                                  "test_deploy_no_watch_names_its_attach_command_whole"])
def test_a_terminal_gets_the_same_lines_in_colour(name, width, frozen, capsys, monkeypatch):
    """#24: on a terminal, rich padded every table row, title and indented
    line with spaces to the full width (a pipe was already spared them). A
    terminal gets the golden lines: in colour, and without those spaces,
    also where a style's codes follow them (`text   \\x1b[0m`)."""
    import inspect
    import sys

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich: a terminal, whatever stdout is
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    seen, golden_check = [], check

    def in_colour(golden, width, text):
        assert SGR.search(text), f"{golden}: no colour on a terminal"
        padded = [ln for ln in SGR.sub("", text).splitlines() if ln != ln.rstrip()]
        assert not padded, f"{golden} at {width} on a terminal: lines end in spaces: {padded!r}"
        seen.append(golden)
        golden_check(golden, width, SGR.sub("", text))

    monkeypatch.setattr(sys.modules[__name__], "check", in_colour)
    test = globals()[name]
    given = {"width": width, "wide": False, "frozen": None, "capsys": capsys, "monkeypatch": monkeypatch}
    test(**{k: given[k] for k in inspect.signature(test).parameters})
    assert seen, name


@pytest.mark.parametrize("width", WIDTHS)
def test_a_number_keeps_its_unit_when_a_line_wraps(width, frozen, capsys, monkeypatch):
    """New-user trial at 80 columns: monitor's `load 3.13  up 14h` │ `11m`,
    status' `over 12` / `s, expected 200`. A wrap keeps a number with its
    unit (_base.unbroken) and breaks where it did otherwise."""
    from fabops import errors, inventory, monitor
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console, status_panel

    import yaml

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "systemd_bot_down.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"find-to-do": case["host"]}}), "x.yml").hosts["find-to-do"]
    output = case["output"].replace("0.52 0.40", "3.13 0.40").replace("864000.12", "51060.12")  # up 14h 11m
    facts = monitor.parse(output, host, case["now"])
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    reason = ("bot: GET http://127.0.0.1:8080/" + "h" * 15 + " gave HTTP 503 5 times in a row over 12 s, "
              "expected 200: a deterministic failure, not a slow start")
    data = {"services": [], "deployed": SHA[0], "deployed_at": NOW - 60, "head": SHA[0], "last_check": NOW - 60,
            "failing": {"since": NOW - 1200, "count": 3, "target": SHA[2], "reason": reason}}
    text += render(capsys, monkeypatch, width, status_panel, "local", data)
    assert "14h 11m" in text and "12 s, expected" in text, text
    check("units", width, text)


UNITS = ("3.1 s", "14h 11m", "75 ms", "12 s,", "2d 3h", "1.5 MiB")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_word_longer_than_the_line_still_fits_the_width(width, capsys, monkeypatch):
    """#24's trial at 80 columns: backup --dry-run's
    `        /tmp/…/backups/YYYYMMDDTHHMMSS-xxxxxx:` was 81 columns (the path
    fit the line, its colon did not). The one wrapper plain lines use
    (_base.wrap) breaks such a path after its last `/`, so its colon stays
    with it, and a path longer than the line after a `/`; a word that fits
    with its colon is never broken."""
    from fabops.host.would import Would, lines
    from fabops.tasks._base import print_text

    fits = "/tmp/trial-24-abcd/.fabops-demo/host/home/backups"  # and `/` + 22: 72, the line at 80 after 8
    deep = "/tmp/pytest-of-root/pytest-180/test_backup_dry_run_names_its_rules0/.fabops-demo/host/home/backups"
    woulds = [Would("write", f"{base}/YYYYMMDDTHHMMSS-xxxxxx", "a new snapshot (0700; files 0600) with manifest.json")
              for base in (fits, deep)] + [Would("copy", "env", f"copy if present {deep}/../../app/.env")]
    text = render(capsys, monkeypatch, width, lambda: [print_text(ln) for ln in lines(woulds, "[local] ")])
    if width == 80:
        # the colon stays with the path: broken after its last `/` (trial 4)
        assert f"[local] would write {fits}/\n        YYYYMMDDTHHMMSS-xxxxxx: a new snapshot" in text, text
        assert f"        {deep[:deep.rindex('/', 0, 72) + 1]}\n" in text, text
    else:  # nothing to fit: every word whole, as it was
        assert f"{deep}/YYYYMMDDTHHMMSS-xxxxxx: a new" in text, text
    # the words are all there, in order, whichever way the lines broke
    assert "".join(text.split()) == "".join("".join(lines(woulds, "[local] ")).split()), text
    check("long-word", width, text)


def test_a_command_to_run_is_one_line_or_joined_by_a_continuation():
    """#24's trial: the demo printed `fabops local-update --trigger cron -i`
    with the inventory on the next line, which pasted as two commands.
    command_lines keeps a command whole when it fits; else each line but
    the last ends in ` \\`, and the lines joined are the command."""
    from fabops.tasks._base import command_lines

    words = ["fabops", "local-update", "--trigger", "cron", "-i"]
    assert command_lines(words + ["/tmp/x/hosts.yml"], 76) == ["fabops local-update --trigger cron -i /tmp/x/hosts.yml"]
    deep = "/tmp/pytest-of-root/pytest-180/test_after_demo_keep_deploy_and_logs0/.fabops-demo/hosts.yml"
    for room in (40, 60, 76):
        shown = command_lines(words + [deep], room)
        assert len(shown) > 1 and all(ln.endswith(" \\") for ln in shown[:-1]) and not shown[-1].endswith("\\")
        assert " ".join(ln[:-2] if ln.endswith(" \\") else ln for ln in shown) == " ".join(words + [deep])
        assert all(len(ln) <= room for ln in shown if deep not in ln), shown  # the path alone may pass it, whole
    assert command_lines(["inv", "deploy", "-H", "local", "--ref", "v2"], 12) == [
        "inv deploy \\", "-H local \\", "--ref v2"]


@pytest.mark.parametrize("width", WIDTHS)
def test_a_command_too_long_for_a_line_pastes_whole(width, capsys, monkeypatch):
    """#24: a message that names a command in backticks (a hint with a long
    `-i PATH`) broke it at a space like prose, so its lines pasted as two
    commands. Each line of such a span now ends in ` \\`, and no word of
    it is cut, not even a path longer than the line."""
    from fabops.tasks._base import print_text, wrap

    def said(inv, text):
        commands = re.findall(r"`([^`]*)`", text)
        assert [" ".join(c.replace(" \\\n", " ").split()) for c in commands] == [
            f"inv demo -i {inv} --stop", f"inv demo -i {inv}"], text

    line = ("[local] still running: bot (pid 28289, port 3013); `inv demo -i {0} --stop` stops it, "
            "`inv demo -i {0}` starts over")
    inv = "/home/alice/projects/infrastructure/inventories/production/hosts.yml"
    text = render(capsys, monkeypatch, width, print_text, line.format(inv))
    said(inv, text)
    assert (width == 80) == ("\\\n" in text), text
    check("long-command", width, text)
    deep = "/tmp/pytest-of-root/pytest-180/test_after_demo_keep_deploy_and_logs0/hosts.yml"  # longer than a line
    text = wrap(line.format(deep), width)
    said(deep, text)
    assert all(len(ln) <= width or deep in ln for ln in text.splitlines()), text


def test_wrap_keeps_a_number_with_its_unit_and_nothing_else_changes():
    import textwrap

    from fabops.tasks._base import wrap

    line = "[web-1] " + "x" * 50 + " took 3.1 s then up 14h 11m, 75 ms, 12 s, 2d 3h, 1.5 MiB and 12 services"
    for width in range(40, len(line)):
        lines = wrap(line, width).split("\n")
        if width - 8 >= 50:  # the x word fits a line: broken at spaces only
            assert " ".join(ln.strip() for ln in lines) == line, lines
        else:  # one longer than a line is cut at the width (no `/` in it: _base.fitted), the rest as before
            assert "".join(ln.replace(" ", "") for ln in lines) == line.replace(" ", ""), lines
        assert all(any(pair in ln for ln in lines) for pair in UNITS), (width, lines)
        assert all(len(ln) <= width for ln in lines), (width, lines)  # the first too (#24: no line past the width)
    plain = "[web-1] " + " ".join(f"word{i}" for i in range(40))  # no unit: textwrap's lines, as before
    expect = textwrap.wrap(plain[8:], 72, break_long_words=False, break_on_hyphens=False)
    assert wrap(plain, 80).split("\n") == ["[web-1] " + expect[0]] + ["        " + e for e in expect[1:]]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("dry_run", [True, False])
def test_reset_plan_says_a_known_bad_target(width, dry_run, capsys, monkeypatch):
    """Trial (#24's, item 1): reset's plan, dry run and confirmation line,
    onto a commit that failed its gate says the line the real reset says
    (host/plan.known_bad): what reset does, which is no deploy."""
    from fabops.host.plan import known_bad
    from fabops.inventory import load
    from fabops.maintenance.reset import ResetPlan
    from fabops.tasks._base import print_text
    from fabops.tasks.maintenance import reset_lines

    host = load(str(GOLDEN / "hosts.yml")).hosts["find-to-do"]
    plan = ResetPlan(head=SHA[0], target=SHA[1], dirty=[" M config.json"], has_env=True, deployed=SHA[0],
                     known_bad=known_bad({SHA[1]: {"reason": "bot died"}}, SHA[1], SHA[0], "reset"))
    text = render(capsys, monkeypatch, width, lambda: [print_text(ln) for ln in reset_lines(host, plan, dry_run)])
    assert ("9b8c7d6e5f failed its gate before (bot died), so cron skips it; this reset moves the checkout onto it "
            "anyway; it leaves the known-bad list only if its services come up healthy") in " ".join(text.split())
    check("reset-dry-run" if dry_run else "reset-plan", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_reset_dry_run_says_what_it_does_and_what_clean_removes(width, capsys, monkeypatch):
    """#24's trial: `reset --dry-run` said `would reset A -> A: origin/main,
    git reset --hard …` with the checkout already there, and listed the
    untracked files after `would record state.json`, where they read as part
    of that step. It says the checkout at A, the files under the step that
    saves them, and that git clean -fd removes them after that save."""
    from fabops.inventory import load
    from fabops.maintenance.reset import ResetPlan
    from fabops.tasks._base import print_text
    from fabops.tasks.maintenance import reset_lines

    host = load(str(GOLDEN / "hosts.yml")).hosts["find-to-do"]
    plan = ResetPlan(head=SHA[0], target=SHA[0], dirty=["?? data/b.txt", "?? data/notes.txt"], has_env=True,
                     deployed=SHA[0])
    text = render(capsys, monkeypatch, width, lambda: [print_text(ln) for ln in reset_lines(host, plan, True)])
    flat = " ".join(text.split())
    assert f"would reset the checkout at {SHA[0][:10]}: already origin/main;" in flat, text
    assert f"{SHA[0][:10]} -> {SHA[0][:10]}" not in flat, text
    assert "git clean -fd removes the 2 untracked files listed above from the app directory" in flat, text
    lines = text.splitlines()
    listed = [i for i, ln in enumerate(lines) if "?? data/" in ln]
    save = [i for i, ln in enumerate(lines) if "would save " in ln]
    stop = [i for i, ln in enumerate(lines) if "would stop " in ln]
    assert save and listed and stop and save[0] < min(listed) and max(listed) < stop[0], text
    check("reset-dry-run-clean", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_history_keeps_a_holds_reason(width, frozen, capsys, monkeypatch):
    """Trial (#24's, item 3): a skipped_bad row cut at 80 columns kept
    `origin is at 7c4027e8cd, which…` (the SHA the facts line shows as its
    `to`) and dropped `failed its gate (bot died after starting…)`. Since
    #29 a hold's reason (host/state.HOLDS) is never cut: whole, wrapped at
    spaces, at 80 columns and in the wide table alike."""
    from fabops.tasks.render import history_table

    good, bad = "cc247af77a" + "3" * 30, "7c4027e8cd" + "4" * 30
    recs = [{"ts": NOW - 300, "trigger": "manual", "actor": "root", "from": good, "to": bad, "result": "skipped_bad",
             "duration": 0.024, "message": f"origin is at {bad[:10]}, which failed its gate (bot died after starting: "
                                          f"its process is gone); staying on {good[:10]} until origin moves"},
            {"ts": NOW - 200, "trigger": "cron", "actor": "root", "from": good, "to": bad, "result": "deferred",
             "duration": 0.031, "message": f"origin is at {bad[:10]}, whose dependency rule failed (dependency rule "
                                          "`sh install-deps.sh` failed); next try 11:50 UTC (try 2); staying on "
                                          f"{good[:10]}"}]
    text = render(capsys, monkeypatch, width, history_table, "local", recs)
    said = " ".join(text.split())
    assert "failed its gate (bot died" in said and f"staying on {good[:10]} until origin moves" in said, text
    assert "dependency rule failed (dep" in said and f"staying on {good[:10]}" in said, text
    check("history-hold", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_history_says_an_unverified_deploy(width, frozen, capsys, monkeypatch):
    """#29's trial: a deploy with --allow-unverified read as any deploy
    (`deployed`, the subject), its warning in --json alone. Its result is
    `deployed!` and its warning the row's reason, which a cut keeps."""
    from fabops.tasks.render import history_table

    rec = {**HISTORY[0], "trigger": "deploy", "actor": "alice@laptop", "subject": "v10", "author": "Alice",
           "warnings": [f"{SHA[1][:10]} is not signed by an allowed key (No principal matched): deployed anyway "
                        "(--allow-unverified)"]}
    text = render(capsys, monkeypatch, width, history_table, "local", [HISTORY[0], rec])
    said = " ".join(text.split())
    assert " deployed! " in text and "; deployed anyway (--allow-unverified)" in said, text
    check("history-unverified", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_history_shows_env_set_runs(width, frozen, capsys, monkeypatch):
    """#29's leftovers: env-set, env-unset and env-push runs are history
    records (maintenance/envset.EnvRun): at the deployed commit, their
    result and their message, key names only; a failed gate's reason
    stays (keep_reason)."""
    from fabops.tasks.render import history_table

    at = {"from": SHA[1], "to": SHA[1], "actor": "alice@laptop", "steps": [], "warnings": []}
    recs = [{**at, "ts": NOW - 300, "trigger": "env-set", "result": "changed", "duration": 4.2,
             "message": "added API_TOKEN; gate passed"},
            {**at, "ts": NOW - 200, "trigger": "env-push", "result": "reverted", "duration": 9.8,
             "message": "changed PORT, DISCORD_TOKEN; voice-meeting-discord-bot failed its gate"}]
    text = render(capsys, monkeypatch, width, history_table, "local", recs)
    said = " ".join(text.split())
    assert "env-set" in said and " changed " in said and "reverted" in said, text
    assert "; voice-meeting-discord-bot failed its gate" in said, text
    check("history-env-set", width, text)


def test_a_stray_backtick_from_the_host_makes_no_span():
    """Review 3: host text with an odd backtick (dash's "Syntax error: `('
    unexpected") made all that followed it one span: the message's own
    command lost its ` \\` and a long path ran past the width. The shell's
    `quote' is set aside; the message's spans stay spans."""
    from fabops.tasks._base import wrap

    cmd = "`inv deploy -i /a/very/long/path/to/some/inventory/of/the/team/hosts.yml -H web1 --ref main`"
    text = wrap(f"[web1] FAILED: sh: 1: Syntax error: `(' unexpected; run {cmd} then retry "
                "/another/quite/long/path/that/is/here/too/and/more/and/more/and/more/x", 80)
    lines = text.split("\n")
    assert all(len(ln) <= 80 for ln in lines), text
    assert "Syntax error: `(' unexpected" in text and lines[1].endswith(" \\"), text  # the command continues
    assert " ".join(ln.strip().removesuffix(" \\") for ln in lines).count(cmd) == 1, text
    odd = wrap("[h] a ` stray, then /a/very/long/path/to/some/inventory/hosts/that/is/longer/than/the/line/x.yml", 80)
    assert all(len(ln) <= 80 for ln in odd.split("\n")) and "` stray" in odd, odd
