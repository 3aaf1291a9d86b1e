"""`health [--fix]`: check every service, heal it, and speak up on change.

One library function for both callers, through a Store (host/store.py):
cron on the host (LocalStore: the files read directly) and a laptop over
SSH (remote.RemoteStore, agentless: the same files through the
connection). Nagios codes: 0 OK, 1 recovered by --fix, 2 CRITICAL,
3 UNKNOWN (unreachable, or another run holds the lock).

- `--fix` takes the host lock (never while another run holds it: a deploy,
  a backup's snapshot, a reset; it reports "the host is busy (locked: WHO)",
  exit 3, and neither restarts nor notifies), restarts
  the failing services and polls readiness (no fixed sleeps), then checks
  again.
- After 3 automatic restarts in an hour it stops restarting and notifies once.
- A failing service whose port another process holds could not start:
  `--fix` refuses before it restarts anything, in the deploy preflight's
  words (readiness.held_among), spends none of the restart budget, exits 2
  and notifies once (#24: it restarted into the held port, reported
  "still failing" and spent the budget run after run).
- With --fix (cron's line) it notifies on state change only, down once,
  recovered once, and appends one line to the health log.
- With --fix, a host whose last run ended `broken` and whose every service
  it finds healthy on the deployed commit (the checkout there, no run in
  progress, under the host lock) is no longer broken: it records that as a
  person's `restart` does (host/record.healthy_again), once.
- Without --fix it is a read: it reports, and records, notifies and logs
  nothing.

Decide, then act (docs/architecture.md, "Plans"): a run gathers facts
(the look, state.json, the lock when --fix would restart), asks
`plan_health` (pure) and acts on the plan; `plan_only` (`--dry-run`)
gathers the same facts without the lock and renders the same plan.
"""
from __future__ import annotations

import os
import time
from dataclasses import field, replace
from typing import Callable, Iterator, List, Optional, Tuple, Union

from .. import errors
from ..errors import LockedError
from ..inventory import Host
from ..records import Frozen, frozen, Plain, plain
from .plan import Need, restore_cut_off, restore_cut_off_text
from .readiness import LocalProbe, Readiness, held_among, quick_health, wait_ready
from .record import healthy_again, short, verdict_holds
from .state import RESTART_LIMIT, budget_spent_until, host_result, recent_restarts
from .store import LocalStore, Store
from .would import Would, as_json


@plain
class HealthReport(Plain):
    host: str
    code: int
    status: str  # ok | recovered | down | backoff | busy
    checks: List[dict] = field(default_factory=list)
    restarted: List[str] = field(default_factory=list)
    message: str = ""
    notified: List[dict] = field(default_factory=list)
    would: Optional[List[Would]] = None  # --dry-run: what the real run would do (host/would.py)

    @property
    def exit_code(self) -> int:
        return self.code

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        if self.would is None:  # a real run did it: its report says what it did
            del d["would"]
        else:
            d["would"] = as_json(self.would)
        d["status_name"] = errors.NAMES.get(self.code, str(self.code))
        return d


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
        self.owners: dict = {}  # port -> the PortOwner the look found (_held reads the same answer)

    def port_open(self, port: int) -> bool:
        return self.probe.port_open(port)

    def port_owner(self, port: int, pid, systemd: bool, unit: str = ""):
        self.owners[port] = found = self.probe.port_owner(port, pid, systemd, unit)
        return found

    def http(self, check):
        answer = self.probe.http(check)
        name = self.names.get(id(check))
        if name is not None:
            seen = self.seen.setdefault(name, [None, 0])
            seen[0], seen[1] = answer[0], seen[1] + 1
        return answer


class _SeenManager:
    """The service manager as health's look asks it, keeping the statuses
    it answered (_held decides on the same answer, not a second read)."""

    def __init__(self, manager):
        self.manager, self.statuses = manager, {}

    def status(self, services):
        answer = self.manager.status(services)
        self.statuses.update(answer)
        return answer


Held = Tuple[Tuple[str, str], ...]  # (service, the preflight's refusal) of each failing service whose port is held


