"""Ctrl-D at a confirmation prompt is a no, as Enter is: `fabops:
cancelled`, exit 64 (new-user trial: `fabops: the connection failed: `
with no reason, exit 3, and an EOFError traceback under --debug)."""
import os
import pty
import select
import signal
import sys
import time

import pytest


def _answer_eof(argv):
    """Run `argv` on a pseudo-terminal, type Ctrl-D at its `[y/N]` prompt;
    (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: fabops on the terminal (never back into pytest)
        try:
            os.environ.update(COLUMNS="80", TERM="xterm")
            os.execv(sys.executable, argv)
        finally:
            os._exit(127)
    out, sent, start, status = b"", False, time.monotonic(), None
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
            if not sent and b"[y/N] " in out:
                os.write(fd, b"\x04")
                sent = True
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:  # still running (a hang): end it, pass or fail
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode("utf-8", "replace").replace("\r\n", "\n")
    assert sent, text
    return os.waitstatus_to_exitcode(status), text


@pytest.mark.parametrize("task", [("reset",), ("restore-env", "--backup")])
def test_ctrl_d_at_a_confirmation_is_cancelled(sandbox, task):
    import json

    from tests.conftest import run_cli

    inv = str(sandbox.inventory)
    words = list(task)
    if words[-1] == "--backup":  # a backup that differs from .env, so the restore asks
        words.append(json.loads(run_cli("backup-env", "-i", inv, "--json").stdout)["hosts"]["local"]["name"])
        env = sandbox.app / ".env"
        env.write_text(env.read_text() + "NEW_KEY=1\n")
    code, text = _answer_eof([sys.executable, "-m", "fabops.cli", words[0], "-i", inv, "-H", "local",
                              *words[1:]])
    assert code == 64, text
    assert text.rstrip().endswith("[y/N] \nfabops: cancelled"), text
    assert "Traceback" not in text and "connection failed" not in text, text
