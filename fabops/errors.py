"""Exit codes and the one error hierarchy of fabops.

Library code raises these; the task layer (fabops.tasks._base) turns them into
one line on stderr and the exit code below. Runs on the host too (Python 3.9).
"""
from __future__ import annotations

from typing import Optional

# Exit codes: docs/architecture.md, "Exit codes". `monitor` and `health` use 0-3 as Nagios does.
OK = 0
WARNING = 1
FAILED = 2
UNREACHABLE = 3
LOCKED = 4
BROKEN = 5
USAGE = 64  # EX_USAGE
INTERNAL = 70  # EX_SOFTWARE: a bug in fabops, never a state of the host
CONFIG = 78  # EX_CONFIG
CLOSED_PIPE = 141  # 128 + SIGPIPE: stdout's reader went away (`| head`); no traceback
INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C at any point: `fabops: interrupted`, one line, no traceback



def quiet_closed_pipe() -> None:
    """stdout's reader went away (`fabops history | head`): stop without a
    traceback. Later writes, including the interpreter's final flush, go to
    /dev/null. Exit 141 is what a shell reports for a pipe-killed command."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    raise SystemExit(CLOSED_PIPE)


def stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it. A task that
    prints from a fan-out worker (setup's items, deploy's steps) gets its
    BrokenPipeError there, where a lost connection raises one too: only
    this tells `| head` from a dead host (docs/errors.md, exit 141). A pipe
    with no reader polls as an error; a terminal or a file never does."""
    import select
    import sys

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or a stdout with no descriptor
        return False


NAMES = {
    OK: "OK",
    WARNING: "WARNING",
    FAILED: "FAILED",
    UNREACHABLE: "UNREACHABLE",
    LOCKED: "LOCKED",
    BROKEN: "BROKEN",
    USAGE: "USAGE",
    INTERNAL: "INTERNAL",
    CONFIG: "CONFIG",
}

# When several hosts answer, the worst code wins. Nagios ranks CRITICAL over
# WARNING over UNKNOWN (2 > 1 > 3 > 0); BROKEN, and errors that are not about a
# host at all, outrank everything.
_SEVERITY = [OK, LOCKED, UNREACHABLE, WARNING, FAILED, BROKEN, USAGE, CONFIG, INTERNAL]


def worst(codes) -> int:
    """Return the most severe of several exit codes (OK for none)."""
    best = OK
    for code in codes:
        rank = _SEVERITY.index(code) if code in _SEVERITY else len(_SEVERITY)
        if rank > (_SEVERITY.index(best) if best in _SEVERITY else len(_SEVERITY)):
            best = code
    return best


class FabopsError(Exception):
    """Base of every error fabops reports to a person. The message is one
    line (a ConfigError may carry several, one per problem in the file)."""

    exit_code = FAILED

    def __init__(self, message: str, *, host: str | None = None):
        super().__init__(message)
        self.message = message
        self.host = host

    def __str__(self) -> str:
        return f"{self.host}: {self.message}" if self.host else self.message


class UsageError(FabopsError):
    """A bad flag value, an unknown host, no TTY for a confirmation."""

    exit_code = USAGE


class ConfigError(FabopsError):
    """hosts.yml (or host.yml) is wrong. Names the file and the key path."""

    exit_code = CONFIG

    def __init__(self, path: str, key: str, problem: str):
        where = f"{path}: {key}" if key else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.key = key
        self.problem = problem
        self.problems = [(key, problem)]

    @classmethod
    def many(cls, path: str, problems) -> "ConfigError":
        """Every problem found in one file: the first is `key`/`problem`, and
        the message has one `FILE: KEY: problem` line per problem."""
        first = cls(path, *problems[0])
        first.problems = list(problems)
        first.message = "\n".join(str(cls(path, k, p)) for k, p in problems)
        first.args = (first.message,)
        return first


class UnreachableError(FabopsError):
    """Cannot connect, authenticate or trust the host; or the link was lost."""

    exit_code = UNREACHABLE


class HostKeyError(UnreachableError):
    """The host's key is unknown or has changed."""


class SudoError(UnreachableError):
    """`sudo -n` needed a password: a sudoers rule is missing."""


class LockedError(FabopsError):
    """Another run holds the host's lock."""

    exit_code = LOCKED


class CommandFailed(FabopsError):
    """A command on the host failed; the message carries its last stderr line."""

    exit_code = FAILED

    @classmethod
    def from_result(cls, what: str, result, host: Optional[str] = None) -> "CommandFailed":
        """`WHAT failed: <the last line it printed>` (stderr first), or the
        exit code when it printed nothing: the one format for every command."""
        lines = [ln for ln in (result.stderr or result.stdout or "").strip().splitlines() if ln.strip()]
        return cls(f"{what} failed: {lines[-1] if lines else 'exit ' + str(result.exited)}", host=host)
