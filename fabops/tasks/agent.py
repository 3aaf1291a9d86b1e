"""`fabops agent status|stop|forget HOST`: the per-user agent that keeps
imports warm and SSH transports open (fabops/agent/, docs/architecture.md,
"The agent"). The agent starts by itself on a command's first use; these
look at it and end it."""
from __future__ import annotations

import time

from invoke import Collection

from ..errors import UsageError
from ..host.record import counted
from ._base import fabops_task, print_text

ACTIONS = ("status", "stop", "forget")
USAGE = """Usage: fabops agent ACTION (or inv agent ACTION)

Your agent keeps fabops' imports warm and SSH transports open, so each
command is one round trip (docs/agent.md). It starts on a command's first
use and ends after 10 idle minutes.

  status              its pid, socket, log, and the hosts it holds open
  stop                end it now (runs in flight finish first)
  forget -H HOSTS     close its transports to these hosts

FABOPS_AGENT=0 turns it off; FABOPS_AGENT=1 turns it on where it is off."""


@fabops_task(positional=["action"], help={
    "action": "status: what the agent holds; stop: end it now; "
              "forget: close its transports to the hosts -H names",
    "hosts": "forget: the hosts whose transports to close (names, comma-separated)",
})
def agent(c, action=None, hosts=None):
    """Show or end your agent: warm imports and open SSH transports that make each command one round trip."""
    if action in ("-h", "--help"):  # Invoke hands a flag after `agent` to the action (a trial: exit 64)
        print_text(USAGE)
        return
    if action not in ACTIONS:
        raise UsageError(f"agent: unknown action {action!r}; known: {', '.join(ACTIONS)} (`fabops agent --help`)")
    if action == "forget" and not hosts:
        raise UsageError("agent forget needs the hosts whose transports to close: `fabops agent forget -H HOST`")
    from ..agent import client, where

    from ..agent.where import why_off

    directory = where.socket_dir()
    sock = client.connect(directory, start=False) if _exists(directory) else None
    if sock is None:
        off = why_off(["fabops", "status"])
        print_text(_off_line(off) if off else "agent: not running; it starts on a command's first use")
        return
    if action == "forget":
        sock.close()
        for name in [h.strip() for h in hosts.split(",") if h.strip()]:
            forgot = _ask(client.connect(directory, start=False), {"op": "forget", "host": name}).get("forgot")
            print_text(f"agent: closed the transport to {name}" if forgot else f"agent: no transport to {name}")
        return
    reply = _ask(sock, {"op": action})
    if action == "status":
        _show(reply)
    else:
        _wait_gone(where.socket_path(directory))
        runs = reply.get("runs") or 0
        print_text(f"agent: stopped (pid {reply.get('pid')})" if not runs else
                   f"agent: stopping (pid {reply.get('pid')}): it ends when its {counted(runs, 'run')} in flight "
                   "end; a new command starts a new agent")


def _off_line(off: str) -> str:
    """Why no command here starts the agent, and how to have it: "it starts
    on a command's first use" beside "off" said two things at once."""
    if off == "FABOPS_AGENT=0":
        how = "unset FABOPS_AGENT (or set FABOPS_AGENT=1) to use it"
    elif off.startswith("no SO_PEERCRED"):
        how = "it cannot run on this system"
    else:  # no terminal, CI, an SSH login: asked for by name, it runs
        how = "FABOPS_AGENT=1 turns it on here"
    return f"agent: off here ({off}): commands run without it; {how}"


def _ask(sock, request: dict) -> dict:
    from ..agent import wire

    try:
        wire.send(sock, request)
        reply, _, _ = wire.recv(sock)
    finally:
        sock.close()
    return reply or {}


def _exists(directory: str) -> bool:
    import os

    return os.path.isdir(directory)


def _show(s: dict) -> None:
    from .render import fmt_duration

    now = time.time()
    print_text(f"agent: pid {s['pid']}, up {fmt_duration(now - s['since'])}, ends after "
               f"{fmt_duration(s['idle_timeout'])} idle; {s['runs']} running")
    print_text(f"socket: {s['socket']}")
    print_text(f"log: {s['log']}")
    transports = s.get("transports") or []
    if not transports:
        print_text("no open transports")
        return
    for t in transports:
        more = f" ({t['transports']} transports)" if t.get("transports", 1) > 1 else ""
        print_text(f"  {t['host']}  {'open' if t['alive'] else 'dead'}{more}  since {fmt_duration(now - t['since'])} "
                   f"ago, last used {fmt_duration(now - t['last_used'])} ago, {t['channels']} channels")


def _wait_gone(path: str, seconds: float = 5.0) -> None:
    import os

    deadline = time.monotonic() + seconds
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling for the agent to remove its socket


ns = Collection("agent", agent)
