"""Where the agent's socket lives and whether a command uses it.

Standard library only, and cheap: the `fabops` command asks this before it
imports anything else (docs/architecture.md, "The agent")."""
from __future__ import annotations

import os
import stat
from typing import Optional

OFF = ("0", "false", "no", "off")
ON = ("1", "true", "yes", "on")
# Commands that never go through the agent: `agent` talks to it itself;
# `local-update` is the host's own cron path; `demo` starts the sandbox's
# app, which must not end up a child of the agent.
DIRECT_TASKS = frozenset({"agent", "local-update", "demo"})


def why_off(argv) -> Optional[str]:
    """Why this command runs without the agent (None: it uses it). The
    agent is a laptop's: never in CI, under cron, in a service or in an SSH
    session's command (none of them has a controlling terminal), never when
    FABOPS_AGENT=0, never inside the agent itself. FABOPS_AGENT=1 asks for
    it where it would be off (no terminal, CI)."""
    env = os.environ
    asked = env.get("FABOPS_AGENT", "").strip().lower()
    if asked in OFF:
        return "FABOPS_AGENT=0"
    if env.get("FABOPS_AGENT_RUN"):
        return "inside the agent"
    task = first_task(argv)
    if task in DIRECT_TASKS:
        return f"`{task}` runs directly"
    import socket

    if not hasattr(socket, "SO_PEERCRED"):
        return "no SO_PEERCRED here (the agent checks its peers' uid with it: Linux)"
    if asked in ON:  # asked for by name: also without a terminal (a test, a script of a person's)
        return None
    from ..ci import in_ci

    if in_ci(env):
        return "CI"
    if env.get("SSH_CONNECTION"):
        return "an SSH login (a host's side: the agent is a laptop's)"
    if not has_terminal():
        return "no controlling terminal (cron, CI, a service)"
    return None


def first_task(argv) -> Optional[str]:
    """The first word of the command line that is not a flag or a flag's
    value, good enough to tell `agent`, `demo` and `local-update` apart."""
    takes_value = {"-H", "--hosts", "-i", "--inventory", "-c", "--collection", "-r", "--search-root", "-f",
                   "--config", "--hide", "--list-depth", "-D", "--list-format", "-F", "--print-completion-script",
                   "--command-timeout", "-T"}
    words = list(argv[1:])
    i = 0
    while i < len(words):
        w = words[i]
        if w in takes_value:
            i += 2
            continue
        if not w.startswith("-"):
            return w
        i += 1
    return None


def has_terminal() -> bool:
    """Whether this process has a controlling terminal: a person's shell,
    even with its output piped. Cron, systemd, CI runners and `ssh host cmd`
    have none."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def socket_dir() -> str:
    """A directory only this user can enter: $XDG_RUNTIME_DIR/fabops (the
    login's own tmpfs, gone at logout), or /tmp/fabops-agent-UID."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and _private(runtime, allow_group=False):
        return os.path.join(runtime, "fabops")
    return f"/tmp/fabops-agent-{os.getuid()}"


def ensure_dir(path: str) -> str:
    """Create `path` 0700, or check the one that is there is ours and
    private; raise PermissionError naming what is wrong (a directory made
    in /tmp by someone else must never receive our requests)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    if not _private(path, allow_group=False):
        st = os.lstat(path)
        raise PermissionError(f"{path} is not a private directory of uid {os.getuid()} "
                              f"(owner {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})")
    return path


def _private(path: str, allow_group: bool) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    loose = 0o022 if allow_group else 0o077
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & loose


def socket_path(directory: Optional[str] = None) -> str:
    return os.path.join(directory or socket_dir(), "agent.sock")


def idle_seconds() -> float:
    """How long the agent waits for a request before it ends
    (FABOPS_AGENT_IDLE, seconds; 10 minutes by default)."""
    try:
        return max(1.0, float(os.environ.get("FABOPS_AGENT_IDLE") or 600))
    except ValueError:
        return 600.0


def package_dir() -> str:
    """This fabops package's directory."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_stamp() -> str:
    """Which fabops this is: its directory and the newest mtime of its
    modules. An agent started before an upgrade (or an edit, in a checkout)
    runs the old code; a client whose stamp differs makes it step aside
    (server.py). A few dozen stat calls: well under a millisecond."""
    root = package_dir()
    newest = 0
    stack = [root]
    while stack:
        for entry in os.scandir(stack.pop()):
            if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                stack.append(entry.path)
            elif entry.name.endswith(".py"):
                newest = max(newest, entry.stat().st_mtime_ns)
    return f"{root}:{newest}"


def foreground(fd: int) -> bool:
    """Whether this process is its terminal's foreground job. In a run of
    the agent's (another session than the terminal's) the client asked for
    it and passed the answer on."""
    if os.environ.get("FABOPS_AGENT_RUN"):
        return os.environ.get("FABOPS_AGENT_FOREGROUND") == "1"
    return os.tcgetpgrp(fd) == os.getpgrp()
