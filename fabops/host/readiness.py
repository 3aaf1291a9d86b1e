"""Poll a service until it is ready, never sleep a fixed time (docs/migration.md, defect 4).

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
    """(status or None, short detail, latency seconds). Never raises.

    Plain http:// (the host's own loopback, the usual case) is spoken over a
    socket: urllib.request drags in http.client and ssl, which would cost the
    cron path ~15 ms and several MiB on every poll. https:// uses urllib."""
    from urllib.parse import urlsplit

    data = b""
    headers = dict(check.headers)
    if check.json is not None:
        data = jsonlib.dumps(check.json).encode()
        headers.setdefault("Content-Type", "application/json")
    elif check.body is not None:
        data = check.body.encode()
    started = time.monotonic()
    try:
        parts = urlsplit(check.url)
        if parts.scheme == "https":
            return _urllib_check(check, data, headers, started)
        if parts.scheme != "http" or not parts.hostname:
            return None, f"unsupported URL {check.url!r}", 0.0
        status = _raw_http(parts, check.method, data, headers, check.timeout)
    except (OSError, ValueError) as exc:
        return None, f"no answer ({exc.__class__.__name__}: {exc})", time.monotonic() - started
    if status is None:
        return None, "no answer (not HTTP)", time.monotonic() - started
    return status, f"HTTP {status}", time.monotonic() - started


def _raw_http(parts, method: str, data: bytes, headers: dict, timeout: float) -> Optional[int]:
    host = parts.hostname
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}:{port}", "Connection: close",
             "User-Agent: fabops-health", "Accept: */*"]
    if data or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(data)}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(request)
        buf = b""
        while b"\r\n" not in buf and len(buf) < 8192:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
    status_line = buf.split(b"\r\n", 1)[0].split()
    if len(status_line) >= 2 and status_line[0].startswith(b"HTTP/") and status_line[1].isdigit():
        return int(status_line[1])
    return None


def _urllib_check(check: Check, data: bytes, headers: dict, started: float):
    import urllib.error
    import urllib.request

    body = data if (data or check.method in ("POST", "PUT")) else None
    req = urllib.request.Request(check.url, data=body, method=check.method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(req, timeout=check.timeout) as resp:
            return resp.status, f"HTTP {resp.status}", time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}", time.monotonic() - started
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"no answer ({getattr(exc, 'reason', exc)})", time.monotonic() - started


class LocalProbe:
    """Port and HTTP checks from the host itself (the pipeline runs there)."""

    def port_open(self, port: int) -> bool:
        return port_open(port)

    def http(self, check: Check) -> Tuple[Optional[int], str, float]:
        return http_check(check)


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
