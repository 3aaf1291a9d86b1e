"""`local-update --dry-run` (and so `deploy --dry-run`): the real run's
read-only part, planned by the pipeline's own code (docs/architecture.md,
"The pipeline"). DryRun is a Pipeline whose body fetches into a ref of its
own, reads the lock holder without taking the lock, runs the same preflight
checks, and writes nothing. Standard library only (the host's Python 3.9)."""
from __future__ import annotations

import time

from .git import paths_match
from .lock import describe_holder, peek_holder
from .pipeline import FOLLOWERS, Pipeline, _Abort
from .queue import lock_wait
from .record import short
from .readiness import quick_health
from .state import RESTART_LIMIT, load_state, recent_restarts


class DryRun(Pipeline):
    PLANS = True

    def _body(self) -> None:
        """The real run's read-only part: fetch, then every preflight check
        (lock holder, disk, local changes, .env keys) without the lock and
        without writing anything. The result is what the real run would do:
        noop, would_deploy, would_abort (with its reason) or locked, so the
        exit code is the one the real run would have."""
        state = load_state(self.paths.state)
        holder = peek_holder(self.paths.lock)
        try:
            target = self._fetch_and_resolve(state)
        except _Abort as exc:
            self.res.result, self.res.message = "would_abort", exc.message
            return
        head = self.git.head()
        interrupted = state.in_progress
        deployed = state.deployed
        sick = None  # the services that are down, when the real run would look
        if deployed is None and head and not interrupted:
            # the real run adopts a healthy HEAD as deployed; an unhealthy one
            # is a first deploy, a full converge (see _converge)
            sick = [h for h in quick_health(self.services, list(self.host.services)) if not h.ok]
            if not sick:
                deployed = head
        self.res.from_, self.res.to = state.deployed, target
        moving = not (target == deployed and head == deployed and not interrupted)
        changed = self.git.changed(deployed, target) if deployed and not interrupted else None
        rules = [r.run for r in self.host.deps if changed is None or paths_match(changed, r.when)]
        services = [s.name for s in self.host.services if changed is None or not s.paths or paths_match(changed, s.paths)]
        self.res.plan = {
            "from": deployed, "to": target, "changed_files": None if changed is None else len(changed),
            "rules": rules if moving else [], "restart": services if moving else [],
            "dirty": self.git.dirty(), "pin": state.pin, "bad": target in state.bad, "lock": holder or None,
        }
        if holder and not lock_wait(self.opts.trigger, self.opts.wait):
            self.res.result = "locked"
            self.res.message = f"would stop: locked: {describe_holder(holder)} (use --wait SECONDS to queue behind it)"
            return
        queued = (f" after waiting (up to {lock_wait(self.opts.trigger, self.opts.wait):g} s) for the lock: locked now: "
                  f"{describe_holder(holder)}") if holder else ""
        if not moving:
            self._same_commit_plan(state, target, sick)
            return
        if interrupted:
            self.res.warnings.append(f"would finish the interrupted run {interrupted.get('run_id')} "
                                     f"({interrupted.get('trigger')}, step {interrupted.get('step')})")
        if self.opts.trigger in FOLLOWERS:  # what cron would do with this target (see _converge)
            retry = state.retry or {}
            if target in state.bad:
                self.res.result = "skipped_bad"
                self.res.message = (f"would stay on {short(deployed)}: {short(target)} failed its gate "
                                    f"({state.bad[target].get('reason', '?')})")
                return
            if retry.get("target") == target and time.time() < retry.get("next_at", 0):
                self.res.result = "deferred"
                self.res.message = (f"would wait: {short(target)}'s dependency rule failed "
                                    f"({retry.get('reason', '?')}); next try "
                                    f"{time.strftime('%H:%M %Z', time.localtime(retry['next_at']))}")
                return
        with self.step("preflight") as st:
            problems, person, _in_the_way = self._preflight_problems(state, target, st)
            if person and not problems:
                st.message = f"would save {len(person)} local change(s) aside (--stash)"
        self.res.plan["problems"] = problems
        if problems:
            self.res.result, self.res.message = "would_abort", "; ".join(problems)
        else:
            self.res.result = "would_deploy"
            self.res.message = (f"would deploy {short(state.deployed)} -> {short(target)}" if state.deployed
                                else f"would deploy {short(target)} (first deploy)") + queued

    def _same_commit_plan(self, state, target: str, sick) -> None:
        """On the deployed commit the real run checks the services: a no-op
        when they are up, else a restart of those down (or, past the restart
        budget, a stop that needs a person)."""
        if sick is None:
            sick = [h for h in quick_health(self.services, list(self.host.services)) if not h.ok]
        if not sick:
            self.res.result, self.res.message = "noop", f"up to date at {short(target)}"
            return
        down = "; ".join(h.message for h in sick)
        recent = recent_restarts(state.restarts, time.time())
        if len(recent) >= RESTART_LIMIT:
            self.res.result = "would_abort"
            self.res.message = (f"{down}; {len(recent)} automatic restarts in the last hour: would not restart "
                                "again (restart backoff): a person is needed")
            return
        self.res.result = "would_deploy"
        self.res.message = f"{down}: would restart {', '.join(h.service for h in sick)} at {short(target)}"
        self.res.plan["restart"] = [h.service for h in sick]
