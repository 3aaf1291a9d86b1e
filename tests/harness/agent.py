"""The agent in tests: find it, stop it by its pid, check it is gone."""
import os
import signal
import socket
import time
from pathlib import Path
from typing import Optional


def agent_pid(runtime: Path) -> Optional[int]:
    """The pid of the agent serving `runtime`/fabops/agent.sock, asked over
    its socket (None when none answers)."""
    from fabops.agent import wire

    path = runtime / "fabops" / "agent.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)  # a wedged agent fails the test's teardown, never hangs it
    try:
        s.connect(str(path))
        wire.send(s, {"op": "status"})
        reply, _, _ = wire.recv(s)
        return reply["pid"] if reply else None
    except OSError:
        return None
    finally:
        s.close()


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1].startswith("Z")  # a zombie has ended
    except OSError:
        return True


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return gone(pid)


def stop_agent(runtime: Path) -> None:
    """Stop the agent of `runtime` (SIGTERM, its graceful stop; SIGKILL if it
    does not end)."""
    pid = agent_pid(runtime)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
