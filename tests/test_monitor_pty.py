"""`monitor --watch` on a real terminal (a pseudo-terminal), as a person
runs it: in the foreground, and in the background (`fabops monitor --watch
&`), each ended by SIGINT after two frames. The background case is the one
the kernel punishes: a background job that changes the terminal's settings
gets SIGTTOU and is stopped (it hung, #24), so `_quiet_keyboard` leaves the
terminal alone there. docs/monitor.md: Ctrl-C (SIGINT) ends it after the
refresh in flight, the last frame whole, exit code the last frame's (0-3),
no traceback. (test_small_outputs types ^C on the tty instead.)"""
import os
import pty
import select
import signal
import sys
import time

import pytest

WORDS = {"OK": 0, "WARNING": 1, "FAILED": 2, "UNKNOWN": 3}
TOP, BOTTOM = "╭".encode(), "╰".encode()


def state(pid: int) -> str:
    """The process' state letter in /proc (T: stopped, as by SIGTTOU)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


class Session:
    """A pty whose child runs `argv`: in the foreground (the terminal's
    process group), or `background=True` as a shell runs `cmd &`: the
    session leader (the shell) stays in the foreground and the command runs
    in a process group of its own, then the leader exits with its code."""

    def __init__(self, argv, background: bool):
        self.out = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: never back into pytest
            try:
                os.environ.update(COLUMNS="80", LINES="60", TERM="xterm-256color")
                if not background:
                    os.execv(argv[0], argv)
                job = os.fork()
                if job == 0:
                    os.setpgid(0, 0)  # a job of its own, not the terminal's foreground group
                    os.execv(argv[0], argv)
                os.setpgid(job, job)  # (both sides, as shells do: no race with the exec)
                os.write(1, f"JOB={job}\n".encode())
                _, status = os.waitpid(job, 0)
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)
            finally:
                os._exit(127)
        self.job = None if background else self.pid
        self.status = None

    def read(self, until, seconds: float, watch_stopped: bool = False) -> bool:
        """Read the terminal until `until(output)` or `seconds` pass (polled,
        never a fixed sleep); False when the child closed the pty first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if until(self.out):
                return True
            if self.job is None and b"JOB=" in self.out:
                self.job = int(self.out.split(b"JOB=")[1].split(b"\r")[0].split(b"\n")[0])
            if watch_stopped and self.job and state(self.job) == "T":
                raise AssertionError(f"the job was stopped (SIGTTOU?): {self.out[-800:]!r}")
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    return until(self.out)
                if not data:
                    return until(self.out)
                self.out += data
        return until(self.out)

    def wait(self, seconds: float) -> int:
        """The session leader's exit code, within `seconds` (a hang fails)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = status
                return os.waitstatus_to_exitcode(status)
            self.read(lambda out: False, 0.1, watch_stopped=True)  # drain, so a full pty never blocks it
        raise AssertionError(f"still running {seconds} s after SIGINT: {self.out[-800:]!r}")

    def close(self):
        for pid in (self.job, self.pid):
            if pid and self.status is None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.status is None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
        os.close(self.fd)


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_monitor_watch_ends_on_sigint_with_its_last_frame_whole(sandbox, background):
    assert sandbox.result()[0] == 0
    argv = [sys.executable, "-m", "fabops.cli", "monitor", "-H", "local", "-i", str(sandbox.inventory),
            "--watch", "1"]
    session = Session(argv, background)
    try:
        two = session.read(lambda out: out.count(BOTTOM) >= 2, 90, watch_stopped=background)
        assert two, f"fewer than two frames: {session.out[-2000:]!r}"
        assert session.job and state(session.job) not in ("T", ""), state(session.job)
        sent = len(session.out)
        os.kill(session.job, signal.SIGINT)  # as `kill -INT` (test_small_outputs types ^C)
        code = session.wait(60)
    finally:
        session.close()
    text = session.out.decode("utf-8", "replace")
    assert "Traceback" not in text and "^C" not in text, text[-2000:]
    assert code in WORDS.values(), (code, text[-2000:])
    # after SIGINT, Live's last redraw: one frame from its top border to its
    # bottom border, then the cursor shown again, and nothing more
    tail = session.out[sent:].decode("utf-8", "replace")
    assert tail.rstrip().endswith("\x1b[?25h"), repr(tail[-300:])
    last = text[text.rfind("╭"):]
    assert last.count("╭") == 1 and last.count("╰") == 1, repr(last)
    rows = [ln for ln in last.replace("\r", "").split("\n") if ln.strip()]
    assert rows[0].startswith("╭") and any(r.startswith("╰") for r in rows), repr(last)
    body = rows[1:next(i for i, r in enumerate(rows) if r.startswith("╰"))]
    assert body and all(r.startswith("│") and r.rstrip().endswith("│") for r in body), repr(last)
    # no doubled border: the line above the last frame is not a frame's top
    before = text[:text.rfind("╭")].replace("\r", "").rstrip("\n ").rsplit("\n", 1)[-1]
    assert "╭" not in before, repr(before)
    title = rows[0]
    assert [w for w in WORDS if w in title] == [w for w, c in WORDS.items() if c == code], (code, title)


def refreshing(pid: int) -> bool:
    """Whether `pid` has a child process: a local host's refresh is in
    flight (its monitor script runs as a child; nothing else does)."""
    import glob

    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as fh:
                if fh.read().split():
                    return True
        except OSError:
            pass
    return False


def until_refresh(pid: int, nth: int, poll, seconds: float = 90) -> None:
    """Return while `pid`'s `nth` refresh (1: the first) is in flight,
    polling its children every millisecond and `poll()` (draining output)."""
    seen, was, deadline = 0, False, time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = refreshing(pid)
        if now and not was:
            seen += 1
            if seen == nth:
                return
        was = now
        poll()
    raise AssertionError(f"no refresh #{nth} within {seconds} s (saw {seen})")


@pytest.mark.parametrize("nth", [3, 4])
def test_monitor_watch_sigint_mid_refresh_keeps_the_last_real_frame(sandbox, nth):
    """Trial #2: SIGINT to the whole process group (a terminal's Ctrl-C,
    `kill -INT -- -PGID`) while a refresh is in flight also ends the local
    host's monitor script half-way. The half read made a last frame of its
    own: FAILED, `no answer`, CPU ?, no deploy state, exit 2. The refresh
    in flight is dropped: the last frame is the healthy one before it, and
    the exit code is its (0)."""
    assert sandbox.result()[0] == 0
    argv = [sys.executable, "-m", "fabops.cli", "monitor", "-H", "local", "-i", str(sandbox.inventory),
            "--watch", "1"]
    session = Session(argv, background=False)
    try:
        until_refresh(session.pid, nth, lambda: session.read(lambda out: False, 0.001))
        os.killpg(session.pid, signal.SIGINT)
        code = session.wait(60)
    finally:
        session.close()
    text = session.out.decode("utf-8", "replace")
    assert "Traceback" not in text, text[-2000:]
    last = text[text.rfind("╭"):]
    assert last.count("╰") == 1, repr(last)
    title = last.replace("\r", "").split("\n", 1)[0]
    assert (code, "OK" in title) == (0, True), (code, last)
    for false in ("no answer", "not available yet", "CPU ?", "unknown"):
        assert false not in last, (false, last)


def piped(sandbox, nth, *extra, twice=False):
    """`monitor --watch 1` into pipes, in a process group of its own, sent
    SIGINT while its `nth` refresh is in flight (first to the process too
    with `twice`): (exit code, stdout, stderr)."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "fabops.cli", "monitor", "-H", "local", "-i",
                             str(sandbox.inventory), "--watch", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=dict(os.environ, COLUMNS="80"))
    try:
        until_refresh(proc.pid, nth, lambda: time.sleep(0.001))
        if twice:
            os.kill(proc.pid, signal.SIGINT)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out.decode(), err.decode()


