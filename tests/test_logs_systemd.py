"""`logs -f --errors -n N` on a real journal (issue #24; systemd tier): on
the booted find-to-do, the last N error lines of the unit's last 24 h, then
its new error lines, through journalctl's cursor (--cursor-file, then
--after-cursor), with no line twice and no cursor file left on the host;
and `--since S -n N` with and without -f: the last N entries since S."""
import os
import shlex
import signal
import sys

import pytest

from tests import test_journey as journey
from tests import test_systemd_tier as tier
from tests.test_logs_follow import ERRORS_AT, Follow
from tests.test_systemd_tier import UNIT, on_host

pytestmark = pytest.mark.systemd

# the tier's find-to-do alias on each journey image: bookworm (systemd 252),
# and bullseye (systemd 247, the nearest to Amazon Linux 2023's 252 and older)
alias, image = tier.alias, journey.image


@pytest.fixture(scope="module")
def box(image):
    return image[1]


def journal_entry(box, message: str) -> None:
    """An entry the unit's journal holds (`journalctl -u UNIT`): root's
    message about the unit (OBJECT_SYSTEMD_UNIT, trusted from uid 0 only)."""
    fields = f"MESSAGE={message}\nOBJECT_SYSTEMD_UNIT={UNIT}\nSYSLOG_IDENTIFIER=fabops-test\n"
    box.as_root(f"printf %s {shlex.quote(fields)} | logger --journald")


def said(line: str, message: str) -> bool:
    """`host | TIME host fabops-test[PID]: MESSAGE`, journalctl's short-iso."""
    return " fabops-test[" in line and line.endswith("]: " + message)


def test_logs_follow_errors_on_the_journal(alias, box):
    inv = alias
    tier.first_deploy(inv)
    for i in range(1, 31):
        journal_entry(box, f"line {i} ERROR boom" if i in ERRORS_AT else f"line {i} ok")
    f = Follow([sys.executable, "-u", "-m", "fabops.cli", "logs", "-i", str(inv), "-f", "--errors", "-n", "2"],
               env=dict(os.environ, COLUMNS="200"))
    try:
        first, second = f.line(120), f.line(60)
        assert said(first, "line 5 ERROR boom") and said(second, "line 7 ERROR boom"), (first, second)
        journal_entry(box, "line 31 ok")
        journal_entry(box, "line 32 Exception: new")
        third = f.line(60)
        assert said(third, "line 32 Exception: new"), third
        assert f.quiet(2.0) == b""  # no line twice, no line without an error
    finally:
        f.stop(signal.SIGINT)
    assert f.proc.returncode == 0, f.proc.stderr.read().decode()
    left = on_host("ls -d /tmp/fabops-logs.* /run/user/$(id -u)/fabops-logs.* 2>/dev/null", check=False).stdout
    assert left == "", left


def test_logs_since_on_the_journal(alias, box):
    """`--since S -n N`, read and followed (issue #24): the last N entries
    since S, then new ones, none twice. On bullseye's systemd 247,
    journalctl's own `--since S -n 2` printed `since 1 ok`, `since 2 ok`
    (the first N), and with `-f` then the rest of the window, 3 to 6."""
    import time

    from tests.conftest import run_cli

    inv = alias
    if on_host("test -d ~/voice-meeting-bot", check=False).returncode:  # the first test deployed it already
        tier.first_deploy(inv)
    time.sleep(1.1)
    mark = int(time.time())  # the box's clock is this machine's; @EPOCH is exact to the second
    time.sleep(1.1)
    for i in range(1, 7):
        journal_entry(box, f"since {i} ok")
    since = ["--since", f"@{mark}", "-n", "2"]
    mine = [line for line in run_cli("logs", "-i", str(inv), *since).stdout.splitlines() if " fabops-test[" in line]
    assert said(mine[-1], "since 6 ok") and not any(said(x, "since 1 ok") for x in mine), mine
    f = Follow([sys.executable, "-u", "-m", "fabops.cli", "logs", "-i", str(inv), "-f", *since],
               env=dict(os.environ, COLUMNS="200"))
    try:
        first = [f.line(120), f.line(60)]
        assert said(first[-1], "since 6 ok") and not any(said(x, "since 1 ok") for x in first), first
        journal_entry(box, "since 7 ok")
        while not said(line := f.line(60), "since 7 ok"):
            assert " fabops-test[" not in line, line  # an old entry of ours again: the window's rest
        time.sleep(2.0)
        assert b"fabops-test[" not in f.quiet(1.0)  # nothing of ours twice
    finally:
        f.stop(signal.SIGINT)
    assert f.proc.returncode == 0, f.proc.stderr.read().decode()
    left = on_host("ls -d /tmp/fabops-logs.* /run/user/$(id -u)/fabops-logs.* 2>/dev/null", check=False).stdout
    assert left == "", left
