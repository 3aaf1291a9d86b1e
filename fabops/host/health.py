"""`health [--fix]`: check every service, heal it, and speak up on change.

One library function for both callers: cron on the host (local Context, the
files read directly) and a laptop over SSH (agentless: the same files through
the connection). Nagios codes: 0 OK, 1 recovered by --fix, 2 CRITICAL,
3 UNKNOWN (unreachable, or a deploy holds the lock).

- `--fix` takes the host lock (never while a deploy holds it: it reports
  "deploy in progress", exit 3, and neither restarts nor notifies), restarts
  the failing services and polls readiness (no fixed sleeps), then checks
  again.
- After 3 automatic restarts in an hour it stops restarting and notifies once.
- It notifies on state change only: down once, recovered once.
- Every run appends one line to the health log.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from .. import errors
from ..errors import LockedError
from ..inventory import Host
from .readiness import LocalProbe, Readiness, quick_health, wait_ready
from .state import RESTART_LIMIT, recent_restarts



@dataclass
class HealthReport:
    host: str
    code: int
    status: str  # ok | recovered | down | backoff | busy
    checks: List[dict] = field(default_factory=list)
    restarted: List[str] = field(default_factory=list)
    message: str = ""
    notified: List[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.code

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["status_name"] = errors.NAMES.get(self.code, str(self.code))
        return d


class LocalStore:
    """state.json, the lock and the health log, on this machine (cron)."""

    def __init__(self, host: Host):
        from .files import HostPaths

        self.host = host
        self.paths = HostPaths.for_home(host.home)

    def load(self) -> dict:
        from .state import load_state

        return load_state(self.paths.state).__dict__.copy()

    def update(self, updates: dict) -> None:
        from .state import State, load_state, save_state

        state = load_state(self.paths.state)
        data = state.__dict__.copy()
        data.update(updates)
        save_state(self.paths.state, State.from_dict(data))

    def lock(self, info: dict):
        from .lock import HostLock

        return HostLock(self.paths.lock, info).acquire()

    def log(self, line: str) -> None:
        from .files import append_line

        path = self.host.logs.get("health") or os.path.join(self.paths.home, "health.log")
        try:
            append_line(path, line, fsync=False)
        except OSError:
            pass


class ReadOnlyStore:
    """A store for --dry-run: reads state, writes nothing, and reports the
    lock's holder instead of taking the lock."""

    def __init__(self, store, holder: Callable[[], dict]):
        self.store = store
        self.holder = holder

    def load(self) -> dict:
        return self.store.load()

    def update(self, updates: dict) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def lock(self, info: dict):
        from .lock import describe_holder

        holder = self.holder()
        if holder:
            raise LockedError(f"locked: {describe_holder(holder)}")
        return self  # release() below: nothing was taken

    def release(self) -> None:
        pass


class _CountingProbe:
    """The probe health's look goes through, keeping what each service's
    HTTP check answered and how many it fired. quick_health puts a status
    only on a failed check's Readiness (and never counts requests), so
    `health --json` said `"http_status": null, "requests": 0` after a check
    that answered 200; the report carries what the check did."""

    def __init__(self, probe, services):
        self.probe = probe
        self.names = {id(s.check): s.name for s in services if s.check is not None}
        self.seen: dict = {}  # service name -> [last status, requests]

    def port_open(self, port: int) -> bool:
        return self.probe.port_open(port)

    def http(self, check):
        answer = self.probe.http(check)
        name = self.names.get(id(check))
        if name is not None:
            seen = self.seen.setdefault(name, [None, 0])
            seen[0], seen[1] = answer[0], seen[1] + 1
        return answer


def _look(manager, host: Host, probe) -> List[Readiness]:
    """quick_health, each service's result with its HTTP check's status and
    request count when one ran."""
    counting = _CountingProbe(probe or LocalProbe(), list(host.services))
    checks = quick_health(manager, list(host.services), probe=counting)
    for r in checks:
        if r.service in counting.seen:
            r.http_status, r.requests = counting.seen[r.service]
    return checks


