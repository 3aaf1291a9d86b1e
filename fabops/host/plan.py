"""Decide, then act (docs/architecture.md, "Plans"): the one function that
says what a local-update, deploy or rollback run does, with no I/O.

`plan(host, state, facts, opts)` reads what the run has gathered (`Facts`)
and returns a `Plan`, or a `Need` when it needs a fact not gathered yet
(the services' health, the preflight's checks): the caller gathers it and
asks again. So a cron poll with nothing to do never pays for a preflight,
and the real run (host/pipeline.py) and the dry run (host/dry_run.py) ask
the same function: what a dry run renders is what the real run executes.

Standard library only: runs under cron on the host's Python 3.9.
"""
from __future__ import annotations

import re
import time
from dataclasses import field, replace
from typing import Optional, Tuple, Union

from ..records import Frozen, frozen
from ..shortsha import short_sha
from .git import paths_match
from .record import FAILURES, SHIPPED_UNVERIFIED, counted
from .state import State, budget_spent_until, recent_restarts

# Runs that converge the host on what it follows (its branch, or its pin)
# and so respect a bad target, a retry not due and a pin: cron's, and a
# person's `fabops local-update` on the host (recorded as manual).
FOLLOWERS = ("cron", "manual")


@frozen
class Health(Frozen):
    service: str
    ok: bool
    message: str
    held: bool = False  # another process holds its port (host/listeners.py): a restart cannot help


@frozen
class Facts(Frozen):
    """What the run found on the host. None: not gathered yet."""

    origin: Optional[str]  # the branch's head on the remote, as fetched (None: no such branch)
    head: Optional[str]  # the checkout's HEAD
    ref_commit: Optional[str] = None  # what --ref names, as fetched
    now: float = field(default_factory=time.time)
    health: Optional[Tuple[Health, ...]] = None  # one quick look at every service
    problems: Optional[Tuple[str, ...]] = None  # reasons not to start: disk, a person's changes, .env keys
    local_changes: Tuple[str, ...] = ()  # a person's changed files (with --stash: saved aside first)
    in_the_way: Tuple[str, ...] = ()  # untracked files the target has: --stash moves them aside
    kept: Tuple[str, ...] = ()  # untracked files the repository does not have: kept, and said
    own_files: Tuple[str, ...] = ()  # files our rules wrote that are still changed (not a person's)
    app: str = ""  # the checkout's path, for messages
    changed: Optional[Tuple[str, ...]] = None  # files that differ deployed..target (with the preflight)
    ended_watch: bool = False  # this run ended the interrupted run's watch (a rollback, reset or restart)
    # rollback without --to: the good commits this host deployed that are
    # older than the deployed one (its ancestors), the last deployed first
    older: Tuple[str, ...] = ()
    # and those that are neither older nor newer: a force-push rewrote the
    # history (the refusal says so, not that none was deployed)
    apart: Tuple[str, ...] = ()
    # the root-owned allowed-signers file that makes this host require signed
    # targets ("": none, nothing is checked; docs/security.md, "Verified commits")
    signers: str = ""
    signed: Optional["Signed"] = None  # git verify-commit's verdict on the target, gathered once
    # the settings a deploy sent (its runs/<id>.host.yml; docs/security.md,
    # "Verified commits"): "" none sent; "taken" installed as host.yml and
    # in effect; "pending" still the host's installed host.yml in effect,
    # until the planner has trusted the target (Need "settings"); "moved":
    # they move the app or home (sent_moves), which a host requiring signed
    # commits takes from setup only, never from a deploy
    sent: str = ""
    sent_moves: Tuple[str, ...] = ()


@frozen
class Signed(Frozen):
    """git verify-commit's verdict on one commit (Facts.signed)."""

    commit: str
    ok: bool
    message: str


@frozen
class Opts(Frozen):
    trigger: str = "cron"
    ref: Optional[str] = None
    stash: bool = False
    clear_pin: bool = False
    allow_unverified: bool = False  # deploy --ref X --allow-unverified: a person ships a commit not signed
    pin_reason: Optional[str] = None  # the pin's reason the run writes (promote's), not TRIGGER by ACTOR
    # the commit a deploy's sent settings came from (its inventory's
    # checkout, the laptop's word): CI's are installed on a host that
    # requires signed commits only when that is the target (_trusted)
    settings_from: Optional[str] = None


@frozen
class Need(Frozen):
    fact: str  # "health" | "preflight" | "verify" | "settings" (install the sent settings: the target is trusted)
    target: str  # the commit the preflight checks against


# What a plan is: `noop`, `restart` (the deployed commit, services down),
# `deploy` (check out the target, its rules, restart, gate, watch),
# `hold` (cron stays where it is on purpose: a bad target, a retry not due)
# and `abort` (a reason not to start). Adopting a healthy HEAD and
# finishing an interrupted run ride along with any of them; clearing a pin
# only with a plan that acts (ACTS).
KINDS = ("noop", "restart", "deploy", "hold", "abort")


