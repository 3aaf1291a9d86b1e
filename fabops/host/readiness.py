"""Poll a service until it is ready, never sleep a fixed time (docs/migration.md, defect 4).

Ready means, in order:
1. the unit is active and its main PID alive (polled about every 200 ms);
2. its port is listening on a socket of its own (about every 200 ms):
   a port another process holds fails the gate at once, naming the holder
   (host/listeners.py; "owner not verified" when its open files cannot be
   read, and the port is trusted as before);
3. its HTTP check answers the expected status. The check may have side
   effects (the bot's webhook is a POST), so it is retried with backoff,
   never fired every 200 ms;
4. it stays up, with the same PID, through the settle window; not when a
   watch window follows the gate (a deploy's, `watched`): the watch keeps
   checking the same PID for longer (settle_for, docs/benchmarks.md,
   "Settle against watch").

A process that dies at any point fails at once instead of waiting for the
timeout. Runs on the host (ports and URLs are the host's own loopback); the
HTTP check is host/httpcheck.py, the same code the agentless path runs.
"""
from __future__ import annotations

import socket
import time
from typing import Callable, Dict, List, Optional, Tuple

from ..inventory import Check, Service
from ..records import Plain, plain
from . import httpcheck
from .listeners import OTHER, CLOSED, PortOwner, port_owner
from .services import ServiceManager

POLL = 0.2
# The HTTP check may have side effects (a POST webhook): back off to 4 s, so
# a check that keeps failing fires about 15 times a minute, not 300.
BACKOFF = (0.5, 1.0, 2.0, 4.0)
# During the watch window: process state every half second (a fork of
# `systemctl show` or a pidfile read), the HTTP check every 5 s.
WATCH_POLL = 0.5
WATCH_HTTP_EVERY = 5.0


@plain
class Readiness(Plain):
    service: str
    ok: bool
    phase: str  # active | port | http | settle | ready
    message: str
    seconds: float = 0.0
    pid: Optional[int] = None
    http_status: Optional[int] = None
    requests: int = 0  # HTTP checks fired (they may have side effects)

    def to_dict(self) -> dict:
        # seconds to the millisecond, as a run's steps (host/record.py): a float's 16 digits are noise in --json
        return dict(self.__dict__, seconds=round(self.seconds, 3))


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

    def port_owner(self, port: int, pid: Optional[int], systemd: bool, unit: str = "") -> PortOwner:
        """Whose the port's listener is (host/listeners.py): one /proc read."""
        return port_owner(port, pid, systemd, unit=unit)

    def http(self, check: Check) -> Tuple[Optional[int], str, float]:
        return httpcheck.run(check)


def owner(probe, port: int, svc: Service, pid: Optional[int]) -> PortOwner:
    """probe.port_owner for `svc`'s `port`, `pid` its main PID now or the
    one last recorded: with its systemd unit named, what is left of the
    service (a restarted instance, a dying one) is never another process's."""
    systemd = svc.manager == "systemd"
    return probe.port_owner(port, pid, systemd, svc.name if systemd else "")


