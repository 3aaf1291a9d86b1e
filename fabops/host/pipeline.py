"""The convergent update pipeline: one implementation, three callers.

`fabops local-update` (cron), `inv deploy` (detached on the host, followed over
SSH) and `inv rollback` all run `run_update` (host/update.py) on the host with a local Context.

It converges on the *deployed* commit recorded in state.json, never on HEAD
(legacy defect 2): a run whose restart failed is retried or rolled back, not
forgotten. Nothing is reset without a backup; readiness is polled, never slept (the
watch after the gate is a window of checks, not a sleep).
"""
from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .. import errors
from ..errors import FabopsError, LockedError
from ..inventory import DepRule, Host, Service
from ..records import Plain, plain
from ..shell import in_dir, inventory_shell
from ..target import Target
from .events import EventLog, new_run_id
from .files import atomic_write, ensure_home, save_env_file, tail_jsonl
from .preflight import disk_problem, missing_env_keys, sort_changes, stash, status_path
from .git import Git, check_ref, ls_remote_cmd, ls_remote_ref_cmd, parse_ls_remote
from .lock import HostLock
from .plan import (Facts, Health, Opts, Plan, Signed, choose_target, good_commits, hook_runs, moved_words,
                   not_from_words, not_installed_line, plan, settings_elsewhere)
from .queue import (lock_waiter, lock_wait, locked_line, overtaken_by, record_of, result_of, waiting_line,
                    watch_end_request)
from .readiness import held_ports, quick_health, wait_ready, watch
from .services import ServiceManager
from .prom import run_counted, run_done
from .record import Recorder, RunResult, Step, counted, default_actor, short
from .state import State, StateFile, bad_entry, pin_reason, promoted
from .verify import required_signers, signature_words, signers_path

if TYPE_CHECKING:  # host/settings.py imports yaml: only a deploy's run, which sends settings, loads it
    from .settings import Sent

TRIGGERS = ("cron", "deploy", "ci", "rollback", "reset", "manual", "promote")
# After a dependency rule fails (often the network), cron tries the same
# target again after 15 min, then every hour: it is not marked bad.
RETRY_BACKOFF = (900.0, 3600.0)


@plain
class UpdateOptions(Plain):
    trigger: str = "cron"
    actor: str = ""
    ref: Optional[str] = None  # deploy --ref / rollback --to: pins the host
    stash: bool = False  # save local changes aside instead of refusing
    wait: Optional[float] = None  # seconds to wait for the lock; None = default
    run_id: Optional[str] = None
    clear_pin: bool = False  # deploy without --ref
    allow_unverified: bool = False  # --ref X --allow-unverified: ship a target not signed (host/plan._signed)
    pin_reason: Optional[str] = None  # --ref X --pin-reason TEXT: the pin's reason (promote's), else TRIGGER by ACTOR
    settings_from: Optional[str] = None  # --settings-from SHA: the commit a deploy's sent settings came from (plan.Opts)
    # said before the run began: the settings a deploy's host.yml kept or
    # changed (host/settings.installed), in the result and its record
    warnings: Tuple[str, ...] = ()


class Abort(Exception):
    """Stop the run with a result (internal control flow)."""

    def __init__(self, result: str, message: str, step: str = "", record: bool = True):
        super().__init__(message)
        self.result = result
        self.message = message
        self.step = step  # where it stopped: with the target, the notification key
        self.record = record  # False: a refusal that changed and asked nothing (Plan.record)


# A hook called at the start of every step with (step name, event log):
# None in production. The reliability tests set it (tests/harness/
# paused_update.py) to stop a run at a step boundary and SIGKILL it there.
PAUSE: Optional[Callable[[str, EventLog], None]] = None

FULL_SHA = re.compile(r"[0-9a-f]{40}")
SHORT_SHA = re.compile(r"[0-9a-f]{4,39}")