@frozen
class Plan(Frozen):
    kind: str
    result: str  # the run's result when the plan is the whole story; "" when acting decides (restart, deploy)
    message: str
    target: str
    deployed: Optional[str]  # what is deployed once the plan starts (after adoption)
    adopt: Optional[str] = None  # a healthy HEAD taken as deployed (nothing recorded it)
    # the checkout's HEAD when it is not `deployed` (moved by hand, a reset
    # that did not come up, a killed run): where the run goes from
    checkout: Optional[str] = None
    clear_pin: bool = False
    # --ref pins the host to the target: at once when nothing else is done
    # (a noop, a restart), on promotion for a deploy
    pin: Optional[str] = None
    finishing: Optional[dict] = None  # the interrupted run this one finishes first
    full: bool = False  # every rule and every service (a first deploy, or finishing a run)
    rules: Tuple[int, ...] = ()  # indexes into host.deps
    services: Tuple[str, ...] = ()  # to restart, in order
    stash: bool = False  # save a person's changes aside first
    notify: bool = False  # hold: the first time for this bad target (one record, one notification)
    restarts: Tuple[float, ...] = ()  # restart: the budget's record once this restart counts
    warnings: Tuple[str, ...] = ()
    # the target failed its gate before: the line (known_bad) that the run
    # says and its JSON warns, and its dry run's plan line says
    known_bad: Optional[str] = None
    unverified: bool = False  # --allow-unverified ships a target not signed (_signed): the record's field
    says: Tuple[str, ...] = ()  # lines for the run's log that are news to nobody
    step: str = "preflight"  # abort: the step that stops the run
    # abort: recorded (history, update log, a failing streak, notified once);
    # False for a refusal that asked nothing of the host (rollback_target)
    record: bool = True
    # the lifecycle hooks this run may run (plan_hooks), in their order; the
    # outcome decides the conditional ones (hook_runs)
    hooks: Tuple[str, ...] = ()

    @property
    def from_(self) -> Optional[str]:
        """Where the run goes from: the checkout, which is the deployed
        commit unless something moved it."""
        return self.checkout or self.deployed

    @property
    def writes(self) -> bool:
        """Whether acting on this plan changes anything on the host."""
        return self.kind in ("restart", "deploy") or bool(self.adopt or self.clear_pin or self.pin) or (
            self.kind == "hold" or (self.kind == "abort" and self.result == "broken"))


def choose_target(state: State, facts: Facts, opts: Opts) -> Optional[str]:
    """The commit this run converges on: the one --ref names; for a run
    that follows the host's branch, the pin while there is one (a pin is
    never moved by cron); else the branch's head. A run that clears the pin
    (`local-update --clear-pin`) sees none: it converges on the branch in
    the same run, as a deploy after its unpin does (#24's trial: it cleared
    the pin and said `noop: up to date` on the pinned commit)."""
    if opts.ref is not None:
        return facts.ref_commit
    if opts.trigger == "rollback":
        return rollback_target(state, facts)
    if opts.trigger in FOLLOWERS and state.pin and not opts.clear_pin:
        return state.pin
    return facts.origin


def rollback_target(state: State, facts: Facts) -> Optional[str]:
    """What `rollback` without --to goes back to: the deployed commit while
    a run is under way (its watch ended by this rollback, or killed) or the
    checkout moved, since it is the last commit that passed its watch; else
    the last commit deployed here before it that is older (an ancestor:
    `previous` is only the commit deployed before, which after a rollback is
    the newer one rolled back from) and not known bad. None: nothing older."""
    deployed = state.deployed
    if not deployed:
        return None
    if state.in_progress or (facts.head and facts.head != deployed):
        return deployed
    return next((sha for sha in facts.older if sha not in state.bad and sha != deployed), None)


def good_commits(history, previous: Optional[str] = None) -> Tuple[str, ...]:
    """The commits this host ran healthy, the last first: each deploy's
    target and the commit it went from, the commit a rolled-back run went
    back to, and state's `previous`. `history` is history.jsonl's records,
    oldest first."""
    found: list = []
    for rec in reversed(list(history)):
        result = rec.get("result")
        shas = (rec.get("to"), rec.get("from")) if result == "deployed" else (
            (rec.get("from"),) if result == "rolled_back" else ())
        found += [sha for sha in shas if isinstance(sha, str) and sha and sha not in found]
    if previous and previous not in found:
        found.append(previous)
    return tuple(found)