def _look(manager, host: Host, probe) -> Tuple[List[Readiness], Held]:
    """quick_health, each service's result with its HTTP check's status and
    request count when one ran; and the failing services whose port
    another process holds (_held), from the same look."""
    services = list(host.services)
    counting = _CountingProbe(probe or LocalProbe(), services)
    seen = _SeenManager(manager)
    checks = quick_health(seen, services, probe=counting)
    for r in checks:
        if r.service in counting.seen:
            r.http_status, r.requests = counting.seen[r.service]
    return checks, _held(services, checks, seen.statuses, counting.owners)


def _held(services, checks: List[Readiness], statuses: dict, owners: dict) -> Held:
    """The failing services --fix would restart whose declared port another
    process holds: the deploy preflight's rule and words
    (readiness.held_among, as restart and reset ask it; docs/pipeline.md,
    "Whose port"). `running` too: health restarts only a failing service,
    and one that runs while its port is another's could not bind it again
    either (the rollback's case)."""
    sick = {r.service for r in checks if not r.ok}
    out = []
    for svc in services:
        if svc.name in sick and svc.port in owners and svc.name in statuses:
            said = held_among([svc], statuses, lambda s, _pid: owners[s.port], running=True)
            out.extend((svc.name, words) for words in said)
    return tuple(out)


def _state_health(state: dict) -> dict:
    h = state.get("health")
    return h if isinstance(h, dict) else {}


# ------------------------------------------------------------------ decide


@frozen
class HealthFacts(Frozen):
    """What a health run found: its look at the services, state.json's
    health record and restart budget, and (only when --fix would restart)
    the host lock."""

    sick: Tuple[Tuple[str, str], ...]  # (service, message) of every failing check, in inventory order
    prev: dict  # state.json's `health`: the status last reported (what a notification is a change from)
    restarts: Tuple[float, ...]  # state.json's `restarts`: the automatic restart budget's record
    now: float
    lock: Optional[str] = None  # None: not gathered; "": free (the real run now holds it); else who holds it
    restarted: Tuple[str, ...] = ()  # services this run restarted: the look is the one after them
    before: Tuple[str, ...] = ()  # the failing checks' messages before those restarts
    # state.json's verdict: the host's last result (host/state.host_result: a standing
    # restart's or health --fix's verdict, else the last update check's), the deployed
    # commit, a run in progress; and the last update check's time, which a recorded
    # verdict follows (healthy_again's `check`)
    last_result: Optional[str] = None
    last_check: Optional[float] = None
    deployed: Optional[str] = None
    in_progress: bool = False
    # the run id of a restore in_progress says was cut off putting items back
    # (plan.restore_cut_off): --fix leaves its services down (_cut_off)
    cut_off: Optional[str] = None
    head: Optional[str] = None  # the checkout's commit: None: not gathered; "": unreadable (gathered for a record only)
    held: Held = ()  # failing services whose port another process holds (_held): --fix refuses to restart


# What a health plan is: `nothing` (report, and notify on a change),
# `restart` (--fix: the failing services, under the lock), `backoff` (the
# restart budget is spent: a person is needed), `held` (a failing
# service's port is another process's: a restart could not bind it, so
# nothing is restarted and a person is needed) and `busy` (a deploy holds
# the lock: neither restart nor notify).
HEALTH_KINDS = ("nothing", "restart", "backoff", "held", "busy")


@frozen
class HealthPlan(Frozen):
    kind: str
    status: str  # the report's: ok | down | recovered | backoff | held | busy; would_restart (what a dry run reports)
    code: int  # Nagios
    message: str
    services: Tuple[str, ...] = ()  # restart: in inventory order
    restarts: Optional[Tuple[float, ...]] = None  # restart: the budget's record once these restarts count
    notify: Optional[Tuple[str, str]] = None  # (event, message): once per change of status
    health: Optional[dict] = None  # state.json's new `health` (None: unchanged)
    record: bool = False  # healthy on the deployed commit after a broken run: its verdict recorded (healthy_again)
    record_on: str = ""  # record: the deployed commit (short) it is recorded on (said() words it)
    # restart on a broken host: the run records its verdict if every service
    # recovers on the deployed commit (decided after the restarts; the dry run says so)
    may_record: bool = False
    log: bool = True  # a line in the health log


