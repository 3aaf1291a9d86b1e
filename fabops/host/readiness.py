"""Poll a service until it is ready, never sleep a fixed time (docs/migration.md, defect 4).

Ready means, in order:
1. the unit is active and its main PID alive (polled about every 200 ms);
2. its port is listening (about every 200 ms);
3. its HTTP check answers the expected status. The check may have side
   effects (the bot's webhook is a POST), so it is retried with backoff,
   never fired every 200 ms;
4. it stays up, with the same PID, through the settle window.

A process that dies at any point fails at once instead of waiting for the
timeout. Runs on the host (ports and URLs are the host's own loopback); the
HTTP check is host/httpcheck.py, the same code the agentless path runs.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from ..inventory import Check, Service
from . import httpcheck
from .services import ServiceManager

POLL = 0.2
# The HTTP check may have side effects (a POST webhook): back off to 4 s, so
# a check that keeps failing fires about 15 times a minute, not 300.
BACKOFF = (0.5, 1.0, 2.0, 4.0)
# During the watch window: process state every half second (a fork of
# `systemctl show` or a pidfile read), the HTTP check every 5 s.
WATCH_POLL = 0.5
WATCH_HTTP_EVERY = 5.0


@dataclass
class Readiness:
    service: str
    ok: bool
    phase: str  # active | port | http | settle | ready
    message: str
    seconds: float = 0.0
    pid: Optional[int] = None
    http_status: Optional[int] = None
    requests: int = 0  # HTTP checks fired (they may have side effects)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalProbe:
    """Port and HTTP checks from the host itself (the pipeline runs there)."""

    def port_open(self, port: int) -> bool:
        return port_open(port)

    def http(self, check: Check) -> Tuple[Optional[int], str, float]:
        return httpcheck.run(check)


def wait_ready(
    manager: ServiceManager,
    svc: Service,
    timeout: Optional[float] = None,
    settle: Optional[float] = None,
    progress: Optional[Callable[[str], None]] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    probe=None,
) -> Readiness:
    timeout = svc.timeout if timeout is None else timeout
    settle = svc.settle if settle is None else settle
    started = clock()
    deadline = started + timeout
    say = progress or (lambda _msg: None)
    probe = probe or LocalProbe()

    requests = [0]

    def result(ok: bool, phase: str, message: str, pid=None, status=None) -> Readiness:
        return Readiness(svc.name, ok, phase, message, clock() - started, pid, status, requests[0])

    # 1. active with a live main PID
    pid = None
    last_state = "unknown"
    while True:
        st = manager.status([svc])[svc.name]
        last_state = st.state
        if st.active and st.pid:
            pid = st.pid
            break
        if st.state in ("failed", "stale") or (svc.manager == "process" and st.state == "inactive"):
            return result(False, "active", f"{svc.name} exited during start-up: {_said(st.state)}")
        if clock() >= deadline:
            return result(False, "active", f"{svc.name} not active after {timeout:g} s ({_said(last_state)})")
        sleep(POLL)
    say(f"{svc.name} active, pid {pid}")

    def still_alive() -> Optional[Readiness]:
        st = manager.status([svc])[svc.name]
        if not (st.active and st.pid):
            return result(False, "settle", f"{svc.name} died after starting: {_said(st.state)}", pid)
        if st.pid != pid:
            return result(False, "settle", f"{svc.name} restarted on its own (pid {pid} -> {st.pid}): crash loop", pid)
        return None

    # 2. port listening
    if svc.port:
        while not probe.port_open(svc.port):
            dead = still_alive()
            if dead:
                return dead
            if clock() >= deadline:
                return result(False, "port", f"{svc.name}: port {svc.port} not listening after {timeout:g} s", pid)
            sleep(POLL)
        say(f"{svc.name} listening on {svc.port}")

    # 3. HTTP check with backoff; the same wrong answer again and again is
    #    a deterministic failure: fail early instead of at the timeout
    status = None
    if svc.check is not None:
        check = svc.check
        attempt = 0
        same, same_count, same_since = None, 0, 0.0
        while True:
            status, detail, _lat = probe.http(check)
            requests[0] += 1
            if status == check.expect:
                break
            if status is not None and status == same:
                same_count += 1
            else:
                same, same_count, same_since = status, 1, clock()
            dead = still_alive()
            if dead:
                dead.http_status = status
                dead.requests = requests[0]
                return dead
            if same is not None and same_count >= check.fail_count and clock() - same_since >= check.fail_window:
                return result(
                    False, "http",
                    f"{svc.name}: {check.method} {check.url} gave HTTP {same} {same_count} times in a row over "
                    f"{clock() - same_since:.0f} s, expected {check.expect}: a deterministic failure, not a slow start",
                    pid, status,
                )
            if clock() >= deadline:
                return result(
                    False, "http",
                    f"{svc.name}: {svc.check.method} {svc.check.url} gave {detail}, expected {svc.check.expect}",
                    pid, status,
                )
            sleep(min(BACKOFF[min(attempt, len(BACKOFF) - 1)], max(0.0, deadline - clock())))
            attempt += 1
        say(f"{svc.name} check {svc.check.method} {svc.check.url}: HTTP {status}")

    # 4. settle: the same process must stay up for a moment
    settle_end = clock() + settle
    while clock() < settle_end:
        dead = still_alive()
        if dead:
            dead.http_status = status
            dead.requests = requests[0]
            return dead
        sleep(min(POLL, max(0.0, settle_end - clock())))
    dead = still_alive()
    if dead:
        dead.requests = requests[0]
        return dead
    return result(True, "ready", f"{svc.name} ready", pid, status)


def watch(
    manager: ServiceManager,
    services: List[Service],
    progress: Optional[Callable[[str], None]] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    probe=None,
    ended: Optional[Callable[[], Optional[str]]] = None,
) -> Readiness:
    """After the gate: keep checking each service until its own watch window
    ends, or until `ended()` names who ended the watch (a rollback, reset or
    restart: phase "ended", no verdict on the commit). The gate proves that a service started; the watch proves that it
    stays up. Fails on a death, a restart behind our back (a crash loop under
    systemd's Restart=), a closed port, or two failed HTTP checks in a row
    (one may be a pause; two, five seconds apart, are not)."""
    probe = probe or LocalProbe()
    say = progress or (lambda _msg: None)
    started = clock()
    watched = [s for s in services if s.watch > 0]
    ends = {s.name: started + s.watch for s in watched}
    first = manager.status(watched) if watched else {}
    pids = {s.name: first[s.name].pid for s in watched}
    next_http = {s.name: started + WATCH_HTTP_EVERY for s in watched}
    misses = {s.name: 0 for s in watched}
    requests = 0
    last_say = started

    def fail(svc: Service, message: str, status=None) -> Readiness:
        return Readiness(svc.name, False, "watch", message, clock() - started, pids.get(svc.name), status, requests)

    for svc in watched:
        st = first[svc.name]
        if not (st.active and st.pid):
            return fail(svc, f"{svc.name} died right after passing its gate (state {st.state})")
    while True:
        now = clock()
        by = ended() if ended is not None else None
        if by:
            return Readiness(",".join(s.name for s in watched), False, "ended",
                             f"watch ended by {by} {now - started:.0f} s in", now - started, None, None, requests)
        active = [s for s in watched if now < ends[s.name]]
        if not active:
            longest = max((s.watch for s in watched), default=0.0)
            return Readiness(",".join(s.name for s in watched) or "-", True, "watched",
                             f"stayed up through the {longest:g} s watch" if watched else "no watch window",
                             clock() - started, None, None, requests)
        statuses = manager.status(active)
        for svc in active:
            st = statuses[svc.name]
            elapsed = now - started
            if not (st.active and st.pid):
                return fail(svc, f"{svc.name} died {elapsed:.0f} s after passing its gate (state {st.state})")
            if st.pid != pids[svc.name]:
                return fail(svc, f"{svc.name} restarted on its own {elapsed:.0f} s after its gate "
                                 f"(pid {pids[svc.name]} -> {st.pid}): crash loop")
            if svc.port and not probe.port_open(svc.port):
                return fail(svc, f"{svc.name}: port {svc.port} stopped listening {elapsed:.0f} s after its gate")
            if svc.check is not None and now >= next_http[svc.name]:
                status, detail, _lat = probe.http(svc.check)
                requests += 1
                next_http[svc.name] = now + WATCH_HTTP_EVERY
                if status == svc.check.expect:
                    misses[svc.name] = 0
                else:
                    misses[svc.name] += 1
                    if misses[svc.name] >= 2:
                        return fail(svc, f"{svc.name}: check gave {detail} twice in a row, {elapsed:.0f} s after "
                                         f"its gate, expected {svc.check.expect}", status)
        if now - last_say >= 5.0:
            last_say = now
            left = max(ends[s.name] for s in active) - now
            say(f"watching {', '.join(s.name for s in active)}: up, {left:.0f} s to go")
        sleep(min(WATCH_POLL, max(0.0, min(ends[s.name] for s in active) - clock())))


def quick_health(manager: ServiceManager, services, probe=None) -> List[Readiness]:
    """One look, no waiting: active, port, one HTTP check. For no-op runs."""
    probe = probe or LocalProbe()
    out: List[Readiness] = []
    statuses = manager.status(services)
    for svc in services:
        st = statuses[svc.name]
        if not (st.active and st.pid):
            out.append(Readiness(svc.name, False, "active", f"{svc.name} is {state_phrase(st.state)}", pid=st.pid))
            continue
        if svc.port and not probe.port_open(svc.port):
            out.append(Readiness(svc.name, False, "port", f"{svc.name}: port {svc.port} not listening", pid=st.pid))
            continue
        if svc.check is not None:
            status, detail, _ = probe.http(svc.check)
            if status != svc.check.expect:
                out.append(Readiness(svc.name, False, "http", f"{svc.name}: check gave {detail}", pid=st.pid, http_status=status))
                continue
        out.append(Readiness(svc.name, True, "ready", f"{svc.name} healthy", pid=st.pid))
    return out


# A service state as the person reading a failed deploy needs it. "stale"
# is the process back end's word for a pidfile whose process is gone.
_STATE_WORDS = {
    "stale": "its process is gone",
    "inactive": "stopped",
    "failed": "systemd marks it failed",
    "activating": "still starting",
    "deactivating": "stopping",
}


def _said(state: str) -> str:
    return _STATE_WORDS.get(state, f"state {state}")


def state_phrase(state: str) -> str:
    """`bot is …`: a service state in a sentence (monitor, health)."""
    return {"stale": "down: its process is gone", "inactive": "stopped"}.get(state, state)
