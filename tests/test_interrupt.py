"""Ctrl-C (SIGINT to the process group, as a terminal sends it) ends a run
with exit 130 and one line on stderr, `fabops: interrupted`, no traceback
(docs/errors.md), on both paths: cron's fast path (host/fastpath.py: its
local-update and health) and a task run through Invoke's Program, which
turned a KeyboardInterrupt into a silent exit 1 (so did the fast path,
copying it). Each case is a real `fabops` process interrupted at a point
it is known to have reached (polled for, never slept for), but for
Invoke's parse steps: a few milliseconds, so each raises the interrupt
in-process."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from fabops import errors
from fabops.host.report import INTERRUPTED_LINE
from tests.conftest import ROOT

DEADLINE = 90.0


class Fabops:
    """`fabops ARGS` in a session of its own (its process group is the
    terminal's foreground group a Ctrl-C reaches); killed if still there
    at the end."""

    def __init__(self, *args, fast: bool = True, python=("-m", "fabops.cli")):
        env = {k: v for k, v in os.environ.items() if k not in ("FABOPS_FASTPATH", "FABOPS_DEBUG")}
        if not fast:
            env["FABOPS_FASTPATH"] = "0"  # the full program, through Invoke
        self.proc = subprocess.Popen([sys.executable, *python, *args], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)

    def wait_for(self, ready) -> None:
        deadline = time.monotonic() + DEADLINE
        while not ready():
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "never got there"
            time.sleep(0.05)

    def ctrl_c(self):
        """SIGINT to its process group: (exit code, stdout, stderr)."""
        os.killpg(self.proc.pid, signal.SIGINT)
        out, err = self.proc.communicate(timeout=DEADLINE)
        return self.proc.returncode, out, err

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def assert_interrupted(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert (code, err) == (errors.INTERRUPTED, INTERRUPTED_LINE + "\n"), (code, err)


def slow_rule(sandbox) -> str:
    """The host's dependency rule records its pid in a file and then
    takes a minute: (the file)."""
    started = sandbox.base / "rule.pid"
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["deps"] = [{"when": ["requirements.txt"], "run": f"echo $$ > {started}; exec sleep 60"}]
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(started)


def gone(pid: int) -> bool:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_during_crons_local_update_and_a_run_waiting_for_the_lock(sandbox):
    """cron's line (the fast path) is interrupted in a dependency rule; a
    person's `local-update --wait` (Invoke's program) while it waits for
    the lock that run holds."""
    started = slow_rule(sandbox)
    cron = Fabops("local-update", "-i", str(sandbox.inventory), "--trigger", "cron")
    person = None
    try:
        cron.wait_for(lambda: os.path.exists(started) and open(started).read().strip())
        person = Fabops("local-update", "-i", str(sandbox.inventory), "--trigger", "manual", "--wait", "60",
                        "--run-id", "waiter", fast=False)
        events = sandbox.home / "runs" / "waiter.jsonl"
        person.wait_for(lambda: events.exists() and "waiting for the lock held by" in events.read_text())
        assert_interrupted(*person.ctrl_c()[::2])
        code, out, err = cron.ctrl_c()
        assert_interrupted(code, err)
        assert gone(int(open(started).read())), "Ctrl-C left the rule's command running"
        # the next run finishes what the interrupted one started
        assert sandbox.state["in_progress"]["to"]
    finally:
        cron.end()
        if person is not None:
            person.end()
        end_rule(started)


def end_rule(started: str) -> None:
    """The rule's command, in a session of its own (a kill of cron's run
    misses it), if it is still that command."""
    try:
        pid = int(open(started).read())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if fh.read().split(b"\0")[:2] == [b"sleep", b"60"]:
                os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def test_ctrl_c_during_health_on_both_paths(sandbox):
    """`fabops health` (the fast path, then Invoke's program) interrupted
    while it waits for an HTTP check that never answers."""
    sandbox.result()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(DEADLINE)
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["services"][0]["check"] = {"url": f"http://127.0.0.1:{silent.getsockname()[1]}/health"}
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        for fast in (True, False):
            run = Fabops("health", "-i", str(sandbox.inventory), fast=fast)
            try:
                conn, _ = silent.accept()  # its check is waiting for an answer
                code, out, err = run.ctrl_c()
                conn.close()
                assert_interrupted(code, err)
            finally:
                run.end()
    finally:
        silent.close()


def test_ctrl_c_during_a_local_command_through_invoke(sandbox):
    """The full program (Invoke's Local runner) interrupted in a dependency
    rule: Invoke forwarded the Ctrl-C as a ^C on the command's stdin and
    waited on, so the command died and local-update carried on as if it
    had failed (its recovery, then `aborted`, exit 2)."""
    started = slow_rule(sandbox)
    run = Fabops("local-update", "-i", str(sandbox.inventory), "--trigger", "manual", fast=False)
    try:
        # the rule has started and Invoke polls it (a Ctrl-C while Invoke
        # still starts its reader threads always got through)
        run.wait_for(lambda: os.path.exists(started) and open(started).read().strip() and napping(run.proc.pid))
        code, out, err = run.ctrl_c()
        assert_interrupted(code, err)
        assert gone(int(open(started).read())), "Ctrl-C left the rule's command running"
        assert sandbox.state["in_progress"]["to"]  # the next run finishes it
    finally:
        run.end()
        end_rule(started)


def napping(pid: int) -> bool:
    """The process's main thread is in a sleep: time.sleep between a
    runner's polls of its command (Invoke's Runner.wait), not in the
    futex waits of starting the runner's threads."""
    try:
        with open(f"/proc/{pid}/task/{pid}/wchan") as fh:
            where = fh.read()
        with open(f"/proc/{pid}/task/{pid}/syscall") as fh:
            call = fh.read().split()[0]
    except OSError:
        return False
    return "nanosleep" in where or (os.uname().machine == "x86_64" and call == "230")  # clock_nanosleep


def test_a_remote_command_keeps_fabrics_interrupt():
    """Only the Local runner kills and re-raises: Fabric's Remote sends a
    pty's ^C over SSH (or raises without a pty), unchanged."""
    from fabric.runners import Remote
    from invoke.runners import Local

    from fabops.connection import timeout_runner

    assert timeout_runner(Remote).send_interrupt is Remote.send_interrupt
    assert timeout_runner(Local).send_interrupt is not Local.send_interrupt


# Invoke's steps before a task starts (Program.run: the config, the core
# flags, the task tree, the task's flags, --help/--list, the config again,
# the executor up to the task's body), each a few milliseconds.
STEPS = ("create_config", "parse_core", "parse_collection", "parse_tasks", "parse_cleanup", "update_config",
         "execute")


@pytest.mark.parametrize("step", STEPS)
def test_ctrl_c_while_invoke_parses(step, mocker, capsys):
    """Invoke's Program.run ends a KeyboardInterrupt as a silent exit 1;
    `fabops` says it as a task would. Too short a window for a real
    signal, so Invoke's step raises it."""
    from invoke import Program

    from fabops import __version__
    from fabops.tasks import ns
    from fabops.tasks.program import FabopsProgram

    mocker.patch.object(Program, step, side_effect=KeyboardInterrupt)
    program = FabopsProgram(namespace=ns, version=__version__, name="fabops", binary="fabops")
    with pytest.raises(SystemExit) as exited:
        program.run(["fabops", "hosts", "-i", str(ROOT / "hosts.yml")])
    assert_interrupted(exited.value.code, capsys.readouterr().err)


@pytest.mark.parametrize("step", STEPS[3:-1])
def test_ctrl_c_while_invoke_parses_under_inv(step, mocker, capsys):
    """Under `inv`, the steps after the task tree loads (serve_inv gives
    Invoke's program TaskProgram there); Invoke's own before then."""
    from invoke import Program

    from fabops.tasks import ns
    from fabops.tasks.program import TaskProgram

    mocker.patch.object(Program, step, side_effect=KeyboardInterrupt)
    with pytest.raises(SystemExit) as exited:
        TaskProgram(namespace=ns, binary="inv[oke]").run(["inv", "hosts", "-i", str(ROOT / "hosts.yml")])
    assert_interrupted(exited.value.code, capsys.readouterr().err)


# `fabops`'s steps before Invoke's program (fabops/cli.py): cron's fast
# path, the agent's client, the task tree
HELD = '''
import signal, sys
from fabops import cli

class Held:
    """Holds the import of {module} until a signal, once it has begun."""
    def find_spec(self, name, path, target=None):
        if name == {module!r}:
            open({ready!r}, "w").close()
            signal.pause()
        return None

sys.meta_path.insert(0, Held())
cli.main(["fabops", "hosts", "-i", {hosts!r}])
'''


@pytest.mark.parametrize("module", ("fabops.host.fastpath", "fabops.agent.client", "fabops.tasks.program"))
def test_ctrl_c_before_invokes_program(module, tmp_path):
    """Ctrl-C while `fabops` imports cron's fast path or the agent's client
    printed a traceback (only the task tree's import was covered)."""
    ready = tmp_path / "ready"
    code = HELD.format(module=module, ready=str(ready), hosts=str(ROOT / "hosts.yml"))
    run = Fabops(python=("-c", code))
    try:
        run.wait_for(ready.exists)
        code, out, err = run.ctrl_c()
        assert_interrupted(code, err)
        assert out == ""
    finally:
        run.end()
