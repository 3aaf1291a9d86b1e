"""`logs -f --errors -n N` (issue #24): the last N error lines of the
window, then new error lines, with no gap and no line twice. The commands
log_command builds run here in a real /bin/sh with real tail, grep and
mktemp; journalctl is a stub that keeps its cursor contract (--cursor-file
written with the last entry read, --after-cursor starting after it)."""
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from fabops import inventory
from fabops.logs import _file_cmd, log_command
from tests.conftest import run_cli

ERRORS_AT = (3, 5, 7)  # 30 lines, 3 errors early on


def thirty_lines() -> str:
    return "".join(f"line {i} ERROR boom\n" if i in ERRORS_AT else f"line {i} ok\n" for i in range(1, 31))


def a_host(**entry):
    spec = {"a": {"connection": "local", "app": {"path": "/srv/app"}, "services": [{"name": "bot.service"}], **entry}}
    return inventory.loads(yaml.safe_dump({"hosts": spec}), "h.yml").hosts["a"]


class Follow:
    """A command started in its own session (as a pty would hold it), read
    line by line with a deadline, and ended by its group."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        self.buf = b""

    def line(self, timeout=20.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"no line in {timeout} s (so far {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def quiet(self, seconds: float) -> bytes:
        """What comes in `seconds` (nothing, when a line must not be shown)."""
        ready, _, _ = select.select([self.proc.stdout], [], [], seconds)
        return self.buf + (os.read(self.proc.stdout.fileno(), 65536) if ready else b"")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def test_files_show_the_last_errors_then_new_ones(tmp_path):
    """Two logs (the process back end has one per service): the last 2
    error lines of both, then each one's new error lines, no others."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(thirty_lines())
    b.write_text("b 1 ok\nb 2 Traceback (most recent call last)\nb 3 ok\n")
    f = Follow(["sh", "-c", _file_cmd([str(a), str(b)], 2, True, True)])
    try:
        assert [f.line(), f.line()] == ["line 7 ERROR boom", "b 2 Traceback (most recent call last)"]
        with a.open("a") as out:
            out.write("line 31 ok\nline 32 fatal: disk\n")
        assert f.line() == "line 32 fatal: disk"
        with b.open("a") as out:
            out.write("b 4 ok\nb 5 error again\n")
        assert f.line() == "b 5 error again"
        assert f.quiet(0.5) == b""
    finally:
        f.stop()


def test_a_file_missing_at_the_start_is_followed_from_its_first_line(tmp_path):
    log = tmp_path / "update.log"
    f = Follow(["sh", "-c", log_command(a_host(logs={"update": str(log)}), "update", None, 2, True, None, True)])
    try:
        time.sleep(0.5)
        log.write_text("first ok\nsecond error\n")
        assert f.line() == "second error"
    finally:
        f.stop()


STUB = textwrap.dedent("""\
    #!{python}
    # journalctl as far as logs -f --errors needs it: ENTRIES holds
    # "cursor<TAB>message" lines; the first HISTORY_N exist before the follow
    import os, sys, time
    args = sys.argv[1:]
    with open(os.environ["STUB_LOG"], "a") as log:
        log.write(" ".join(args) + "\\n")
    rows = [line.rstrip("\\n").split("\\t", 1) for line in open(os.environ["ENTRIES"])]
    opt = lambda name: next((a.split("=", 1)[1] for a in args if a.startswith(name + "=")), None)
    if opt("--cursor-file") is not None:
        time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
        rows = rows[:int(os.environ["HISTORY_N"])]
        if rows:
            open(opt("--cursor-file"), "w").write(rows[-1][0])
    elif opt("--after-cursor") is not None:
        rows = rows[[c for c, _ in rows].index(opt("--after-cursor")) + 1:]
    else:
        rows = rows[int(os.environ["HISTORY_N"]):]  # the same window: only new entries are in it now
    for _, message in rows:
        print(message, flush=True)
""")


