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
        env = dict(os.environ)
        env.pop("FABOPS_AGENT_RUN", None)
        devnull = subprocess.DEVNULL
        subprocess.Popen([sys.executable, "-m", "fabops.agent"], stdin=devnull, stdout=devnull,
                         stderr=open(os.path.join(directory, "agent.log"), "a"), start_new_session=True,
                         close_fds=True, cwd="/", env=env)
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


def _converse(sock: socket.socket, argv: List[str], binary: str) -> int:
    """Send the run; forward signals to it; its exit code."""
    request = {"op": "run", "binary": binary, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
               "stamp": where.code_stamp()}
    pending: List[int] = []
    run_pid: List[int] = []

    def relay(signum, _frame):
        if run_pid:
            _signal(run_pid[0], signum)
        else:
            pending.append(signum)

    for sig in FORWARDED:
        signal.signal(sig, relay)
    try:
        wire.send(sock, request, fds=_stdio())
        while True:
            header, _, _ = wire.recv(sock)
            if header is None:
                break
            if header.get("stale"):
                return _again(argv, binary)
            if "pid" in header:
                run_pid.append(header["pid"])
                for signum in pending:
                    _signal(run_pid[0], signum)
            if "exit" in header:
                if header.get("error"):
                    print(f"fabops: agent: {header['error']}", file=sys.stderr)
                return int(header["exit"])
    except (OSError, wire.WireError) as exc:
        print(f"fabops: the agent's run ended without its exit code ({exc.__class__.__name__}); "
              "see its log, `fabops agent status`", file=sys.stderr)
        return 70
    finally:
        sock.close()
    print("fabops: the agent's run ended without its exit code; see its log, `fabops agent status`",
          file=sys.stderr)
    return 70


def _again(argv: List[str], binary: str) -> Optional[int]:
    """The agent runs other code than this command's (fabops was upgraded or
    edited since it started): it has left the socket; start a new one."""
    try:
        sock = connect(where.socket_dir(), start=True)
    except (OSError, TimeoutError) as exc:
        _note(f"running without the agent: {exc}")
        return None
    return _converse(sock, argv, binary) if sock is not None else None


def _signal(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        pass
