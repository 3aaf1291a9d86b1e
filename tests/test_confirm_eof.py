"""Ctrl-D at a confirmation prompt is a no, as Enter is: `fabops:
cancelled: nothing was changed`, exit 64 (new-user trial: `fabops: the connection failed: `
with no reason, exit 3, and an EOFError traceback under --debug)."""
import os
import sys

import pytest

from tests.test_monitor_pty import Session


def _answer_eof(argv):
    """Run `argv` on a pseudo-terminal (test_monitor_pty's Session), type
    Ctrl-D at its `[y/N]` prompt; (exit code, output)."""
    session = Session(argv, background=False)
    try:
        asked = session.read(lambda out: b"[y/N] " in out, 90)
        text = session.out.decode("utf-8", "replace")
        assert asked, text
        os.write(session.fd, b"\x04")
        code = session.wait(60)
    finally:
        session.close()
    return code, session.out.decode("utf-8", "replace").replace("\r\n", "\n")


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
    assert text.rstrip().endswith("[y/N] \nfabops: cancelled: nothing was changed"), text
    assert "Traceback" not in text and "connection failed" not in text, text


def test_restore_env_of_the_current_env_asks_nothing(sandbox):
    """Trial: restore-env asked "Restore … and restart the services [y/N]",
    then found that the backup matches the current .env (its dry run knew
    before). It decides first: nothing to restore, no question, exit 0, on
    a terminal and without one."""
    import json

    from tests.conftest import run_cli

    inv = str(sandbox.inventory)
    name = json.loads(run_cli("backup-env", "-i", inv, "--json").stdout)["hosts"]["local"]["name"]
    session = Session([sys.executable, "-m", "fabops.cli", "restore-env", "-i", inv, "-b", name], background=False)
    try:
        code = session.wait(90)
    finally:
        session.close()
    text = session.out.decode("utf-8", "replace").replace("\r\n", "\n")
    assert (code, text) == (0, "[local] nothing to restore: the backup matches the current .env\n"), text
    r = run_cli("restore-env", "-i", inv, "-b", name)  # no TTY, no --yes: nothing to refuse either
    assert (r.returncode, r.stdout) == (0, "[local] nothing to restore: the backup matches the current .env\n"), r
    r = run_cli("restore-env", "-i", inv, "-b", name, "--json")
    assert json.loads(r.stdout)["hosts"]["local"] == {"diff": {"added": [], "removed": [], "changed": [], "same": True},
                                                      "restored": False, "services": []}, r.stdout
    assert not list(sandbox.home.glob("services/*.pid")), "a service was (re)started"