def _no_rollback_target(host, state: State, facts: Facts) -> Plan:
    deployed = state.deployed
    apart = [sha for sha in facts.apart if sha not in state.bad]
    if deployed and apart:
        listed = ", ".join(short(sha) for sha in apart[:3]) + (", …" if len(apart) > 3 else "")
        why = (f"the good {'commit' if len(apart) == 1 else 'commits'} deployed on this host before ({listed}) "
               f"{'is not an ancestor' if len(apart) == 1 else 'are not ancestors'} of {short(deployed)} "
               "(history was rewritten), so rollback picks none; give the one to roll back to with --to SHA")
    else:
        why = ((f"no good commit older than {short(deployed)} was deployed on this host" if deployed
                else "nothing is deployed on this host") + ", so there is nothing to roll back to; give a commit "
               "with --to SHA")
    return Plan("abort", "aborted", why, "", deployed, finishing=state.in_progress, step="rollback", record=False)


# The plans that act on the host: a deploy without --ref clears the pin
# only in one of these (a no-op or a restart as it acts: Pipeline._act; a
# deploy as it promotes: Pipeline._promote). A hold or an abort changes
# nothing, so it leaves the pin, as does a deploy that aborts or rolls back
# (#24's trial: an aborted deploy said `clearing pin X`, and cron then went
# after origin's head; docs/pipeline.md, step 3).
ACTS = ("noop", "restart", "deploy")


# An in-place restore's steps (host/restore.Underway marks each in
# state.json's in_progress) that a cut-off leaves unsafe to resume by a
# restart (docs/backups.md, "A restore cut off in the middle"): at `restore:
# stop` and `restore: save` the live data is still whole (only stopped), and
# at `restore: start` every item was put back (or none, the save refused), so
# a deploy's converge and restart finish it. At `restore: put back` part of
# the items are the snapshot's and the rest the old data: starting the
# services on that, or deploying over it and clearing the mark, would run
# the app on half-restored data and lose the evidence. Only the next restore
# of that run, which takes the mark over, finishes it.
UNSAFE_RESTORE_STEPS = ("restore: put back",)


def restore_cut_off(in_progress) -> Optional[str]:
    """The run id of the restore that state.json's `in_progress` says was
    cut off while putting items back (UNSAFE_RESTORE_STEPS), else None."""
    if not isinstance(in_progress, dict) or in_progress.get("trigger") != "restore":
        return None
    return str(in_progress.get("run_id")) if in_progress.get("step") in UNSAFE_RESTORE_STEPS else None


def cut_off_words(in_progress, host: str, inventory: Optional[str] = None) -> Optional[str]:
    """restore_cut_off_text for the restore `in_progress` names, when it was
    cut off putting items back (restore_cut_off); else None: the planner's,
    restart's and reset's refusal."""
    run_id = restore_cut_off(in_progress)
    return restore_cut_off_text(run_id, host, inventory) if run_id is not None else None


def restore_cut_off_text(run_id: str, host: str, inventory: Optional[str] = None) -> str:
    """The one wording for it: the planner's abort and health --fix's
    refusal. The take-over command as deploy.suggest words one (this
    program's own name, shell.program; `-i INVENTORY` when the laptop's
    run needed one, tasks/deploy.inventory_flag, so it is copyable as
    printed; `-H`: a person reading it from a laptop deploy acts on this
    host, not the default one), built here: the host layer does not import
    deploy (docs/architecture.md, "Layers")."""
    return (f"a restore of {run_id} was cut off while putting items back (its services stopped, part of the "
            f"data put back): not starting them on half-restored data; {take_over(run_id, host, inventory)} "
            "takes it over")


def take_over(run_id: str, host: str, inventory: Optional[str] = None) -> str:
    """The take-over command, in backquotes (restore_cut_off_text)."""
    from ..shell import join, program

    given = ["-i", inventory] if inventory else []
    return f"`{join([program(), 'backup', *given, '-H', host, '--restore', run_id, '--yes'])}`"


def plan(host, state: State, facts: Facts, opts: Opts) -> Union[Plan, Need]:
    """What this run does (_plan), clearing the pin only when it acts, with
    the hooks it may run (plan_hooks)."""
    decided = _plan(host, state, facts, opts)
    if isinstance(decided, Plan) and facts.sent in ("pending", "moved"):
        decided = replace(decided, warnings=decided.warnings + (not_installed(facts, decided.target, opts),))
    if isinstance(decided, Plan) and decided.clear_pin and decided.kind not in ACTS:
        decided = replace(decided, clear_pin=False)
    if isinstance(decided, Plan):
        decided = replace(decided, hooks=plan_hooks(host, decided))
    return decided


# Lifecycle hooks (docs/pipeline.md, "Hooks"), by the kind of plan that may
# run them. A deploy (a rollback's too) runs before_restart after its
# rules and before its restart, after_deploy once every gate passed (a
# failure rolls back as a failed gate), on_rollback after a rollback, and
# on_failure once if the run fails. A restart of sick services can fail
# (on_failure); an abort that is recorded is a failed run (on_failure); a
# noop, a hold and an unrecorded refusal run none.
HOOKS_OF = {"deploy": ("before_restart", "after_deploy", "on_rollback", "on_failure"),
            "restart": ("on_failure",), "abort": ("on_failure",)}