def test_monitor_watch_json_sigint_delivered_twice_mid_refresh(sandbox):
    """Trial #2 in a pipe, as `timeout -s INT` sends it: to the process and
    again to its group, mid-refresh. One interrupt, not a second Ctrl-C
    (which exits 130 at once): the last JSON line is the last complete
    refresh, healthy, and the exit code is its."""
    import json

    assert sandbox.result()[0] == 0
    code, out, err = piped(sandbox, 3, "--json", twice=True)
    frames = [json.loads(line) for line in out.splitlines()]
    assert len(frames) >= 2 and "Traceback" not in err, (out, err)
    last = frames[-1]["hosts"]["local"]
    assert (code, frames[-1]["code"], last["deploy"] is not None) == (0, 0, True), (code, last)
    assert [s["http_status"] for s in last["services"]] == [200], last


def test_monitor_watch_sigint_before_the_first_frame(sandbox):
    """Trial #2: Ctrl-C during the first refresh leaves no frame to stand
    for the hosts: exit 130 (docs/errors.md, INTERRUPTED) and one line on
    stderr, never a frame from the cut-short read, never a traceback."""
    assert sandbox.result()[0] == 0
    assert piped(sandbox, 1) == (130, "", "fabops: interrupted before the first refresh ended: nothing to show\n")
