"""Who waits for the host lock, and for how long (docs/architecture.md,
"The pipeline"): the lock itself is host/lock.py; this is the policy a run
applies to it.

- By default a run that finds the lock held stops at once (exit 4): the
  holder is mid-change (fetch to gate) and nobody should queue blindly.
- A deploy from CI (the `ci` trigger the laptop sends: SSH does not forward
  $CI) waits up to CI_WAIT (a push while cron runs).
- A deploy whose target the holder is already deploying waits for that run
  and reports its result (the CI-versus-cron race after a push): it does
  not deploy that target again, even when the holder's run failed (the
  waiter's `same_target` names that holder).
- A deploy that meets a run in its watch (the service already serves; the
  holder only watches it) waits for what is left of the watch, then plans
  again: a watch never locks people out.
- rollback, reset and restart are emergency tools: they ask the watching
  run to end its watch (a file the watch polls), and take the lock as soon
  as it has recorded that, never waiting out the watch.

Standard library only: runs under cron on the host's Python 3.9."""
from __future__ import annotations

import json
import math
import time
from typing import Callable, Dict, Optional, Tuple

from .files import atomic_write, tail_jsonl

CI_WAIT = 300.0  # seconds a deploy from CI waits for the lock
DEPLOY_TRIGGERS = ("deploy", "ci", "promote")  # promote deploys as `deploy --ref` does (docs/environments.md)
EMERGENCY_TRIGGERS = ("rollback", "reset", "restart")
# The emergency tools that move the deployed commit: a deploy queued behind
# a watch that one of them ended must not undo it (overtaken_by)
MOVING_TRIGGERS = ("rollback", "reset")
# After a watch's last second the holder promotes and records: a deploy
# waiting for the watch gives it this long more before calling it stuck.
WATCH_GRACE = 15.0
# How long an emergency tool waits for a watching run to see its request
# (the watch polls every 0.5 s) and record the watch's end.
END_WAIT = 20.0


def lock_wait(trigger: str, wait: Optional[float]) -> float:
    """Seconds to wait for any holder: --wait, else CI_WAIT for a deploy
    from CI, else 0."""
    if wait is not None:
        return wait
    return CI_WAIT if trigger == "ci" else 0.0


def watch_left(holder: dict, now: Optional[float] = None) -> Optional[float]:
    """Seconds left of the holder's watch (with the grace to promote), or
    None when the holder is not watching: it is mid-change."""
    if holder.get("phase") not in ("watch", "promote"):
        return None
    try:
        ends = float(holder.get("watch_ends") or 0)
    except (TypeError, ValueError):
        return None
    left = ends + WATCH_GRACE - (time.time() if now is None else now)
    return left if left > 0 else None


def watch_remaining(holder: dict, now: Optional[float] = None) -> Optional[float]:
    """Seconds left of the holder's watch itself, as its record says (0
    once it has ended: the holder promotes and records, within the grace),
    or None when a deploy does not wait for it (watch_left)."""
    now = time.time() if now is None else now
    if watch_left(holder, now) is None:
        return None
    return max(0.0, float(holder["watch_ends"]) - now)


def request_watch_end(path: str, trigger: str, actor: str, run_id: str, watcher: str) -> None:
    """Ask the run `watcher`, watching on this host, to end its watch now
    (host/readiness.watch polls `path`)."""
    atomic_write(path, json.dumps({"trigger": trigger, "actor": actor, "run_id": run_id, "for": watcher,
                                   "at": time.time()}) + "\n")