def plan_health(host: Host, facts: HealthFacts, fix: bool) -> Union[HealthPlan, Need]:
    """What this health run does: pure (no file, command or clock), so the
    real run and `--dry-run` decide with this one function
    (docs/architecture.md, "Plans"). Need("lock") when --fix would restart
    and the lock is not gathered yet: a healthy host never touches it,
    unless its last run ended broken (_no_longer_broken: then Need("head"),
    the checkout's commit, and the lock only with the checkout on the
    deployed commit). Without --fix, health is a
    read: it reports and writes nothing (no state, no history or log line,
    no notification). The record of a host's health is cron's, whose line
    runs `health --fix --quiet`."""
    p = _plan(host, facts, fix)
    if isinstance(p, Need):
        return p
    if not fix:
        return replace(p, notify=None, health=None, log=False)
    if p.kind == "restart":
        # the record after the restarts needs the checkout on the deployed
        # commit (verdict_holds): read now, so the dry run promises it only
        # when the real run's second look can write it (review 2)
        if not _broken(facts):
            return p
        if facts.head is None:
            return Need("head", facts.deployed)
        return replace(p, may_record=facts.head == facts.deployed)
    if p.status in ("ok", "recovered"):
        verdict = _no_longer_broken(facts)
        if isinstance(verdict, Need):
            return verdict
        if verdict:
            return replace(p, record=True, record_on=short(facts.deployed))
    return p


def said(p: HealthPlan) -> str:
    """The real run's message: the plan's, with the verdict it recorded."""
    return _with_verdict(p, "is no longer")


def said_would(p: HealthPlan) -> str:
    """The dry run's message: the verdict is what it would record (status
    still says broken then)."""
    return _with_verdict(p, "would no longer be")


def _with_verdict(p: HealthPlan, words: str) -> str:
    return f"{p.message}; the host {words} broken (on the deployed {p.record_on})" if p.record else p.message


def _broken(facts: HealthFacts) -> bool:
    """The last run ended `broken`, with a deployed commit and no run in
    progress: a host whose verdict a healthy look may record."""
    return facts.last_result == "broken" and bool(facts.deployed) and not facts.in_progress


def _no_longer_broken(facts: HealthFacts) -> Union[bool, Need]:
    """Whether a --fix run that sees every service healthy records that the
    host is no longer broken: the last run ended `broken` and
    host/record.verdict_holds (no run in progress, the checkout on the
    deployed commit: the rule a person's `restart` follows too), under the
    host lock (a run that holds it says its own verdict). Asks for the
    checkout's commit (a read-only git), then the lock, only then: a host
    that is not broken is never read or locked for it, and a checkout on
    another commit is never locked (cron's run every few minutes would have
    held it against a person's deploy, exit 4). _RunLock.take forgets the
    commit, so it is read again under the lock. The record is written once
    (the next run finds `deployed`)."""
    if not _broken(facts):
        return False
    if facts.head is None:
        return Need("head", facts.deployed)
    if not verdict_holds(not facts.sick, facts.deployed, facts.in_progress, facts.head):
        return False
    if facts.lock is None:
        return Need("lock", "")
    return not facts.lock