def _state_health(state: dict) -> dict:
    h = state.get("health")
    return h if isinstance(h, dict) else {}


def run_health(
    c,
    host: Host,
    *,
    fix: bool,
    actor: str,
    store,
    manager,
    probe=None,
    timeout: float = 60.0,
    notify: Optional[Callable[[str, str], List[dict]]] = None,
    dry_run: bool = False,
) -> HealthReport:
    """Check (and with `fix`, heal) `host`'s services. Never raises for a
    sick service: that is the report. A dry run (with a ReadOnlyStore)
    restarts, records and notifies nothing, and says what --fix would do."""
    send = notify or (lambda event, message: [])
    if dry_run:
        send = lambda event, message: []  # noqa: E731
    checks = _look(manager, host, probe)
    sick = [r for r in checks if not r.ok]
    state = store.load()
    prev = _state_health(state)
    now = time.time()
    report = HealthReport(host.name, errors.OK, "ok", [r.to_dict() for r in checks])

    if sick and fix:
        info = {"actor": actor, "trigger": "health", "target": None, "since": now, "pid": os.getpid()}
        try:
            lock = store.lock(info)
        except LockedError as exc:
            report.code, report.status = errors.UNREACHABLE, "busy"
            report.message = f"deploy in progress ({exc.message}); not restarting"
            store.log(_line(host, report))
            return report
        try:
            recent = recent_restarts(state.get("restarts"), now)
            if len(recent) >= RESTART_LIMIT:
                report.code, report.status = errors.FAILED, "backoff"
                report.message = (f"{'; '.join(r.message for r in sick)}; {len(recent)} automatic restarts in the "
                                  "last hour: not restarting again (restart backoff)")
                if not prev.get("backoff_notified"):
                    report.notified = send("health_backoff", report.message)
                store.update({"health": {**prev, "status": "down", "since": prev.get("since") or now,
                                         "backoff_notified": True}})
                store.log(_line(host, report))
                return report
            names = {r.service for r in sick}
            if dry_run:
                report.code, report.status = errors.FAILED, "would_restart"
                report.message = (f"{'; '.join(r.message for r in sick)}; --fix would restart "
                                  + ", ".join(s.name for s in host.services if s.name in names))
                return report
            store.update({"restarts": recent + [now]})
            for svc in host.services:
                if svc.name not in names:
                    continue
                manager.restart(svc)
                ready = wait_ready(manager, svc, timeout=min(timeout, svc.timeout) if timeout else svc.timeout, probe=probe)
                report.restarted.append(svc.name)
                if not ready.ok:
                    break
        finally:
            lock.release()
        checks = _look(manager, host, probe)
        report.checks = [r.to_dict() for r in checks]
        still = [r for r in checks if not r.ok]
        if not still:
            report.code, report.status = errors.WARNING, "recovered"
            report.message = f"restarted {', '.join(report.restarted)}; healthy again ({'; '.join(r.message for r in sick)})"
            report.notified = send("health_recovered", report.message)
            store.update({"health": {"status": "ok", "since": now, "backoff_notified": False}})
            store.log(_line(host, report))
            return report
        sick = still

    if sick:
        report.code, report.status = errors.FAILED, "down"
        report.message = "; ".join(r.message for r in sick) + (
            f" (restarted {', '.join(report.restarted)}, still failing)" if report.restarted else "")
        if prev.get("status") != "down":
            report.notified = send("health_down", report.message)
        store.update({"health": {**prev, "status": "down", "since": prev.get("since") if prev.get("status") == "down" else now}})
    else:
        report.message = "all services healthy"
        if prev.get("status") == "down":
            report.notified = send("health_recovered", "all services healthy again")
        if prev.get("status") != "ok" or prev.get("backoff_notified"):
            store.update({"health": {"status": "ok", "since": now, "backoff_notified": False}})
    store.log(_line(host, report))
    return report


def _line(host: Host, report: HealthReport) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"{stamp} {host.name} {errors.NAMES.get(report.code, report.code)} {report.status}: {report.message}"


__all__ = ["HealthReport", "LocalStore", "run_health", "Readiness"]