def watch_end_request(path: str, since: float, watcher: Optional[str] = None) -> Optional[dict]:
    """The request to end `watcher`'s watch (any run's, when None) made at
    or after `since` (wall clock), or None. The file is the deploy user's
    to write: anything malformed, from the future or for another run is no
    request, never an error that stops a run."""
    try:
        with open(path, encoding="utf-8") as fh:
            req = json.loads(fh.read() or "{}")
        at = float(req.get("at") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    # reset and restart write the host's `date +%s`, whole seconds: a request
    # made in the second the watch began counts
    if at < int(since) or at > time.time() + 5:
        return None
    if watcher is not None and req.get("for") != watcher:
        return None
    return req


def overtaken_by(trigger: str, end_path: str, since: float) -> Optional[str]:
    """Why a deploy that waited for the lock must not act, or None: a
    rollback or reset was asked while it waited. Both want the lock when the
    watch ends, and whichever flock wakes first gets it; a queued deploy
    that won would ship over an operator's emergency (and a person's deploy
    clears the rollback's pin). The operator wins either way: this deploy
    stops (superseded), before or after the rollback ran. `since` is when
    this run began to wait, on the wall clock (the request carries the
    host's `date +%s`)."""
    if trigger not in DEPLOY_TRIGGERS:
        return None
    req = watch_end_request(end_path, since)
    if not req or req.get("trigger") not in MOVING_TRIGGERS:
        return None
    return (f"not deployed: a {req['trigger']} by {req.get('actor') or '?'} was asked while this deploy "
            f"waited, and an emergency tool outranks a queued deploy; deploy again once it is done")


def lock_waiter(trigger: str, our_target: Callable[[], Optional[str]], end_path: str, actor: str, run_id: str,
                wait: Optional[float] = None, longest_watch: Optional[float] = None):
    """The predicate the lock polls with the holder's record: True while
    this run should keep waiting beyond its plain --wait (see the module's
    rules). `our_target` is asked once, and only when a holder names a
    target (ls-remote costs a round trip to the remote). An explicit
    --wait 0 keeps a deploy from waiting for a watch. `longest_watch`
    (this host's longest watch in our inventory) caps the wait for one
    watch: the holder's record says when its watch ends, but a record
    with a far end (a clock step, a hand edit, another release's watch)
    must not hold a deploy for longer than a watch of ours could last."""
    cache: Dict[str, object] = {}

    def watching(holder: dict, now: float) -> bool:
        if watch_left(holder, now) is None:
            return False
        if longest_watch is None:
            return True
        key = f"watch:{holder.get('run_id')}"
        first = float(cache.setdefault(key, now))  # type: ignore[arg-type]
        return now < first + longest_watch + WATCH_GRACE

    def should_wait(holder: dict) -> bool:
        now = time.time()
        if trigger in EMERGENCY_TRIGGERS:
            if holder.get("phase") not in ("watch", "promote") and "asked" not in cache:
                return False
            if "asked" not in cache:
                request_watch_end(end_path, trigger, actor, run_id, str(holder.get("run_id") or ""))
                cache["asked"] = now
            return now < float(cache["asked"]) + END_WAIT  # type: ignore[arg-type]
        if trigger not in DEPLOY_TRIGGERS:
            return False
        target = holder.get("target")
        if target:
            if "ours" not in cache:
                cache["ours"] = our_target()
            # the run deploying our target, whose result is ours (in its
            # change or its watch alike); a holder of another target since
            # is not it. A record read empty (the holder letting go) keeps it.
            should_wait.same_target = holder if cache["ours"] == target else None  # type: ignore[attr-defined]
        if wait != 0 and watching(holder, now):
            return True
        return bool(target) and cache["ours"] == target

    should_wait.same_target = None  # type: ignore[attr-defined]
    return should_wait


def lock_verdict(trigger: str, wait: Optional[float], holder: dict) -> Tuple[str, str]:
    """What a run that meets `holder` does ("take": nobody holds the lock;
    "wait", "end_watch" or "locked"), and the line that says so: the dry
    run's reading of the rules above (the real run applies them while it
    polls the lock: lock_waiter)."""
    from .lock import describe_holder

    if not holder:
        return "take", ""
    who = describe_holder(holder)
    if trigger in EMERGENCY_TRIGGERS and holder.get("phase") in ("watch", "promote"):
        return "end_watch", f"after ending the watch of {who}"
    left = watch_left(holder)
    if trigger in DEPLOY_TRIGGERS and wait != 0 and left is not None:
        return "wait", f"after waiting up to {left:.0f} s for the watch of {who}"
    seconds = lock_wait(trigger, wait)
    if seconds:
        return "wait", f"after waiting (up to {seconds:g} s) for the lock: locked now: {who}"
    return "locked", locked_line(trigger, holder)


def locked_line(trigger: str, holder: dict, followable: bool = False) -> str:
    """The line of a run that meets the lock held and stops (`locked`, exit
    4): the real run's and its dry run's. The holder whole, its run id
    too (a summary wraps it, never cuts it), and the next steps: --wait
    (reset and restart take none), and, for a holder whose run writes its
    events (`followable`: a deploy's or rollback's runs/<id>.jsonl),
    --attach (#24's trial: `… run 20…`, and no way on named)."""
    from .lock import describe_holder

    steps = [] if trigger in ("reset", "restart") else ["use --wait SECONDS to queue behind it"]
    if followable and holder.get("run_id"):
        steps.append(f"--attach {holder['run_id']} to follow it")
    return f"locked: {describe_holder(holder)}" + (f" ({', or '.join(steps)})" if steps else "")


def ended_watch_line(holder: dict, trigger: str) -> str:
    """What an emergency tool says once it has ended a run's watch: whose,
    and what becomes of that run's commit (restart leaves it to the next
    run to finish; reset replaces it)."""
    from .lock import describe_holder

    then = "this reset replaces it" if trigger == "reset" else "the next run finishes it"
    return f"ended the watch of {describe_holder(holder)}: its commit is not promoted; {then}"


def waiting_line(holder: dict, trigger: str) -> str:
    """What a waiting run says (every few seconds: a countdown)."""
    from .lock import describe_holder

    who = describe_holder(holder)
    if trigger in EMERGENCY_TRIGGERS and holder.get("phase") in ("watch", "promote"):
        return f"ending the watch of {who} ({trigger} acts at once)"
    now = time.time()
    watching = watch_remaining(holder, now)
    if watching is not None:
        # the watch's own countdown (3 s for a 3 s watch), not the grace
        # this run allows the holder past it (WATCH_GRACE): said apart,
        # once the watch is over and the holder has yet to let go
        if watching > 0 and holder.get("phase") == "watch":
            return f"waiting for the watch of {who}: {math.ceil(watching)} s left"
        return f"waiting for {who} to finish after its watch: up to {math.ceil(watch_left(holder, now))} s more"
    return f"waiting for the lock held by {holder.get('actor', '?')} ({holder.get('trigger', '?')})"


def record_of(history: str, run_id: Optional[str]) -> Optional[dict]:
    """The history record of the run `run_id`, or None when it left none
    (a no-op, or a run killed before it recorded)."""
    for rec in reversed(tail_jsonl(history, 20)):
        if run_id and rec.get("run_id") == run_id:
            return rec
    return None


def result_of(history: str, holder: dict) -> Optional[Tuple[str, str]]:
    """(result, message) of the run we waited for, from the history; None
    when it left no record (it was a no-op)."""
    rec = record_of(history, holder.get("run_id"))
    if rec is None:
        return None
    return (rec.get("result", "noop"),
            # how it ended is the last `; ` clause: a line cut to
            # 80 columns keeps it (render.keep_reason)
            f"waited for run {holder['run_id']} ({holder.get('trigger')} by {holder.get('actor')}); "
            f"it ended {rec.get('result')}: {rec.get('message')}")
