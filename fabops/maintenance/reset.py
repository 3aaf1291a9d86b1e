"""Emergency reset to origin: save .env and every local change first, reset,
re-run the dependency rules and setup_command, restart, poll, record."""
from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ..errors import FabopsError
from ..inventory import Host
from ..host.git import checkout_cmd, fetch_cmd, git, ls_remote_cmd, parse_porcelain, reset_hard_cmd, status_cmd
from ..host.plan import known_bad
from ..host.preflight import save_changes_cmd, status_path
from ..host.record import counted
from ..host.state import bad_entry
from ..host.would import Would
from ..probe import MARK, split_sections
from ..shell import Cmd, in_dir, inventory_shell, lines, path, sh
from ..shortsha import short_sha
from ..target import Target
from .common import app_file, record_run, stamp


def reset_plan_cmd(host: Host, lock: bool = True) -> Cmd:
    """The plan's facts in one round trip (docs/architecture.md, "Plans"):
    the checkout, origin's head, state.json and, with `lock`, the host
    lock's holder (remote.lock_holder_cmd: tested, never taken). A local
    target leaves the lock out: reset_plan reads it in-process."""
    # `; echo` after cat: a state.json (or a holder record) without a final
    # newline would put the next marker on its `}` line and lose the JSON
    # (as remote._marker guards status); split_sections strips the blank
    # line. The lock's section keeps its failure for the script's exit
    holder = lock_section_cmd(host) if lock else sh("")
    return sh(
        "{where}"
        "echo {m}dirty; git -C {app} status --porcelain=v1 --untracked-files=all 2>/dev/null\n"
        "echo {m}target; {ls_remote} 2>/dev/null | cut -f1\n"
        "echo {m}env; [ -f {env} ] && echo yes\n"
        "{ports}"
        "{holder}"
        "echo {m}end\n"
        "exit ${{lock_rc:-0}}\n",
        m=MARK, app=path(host.app.path), ls_remote=ls_remote_cmd(path(host.app.path), host.app.remote, host.app.branch),
        env=app_file(host, host.env_file), where=where_cmd(host), holder=holder, ports=ports_cmd(host))


def where_cmd(host: Host) -> Cmd:
    """The `head` and `state` sections: the checkout's commit and
    state.json (what is deployed), as reset's and restart's plans read
    them. `; echo` after cat: a state.json without a final newline would
    put the next marker on its `}` line (split_sections strips the blank)."""
    from ..host.git import rev_parse_cmd

    return sh("echo {m}head; {head} 2>/dev/null\necho {m}state; cat {state} 2>/dev/null; echo\n", m=MARK,
              head=rev_parse_cmd(path(host.app.path), "HEAD"), state=path(host.paths.state))


def lock_section_cmd(host: Host) -> Cmd:
    """The host lock's holder as a section of a plan's script
    (remote.lock_holder_cmd: tested, never taken). The test runs in a
    subshell, so its `exit` ends only the section; its failure (no
    flock(1), an unreadable lock) is kept in lock_rc for the script's exit
    code once every section is printed, never read as a free lock."""
    from ..remote import lock_holder_cmd

    return sh("echo {m}lock; ( {test} ) || lock_rc=$?; echo\n", m=MARK, test=lock_holder_cmd(host))


def ports_cmd(host: Host, services=None) -> Cmd:
    """The declared ports' facts for held_ports' rule, in the plan's round
    trip: the ported services' status, then whose each port's listener
    is (checks.recorded_owners_cmd). Empty when none declares a port.
    `services`: only these (restart's), else every one (reset's)."""
    from ..checks import recorded_owners_cmd
    from ..host.services import process_status_cmd, systemd_status_cmd

    ported = [s for s in (host.services if services is None else services) if s.port]
    if not ported:
        return sh("")
    units = [s.name for s in ported if s.manager == "systemd"]
    procs = [s for s in ported if s.manager == "process"]
    parts = ([sh("echo {m}systemd; {cmd} 2>/dev/null; echo\n", m=MARK, cmd=systemd_status_cmd(units))] if units else [])
    parts += ([sh("echo {m}process\n{cmd}", m=MARK, cmd=process_status_cmd(host.paths.home, procs))] if procs else [])
    parts.append(sh("echo {m}owners\n{cmd}\n", m=MARK, cmd=recorded_owners_cmd(host)))
    return lines(parts, "")


