"""Commands on this machine without Invoke: the context the cron fast path
(host/fastpath.py) hands its Target.

`import invoke` loads all of Invoke, and with it unittest.mock and asyncio
(about 60 ms a poll, docs/architecture.md, "The cron fast path"). This is
the subset of an invoke.Context's `run` that Target.run uses, run the way
Invoke's Local runner runs it, so a command sees the same thing either way:
`/bin/bash -c` through subprocess's shell (Invoke's default shell), the
environment of this process plus the call's `env` or else the host's
`env` (a call's env replaces the host's, as Invoke's run options do),
output captured and decoded with the locale's encoding (`replace` on bad
bytes), and a `timeout` that raises CommandTimedOut (fanout.map_failure
reads it by name, as Invoke's). Two differences: a command given no input
reads end of file, where Invoke left it an open pipe nobody writes to (a
command that waited on it hung); and a command runs in a session of its
own, so a timeout (or Ctrl-C) kills all it started, where Invoke's kill of
the shell alone left its children running and the call waiting for them.
"""
from __future__ import annotations

import locale
import os
import signal
import subprocess
from typing import Any, Dict, Optional

SHELL = "/bin/bash"  # Invoke's `run.shell` on POSIX


class Result:
    """What Target and the host side read of an invoke Result."""

    def __init__(self, command: str, stdout: str, stderr: str, exited: int):
        self.command, self.stdout, self.stderr, self.exited = command, stdout, stderr, exited

    @property
    def return_code(self) -> int:
        return self.exited

    @property
    def ok(self) -> bool:
        return self.exited == 0

    @property
    def failed(self) -> bool:
        return not self.ok

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"<Result cmd={self.command!r} exited={self.exited}>"


class CommandTimedOut(Exception):
    """The command ran past its timeout and was killed (Invoke's name, so
    fanout.map_failure reports it as it does Invoke's: exit 3)."""

    def __init__(self, result: Result, timeout: float):
        super().__init__(f"command timed out after {timeout} s: {result.command}")
        self.result, self.timeout = result, timeout


class LocalContext:
    """`run(command, ...)` on this machine, for `connection: local` (the
    host's own host.yml); `env` is the host's, given to every command."""

    def __init__(self, env: Optional[Dict[str, str]] = None):
        self.env = dict(env or {})

    def run(self, command: str, *, hide: Any = True, warn: bool = True, in_stream: Any = False,
            encoding: Optional[str] = None, timeout: Optional[float] = None,
            env: Optional[Dict[str, str]] = None) -> Result:
        if hide is not True or not warn:
            raise TypeError("LocalContext.run captures output and returns failures (hide=True, warn=True)")
        full = dict(os.environ, **(self.env if env is None else env))
        data = None
        if in_stream is not False:  # Target's Feed: text until ""
            data = "".join(iter(in_stream.read, ""))
        encoding = encoding or locale.getpreferredencoding(False)
        # A session (and process group) of its own, so a timeout ends the
        # whole command: killing the shell alone left a child it forked
        # (`cd app && git fetch`) holding the pipes, and communicate()
        # waited for that child however long it ran.
        # [bash, -c, command]: what Invoke's Local runner runs. The command
        # is one Cmd, built and quoted by shell.sh; no second shell wraps it
        proc = subprocess.Popen([SHELL, "-c", command], env=full, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                stdin=subprocess.DEVNULL if data is None else subprocess.PIPE)
        stdin = None if data is None else data.encode(encoding)
        expired = False
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            expired = True
            _kill_group(proc)
            out, err = proc.communicate()
        except BaseException:
            # Ctrl-C (a SIGINT to the terminal's foreground group) no longer
            # reaches a command in its own session: end it here, so Ctrl-C on
            # a cron line run by hand still stops what it started
            _kill_group(proc)
            proc.communicate()
            raise
        result = Result(command, out.decode(encoding, "replace"), err.decode(encoding, "replace"), proc.returncode)
        if expired:
            raise CommandTimedOut(result, timeout)
        return result


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's process group (its own session: the shell and
    every child it forked); the caller reaps the shell."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()  # the group is gone (or never formed): the shell alone, if still there
