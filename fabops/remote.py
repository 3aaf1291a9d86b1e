"""Agentless reads and small writes over plain SSH (or a local Context).

These work even when fabops is not installed on the host, or is broken
(docs/architecture.md, "Layers"; docs/pipeline.md): only POSIX sh, coreutils and, for state edits,
python3 and flock(1).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from . import errors
from .errors import CommandFailed, FabopsError
from .host.services import parse_process_status, parse_systemd_show, process_status_cmd, systemd_status_cmd
from .host.files import own_dirs
from .host.git import rev_parse_cmd, tracking_ref
from .host.state import budget_spent_until, failing_of, host_result, verdict_of
from .host.would import Would
from .inventory import Host
from .probe import MARK, split_sections
from .shell import Cmd, lines, path, quote_path, raw, sh
from .shortsha import short_sha
from .checks import RemoteProbe
from .target import Target


def home_dir_cmd(host: Host) -> Cmd:
    """Make fabops' home on the host and set it to 0700, on every run that
    writes into it, not only the first: a home made 0755 by hand (or by an
    old release) is private again at the next deploy or lock. What mkdir
    makes, parents included, is made under umask 077 (docs/architecture.md,
    "Host layout": fabops' own files are 0600 in 0700 directories)."""
    own = [path(d) for d in own_dirs(host.home)]
    return sh("( umask 077 && mkdir -p {home} ) && chmod 700 {own}", home=path(host.home), own=own)


def read_home_json(c, host: Host, where: str) -> dict:
    """A JSON object from fabops' home on the host ({} when it is missing,
    unreadable or not an object: state.json, the lock's holder record)."""
    out = Target.of(c, host).output(sh("cat {f} 2>/dev/null", f=quote_path(where)))
    try:
        data = json.loads(out or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def history_cmd(host: Host, n: int) -> Cmd:
    return sh("tail -n {n} {f} 2>/dev/null || true", n=int(n), f=quote_path(host.paths.history))


def parse_history(output: str) -> List[dict]:
    records = []
    for line in output.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def read_remote_history(c, host: Host, n: int = 20) -> List[dict]:
    return parse_history(Target.of(c, host).output(history_cmd(host, n)))


def _marker(name: str) -> Cmd:
    # The leading newline ends whatever the previous command printed without
    # one (a state.json written without a final newline put the next marker
    # on its `}` line, and status lost the deploy), so a marker always
    # starts a line; split_sections strips the blank lines this adds.
    return sh("echo; echo {m}", m=MARK + name)


def status_cmd(host: Host) -> Cmd:
    """One round trip: service states, state.json and the last history record."""
    parts = []
    units = [s.name for s in host.services if s.manager == "systemd"]
    procs = [s for s in host.services if s.manager == "process"]
    if units:
        parts.append(sh("{m}; {cmd} 2>/dev/null", m=_marker("systemd"), cmd=systemd_status_cmd(units)))
    if procs:
        parts.append(sh("{m}\n{cmd}", m=_marker("process"), cmd=process_status_cmd(host.paths.home, procs)))
    if host.services:  # each service's age, as monitor reckons it (procstat.process_ages)
        from .procstat import ages_cmd

        parts.append(sh("{m}\n{cmd}", m=_marker("ages"), cmd=ages_cmd(host)))
    # kept in $S for the `behind` section below
    parts.append(sh("{m}; S=$(cat {f} 2>/dev/null); printf '%s\\n' \"$S\"", m=_marker("state"),
                    f=quote_path(host.paths.state)))
    parts.append(sh("{m}; tail -n 1 {f} 2>/dev/null", m=_marker("last"), f=quote_path(host.paths.history)))
    parts.append(sh("{m}; git -C {app} rev-parse HEAD 2>/dev/null", m=_marker("head"), app=path(host.app.path)))
    # the branch's head as last fetched, never a fetch: a known-bad one is
    # what cron will hold back (host/state.held_back), as monitor reads it
    parts.append(sh("{m}; {git} 2>/dev/null", m=_marker("origin"),
                    git=rev_parse_cmd(path(host.app.path), tracking_ref(host.app.remote, host.app.branch))))
    # the bad targets origin has moved past, as monitor reads them
    # (bad_ahead): status lists only those still ahead (#24)
    parts.append(sh("{m}; {cmd}", m=_marker("behind"), cmd=behind_cmd(host)))
    parts.append(_marker("end"))
    return sh("{body}\n", body=lines(parts))


def behind_cmd(host: Host) -> Cmd:
    """A fork or two per 40-hex key of state.json (the bad targets, a
    handful), read from $S, which the script set to state.json's text:
    extra keys are harmless, parse reads only `bad`'s. monitor's and
    status' (status_cmd) `behind` section, read by bad_ahead."""
    from .host.git import END_OF_OPTIONS, git, tracking_ref

    app = path(host.app.path)
    each = [git(app, "merge-base", "--is-ancestor", END_OF_OPTIONS, raw('"$c"'), rev)
            for rev in ("HEAD", tracking_ref(host.app.remote, host.app.branch))]
    # no fork without a bad target (`"bad": {}` or none): a look's every fork costs 1-2 ms
    return sh("case $S in *'\"bad\": {{'[!}}]*) for c in $(printf '%s\\n' \"$S\" | sed -n {keys}); do "
              "{{ {a} || {b}; }} 2>/dev/null && echo \"$c\"; done;; esac; echo ok", keys="s/^ *\"\\([0-9a-f]\\{40\\}\\)\": {.*/\\1/p", a=each[0], b=each[1])


def bad_ahead(bad: List[str], heads, said: Optional[str]) -> Optional[List[str]]:
    """The remembered bad targets still ahead: one that is an ancestor of
    the checkout's commit or of origin's head (and not one of those
    `heads` itself) is one origin moved past, which cron never targets
    again; a deploy --ref to it still meets the record (docs/monitor.md).
    None: not read."""
    lines = (said or "").split()
    if not lines or lines[-1] != "ok":
        return None
    past = set(lines[:-1])
    return [b for b in bad if b in heads or b not in past]


def parse_state(text: str, host: Host) -> dict:
    """state.json as `status` read it: {} when the host has none yet; an
    error naming the file when it is there but not a JSON object, because
    showing `deployed -` for a host that has a deploy is a wrong answer
    (FabopsError: exit 2, docs/errors.md)."""
    if not text.strip():
        return {}
    where = host.paths.state
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise FabopsError(f"{where} is not valid JSON ({exc}), so what is deployed is unknown; "
                          "the next update starts it afresh (adopting a healthy checkout, forgetting any pin)",
                          host=host.name) from None
    if not isinstance(state, dict):
        raise FabopsError(f"{where} holds a JSON {type(state).__name__}, not an object, so what is "
                          "deployed is unknown", host=host.name)
    return state


def parse_status(output: str, host: Host) -> Dict[str, Any]:
    sections = split_sections(output)
    services: Dict[str, Any] = {}
    units = [s.name for s in host.services if s.manager == "systemd"]
    procs = [s.name for s in host.services if s.manager == "process"]
    if units:
        services.update(parse_systemd_show(sections.get("systemd", ""), units))
    if procs:
        services.update(parse_process_status(sections.get("process", ""), procs))
    state = parse_state(sections.get("state", ""), host)
    try:
        last = json.loads(sections.get("last") or "null")
    except ValueError:
        last = None
    from .procstat import service_ages

    ages = service_ages(sections.get("ages", ""))
    origin = (sections.get("origin") or "").strip() or None
    head = (sections.get("head") or "").strip() or None
    return {
        # uptime: seconds since the process started, on the host's clock (None: not running)
        "services": [dict(services[s.name].to_dict(),
                          uptime=ages.get(services[s.name].pid) if services[s.name].active else None)
                     for s in host.services],
        # false: no state.json yet, no fabops run on this host (status says so, as monitor does)
        "has_state": bool(state),
        "deployed": state.get("deployed"),
        "deployed_at": state.get("deployed_at"),
        "previous": state.get("previous"),
        "head": head,
        "pin": state.get("pin"),
        "pin_reason": state.get("pin_reason"),
        "bad": sorted((state.get("bad") or {}).keys()),
        # of them, those origin has not moved past: the ones status shows,
        # as monitor's panel does (None: not read, all shown)
        "bad_ahead": bad_ahead(sorted((state.get("bad") or {}).keys()), (origin, head), sections.get("behind")),
        "last_check": state.get("last_check"),  # the last update check and its result
        "last_result": state.get("last_result"),
        "verdict": verdict_of(state),  # a restart's or health --fix's since then (host/state.verdict_of)
        "in_progress": state.get("in_progress"),
        "last_run": last,
        "origin": origin,  # the branch's head as last fetched (None: not read)
        # while its cause stands, or origin's known-bad head cron will hold back (host/state.failing_of)
        "failing": failing_of(state, origin),
        "retry": state.get("retry"),
        "restart_backoff_until": budget_spent_until(state.get("restarts"), time.time()),
    }


def status_code(data: Dict[str, Any]) -> int:
    """`status`'s exit code follows what it shows, as monitor's does (the
    same Nagios codes): 2 when a service it lists is not running (❌) or the
    host's last verdict is broken (host/state.host_result), 1 while updates
    keep failing for a commit that is not deployed, or cron holds one back
    (host/state.failing_of), else 0. A script or a Nagios check reading `status`
    must not see 0 next to a service that is down."""
    if any(not s.get("active") for s in data.get("services") or ()) or host_result(data) == "broken":
        return errors.FAILED
    if failing_of(data):
        return errors.WARNING
    return errors.OK


def gather_status(c, host: Host) -> Dict[str, Any]:
    return parse_status(Target.of(c, host).output(status_cmd(host)), host)


def unpin_cmd(host: Host, wait: float = 10.0) -> Cmd:
    """Clear the pin under the host lock; prints the pin's old values as JSON
    (nothing when there is no state yet: nothing to unpin)."""
    return sh("[ -f {state} ] || exit 0; flock -w {wait} {lock} {merge}",
              state=quote_path(host.paths.state), lock=quote_path(host.paths.lock), wait=f"{float(wait):g}",
              merge=state_merge_cmd(host, {"pin": None, "pin_reason": None}))


def unpin_plan(pin: Optional[str]) -> List[Would]:
    """What unpin does for a host pinned to `pin` (None: not pinned): pure,
    so `unpin --dry-run` renders what the real unpin decides from the same
    fact (docs/architecture.md, "Plans")."""
    if not pin:
        return []
    # `would clear pin 0123456789ab: cron follows …`, not `clear pin state.json: pinned to …` (trial)
    return [Would("clear pin", short_sha(pin), "cron follows the branch again")]


def unpin(c, host: Host) -> Optional[str]:
    """Clear the host's pin; returns the commit it was pinned to, if any."""
    result = Target.of(c, host).run(unpin_cmd(host), check=False)
    if not result.ok:
        if result.exited == 1 and not result.stdout.strip() and not result.stderr.strip():
            from .errors import LockedError

            raise LockedError("locked: a run holds the host lock; try again when it ends", host=host.name)
        raise CommandFailed.from_result("unpin", result, host=host.name)
    return _previous(result.stdout).get("pin") or None


def unpin_dry_run(c, host: Host) -> dict:
    """`unpin --dry-run`: the pin read (nothing written) and unpin_plan."""
    pin = RemoteStore(c, host).load().get("pin") or None
    return {"was_pinned_to": pin, "dry_run": True, "would": [w.to_dict() for w in unpin_plan(pin)]}


# ------------------------------------------------------------------ lock


def remote_lock_script(host: Host, info: dict) -> Cmd:
    """Hold the host lock (the same flock the host side takes) for as long as
    this command's stdin stays open. If the laptop dies, sshd closes stdin,
    `cat` ends and the kernel releases the lock. reset and restart are
    emergency tools: a run that only watches its service is asked to end
    its watch (host/queue.py), and the lock is taken once it has recorded
    that; a run mid-change is exit 4. The request's time is the host's.
    Any other trigger (health, restore-env) is exit 4 for any holder."""
    from .host.queue import END_WAIT, EMERGENCY_TRIGGERS

    lock = quote_path(host.paths.lock)
    if info.get("trigger") in EMERGENCY_TRIGGERS:
        request = json.dumps({"trigger": info.get("trigger"), "actor": info.get("actor"), "run_id": ""})[:-1]
        take = sh("if ! flock -n 9; then\n"
                  "  if grep -qE '\"phase\": \"(watch|promote)\"' {lock}; then\n"
                  "    held=$(tr -d '\\n' < {lock})\n"
                  "    watcher=$(sed -n 's/.*\"run_id\": \"\\([^\"]*\\)\".*/\\1/p' {lock})\n"
                  "    printf '%s, \"for\": \"%s\", \"at\": %s}}\\n' {request} \"$watcher\" \"$(date +%s)\" "
                  "> {end}.tmp && mv -f {end}.tmp {end}\n"
                  "    flock -w {wait} 9 || {{ cat {lock}; exit 4; }}\n"
                  # whose watch it ended, before LOCKED: the tool says so
                  "    printf 'ENDED %s\\n' \"$held\"\n"
                  # the holder may have ended (and emptied its record) between
                  # the two looks: a free lock is taken, never a false exit 4
                  "  else flock -n 9 || {{ cat {lock}; exit 4; }}\n"
                  "  fi\n"
                  "fi",
                  lock=lock, request=request, end=quote_path(host.paths.watch_end), wait=f"{END_WAIT:g}")
    else:
        # health --fix and restore-env never end another run's watch: any
        # holder is exit 4, as the host's own lock_waiter decides for them
        # (and as health --dry-run predicts: busy)
        take = sh("flock -n 9 || {{ cat {lock}; exit 4; }}", lock=lock)
    return sh("{home_dir} || exit 70\n"
              "exec 9>>{lock}\n"
              "{take}\n"
              "printf '%s' {info} > {lock}\n"
              "echo LOCKED\n"
              "cat >/dev/null\n"
              ": > {lock}\n",
              home_dir=home_dir_cmd(host), lock=lock, take=take, info=json.dumps(info, sort_keys=True))


def lock_holder_cmd(host: Host) -> Cmd:
    """Print `HELD` and the holder's record when a run holds the host lock;
    nothing when it is free. A shared, non-blocking flock only tests it;
    exit 75 is flock's "conflict" (-E), so a missing flock(1) or an
    unreadable lock file is an error, not a holder."""
    return sh("[ -e {lock} ] || exit 0; flock -n -s -E 75 {lock} true; rc=$?; "
              "if [ $rc = 75 ]; then echo HELD; cat {lock}; elif [ $rc != 0 ]; then exit $rc; fi",
              lock=quote_path(host.paths.lock))


def lock_holder(c, host: Host) -> dict:
    """Who holds the host lock now ({} when free), without taking it (the
    dry runs: a dry run must never block or race a real one)."""
    t = Target.of(c, host)
    if t.is_local:
        from .host.lock import peek_holder

        return peek_holder(t.paths.lock)
    return parse_lock_holder(t.run(lock_holder_cmd(host), "testing the host lock").stdout)


def read_holder_line(raw: bytes) -> dict:
    """A holder's record as the lock script printed it ({} if unreadable:
    it only names whose watch was ended)."""
    try:
        holder = json.loads(raw.decode(errors="replace") or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def parse_lock_holder(output: str) -> dict:
    """lock_holder_cmd's output: the holder's record, {} when the lock is free."""
    if not output.startswith("HELD"):
        return {}
    try:
        holder = json.loads(output[4:].strip() or "{}")
    except ValueError:
        holder = {}
    # held, with no record: a non-empty dict (held) that names no one, which
    # describe_holder says is "another process (no details recorded)"
    return holder if isinstance(holder, dict) and holder else {"recorded": False}


class RemoteLock:
    """The host lock taken over SSH with flock(1) (agentless tasks)."""

    def __init__(self, c, host: Host, info: dict):
        self.t = Target.of(c, host)
        self.host = host
        self.info = info
        self.chan = None
        self.local = None
        self.ended: dict = {}  # the record of the run whose watch taking the lock ended

    def __enter__(self):
        if self.t.is_local:  # this machine: the same flock, in-process, with the same rules
            from .host.store import take_lock

            self.local = take_lock(self.t.paths, self.info, self.host.name, ended=self.ended)
            return self
        from .errors import LockedError
        from .host.lock import describe_holder

        chan = self.t.stream(remote_lock_script(self.host, self.info), timeout=30)
        buf = b""
        while b"\n" not in buf and not chan.exit_status_ready():
            data = chan.recv(4096)
            if not data:
                break
            buf += data
        if buf.startswith(b"ENDED "):  # we ended a run's watch: its record, then LOCKED
            line, _, buf = buf.partition(b"\n")
            self.ended = read_holder_line(line[6:])
            while b"\n" not in buf and not chan.exit_status_ready():
                data = chan.recv(4096)
                if not data:
                    break
                buf += data
        if buf.startswith(b"LOCKED"):
            self.chan = chan
            return self
        rest = buf
        while True:
            data = chan.recv(4096)
            if not data:
                break
            rest += data
        code = chan.recv_exit_status()
        chan.close()
        if code == 4:
            try:
                holder = json.loads(rest.decode() or "{}")
            except ValueError:
                holder = {}
            raise LockedError(f"locked: {describe_holder(holder)}", host=self.host.name)
        raise CommandFailed(f"cannot take the host lock (exit {code}): {rest.decode(errors='replace').strip()[:200]}",
                            host=self.host.name)

    def release(self) -> None:
        """As HostLock.release: the stores' locks are released alike."""
        self.__exit__(None, None, None)

    def __exit__(self, *exc):
        local, chan, self.local, self.chan = self.local, self.chan, None, None  # released once
        if local is not None:
            local.release()
        if chan is not None:
            try:
                chan.shutdown_write()  # EOF for `cat`: the lock is released
                chan.recv_exit_status()
            finally:
                chan.close()
        return False


# ------------------------------------------------------------------ restart


def managers_for(c, host: Host):
    """(ServiceManager, probe) for a context: over SSH, paths stay ~/-relative
    and readiness is probed on the host; on this machine (a local Context),
    paths are expanded and the probe is local (None)."""
    from .host.services import ServiceManager

    t = Target.of(c, host)
    if not t.is_local:
        return ServiceManager(t, host), RemoteProbe(t)
    return ServiceManager(t, host, home=t.paths.home, app_path=t.local_path(host.app.path)), None


@dataclass(frozen=True)
class RestartPlan:
    """What `restart` does: its services, in order, and what it does about
    the host lock (host/queue.lock_verdict: take it, end a watch first, or
    stop because a run is mid-change)."""

    services: Tuple[str, ...]
    verdict: str  # take | end_watch | locked (a dry run's reading; the real run's lock script applies the same rules)
    why: str  # the verdict's line ("" when the lock is free)
    holder: str = ""  # who holds the lock, described


def restart_plan(host: Host, service: Optional[str], holder: dict) -> RestartPlan:
    """Pure: the services `restart [--service NAME]` restarts and the lock
    verdict for `holder` ({}: the lock is free, or not read: the real run
    takes it with the same rules in remote_lock_script)."""
    from .host.lock import describe_holder
    from .host.queue import lock_verdict

    chosen = (host.service(service).name,) if service else tuple(s.name for s in host.services)
    if not chosen:
        raise CommandFailed("no services configured", host=host.name)
    verdict, why = lock_verdict("restart", None, holder)
    return RestartPlan(chosen, verdict, why, describe_holder(holder) if holder else "")


def restart_records(host: Host, p: RestartPlan, ended_watch: bool) -> bool:
    """Whether a restart that brings its services up records the host's
    verdict (history and state.json, superseding a `broken` one): when it
    restarts every service (with --service another may be what broke) and
    ends no run's watch (that run is finished by the next one). The real
    run and its dry run ask this one rule."""
    return set(p.services) == {s.name for s in host.services} and not ended_watch


def restart_would(host: Host, p: RestartPlan) -> List[Would]:
    """The plan's writes, in order: the dry run's `would`."""
    if p.verdict == "locked":
        return [Would("stop", "-", p.why)]
    out = []
    if p.verdict == "end_watch":
        out.append(Would("end watch", "-", f"{p.holder} only watches its services: restart ends the watch "
                                            "and acts at once"))
    out += [Would("restart", name, "then poll it until ready") for name in p.services]
    if restart_records(host, p, p.verdict == "end_watch"):
        out.append(Would("record", "state.json", "once all are ready on the deployed commit, replacing the last "
                                                  "run's result"))
    return out


def restart_services(c, host: Host, service: Optional[str], actor: str, progress=None) -> List[dict]:
    """Restart the host's services (or one), in order, each followed by the
    readiness poll; under the host lock. Returns one dict per service."""
    import time as _time

    from .host.lock import describe_holder
    from .host.queue import ended_watch_line
    from .host.readiness import wait_ready

    p = restart_plan(host, service, {})
    info = {"actor": actor, "trigger": "restart", "target": None, "since": _time.time(), "pid": None}
    manager, probe = managers_for(c, host)
    out = []
    with RemoteLock(c, host, info) as lock:
        ended = _watch_ended(c, host, lock.ended, manager.app_path, progress)
        if ended and progress:
            progress(ended_watch_line(ended, "restart"))
        for svc in (host.service(name) for name in p.services):
            manager.restart(svc)
            ready = wait_ready(manager, svc, probe=probe, progress=progress)
            out.append(dict(ready.to_dict(), ended_watch=describe_holder(ended) if ended else None))
            if not ready.ok:
                break
        # every service up, or no verdict to record: no read of the host for it (review 2)
        if restart_records(host, p, bool(ended)) and len(out) == len(p.services) and all(x["ok"] for x in out):
            _record_restart(c, host, actor, out, manager.app_path)
    return out


def _watch_ended(c, host: Host, holder: dict, app_path: str, progress=None) -> dict:
    """The record of the run whose watch this restart ended ({}: none).
    Asked to end it, the holder may have finished on its own first (its
    watch over while it promoted, or passed before it read the request):
    then its own result stands, its commit deployed, and the restart
    neither says it ended that watch nor withholds its verdict (#24's
    trial: `its commit is not promoted` beside a deploy that promoted it).
    An ended watch leaves its run in state.json's in_progress (host/pipeline,
    _watch: `superseded`), which one read tells (docs/pipeline.md, "Lock")."""
    from .host.lock import describe_holder

    if not holder:
        return {}
    state, _ = _state_and_head(c, host, app_path)
    running = state.get("in_progress")
    if isinstance(running, dict) and running.get("run_id") and running.get("run_id") == holder.get("run_id"):
        return holder
    if progress:
        progress(f"{describe_holder(holder)} finished before its watch could be ended: its own result stands")
    return {}


def _record_restart(c, host: Host, actor: str, out: List[dict], app_path: str) -> None:
    """A person's restart that brought every service up on the deployed
    commit is recorded as a run is (one history line and state.json's
    merge, under the lock it holds): its verdict supersedes the last run's,
    so `status` and `monitor` no longer say `broken` after a person fixed
    it (trial #24), as the pipeline's own restart of a sick service records
    `deployed` (the record: host/record.healthy_again, health --fix's too).
    When is host/record.verdict_holds, health --fix's rule: every service
    healthy, no run in progress (the next run finishes it and says its
    verdict), the checkout on the deployed commit (a broken reset can leave
    it elsewhere: BROKEN stays)."""
    from .host.record import healthy_again, verdict_holds
    from .host.state import host_result

    state, head = _state_and_head(c, host, app_path)
    if not verdict_holds(all(x["ok"] for x in out), state.get("deployed"), state.get("in_progress"), head):
        return
    # state.json is as the restart found it (the restart writes none of it):
    # "healthy again" only when the host's verdict was broken (#24)
    RemoteStore(c, host).record(*healthy_again(host.name, "restart", actor, state.get("deployed"),
                                               [x["service"] for x in out],
                                               duration=sum(float(x.get("seconds") or 0) for x in out),
                                               check=state.get("last_check"),
                                               after_broken=host_result(state) == "broken"))


def _state_and_head(c, host: Host, app_path: str) -> Tuple[dict, str]:
    """state.json's object ({} when missing or not one) and the checkout's
    commit ("" when unreadable), in the one round trip that read state.json
    alone before."""
    from .host.git import rev_parse_cmd

    out = Target.of(c, host).output(lines([
        _marker("state"), sh("cat {f} 2>/dev/null", f=quote_path(host.paths.state)),
        _marker("head"), sh("{git} 2>/dev/null || true", git=rev_parse_cmd(path(app_path), "HEAD"))]))
    sections = split_sections(out)
    try:
        state = json.loads(sections.get("state") or "{}")
    except ValueError:
        state = {}
    return state if isinstance(state, dict) else {}, sections.get("head", "").strip()


# ------------------------------------------------------------------ state over SSH

# The one state.json write sent to a host (agentless: the host's python3):
# host/state.merge_state_file itself, its source sent with a few lines that
# first append `record` (when given) to history.jsonl with O_APPEND, then
# merge `updates` (and mark or clear `bad`: marked_bad, sent with it) and
# print the merged keys' previous values as JSON. The
# host side merges with the same function, so both take the same lock and
# end state.json with a newline (readers that print it and then more,
# status_cmd, must not find their next line glued to its `}`).
_STATE_MERGE_MAIN = r"""
import json, os, sys
state, history, updates, record = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
bad = json.loads(sys.argv[5])
home = os.path.dirname(state)
os.makedirs(home, mode=0o700, exist_ok=True)
os.chmod(home, 0o700)
if record:
    fd = os.open(history, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, (record + "\n").encode()); os.fsync(fd); os.close(fd)
    try:  # its update-log line, as host/record.append_run writes it; a log not written is no error
        os.makedirs(os.path.dirname(sys.argv[6]) or ".", mode=0o700, exist_ok=True)
        fd = os.open(sys.argv[6], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, (sys.argv[7] + "\n").encode()); os.close(fd)
    except OSError:
        pass
before, _ = merge_state_file(state, updates, bad=bad)
print(json.dumps(before))
"""


def _state_merge_source() -> str:
    import inspect

    from .host.state import marked_bad, merge_state_file

    return inspect.getsource(marked_bad) + "\n" + inspect.getsource(merge_state_file) + _STATE_MERGE_MAIN


def state_merge_cmd(host: Host, updates: dict, record: Optional[dict] = None, bad: Optional[tuple] = None) -> Cmd:
    """`bad`: (sha, entry) marked bad in the same merge, or (sha, None) cleared (state.marked_bad).
    A `record` goes to the history and its line to the update log (host/record.log_line), as
    every run's does."""
    from .host.record import log_line

    return sh("python3 -c {script} {state} {history} {updates} {record} {bad} {log} {line}",
              script=_state_merge_source(), state=path(host.paths.state), history=path(host.paths.history),
              updates=json.dumps(updates, default=str),
              record=json.dumps(record, sort_keys=True, default=str) if record else "",
              bad=json.dumps(list(bad), default=str) if bad else "null",
              log=path(host.logs.get("update") or host.paths.update_log), line=log_line(record) if record else "")


def _previous(output: str) -> dict:
    try:
        data = json.loads(output.strip().splitlines()[-1]) if output.strip() else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


class RemoteStore:
    """The host's state.json, lock and health log, through the connection
    (agentless: the host's python3 and flock(1), no fabops needed there):
    the Store of host/store.py, as LocalStore is on the host itself."""

    def __init__(self, c, host: Host):
        self.t = Target.of(c, host)
        self.host = host

    def load(self) -> dict:
        return read_home_json(self.t, self.host, self.host.paths.state)

    def update(self, updates: dict) -> None:
        self.t.run(state_merge_cmd(self.host, updates), "updating state.json")

    def record(self, updates: dict, record: dict) -> None:
        self.t.run(state_merge_cmd(self.host, updates, record), "recording the run")

    def lock(self, info: dict) -> "RemoteLock":
        return RemoteLock(self.t, self.host, info).__enter__()

    def log(self, line: str) -> None:
        # 0600 in a 0700 directory, one line, as LocalStore's append_line
        log_path = self.host.logs.get("health") or self.host.paths.health_log
        self.t.run(sh("umask 077 && mkdir -p \"$(dirname {log})\" && printf '%s\\n' {line} >> {log}",
                      log=path(log_path), line=line.rstrip("\n")), check=False)