@dataclass
class ResetPlan:
    head: Optional[str]
    target: Optional[str]
    dirty: List[str]
    has_env: bool
    deployed: Optional[str] = None  # what state.json says is deployed
    # the target failed its gate before: the line the reset says of it
    # (host/plan.known_bad, deploy's own check and words), else None
    known_bad: Optional[str] = None
    # why it refuses before it changes anything: another process holds the
    # declared port of a service that is not running, so its start could
    # not succeed (host/readiness.held_ports, the deploy preflight's words)
    held: List[str] = field(default_factory=list)
    pin: Optional[str] = None  # state.json's pin, which the reset clears
    # the host lock as the reset meets it now (host/queue.lock_verdict for
    # a reset: take it, end a watch, or locked: a run is changing the
    # host), its holder described and the holder's pid (what --force stops)
    lock: str = "take"
    holder: str = ""
    holder_pid: Optional[int] = None
    # the holder's run id: with its pid, the run --force may stop, and no
    # other (_take_lock: a holder that changed since the plan is exit 4)
    holder_run_id: Optional[str] = None
    # a restore cut off while putting items back (host/plan.UNSAFE_RESTORE_STEPS):
    # host/plan.restore_cut_off_text's words, the planner's abort, else None
    cut_off: Optional[str] = None
    # that mark's run id and step: when the lock's holder is that run, the
    # restore is live, putting items back now, not cut off (refusal)
    cut_off_run: Optional[str] = None
    cut_off_step: Optional[str] = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def refusal(self, force: bool) -> Optional[Tuple[int, List[str]]]:
        """Why the real reset would change nothing on this host, with its
        exit code (None: it acts). It takes the lock first: a run holding
        it is LOCKED (4) unless --force may stop it (a holder without a pid
        cannot be stopped: FAILED); then a restore cut off putting items
        back (BROKEN, as the planner's abort: starting the services would
        run the app on half-restored data and clearing the mark would lose
        it; docs/backups.md "A restore cut off in the middle"); then a held
        port refuses it (FAILED, the deploy preflight's words). The task
        asks only about the hosts that would be reset (docs/maintenance.md).
        A mark whose restore holds the lock is no cut-off restore: it is
        putting items back now, a run changing the host (LOCKED, #24: it
        said "cut off"), and --force does not stop it: killed there, it
        would leave half the data put back (docs/backups.md)."""
        from ..errors import BROKEN, FAILED, LOCKED

        locked = self.lock == "locked"
        stoppable = isinstance(self.holder_pid, int) and self.holder_pid > 1
        if locked and self.cut_off_run is not None and self.holder_run_id == self.cut_off_run:
            return LOCKED, [f"locked: {self.holder} at step {self.cut_off_step}: it is putting items back now, and "
                            "--force does not stop it (killed now, it would leave half the data put back): run "
                            "reset again once it has ended"]
        if locked and not force:
            # --force is named only when it could stop the holder (a trial
            # was told it would, then that it cannot: no pid recorded)
            how = "reset --force stops it, after confirmation" if stoppable else "it recorded no pid: stop it by hand"
            return LOCKED, [f"locked: {self.holder} ({how})"] + self.held
        if locked and not stoppable:
            return FAILED, [NO_PID] + self.held
        if self.cut_off:  # before the ports, as restart and health --fix: nothing may start on that data
            return BROKEN, [self.cut_off]
        return (FAILED, list(self.held)) if self.held else None


# what the real reset says (stop_holder) of a holder it cannot stop
NO_PID = "the lock holder recorded no pid; stop it by hand"


