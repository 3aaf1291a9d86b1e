"""Small wrong outputs a new user met after the demo (#24): each says what
is true, once, in words, and a flag combination that cannot work is a usage
error (exit 64) instead of silence. Unit tier and the local sandbox."""
import json

import pytest

from tests.conftest import run_cli


@pytest.fixture
def one_host(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("hosts:\n  web1: {address: 192.0.2.1, app: {path: /srv/app}}\ngroups:\n  webs: [web1]\n")
    return path


def test_hosts_check_counts_in_words(one_host):
    r = run_cli("hosts", "--check", "-i", str(one_host))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{one_host}: OK (1 host, 1 group)"


@pytest.mark.parametrize("args, message", [
    # 0 runs would print "no history yet" over a history that exists:
    # refused, not read as "all" (docs/pipeline.md); 0 and a negative in
    # one message, from one place (tasks/_base.read_number; #24 had two)
    (("history", "-n", "0"), "fabops: history -n must be at least 1, not 0"),
    (("history", "-n", "-3"), "fabops: history -n must be at least 1, not -3"),
    (("logs", "-n", "0"), "fabops: logs -n 0 shows nothing without --follow"),
    (("backup-env", "--list", "--download", "/tmp/x"), "fabops: backup-env --list makes no backup to --download"),
])
def test_refused_before_connecting(one_host, args, message):
    # web1 is TEST-NET-1: reaching for it would fail (or hang) with exit 3
    r = run_cli(*args, "-i", str(one_host), "--connect-timeout", "1")
    assert r.returncode == 64, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_an_unknown_key_is_named_in_a_line_that_fits_80_columns(tmp_path):
    """#24: an unknown key in a host gave a ~264-column line listing all
    19 keys a host takes. It names the closest key, or lists a short
    section's keys, or points to docs/hosts.md; each as docs/errors.md
    shows it."""
    from pathlib import Path

    (tmp_path / "hosts.yml").write_text(
        "hosts:\n  find-to-do:\n    prot: 22\n    zzz: 1\n    app: {path: /srv/app, origin: x}\n")
    r = run_cli("hosts", "--check", "-i", "hosts.yml", cwd=tmp_path, env={"COLUMNS": "80"})
    assert r.returncode == 78 and r.stdout == "", r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert lines == [
        "fabops: hosts.yml: hosts.find-to-do.prot: unknown key (did you mean 'port'?)",
        "fabops: hosts.yml: hosts.find-to-do.zzz: unknown key (see docs/hosts.md)",
        "fabops: hosts.yml: hosts.find-to-do.app.origin: unknown key; allowed: path, remote, branch, url",
    ], r.stderr
    # a host's key: within 80 columns. A short list (app's four keys) may
    # pass 80 under a deep key path: whole in a pipe, as every error line
    # is for grep, and wrapped on a terminal (_base.for_stderr)
    assert all(len(line) <= 80 for line in lines[:2]), lines
    documented = (Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    assert all(line in documented for line in lines), [ln for ln in lines if ln not in documented]


def test_health_logs_and_history_on_a_sandbox(sandbox):
    inv = str(sandbox.inventory)
    # nothing logged yet: said, on stderr (stdout stays the log's lines)
    r = run_cli("logs", "-i", inv, "--source", "health", "-n", "5")
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr.strip() == "local: no log lines yet (--source health)"
    r = run_cli("logs", "-i", inv, "--source", "health", "-n", "5", "--json")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")  # JSON lines: none is the empty answer

    assert sandbox.result()[0] == 0
    r = run_cli("health", "-i", inv)
    assert r.returncode == 0 and r.stdout == "local: OK: all services healthy\n", r.stdout + r.stderr
    r = run_cli("health", "-i", inv, "--json")
    (check,) = json.loads(r.stdout)["hosts"]["local"]["checks"]
    # the check ran and answered: the report says so
    assert (check["ok"], check["http_status"], check["requests"]) == (True, 200, 1), check

    sandbox.stop()
    r = run_cli("health", "-i", inv, "--fix", "--dry-run")
    assert r.returncode == 2 and r.stdout.startswith("local: FAILED: bot "), r.stdout + r.stderr
    assert "--fix would restart bot" in r.stdout and "would_restart" not in r.stdout
    r = run_cli("health", "-i", inv, "--json")
    (check,) = json.loads(r.stdout)["hosts"]["local"]["checks"]
    # a service that is not running gets no HTTP check: none is reported
    assert (check["ok"], check["http_status"], check["requests"]) == (False, None, 0), check


# Word-boundary wrapping (#24): a terminal cut help text and plain lines
# longer than 80 columns mid-word, and continuation lines began at column 0.
SHA256 = "fafe40e65f3cb4cb551b591acb139dbc5c113903d1a2b62f836b43f43e49303c"


@pytest.mark.parametrize("line, expected", [
    # the sha256 is one word: it moves to a line of its own, whole, under the text
    (f"[local] 20261206T063458-030559.env  44 bytes  sha256 {SHA256}",
     f"[local] 20261206T063458-030559.env  44 bytes  sha256\n        {SHA256}"),
    ("local: FAILED: bot inactive (process not running); port 3013 closed; --fix would restart bot",
     "local: FAILED: bot inactive (process not running); port 3013 closed; --fix would\n"
     "       restart bot"),
    # hyphenated names stay whole (textwrap's default breaks after a hyphen)
    ("[web1]   plan: run the dependency rules for voice-meeting-discord-bot.service and local-update",
     "[web1]   plan: run the dependency rules for voice-meeting-discord-bot.service\n"
     "         and local-update"),
    ("short line stays as it is  (two spaces too)", "short line stays as it is  (two spaces too)"),
])
def test_plain_lines_wrap_at_spaces_under_their_text(line, expected):
    from fabops.tasks._base import wrap

    assert wrap(line, 80) == expected
    assert all(len(ln) <= 80 for ln in wrap(line, 80).splitlines() if " " in ln.strip())


def test_print_text_wraps_stdout_and_a_terminals_stderr_never_piped_errors(monkeypatch, capsys):
    """stdout is read by people; stderr's `fabops: …` lines stay one line
    each in a pipe or a CI log (grep, annotations), and wrap on a terminal,
    which would cut them mid-word (restore-env's refusal, #24)."""
    import io
    import sys

    from fabops.tasks._base import print_text
    from fabops.tasks.render import host_errors

    monkeypatch.setenv("COLUMNS", "40")
    text = "[local] one two three four five six seven eight nine ten"
    print_text(text)
    print_text(text, file=sys.stderr)
    out = capsys.readouterr()
    assert out.out == "[local] one two three four five six\n        seven eight nine ten\n"
    assert out.err == text + "\n"

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    from types import SimpleNamespace

    from fabops.errors import UsageError

    failed = [SimpleNamespace(host="local", error=UsageError("no backup named env-1; see backup-env --list"))]
    for tty in (False, True):
        err = Terminal() if tty else io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        host_errors(failed)
        print_text(text, file=sys.stderr)
        assert err.getvalue() == ("fabops: local: no backup named env-1;\n        see backup-env --list\n"
                                  "[local] one two three four five six\n        seven eight nine ten\n" if tty else
                                  "fabops: local: no backup named env-1; see backup-env --list\n" + text + "\n")


def test_demo_narration_continues_under_its_text():
    """The demo's `  ✓ …` lines went on at column 0 under the check mark."""
    import io

    from rich.console import Console

    from fabops.tasks.render import print_hanging

    buf = io.StringIO()
    out = Console(file=buf, width=80, highlight=False, color_system=None)
    print_hanging(out, "  [green]✓[/green] rolled_back: 5791ba310169 failed (bot died after starting: its "
                       "process is gone); rolled back to 2be02e287abb")
    print_hanging(out, "\n[bold]▶ 4. Push a crash-on-boot v3[/bold]")
    lines = [ln.rstrip() for ln in buf.getvalue().splitlines()]
    assert lines == ["  ✓ rolled_back: 5791ba310169 failed (bot died after starting: its process is",
                     "    gone); rolled back to 2be02e287abb", "", "▶ 4. Push a crash-on-boot v3"], lines


@pytest.mark.parametrize("program", ["inv", "fabops"])
def test_help_wraps_at_word_boundaries_at_80_columns(program):
    """`--help TASK` printed the docstring as one line a terminal cut
    mid-word; Invoke's columns broke `local-update` after its hyphen."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from fabops.tasks import ns
    from tests.conftest import ROOT

    cmd = [str(Path(sys.executable).parent / "inv")] if program == "inv" else [sys.executable, "-m", "fabops.cli"]
    for args in [["deploy", "--help"], ["--list"]] + ([["--help"]] if program == "fabops" else []):
        r = subprocess.run(cmd + args, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           env=dict(os.environ, COLUMNS="80"), timeout=60)
        assert r.returncode == 0, r.stderr
        assert not [ln for ln in r.stdout.splitlines() if len(ln) > 80], r.stdout
        assert not [ln for ln in r.stdout.splitlines() if ln.rstrip().endswith("-") and ln.strip() != "-"], r.stdout
        if args[0] == "deploy":
            doc = r.stdout.split("Docstring:\n")[1].split("\n\n")[0]
            assert doc.splitlines()[1].startswith("  ") and len(doc.splitlines()) > 1, doc
            assert " ".join(doc.split()) == " ".join(ns["deploy"].__doc__.split()), doc


def test_monitor_watch_ends_on_ctrl_c_with_its_last_frame_whole(sandbox):
    """#24: Ctrl-C in `monitor --watch` left a half-drawn frame and a doubled
    border: the tty echoed `^C` after the frame's last column, the cursor
    went one line lower than rich's Live knew, and its last redraw erased one
    line too few. Run in a pseudo-terminal, interrupted as a terminal does
    (the ^C character on the tty, not a signal from outside): nothing is
    echoed, the output ends on one whole frame, no traceback, and the exit
    code is the last frame's, as docs/monitor.md says."""
    import os
    import pty
    import select
    import signal
    import sys
    import time

    assert sandbox.result()[0] == 0
    argv = [sys.executable, "-m", "fabops.cli", "monitor", "-i", str(sandbox.inventory), "--watch", "1"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: fabops on the terminal (never back into pytest)
        try:
            os.environ.update(COLUMNS="80", LINES="60", TERM="xterm-256color")
            os.execv(sys.executable, argv)
        finally:
            os._exit(127)
    out, sent, start, status = b"", None, time.monotonic(), None
    try:
        while time.monotonic() - start < 90:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # the child is gone: EIO on Linux
                    break
                if not data:
                    break
                out += data
            if sent is None and out.count("╰".encode()) >= 3:  # the third frame is drawn
                os.write(fd, b"\x03")
                sent = len(out)
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:  # still running (a hang): end it, pass or fail
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode("utf-8", "replace")
    assert sent is not None, text[-2000:]
    assert "^C" not in text and "Traceback" not in text, text[-2000:]
    # after the interrupt: Live's last redraw, one frame from top to bottom
    # border, then the cursor shown again; nothing after it
    tail = out[sent:].decode("utf-8", "replace")
    assert tail.rstrip().endswith("\x1b[?25h"), repr(tail[-300:])
    last = tail[tail.rfind("╭"):]
    assert last.count("╭") == 1 and last.count("╰") == 1, repr(tail)
    title = last.split("\n", 1)[0]
    code = os.waitstatus_to_exitcode(status)
    words = {"OK": 0, "WARNING": 1, "FAILED": 2}
    assert [w for w in words if w in title] == [next(w for w, c in words.items() if c == code)], (code, title)


@pytest.mark.parametrize("event, line", [
    ({"kind": "step", "step": "fetch", "status": "ok", "seconds": 0.5}, "  fetch: ok (0.50s)"),
    ({"kind": "step", "step": "fetch", "status": "ok", "seconds": 0.5, "message": ""}, "  fetch: ok (0.50s)"),
    ({"kind": "step", "step": "gate", "status": "failed", "seconds": 2, "message": "bot died"},
     "  gate: FAILED (2.00s) bot died"),
    ({"kind": "log", "message": "waiting for the lock"}, "  waiting for the lock"),
])
def test_verbose_step_lines_end_without_a_space(capsys, event, line):
    """local-update --verbose's step lines (#24): a step without a message
    printed its time and then a space, a trailing space in every pipe."""
    from fabops.tasks.update import _print_event

    _print_event(event)
    assert capsys.readouterr().out == line + "\n"


REASON = ("watch: voice-meeting-discord-bot.service died 3.1 s after start (systemd restarted it: NRestarts 1); "
          "rolled back to 9b8c7d6e5f")
SUBJECT = "Switch the recorder to the new voice gateway API (Alice)"


@pytest.mark.parametrize("width, expected", [
    (300, f"{SUBJECT}: {REASON}"),  # fits: untouched
    (150, f"Switch the recorder t…: {REASON}"),  # the subject is cut first
    (118, "watch: voice-meeting-discord-bot died 3.1 s after start (systemd restarted it: NRestarts 1); "
          "rolled back to 9b8c7d6e5f"),  # then dropped, and the unit's .service
    # the SHA; the aside stays (in `X failed (bot died …)` it is the reason)
    # then the middle: the reason's head and its outcome (where the run
    # ended, the last `; ` clause) both stay (trial #8)
    # (its SHA stays as every screen spells a commit, fabops/shortsha.py)
    (80, "watch: voice-meeting-discord-bot died 3.1 s after…; rolled back to 9b8c7d6e5f"),
    (40, "watch: voice-meeting-discord-bot died 3…"),  # last, the reason's tail
])
def test_a_cut_keeps_the_reason(width, expected):
    """#24: cut text kept the subject and lost why the run failed."""
    from rich.cells import cell_len

    from fabops.tasks.render import keep_reason

    got = keep_reason(REASON, width, SUBJECT, shas=["9b8c7d6e5f4a3b2c1d0e"])
    assert got == expected and cell_len(got) <= width


def test_a_cut_shortens_a_sha_to_a_real_prefix_and_keeps_the_aside_that_says_why():
    """A message spells SHAs with 12 characters: the cut made 55b52ed22038
    into 55b52ed38, a string that names no commit (review of #24); and the
    parentheses it dropped were the rollback's reason."""
    from fabops.tasks.render import keep_reason

    got = keep_reason("55b52ed22038 failed (bot died after starting: its process is gone); rolled back to "
                      "d1f24fa54007, healthy", 70, "Subject", shas=["55b52ed22038" + "a" * 28, "d1f24fa54007" + "b" * 28])
    # the leading SHA, which the facts line shows, goes before the reason
    # and the outcome are cut (trial #8)
    assert got.startswith("failed (bot died after starting") and "55b52ed3" not in got, got
    assert got.endswith("…); rolled back to d1f24fa540, healthy"), got  # a commit's one length (shortsha)


@pytest.mark.parametrize("text, parts", [
    ("cannot connect to ec2-user@10.20.30.40:2222: timed out", ("cannot connect to ec2-user@10.20.30.40:2222",
                                                                 "timed out")),
    ("bot died (exit: 1)", ("", "bot died (exit: 1)")),  # a colon in parentheses is not the split
    ("no colon", ("", "no colon")),
])
def test_an_error_splits_before_its_reason(text, parts):
    from fabops.tasks.render import split_reason

    assert split_reason(text) == parts


def test_rollback_says_it_pinned_the_host(sandbox):
    """#24: rollback's summary was headed 'deploy' and never said it pinned
    the host; only a later unpin said 'was pinned to'. Human and JSON."""
    from tests.conftest import one

    assert sandbox.result()[0] == 0
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    assert sandbox.result()[0] == 0
    v2 = sandbox.origin.head
    inv = str(sandbox.inventory)
    r = run_cli("rollback", "-i", inv, "--dry-run", env={"COLUMNS": "80"})
    # progress lines ([local] ✓ fetch ...), then the summary under its heading
    assert r.returncode == 0 and "rollback" in r.stdout.splitlines(), r.stdout + r.stderr
    assert "deploy" not in r.stdout.splitlines()
    # the host's plan says the pin, once, with the rollback's reason (trial #12)
    assert f"[local] would pin {v1[:10]}: rollback: cron stays on it" in r.stdout, r.stdout
    r = run_cli("rollback", "-i", inv, "--json")
    assert r.returncode == 0 and one(r.stdout)["pinned"] == v1, r.stdout + r.stderr
    assert sandbox.state["pin"] == v1  # what it says is what it did
    # a deploy (it clears the pin): headed deploy, and no pin line
    r = run_cli("deploy", "-i", inv, env={"COLUMNS": "80"})
    assert r.returncode == 0 and "deploy" in r.stdout.splitlines(), r.stdout + r.stderr
    assert "pinned to" not in r.stdout and sandbox.state["deployed"] == v2
    r = run_cli("rollback", "-i", inv, env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rollback" in r.stdout.splitlines() and "deploy" not in r.stdout.splitlines(), r.stdout
    said = "".join(r.stdout.split())  # wrapped at 80 columns, the long path too
    assert "".join(f"[local] pinned to {v1[:10]}: cron stays on it until `fabops unpin -i {inv} -H local`".split()) \
        in said, r.stdout  # the way out with the run's -i (issue #24)


def test_deploy_dry_run_says_its_plan_once(sandbox):
    """#24: `deploy --dry-run` said the plan three times (the progress's
    `= would_deploy: would deploy A -> B`, the summary's message and the
    `would checkout` line). Now once, in the `would` lines; --json keeps
    its message and its plan as they were."""
    from tests.conftest import one

    assert sandbox.result()[0] == 0
    was = sandbox.origin.head
    sandbox.origin.good("2")
    inv = str(sandbox.inventory)
    r = run_cli("deploy", "-i", inv, "--dry-run", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    span = f"{was[:10]} -> {sandbox.origin.head[:10]}"
    assert r.stdout.count(span) == 1, r.stdout
    assert f"[local] would checkout {sandbox.origin.head[:10]}: deploy {span}" in r.stdout, r.stdout
    assert "= would_deploy" not in r.stdout and "[local] would restart bot" in r.stdout, r.stdout
    data = one(run_cli("deploy", "-i", inv, "--dry-run", "--json").stdout)
    assert data["message"] == f"would deploy {span}" and data["plan"]["would"][0]["action"] == "checkout"


def test_the_live_board_leaves_a_dry_runs_plan_to_the_lines_below(capsys, monkeypatch):
    """On a terminal too the plan is said once: the board's row for a dry
    run points at the `would` lines instead of restating them."""
    from fabops.tasks.deploy import _LiveBoard
    from fabops.tasks.render import console

    monkeypatch.setenv("COLUMNS", "80")
    board = _LiveBoard(["local"])
    board("local")({"kind": "result", "result": "would_deploy", "message": "would deploy aaaa -> bbbb",
                    "plan": {"would": [{"action": "checkout", "target": "bbbb", "why": "deploy aaaa -> bbbb"}]}})
    capsys.readouterr()
    console().print(board._table())
    out = capsys.readouterr().out
    assert "1 planned change, listed below" in out and "aaaa -> bbbb" not in out, out


TWO_SERVICES = """hosts:
  web1:
    address: 192.0.2.1
    app: {path: /srv/app}
    services:
      - {name: voice-meeting-python-api.service}
      - {name: voice-meeting-discord-bot.service}
"""


@pytest.mark.parametrize("typed, name", [
    ("voice-meeting-python-api.service", "voice-meeting-python-api.service"),  # hosts.yml's and --json's
    ("voice-meeting-python-api", "voice-meeting-python-api.service"),  # the unit without .service
    ("python-api", "voice-meeting-python-api.service"),  # what hosts, monitor and status print
    ("discord-bot", "voice-meeting-discord-bot.service"),
])
def test_every_printed_service_name_is_accepted(tmp_path, typed, name):
    """#24: `hosts` showed python-api and `-s python-api` was refused."""
    from fabops import inventory
    from fabops.tasks.render import service_labels

    host = inventory.loads(TWO_SERVICES).hosts["web1"]
    assert host.service(typed).name == name
    # the short names are the ones the tables print
    assert set(service_labels(s.name for s in host.services).values()) == {"python-api", "discord-bot"}


@pytest.mark.parametrize("task", [("restart",), ("restart", "--dry-run"), ("logs",), ("logs", "-f")])
def test_an_unknown_service_is_refused_before_connecting(tmp_path, task):
    """#24: restart connected first and exited 3; every task checks the
    name first (web1 is TEST-NET-1: reaching for it fails with exit 3)."""
    path = tmp_path / "hosts.yml"
    path.write_text(TWO_SERVICES)
    r = run_cli(*task, "-i", str(path), "-s", "python-apii", "--connect-timeout", "1")
    assert r.returncode == 64, r.stdout + r.stderr
    assert ("unknown service 'python-apii' (known: voice-meeting-python-api.service (python-api), "
            "voice-meeting-discord-bot.service (discord-bot))") in " ".join(r.stderr.split()), r.stderr
    assert "Traceback" not in r.stderr and "cannot connect" not in r.stderr


def test_restart_and_logs_take_the_short_name_on_a_sandbox(sandbox):
    """The name monitor prints for the sandbox's service works in restart and
    logs (its unit-style spelling too)."""
    from tests.conftest import one

    inv = str(sandbox.inventory)
    assert sandbox.result()[0] == 0
    r = run_cli("restart", "-i", inv, "-s", "bot.service", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [x["ok"] for x in one(r.stdout)["services"]] == [True]
    # one envelope shape (#24's trial: a bare list, and seconds as 0.8551083929996821): an object, to the ms
    import jsonschema

    from tests.conftest import json_schema

    jsonschema.validate(json.loads(r.stdout), json_schema())
    took = one(r.stdout)["services"][0]["seconds"]
    assert took == round(took, 3) and isinstance(one(r.stdout), dict), r.stdout
    r = run_cli("logs", "-i", inv, "-s", "bot", "-n", "5")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_deploy_with_ref_says_it_pinned_the_host(sandbox):
    """deploy --ref pins the host as rollback does (cron stays on it): its
    summary says so with the way out, and its JSON has `pinned`; a plain
    deploy says nothing of a pin."""
    from tests.conftest import one

    assert sandbox.result()[0] == 0
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    inv = str(sandbox.inventory)
    r = run_cli("deploy", "-i", inv, "--ref", v1, env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    said = "".join(r.stdout.split())
    assert "".join(f"[local] pinned to {v1[:10]}: cron stays on it until `fabops unpin -i {inv} -H local`".split()) \
        in said, r.stdout
    assert sandbox.state["pin"] == v1
    sandbox.origin.good("3")
    r = run_cli("deploy", "-i", inv, "--ref", sandbox.origin.head, "--json")
    assert r.returncode == 0 and one(r.stdout)["pinned"] == sandbox.origin.head, r.stdout + r.stderr
    r = run_cli("deploy", "-i", inv, "--json")
    assert r.returncode == 0 and "pinned" not in one(r.stdout), r.stdout + r.stderr
