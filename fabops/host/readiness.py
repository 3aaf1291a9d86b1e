"""Poll a service until it is ready, never sleep a fixed time (DESIGN.md §1 defect 4).

Ready means, in order:
1. the unit is active and its main PID alive (polled about every 200 ms);
2. its port is listening (about every 200 ms);
3. its HTTP check answers the expected status. The check may have side
   effects (the bot's webhook is a POST), so it is retried with backoff,
   never fired every 200 ms;
4. it stays up, with the same PID, through the settle window.

A process that dies at any point fails at once instead of waiting for the
timeout. Runs on the host (ports and URLs are the host's own loopback).
"""
from __future__ import annotations

import json as jsonlib
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from ..inventory import Check, Service
from .services import ServiceManager

POLL = 0.2
BACKOFF = (0.25, 0.5, 1.0, 2.0)


@dataclass
class Readiness:
    service: str
    ok: bool
    phase: str  # active | port | http | settle | ready
    message: str
    seconds: float = 0.0
    pid: Optional[int] = None
    http_status: Optional[int] = None
    attempts: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "attempts"}


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_check(check: Check) -> Tuple[Optional[int], str, float]:
    """(status or None, short detail, latency seconds). Never raises."""
    data = None
    headers = dict(check.headers)
    if check.json is not None:
        data = jsonlib.dumps(check.json).encode()
        headers.setdefault("Content-Type", "application/json")
    elif check.body is not None:
        data = check.body.encode()
    if data is None and check.method in ("POST", "PUT"):
        data = b""
    req = urllib.request.Request(check.url, data=data, method=check.method, headers=headers)
    started = time.monotonic()
    try:
        with _opener().open(req, timeout=check.timeout) as resp:
            return resp.status, f"HTTP {resp.status}", time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}", time.monotonic() - started
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"no answer ({reason})", time.monotonic() - started


class LocalProbe:
    """Port and HTTP checks from the host itself (the pipeline runs there)."""

    def port_open(self, port: int) -> bool:
        return port_open(port)

    def http(self, check: Check) -> Tuple[Optional[int], str, float]:
        return http_check(check)


def _opener():
    # Health checks go to the host's own loopback: never through a proxy
    # from the environment.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


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

    def result(ok: bool, phase: str, message: str, pid=None, status=None) -> Readiness:
        return Readiness(svc.name, ok, phase, message, clock() - started, pid, status)

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
            return result(False, "active", f"{svc.name} is {st.state}: it exited during start-up")
        if clock() >= deadline:
            return result(False, "active", f"{svc.name} not active after {timeout:g} s (state {last_state})")
        sleep(POLL)
    say(f"{svc.name} active, pid {pid}")

    def still_alive() -> Optional[Readiness]:
        st = manager.status([svc])[svc.name]
        if not (st.active and st.pid):
            return result(False, "settle", f"{svc.name} died after starting (state {st.state})", pid)
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

    # 3. HTTP check with backoff
    status = None
    if svc.check is not None:
        attempt = 0
        while True:
            status, detail, _lat = probe.http(svc.check)
            if status == svc.check.expect:
                break
            dead = still_alive()
            if dead:
                dead.http_status = status
                return dead
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
            return dead
        sleep(min(POLL, max(0.0, settle_end - clock())))
    dead = still_alive()
    if dead:
        return dead
    return result(True, "ready", f"{svc.name} ready", pid, status)


def quick_health(manager: ServiceManager, services, probe=None) -> List[Readiness]:
    """One look, no waiting: active, port, one HTTP check. For no-op runs."""
    probe = probe or LocalProbe()
    out: List[Readiness] = []
    statuses = manager.status(services)
    for svc in services:
        st = statuses[svc.name]
        if not (st.active and st.pid):
            out.append(Readiness(svc.name, False, "active", f"{svc.name} is {st.state}", pid=st.pid))
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