def reset_would(host: Host, p: ResetPlan, force: bool = False) -> List[Would]:
    """What `reset` does on this host, in order, from the plan it read (pure):
    the dry run's `would`, the steps the real reset (below) takes; `would
    stop` and nothing else when it refuses (ResetPlan.refusal)."""
    refused = p.refusal(force)
    if refused:
        return [Would("stop", "-", why) for why in refused[1]]
    out = []
    if p.lock == "end_watch":
        out.append(Would("end watch", "-", f"{p.holder} only watches its services: reset ends the watch and acts "
                         "at once; that run's commit is not promoted"))
    elif p.lock == "locked":  # --force, and refusal found a pid to stop
        out.append(Would("kill", f"pid {p.holder_pid}", f"--force: {p.holder} holds the host lock: SIGTERM to its "
                         "process group, SIGKILL if the lock is not released within 10 s"))
    where = f"{host.backup_dir.rstrip('/')}/reset-<time>/"
    out.append(Would("save", ".env and local changes", f"{counted(len(p.dirty), 'local change')}; saved to {where} "
                     "first"))
    out += [Would("stop", s.name, "nothing runs while the checkout is reset") for s in reversed(host.services)]
    out.append(_reset_step(host, p, where))
    out += [Would("run", rule.run, "every dependency rule") for rule in host.deps]
    if host.setup_command:
        out.append(Would("run", host.setup_command, "setup_command"))
    out += [Would("start", s.name, "then poll it until ready") for s in host.services]
    out.append(Would("record", "state.json", "deployed (when healthy)"
                     + (f"; the pin {short_sha(p.pin)} cleared" if p.pin else "")))
    return out


def _reset_step(host: Host, p: ResetPlan, where: str) -> Would:
    """The reset itself, said as what it does (#24's trial read `would reset
    A -> A: origin/main, git reset --hard …` when the checkout was there
    already, and the untracked files listed after the step that records
    state.json): the checkout at A when it stays there, and plainly that
    `git clean -fd` removes the untracked files after the save above."""
    branch = f"{host.app.remote}/{host.app.branch}"
    if p.head and p.head == p.target:
        target, why = f"the checkout at {short_sha(p.head)}", f"already {branch}; git reset --hard"
    else:
        target, why = f"{short_sha(p.head, 'none')} -> {short_sha(p.target, '?')}", f"{branch}, git reset --hard"
    untracked = sum(1 for line in p.dirty if line.startswith("?? "))
    if untracked:
        return Would("reset", target, f"{why}, then git clean -fd removes the {counted(untracked, 'untracked file')} "
                     f"listed above from the app directory, saved to {where} first (ignored files stay)")
    return Would("reset", target, f"{why} and clean -fd (ignored files stay)")


def reset_plan(c, host: Host, inventory: Optional[str] = None) -> ResetPlan:
    """The checkout, the declared ports and the host lock as they are now:
    all read, nothing taken or written, in one script (reset_plan_cmd); a
    local target's lock is tested in-process (host/lock.peek_holder: no
    flock(1) needed). `inventory`: the run's `-i` (tasks/deploy.inventory_flag),
    for the take-over command a cut-off restore's refusal names."""
    from ..host.lock import peek_holder

    t = Target.of(c, host)
    plan = parse_reset_plan(t.run(reset_plan_cmd(host, lock=not t.is_local),
                                  "reading the checkout, the ports and the host lock").stdout, host, inventory)
    if t.is_local:
        _set_holder(plan, peek_holder(t.paths.lock))
    return plan


def _set_holder(plan: ResetPlan, holder: dict) -> None:
    """The lock as a reset meets it (host/queue.lock_verdict for a reset),
    and who holds it: described, its pid and run id."""
    from ..host.lock import describe_holder
    from ..host.queue import lock_verdict

    plan.lock = lock_verdict("reset", None, holder)[0]
    plan.holder = describe_holder(holder) if holder else ""
    plan.holder_pid = holder.get("pid") if isinstance(holder.get("pid"), int) else None
    plan.holder_run_id = holder.get("run_id") if isinstance(holder.get("run_id"), str) else None


def held(c, host: Host) -> List[str]:
    """The deploy preflight's look at the declared ports
    (readiness.held_ports' rule), in one round trip: a reset looks again
    under the lock, before it saves or stops anything."""
    out = Target.of(c, host).run(ports_cmd(host), "reading the declared ports").stdout
    return held_in(split_sections(out), host)


