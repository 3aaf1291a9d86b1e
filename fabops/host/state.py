"""state.json: what this host has deployed and what it knows about targets."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from .files import atomic_write

# Automatic restarts of a sick service: at most RESTART_LIMIT within
# RESTART_WINDOW seconds, then a person is needed. One budget, kept in
# state's `restarts`, shared by the pipeline's no-op path and `health --fix`.
RESTART_LIMIT = 3
RESTART_WINDOW = 3600.0


def recent_restarts(restarts, now: float) -> List[float]:
    """The restarts that still count against the budget at `now`."""
    return [t for t in (restarts or []) if now - t < RESTART_WINDOW]


@dataclass
class State:
    deployed: Optional[str] = None  # last commit deployed AND healthy
    deployed_at: Optional[float] = None
    previous: Optional[str] = None  # the good commit before `deployed`
    pin: Optional[str] = None  # set by rollback / deploy --ref: cron keeps it
    pin_reason: Optional[str] = None
    bad: Dict[str, dict] = field(default_factory=dict)  # sha -> {at, reason, notified}
    last_check: Optional[float] = None
    last_result: Optional[str] = None
    in_progress: Optional[dict] = None  # {run_id, trigger, from, to, step, since}
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

    @classmethod
    def from_dict(cls, data: dict) -> "State":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


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
    atomic_write(path, state.to_json() + "\n")
