"""The client half of the agent: the `fabops` command's first step
(docs/architecture.md, "The agent").

Standard library only, so a forwarded command costs a Python start-up and
this module, not fabric, paramiko and rich. It hands the agent its argv,
directory, environment and its stdin, stdout and stderr themselves
(SCM_RIGHTS), so the run writes to the terminal directly; it forwards the
signals it gets (Ctrl-C, a resize, a hang-up) to the run, and exits with
the run's code. When the agent is off or cannot be reached, it returns
None and the command runs here, the same way."""
from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time
from typing import List, Optional

from . import where, wire

START_SECONDS = 15.0  # a cold agent imports everything before it listens
FIRST_REPLY_SECONDS = 10.0  # the run's pid: a fork away; past this the agent is stuck
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH)


TRIED = []  # this process asked the agent already (`fabops`): an `inv` task body does not ask again


def forward(argv: Optional[List[str]] = None, binary: str = "fabops") -> Optional[int]:
    """Run the command in the agent: its exit code, or None to run it here.
    `binary`: the program the run starts, `fabops` or Invoke's `inv`."""
    argv = list(sys.argv if argv is None else argv)
    if TRIED or where.why_off(argv) is not None:
        return None
    TRIED.append(binary)
    try:
        directory = where.ensure_dir(where.socket_dir())
        sock = connect(directory, start=True)
    except (OSError, TimeoutError) as exc:
        _note(f"running without the agent: {exc}")
        return None
    if sock is None:
        return None
    return _converse(sock, argv, binary)


def _note(text: str) -> None:
    """A line for --debug and FABOPS_DEBUG: the command still runs, the
    same way, so this is no warning."""
    if os.environ.get("FABOPS_DEBUG") or "--debug" in sys.argv or "-d" in sys.argv:
        print(f"fabops: agent: {text}", file=sys.stderr)


def connect(directory: str, start: bool) -> Optional[socket.socket]:
    """A connection to this user's agent (started first if `start` and
    none answers); None when there is none. The agent's uid is checked: a
    socket someone else's process listens on is never talked to."""
    path = where.socket_path(directory)
    sock = _dial(path)
    if sock is None and start:
        sock = _start(directory, path)
    if sock is not None:
        if wire.peer_uid(sock) != os.getuid():
            sock.close()
            raise PermissionError(f"{path} is served by another user's process")
    return sock


