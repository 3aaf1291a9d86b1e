"""Host text reaches a terminal and a chat as text (#22, "Terminal and chat
injection"). Commit subjects and authors, a dependency rule's last line, the
actor, service output and error messages are written by whoever can push to
the app or run code on the host; printed as they are, `[/]` crashed `status`
(rich markup), `[link=…]` and OSC 8 made links, `ESC[2J` cleared the screen.

Unit tests for fabops.printable (one per class of character), the markup
escape and the chat payloads; then the real CLI on a local sandbox (exactly
what cron runs on a host), with a hostile commit deployed by the real
pipeline and notified to a real HTTP endpoint."""
import json
import os
import sys
from types import SimpleNamespace

import pytest

from fabops import notify
from fabops.printable import printable
from tests.conftest import ROOT, run_cli
from tests.harness.apps import Sandbox
from tests.harness.sandbox import git
from tests.harness.terminal import run_in_pty
from tests.harness.webhook import Hook

HOSTILE = "[/] [link=http://x]y[/link] \x1b[2J\x1b]8;;http://evil\x07click\x1b]8;;\x07 \u202e"
SHOWN = "[/] [link=http://x]y[/link] click"  # what a reader sees: the markup as text, no escapes
AUTHOR = "[/bold] \x1b]8;;http://evil\x07me"
ACTOR = "[/]\x1b[2Jmallory"
MENTIONS = "<!channel> @everyone <@U1>"
# what must never reach a terminal from a host: ESC, BEL, CSI/OSC in C1 form, the bidi override
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\x9d", "\u202e")


# ------------------------------------------------------------ printable

@pytest.mark.parametrize("text", ["", "deployed v2 (alice)", "[/] [bold]x[/bold] <!channel> & @everyone",
                                  "ünïcødé パス 🚀 ✅", "a b"])
def test_plain_text_is_unchanged(text):
    assert printable(text) == text and printable(text, lines=True) == text


@pytest.mark.parametrize("seq", ["\x1b[2J", "\x1b[31;1m", "\x1b[?1049h", "\x1b[0 q", "\x9b2J", "\x9b31m"])
def test_csi_sequences_are_removed_whole(seq):
    assert printable(f"a{seq}b") == "ab"


def test_an_unfinished_csi_goes_too():
    assert printable("tail \x1b[") == "tail " and printable("x\x1b[12;") == "x"


@pytest.mark.parametrize("seq", [
    "\x1b]8;;http://evil\x07",  # OSC 8 hyperlink, BEL-terminated
    "\x1b]8;;http://evil\x1b\\",  # ... ST-terminated
    "\x1b]52;c;cm0gLXJmIH4=\x07",  # OSC 52: write the clipboard
    "\x1b]0;a title\x07",
    "\x9d8;;http://evil\x9c",  # the C1 forms of OSC and ST
    "\x1bP+q544e\x1b\\",  # DCS
    "\x1bX sos \x1b\\", "\x1b^ pm \x1b\\", "\x1b_ apc \x1b\\",
    "\x90dcs\x9c", "\x98sos\x9c", "\x9epm\x9c", "\x9fapc\x9c",
])
def test_string_sequences_are_removed_whole(seq):
    assert printable(f"a{seq}b") == "ab"


def test_an_unterminated_osc_ends_at_the_line():
    assert printable("a\x1b]8;;http://evil\nnext", lines=True) == "a\nnext"


@pytest.mark.parametrize("seq", ["\x1bc", "\x1b(B", "\x1b)0", "\x1b7", "\x1b8", "\x1b=", "\x1b#8", "\x1b\x1b[2J"])
def test_other_escape_sequences_are_removed_whole(seq):
    assert printable(f"a{seq}b") == "ab"
    assert printable(f"a{seq}") == "a"  # at the very end too


LONE = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r\x1b"] + ["\x7f"] + \
       [chr(c) for c in range(0x80, 0xa0) if c not in (0x90, 0x98, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f)]


@pytest.mark.parametrize("char", LONE, ids=[f"U+{ord(c):04X}" for c in LONE])
def test_every_other_control_character_becomes_a_visible_mark(char):
    assert printable(f"a{char}b") == "a\ufffdb"
    assert printable(f"a{char}b", lines=True) == "a\ufffdb"


def test_tab_and_newline_are_kept_for_lines_and_spaces_in_one_line():
    assert printable("a\tb\nc\r\nd", lines=True) == "a\tb\nc\nd"
    assert printable("a\tb\nc\r\nd") == "a b c d"