@pytest.fixture
def journal(tmp_path):
    """The stub journalctl first on PATH; returns (env, entries file, argv log, runtime dir)."""
    bin_dir, runtime = tmp_path / "bin", tmp_path / "run"
    bin_dir.mkdir()
    runtime.mkdir(mode=0o700)
    stub = bin_dir / "journalctl"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    entries, log = tmp_path / "entries", tmp_path / "argv.log"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", XDG_RUNTIME_DIR=str(runtime),
               ENTRIES=str(entries), STUB_LOG=str(log))
    return env, entries, log, runtime


def run_journal(env, n_history: int, since=None, errors=True, follow=True) -> subprocess.CompletedProcess:
    cmd = log_command(a_host(), "journal", None, 2, errors, since, follow)
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60,
                          env=dict(env, HISTORY_N=str(n_history)))


def test_the_journal_follows_from_the_cursor_of_the_history(journal):
    env, entries, log, runtime = journal
    rows = thirty_lines().splitlines() + ["line 31 ok", "line 32 Exception: new", "line 33 ok"]
    entries.write_text("".join(f"c{i}\t{m}\n" for i, m in enumerate(rows, 1)))
    r = run_journal(env, 30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["line 5 ERROR boom", "line 7 ERROR boom", "line 32 Exception: new"]
    history, follow = log.read_text().splitlines()
    assert "-u bot.service --since -24h --cursor-file=" in history and " -f" not in history
    assert follow.endswith("-u bot.service --after-cursor=c30 -n all -f")
    assert list(runtime.iterdir()) == []  # the cursor's directory is gone


def test_an_empty_window_follows_the_same_window(journal):
    """No entry in the window, no cursor: the follow reads the window again
    (then it holds only new entries), never `-n 0`'s gap."""
    env, entries, log, runtime = journal
    entries.write_text("c1\tnew ok\nc2\tnew error\n")
    r = run_journal(env, 0, since="1 hour ago")
    assert r.stdout.splitlines() == ["new error"], r.stderr
    assert log.read_text().splitlines()[1].endswith("-u bot.service --since 1 hour ago -n all -f")  # the stub's argv, joined
    assert list(runtime.iterdir()) == []


def test_since_follows_the_last_lines_of_the_window_then_new_ones(journal):
    """`-f --since S -n N` (issue #24): the window's last N lines, then the
    new ones from the cursor, none twice. `journalctl --since S -n N -f`
    showed the window's first N entries, then at the next new entry all the
    rest of it (systemd 247)."""
    env, entries, log, runtime = journal
    rows = [f"line {i} ok" for i in range(1, 34)]
    entries.write_text("".join(f"c{i}\t{m}\n" for i, m in enumerate(rows, 1)))
    r = run_journal(env, 30, since="1 hour ago", errors=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["line 29 ok", "line 30 ok", "line 31 ok", "line 32 ok", "line 33 ok"]
    history, follow = log.read_text().splitlines()
    assert "-u bot.service --since 1 hour ago --cursor-file=" in history and " -n " not in history
    assert follow.endswith("-u bot.service --after-cursor=c30 -n all -f")
    assert list(runtime.iterdir()) == []


def test_since_without_follow_keeps_the_last_lines_of_the_window(journal):
    """`--since S -n N`: the whole window through `tail -n N`, never
    journalctl's `-n` beside `--since` (the window's first N on systemd 247)."""
    env, entries, log, _ = journal
    entries.write_text("".join(f"c{i}\tline {i} ok\n" for i in range(1, 31)))
    r = run_journal(env, 0, since="1 hour ago", errors=False, follow=False)
    assert r.stdout.splitlines() == ["line 29 ok", "line 30 ok"], r.stderr
    assert log.read_text().splitlines() == ["--no-pager -o short-iso -u bot.service --since 1 hour ago"]


def test_no_window_follows_with_journalctl_alone():
    """`-f -n N` without --since or --errors: journalctl's own last N, then
    new entries (no window, so no flaw and no cursor)."""
    assert log_command(a_host(), "journal", None, 2, False, None, True) == \
        "journalctl --no-pager -o short-iso -u bot.service -n 2 -f"


def test_a_hang_up_during_the_history_removes_the_cursor(journal):
    """The link dropped while the history ran: the pty's hang-up reaches the
    whole group and the trap removes the cursor's directory."""
    env, entries, _, runtime = journal
    entries.write_text("c1\tline error\n")
    f = Follow(["sh", "-c", log_command(a_host(), "journal", None, 2, True, None, True)],
               env=dict(env, HISTORY_N="1", STUB_SLEEP="30"))
    try:
        deadline = time.monotonic() + 20
        while not list(runtime.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(runtime.iterdir()), "the history never made its directory"
    finally:
        f.stop(signal.SIGHUP)
    deadline = time.monotonic() + 10  # the subshell's trap may run after the outer sh is gone
    while list(runtime.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(runtime.iterdir()) == []


def test_a_resumed_follow_reads_new_lines_only():
    """A reconnect's command (lines=0): no history, no cursor, no window
    (journalctl's `--since W -n 0 -f` would print the window at the first
    new entry on some versions)."""
    cmd = log_command(a_host(), "journal", None, 0, True, None, True)
    assert cmd.startswith("journalctl --no-pager -o short-iso -u bot.service -n 0 -f | grep --line-buffered -i ")
    assert "mktemp" not in cmd and "--since" not in cmd
    cmd = log_command(a_host(logs={"update": "/var/log/u.log"}), "update", None, 0, True, None, True)
    assert cmd.startswith("tail -q -n 0 -F /var/log/u.log 2>/dev/null | grep --line-buffered -i ")


def test_logs_follow_since_on_the_update_log(sandbox):
    """`--since` on a file (issue #24's other case): a file's lines carry no
    time, so --since leaves it whole and says so; `-f -n 2` shows its last 2
    lines, then each new one, none twice: `tail -n 2 -F` has no window."""
    log = sandbox.home.parent / "log" / "update.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(thirty_lines())
    f = Follow([sys.executable, "-u", "-m", "fabops.cli", "logs", "-i", str(sandbox.inventory), "--source", "update",
                "-f", "--since", "1 hour ago", "-n", "2"], env=dict(os.environ, COLUMNS="200"))
    try:
        assert [f.line(60), f.line()] == ["local | line 29 ok", "local | line 30 ok"]
        with log.open("a") as out:
            out.write("line 31 ok\n")
        assert f.line() == "local | line 31 ok"
        assert f.quiet(1.0) == b""
    finally:
        f.stop(signal.SIGINT)
    assert f.proc.returncode == 0
    assert "--since applies to journal logs only; showing the last 2 lines of the update log" in \
        f.proc.stderr.read().decode()


def test_logs_follow_errors_on_the_update_log(sandbox):
    """The whole task on a sandbox host: `logs -f --errors -n 2` on an
    update log of 30 lines with 3 errors early on shows the last 2 errors,
    then a new error line; a new line without an error is not shown."""
    log = sandbox.home.parent / "log" / "update.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(thirty_lines())
    f = Follow([sys.executable, "-u", "-m", "fabops.cli", "logs", "-i", str(sandbox.inventory), "--source", "update",
                "-f", "--errors", "-n", "2"], env=dict(os.environ, COLUMNS="200"))
    try:
        assert [f.line(60), f.line()] == ["local | line 5 ERROR boom", "local | line 7 ERROR boom"]
        with log.open("a") as out:
            out.write("line 31 ok\n")
            out.flush()
            out.write("2026-12-07T10:00:00+0000 [cron cron@h] ROLLED_BACK 1111 -> 2222 in 1.0s: bot crashed\n")
        assert f.line().endswith("ROLLED_BACK 1111 -> 2222 in 1.0s: bot crashed")
        assert f.quiet(1.0) == b""
    finally:
        f.stop(signal.SIGINT)
    assert f.proc.returncode == 0, f.proc.stderr.read().decode()
    assert run_cli("logs", "-i", str(sandbox.inventory), "--source", "update", "--errors", "-n", "1").stdout \
        .endswith("bot crashed\n")