def _dial(path: str) -> Optional[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            return None  # none yet, or a stale socket of a killed agent (the new one replaces it)
        raise


def _start(directory: str, path: str) -> Optional[socket.socket]:
    """Start the agent (one at a time: a lock in the socket's directory),
    then wait for its socket, polling."""
    import fcntl
    import subprocess

    with open(os.path.join(directory, "start.lock"), "a") as lock:
        os.chmod(lock.name, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _dial(path)  # another client may have started it meanwhile
        if sock is not None:
            return sock
        devnull = subprocess.DEVNULL
        # from the directory holding this fabops package: `-m` imports it
        # from there first, so the agent runs this command's code (another
        # checkout's agent would be stale at once)
        subprocess.Popen([sys.executable, "-m", "fabops.agent"], stdin=devnull, stdout=devnull,
                         stderr=open(os.path.join(directory, "agent.log"), "a"), start_new_session=True,
                         close_fds=True, cwd=os.path.dirname(where.package_dir()), env=agent_env())
        deadline = time.monotonic() + START_SECONDS
        delay = 0.01
        while time.monotonic() < deadline:
            sock = _dial(path)
            if sock is not None:
                return sock
            time.sleep(delay)  # polling for the socket: the agent is importing
            delay = min(delay * 2, 0.1)
    raise TimeoutError(f"the agent did not answer on {path} within {START_SECONDS:g} s "
                       f"(see {os.path.join(directory, 'agent.log')})")


# What the agent process itself keeps of the environment that started it
# (a run gets its client's whole environment, request by request): no
# secret of the first command's lingers in the agent's /proc/PID/environ.
AGENT_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "SSH_AUTH_SOCK", "XDG_RUNTIME_DIR")


def agent_env() -> dict:
    return {k: v for k, v in os.environ.items()
            if (k in AGENT_ENV or k.startswith(("LC_", "FABOPS_", "PYTHON"))) and k != "FABOPS_AGENT_RUN"}


def _stdio() -> List[int]:
    """This process's 0, 1 and 2 (/dev/null for one that is closed)."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


class _Fallback(Exception):
    """The agent took the request but will not run it (stopping, no
    process to spare, gone before the run started): the command runs here."""


def _converse(sock: socket.socket, argv: List[str], binary: str, again: bool = True) -> Optional[int]:
    """Send the run; forward signals to it; its exit code (None: run here)."""
    forwarding = _Forwarding()
    try:
        wire.send(sock, _request(argv, binary, forwarding.ignored), fds=_stdio())
        sock.settimeout(FIRST_REPLY_SECONDS)
        header, _, _ = wire.recv(sock)
        if header is None or header.get("unavailable"):
            raise _Fallback(header.get("unavailable") if header else "the agent ended the request")
        if header.get("stale"):
            sock.close()
            return _again(argv, binary) if again else None
        sock.settimeout(None)
        forwarding.started(header["pid"])
        return _wait_for_exit(sock)
    except (_Fallback, OSError, wire.WireError) as exc:
        if forwarding.pid is not None:  # it ran: never run a command twice
            print(f"fabops: the agent's run ended without its exit code ({exc.__class__.__name__}); "
                  "see its log, `fabops agent status`", file=sys.stderr)
            return 70
        _note(f"running without the agent: {exc}")
        return None
    finally:
        forwarding.restore()
        sock.close()


def _request(argv: List[str], binary: str, ignored: List[int]) -> dict:
    try:
        foreground = os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        foreground = False
    return {"op": "run", "binary": binary, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
            "stamp": where.code_stamp(), "ignored": ignored, "foreground": foreground}


def _wait_for_exit(sock: socket.socket) -> int:
    while True:
        header, _, _ = wire.recv(sock)
        if header is None:
            raise wire.WireError("the connection ended")
        if "killed" in header:  # the run died of a signal: so does this process, as a direct run would
            signum = int(header["killed"])
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        if "exit" in header:
            return int(header["exit"])


class _Forwarding:
    """The client's signals, sent to the run's process group as a terminal
    sends them to its foreground job. A signal this process inherited as
    ignored (`nohup`, a background job's SIGINT) stays ignored, and the run
    ignores it too. Ctrl-Z stops the run, then this process; `fg` continues
    both. Before the run has started, Ctrl-C is an interrupt here."""

    def __init__(self):
        self.pid: Optional[int] = None
        self.saved = {sig: signal.getsignal(sig) for sig in FORWARDED + (signal.SIGTSTP, signal.SIGCONT)}
        self.ignored = [int(sig) for sig in FORWARDED if self.saved[sig] == signal.SIG_IGN]
        for sig in FORWARDED:
            if int(sig) not in self.ignored:
                signal.signal(sig, self._relay)
        if self.saved[signal.SIGTSTP] != signal.SIG_IGN:
            signal.signal(signal.SIGTSTP, self._stop)
        signal.signal(signal.SIGCONT, self._relay)

    def started(self, pid: int) -> None:
        self.pid = pid

    def _relay(self, signum, _frame) -> None:
        if self.pid is not None:
            _signal(self.pid, signum)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        elif signum != signal.SIGCONT:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _stop(self, _signum, _frame) -> None:
        if self.pid is not None:
            _signal(self.pid, signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)  # and SIGCONT (`fg`) continues the run through _relay

    def restore(self) -> None:
        for sig, handler in self.saved.items():
            try:
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            except (OSError, ValueError, TypeError):
                pass


def _again(argv: List[str], binary: str) -> Optional[int]:
    """The agent runs other code than this command's (fabops was upgraded or
    edited since it started): it has left the socket; start a new one, once
    (a second stale answer: the command runs here)."""
    try:
        sock = connect(where.socket_dir(), start=True)
    except (OSError, TimeoutError) as exc:
        _note(f"running without the agent: {exc}")
        return None
    return _converse(sock, argv, binary, again=False) if sock is not None else None


def _signal(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        pass