def _plan(host: Host, facts: HealthFacts, fix: bool) -> Union[HealthPlan, Need]:
    prev = facts.prev
    down = "; ".join(m for _, m in facts.sick)
    was_down = prev.get("status") == "down"
    # down since the first look that found it down (a backoff after an ok
    # record is down from now, not since the ok began)
    since = (prev.get("since") or facts.now) if was_down else facts.now
    if facts.sick and fix and not facts.restarted:
        if facts.lock is None:
            return Need("lock", "")
        if facts.lock:  # never while another run holds the lock: no restart, no notification
            # the holder names itself (a deploy, a backup's snapshot, ...):
            # "deploy in progress" was untrue for a backup's short hold
            return HealthPlan("busy", "busy", errors.UNREACHABLE,
                              f"the host is busy ({facts.lock}); not restarting")
        if facts.cut_off is not None:  # before anything that restarts: the data is half put back
            return _cut_off(host, facts, down, was_down, since)
        if facts.held:  # before the budget: a restart into a held port spends it and fixes nothing
            return _refused(facts, since)
        recent = tuple(recent_restarts(facts.restarts, facts.now))
        if budget_spent_until(facts.restarts, facts.now) is not None:
            message = (f"{down}; {len(recent)} automatic restarts in the last hour: not restarting again "
                       "(restart backoff)")
            return HealthPlan("backoff", "backoff", errors.FAILED, message,
                              notify=None if prev.get("backoff_notified") else ("health_backoff", message),
                              health=_changed(prev, {**_unheld(prev), "status": "down", "since": since,
                                                     "backoff_notified": True}))
        moved = _checkout_moved(facts, down, was_down, since)  # a restart would start the moved checkout
        if moved is not None:
            return moved
        names = {name for name, _ in facts.sick}
        services = tuple(s.name for s in host.services if s.name in names)
        return HealthPlan("restart", "would_restart", errors.FAILED,
                          f"{down}; --fix would restart {', '.join(services)}",
                          services=services, restarts=recent + (facts.now,))
    if facts.restarted and not facts.sick:
        message = f"restarted {', '.join(facts.restarted)}; healthy again ({'; '.join(facts.before)})"
        return HealthPlan("nothing", "recovered", errors.WARNING, message, notify=("health_recovered", message),
                          health={"status": "ok", "since": facts.now, "backoff_notified": False})
    if facts.sick:
        message = down + (f" (restarted {', '.join(facts.restarted)}, still failing)" if facts.restarted else "")
        return HealthPlan("nothing", "down", errors.FAILED, message,
                          notify=None if was_down else ("health_down", message),
                          health=_changed(prev, {**_unheld(prev), "status": "down", "since": since}))
    return HealthPlan("nothing", "ok", errors.OK, "all services healthy",
                      notify=("health_recovered", "all services healthy again") if prev.get("status") == "down" else None,
                      health=None if prev.get("status") == "ok" and not prev.get("backoff_notified")
                      else {"status": "ok", "since": facts.now, "backoff_notified": False})


def _checkout_moved(facts: HealthFacts, down: str, was_down: bool, since: float
                    ) -> Union[HealthPlan, Need, None]:
    """--fix with the checkout off the deployed commit (a reset onto a
    commit that did not come up): a restart would start that commit again,
    as `restart` refuses to (review 3: cron's health --fix restarted it
    until the budget was spent). Down, nothing restarted, no budget spent;
    the way out is a person's rollback or deploy. None: on the deployed
    commit (or nothing deployed, or a run in progress: the next run's)."""
    if not facts.deployed or facts.in_progress:
        return None
    if facts.head is None:
        return Need("head", facts.deployed)
    if not facts.head or facts.head == facts.deployed:
        return None
    message = (f"{down}; not restarting: the checkout is at {short(facts.head)}, not the deployed "
               f"{short(facts.deployed)}, and a restart would start it again: roll back or deploy")
    return HealthPlan("nothing", "down", errors.FAILED, message, notify=None if was_down else ("health_down", message),
                      health=_changed(facts.prev, {**_unheld(facts.prev), "status": "down", "since": since}))


def _cut_off(host: Host, facts: HealthFacts, down: str, was_down: bool, since: float) -> HealthPlan:
    """--fix while a restore cut off putting items back left its mark
    (plan.UNSAFE_RESTORE_STEPS): a restart would start the services on
    half-restored data, so nothing is restarted and no budget spent, as
    local-update's planner refuses to deploy over it; the way out is the
    restore that takes it over (docs/backups.md, "A restore cut off in the
    middle"). Down, notified once, as _checkout_moved's refusal."""
    message = f"{down}; not restarting: {restore_cut_off_text(str(facts.cut_off), host.name)}"
    return HealthPlan("nothing", "down", errors.FAILED, message, notify=None if was_down else ("health_down", message),
                      health=_changed(facts.prev, {**_unheld(facts.prev), "status": "down", "since": since}))