def plan_hooks(host, p: Plan) -> Tuple[str, ...]:
    """The hooks plan `p` may run: those of its kind that hosts.yml sets."""
    if p.kind == "abort" and not p.record:
        return ()
    have = getattr(host, "hooks", None) or {}
    return tuple(name for name in HOOKS_OF.get(p.kind, ()) if name in have)


def hook_runs(host, name: str, hooks: Optional[Tuple[str, ...]], result: str, trigger: str = "") -> bool:
    """Whether hook `name` runs now, for a run whose result is `result`
    ("" while it is still deploying): the plan's hooks (`hooks`; None when
    the run stopped before it planned: a failed fetch). on_failure runs
    once, when the run failed (record.FAILURES); on_rollback is asked where
    a rollback happened (the rollback step after a failed gate, whatever
    came of it, and a rollback run's promotion: `inv rollback` deployed its
    target) and runs there. The real run asks this; its dry run says the
    same conditions (host/dry_run.hook_actions)."""
    have = getattr(host, "hooks", None) or {}
    if name not in have or (hooks is not None and name not in hooks):
        return False
    if name == "on_failure":
        return result in FAILURES
    if name == "on_rollback":
        return result != "deployed" or trigger == "rollback"
    return hooks is not None


def _plan(host, state: State, facts: Facts, opts: Opts) -> Union[Plan, Need]:
    """What this run does. `host` is the inventory's Host (its services and
    dependency rules); nothing here reads a file or runs a command. The
    decisions, in order, as tests/test_plan.py's table reads them: no
    branch; adopt a healthy HEAD; on the deployed commit (noop, restart,
    backoff); a bad target (finish on the last good commit, hold, or say
    it is tried again); a retry not due; the preflight; else deploy."""
    target = choose_target(state, facts, opts)
    message = cut_off_words(state.in_progress, host.name)
    if message is not None:  # no run may start or deploy over it, nor clear its mark (UNSAFE_RESTORE_STEPS)
        return Plan("abort", "broken", message, target or "", state.deployed,
                    record=not said_already(state, message))
    if target is None and opts.trigger == "rollback" and opts.ref is None:
        return _no_rollback_target(host, state, facts)
    if target is None:  # the fetch succeeded, but the branch is not there
        return Plan("abort", "aborted", f"{host.app.remote}/{host.app.branch} does not exist after fetch", "",
                    state.deployed, finishing=state.in_progress, step="fetch")
    trusted = _trusted(state, facts, opts, target)
    if trusted is not None:
        return trusted
    common = _riders(state, facts, opts, target)
    # what acts (a noop, a restart, a deploy) pins to --ref and a rollback's
    # target; a hold or an abort does not. A run that brings its own
    # reason (promote) writes it even on a host already pinned there, in
    # the run's locked save (docs/environments.md, "Promote")
    pin = target if (opts.ref is not None or opts.trigger == "rollback") and (
        state.pin != target or (opts.pin_reason and opts.pin_reason != state.pin_reason)) else None
    adopted = _adopt(state, facts, target)
    if isinstance(adopted, Need):
        return adopted
    common = _with_says(common, adopted[2], deployed=adopted[0], adopt=adopted[1])
    if facts.head and common["deployed"] and facts.head != common["deployed"]:
        common["checkout"] = facts.head
    if target == common["deployed"] and facts.head == common["deployed"] and not state.in_progress:
        return _on_the_deployed_commit(host, state, facts, opts, common, pin)
    common = _finish_on_the_last_good(state, opts, common)
    hold = _hold_bad(state, opts, common) or _hold_retry(state, facts, opts, common)
    if hold is None:
        signed = _signed(state, facts, opts, common)
        if isinstance(signed, Need) or (isinstance(signed, Plan) and signed.kind == "abort"):
            return signed
        hold, common = (signed, common) if isinstance(signed, Plan) else (None, signed)
    if hold is not None:
        return _tended(host, state, facts, opts, common, hold)
    common = _said_if_known_bad(state, opts, common)
    if facts.problems is None:
        return Need("preflight", common["target"])
    common = _with_kept(facts, common)
    problems = _problems(facts, opts)
    if problems:
        return Plan("abort", "aborted", "; ".join(problems), **common)
    return _deploy(host, state, facts, opts, common, pin)


def _with_says(common: dict, says: Tuple[str, ...] = (), **more) -> dict:
    """`common` with lines added to its `says` and fields set."""
    return {**common, **more, "says": common["says"] + says}


