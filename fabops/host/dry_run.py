"""`local-update --dry-run` (and so `deploy --dry-run`): the real run's
gathering and the real run's decision (host/plan.py), rendered instead of
executed (docs/architecture.md, "Plans"). DryRun is a Pipeline that fetches
into refs of its own, reads the lock holder without taking the lock, and
writes nothing. `runner` is the one switch between the two (host/update.py).
Standard library only (the host's Python 3.9)."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterator, Type

from .. import errors
from .lock import describe_holder, peek_holder
from .git import Git
from .pipeline import Pipeline, Abort
from .plan import Facts, Plan
from .queue import lock_verdict, locked_line, watch_left
from .record import short
from .state import State, load_state, pin_reason, promoted
from .would import Would, as_json, watched


class DryRun(Pipeline):
    verdict = "take"  # what the run does at the lock (queue.lock_verdict), read in _body

    def _git(self) -> Git:
        # fetches into refs of its own: the real run's remote-tracking refs
        # (what it compares against) stay as they were
        return Git(self.t, self.app, self.host.env, scratch=True)

    def _sample(self) -> None:
        """A plan is not a poll: it adds no trend sample."""

    def _install_settings(self, sent) -> None:
        """Plans with the sent settings as the real run would, installing
        nothing: their kept/changed warnings say what it would install."""

    def _body(self) -> None:
        """Gather as the real run does (fetch, then what the planner asks
        for), without the lock and without writing, and say the plan. The
        exit code is the one the real run would have."""
        holder = peek_holder(self.paths.lock)
        verdict, why = lock_verdict(self.opts.trigger, self.opts.wait, holder)
        if verdict == "locked":  # the real run's line, --attach and all (Pipeline.run)
            why = locked_line(self.opts.trigger, holder, self._followable(holder))
        self.verdict = verdict
        state = held_state(load_state(self.paths.state), holder, verdict)
        try:
            p, facts = self._decide(state)
        except Abort as exc:
            self.res.result, self.res.message = "would_abort", exc.message
            return
        except errors.UsageError as exc:  # an unknown --ref: the real run stops there too, exit 64
            self.res.result, self.res.message, self.res.usage = "would_abort", exc.message, True
            return
        self.res.from_ = p.from_  # the real run's, adopted HEAD and moved checkout alike (Pipeline._act)
        self.res.warnings.extend(p.warnings)
        self.res.known_bad = p.known_bad  # the real run's exit code (RunResult.exit_code)
        self.res.plan = render(self.host, p, facts, state, holder, self.opts.trigger)
        if verdict == "locked":
            # the real run stops at the lock before it acts: none of the
            # plan's writes happen, so the dry run lists none, and says the
            # lock's line once (its message starts with its result word:
            # report.said_once), as the real run does
            self.res.plan.update(rules=[], restart=[], would=as_json([Would("stop", "-", why)]))
            self.res.result, self.res.message = "locked", why
            return
        self.res.result = dry_result(p)
        self.res.message = said(p)
        left = watch_left(holder) if verdict == "wait" else None
        if left is not None:
            # the real run waits for the watch, then plans again: what it
            # plans then, if the watch passes, is this plan
            wait = Would("wait", "-", f"up to {left:.0f} s for the watch of {describe_holder(holder)}, then plan again")
            self.res.plan["would"] = as_json([wait]) + self.res.plan["would"]
            self.res.message = (f"would wait up to {left:.0f} s for the watch of {describe_holder(holder)}, "
                                f"then plan again; if its watch passes: {self.res.message}")
        elif verdict != "take":
            self.res.message += f" ({why})"

    def _ended_watch(self, state: State) -> bool:
        """An emergency tool ends the holder's watch before it plans
        (lock_verdict's end_watch): the holder's run is then the one whose
        watch this run ended."""
        return bool(state.in_progress) and self.verdict == "end_watch"


def held_state(state: State, holder: dict, verdict: str) -> State:
    """The state the real run would plan from once it has the lock. A run
    in progress that is the lock's live holder is not interrupted: the real
    run meets it at the lock first. A deploy waits for its watch, then plans
    from what the watch leaves once it passes (the holder's target
    deployed); an emergency tool ends the watch and finishes that run
    (state as it is); any other run meets a holder mid-change (locked, or
    waiting for the lock) and plans without its in_progress. What the
    watch leaves is the real run's promotion (state.promoted), pin and
    all: a deploy --ref pins the host as it is promoted."""
    ours = state.in_progress or {}
    if not holder or not ours or ours.get("run_id") != holder.get("run_id") or verdict == "end_watch":
        return state
    left = watch_left(holder) if verdict == "wait" else None
    if left is not None and ours.get("to"):
        return promoted(state, state.deployed, ours["to"], bool(ours.get("pin")), time.time() + left,
                        pin_reason(str(ours.get("trigger")), str(holder.get("actor"))),
                        unpin=bool(ours.get("unpin")))
    return replace(state, in_progress=None)


# A dry run's result for each kind of plan: the real run's own when the
# plan alone decides it (noop; a hold says skipped_bad or deferred), else
# what it would do, with the real run's exit code (record.RESULT_CODES).
RESULTS = {"noop": "noop", "restart": "would_deploy", "deploy": "would_deploy", "abort": "would_abort"}


def dry_result(p: Plan) -> str:
    """The dry run's result for plan `p`. An abort whose result is
    `broken` (the last run's BROKEN stands under a hold, or the automatic
    restart budget is spent: host/plan._tended, _on_the_deployed_commit)
    is no refusal: the real run records that verdict and exits 5, so its
    dry run is `would_break`, exit 5 (docs/pipeline.md, "--dry-run")."""
    if p.kind == "abort" and p.result == "broken":
        return "would_break"
    return RESULTS.get(p.kind) or p.result


def said(p: Plan) -> str:
    """The dry run's message for plan `p`: what the real run would do, in
    the plan's own words."""
    if p.kind in ("noop", "hold"):
        return p.message
    if p.kind == "abort":
        return f"would record broken: {p.message}" if p.result == "broken" else f"would stop: {p.message}"
    return f"would {p.message}"


def render(host, p: Plan, facts: Facts, state, holder: dict, trigger: str = "deploy") -> dict:
    """The plan as the dry run's JSON: what would change (`would`: action,
    target, why), and the facts a person checks it against."""
    acts = p.kind in ("restart", "deploy")
    changed = None if p.full or facts.changed is None else len(facts.changed)
    return {
        "kind": p.kind, "from": p.from_, "to": p.target, "changed_files": changed,
        "rules": [host.deps[i].run for i in p.rules] if acts else [],
        "restart": list(p.services) if acts else [],
        "dirty": list(facts.local_changes), "pin": state.pin,
        # the planner's own line (Plan.known_bad), which the real run says and warns
        "bad": p.known_bad is not None, "known_bad": p.known_bad,
        "problems": [p.message] if p.kind == "abort" else [], "lock": holder or None,
        "would": as_json(actions(host, p, trigger, facts.ended_watch)),
    }


def actions(host, p: Plan, trigger: str = "deploy", ended_watch: bool = False) -> Iterator[Would]:
    """Every write the plan makes, in order, as the one output shape of
    every dry run (`would`, host/would.py). A pin says why: a rollback
    pins by itself (with or without --to), a deploy because of --ref. A
    run in progress is finished first: one whose watch this run ends (an
    emergency tool meeting a watch: `ended_watch`), else an interrupted one."""
    # the pin is cleared where the real run clears it: only by a plan that
    # acts (plan.ACTS; Pipeline._unpin), a deploy's as it promotes
    # (Pipeline._promote): one that aborts or rolls back leaves it
    if p.clear_pin and p.kind != "deploy":
        yield Would("clear pin", "state.json", "a deploy without --ref follows the branch again")
    if p.adopt:
        yield Would("adopt", short(p.adopt), "nothing recorded a deploy and HEAD is healthy")
    if p.finishing and ended_watch:
        yield Would("end watch", str(p.finishing.get("run_id")), f"a {trigger} acts at once: that run's commit is "
                    "not promoted, and this run finishes it first")
    elif p.finishing:
        yield Would("finish", str(p.finishing.get("run_id")), "a run was interrupted: it is finished first")
    if p.kind == "hold":
        yield Would("record" if p.notify else "note", "state.json", p.message)
    elif p.kind == "abort" and p.result == "broken":
        # the real run changes nothing but says the verdict: it records it
        # as any failed run is (Pipeline._act, Recorder.record_unrecorded_failure)
        yield Would("record", "state.json", "last result broken: the host's verdict stands")
        if p.record:  # a repeat of the last run's BROKEN (plan.said_already), or a reset's that stands: no line
            yield Would("record", "history", f"broken: {p.message} (the update log too; notified once)")
    elif p.kind == "abort":
        yield Would("stop", "-", p.message)
    elif p.kind == "restart":
        for name in p.services:
            yield Would("restart", name, "down on the deployed commit")
    elif p.kind == "deploy":
        if p.stash:
            yield Would("stash", "local changes", "--stash: saved aside before the checkout")
        yield from _deploy_actions(host, p, trigger)
        if p.clear_pin:
            yield Would("clear pin", "state.json", f"once the deploy of {short(p.target)} passes (a run that "
                        "stops or rolls back leaves the pin): cron follows the branch again")
    yield from hook_actions(host, p, trigger, ("on_failure",))
    if p.pin:
        yield Would("pin", short(p.pin), ("rollback" if trigger == "rollback" else "--ref")
                    + f": cron stays on it {UNPINNED}" + (" (once its gate and watch pass)" if p.kind == "deploy" else ""))


def _deploy_actions(host, p: Plan, trigger: str) -> Iterator[Would]:
    """A deploy's checkout, rules, hooks, restarts and watch, in the real
    run's order (Pipeline._deploy)."""
    yield Would("checkout", short(p.target), p.message)
    for i in p.rules:
        yield Would("run", host.deps[i].run, "full converge" if p.full else "a file it watches changed")
    yield from hook_actions(host, p, trigger, ("before_restart",))
    for name in p.services:
        yield Would("restart", name, "full converge" if p.full else "its files changed")
    yield from hook_actions(host, p, trigger, ("after_deploy",))
    # then the watch the real run keeps after the gate (Pipeline._watch)
    watch = watched([s for s in host.services if s.name in p.services])
    if watch:
        yield watch
    yield from hook_actions(host, p, trigger, ("on_rollback",))


# When each hook runs, as a dry run says it (plan.HOOKS_OF, plan.hook_runs)
HOOK_WHEN = {
    "before_restart": "after the rules, before the restart; a failure stops the run, nothing restarted, the "
                      "checkout put back",
    "after_deploy": "once every gate passed; if it fails the run rolls back as a failed gate does",
    "on_rollback": "if the run rolls back",
    "on_failure": "once, if the run fails",
}


def hook_actions(host, p: Plan, trigger: str, names) -> Iterator[Would]:
    """The hooks among `names` that plan `p` runs (Plan.hooks): `would run
    before_restart hook: 12 lines, timeout 60 s; WHEN`. A recorded abort
    fails, so its on_failure runs; a rollback run's on_rollback runs after
    its own promotion too."""
    for name in names:
        if name not in p.hooks:
            continue
        from .hooks import hook_words  # only for a plan with hooks: cron's polls import no more (test_fastpath)

        when = HOOK_WHEN[name]
        if p.kind == "abort":
            when = "once: this run fails"
        elif name == "on_rollback" and trigger == "rollback":
            when = "after this rollback, or if it rolls back"
        yield Would("run", f"{name} hook", f"{hook_words(host.hooks[name])}; {when}")


# How long a pin holds, as the host says it: the host cannot know how the
# person reaches it (their inventory's -i), so the laptop puts its own
# `inv unpin ...` here (tasks/render.hint) when it prints the line.
UNPINNED = "until it is unpinned"


def runner(dry_run: bool) -> Type[Pipeline]:
    """The one place that tells a dry run from a real one (host/update.py
    runs what this picks): a Pipeline's options cannot ask it to plan, so
    no Pipeline can deploy what a dry run fetched."""
    return DryRun if dry_run else Pipeline