def parse_reset_plan(output: str, host: Optional[Host] = None, inventory: Optional[str] = None) -> ResetPlan:
    """reset_plan_cmd's output: the checkout as it is, where reset would
    go, and (with `host`) the declared ports another process holds."""
    s = split_sections(output)
    state = state_from_text(s.get("state") or "")
    target = (s.get("target") or "").split()[0] if s.get("target") else None
    bad = state.get("bad") if isinstance(state.get("bad"), dict) else {}
    deployed = state.get("deployed") if isinstance(state.get("deployed"), str) else None
    plan = ResetPlan(
        head=(s.get("head") or None),
        target=target,
        dirty=[ln for ln in (s.get("dirty") or "").splitlines() if ln.strip()],
        has_env=s.get("env") == "yes",
        deployed=deployed,
        known_bad=known_bad(bad, target, deployed, "reset"),
        pin=state.get("pin") if isinstance(state.get("pin"), str) else None,
        cut_off=_cut_off(state, host, inventory),
    )
    if plan.cut_off:
        plan.cut_off_run, plan.cut_off_step = str(state["in_progress"].get("run_id")), state["in_progress"].get("step")
    if "owners" in s and host is not None:
        plan.held = held_in(s, host)
    if "lock" in s:
        from ..remote import parse_lock_holder

        _set_holder(plan, parse_lock_holder(s["lock"]))
    return plan


def held_in(s: dict, host: Host, services=None) -> List[str]:
    """The deploy preflight's rule (host/readiness.held_among) on the
    ports' facts the plan's round trip read (ports_cmd, with the same
    `services`)."""
    from ..checks import parse_owners
    from ..host.listeners import UNVERIFIED, PortOwner
    from ..host.readiness import held_among
    from ..host.services import parse_process_status, parse_systemd_show

    ported = [svc for svc in (host.services if services is None else services) if svc.port]
    units = [svc.name for svc in ported if svc.manager == "systemd"]
    procs = [svc.name for svc in ported if svc.manager == "process"]
    statuses = {**(parse_systemd_show(s.get("systemd", ""), units) if units else {}),
                **(parse_process_status(s.get("process", ""), procs) if procs else {})}
    owners = parse_owners(s.get("owners", ""), host)
    return held_among(ported, statuses, lambda svc, pid: owners.get(svc.name) or PortOwner(
        svc.port, UNVERIFIED, why="no answer from the host's python3"))


def _cut_off(state: dict, host: Optional[Host], inventory: Optional[str] = None) -> Optional[str]:
    """The planner's words for a restore cut off putting items back
    (host/plan.restore_cut_off_text), else None."""
    from ..host.plan import cut_off_words

    return cut_off_words(state.get("in_progress"), host.name if host else "HOST", inventory)


def state_from_text(text: str) -> dict:
    """state.json as reset_plan_cmd read it ({} when none or unreadable:
    then nothing is known bad)."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def save_local_state_cmd(host: Host, dest: str) -> Cmd:
    """Save .env, tracked changes and every untracked, non-ignored file into
    `dest` before anything is reset: the pipeline's own way to save changes
    (host/preflight.py), run over SSH."""
    return save_changes_cmd(path(host.app.path), path(dest), None,
                            env_file=path(posixpath.join(host.app.path.rstrip("/"), host.env_file)))


def reset_cmd(host: Host) -> Cmd:
    remote, branch = host.app.remote, host.app.branch
    app, tracking = path(host.app.path), f"{remote}/{branch}"
    # the pipeline's own fetch, checkout and reset (host/git.py); then
    # clean -fd, never -x: ignored files (.env, node_modules) stay. The
    # inventory's env comes from the host's env.sh (Target.prepare), never
    # this command line (docs/security.md)
    return sh(
        "set -e\n{fetch}\n{checkout}\n{reset}\n{clean}\n{head}\n",
        fetch=fetch_cmd(app, remote, branch), checkout=checkout_cmd(app, branch, tracking),
        reset=reset_hard_cmd(app, tracking), clean=git(app, "clean", "-fdq"),
        head=git(app, "rev-parse", "HEAD"))


def rule_cmd(host: Host, rule_run: str, cwd: str) -> Cmd:
    """A dependency rule's `run:` (hosts.yml shell code, by design) in its
    cwd; the env from the host's env.sh, as for every command."""
    return in_dir(posixpath.join(host.app.path.rstrip("/"), cwd), inventory_shell(rule_run))