def _riders(state: State, facts: Facts, opts: Opts, target: str) -> dict:
    """What rides along with any plan: the target, a pin cleared, the
    interrupted run finished first, and what the run's log says of them."""
    interrupted = state.in_progress
    warnings: Tuple[str, ...] = ()
    says: Tuple[str, ...] = ()
    if interrupted:
        line = (f"finishing run {interrupted.get('run_id')} ({interrupted.get('trigger')}), whose watch this "
                f"{opts.trigger} ended" if facts.ended_watch else
                f"finishing after an interrupted run {interrupted.get('run_id')} "
                f"({interrupted.get('trigger')}, step {interrupted.get('step')})")
        if facts.ended_watch:
            says += (line,)  # it ended that watch itself: news to nobody
        else:
            warnings += (line,)
    # said where the run clears it, as it acts or promotes (Pipeline._unpin,
    # _promote), not here: an abort, a hold or a rollback leaves it (ACTS)
    clear_pin = bool(opts.clear_pin and state.pin)
    if opts.ref is None and opts.trigger in FOLLOWERS and state.pin and not clear_pin:
        says += (f"pinned to {short(state.pin)}",)
    if opts.ref is None and opts.trigger == "rollback":  # its own pick (rollback_target), said
        says += (f"rollback target {short(target)}: " + ("the last commit that passed its watch"
                 if target == state.deployed else f"deployed here before {short(state.deployed)}"),)
    return dict(target=target, clear_pin=clear_pin, finishing=interrupted, warnings=warnings, says=says)


def _adopt(state: State, facts: Facts, target: str
           ) -> Union[Need, Tuple[Optional[str], Optional[str], Tuple[str, ...]]]:
    """(deployed, adopted, says): nothing recorded a deploy, no run was
    interrupted, and HEAD's services are all healthy: HEAD is deployed."""
    head = facts.head
    if state.deployed is None and head and not state.in_progress:
        if facts.health is None:
            return Need("health", target)
        if all(h.ok for h in facts.health):
            return head, head, (f"adopting healthy HEAD {short(head)} as deployed",)
    return state.deployed, None, ()


def _on_the_deployed_commit(host, state: State, facts: Facts, opts: Opts, common: dict, pin: Optional[str]
                            ) -> Union[Plan, Need]:
    """Target, HEAD and deployed agree: nothing to do while every service is
    healthy, else restart the sick ones: a person's run always, a run that
    follows the branch while the automatic restart budget lasts."""
    if facts.health is None:
        return Need("health", common["target"])
    deployed = common["deployed"]
    sick = [h for h in facts.health if not h.ok]
    if not sick:
        return Plan("noop", "noop", f"up to date at {short(deployed)}", pin=pin, **common)
    down = "; ".join(h.message for h in sick)
    held = [h.message for h in sick if h.held]
    if held:  # another process on its port: a restart could not start it (host/listeners.py)
        return Plan("abort", "aborted", "; ".join(held), **common)
    recent = tuple(recent_restarts(state.restarts, facts.now))
    # the budget limits automatic restarts (cron's, a person's local-update
    # on the host, health --fix): a person's deploy or rollback is the
    # person the backoff asks for, so it restarts and does not count
    automatic = opts.trigger in FOLLOWERS
    if automatic and budget_spent_until(state.restarts, facts.now) is not None:
        message = (f"{down}; {len(recent)} automatic restarts in the last hour, not restarting again (restart "
                   "backoff): a person is needed")
        return Plan("abort", "broken", message, record=not said_already(state, message), **common)
    names = {h.service for h in sick}
    # the warning the real run exits 1 for, decided here so that its dry
    # run says it and exits 1 too (docs/pipeline.md, "--dry-run"; #24's
    # trial: `would restart bot`, exit 0, then the real run's exit 1)
    warned = {**common, "warnings": common["warnings"] + (f"unhealthy on the deployed commit: {down}",)}
    return Plan("restart", "", f"restart {', '.join(sorted(names))} at {short(deployed)} ({down})",
                services=tuple(s.name for s in host.services if s.name in names),
                restarts=recent + ((facts.now,) if automatic else ()), pin=pin, **warned)


def said_already(state: State, message: str) -> bool:
    """Whether the last run recorded this very BROKEN (state's
    broken_said) and no verdict since found the host healthy (State.result:
    then it is news again): a poll that finds it again adds no history
    line, as a hold reports a known-bad target once (one record, one
    notification)."""
    return state.result() == "broken" and state.broken_said == message


def _follows(opts: Opts) -> bool:
    """A run that follows the host's branch (no --ref): cron's, a person's
    local-update."""
    return opts.ref is None and opts.trigger in FOLLOWERS


def _finish_on_the_last_good(state: State, opts: Opts, common: dict) -> dict:
    """Finish the interrupted run, but never on a target that failed its
    gate: on the last good commit instead, if there is one."""
    target, interrupted = common["target"], state.in_progress
    if not (interrupted and _follows(opts) and target in state.bad):
        return common
    good = state.deployed or interrupted.get("from")
    if not good or good == target:
        return common
    check = failed_check(state.bad[target].get("reason") if isinstance(state.bad[target], dict) else None)
    return _with_says(common, (f"origin's {short(target)} failed its {check}: finishing on {short(good)}",),
                      target=good)


