"""Which processes this test session started are still running (#24: a
fresh-clone .ci/run left a sample `python3 app.py` under init, its working
directory deleted). Found by what this run gave them, never by name:

- MARKER, an environment variable pytest_configure sets to a value unique
  to this run, which every child inherits (a daemonized app, an sshd, a
  container's runtime keep it after they leave pytest's process tree and
  session, reparented to init);
- and pytest's own descendants, for a child started with an environment of
  its own (env={...} without os.environ).

Nothing else on this shared machine matches: another person's pytest has
its own value, and pytest itself and its threads are not children."""
from __future__ import annotations

import os
import signal
import time
from typing import Dict, List, Tuple

MARKER = "FABOPS_TEST_SESSION"


def _read(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as fh:
            return fh.read()
    except OSError:  # gone, or another user's (not ours either way)
        return b""


def _parent_and_state(pid: int) -> Tuple[int, str]:
    stat = _read(pid, "stat").decode(errors="replace")
    # pid (comm) state ppid ...: comm may hold spaces and parentheses
    rest = stat[stat.rfind(")") + 2:].split()
    return (int(rest[1]), rest[0]) if len(rest) > 1 else (0, "")


def leftovers(value: str, root: int) -> Dict[int, str]:
    """{pid: command line} of the live processes that carry MARKER=value in
    their environment or descend from `root` (this pytest), but `root`."""
    needle = f"{MARKER}={value}".encode()
    parents, states = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parents[int(entry)], states[int(entry)] = _parent_and_state(int(entry))
    found = {}
    for pid, state in states.items():
        if pid == root or state in ("Z", "X", ""):  # a zombie is already dead: its parent reaps it
            continue
        ours = needle in _read(pid, "environ").split(b"\0")
        up, seen = parents.get(pid, 0), set()
        while not ours and up > 1 and up not in seen:
            seen.add(up)
            ours = up == root
            up = parents.get(up, 0)
        if ours:
            found[pid] = _read(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace").strip() or f"[{pid}]"
    return found


def wait_for_none(value: str, root: int, timeout: float = 5.0) -> Dict[int, str]:
    """The leftovers once those still ending (a SIGTERM in flight at a
    fixture's last line) have had `timeout` seconds to go."""
    deadline = time.monotonic() + timeout
    while True:
        left = leftovers(value, root)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def end(pids: List[int]) -> None:
    """End what the check found (ours: it carries this run's marker or
    descends from it), by pid, so one failing run does not leave the next
    one a busy port."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        time.sleep(0.5)
