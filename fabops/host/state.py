"""state.json: what this host has deployed and what it knows about targets."""
from __future__ import annotations

import json
from dataclasses import asdict, field, replace
from typing import Dict, List, Optional

from ..records import Plain, plain
from .files import atomic_write

# Automatic restarts of a sick service: at most RESTART_LIMIT within
# RESTART_WINDOW seconds, then a person is needed. One budget, kept in
# state's `restarts`, shared by the pipeline's no-op path and `health --fix`.
RESTART_LIMIT = 3
RESTART_WINDOW = 3600.0


def recent_restarts(restarts, now: float) -> List[float]:
    """The restarts that still count against the budget at `now` (what is
    not a time, from a hand edit of state.json, does not count)."""
    counted = [t for t in restarts if isinstance(t, (int, float))] if isinstance(restarts, (list, tuple)) else []
    return [t for t in counted if now - t < RESTART_WINDOW]


def budget_spent_until(restarts, now: float) -> Optional[float]:
    """When the restart budget is spent at `now` (health --fix and the
    pipeline restart nothing more): the time it has room again, as the
    oldest counted restart leaves the window. None while it has room. The
    one reckoning: health --fix, the planner, status and monitor ask it."""
    recent = sorted(recent_restarts(restarts, now))
    if len(recent) < RESTART_LIMIT:
        return None
    return recent[len(recent) - RESTART_LIMIT] + RESTART_WINDOW


def verdict_of(state: dict) -> Optional[dict]:
    """state.json's `verdict` while it stands: the record of a task that
    judged the host without an update check (a person's `restart`,
    `health --fix`: host/record.healthy_again), written with the
    `last_check` it followed (`check`). The next update check writes
    `last_check` again, and the verdict no longer stands: its own
    `last_result` is the host's. No clock is compared (a laptop's restart
    and the host's cron keep different ones); None when there is none."""
    v = state.get("verdict")
    return v if isinstance(v, dict) and "check" in v and v["check"] == state.get("last_check") else None


def host_result(state: dict) -> Optional[str]:
    """The host's last verdict: a standing `verdict`'s result, else the last
    update check's `last_result` (`broken`: a person is needed). What
    monitor, status and health --fix judge by; `last_check` and
    `last_result` stay the last update check's own (docs/monitor.md)."""
    v = verdict_of(state)
    return v.get("result") if v else state.get("last_result")


# The results of a run that follows the branch and stays where it is on
# purpose (host/plan.py: a known-bad target, a retry not due): the host is
# behind what cron cannot deploy now, as after a failure (failing_after)
HOLDS = ("skipped_bad", "deferred", "skipped_unverified")  # the last: an unsigned target (host/plan._signed)
FAILED = ("aborted", "rolled_back", "broken")


def failing_after(failing, result: str, target: Optional[str], deployed: Optional[str], reason: str,
                  now: float) -> Optional[dict]:
    """state.json's `failing` once an update check ended `result` on
    `target` (Recorder.settle, the one writer): what cron cannot deploy
    now. A failure, or a hold (a known-bad target skipped, a retry
    deferred: `reason` is why, its gate's or its rule's), keeps the
    streak of the same target (since, count) and replaces another
    target's (superseded); a run that deployed, or found the deployed
    commit to be its target, ends it; any other result (locked,
    superseded) leaves it, and so does a failure on the deployed commit
    itself (a restart in the backoff, broken: what cron holds back is still
    the held target, and the breakage is the verdict's to say; trial 4 saw
    B's streak replaced, so monitor was OK once a restart cleared it while
    cron still skipped B). Pure (docs/pipeline.md, "No silent failure")."""
    if result in FAILED and target is not None and target == deployed and isinstance(failing, dict) \
            and failing.get("target") not in (None, target):
        return failing
    if result in FAILED or result in HOLDS:
        same = isinstance(failing, dict) and failing.get("target") == target
        kept = dict(failing) if same else {"target": target, "since": now, "count": 0}
        kept.update(result=result, reason=(reason or "")[:300], last=now, count=int(kept.get("count") or 0) + 1)
        return kept
    if result == "deployed" or (result == "noop" and deployed == target):
        return None
    return failing


def failing_of(state: dict, origin: Optional[str] = None) -> Optional[dict]:
    """state.json's `failing` while its cause stands: what monitor and
    status warn of ("behind T: updates failing ...", exit 1) and give in
    --json. Dropped when its target is deployed, and when it is a
    `broken` run's that a standing verdict (a person's restart, health
    --fix: verdict_of) cleared: the host's breakage is its verdict's to
    say. With none standing, the hold cron's next run will record
    (held_back) when `origin`, the branch's head as the checkout last
    fetched it, is a known-bad commit. The one rule both read by
    (docs/monitor.md)."""
    failing = state.get("failing")
    if not isinstance(failing, dict) or not failing.get("target"):
        return held_back(state, origin)
    if failing["target"] == state.get("deployed"):
        return held_back(state, origin)
    if failing.get("result") == "broken" and host_result(state) != "broken":
        return held_back(state, origin)
    return failing