def _hold_bad(state: State, opts: Opts, common: dict) -> Optional[Plan]:
    """A run that follows the branch stays where it is while the branch is
    at a commit that failed its gate (reported once)."""
    target = common["target"]
    if opts.trigger not in FOLLOWERS or target not in state.bad:
        return None
    info = state.bad[target]
    first = not info.get("notified")
    reason = info.get("reason", "?")
    return Plan("hold", "skipped_bad",
                f"origin is at {short(target)}, which failed its {failed_check(reason)} ({reason}); "
                f"{_staying(common)} until origin moves" + ("" if first else " (already reported)"),
                notify=first, **common)


def _tended(host, state: State, facts: Facts, opts: Opts, common: dict, hold: Plan) -> Union[Plan, Need]:
    """A hold stays on the deployed commit, and staying keeps its services
    up as a run on that commit does: a sick one is restarted (the restart
    budget as ever) and the hold is a warning of its run (before: cron
    held, "already reported", beside a dead service). A hold anywhere else (the checkout
    moved, nothing deployed, a run to finish) only holds."""
    deployed = common["deployed"]
    if state.in_progress:
        return hold
    if not deployed or facts.head != deployed:
        # the checkout is off the deployed commit (a reset that did not
        # come up): the last run's BROKEN stands, since holding changes
        # nothing, and a hold must not read as "skipped" beside it (the
        # host's verdict: a person's restart since may have cleared it)
        if state.result() == "broken":
            # the verdict is the last run's, recorded and notified by it: no record of its own
            return Plan("abort", "broken", f"{hold.message}; the last run left this host BROKEN and holding "
                                           "changes nothing: a person is needed (deploy or rollback)",
                        record=False, **common)
        return hold
    if facts.health is None:
        return Need("health", common["target"])
    if all(h.ok for h in facts.health):
        return hold
    return _on_the_deployed_commit(host, state, facts, opts,
                                   {**common, "target": deployed, "warnings": common["warnings"] + (hold.message,)},
                                   None)


def _signed(state: State, facts: Facts, opts: Opts, common: dict) -> Union[Need, Plan, dict]:
    """Only verified commits ship (docs/security.md, "Verified commits"): on
    a host whose allowed-signers file is there, a target not signed by one
    of its keys is held by a run that follows the branch (skipped_unverified,
    reported once) and refused to a person's run, unless `--ref X
    --allow-unverified` says to ship it (a warning in its record). The
    deployed commit already runs, and a rollback without --to goes back to
    one this host ran: neither is checked. `common`, perhaps warned: go on."""
    target = common["target"]
    if not facts.signers or target == common["deployed"] or (opts.trigger == "rollback" and opts.ref is None):
        return common
    if facts.signed is None or facts.signed.commit != target:
        return Need("verify", target)
    if facts.signed.ok:
        return _with_says(common, (f"{short(target)} is {facts.signed.message}",))
    why = f"{short(target)} is not signed by an allowed key ({facts.signed.message})"
    if opts.allow_unverified:
        return {**common, "unverified": True, "warnings": common["warnings"] + (f"{why}: {SHIPPED_UNVERIFIED}",)}
    if opts.trigger in FOLLOWERS:
        failing = state.failing if isinstance(state.failing, dict) else {}
        first = not (failing.get("target") == target and failing.get("result") == "skipped_unverified")
        return Plan("hold", "skipped_unverified", f"origin's {why}; {_staying(common)} until a signed commit comes"
                    + ("" if first else " (already reported)"), notify=first, **common)
    return Plan("abort", "aborted", f"{why}; only `--ref {target} --allow-unverified` deploys it", step="verify",
                **common)


def _trusted(state: State, facts: Facts, opts: Opts, target: str) -> Optional[Need]:
    """A deploy's sent settings wait, with the host's installed host.yml in
    effect, until the target is trusted (docs/security.md, "Verified
    commits"): a push that edits hosts.yml must not have its hooks,
    heartbeat or env run by the deploy that verification refuses. Trusted:
    the deployed commit (it runs already), a rollback's own pick (a commit
    this host ran), a target signed by an allowed key, and a person's
    `--ref X --allow-unverified` (recorded). Then Need("settings"): the run
    installs them and plans on with them. None: go on, with the installed
    settings (a target not trusted is then held or refused by _signed)."""
    if facts.sent != "pending":
        return None
    if settings_elsewhere(facts.signers, opts, target):
        return None
    if not (facts.signers and target != state.deployed and (opts.trigger != "rollback" or opts.ref is not None)):
        return Need("settings", target)
    if facts.signed is None or facts.signed.commit != target:
        return Need("verify", target)
    return Need("settings", target) if facts.signed.ok or opts.allow_unverified else None