def _refused(facts: HealthFacts, since: float) -> HealthPlan:
    """--fix with a failing service's port held by another process: the
    preflight's refusal (restart's and reset's too), nothing restarted and
    no budget spent; exit 2, notified once while the port stays held (the
    state's `held_notified`, which any other outcome clears: once per
    reason, as a backoff is)."""
    prev = facts.prev
    held = {name for name, _ in facts.held}
    others = [(name, m) for name, m in facts.sick if name not in held]
    message = "; ".join(words for _, words in facts.held)
    if others:  # the refusal stops the whole run, as restart's does: say the others wait too
        message += (f"; {'; '.join(m for _, m in others)}: not restarting "
                    f"{', '.join(name for name, _ in others)} either")
    return HealthPlan("held", "held", errors.FAILED, message,
                      notify=None if prev.get("held_notified") else ("health_held", message),
                      health=_changed(prev, {**prev, "status": "down", "since": since, "held_notified": True}))


def _unheld(prev: dict) -> dict:
    """state.json's `health` without the held port's notification mark: a
    run that got past the refusal, so a port held again is a new reason."""
    return {k: v for k, v in prev.items() if k != "held_notified"}


def _changed(prev: dict, new: dict) -> Optional[dict]:
    """`new`, or None when it is what state.json holds already (no write)."""
    return None if new == prev else new


@frozen
class Channels(Frozen):
    """The notification channels the real run's `notify` would send to
    (notify.webhooks, read as that run reads them), and where they are
    read from, for the words when there are none."""

    names: Tuple[str, ...]
    where: str  # e.g. "FABOPS_DISCORD_WEBHOOK or FABOPS_SLACK_WEBHOOK, or <home>/notify.env"


def _notified(event: Tuple[str, str], channels: Optional[Channels]) -> Would:
    """The dry run's line for a notification: named only where a channel
    would carry it (#24: `would notify health_recovered` on a host with
    none, while the real run sent nothing); else what keeps it."""
    from ..notify import EVENT_WORDS

    key, message = event
    name = EVENT_WORDS.get(key, key)  # what a person reads: `the held port`, not `health_held`
    if channels is None:
        return Would("notify", name, message)
    if channels.names:
        return Would("notify", name, f"{message} (to {', '.join(channels.names)})")
    return Would("record", name, f"in the health log; no notification would be sent, as no notification "
                                 f"channel is configured ({channels.where})")


def actions(p: HealthPlan, channels: Optional[Channels] = None) -> Iterator[Would]:
    """Every write the plan makes, in order: the dry run's `would`.
    `channels`: where the real run's notification would go (None: not
    asked, the event named as before)."""
    if p.kind == "busy":
        yield Would("stop", "-", p.message)
    if p.kind == "restart":
        yield Would("record", "state.json", f"automatic restart {len(p.restarts or ())} of {RESTART_LIMIT} in the "
                                            "last hour (the restart budget)")
        for name in p.services:
            yield Would("restart", name, "failing its check; polled until ready, then every service is "
                                         "checked again (recovered or down, notified once)")
    if p.record:
        yield Would("record", "history", "every service healthy on the deployed commit: a run's record that "
                                         "replaces the last run's broken result (state.json and the update log "
                                         "too)")
    if p.may_record:  # decided after the restarts, by the real run's second look
        yield Would("record", "history", "if every service recovers on the deployed commit: the host would no "
                                         "longer be broken (a run's record replacing the last run's broken "
                                         "result, state.json and the update log too)")
    if p.notify:
        yield _notified(p.notify, channels)
    if p.health is not None:
        yield Would("record", "state.json", f"health {p.health.get('status')}"
                    + {"backoff": " (backoff reported)", "held": " (the held port reported)"}.get(p.kind, ""))
    if p.log:  # the real run's health log line (_line), from the same plan (#24: a backoff said nothing)
        yield Would("log", "health log", "its outcome, once the restarts are polled" if p.kind == "restart"
                    else f"{errors.NAMES.get(p.code, p.code)}: {said(p)}")


