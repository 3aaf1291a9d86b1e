"""fabops' own stderr lines follow one rule (#24's trial; DESIGN: messages
wrap at spaces, pipes get no padding; docs/architecture.md, "Command
line"): on a terminal each `fabops: …` line is wrapped at spaces to
$COLUMNS, continuing under the text after `fabops: `; in a pipe, a
file or a CI log it is one whole line, never padded. `logs -f`'s notices
about its link and the restore's notes while the laptop waits
(maintenance/backup) were written as they were, so a terminal cut them
mid-word."""
import io
import sys

import pytest

LONG = "lost the link to the host (timed out after 30 s); reconnecting in 5 s and following from where it stopped"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def said(monkeypatch, tty: bool, write) -> str:
    err = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("COLUMNS", "80")
    write()
    return err.getvalue()


def check(text: str, tty: bool, whole: str) -> None:
    lines = text.splitlines()
    if not tty:  # a pipe: the message whole, one line, nothing added
        assert text == whole + "\n", text
        return
    assert len(lines) > 1 and all(len(x) <= 80 and x == x.rstrip() for x in lines), text
    assert " ".join(x.strip() for x in lines) == whole, text  # broken at spaces only
    assert all(x.startswith(" " * len("fabops: ")) for x in lines[1:]), text  # under the text after `fabops: `


@pytest.mark.parametrize("tty", [False, True])
def test_a_follows_notice_wraps_on_a_terminal_only(monkeypatch, tty):
    from fabops.tasks.observe import _notice

    check(said(monkeypatch, tty, lambda: _notice("local", LONG)), tty, f"fabops: local: {LONG}")


@pytest.mark.parametrize("tty", [False, True])
def test_the_librarys_stderr_lines_follow_the_same_rule(monkeypatch, tty):
    import fabops.tasks._base  # noqa: F401 - the task layer hands its rule in (printable.STDERR_FIT)
    from fabops.maintenance.backup import _say

    check(said(monkeypatch, tty, lambda: _say(f"fabops: local: {LONG}")), tty, f"fabops: local: {LONG}")