def settings_elsewhere(signers: str, opts, target: str) -> bool:
    """A run in CI (a deploy, a promote, a rollback) sends the hosts.yml of
    the commit it checked out, which need not be its target: a re-run of
    an unsigned commit's job after a signed one landed, or a promote run
    from main's unsigned head, would install that commit's hooks under the
    signed target's name. The laptop says where they came from
    (--settings-from, deploy.ci_settings_from: the commit, or NO_COMMIT);
    on a host that requires signed commits they count only as the target's
    own (docs/security.md, "When a deploy's settings are installed"). A
    person's run sends none: their inventory is theirs, trusted as before."""
    return bool(signers) and opts.settings_from is not None and opts.settings_from != target


def not_installed(facts: Facts, target: str, opts: Optional[Opts] = None) -> str:
    """The one line of a run whose sent settings stayed uninstalled: why,
    and that it ran with the host's own host.yml."""
    if facts.sent == "moved":
        why = moved_words(facts.sent_moves)
    elif facts.signed is not None and facts.signed.commit == target and not facts.signed.ok:
        why = f"{short(target)} is not verified"
    elif opts is not None and settings_elsewhere(facts.signers, opts, target):
        why = not_from_words(opts.settings_from, target)
    else:
        why = "the run stopped before its target was verified"
    return not_installed_line(why)


def not_from_words(source: Optional[str], target: str) -> str:
    """Why CI's sent settings stay uninstalled when not the target's own."""
    came = (f"from {short(source)}" if source and source.strip("0") else
            "from no known commit (its hosts.yml is not a clean checkout)")
    return f"CI's hosts.yml comes {came}, not from the target {short(target)}"


def moved_words(moved: Tuple[str, ...]) -> str:
    """Why sent settings that move the app or fabops' home stay uninstalled."""
    return f"they change {', '.join(moved)}, which a host that requires signed commits takes from `setup` only"


def not_installed_line(why: str) -> str:
    """That line's words, for `why` (the pipeline's too, for a run that reported another's)."""
    return (f"host.yml: this deploy's settings were not installed: {why}; the run used the host's own host.yml "
            '(docs/security.md, "Verified commits")')


def _hold_retry(state: State, facts: Facts, opts: Opts, common: dict) -> Optional[Plan]:
    """A run that follows the branch waits for the retry of a target whose
    dependency rule failed (unless it finishes an interrupted run)."""
    retry, target = state.retry or {}, common["target"]
    if not (opts.trigger in FOLLOWERS and not state.in_progress and retry.get("target") == target
            and facts.now < retry.get("next_at", 0)):
        return None
    return Plan("hold", "deferred",
                f"origin is at {short(target)}, whose {deferred_words(retry.get('reason', '?'))}; "
                f"next try {time.strftime('%H:%M %Z', time.localtime(retry['next_at']))} "
                f"(try {retry.get('attempts', 1) + 1}); {_staying(common)}", **common)


# How pipeline._recover begins the retry's reason for a before_restart hook
# that failed (its other reasons are a dependency rule's): docs/hooks.md
HOOK_FAILED = "the before_restart hook failed ("


def deferred_words(reason: str) -> str:
    """What failed for a deferred target, from its retry's `reason`: the
    hook's words for the hook (trial: `whose dependency rule failed (the
    before_restart hook failed (...))`), a dependency rule's otherwise.
    A hold's line and monitor's finding say it alike."""
    if reason.startswith(HOOK_FAILED):
        return "before_restart hook failed (" + reason[len(HOOK_FAILED):]
    return f"dependency rule failed ({reason})"


def _staying(common: dict) -> str:
    """Where a hold stays, as its row's `from` (Plan.from_) says: the
    checkout, named as not the deployed commit when it moved."""
    checkout, deployed = common.get("checkout"), common["deployed"]
    if checkout:
        return f"staying on {short(checkout)} where the checkout is (not the deployed {short(deployed)})"
    return f"staying on {short(deployed)}"


def _said_if_known_bad(state: State, opts: Opts, common: dict) -> dict:
    """A person's deploy or rollback may try a known-bad commit again (the
    cause may have been the host's, since fixed): said, and warned in the
    run's JSON (its dry run's too), not hidden."""
    line = known_bad(state.bad, common["target"], common["deployed"], opts.trigger)
    if line is None:
        return common
    return {**common, "known_bad": line, "warnings": common["warnings"] + (line,)}


def known_bad(bad: dict, target: Optional[str], deployed: Optional[str], trigger: str) -> Optional[str]:
    """The one check of a person's run (a deploy, a rollback, a reset) going
    to a commit that failed its gate before (state's `bad`, sha -> {reason}),
    and its one line, which the real run and its dry run both say (the
    planner's Plan.known_bad; reset's ResetPlan.known_bad): None when the
    target is not known bad or is already deployed. It goes ahead (the
    cause may have been the host's, since fixed). `bad` may be a list of
    SHAs (status's), which has no reasons."""
    if not target or target not in bad or target == deployed:
        return None
    info = bad[target] if isinstance(bad, dict) and isinstance(bad[target], dict) else {}
    return f"{failed_before(target, info.get('reason', '?'))}, so cron skips it; " + AGAIN.get(
        trigger, f"this {trigger} tries it again")