def test_a_bare_carriage_return_never_overwrites_a_line():
    assert printable("ok\rFAILED") == "ok\ufffdFAILED"
    assert printable("ok\rFAILED", lines=True) == "ok\ufffdFAILED"


BIDI = ["\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
        "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("char", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_bidi_controls_are_removed(char):
    assert printable(f"abc{char}def") == "abcdef"


def test_the_hostile_subject_reads_as_its_text():
    assert printable(HOSTILE) == SHOWN + " "
    assert printable(42) == "42" and printable(None) == "None"


def test_literal_shows_markup_as_text_through_rich():
    from rich.text import Text

    from fabops.tasks.render import literal

    assert Text.from_markup(literal(HOSTILE)).plain == SHOWN + " "
    assert Text.from_markup(f"[bold]{literal('a [/] b')}[/bold]").plain == "a [/] b"
    backslash = literal("ends in a backslash \\")  # before a closing tag, it must not escape it
    assert Text.from_markup(f"[red]{backslash}[/red]").plain == "ends in a backslash \\"


def test_logs_on_a_terminal_print_the_words_and_no_escape(capsys):
    from fabops.tasks.observe import LinePrinter

    show = LinePrinter([SimpleNamespace(name="h1"), SimpleNamespace(name="h2")])
    show.plain = False  # the coloured terminal path (stdout here is captured)
    show("h1", HOSTILE)
    show.plain = True
    show("h2", "\x1b[32mgreen\x1b[0m\tcolumn")
    out = capsys.readouterr().out
    assert not any(c in out for c in FORBIDDEN), repr(out)
    assert f"h1 | {SHOWN}" in out and "h2 | green\tcolumn" in out


# ------------------------------------------------------------ chat

def test_slack_payload_escapes_what_slack_parses():
    body = json.loads(notify.payload("slack", f"{MENTIONS} a&b <http://evil|click> \x1b[2J\u202e"))
    assert body == {"text": "&lt;!channel&gt; @everyone &lt;@U1&gt; a&amp;b &lt;http://evil|click&gt; "}


def test_discord_payload_parses_no_mention():
    body = json.loads(notify.payload("discord", f"{MENTIONS} @here \x1b]8;;http://evil\x07x"))
    assert body == {"content": f"{MENTIONS} @here x", "allowed_mentions": {"parse": []}}


def test_a_real_delivery_pings_nobody():
    """Over HTTP to a recording endpoint: Slack's text has no `<` left to
    open a mention, Discord's is told to parse none."""
    hook = Hook()
    try:
        env = {"FABOPS_SLACK_WEBHOOK": hook.url + "?slack", "FABOPS_DISCORD_WEBHOOK": hook.url + "?discord"}
        out = notify.notify("web1", "deployed", MENTIONS, environ=env)
        assert [d.ok for d in out] == [True, True], out
        slack = next(g for g in hook.got if "text" in g)
        discord = next(g for g in hook.got if "content" in g)
        assert "&lt;!channel&gt; @everyone &lt;@U1&gt;" in slack["text"] and "<" not in slack["text"]
        assert discord["allowed_mentions"] == {"parse": []} and MENTIONS in discord["content"]
    finally:
        hook.close()


# ------------------------------------------------------------ the real CLI

def _octal(text: str) -> str:
    """`text` for printf's format: every byte outside printable ASCII as \\ooo."""
    return "".join(chr(b) if 0x20 <= b < 0x7f and chr(b) not in "\\%'" else f"\\{b:03o}"
                   for b in text.encode())


# the rule's last line, printed by the pushed install-deps.sh
INSTALL_FAILS = f"#!/bin/sh\nprintf '{_octal(HOSTILE + ' ' + MENTIONS)}\\n'\nexit 1\n"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A sandbox where cron's `local-update` (as ACTOR) ran two hostile
    commits and notified a recording endpoint over HTTP: the first, with the
    hostile subject and author, makes the dependency rule fail with a
    hostile last line (aborted, back on v1); the second, whose subject is
    MENTIONS, repairs the rule and is deployed. Made once for the module:
    the tests only read it (history, status, monitor, logs, the hook's
    record), and making it took 7-9 s per test, eight times."""
    box = Sandbox(tmp_path_factory.mktemp("hostile"), timeout="5s")
    hook = Hook()
    try:
        assert box.result()[0] == 0
        work = box.origin.work
        (work / "requirements.txt").write_text("evil\n")
        (work / "install-deps.sh").write_text(INSTALL_FAILS)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", HOSTILE, "--author", f"{AUTHOR} <a@b.invalid>", cwd=work)
        git("push", "-q", "origin", "main", cwd=work)
        env = {"FABOPS_SLACK_WEBHOOK": hook.url + "?slack", "FABOPS_DISCORD_WEBHOOK": hook.url + "?discord"}
        r = box.update("--actor", ACTOR, env=env)
        assert r.returncode != 0, r.stdout + r.stderr  # the rule failed: back to v1
        git("checkout", "-q", "HEAD~1", "--", "install-deps.sh", cwd=work)
        git("commit", "-q", "-am", MENTIONS, cwd=work)
        git("push", "-q", "origin", "main", cwd=work)
        r = box.update("--actor", ACTOR, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        box.hook = hook
        yield box
    finally:
        hook.close()
        box.stop()


def _clean(text):
    assert not any(c in text for c in FORBIDDEN), repr(text)


@pytest.mark.parametrize("columns", ["80", "200"])
def test_history_shows_the_subject_as_text(hostile, columns):
    r = run_cli("history", "-i", str(hostile.inventory), "--wide", env={"COLUMNS": columns})
    assert r.returncode == 0, r.stdout + r.stderr
    _clean(r.stdout + r.stderr)
    assert SHOWN in r.stdout and "[/bold] me" in r.stdout and "[/]mall" in r.stdout
    if columns == "80":
        assert max(len(line) for line in r.stdout.splitlines()) <= 80


@pytest.mark.parametrize("columns", ["80", "200"])
def test_status_shows_the_actor_as_text(hostile, columns):
    r = run_cli("status", "-i", str(hostile.inventory), env={"COLUMNS": columns})
    assert r.returncode == 0, r.stdout + r.stderr
    _clean(r.stdout + r.stderr)
    assert "by [/]mallory: deployed" in r.stdout  # a `[/]` here crashed status (rich markup)


def test_monitor_and_logs_show_host_text_as_text(hostile):
    r = run_cli("monitor", "-i", str(hostile.inventory))
    _clean(r.stdout + r.stderr)
    r = run_cli("logs", "-i", str(hostile.inventory), "--source", "update", "-n", "50")
    assert r.returncode == 0, r.stdout + r.stderr
    _clean(r.stdout + r.stderr)
    assert SHOWN in r.stdout


def test_json_keeps_the_data_as_it_is(hostile):
    r = run_cli("history", "-i", str(hostile.inventory), "--json")
    assert r.returncode == 0
    assert HOSTILE in [rec["subject"] for rec in json.loads(r.stdout)["hosts"]["local"]]
    r = run_cli("logs", "-i", str(hostile.inventory), "--source", "update", "-n", "50", "--json")
    assert any("\x1b]8;;http://evil\x07" in json.loads(line)["line"] for line in r.stdout.splitlines())


def test_the_pipeline_notifies_text_that_pings_nobody(hostile):
    got = hostile.hook.got
    slack = [g["text"] for g in got if "text" in g]
    discord = [g for g in got if "content" in g]
    assert slack and discord, got
    for text in slack + [g["content"] for g in discord]:
        _clean(text)
    assert any(SHOWN in t for t in slack) and any(SHOWN in g["content"] for g in discord)
    assert all("<" not in t for t in slack), slack
    assert any("&lt;!channel&gt; @everyone &lt;@U1&gt;" in t for t in slack), slack
    assert all(g["allowed_mentions"] == {"parse": []} for g in discord)


def test_a_terminal_gets_colours_and_nothing_from_the_host(hostile):
    """Under a pty rich writes its own styles (SGR); nothing else: no
    clear-screen, no OSC 8 link, no BEL, no bidi override."""
    for task in ("history", "status"):
        out = _in_pty([sys.executable, "-m", "fabops.cli", task, "-i", str(hostile.inventory)])
        assert "\x1b[2J" not in out and "\x1b]" not in out and "\x07" not in out and "\u202e" not in out, repr(out)
        assert "\x1b[" in out  # it was a terminal: rich styled it


def _in_pty(argv) -> str:
    env = dict(os.environ, COLUMNS="80", LINES="40", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    code, out = run_in_pty(argv, ROOT, env)
    assert code == 0, out
    return out


@pytest.mark.parametrize("ch", ["\u2028", "\u2029", "\u200b", "\ufeff", "\u2060", "\u2064", "\u206a", "\u206f"])
def test_invisible_separators_and_joiners_show_as_replacement(ch):
    from fabops.printable import printable

    assert printable(f"a{ch}b") == "a\ufffdb"