def loopback_port(url: str) -> Optional[int]:
    """The port of a URL on this host's loopback (127.0.0.1, localhost,
    ::1; the scheme's default when none is given), else None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    return port if (parts.hostname or "") in ("127.0.0.1", "localhost", "::1") else None


def settle_for(svc: Service, watched: bool = False) -> float:
    """The gate's settle window: none when the service's watch window
    follows this gate (a deploy's gate, `watched`), since the watch polls
    the same PID and catches the same deaths a little later, 0.5 s apart
    instead of 0.2 s; `settle` otherwise (a rollback, `restart`, `health
    --fix`, a deploy with `watch: 0`), where nothing checks after the gate."""
    return 0.0 if watched and svc.watch > 0 else svc.settle


def wait_ready(
    manager: ServiceManager,
    svc: Service,
    timeout: Optional[float] = None,
    settle: Optional[float] = None,
    progress: Optional[Callable[[str], None]] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    probe=None,
    watched: bool = False,
) -> Readiness:
    """The readiness gate: the module's four phases in order, each failing
    at once on a death; the first that fails is the result. `watched`: the
    service's watch window follows (settle_for)."""
    gate = _Gate(manager, svc, svc.timeout if timeout is None else timeout, progress, clock, sleep,
                 probe or LocalProbe())
    return (gate.active() or gate.listening() or gate.answering()
            or gate.settled(settle_for(svc, watched) if settle is None else settle))


class _Gate:
    """One service's way through wait_ready: each phase returns None when
    it passed, or the failed Readiness."""

    def __init__(self, manager: ServiceManager, svc: Service, timeout: float, progress, clock, sleep, probe):
        self.manager, self.svc, self.timeout = manager, svc, timeout
        self.say = progress or (lambda _msg: None)
        self.clock, self.sleep, self.probe = clock, sleep, probe
        self.started = clock()
        self.deadline = self.started + timeout
        self.requests = 0  # HTTP checks fired (they may have side effects)
        self.pid: Optional[int] = None
        self.status: Optional[int] = None

    def result(self, ok: bool, phase: str, message: str, pid=None, status=None) -> Readiness:
        return Readiness(self.svc.name, ok, phase, message, self.clock() - self.started, pid, status, self.requests)

    def still_alive(self) -> Optional[Readiness]:
        """None while the process that became active is still the one up."""
        svc = self.svc
        st = self.manager.status([svc])[svc.name]
        if not (st.active and st.pid):
            return self.or_held(self.result(False, "settle", f"{svc.name} died after starting: {_said(st.state)}",
                                            self.pid), st.pid or self.pid)
        if st.pid != self.pid:
            return self.or_held(self.result(
                False, "settle", f"{svc.name} restarted on its own (pid {self.pid} -> {st.pid}): crash loop",
                self.pid), st.pid)
        return None

    def or_held(self, failed: Readiness, pid: Optional[int] = None) -> Readiness:
        """A failure while another process holds the service's port (it
        died of EADDRINUSE): phase "held", the holder named first, so the
        run blames the host, not the commit. `pid`: the service's process
        now, or the one last recorded (None: none is known)."""
        svc = self.svc
        if not svc.port:
            return failed
        found = owner(self.probe, svc.port, svc, pid)
        if found.state != OTHER:
            return failed
        return self.result(False, "held", f"{found.held_message(svc.name)}; {failed.message}", failed.pid)

    def active(self) -> Optional[Readiness]:
        """1. active with a live main PID."""
        svc = self.svc
        while True:
            st = self.manager.status([svc])[svc.name]
            if st.active and st.pid:
                self.pid = st.pid
                self.say(f"{svc.name} active, pid {self.pid}")
                return None
            if st.state in ("failed", "stale") or (svc.manager == "process" and st.state == "inactive"):
                return self.or_held(self.result(False, "active", f"{svc.name} exited during start-up: "
                                                                 f"{_said(st.state)}"), st.pid)
            if self.clock() >= self.deadline:
                return self.or_held(self.result(False, "active", f"{svc.name} not active after {self.timeout:g} s "
                                                                 f"({_said(st.state)})"), st.pid)
            self.sleep(POLL)

    def listening(self) -> Optional[Readiness]:
        """2. its port listening on a socket of its own; held by another
        process: failed at once (phase "held"), the holder named."""
        svc = self.svc
        if not svc.port:
            return None
        while True:
            found = owner(self.probe, svc.port, svc, self.pid)
            if found.state == OTHER:
                return self.result(False, "held", found.held_message(svc.name), self.pid)
            if found.state != CLOSED:
                break
            dead = self.still_alive()
            if dead:
                return dead
            if self.clock() >= self.deadline:
                return self.result(False, "port", f"{svc.name}: port {svc.port} not listening after "
                                                  f"{self.timeout:g} s", self.pid)
            self.sleep(POLL)
        self.say(f"{svc.name} listening on {svc.port}" + (f" (owner not verified: {found.why})"
                                                          if found.why else ""))
        return None

    def answering(self) -> Optional[Readiness]:
        """3. the HTTP check with backoff; the same wrong answer again and
        again is a deterministic failure: fail early, not at the timeout."""
        svc, check, clock = self.svc, self.svc.check, self.clock
        if check is None:
            return None
        held = self.check_held()
        if held is not None:
            return held
        attempt = 0
        same, same_count, same_since = None, 0, 0.0
        while True:
            status, detail, _lat = self.probe.http(check)
            self.requests += 1
            self.status = status
            if status == check.expect:
                break
            if status is not None and status == same:
                same_count += 1
            else:
                same, same_count, same_since = status, 1, clock()
            dead = self.still_alive()
            if dead:
                dead.http_status = status
                return dead
            if same is not None and same_count >= check.fail_count and clock() - same_since >= check.fail_window:
                return self.result(
                    False, "http",
                    f"{svc.name}: {check.method} {httpcheck.shown(check.url)} gave HTTP {same} {same_count} times in a row over "
                    f"{clock() - same_since:.0f} s, expected {check.expect}: a deterministic failure, not a slow start",
                    self.pid, status,
                )
            if clock() >= self.deadline:
                return self.result(False, "http", f"{svc.name}: {check.method} {httpcheck.shown(check.url)} gave {detail}, "
                                                  f"expected {check.expect}", self.pid, status)
            self.sleep(min(BACKOFF[min(attempt, len(BACKOFF) - 1)], max(0.0, self.deadline - clock())))
            attempt += 1
        self.say(f"{svc.name} check {check.method} {httpcheck.shown(check.url)}: HTTP {status}")
        return None

    def check_held(self) -> Optional[Readiness]:
        """A check on this host's loopback at a port the service does not
        declare: trusted only when that port's listener is the service's
        own, as the declared port is (`listening`)."""
        svc = self.svc
        port = loopback_port(svc.check.url)
        if port is None or port == svc.port:
            return None
        found = owner(self.probe, port, svc, self.pid)
        if found.state != OTHER:
            return None
        return self.result(False, "held", f"{found.held_message(svc.name)} (its check's port)", self.pid)

    def settled(self, settle: float) -> Readiness:
        """4. the same process stays up for a moment: ready, or the death."""
        settle_end = self.clock() + settle
        while self.clock() < settle_end:
            dead = self.still_alive()
            if dead:
                dead.http_status = self.status
                return dead
            self.sleep(min(POLL, max(0.0, settle_end - self.clock())))
        return self.still_alive() or self.result(True, "ready", f"{self.svc.name} ready", self.pid, self.status)


def watch(
    manager: ServiceManager,
    services: List[Service],
    progress: Optional[Callable[[str], None]] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    probe=None,
    ended: Optional[Callable[[], Optional[str]]] = None,
    gated: Optional[Dict[str, Optional[int]]] = None,
) -> Readiness:
    """After the gate: keep checking each service until its own watch window
    ends, or until `ended()` names who ended the watch (a rollback, reset or
    restart: phase "ended", no verdict on the commit). The gate proves that a service started; the watch proves that it
    stays up. Fails on a death, a restart behind our back (a crash loop under
    systemd's Restart=), a closed port, or two failed HTTP checks in a row
    (one may be a pause; two, five seconds apart, are not). `gated`: the PID
    each service passed its gate with (Readiness.pid); the watch starts from
    it, so a service that died and was restarted by systemd between its gate
    and the watch's first look (while a later service's gate ran) is a crash
    loop, not a fresh start."""
    say = progress or (lambda _msg: None)
    w = _Watch(manager, services, clock, probe or LocalProbe(), gated or {})
    dead = w.after_the_gate()
    if dead is not None:
        return dead
    while True:
        now = clock()
        by = ended() if ended is not None else None
        if by:
            return w.ended_by(by, now)
        active = [s for s in w.watched if now < w.ends[s.name]]
        if not active:
            return w.watched_through()
        problem = w.look(active, now)
        if problem is not None:
            return problem
        if now - w.last_say >= 5.0:
            w.last_say = now
            left = max(w.ends[s.name] for s in active) - now
            say(f"watching {', '.join(s.name for s in active)}: up, {left:.0f} s to go")
        sleep(min(WATCH_POLL, max(0.0, min(w.ends[s.name] for s in active) - clock())))


class _Watch:
    """What a watch keeps between its looks: each service's window, the PID
    its gate passed with, when its HTTP check is due and its misses, and
    the requests fired."""

    def __init__(self, manager: ServiceManager, services: List[Service], clock, probe,
                 gated: Dict[str, Optional[int]]):
        self.manager, self.clock, self.probe = manager, clock, probe
        self.started = started = clock()
        self.watched = [s for s in services if s.watch > 0]
        self.ends = {s.name: started + s.watch for s in self.watched}
        self.first = manager.status(self.watched) if self.watched else {}
        self.pids = {s.name: gated.get(s.name) or self.first[s.name].pid for s in self.watched}
        self.next_http = {s.name: started + WATCH_HTTP_EVERY for s in self.watched}
        self.misses = {s.name: 0 for s in self.watched}
        self.requests = 0
        self.last_say = started

    def fail(self, svc: Service, message: str, status=None, phase: str = "watch") -> Readiness:
        return Readiness(svc.name, False, phase, message, self.clock() - self.started, self.pids.get(svc.name),
                         status, self.requests)

    def held(self, svc: Service, st, message: str, status=None) -> Readiness:
        """A death or a restart while another process holds the port: the
        host's failure (phase "held"), the holder named first. `st`: the
        service's status now; its own restarted or dying instance is not
        another process (readiness.owner)."""
        found = owner(self.probe, svc.port, svc, st.pid or self.pids.get(svc.name)) if svc.port else None
        if found is None or found.state != OTHER:
            return self.fail(svc, message, status)
        return self.fail(svc, f"{found.held_message(svc.name)}; {message}", status, "held")

    def after_the_gate(self) -> Optional[Readiness]:
        """A service already gone when the watch begins."""
        for svc in self.watched:
            st = self.first[svc.name]
            if not (st.active and st.pid):
                return self.held(svc, st, f"{svc.name} died right after passing its gate: {_said(st.state)}")
        return None

    def ended_by(self, by: str, now: float) -> Readiness:
        """A rollback, reset or restart ended the watch: no verdict."""
        return Readiness(",".join(s.name for s in self.watched), False, "ended",
                         f"watch ended by {by} {now - self.started:.0f} s in", now - self.started, None, None,
                         self.requests)

    def watched_through(self) -> Readiness:
        """Every window ended with every service up."""
        longest = max((s.watch for s in self.watched), default=0.0)
        return Readiness(",".join(s.name for s in self.watched) or "-", True, "watched",
                         f"stayed up through the {longest:g} s watch" if self.watched else "no watch window",
                         self.clock() - self.started, None, None, self.requests)

    def look(self, active: List[Service], now: float) -> Optional[Readiness]:
        """One look at the services still in their window (_watch_look)."""
        statuses = self.manager.status(active)
        for svc in active:
            due = now >= self.next_http[svc.name] and svc.check is not None
            problem, status, fired, phase = _watch_look(svc, statuses[svc.name], self.pids[svc.name],
                                                        now - self.started, self.probe, due, self.misses)
            if fired:
                self.requests += 1
                self.next_http[svc.name] = now + WATCH_HTTP_EVERY
            if phase == "died":
                return self.held(svc, statuses[svc.name], problem, status)
            if problem:
                return self.fail(svc, problem, status, phase)
        return None


def _watch_look(svc: Service, st, pid: Optional[int], elapsed: float, probe, check: bool, misses: dict):
    """One look at a watched service: (what is wrong or None, the HTTP
    status, whether its HTTP check fired: only when `check` is due and the
    process and port looked fine, the phase: "died" for a death or a
    restart, which the caller asks the port about, "held" for a port
    another process holds, else "watch"). Two failed checks in a row
    (`misses` counts them) fail the watch; one may be a pause."""
    if not (st.active and st.pid):
        return f"{svc.name} died {elapsed:.0f} s after passing its gate: {_said(st.state)}", None, False, "died"
    if st.pid != pid:
        return (f"{svc.name} restarted on its own {elapsed:.0f} s after its gate (pid {pid} -> {st.pid}): "
                "crash loop"), None, False, "died"
    found = owner(probe, svc.port, svc, pid) if svc.port else None
    if found is not None and found.state == OTHER:
        return f"{found.held_message(svc.name)}, {elapsed:.0f} s after its gate", None, False, "held"
    if found is not None and found.state == CLOSED:
        return f"{svc.name}: port {svc.port} stopped listening {elapsed:.0f} s after its gate", None, False, "watch"
    if not check:
        return None, None, False, "watch"
    status, detail, _lat = probe.http(svc.check)
    if status == svc.check.expect:
        misses[svc.name] = 0
        return None, status, True, "watch"
    misses[svc.name] += 1
    if misses[svc.name] >= 2:
        return (f"{svc.name}: check gave {detail} twice in a row, {elapsed:.0f} s after its gate, "
                f"expected {svc.check.expect}"), status, True, "watch"
    return None, status, True, "watch"


def quick_health(manager: ServiceManager, services, probe=None) -> List[Readiness]:
    """One look, no waiting: active, port, one HTTP check. For no-op runs.
    Each result's `seconds` is how long its check took: the one status
    read all services share, plus its own port and HTTP check (health
    --json and fabops_service_check_duration_seconds, docs/metrics.md)."""
    probe = probe or LocalProbe()
    out: List[Readiness] = []
    started = time.monotonic()
    statuses = manager.status(services)
    shared = time.monotonic() - started
    for svc in services:
        began = time.monotonic()
        r = _look_at(svc, statuses[svc.name], probe)
        r.seconds = shared + time.monotonic() - began
        out.append(r)
    return out


def _look_at(svc, st, probe) -> Readiness:
    """quick_health's look at one service whose status is `st`."""
    if not (st.active and st.pid):
        found = owner(probe, svc.port, svc, st.pid) if svc.port else None
        held = found is not None and found.state == OTHER
        return Readiness(svc.name, False, "held" if held else "active",
                         found.refusal(svc.name, _said(st.state)) if held
                         else f"{svc.name} is {state_phrase(st.state)}", pid=st.pid)
    found = owner(probe, svc.port, svc, st.pid) if svc.port else None
    if found is not None and found.state == OTHER:
        return Readiness(svc.name, False, "held", found.held_message(svc.name), pid=st.pid)
    if found is not None and found.state == CLOSED:
        return Readiness(svc.name, False, "port", f"{svc.name}: port {svc.port} not listening", pid=st.pid)
    if svc.check is not None:
        status, detail, _ = probe.http(svc.check)
        if status != svc.check.expect:
            return Readiness(svc.name, False, "http", f"{svc.name}: check gave {detail}", pid=st.pid, http_status=status)
    return Readiness(svc.name, True, "ready", f"{svc.name} healthy", pid=st.pid)


def held_ports(manager: ServiceManager, services, probe=None, running: bool = False) -> List[str]:
    """The preflight's look at the declared ports (decide before acting):
    a service that is not running while another process holds its port
    could not start, so a run that would restart it refuses up front,
    naming the holder. `running`: the services that run too (a rollback
    after a gate that found the port held: the restart would stop them and
    the port stay another process's). One status and one /proc read a port."""
    probe = probe or LocalProbe()
    ported = [s for s in services if s.port]
    statuses = manager.status(ported) if ported else {}
    return held_among(ported, statuses, lambda svc, pid: owner(probe, svc.port, svc, pid), running)


def held_among(ported, statuses, owner_of, running: bool = False) -> List[str]:
    """held_ports' rule on facts already read: `statuses` by service name,
    `owner_of(svc, pid)` its port's PortOwner (reset reads both in its
    plan's one round trip)."""
    out = []
    for svc in ported:
        st = statuses[svc.name]
        up = bool(st.active and st.pid)
        if up and not running:
            continue
        found = owner_of(svc, st.pid)
        if found.state == OTHER:
            out.append(found.refusal(svc.name, "running" if up else _said(st.state)))
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