# What a person's run does with a known-bad target, when it is not `this
# <trigger> tries it again`: reset deploys nothing; it resets the checkout
# onto the commit, and clears it from `bad` only if its services come up
# (maintenance/reset.py)
AGAIN = {"reset": "this reset moves the checkout onto it anyway; it leaves the known-bad list only if its "
                  "services come up healthy",
         "ci": "this CI deploy tries it again"}  # the trigger's name is no word of a sentence


def failed_before(target: Optional[str], reason: Optional[str] = None) -> str:
    """How every line names a commit on the host's known-bad list: the
    check it failed (failed_check) and why."""
    return f"{short(target)} failed its {failed_check(reason)} before" + (f" ({reason})" if reason else "")


# Every reason a watch fails with says how long after its gate the
# service went wrong (host/readiness.py: `bot died 1 s after passing its
# gate: its process is gone`, `…, 3 s after its gate`); a gate's never does
WATCH_FAILURE = re.compile(r"\bafter (?:passing )?its gate\b")


def failed_check(reason: Optional[str]) -> str:
    """Which check a known-bad commit failed, read from the reason it was
    marked bad with (state's `bad`, `failing`): "watch" for a service that
    passed its gate and then died or failed in its watch, else "gate". A
    commit that died in its watch did not fail its gate (#24's trial read
    `X failed its gate before (bot died 1 s after passing its gate …)`).
    The reason is the one record of it, older state files' included."""
    return "watch" if reason and WATCH_FAILURE.search(reason) else "gate"


def _problems(facts: Facts, opts: Opts) -> list:
    """The preflight's reasons not to start, and a person's changes unless
    --stash saves them aside."""
    problems = list(facts.problems or ())
    person = facts.local_changes
    if person and not opts.stash:
        # the files first, and an outcome short enough that a line cut to
        # 80 columns keeps it (render.keep_reason keeps the last `; ` clause)
        problems.append("local changes (" + ", ".join(person[:10])
                        + (f" and {len(person) - 10} more" if len(person) > 10 else "")
                        + f") in {facts.app}; commit them, or --stash saves them aside")
    return problems


def _with_kept(facts: Facts, common: dict) -> dict:
    """Untracked files the repository does not have are kept, and said."""
    if not facts.kept:
        return common
    listing = ", ".join(facts.kept[:5]) + (f" and {len(facts.kept) - 5} more" if len(facts.kept) > 5 else "")
    return {**common, "warnings": common["warnings"] + (
        f"keeping {counted(len(facts.kept), 'untracked file')} that the repository does not have: "
        f"{listing} (add them to .gitignore to silence this)",)}


def _deploy(host, state: State, facts: Facts, opts: Opts, common: dict, pin: Optional[str]) -> Plan:
    """Check out the target, run the rules whose files changed and restart
    the services whose files changed. Converge fully when nothing is known
    to be deployed, when finishing an interrupted run, and when the
    checkout is not where the last deploy left it (moved by hand): what
    changed since then is unknown."""
    deployed, target = common["deployed"], common["target"]
    full = state.in_progress is not None or deployed is None or facts.head != deployed
    changed = None if full else facts.changed
    rules = tuple(i for i, r in enumerate(host.deps) if changed is None or paths_match(changed, r.when))
    services = tuple(s.name for s in host.services
                     if changed is None or not s.paths or paths_match(changed, s.paths))
    return Plan("deploy", "", _deploy_words(deployed, common.get("checkout"), target, opts.trigger),
                full=full, rules=rules, services=services, stash=bool(facts.local_changes), pin=pin, **common)


def _deploy_words(deployed: Optional[str], checkout: Optional[str], target: str, trigger: str = "deploy") -> str:
    """A deploy's plan in words: from where the checkout is, saying so when
    that is not the deployed commit (what status says as `checkout is at`).
    A rollback's says `roll back` (its dry run: `would roll back A -> B`)."""
    verb = "roll back" if trigger == "rollback" else "deploy"
    if not deployed:
        return f"{verb} {short(target)} (first deploy)"
    if not checkout:
        return f"{verb} {short(deployed)} -> {short(target)}"
    if checkout == target:
        return f"{verb} {short(target)} where the checkout already is (not the deployed {short(deployed)})"
    if deployed == target:
        return f"{verb} {short(checkout)} -> {short(target)} (back to the deployed commit; the checkout had moved)"
    return f"{verb} {short(checkout)} -> {short(target)} (the checkout, not the deployed {short(deployed)})"


def short(sha: Optional[str]) -> str:
    """A commit in a plan's words: shortsha's length, '-' when there is none."""
    return short_sha(sha, "-")