def _facts(look: Tuple[List[Readiness], Held], state: dict, now: float) -> HealthFacts:
    checks, held = look
    return HealthFacts(sick=tuple((r.service, r.message) for r in checks if not r.ok), now=now, held=held,
                       **_stated(state))


def _stated(state: dict) -> dict:
    """HealthFacts' fields that state.json gives."""
    restarts = state.get("restarts")
    deployed = state.get("deployed")
    return {"prev": _state_health(state), "restarts": tuple(restarts) if isinstance(restarts, (list, tuple)) else (),
            "last_result": host_result(state), "deployed": deployed if isinstance(deployed, str) else None,
            "in_progress": bool(state.get("in_progress")), "cut_off": restore_cut_off(state.get("in_progress")),
            "last_check": state.get("last_check")}


def _checkout_head(manager) -> str:
    """The checkout's commit where the services run from ("" when it
    cannot be read), through the manager's own Target and app path."""
    from ..shell import path
    from .git import Git

    return Git(manager.t, path(manager.app_path)).head() or ""


def _report(host: Host, p: HealthPlan, checks: List[Readiness], message: str, **more) -> HealthReport:
    return HealthReport(host.name, p.code, p.status, [r.to_dict() for r in checks], message=message, **more)


# ------------------------------------------------------------------ act


def run_health(
    c,
    host: Host,
    *,
    fix: bool,
    actor: str,
    store: Store,
    manager,
    probe=None,
    timeout: float = 60.0,
    notify: Optional[Callable[[str, str], List[dict]]] = None,
    trigger: str = "manual",
) -> HealthReport:
    """Check (and with `fix`, heal) `host`'s services: gather, plan_health,
    act. Never raises for a sick service: that is the report. `trigger`:
    cron's line says `cron` (health_trigger), the one run that pings."""
    send = notify or (lambda event, message: [])
    started = time.monotonic()  # the run's duration, in its record (healthy_again)
    look = _look(manager, host, probe)
    checks = look[0]
    facts = _facts(look, store.load(), time.time())
    lock = _RunLock(store, {"actor": actor, "trigger": "health", "target": None, "since": facts.now,
                            "pid": os.getpid()})
    restarted: List[str] = []
    try:
        facts, p = _decide(host, facts, fix, lock.take, lambda: _checkout_head(manager))
        if p.kind == "restart":
            store.update({"restarts": list(p.restarts or ())})
            restarted = _restart(manager, host, p.services, timeout, probe)
        if restarted:  # look again, outside the lock, and decide what to report (a record takes it again)
            lock.release()
            checks, held = _look(manager, host, probe)
            facts = replace(facts, sick=tuple((r.service, r.message) for r in checks if not r.ok), held=held,
                            restarted=tuple(restarted), before=tuple(m for _, m in facts.sick), lock=None)
            facts, p = _decide(host, facts, fix, lock.take, lambda: _checkout_head(manager))
        if p.record:  # under the lock: no run changes the host or says its verdict meanwhile
            store.record(*healthy_again(host.name, "health", actor, facts.deployed, restarted,
                                        duration=time.monotonic() - started, check=facts.last_check,
                                        after_broken=True))  # it records only after a broken run (_decide)
    finally:
        lock.release()
    report = _report(host, p, checks, said(p), restarted=restarted)
    if p.notify:
        report.notified = send(*p.notify)
    if p.health is not None:
        store.update({"health": p.health})
    if p.log:
        store.log(_line(host, report))
    if fix and isinstance(store, LocalStore):  # cron's --fix on the host; a plain health is a read, writes nothing
        from .prom import health_done

        health_done(host, report.status, report.code, time.monotonic() - started, report.checks)
        # cron's dead-man's switch, so cron's run only: a person's --fix on the host
        # would hide a dead cron (docs/monitor.md); never the run's result (host/heartbeat.py)
        if host.heartbeat is not None and trigger == "cron":
            from .heartbeat import beat

            beat(host.heartbeat, store.paths.state, "health", report.status)
    return report