def held_back(state: dict, origin: Optional[str]) -> Optional[dict]:
    """What cron will hold back before any run has: `origin` (the branch's
    head as last fetched) when it is on state's `bad` list, not deployed,
    and no pin keeps cron elsewhere. A rollback's deploy ends the
    `failing` record and `unpin` writes none, so until cron's next run
    recorded `skipped_bad`, status and monitor said OK while cron could
    not move (#24's trial). In the record's shape, as a hold no run has
    made yet: count 0, no `since` (host/plan._hold_bad decides the hold)."""
    bad = state.get("bad")
    if not origin or state.get("pin") or origin == state.get("deployed") or not isinstance(bad, dict) \
            or origin not in bad:
        return None
    info = bad[origin] if isinstance(bad[origin], dict) else {}
    return {"target": origin, "result": "skipped_bad", "reason": info.get("reason") or "?", "since": None,
            "count": 0, "last": None}


def bad_entry(reason: str, run_id: str, at: Optional[float] = None) -> dict:
    """A commit's entry in state's `bad` (a deploy's failed gate, a reset
    whose service died): merge_state_file's `bad` marks it."""
    import time

    return {"at": time.time() if at is None else at, "reason": reason[:300], "notified": False, "run_id": run_id}


@plain
class State(Plain):
    deployed: Optional[str] = None  # last commit deployed AND healthy
    deployed_at: Optional[float] = None
    previous: Optional[str] = None  # the good commit before `deployed`
    pin: Optional[str] = None  # set by rollback / deploy --ref: cron keeps it
    pin_reason: Optional[str] = None
    bad: Dict[str, dict] = field(default_factory=dict)  # sha -> {at, reason, notified}
    # the last update check (a pipeline run: cron's, a deploy's, a rollback's)
    # and its result; a reset writes them too (maintenance/reset.py). A
    # person's restart and health --fix write `verdict` instead, a key the
    # pipeline reads (its planner decides on the host's verdict: result())
    # and never writes (StateFile.save)
    last_check: Optional[float] = None
    last_result: Optional[str] = None
    verdict: Optional[dict] = None
    # the BROKEN a run last recorded (its message): a poll that finds the
    # same again adds no history line (one record, one notification)
    broken_said: Optional[str] = None
    in_progress: Optional[dict] = None  # {run_id, trigger, from, to, pin, step, since}
    restarts: List[float] = field(default_factory=list)  # automatic restarts (backoff)
    health: Dict[str, object] = field(default_factory=dict)  # {status: ok|down, since, backoff_notified}
    # Updates that keep failing while origin is ahead (docs/pipeline.md, "No
    # silent failure"): {target, result, reason, since, count, last}
    failing: Optional[dict] = None
    # A target whose dependency rule failed (often the network): retried by
    # cron with backoff, never marked bad. {target, attempts, next_at, reason}
    retry: Optional[dict] = None
    # (target, result, step) keys already notified, so a failure that repeats
    # every cron run is told once
    notified: List[str] = field(default_factory=list)
    # Untracked files that fabops' own steps (dependency rules) created, e.g.
    # a package-lock.json written by `npm install`: not a person's work, so
    # they never make a later run refuse (docs/pipeline.md, "Local changes").
    own_files: List[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def result(self) -> Optional[str]:
        """The host's last verdict (host_result): a standing verdict's (a
        person's restart, health --fix), else the last update check's
        `last_result`. What the planner decides on (host/plan.py): a
        `broken` that a verdict since found healthy is broken no more."""
        return host_result({"verdict": self.verdict, "last_check": self.last_check, "last_result": self.last_result})

    @classmethod
    def from_dict(cls, data: dict) -> "State":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def pin_reason(trigger: str, actor: str) -> str:
    """Why the host is pinned, as state's `pin_reason` says it."""
    return f"{trigger} by {actor}"


def promoted(state: State, deployed: Optional[str], target: str, pin: bool, at: float,
             reason: Optional[str] = None, unpin: bool = False) -> State:
    """The state once `target`, deployed over `deployed` (None: a first
    deploy), has passed its gate and watch: the one decision of what
    promotion writes, made for the real run (Pipeline._promote) and for
    the dry run that plans from where a watch leaves the host
    (dry_run.held_state), so the two cannot drift apart. `deployed` is
    the commit the run planned from; `pin` (a deploy --ref, a rollback)
    pins the host to `target` for `reason` (pin_reason); `at` is the
    promotion's time; `unpin` (a deploy without --ref) clears the pin:
    only a promotion does, an aborted or rolled-back run leaves it
    (docs/pipeline.md, step 3). Pure: `state` is not changed."""
    changes = dict(
        deployed=target, deployed_at=at, in_progress=None,
        previous=deployed if deployed and deployed != target else state.previous,
        bad=marked_bad(state.bad, target, None))
    if pin:
        changes.update(pin=target, pin_reason=reason)
    elif unpin:
        changes.update(pin=None, pin_reason=None)
    return replace(state, **changes)


def load_state(path: str) -> State:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return State()
    except ValueError:
        # A corrupt state file must not wedge the host: start over, and the
        # pipeline adopts a healthy HEAD again.
        return State()
    return State.from_dict(data) if isinstance(data, dict) else State()


def save_state(path: str, state: State) -> None:
    """Write the whole of `state` (a new home, a test's fixture). A run
    that shares the file with others saves through StateFile."""
    atomic_write(path, state.to_json() + "\n")


def marked_bad(current, sha, entry, kept=20):
    """state's `bad` with `sha` marked (entry: bad_entry's), keeping the
    `kept` most recent, or cleared (entry None): the one rule for a
    deploy's failed gate (pipeline._mark_bad), a promotion (promoted) and
    a reset (maintenance/reset), applied by merge_state_file to the file's
    `bad` under its lock. Self-contained: sent with merge_state_file."""
    marked = dict(current) if isinstance(current, dict) else {}
    marked.pop(sha, None)
    if entry is None:
        return marked
    marked[sha] = entry  # the newest last: the oldest go past the cap
    at = {k: v.get("at", 0) if isinstance(v, dict) else 0 for k, v in marked.items()}
    return {k: marked[k] for k in sorted(marked, key=lambda k: at[k])[-kept:]}


def merge_state_file(path, updates, defaults=None, bad=None, fold=None):
    """The one merge of state.json: set the keys in `updates` and those of `defaults` the file lacks;
    mark or clear `bad` ([sha, entry]: marked_bad); let `fold` change the state in place (host/prom.py's
    counters); keep every other key as it is, atomically (temp file, fsync, rename) under an exclusive
    flock of the home directory, so two writers (a run, cron's `health`, `unpin`) never lose each other's
    keys. Returns (the keys' values before, the state after). Self-contained: remote.py sends it and
    marked_bad to a host without fabops (python3 -c)."""
    import fcntl
    import json
    import os
    import time

    home = os.path.dirname(path) or "."
    os.makedirs(home, mode=0o700, exist_ok=True)
    dfd = os.open(home, os.O_RDONLY)
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)  # released when dfd closes
        try:
            with open(path, encoding="utf-8") as fh:
                state = json.load(fh)
        except OSError:  # none yet
            state = {}
        except ValueError:
            state = None
        if not isinstance(state, dict):
            # corrupt (a hand edit's typo): start over, as load_state does,
            # but never without a copy: the bytes move aside first
            if state is None or os.path.exists(path):
                os.replace(path, "%s.corrupt-%d" % (path, time.time_ns()))
            state = {}
        before = {k: state.get(k) for k in updates}
        state.update({k: v for k, v in (defaults or {}).items() if k not in state})
        state.update(updates)
        if bad:
            state["bad"] = marked_bad(state.get("bad"), bad[0], bad[1])
        if fold:
            fold(state)
        # as tempfile.mkstemp, without its import (5 ms of a cron poll); the flock keeps writers out
        tmp = "%s/.tmp-%d-%d" % (home, os.getpid(), time.time_ns())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            os.fsync(dfd)  # the rename made durable; as atomic_write, a filesystem that refuses is no error
        except OSError:
            pass
        return before, state
    finally:
        os.close(dfd)


