"""Who waits for the host lock, and for how long (docs/architecture.md,
"The pipeline"): the lock itself is host/lock.py; this is the policy a run
applies to it. By default a run that finds the lock held stops at once
(exit 4). A deploy from CI waits (a push while cron runs), and a deploy
whose target the holder is already deploying waits for that run and reports
its result instead of a bare no-op (the CI-versus-cron race after a push).
Standard library only: runs under cron on the host's Python 3.9."""
from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Tuple

from .files import tail_jsonl

CI_WAIT = 300.0  # seconds a deploy under CI=true waits for the lock
DEPLOY_TRIGGERS = ("deploy", "ci")


def lock_wait(trigger: str, wait: Optional[float]) -> float:
    """Seconds to wait for the lock: --wait, else CI_WAIT for a deploy under
    CI=true, else 0."""
    if wait is not None:
        return wait
    ci = os.environ.get("CI", "").lower() == "true"
    return CI_WAIT if ci and trigger in DEPLOY_TRIGGERS else 0.0


def same_target_waiter(trigger: str, our_target: Callable[[], Optional[str]]):
    """For a deploy: a predicate on the lock holder's record, true when the
    holder deploys our very target (then we wait for it). `our_target` is
    asked once, and only when a holder names a target (ls-remote costs a
    round trip to the remote). None for other triggers: they never wait."""
    if trigger not in DEPLOY_TRIGGERS:
        return None
    cache: Dict[str, Optional[str]] = {}

    def should_wait(holder: dict) -> bool:
        target = holder.get("target")
        if not target:
            return False
        if "ours" not in cache:
            cache["ours"] = our_target()
        return cache["ours"] == target

    return should_wait


def result_of(history: str, holder: dict) -> Optional[Tuple[str, str]]:
    """(result, message) of the run we waited for, from the history; None
    when it left no record (it was a no-op)."""
    for rec in reversed(tail_jsonl(history, 20)):
        if rec.get("run_id") == holder.get("run_id"):
            return (rec.get("result", "noop"),
                    f"waited for run {holder['run_id']} ({holder.get('trigger')} by {holder.get('actor')}), "
                    f"which ended {rec.get('result')}: {rec.get('message')}")
    return None