HEALTH_TRIGGERS = ("cron", "manual")


def health_trigger(trigger: Optional[str]) -> str:
    """Who runs health: `cron` when cron's line says so (fabops/cron.py),
    else `manual`. Said by the caller, never guessed on the host
    (docs/monitor.md, "Heartbeat: the dead-man's switch"); anything else is a UsageError (exit 64)."""
    if trigger is None:
        return "manual"
    if trigger not in HEALTH_TRIGGERS:
        raise errors.UsageError(f"health --trigger must be cron or manual, not {trigger!r}")
    return trigger


class _RunLock:
    """The host lock as one health run gathers it: `take` answers
    plan_health's Need("lock") (LockedError: the holder, as the fact),
    `release` gives it back (again: nothing)."""

    def __init__(self, store: Store, info: dict):
        self.store, self.info, self.held = store, info, None

    def take(self, facts: HealthFacts) -> HealthFacts:
        try:
            self.held = self.store.lock(self.info)
        except LockedError as exc:
            return replace(facts, lock=exc.message)
        # state.json read again under the lock: a run that just restarted
        # counts in the budget, a run that just ended says its verdict; the
        # checkout's commit is asked again (head=None): a reset that held
        # the lock may have moved it
        return replace(facts, lock="", head=None, **_stated(self.store.load()))

    def release(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.release()


def _restart(manager, host: Host, services: Tuple[str, ...], timeout: float, probe) -> List[str]:
    """Restart `services` in inventory order, each polled until ready; the
    first that is not ready stops the rest. The ones restarted."""
    restarted: List[str] = []
    for svc in host.services:
        if svc.name not in services:
            continue
        manager.restart(svc)
        ready = wait_ready(manager, svc, timeout=min(timeout, svc.timeout) if timeout else svc.timeout, probe=probe)
        restarted.append(svc.name)
        if not ready.ok:
            break
    return restarted


def _decide(host: Host, facts: HealthFacts, fix: bool, lock: Callable[[HealthFacts], HealthFacts],
            head: Callable[[], str]) -> Tuple[HealthFacts, HealthPlan]:
    """plan_health, gathering each fact it asks for (`lock`: the host lock,
    `head`: the checkout's commit) until it decides. The real run and the
    dry run share this; `lock` takes the lock in one and reads its holder
    in the other."""
    p = plan_health(host, facts, fix)
    while isinstance(p, Need):
        facts = replace(facts, head=head()) if p.fact == "head" else lock(facts)
        p = plan_health(host, facts, fix)
    return facts, p


def plan_only(host: Host, *, fix: bool, store: Store, manager, probe=None, holder: Callable[[], dict],
              channels: Optional[Channels] = None) -> HealthReport:
    """`health [--fix] --dry-run`: the real run's look and plan_health's
    decision, rendered (`would`): no lock taken (`holder` only reads who
    has it), no restart, no state, no history or log line, no
    notification (`channels`: where the real run's would go)."""
    from .lock import describe_holder

    def read_holder(facts: HealthFacts) -> HealthFacts:
        who = holder()
        return replace(facts, lock=f"locked: {describe_holder(who)}" if who else "")

    look = _look(manager, host, probe)
    _, p = _decide(host, _facts(look, store.load(), time.time()), fix, read_holder,
                   lambda: _checkout_head(manager))
    return _report(host, p, look[0], said_would(p), would=list(actions(p, channels)))


def _line(host: Host, report: HealthReport) -> str:
    """The health log's line: the Nagios word once, as `health` prints it
    (report.health_lines): `local OK ok: …` said the status twice."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"{stamp} {host.name} {errors.NAMES.get(report.code, report.code)}: {report.message}"


__all__ = ["HealthReport", "LocalStore", "Store", "run_health", "plan_health", "plan_only", "Readiness"]