class StateFile:
    """state.json as one run holds it: loaded once, kept in memory, and
    each save merges only the fields this run changed since it last
    loaded or saved (merge_state_file), so what another writer set in the
    meantime (health's status, an unpin) survives, and the run's State
    then holds it too. Nothing re-reads the file mid-run."""

    def __init__(self, path: str):
        self.path = path
        self._base: Optional[dict] = None
        self.saved: Optional[dict] = None  # the whole file as the last save left it (host/prom.py reads it)

    def load(self) -> State:
        state = load_state(self.path)
        self._base = asdict(state)  # asdict copies: later edits of state do not reach it
        return state

    def save(self, state: State, bad=None, fold=None) -> None:
        """`bad`: [sha, entry] marked or cleared in the merge; `fold`: a
        change of the whole file in the same merge (merge_state_file)."""
        # `verdict` is read, never written: a person's restart and health
        # --fix own it (host/record.healthy_again), and an update check ends
        # it by its own last_check (verdict_of)
        mine = {k: v for k, v in asdict(state).items() if k != "verdict"}
        base = self._base or {}
        changed = {k: v for k, v in mine.items() if k not in base or base[k] != v}
        if not changed and self._base is not None and bad is None and fold is None:
            return
        _, merged = merge_state_file(self.path, changed, defaults=mine, bad=bad, fold=fold)
        self.saved = merged
        fresh = State.from_dict(merged)
        state.__dict__.update(fresh.__dict__)
        self._base = asdict(state)
