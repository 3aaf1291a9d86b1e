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
bytes), and a `timeout` that kills the shell and raises CommandTimedOut
(fanout.map_failure reads it by name, as Invoke's). One difference: a
command given no input reads end of file, where Invoke left it an open
pipe nobody writes to (a command that waited on it hung).
"""
from __future__ import annotations

import locale
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
        import os

        full = dict(os.environ, **(self.env if env is None else env))
        data = None
        if in_stream is not False:  # Target's _Feed: text until ""
            data = "".join(iter(in_stream.read, ""))
        encoding = encoding or locale.getpreferredencoding(False)
        proc = subprocess.Popen(command, shell=True, executable=SHELL, env=full, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL if data is None else subprocess.PIPE)
        stdin = None if data is None else data.encode(encoding)
        expired = False
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            expired = True
            proc.kill()  # the shell, as Invoke's Local.kill
            out, err = proc.communicate()
        result = Result(command, out.decode(encoding, "replace"), err.decode(encoding, "replace"), proc.returncode)
        if expired:
            raise CommandTimedOut(result, timeout)
        return result