class Pipeline:
    """One run that changes the host. A rehearsal is its subclass DryRun,
    chosen by host/update.run_update, which renders the same plan: nothing
    here asks which kind of run this is (docs/architecture.md, "Plans")."""

    def __init__(self, c, host: Host, opts: UpdateOptions, events: Optional[EventLog] = None,
                 sent: Optional[Sent] = None):
        if opts.trigger not in TRIGGERS:
            raise errors.UsageError(f"unknown trigger {opts.trigger!r} (one of {', '.join(TRIGGERS)})")
        self.c = c
        self.gated: Dict[str, Optional[int]] = {}  # the PIDs the last gates passed with (_restart_and_wait)
        self.held = False  # the last gate or watch failed on a port another process holds (_rollback)
        self.opts = opts
        # `host`: the settings in effect, the host's installed host.yml while
        # a deploy's `sent` ones wait for the planner to trust the target
        # (_take_settings; docs/security.md, "Verified commits")
        self.sent = sent
        self.sent_state = "" if sent is None else "pending"
        self.signers: Optional[str] = None  # the installed settings' allowed-signers file (_settings_at_start)
        self._use(host)
        self.events = events or EventLog()
        self.run_id = opts.run_id or new_run_id()
        self.actor = opts.actor or default_actor()
        self.res = RunResult("noop", self.run_id, opts.trigger, self.actor, host=host.name)
        self.res.warnings.extend(opts.warnings or ())
        # state.json is read once, under the lock, and kept: every step
        # changes this State and saves it (a merge of what changed)
        self.state_file = StateFile(self.paths.state)
        self.state: Optional[State] = None
        # the count rides on settle's save, and the textfile is written
        # under the same lock (host/prom.folding); `published` gets its failure
        self.published: dict = {}
        self.rec = Recorder(host, self.paths, self.res, self.save, lambda sha: self.git.describe(sha),
                            self._current_state, count=self._count)
        self.lock: Optional[HostLock] = None  # held from _locked_run on
        self.reported = False  # its result is another run's (_reported): that run counted itself
        # the lifecycle hooks the plan may run (Plan.hooks); None before it planned.
        # on_failure runs as the run is recorded, once (Recorder.record)
        self.plan_hooks: Optional[Tuple[str, ...]] = None
        self.rec.before_record = self._on_failure

    def _git(self) -> Git:
        return Git(self.t, self.app, self.host.env)

    def _use(self, host: Host) -> None:
        """Act with `host`'s settings from now on (its app, services, env)."""
        self.host = host
        self.t = Target.of(self.c, host)
        self.paths = self.t.paths
        self.app = self.t.local_path(host.app.path)
        self.git = self._git()
        self.services = ServiceManager(self.t, host, home=self.paths.home, app_path=self.app)
        if getattr(self, "rec", None) is not None:
            self.rec.host = host

    def _count(self, *args, **kwargs):
        """The run's metrics count (host/prom.run_counted), for the settings in effect."""
        return run_counted(*args, host=self.host, out=self.published, **kwargs)

    def _take_settings(self) -> None:
        """The sent settings are trusted (plan._trusted, or a host that
        requires no signed commits): installed as host.yml under the lock,
        and this run acts with them from here on, their kept/changed
        warnings said (host/settings.installed)."""
        sent, self.sent_state = self.sent, "taken"
        self._install_settings(sent)
        self._use(sent.host)
        self.res.warnings.extend(w for w in sent.warnings if w not in self.res.warnings)

    def _settings_at_start(self) -> str:
        """Whether the host requires signed commits, found once, with its
        installed settings (the allowed-signers file's path names the app:
        never the sent settings' answer); a host that requires none takes
        the sent settings at once, under the lock, as it did before the lock
        (docs/security.md, "Verified commits"). The file's path, or ""."""
        if self.signers is None:
            self.signers = self._signers()
            if self.sent_state == "pending" and not self.signers:
                self._take_settings()
        return self.signers

    def _settings_reported(self) -> None:
        """This run reports the run it waited for, which went to our very
        target (_reported): when that run deployed it, it is the deployed
        commit, which the planner trusts (plan._trusted), and the sent
        settings are installed; else they are not, and said (a CI deploy
        that meets cron's run of its commit installs its settings all the same)."""
        if self.sent_state == "pending" and self.res.result == "deployed":
            # the same rules as _decide's: on a host that requires signed
            # commits, settings that move the app or fabops' home wait for
            # setup, and CI's count only as the target's own (plan.settings_elsewhere)
            if self.signers is None:
                self.signers = self._signers()
            moved = self._moves() if self.signers else ()
            if moved:
                self._settings_not_taken(moved_words(moved))
            elif settings_elsewhere(self.signers, self.opts, self.res.to):
                self._settings_not_taken(not_from_words(self.opts.settings_from, self.res.to))
            else:
                self._take_settings()
        else:
            self._settings_not_taken(f"the run this deploy waited for did not deploy {short(self.res.to)}")

    def _moves(self) -> Tuple[str, ...]:
        """What the sent settings move (host/settings.PLACES) from the
        installed ones; nothing when none are waiting."""
        from .settings import moves

        return moves(self.host, self.sent.host) if self.sent_state == "pending" else ()

    def _settings_not_taken(self, why: str) -> None:
        """Sent settings still waiting as the run ends without a plan: said."""
        if self.sent_state == "pending":
            self.res.warnings.append(not_installed_line(why))

    def _install_settings(self, sent: Sent) -> None:
        """host.yml and env.sh from the sent settings (DryRun installs nothing)."""
        atomic_write(sent.path, sent.text)
        save_env_file(self.paths.env_sh, sent.host.env)
        self.say("installed this deploy's settings as host.yml")

    # ---------------------------------------------------------------- helpers
    def say(self, message: str, **fields) -> None:
        self.events.emit("log", message=message, **fields)

    @contextmanager
    def step(self, name: str):
        """One named step: events at its start and end, its duration, and a
        failed step's message, recorded in the run's result."""
        st = Step(name)
        started = time.monotonic()
        self._note_step(name)
        self.events.emit("step", step=name, status="start")
        if PAUSE is not None:
            PAUSE(name, self.events)
        try:
            yield st
        except BaseException as exc:
            # the failure is the step's last word, not what it said before
            # it failed (the fetch's `origin/main is …`, then an unknown --ref)
            st.ok = False
            st.message = getattr(exc, "message", None) or st.message or str(exc)
            raise
        finally:
            st.seconds = time.monotonic() - started
            self.res.steps.append(st)
            self.events.emit("step", step=name, status="ok" if st.ok else "failed", seconds=round(st.seconds, 3),
                             message=st.message)

    def _note_step(self, name: str) -> None:
        """While this run is in progress, its record names the step that
        runs now: a run killed with SIGKILL says where it stopped (status,
        monitor, the next run's "finishing after an interrupted run"). One
        small merge per step, atomic as every state write (StateFile.save)."""
        ip = self.state.in_progress if self.state is not None else None
        if ip and ip.get("run_id") == self.run_id and ip.get("step") != name:
            self.state.in_progress = {**ip, "step": name}
            try:
                self.save(self.state)
            except OSError:
                pass  # a full disk must not stop the step (a rollback): the record is only what it says

    def save(self, state: State, bad=None, fold=None) -> None:
        self.state_file.save(state, bad=bad, fold=fold)

    def _current_state(self) -> State:
        """The run's State: the one it loaded, or (a run stopped before it
        loaded one) the file's."""
        if self.state is None:
            self.state = self.state_file.load()
        return self.state

    # ---------------------------------------------------------------- entry
    def run(self) -> RunResult:
        self.events.emit("start", run_id=self.run_id, trigger=self.opts.trigger, actor=self.actor, host=self.host.name)
        try:
            self._body()
        except LockedError as exc:
            self.res.result = "locked"
            holder = getattr(exc, "holder", None)
            # the next steps with the holder (queue.locked_line), as its dry run says them
            self.res.message = exc.message if holder is None else locked_line(
                self.opts.trigger, holder, self._followable(holder))
        except (Abort, FabopsError, OSError) as exc:  # a planned stop, or the lock itself
            self._take_failure(exc)
        self.res.duration = time.monotonic() - self.rec.started
        self._sample()
        self.events.emit("result", **self.res.to_dict())
        return self.res

    def _sample(self) -> None:
        """One trend sample per cron run (a locked one too), for `monitor
        --history`; and every run counted, with the host's Prometheus
        metrics written (host/prom.py: a failure is the update log's
        warning, never the run's result; docs/metrics.md)."""
        if self.opts.trigger == "cron":
            from .metrics import record

            record(self.paths.metrics, self.host.services, self.paths)
            self._heartbeat()
        if self.res.usage:
            # a mistyped flag (--ref nosuchref, rollback's --to): exit 64 is
            # the command line's error, no run of the host's, and counts
            # nothing (docs/metrics.md, "Which runs count")
            return
        if self.reported:
            # the run we waited for counted itself, with its own duration and
            # exit code: this one changed nothing, and a second count (and
            # its wait as the last run's duration) would misreport the host
            # (docs/metrics.md, "Which runs count")
            return
        res = self.res  # counted by its settle's save already (Recorder.counted): the textfile alone is written
        run_done(self.host, res.trigger, res.result, res.exit_code, res.duration, res.to, res.subject,
                 saved=self.state_file.saved if self.rec.counted else None, published=self.published)

    def _heartbeat(self) -> None:
        """Cron's ping of the heartbeat URL for this run's result, after the
        run and outside the host lock (state.json's own lock records it): a
        ping never changes the result (host/heartbeat.py; docs/monitor.md,
        "Heartbeat"). A run that waited for another's result pings it too."""
        if self.host.heartbeat is not None:
            from .heartbeat import beat

            beat(self.host.heartbeat, self.paths.state, "update", self.res.result)

    def _body(self) -> None:
        """The run proper: under the lock, converge (DryRun renders the plan
        instead)."""
        self._locked_run()

    def _locked_run(self) -> None:
        ensure_home(self.paths.home)
        save_env_file(self.paths.env_sh, self.host.env)
        # phase: "change" from fetch to the gate, "watch" (with its end) while
        # the service already serves: a deploy that meets a watch waits for
        # it, an emergency tool ends it (host/queue.py)
        info = {"actor": self.actor, "trigger": self.opts.trigger, "run_id": self.run_id, "target": None,
                "phase": "change"}
        lock = HostLock(self.paths.lock, info)
        self.lock = lock
        wait = lock_wait(self.opts.trigger, self.opts.wait)
        should_wait = lock_waiter(self.opts.trigger, self._peek_target, self.paths.watch_end, self.actor,
                                  self.run_id, self.opts.wait,
                                  longest_watch=max((s.watch for s in self.host.services), default=0.0))
        waited: Dict[str, dict] = {}
        said = {"line": "", "at": 0.0}

        def on_wait(holder: dict) -> None:
            if not waited:  # a --ref that names nothing is said before any wait, not after it
                self._ref_named()
            waited["holder"] = holder
            line, now = waiting_line(holder, self.opts.trigger), time.monotonic()
            # a new kind of wait at once; a countdown's new number every 5 s;
            # the same words never twice (a wait for a run mid-change)
            kind = line.split(":")[0]
            if kind != said["line"].split(":")[0] or (line != said["line"] and now - said["at"] >= 5.0):
                said["line"], said["at"] = line, now
                self.say(line)

        began = time.time()
        try:
            lock.acquire(wait=wait, should_wait=should_wait, on_wait=on_wait)
        except LockedError:
            self._ref_named()  # a mistyped flag is exit 64 before it is `locked`, exit 4
            raise
        try:
            if not self._under_lock(self._settings_at_start):
                return
            overtaken = overtaken_by(self.opts.trigger, self.paths.watch_end, began) if waited else None
            if overtaken:
                # a history record and an update-log line say why this
                # deploy did not ship (nothing fails silently), but no state
                # is written: the last result stays the rollback's
                self.res.result, self.res.message = "superseded", overtaken
                self._settings_not_taken("a rollback, reset or restart ended the watch this deploy waited for")
                self.rec.record()
                return
            if self._reported(getattr(should_wait, "same_target", None)):
                self._under_lock(self._settings_reported)
                return
            self._under_lock(partial(self._converge, lock))
        finally:
            lock.release()

    def _under_lock(self, act: Callable[[], object]) -> bool:
        """`act()`, its failure recorded while we still hold the lock (the
        next run must not race us on state.json). False when it failed."""
        try:
            act()
        except (Abort, FabopsError, OSError) as exc:
            self._take_failure(exc)
            if not self.res.usage and getattr(exc, "record", True):  # a mistyped flag is no run of the host's
                self.rec.record_unrecorded_failure()
            return False
        return True

    def _ref_named(self) -> None:
        """Raise the usage error of a --ref (rollback's --to) that names
        nothing on origin, found read-only, so before this run waits for
        the lock or says it is locked (docs/pipeline.md, step 2: `--ref`,
        validated first; #24's trial waited out another deploy's watch
        first). A full SHA not here yet, or a remote that does not answer,
        is left to the fetch under the lock, which says the same."""
        ref, remote = self.opts.ref, self.host.app.remote
        if ref is None or FULL_SHA.fullmatch(ref):
            return
        check_ref(ref)
        r = self.git.run(ls_remote_ref_cmd(self.app, remote, ref), f"git ls-remote {ref}", warn=True)
        if not r.ok or r.stdout.strip() or (SHORT_SHA.fullmatch(ref) and self.git.resolve(ref)):
            return
        raise errors.UsageError(unknown_ref("--to" if self.opts.trigger == "rollback" else "--ref", ref, remote))

    def _reported(self, holder: Optional[dict]) -> bool:
        """We waited for `holder`, a run deploying our very target: its
        result is ours (docs/pipeline.md, "Lock"), a failure too: a second
        deploy of a target whose gate just failed is no new attempt but the
        same push reported twice. False when it left no record (a no-op, or
        killed mid-way): this run converges as usual, and finishes it."""
        rec = record_of(self.paths.history, (holder or {}).get("run_id"))
        if rec is None:
            return False
        self.res.result, self.res.message = result_of(self.paths.history, holder)
        self.res.from_, self.res.to = rec.get("from"), rec.get("to")
        self.res.subject, self.res.author = rec.get("subject") or "", rec.get("author") or ""
        # its warnings too: the same result exits with the same code (#24's
        # trial: the run waited for exited 1 for its untracked files, this one 0)
        self.res.warnings.extend(w for w in rec.get("warnings") or () if w not in self.res.warnings)
        self.reported = True
        return True

    def _take_failure(self, exc: BaseException) -> None:
        """The result of a run stopped by an exception."""
        if isinstance(exc, Abort):
            self.res.result, self.res.message = exc.result, exc.message
        elif isinstance(exc, errors.UsageError):
            # a flag's value the host cannot use (an unknown --ref): the
            # run did not start, and the code says the flag was wrong
            self.res.result, self.res.message, self.res.usage = "aborted", exc.message, True
        elif isinstance(exc, FabopsError):
            # anything unexpected mid-run: the host state is unknown
            self.res.result, self.res.message = "broken", exc.message
        else:
            # e.g. ENOSPC while saving state: state files are replaced
            # atomically, so what is on disk is the last good version
            self.res.result = "broken"
            self.res.message = f"{getattr(exc, 'strerror', None) or exc} ({getattr(exc, 'filename', None) or 'host file'})"

    def _peek_target(self) -> Optional[str]:
        """Our target without touching the checkout (ls-remote needs no lock)."""
        if self.opts.ref:
            return self.git.resolve(self.opts.ref)
        r = self.git.run(ls_remote_cmd(self.app, self.host.app.remote, self.host.app.branch), "git ls-remote", warn=True)
        return parse_ls_remote(r.stdout) if r.ok else None

    # ---------------------------------------------------------------- the run
    def _converge(self, lock: HostLock) -> None:
        """Gather, decide (host/plan.py), act."""
        state = self.state = self.state_file.load()
        decided, facts = self._decide(state)
        self.res.to = decided.target  # the plan may finish on another commit than the branch's
        lock.update(target=decided.target)
        self._act(decided, facts, state)

    def _decide(self, state: State) -> Tuple[Plan, Facts]:
        """Fetch, then ask the planner, gathering each fact it needs
        (read-only) until it can decide: the real run and the dry run
        share this (docs/architecture.md, "Plans")."""
        signers = self._settings_at_start()
        moved = self._moves() if signers else ()
        origin, ref_commit, head = self._fetch()
        older, apart = self._good_lineage(state)
        facts = Facts(origin=origin, ref_commit=ref_commit, head=head, app=self.app,
                      ended_watch=self._ended_watch(state), older=older, apart=apart, signers=signers,
                      sent="moved" if moved else self.sent_state, sent_moves=moved)
        opts = Opts(trigger=self.opts.trigger, ref=self.opts.ref, stash=self.opts.stash,
                    clear_pin=self.opts.clear_pin, allow_unverified=self.opts.allow_unverified,
                    pin_reason=self.opts.pin_reason, settings_from=self.opts.settings_from)
        self.res.to = choose_target(state, facts, opts)
        while True:
            decided = plan(self.host, state, facts, opts)
            if isinstance(decided, Plan):
                return decided, facts
            facts = self._gather(decided.fact, facts, state, decided.target)

    def _good_lineage(self, state: State) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        """For a rollback without --to (the planner's rollback_target): the
        good commits this host deployed (its history, plan.good_commits)
        that are ancestors of the deployed one, and those that are neither
        older nor newer (a force-push rewrote the history), the last
        deployed first: one git each."""
        if self.opts.trigger != "rollback" or self.opts.ref is not None or not state.deployed:
            return (), ()
        found: Dict[str, List[str]] = {"older": [], "newer": [], "apart": []}
        for sha in good_commits(tail_jsonl(self.paths.history, 500), state.previous)[:50]:
            if FULL_SHA.fullmatch(sha) and sha != state.deployed:
                found[self.git.lineage(sha, state.deployed)].append(sha)
        return tuple(found["older"]), tuple(found["apart"])

    def _followable(self, holder: dict) -> bool:
        """Whether `holder`'s run writes an event file that --attach follows."""
        return bool(holder.get("run_id")) and os.path.isfile(self.paths.run_events(str(holder["run_id"])))

    def _ended_watch(self, state: State) -> bool:
        """Whether the run in progress is one whose watch this run ended
        (its request is ours): finished as news to nobody, not as an
        interrupted run (the dry run reads the lock's holder instead)."""
        asked = watch_end_request(self.paths.watch_end, 0) or {}
        return bool(state.in_progress) and asked.get("run_id") == self.run_id

    def _signers(self) -> str:
        """The allowed-signers file when it is there: then every target is
        checked (docs/security.md, "Verified commits"), whatever host.yml
        says; "" when not. hosts.yml's `verify:` without it (setup not run
        since) is a file missing: every target is held, as none can be
        checked."""
        found = required_signers(self.host, self.paths.home)
        if not found and self.sent_state == "pending":
            # the sent settings' app may require signed commits where the
            # installed ones' does not (another app's home sent, on a host
            # with two apps): either requiring them counts, so that their
            # moves are caught (_decide)
            found = required_signers(self.sent.host)
        return found or (signers_path(self.host, self.paths.home) if self.host.verify is not None else "")

    def _verified(self, facts: Facts, target: str) -> Facts:
        """git verify-commit on the target, once (the planner's Need)."""
        if not os.path.isfile(facts.signers):
            found = (False, f"no allowed-signers file {facts.signers}: run setup")
        else:
            ok, said = self.git.verify_commit(facts.signers, target)
            found = (ok, signature_words(ok, said))
        return replace(facts, signed=Signed(target, *found))

    def _gather(self, fact: str, facts: Facts, state: State, target: str) -> Facts:
        if fact == "verify":
            return self._verified(facts, target)
        if fact == "settings":
            # the facts the old settings' services and checks gave are asked again with the new ones
            self._take_settings()
            return replace(facts, sent="taken", health=None, problems=None)
        if fact == "health":
            looked = quick_health(self.services, list(self.host.services))
            return replace(facts, health=tuple(Health(h.service, h.ok, h.message, h.phase == "held") for h in looked))
        # the preflight: every reason not to start, found without changing anything
        problems = held_ports(self.services, self.host.services)
        full = self._disk_problem()
        if full:
            problems.append(full)
        person, in_the_way, kept, still = self._local_changes(state, target)
        missing = self._missing_env_keys(target)
        if missing:
            problems.append(f"{self.host.env_file} lacks keys that {self.host.env_template} of "
                            f"{short(target)} needs: " + ", ".join(missing))
        changed = None
        if not problems and state.deployed and not state.in_progress:
            changed = tuple(self.git.changed(state.deployed, target) or ())
        return replace(facts, problems=tuple(problems), local_changes=tuple(person), in_the_way=tuple(in_the_way),
                       kept=tuple(kept), own_files=tuple(still), changed=changed)

    def _act(self, p: Plan, facts: Facts, state: State) -> None:
        """Execute the plan: each kind's writes, in order."""
        self.plan_hooks = p.hooks
        self.res.warnings.extend(p.warnings)
        self.res.known_bad = p.known_bad  # warned, not a reason for exit 1 (RunResult.exit_code)
        self.res.unverified = p.unverified  # the record's own field, never read from the warning (#29)
        for line in p.warnings + p.says:
            self.say(line)
        if p.clear_pin and p.kind != "deploy":  # a deploy's is cleared as it promotes (_promote)
            self._unpin(state)
        if p.pin and p.kind in ("noop", "restart"):  # nothing to promote: pinned at once
            state.pin, state.pin_reason = p.pin, self._pin_reason()
            self.save(state)
            self.res.pinned = p.pin
        if p.adopt:
            state.deployed = p.adopt
            state.deployed_at = time.time()
            self.save(state)
        # where the checkout is (p.from_); None on a first deploy: nothing was deployed before
        self.res.from_ = p.from_
        if p.kind == "noop":
            self.res.result, self.res.message = "noop", p.message
            self.rec.settle(state)
        elif p.kind == "hold":
            if p.notify and p.target in state.bad:  # a held unsigned target is no bad one (plan._signed)
                state.bad[p.target]["notified"] = True
            self._hold(state, p.result, p.message)
            if p.notify:  # one history record (and notification), not one per poll
                self.rec.record()
        elif p.kind == "abort" and p.result == "broken":
            # every poll of a host in the restart backoff finds it broken again:
            # the planner records the first (plan.said_already), a repeat adds
            # no history line (288 a day at 5-minute polls hid every other run)
            state.last_check = time.time()
            state.last_result = "broken"
            state.broken_said = p.message
            self.save(state)
            raise Abort("broken", p.message, record=p.record)
        elif p.kind == "abort":
            done = next((st for st in self.res.steps if st.name == p.step), None)
            if done is not None:  # the step that found it (the fetch) failed: not a second step of its name
                done.ok, done.message = False, p.message
                self.events.emit("step", step=done.name, status="failed", seconds=round(done.seconds, 3),
                                 message=done.message)
            else:
                with self.step(p.step) as st:
                    st.ok, st.message = False, p.message
            raise Abort("aborted", p.message, record=p.record)
        elif p.kind == "restart":
            self._restart_sick(state, p)
        else:
            self._deploy(state, p, facts)

    def _unpin(self, state: State) -> None:
        """A no-op or a restart without --ref follows the branch again: said
        as it is done, by a run that acts on its plan (an abort leaves the
        pin; a deploy clears it as it promotes, _promote)."""
        self.say(f"clearing pin {short(state.pin)}")
        state.pin = None
        state.pin_reason = None
        self.save(state)

    def _hold(self, state: State, result: str, message: str) -> None:
        """Cron stays where it is on purpose (a bad target, a retry not due):
        settled as any check is, so `failing` names the commit it holds
        back (state.failing_after), not an older target's failure."""
        self.res.result = result
        self.res.message = message
        self.rec.settle(state)

    def _fetch(self) -> Tuple[Optional[str], Optional[str], Optional[str]]:
        """Fetch the branch (and --ref): (the branch's head, what --ref
        names, the checkout's HEAD)."""
        app = self.host.app
        with self.step("fetch") as st:
            if not os.path.isdir(os.path.join(self.app, ".git")):
                raise Abort("aborted", f"{self.app} is not a git checkout (run setup first)")
            try:
                tracking = self.git.fetch(app.remote, app.branch)
            except errors.CommandFailed as exc:
                # the network or the remote: nothing changed here, and the
                # next run simply tries again
                raise Abort("aborted", f"{exc.message}; nothing changed") from None
            origin, head = self.git.resolve_each(tracking, "HEAD")
            st.message = f"{app.remote}/{app.branch} is {short(origin)}"
            ref = self.opts.ref
            if ref is None:
                return origin, None, head
            check_ref(ref)
            # A branch or tag means what the remote says now: the host's
            # own branch of that name is where fabops last checked out
            # (checkout -B), and `--ref main` must not "deploy" it again.
            # A full SHA is unambiguous and usually here already; an
            # abbreviated one cannot be fetched, so it is looked up here.
            known = None
            if FULL_SHA.fullmatch(ref):
                known = self.git.resolve(ref)
                commit = known or self.git.fetch_ref(app.remote, ref)
            else:
                commit = self.git.fetch_ref(app.remote, ref)
                if commit is None and SHORT_SHA.fullmatch(ref):
                    commit = self.git.resolve(ref)
            flag = "--to" if self.opts.trigger == "rollback" else "--ref"
            if commit is None:  # a person's --ref or --to: rollback's own pick is a known commit
                raise errors.UsageError(unknown_ref(flag, ref, app.remote))
            # a SHA is itself: say where it came from, not `<40 hex> is <12 hex>`
            # (and a rollback with no --to picked it: no flag to name)
            label = "rollback target" if flag == "--to" else flag
            st.message = (f"{label} {short(commit)} is a known commit" if known else
                          f"{label} {short(commit)} fetched from {app.remote}" if FULL_SHA.fullmatch(ref) else
                          f"{flag} {ref} is {short(commit)}")
        return origin, commit, head

    def _restart_sick(self, state: State, p: Plan) -> None:
        """The deployed commit with services down: restart them (the
        planner checked the restart budget) and record the outcome."""
        # "healthy again" only after a `broken` verdict, as a person's
        # restart says it (record.healthy_again): a service that was only
        # stopped comes back "healthy". The warning is the plan's (_act).
        again = " again" if state.result() == "broken" else ""
        state.restarts = list(p.restarts)
        self.save(state)
        ok = self._restart_and_wait([s for s in self.host.services if s.name in p.services])
        state.last_check = time.time()
        names = ", ".join(sorted(p.services))
        state.last_result = "deployed" if ok else "broken"
        self.save(state)
        self.res.result = state.last_result
        self.res.message = (f"restarted {names} at {short(state.deployed)}; healthy{again}" if ok
                            else f"restarted {names} but it is still unhealthy")
        self.rec.record()

    def _deploy(self, state: State, p: Plan, facts: Facts) -> None:
        """The deploy proper, phase by phase (docs/architecture.md, "The
        pipeline"): preflight's writes (--stash), checkout, dependency rules
        (a failed rule recovers to the fallback and is retried later),
        restart with the readiness gate and the watch window, then promote
        or roll back. What runs is the plan's (host/plan.py)."""
        deployed, target = p.deployed, p.target
        fallback = deployed or self.git.head()  # where to go back to if the target fails
        if list(facts.own_files) != state.own_files:
            state.own_files = list(facts.own_files)
            self.save(state)
        with self.step("preflight") as st:
            if p.stash:
                self.res.saved = self._stash(facts.in_the_way)
                st.message = f"saved {counted(len(facts.local_changes), 'local change')} to {self.res.saved}"
            changed = None if p.full else facts.changed
            units = [f for f in (changed or []) if f.endswith((".service", ".timer", ".socket"))]
            if units:
                self.res.warnings.append("unit files changed in the repo (setup installs them): "
                                         + ", ".join(units))
            if not st.message:
                # untracked files kept are no local changes, but the tree is
                # not clean either: said as what they are (plan._with_kept warns)
                kept = f"{counted(len(facts.kept), 'untracked file')} kept" if facts.kept else ""
                st.message = ("no local changes; " + kept if kept else "clean") + (
                    f"; {counted(len(changed), 'file')} changed" if changed is not None else "; full converge")
        rules = [self.host.deps[i] for i in p.rules]
        affected = [s for s in self.host.services if s.name in p.services]
        self._checkout(state, fallback, target, p.pin, p.clear_pin)
        before = self._dirty_paths() if rules else []
        ran, failed = self._apply_rules(rules, before)
        if failed is not None:
            self._recover(failed, ran, before, fallback, target)
        elif not self._hook("before_restart"):
            self._recover(f"the before_restart hook failed ({self.res.steps[-1].message})", ran, before, fallback,
                          target)
        elif (self._restart_and_wait(affected, watched=True) and self._hook("after_deploy")
              and self._watch(affected, fallback, target, p.pin)):
            self._promote(deployed, target, p.pin, p.clear_pin)
        else:
            self._rollback(rules, before, affected, fallback, target)

    # ---------------------------------------------------------------- phases
    def _checkout(self, state: State, fallback: Optional[str], target: str, pin: Optional[str],
                  unpin: bool = False) -> None:
        """Mark the run in progress (a killed run is finished by the next
        one; a dry run that meets its watch promotes it: `pin` says whether
        promotion pins, `unpin` whether it clears the pin), then check out
        the target."""
        state.in_progress = {
            "run_id": self.run_id, "trigger": self.opts.trigger, "from": fallback, "to": target,
            "pin": bool(pin), "step": "checkout", "since": time.time(),
            **({"unpin": True} if unpin else {}),
        }
        self.save(state)
        with self.step("checkout") as st:
            self.git.checkout(self.host.app.branch, target)
            st.message = short(target)

    def _apply_rules(self, rules: Sequence[DepRule], before: Sequence[str]):
        """Run the dependency rules in order until one fails: (the rules
        that ran, the one that failed or None)."""
        ran: List[DepRule] = []
        failed = None
        for rule in rules:
            ran.append(rule)
            if not self._run_rule(rule):
                failed = rule
                break
        if rules:
            self._note_own_files(before)
        return ran, failed

    def _recover(self, failed: Union[DepRule, str], ran: Sequence[DepRule], before: Sequence[str],
                 fallback: Optional[str], target: str) -> None:
        """A dependency rule failed (often the network), or the
        before_restart hook (`failed`: why): back to the fallback, nothing
        restarted, and cron retries the target later."""
        why = failed if isinstance(failed, str) else f"dependency rule `{failed.run}` failed"
        next_at = self._schedule_retry(target, why)
        why += (f" ({'' if isinstance(failed, str) else 'transient? '}cron retries it at "
                f"{time.strftime('%H:%M %Z', time.localtime(next_at))})")
        if fallback is None:
            self.rec.finish("broken", f"{why} and there is no previous commit to go back to")
            return
        with self.step("recover") as st:
            back = self._back_to(fallback, ran, before)
            st.ok = back
            st.message = f"back on {short(fallback)}" + ("" if back else "; re-running its rules failed too")
        if back:
            self.rec.finish("aborted", f"{why}; nothing was restarted; back on {short(fallback)}")
        else:
            self.rec.finish("broken", f"{why}, and re-running the rules for {short(fallback)} failed too")

    def _back_to(self, fallback: str, rules: Sequence[DepRule], before: Sequence[str]) -> bool:
        """Check out the fallback and run `rules` again for it: a half-done
        `npm ci` has already removed node_modules. True when they all pass."""
        self.git.checkout(self.host.app.branch, fallback)
        ok = all(self._run_rule(r, label="re-run") for r in rules)
        if rules:
            self._note_own_files(before)
        return ok

    def _pin_reason(self) -> str:
        """The pin's reason, written in the same locked save as the pin: the
        run's own (promote gives `promoted from staging by …`), else
        TRIGGER by ACTOR (docs/environments.md, "Promote")."""
        return self.opts.pin_reason or pin_reason(self.opts.trigger, self.actor)

    def _promote(self, deployed: Optional[str], target: str, pin: Optional[str], unpin: bool = False) -> None:
        """The gate and the watch passed: the target is the deployed commit
        (and the pin, for --ref; a deploy without --ref clears the pin here,
        `unpin`, and only here: an aborted or rolled-back run leaves it,
        docs/pipeline.md, step 3)."""
        def promote(st: State) -> None:
            # what promotion writes is decided once (state.promoted): the
            # dry run plans from the same answer
            vars(st).update(vars(promoted(st, deployed, target, bool(pin), time.time(),
                                          self._pin_reason(), unpin=unpin)))

        if pin:
            self.res.pinned = target
        if unpin and self.state is not None and self.state.pin:
            self.say(f"clearing pin {short(self.state.pin)}: {short(target)} passed")
        # nothing deployed before: a first deploy, not "X -> X" from the
        # commit the checkout happened to be at; a run that goes from where
        # the checkout is (Plan.from_) and found it on the target already (it
        # finished a superseded run, whose checkout that was) says so and
        # what it promoted from, not "X -> X" (#24; docs/pipeline.md, `superseded`)
        if not deployed:
            message = f"first deploy, at {short(target)}"
        elif self.res.from_ == target:
            message = f"already at {short(target)}" + (f", now deployed (was {short(deployed)})"
                                                       if deployed != target else "")
        else:
            message = f"{short(self.res.from_)} -> {short(target)}"
        self._hook("on_rollback", "deployed", message)  # a rollback run's (plan.hook_runs)
        self.rec.finish("deployed", message, promote)

    def _rollback(self, rules: Sequence[DepRule], before: Sequence[str], affected: Sequence[Service],
                  fallback: Optional[str], target: str) -> None:
        """The gate or the watch failed: mark the target bad (cron will not
        retry it), go back to the fallback, its rules and a restart."""
        last = self.res.steps[-1] if self.res.steps else None
        # a failed after_deploy hook says so (its step's name is `after_deploy hook`)
        reason = ("health gate failed" if last is None else
                  f"the {last.name} failed: {last.message}" if last.name.endswith(" hook") else last.message)
        # another process on the service's port (phase "held") is the host's
        # failure, not the commit's: nothing is marked bad (docs/pipeline.md, "Whose port")
        failed = f"{short(target)} could not start ({reason}; not marked bad)" if self.held else \
            f"{short(target)} failed ({reason})"
        if not self.held:
            self._mark_bad(target, reason)
        if fallback is None:
            self.rec.finish("broken", f"{reason}; no previous commit to roll back to")
            return
        with self.step("rollback") as st:
            rules_ok = self._back_to(fallback, rules, before)
            st.message = f"checked out {short(fallback)}" + ("" if rules_ok else "; its dependency rules failed")
            st.ok = rules_ok
        # the port still held: a restart into it could not start either (the preflight's look and words)
        still = held_ports(self.services, affected, running=True) if self.held and rules_ok else []
        if still:
            message = f"{failed}; back on {short(fallback)}, not restarted: {'; '.join(still)}"
            self._hook("on_rollback", "aborted", message)
            self.rec.finish("aborted", message)
            return
        ok = rules_ok and self._restart_and_wait(affected, label="rollback")
        self._hook("on_rollback", "rolled_back" if ok else "broken", f"{failed}; rolled back to {short(fallback)}"
                   + (", healthy" if ok else " failed too"))

        def adopt_fallback(st: State) -> None:
            if st.deployed is None:
                st.deployed = fallback
                st.deployed_at = time.time()

        if ok:
            self.rec.finish("rolled_back", f"{failed}; rolled back to {short(fallback)}, healthy", adopt_fallback)
        else:
            self.rec.finish("broken", f"{failed}; rollback to {short(fallback)} failed too")

    # ---------------------------------------------------------------- pieces
    def _hook(self, name: str, result: str = "", message: str = "") -> bool:
        """Lifecycle hook `name` as its own step, when the plan says it runs
        now (plan.hook_runs); True when it passed or does not run. Its
        output goes to the update log, its last line to the step; a failed
        on_rollback or on_failure is the run's warning (docs/pipeline.md,
        "Hooks")."""
        if not hook_runs(self.host, name, self.plan_hooks, result, self.opts.trigger):
            return True
        from .hooks import hook_env, run_hook  # only when one runs: cron's polls import no more (test_fastpath)

        hook = self.host.hooks[name]
        env = hook_env(self.host, name, run_id=self.run_id, trigger=self.opts.trigger, actor=self.actor,
                       from_=self.res.from_, to=self.res.to, result=result, message=message or self.res.message,
                       app=self.app)
        # a hook runs in the checkout: what it changes there (a migration
        # rewriting the tracked db/schema.rb) is fabops' own, as a
        # dependency rule's is, so the next run's preflight does not refuse
        # it as a person's work (docs/hooks.md, "What a hook changes")
        before = self._dirty_or_warn(f"before the {name} hook")
        with self.step(f"{name} hook") as st:
            try:
                ran = run_hook(self.t, self.paths.home, self.app, name, hook.run, hook.timeout, env)
            except (OSError, errors.FabopsError) as exc:
                st.ok, st.message = False, f"could not run it: {getattr(exc, 'message', None) or exc}"
            else:
                self.rec.log_output(f"{name} hook, {ran.said(hook.timeout)[:80]}", ran.output)
                st.ok, st.message = ran.ok, ran.said(hook.timeout)
        after = self._dirty_or_warn(f"after the {name} hook") if before is not None else None
        if after is not None:
            self._note_own_files(before, after)
        if not st.ok and name.startswith("on_"):
            self.res.warnings.append(f"the {name} hook failed: {st.message}")
        return st.ok

    def _on_failure(self) -> None:
        """on_failure, once per failed run: called as the run is recorded
        (Recorder.record, which records a run once)."""
        self._hook("on_failure", self.res.result, self.res.message)

    def _disk_problem(self) -> Optional[str]:
        return disk_problem((("app", self.app), ("state", self.paths.home),
                             ("log", os.path.dirname(self.rec.update_log))))

    def _watch(self, services: Sequence[Service], fallback: Optional[str], target: str,
               pin: Optional[str] = None) -> bool:
        """The gate proved the services started; the watch proves they stay
        up. The lock stays held, so neither cron nor `health --fix` steps in:
        a failure here rolls back like a failed gate (docs/pipeline.md, "Watch")."""
        from .would import watch_seconds

        longest = watch_seconds(services)  # the window every dry run says (would.watched)
        if longest <= 0:
            return True
        # the laptop's `deploy --no-watch` stops following here; `pin`: the
        # plan pins on promotion (_promote), not yet: that follower says so
        # and the warnings so far (untracked files kept, ...): a follower
        # that stops here exits with the code they give (docs/pipeline.md,
        # "Untracked files"), as the run that goes on does
        self.events.emit("watch", status="start", seconds=longest, **{"from": fallback, "to": target},
                         **({"pin": pin} if pin else {}), warnings=list(self.res.warnings))
        since = time.time()
        if self.lock:
            self.lock.update(phase="watch", watch_ends=since + longest)

        def ended() -> Optional[str]:
            req = watch_end_request(self.paths.watch_end, since, self.run_id)
            return f"{req.get('trigger', '?')} by {req.get('actor', '?')}" if req else None

        with self.step("watch") as st:
            seen = watch(self.services, list(services), progress=lambda m: self.say(m), ended=ended, gated=self.gated)
            st.ok = seen.ok
            st.message = seen.message
            st.requests = seen.requests
        self.held = seen.phase == "held"
        if seen.phase == "ended":
            # not a verdict on the commit: nothing is marked bad, nothing is
            # promoted, and in_progress stays, so the next run (the rollback
            # or reset waiting for us) finishes this one first. Its own
            # result, not a failure: nothing to notify, no failing streak
            raise Abort("superseded", f"{seen.message}: {short(target)} was not promoted (the rollback target stays "
                                    f"{short(fallback)}); the next run finishes this one")
        if self.lock:
            self.lock.update(phase="promote" if seen.ok else "rollback")
        return seen.ok

    def _restart_and_wait(self, services: Sequence[Service], label: str = "restart", watched: bool = False) -> bool:
        """Restart each service and pass its gate, in order; `watched`: the
        watch follows (a deploy), so the gates skip their settle
        (readiness.settle_for) and the watch starts from the PIDs they passed
        with (self.gated)."""
        self.gated, self.held = {}, False
        for svc in services:
            with self.step(f"{label} {svc.name}") as st:
                self.services.restart(svc)
                ready = wait_ready(self.services, svc, progress=lambda m: self.say(m), watched=watched)
                st.ok = ready.ok
                st.message = ready.message + (f" ({counted(ready.requests, 'HTTP check')})" if ready.requests else "")
                st.requests = ready.requests
            if not ready.ok:
                self.held = ready.phase == "held"  # the host's failure, not the commit's (_rollback)
                return False
            self.gated[svc.name] = ready.pid
        return True

    def _run_rule(self, rule: DepRule, label: str = "deps") -> bool:
        cwd = os.path.normpath(os.path.join(self.app, rule.cwd))
        with self.step(f"{label}: {rule.run}") as st:
            result = self.t.run(in_dir(cwd, inventory_shell(rule.run)), check=False, env=self.host.env)
            output = (result.stdout + result.stderr).strip()
            self.rec.log_output(f"{label} `{rule.run}` in {rule.cwd}", output)
            st.ok = result.ok
            tail = output.splitlines()[-1] if output else ""
            st.message = ("ok" if result.ok else f"exit {result.exited}") + (f": {tail[:200]}" if tail else "")
        return result.ok

    def _local_changes(self, state: State, target: str):
        """The checkout's changes sorted by preflight.sort_changes: (a
        person's changes, untracked files in the way, files kept)."""
        dirty = self.git.dirty()
        # Forget our own files once they are clean again (a checkout put them
        # back): a person's later edit to such a file is theirs again (the
        # deploy saves the shorter list: _deploy)
        still = [f for f in state.own_files if f in {status_path(d) for d in dirty}]
        return sort_changes(dirty, still, lambda untracked: self.git.tracked_in(target, untracked)) + (still,)

    def _dirty_paths(self) -> List[str]:
        return [status_path(d) for d in self.git.dirty()]

    def _dirty_or_warn(self, when: str) -> Optional[List[str]]:
        """The checkout's changed files around a hook; None, said as a
        warning, when git cannot tell (on_failure of a run whose checkout
        is broken still runs, and its record is still written)."""
        try:
            return self._dirty_paths()
        except (OSError, FabopsError) as exc:
            self.res.warnings.append(f"could not list the checkout's changes {when}: "
                                     f"{getattr(exc, 'message', None) or exc}")
            return None

    def _note_own_files(self, before: Sequence[str], after: Optional[Sequence[str]] = None) -> None:
        """Remember the files that our dependency rules or a hook just
        created or changed (`npm install` rewriting package-lock.json, a
        __pycache__, a migration's db/schema.rb): `after`, the checkout's
        changed files now, looked at here when not given."""
        new = [u for u in (self._dirty_paths() if after is None else after) if u not in set(before)]
        if new:
            state = self._current_state()
            state.own_files = list(dict.fromkeys(state.own_files + new))[-500:]
            self.save(state)

    def _stash(self, untracked: Sequence[str] = ()) -> str:
        """--stash: preflight.stash, and say where it went."""
        dest = stash(self.git, self.app, self.host.backup_dir, self.run_id, untracked)
        self.say(f"saved local changes to {dest}")
        return dest

    def _missing_env_keys(self, target: str) -> List[str]:
        return missing_env_keys(self.git.show(target, self.host.env_template),
                                os.path.join(self.app, self.host.env_file))

    def _schedule_retry(self, target: str, reason: str) -> float:
        state = self._current_state()
        retry = state.retry if state.retry and state.retry.get("target") == target else {"target": target, "attempts": 0}
        retry["attempts"] = int(retry.get("attempts", 0)) + 1
        retry["next_at"] = time.time() + retry_delay(retry["attempts"])
        retry["reason"] = reason[:300]
        state.retry = retry
        self.save(state)
        return retry["next_at"]

    def _mark_bad(self, target: str, reason: str) -> None:
        # marked in the merge, on the file's `bad` (state.marked_bad: its entry and cap), as a reset marks it
        self.save(self._current_state(), bad=(target, bad_entry(reason, self.run_id)))


def unknown_ref(flag: str, ref: str, remote: str) -> str:
    """What a run says of a --ref (rollback's --to) that names nothing."""
    return f"{flag} {ref}: no such branch, tag or commit on {remote}"


def retry_delay(attempts: int) -> float:
    """Seconds until cron tries a target again after its `attempts`-th failed
    dependency rule: 15 min, then every hour."""
    return RETRY_BACKOFF[max(1, min(attempts, len(RETRY_BACKOFF))) - 1]
