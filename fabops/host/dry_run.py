"""`local-update --dry-run` (and so `deploy --dry-run`): the real run's
read-only part, planned by the pipeline's own code (docs/architecture.md,
"The pipeline"). DryRun is a Pipeline whose body fetches into a ref of its
own, reads the lock holder without taking the lock, runs the same preflight
checks, and writes nothing. Standard library only (the host's Python 3.9)."""
from __future__ import annotations

import time

from .git import paths_match
from .lock import describe_holder, peek_holder
from .pipeline import Pipeline, _Abort
from .queue import lock_wait
from .record import short
from .state import load_state


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
        deployed = state.deployed or head
        self.res.from_, self.res.to = state.deployed, target
        changed = self.git.changed(deployed, target) if deployed else None
        moving = target != deployed or head != deployed
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
            self.res.result, self.res.message = "noop", f"up to date at {short(target)}"
            return
        if self.opts.trigger == "cron":  # what cron would do with this target (see _converge)
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