@dataclass
class ResetResult:
    result: str
    message: str
    saved: str
    from_: Optional[str]
    to: Optional[str]
    steps: List[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        from .. import errors

        return errors.OK if self.result == "deployed" else errors.BROKEN

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["from"] = d.pop("from_")
        d["exit_code"] = self.exit_code
        return d


def stop_holder(c, host: Host, holder: dict) -> None:
    """--force: end a hung run that holds the lock (its whole process group)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 1:
        raise FabopsError(NO_PID, host=host.name)
    Target.of(c, host).run(sh("kill -TERM -- -{pid} 2>/dev/null || kill -TERM {pid} 2>/dev/null; "
                              "i=0; while ! flock -n {lock} true && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
                              "flock -n {lock} true || {{ kill -KILL -- -{pid} 2>/dev/null || kill -KILL {pid}; }}",
                              pid=pid, lock=path(host.paths.lock)), check=False)


def reset(c, host: Host, plan: ResetPlan, actor: str, force: bool = False, progress=None) -> ResetResult:
    """Under the host lock: save, stop, reset to origin, run every rule and
    setup_command, start and poll each service, record (reset_would says
    the same steps)."""
    from ..host.events import new_run_id
    from ..remote import managers_for

    t = Target.of(c, host)
    steps = _Steps(progress or (lambda _m: None))
    run_id = new_run_id()
    info = {"actor": actor, "trigger": "reset", "target": plan.target, "since": time.time(), "pid": None, "run_id": run_id}
    started = time.monotonic()
    lock = _take_lock(c, host, info, plan if force else None, steps.say)
    try:
        refused = held(c, host)  # looked again under the lock, before anything is saved or stopped
        if refused:
            raise FabopsError("; ".join(refused), host=host.name)
        # a known-bad target (plan.known_bad) goes ahead as a deploy does;
        # the plan's line said it before the confirmation, so no step
        # line says it again (a trial read its four lines twice)
        if getattr(lock, "ended", None):  # whose watch taking the lock ended: said, as restart says it
            from ..host.queue import ended_watch_line

            steps("end watch", message=ended_watch_line(lock.ended, "reset"))
        dest = f"{host.backup_dir.rstrip('/')}/reset-{stamp()}"
        t.run(save_local_state_cmd(host, dest), "saving local state")
        steps("save", message=f"saved .env and local changes to {dest}")
        manager, probe = managers_for(c, host)
        for svc in reversed(host.services):
            manager.stop(svc)
        steps("stop", message=", ".join(s.name for s in reversed(host.services)))
        new_head = t.run(reset_cmd(host), "git reset").stdout.strip().splitlines()[-1]
        steps("reset", message=f"{short_sha(plan.head, 'none')} -> {short_sha(new_head)} (git reset --hard, clean -fd)")
        rules_ok = _run_rules(t, host, steps)
        # reset left a clean tree (reset --hard, clean -fd): whatever is
        # changed now, our rules wrote (npm install's package-lock.json), so
        # the next deploy counts it as fabops' own, never a person's work
        own = [status_path(d) for d in parse_porcelain(t.output(status_cmd(path(host.app.path))))]
        failed = _start(host, manager, probe, steps) if rules_ok else None
        ok = rules_ok and failed is None
        # a service that did not come up failed reset's gate: its commit is
        # remembered bad as a deploy's failed gate is (cron then skips it);
        # a failed rule, or a port another process holds (phase `held`: the
        # host's failure), is not the commit's verdict, as for a deploy
        bad_reason = failed.message if failed is not None and failed.phase != "held" else None
        result = "deployed" if ok else "broken"
        message = (f"reset to {short_sha(new_head)}; services healthy" if ok else f"reset to {short_sha(new_head)} but it is not healthy") \
            + f"; saved data in {dest}"
        _record(c, host, plan, new_head, result, message, run_id=run_id, actor=actor, started=started,
                steps=steps.done, saved=dest, own=own, bad_reason=bad_reason)
        return ResetResult(result, message, dest, plan.head, new_head, steps.done)
    finally:
        lock.__exit__(None, None, None)


class _Steps:
    """The steps reset took, each said as it ends (✓ or ✗)."""

    def __init__(self, say):
        self.say = say
        self.done: List[dict] = []

    def __call__(self, name: str, ok: bool = True, message: str = "") -> None:
        self.done.append({"name": name, "ok": ok, "message": message})
        self.say(f"{'✓' if ok else '✗'} {name} {message}".rstrip())


def _take_lock(c, host: Host, info: dict, forced: Optional[ResetPlan], say):
    """The host lock (an emergency tool: a watching run is asked to end its
    watch); with --force (`forced`: the plan the person confirmed), the run
    that holds it is stopped first, only if it is the holder that plan
    named (its pid and run id): a run that took the lock since is not the
    one the person agreed to stop, so it is exit 4 (docs/maintenance.md)."""
    from ..errors import LockedError
    from ..host.lock import describe_holder
    from ..remote import RemoteLock

    try:
        return RemoteLock(c, host, info).__enter__()
    except LockedError:
        if forced is None:
            raise
        holder = _remote_holder(c, host)
        if forced.lock != "locked":  # the person agreed to stop nobody: the lock was free when asked
            raise LockedError(f"locked: {describe_holder(holder)}; the plan found the lock free, so --force "
                              "stops no one: run reset again", host=host.name) from None
        pid = holder.get("pid")
        if (pid, holder.get("run_id")) != (forced.holder_pid, forced.holder_run_id) \
                or not (isinstance(pid, int) and pid > 1):
            raise LockedError(f"locked: {describe_holder(holder)}; the holder changed since the plan "
                              f"(it named {forced.holder}): run reset again", host=host.name) from None
        say(f"--force: stopping the run that holds the lock (pid {holder.get('pid')})")
        stop_holder(c, host, holder)
        return RemoteLock(c, host, info).__enter__()


def _run_rules(t: Target, host: Host, steps: _Steps) -> bool:
    """Every dependency rule, then setup_command if they all passed."""
    ok = True
    for rule in host.deps:
        r = t.run(rule_cmd(host, rule.run, rule.cwd), check=False)
        steps(f"deps: {rule.run}", r.ok, "" if r.ok else f"exit {r.exited}")
        ok = ok and r.ok
    if ok and host.setup_command:
        r = t.run(rule_cmd(host, host.setup_command, "."), check=False)
        steps(f"setup: {host.setup_command}", r.ok, "" if r.ok else f"exit {r.exited}")
        ok = r.ok
    return ok


def _start(host: Host, manager, probe, steps: _Steps):
    """Start each service in order and poll it until ready; stop at the
    first that is not: its failed Readiness (None when all are ready)."""
    from ..host.readiness import wait_ready

    for svc in host.services:
        manager.start(svc)
        ready = wait_ready(manager, svc, probe=probe)
        steps(f"start {svc.name}", ready.ok, ready.message)
        if not ready.ok:
            return ready
    return None


def _record(c, host: Host, plan: ResetPlan, new_head: str, result: str, message: str, *, run_id: str, actor: str,
            started: float, steps: List[dict], saved: str, own: List[str], bad_reason: Optional[str] = None) -> None:
    """The history record and state.json's update (deployed when healthy;
    the pin cleared; the files our rules wrote, fabops' own; the commit
    cleared from `bad`, or marked bad when its service failed to start)."""
    ok = result == "deployed"
    now = time.time()
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ts": now, "run_id": run_id, "trigger": "reset",
              "actor": actor, "host": host.name, "from": plan.head, "to": new_head, "result": result,
              "exit_code": 0 if ok else 5, "message": message, "duration": round(time.monotonic() - started, 3),
              "steps": steps, "warnings": [], "saved": saved}
    updates = {"last_check": now, "last_result": result, "in_progress": None, "pin": None, "pin_reason": None,
               "own_files": own[-500:]}
    if ok:
        # healthy on new_head: an update check that deployed, whose outcome
        # ends the `failing` streak and any older target's retry as a
        # pipeline run's does (host/record.Recorder.settle, state.failing_after);
        # kept, status and monitor went on saying `updates failing` with the
        # reason of the run before the reset (#24's trial: `local changes`)
        updates.update({"deployed": new_head, "deployed_at": now, "failing": None, "retry": None, "notified": []})
    # the commit's `bad` mark, in the same merge as the record (host/state.marked_bad, the pipeline's rule):
    # healthy now, it is no longer bad, as a deploy's promotion drops it (or status would go on calling the
    # running commit bad and a rollback never pick it); its service failed to start, it is bad, as a
    # deploy's failed gate marks it (or cron would deploy it again)
    bad = (new_head, None) if ok else (new_head, bad_entry(bad_reason, run_id)) if bad_reason else None
    record_run(c, host, record, updates, bad=bad)


def _remote_holder(c, host: Host) -> dict:
    from ..remote import read_home_json

    return read_home_json(c, host, host.paths.lock)
