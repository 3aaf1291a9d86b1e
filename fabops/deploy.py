"""`inv deploy` on the laptop: run the host-side pipeline detached and follow it.

The laptop installs (or repairs) fabops on the host, uploads this host's
resolved settings, starts `fabops local-update` with `setsid` and stdin from
/dev/null, and follows `<host home>/runs/<id>.jsonl`. The host writes an event
at least every second; if none arrives for `liveness` seconds the link is
lost: the laptop gives up (exit 3) and the run goes on, on the host.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import yaml

from . import errors
from .errors import CommandFailed, UnreachableError
from .host.events import new_run_id
from .host.record import default_actor
from .inventory import Host
from .remote import home_dir_cmd
from .shell import Cmd, join, path, program, sh
from .shortsha import short_sha
from .target import Target

DEFAULT_LIVENESS = 5.0
STARTUP_WINDOW = 20.0  # seconds for the host-side interpreter to send its first event


@dataclass
class DeployOptions:
    ref: Optional[str] = None
    trigger: str = "deploy"
    actor: str = ""
    stash: bool = False
    wait: Optional[float] = None
    liveness: float = DEFAULT_LIVENESS
    offline: bool = False
    dry_run: bool = False
    clear_pin: bool = True
    allow_unverified: bool = False  # --ref X --allow-unverified (docs/security.md, "Verified commits")
    pin_reason: Optional[str] = None  # with ref: the pin's reason, written by the run itself (promote's)
    # the commit the inventory came from (inventory_commit): CI's settings
    # count on a host that requires signed commits only as its target's own
    settings_from: Optional[str] = None
    attach: Optional[str] = None
    watch: bool = True  # wait for the host's watch window; False: return at the gate
    # the `-i PATH` the commands this run's messages suggest need: None when
    # the usual lookup finds the inventory it used (tasks/deploy.py)
    inventory: Optional[str] = None


@dataclass
class DeployOutcome:
    host: str
    run_id: str
    result: dict = field(default_factory=dict)
    install: Optional[str] = None
    events: List[dict] = field(default_factory=list)
    # --attach on a run that had already ended (_replay), and the host's
    # pin then, which may no longer be the one the run set
    replayed: bool = False
    pin_now: Optional[str] = None

    @property
    def exit_code(self) -> int:
        return int(self.result.get("exit_code", errors.FAILED))

    @property
    def pin_said(self) -> bool:
        """Whether an attached run's pin line is said after its summary:
        one its watch will set (--no-watch), or one it set that still
        stands (a replay says a pin cleared since on its own lines)."""
        pinned = self.result.get("pinned")
        if self.replayed:
            return bool(pinned) and pinned == self.pin_now
        return bool(pinned or self.result.get("pin_on_promotion"))


class StillRunning(KeyboardInterrupt):
    """Ctrl-C while this process followed a run that goes on on the host
    (a process of its own, over SSH and on a local host alike: Ctrl-C ends
    only the following, docs/pipeline.md, step 8): exit 130 as any Ctrl-C
    (host/report.failure), its one line naming the way to follow it, as
    `--no-watch` does (#24's trial: `fabops: interrupted` alone)."""


def still_running(host: Host, opts: DeployOptions, run_id: str) -> StillRunning:
    """The Ctrl-C of a deploy or rollback following run `run_id`."""
    attach = suggest(opts.inventory, "deploy", "-H", host.name, "--attach", run_id)
    return StillRunning(f"interrupted: the run goes on on the host; {attach} follows it")


def suggest(inventory: Optional[str], task: str, *words: str) -> str:
    """`fabops TASK [-i PATH] WORDS…` as a message names it for a person to
    run next (`--attach ID`, `history -H HOST`): the program this run started
    as (shell.program, `inv` under Invoke's), quoted as a shell reads it
    (shell.join), with the inventory this run used when the usual lookup
    would not find it: the command works as printed."""
    return f"`{join([program(), task, *(['-i', inventory] if inventory else []), *words])}`"


def host_yml(host: Host) -> str:
    """This host's resolved settings, as the host reads them (host.yml)."""
    data = {"default": host.name, "hosts": {host.name: host.to_dict()}}
    entry = data["hosts"][host.name]
    # On the host, the host is "this machine": cron's `fabops health` or
    # `monitor-bot` then run locally, never over SSH to itself.
    for key in ("address", "user", "setup_user", "port", "identity_file"):
        entry.pop(key, None)
    entry["connection"] = "local"
    if host.environment:  # as hosts.yml says it, so the host's cron notifications name it too (docs/environments.md)
        data["groups"] = {host.environment: {"hosts": [host.name], "environment": True}}
    return yaml.safe_dump(data, sort_keys=False)


def local_update_argv(host: Host, run_id: str, opts: DeployOptions, config: str) -> List[str]:
    venv = host.paths.venv
    argv = [venv + "/bin/fabops", "local-update", "-i", config, "-H", host.name,
            "--trigger", opts.trigger, "--actor", opts.actor or default_actor(), "--run-id", run_id]
    if opts.ref:
        argv += ["--ref", opts.ref]
    if opts.stash:
        argv.append("--stash")
    if opts.wait is not None:
        argv += ["--wait", str(float(opts.wait))]
    if opts.clear_pin and not opts.ref:
        argv.append("--clear-pin")
    if opts.allow_unverified and opts.ref:
        argv.append("--allow-unverified")
    if opts.pin_reason and opts.ref:
        argv += ["--pin-reason", opts.pin_reason]
    if opts.settings_from:
        argv += ["--settings-from", opts.settings_from]
    if opts.dry_run:
        argv.append("--dry-run")
    argv += ["--install-config", config]
    return argv


# git's name for no commit: what a run in CI sends as --settings-from when
# its inventory is no clean checkout's, so that the host never takes it for
# a person's (host/plan.settings_elsewhere)
NO_COMMIT = "0" * 40


def ci_settings_from(inventory_path: str, environ=None) -> Optional[str]:
    """--settings-from for a deploy, rollback or promote run in CI: the
    commit its inventory came from (inventory_commit), or NO_COMMIT; None
    (nothing sent) for a person's run, whose inventory is theirs
    (docs/security.md, "When a deploy's settings are installed")."""
    from .ci import in_ci

    return (inventory_commit(inventory_path) or NO_COMMIT) if in_ci(environ) else None


def inventory_commit(path: str) -> Optional[str]:
    """The commit whose hosts.yml the inventory file is, byte for byte: a
    regular file (mode 100644) in HEAD's tree whose blob is the file's own
    bytes, hashed here (CI's checkout of the app's repository); None
    otherwise. Hashing the bytes, not asking `git status`, leaves no room
    for a tracked symlink to a file elsewhere, or an edit that
    --skip-worktree or --assume-unchanged hides. Sent as --settings-from
    (host/plan.settings_elsewhere; docs/security.md, "When a deploy's
    settings are installed")."""
    import subprocess

    where, name = os.path.split(os.path.abspath(path))

    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", where, *args], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else ""

    try:
        head = git("rev-parse", "--verify", "-q", "HEAD")
        # `100644 blob SHA\tNAME`: ls-tree takes NAME as a path, never a pattern
        entry = git("ls-tree", "--full-name", "HEAD", "--", name).split(None, 3)
        mine = git("hash-object", "--no-filters", "--", name) if not os.path.islink(path) else ""
    except (OSError, subprocess.SubprocessError):  # no git here: no known commit
        return None
    ok = re.fullmatch(r"[0-9a-f]{40}", head) and len(entry) == 4 and entry[0] == "100644" and entry[2] == mine
    return head if ok else None


def _words(argv: List[str]) -> list:
    """A fabops command line for the host: words under ~/ stay expandable
    (the venv's fabops, the run's config), every other word is quoted."""
    return [path(a) if a == "~" or a.startswith("~/") else a for a in argv]


def start_detached_cmd(host: Host, run_id: str, argv: List[str], config_path: str) -> Cmd:
    """One round trip: write this host's settings for the run (mode 0600),
    read from the command's stdin (host_yml: env values and check headers
    never go in an argv `ps` shows), create the event file, and start the
    run with setsid, stdin from /dev/null and output to a file, so it
    survives the SSH session. Paths under ~ stay expandable, everything else
    is quoted."""
    runs = host.paths.runs
    out = f"{runs}/{run_id}.out"
    events = f"{runs}/{run_id}.jsonl"
    # The event file exists before `tail -F` opens it, so tail follows it
    # with inotify at once instead of polling for it to appear.
    # A simple command (not an && list) goes to the background, so the
    # forked child applies the redirections and execs at once: no shell is
    # left holding the SSH channel open until the run ends.
    # umask 077 only in the subshell that writes fabops' own files: the run
    # itself keeps the host's normal umask, so what the app's steps check out
    # and create has the same modes whoever triggered it (cron or deploy).
    return sh(
        "{home_dir} && ( umask 077; mkdir -p {runs} &&\n"
        "  cat > {config} && : >> {events} && : >> {out} ) || exit 1\n"
        "cd || exit 1\n"
        "setsid {argv} </dev/null >{out} 2>&1 &\n",
        home_dir=home_dir_cmd(host), runs=path(runs), config=path(config_path),
        events=path(events), out=path(out), argv=_words(argv))


def follow_cmd(host: Host, run_id: str) -> Cmd:
    # -F: the file may not exist yet when we start following.
    return sh("exec tail -n +1 -s 0.2 -F {events} 2>/dev/null",
              events=path(host.paths.run_events(run_id)))


def _split_events(buf: bytes) -> Tuple[List[dict], bytes]:
    """The whole lines of an event stream read so far, as events (a line that
    is not JSON is skipped), and the partial last line for the next read."""
    *whole, rest = buf.split(b"\n")
    events = []
    for line in whole:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, rest


def follow(c, host: Host, run_id: str, liveness: float, on_event: Callable[[dict], None],
           until: Optional[Callable[[dict], bool]] = None, inventory: Optional[str] = None) -> dict:
    """Read the run's events until its result; raise UnreachableError when no
    event (heartbeats included) arrives for `liveness` seconds (its message
    names the commands that go on, with `inventory`: DeployOptions.inventory).

    paramiko's keepalive never waits for an answer, and opening or exec-ing a
    channel can block with no timeout on a frozen server, so a watchdog
    thread enforces liveness on every step by closing the transport."""
    t = Target.of(c, host)
    if t.transport is None:
        raise UnreachableError("no open SSH transport to follow the run", host=host.name)
    # The first event comes after the host's interpreter has started, which
    # is not a missed heartbeat: allow it a longer window.
    first_window = max(liveness, STARTUP_WINDOW)
    dog = _Watchdog(t.transport, liveness, first_window)
    chan = None
    try:
        try:
            chan = t.stream(follow_cmd(host, run_id), timeout=first_window)
            return _read_events(chan, dog, on_event, until)
        except UnreachableError:
            raise
        except Exception as exc:  # noqa: BLE001 - every way a dead link can surface
            raise _lost(exc, dog, host, run_id, inventory) from None
    finally:
        dog.stop()
        if chan is not None:
            try:
                chan.close()
            except Exception:  # noqa: BLE001 - closing a dead channel
                pass


class _Watchdog:
    """Closes the transport once no event has come for `liveness` s (for
    `first_window` s before the first one), which ends any read, open or
    exec blocked on it."""

    def __init__(self, transport, liveness: float, first_window: float):
        import threading

        self.transport, self.liveness, self.first_window = transport, liveness, first_window
        self.last = time.monotonic()
        self.seen = False  # an event came
        self.expired = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._run, name="fabops-liveness", daemon=True).start()

    def _run(self) -> None:
        while not self.done.wait(0.1):
            if time.monotonic() - self.last > (self.liveness if self.seen else self.first_window):
                self.expired.set()
                self.transport.close()
                return

    def saw(self) -> None:
        self.seen = True
        self.last = time.monotonic()

    def stop(self) -> None:
        self.done.set()


def _read_events(chan, dog: _Watchdog, on_event: Callable[[dict], None],
                 until: Optional[Callable[[dict], bool]]) -> dict:
    """The events on `chan`, each passed to on_event, until the result (or
    the one `until` picks); EOFError when the stream ends before it."""
    buf = b""
    while True:
        data = chan.recv(65536)
        if not data:
            raise EOFError
        events, buf = _split_events(buf + data)
        for event in events:
            dog.saw()
            chan.settimeout(dog.liveness)
            on_event(event)
            if event.get("kind") == "result" or (until is not None and until(event)):
                return event


def _lost(exc: Exception, dog: _Watchdog, host: Host, run_id: str, inventory: Optional[str]) -> Exception:
    """What a failed follow raises: _NoEvents when silent from the start
    (deploy_host looks into why), else the lost link, with the way back."""
    if dog.expired.is_set() or isinstance(exc, socket.timeout):
        if not dog.seen:
            return _NoEvents()
        return UnreachableError(
            f"lost contact: no event from the host for {dog.liveness:g} s. The run {run_id} goes on "
            f"on the host; see {suggest(inventory, 'history', '-H', host.name)} or "
            f"{suggest(inventory, 'deploy', '-H', host.name, '--attach', run_id)}",
            host=host.name,
        )
    return UnreachableError(f"the connection failed while following run {run_id}: {exc or exc.__class__.__name__}",
                            host=host.name)


class _NoEvents(Exception):
    pass


END = {"kind": "end"}  # not a host's event: the following is over (deploy_host)


def deploy_host(c, host: Host, opts: DeployOptions, on_event: Callable[[dict], None]) -> DeployOutcome:
    """Deploy one host over SSH (or locally for `connection: local`). A run
    that stopped on a flag's value (an unknown --ref: exit 64) or on the
    settings it was sent (tasks/update._refuse_unset_home: exit 78) is
    that host's error, one line, not a run's result. When the following ends,
    however it ends (a result, a run that ended without one, a lost link,
    Ctrl-C), on_event gets END: a renderer that holds a failed step's line
    until the next event says it then, before any summary."""
    try:
        outcome = _deploy_host(c, host, opts, on_event)
    finally:
        try:
            on_event(END)
        except Exception:  # noqa: BLE001 - a closed pipe: the run's own outcome or interrupt goes on
            pass
    if outcome.exit_code == errors.USAGE:
        raise errors.UsageError(str(outcome.result.get("message") or "a flag's value was refused"), host=host.name)
    config = outcome.result.get("config")
    if outcome.exit_code == errors.CONFIG and isinstance(config, dict):
        # settings the host refused before the run started (a home setup
        # never set up where signed commits are required: docs/security.md):
        # the host's one error line, exit 78, as a refused flag's is
        refused = errors.ConfigError(str(config.get("path")), "", str(config.get("problem")))
        refused.host = host.name
        raise refused
    return outcome


def _deploy_host(c, host: Host, opts: DeployOptions, on_event: Callable[[dict], None]) -> DeployOutcome:
    if host.is_local:
        return _deploy_local(c, host, opts, on_event)
    from .install import ensure_installed

    run_id = opts.attach or new_run_id()
    outcome = DeployOutcome(host.name, run_id)
    if opts.dry_run:
        return _dry_run(c, host, opts, outcome, on_event)
    if opts.attach:  # a run that has ended is said as such, not followed as if live (_replay)
        last, _, state = Target.of(c, host).output(ended_cmd(host, run_id), timeout=60).partition("\n")
        if _replayed(outcome, _split_events(last.encode() + b"\n")[0], state, opts, on_event):
            return outcome
    else:
        inst = ensure_installed(c, host, offline=opts.offline)
        outcome.install = inst.message
        on_event({"kind": "log", "message": inst.message})
        config = host.paths.run_file(run_id, "host.yml")
        argv = local_update_argv(host, run_id, opts, config)
        Target.of(c, host).run(start_detached_cmd(host, run_id, argv, config), "starting the host-side run",
                               stdin=host_yml(host))
    until = None if opts.watch else (lambda e: e.get("kind") == "watch")
    attach = suggest(opts.inventory, "deploy", "-H", host.name, "--attach", run_id)
    try:
        event = follow(c, host, run_id, opts.liveness, lambda e: (outcome.events.append(e), on_event(e)), until,
                       opts.inventory)
    except KeyboardInterrupt:
        raise still_running(host, opts, run_id) from None
    except _NoEvents:
        if not Target.of(c, host).alive:
            raise UnreachableError(f"lost contact before the first event of run {run_id}; it may still run on the "
                                   f"host: {attach}", host=host.name) from None
        try:
            out = Target.of(c, host).output(sh("tail -n 5 {out} 2>/dev/null",
                                               out=path(host.paths.run_file(run_id, "out"))), timeout=10).strip()
        except Exception:  # noqa: BLE001 - the link may be dying too
            raise UnreachableError(f"lost contact before the first event of run {run_id}", host=host.name) from None
        raise CommandFailed(
            f"the host-side run {run_id} wrote no events within {max(opts.liveness, STARTUP_WINDOW):g} s" + (f": {out}" if out else ""),
            host=host.name,
        ) from None
    _finish(host, opts, outcome, event)
    return outcome


def _finish(host: Host, opts: DeployOptions, outcome: DeployOutcome, event: dict) -> None:
    """The outcome from the last event followed: the run's result, or with
    --no-watch the start of its watch (the gate passed; the host watches on
    its own, over SSH or on this machine alike)."""
    if event.get("kind") != "watch":
        outcome.result = {k: v for k, v in event.items() if k not in ("kind", "t")}
        return
    seconds = event.get("seconds") or 0
    attach = suggest(opts.inventory, "deploy", "-H", host.name, "--attach", outcome.run_id)
    start = next((e for e in outcome.events if e.get("kind") == "start"), {})
    # the host's warnings so far (untracked files kept, ...) come with its
    # watch's start: this run exits 1 for them, as the run that goes on does
    warnings = [str(w) for w in event.get("warnings") or ()]
    outcome.result = {
        "result": "deployed", "exit_code": errors.WARNING if warnings else errors.OK,
        "from": event.get("from"), "to": event.get("to"),
        "run_id": outcome.run_id, "watching": True, "duration": _took(start, event),
        # a --ref deploy or a rollback pins the host when its watch passes
        # (the host's _promote), so nothing is pinned yet: said as pending
        "pinned": None, "pin_on_promotion": event.get("pin"),
        "trigger": start.get("trigger") or opts.trigger, "actor": start.get("actor") or opts.actor or default_actor(),
        # the steps so far, in the shape of a run's steps (docs/json.md)
        "steps": [{"name": e.get("step"), "ok": e.get("status") == "ok", "seconds": e.get("seconds", 0.0),
                   "message": e.get("message") or ""}
                  for e in outcome.events if e.get("kind") == "step" and e.get("status") != "start"],
        "warnings": warnings,  # any later ones come with its result: `inv history`
        "message": (f"passed its gate; the host watches it for {seconds:g} s more and rolls back on its own "
                    f"if it fails: {attach} follows it, {suggest(opts.inventory, 'history', '-H', host.name)} shows how it ended"),
    }


def _took(start: dict, event: dict) -> float:
    """Seconds from the run's start to `event` (--no-watch: to its watch's
    start), by the host's clock that stamped both."""
    try:
        return round(max(0.0, float(event["t"]) - float(start["t"])), 3)
    except (KeyError, TypeError, ValueError):
        return 0.0


def _dry_run(c, host: Host, opts: DeployOptions, outcome: DeployOutcome, on_event) -> DeployOutcome:
    """Show what a deploy would do and change nothing: no install, no lock,
    no checkout. With fabops on the host at this version, its own pipeline
    computes the plan (it fetches, which only updates remote-tracking refs);
    otherwise the plan says what can be known without it."""
    from .install import ensure_installed

    inst = ensure_installed(c, host, offline=opts.offline, dry_run=True)
    outcome.install = inst.message
    on_event({"kind": "log", "message": inst.message})
    if inst.changed:
        # Without fabops on the host the preflight cannot run: say so, and
        # what the deploy would first do.
        outcome.result = _dry_run_uninstalled(c, host, opts, inst.message)
        return outcome
    config = host.paths.run_file(outcome.run_id, "dry-run.yml")
    t = Target.of(c, host)
    # the settings on stdin, as for a real run (start_detached_cmd)
    t.run(sh("{home_dir} && ( umask 077 && mkdir -p {runs} && cat > {config} )", home_dir=home_dir_cmd(host),
             runs=path(host.paths.runs), config=path(config)), "writing the run's settings", stdin=host_yml(host))
    argv = [host.paths.venv_bin("fabops"), "local-update", "-i", config, "-H", host.name,
            "--dry-run", "--json", "--trigger", opts.trigger, "--actor", opts.actor or default_actor()]
    if opts.ref:
        argv += ["--ref", opts.ref]
    if opts.stash:
        argv.append("--stash")
    if opts.wait:
        argv += ["--wait", str(float(opts.wait))]
    # the host.yml the real run would install, compared, never installed: the
    # dry run warns of the settings it would keep or change (host/settings.py)
    argv += ["--install-config", config]
    r = t.run(sh("{argv}; rc=$?; rm -f {config}; exit $rc", argv=_words(argv), config=path(config)),
              check=False, timeout=300)
    try:
        outcome.result = json.loads(r.stdout)["hosts"][host.name]
    except (ValueError, KeyError, TypeError):
        raise CommandFailed.from_result("dry run", r, host=host.name) from None
    return outcome


def _dry_run_uninstalled(c, host: Host, opts: DeployOptions, install: str) -> dict:
    """A dry run's result on a host without fabops at this version (it would
    `install` first): `would_install`, and what the laptop knows. The host's
    planner decides after the install (host/plan.py), and the laptop keeps
    no copy of its decision (§8, decide once): no noop, move, restart or
    refusal is said here. It names where the planner starts from (--ref,
    a rollback's --to; a deploy's branch head; a rollback's own pick from
    its history) and facts it read: the commit that is (a full SHA, or the
    head ls-remote reads), where the checkout is, and whether the host's
    known-bad list names that commit (host/plan.failed_before's words)."""
    from .host.plan import failed_before
    from .remote import gather_status

    status = gather_status(c, host)
    from_ = status.get("head") or status.get("deployed")  # where the checkout is: the run starts there
    if opts.trigger == "rollback" and not opts.ref:
        target, start = None, ("its history: it picks the commit to roll back to, or refuses if there is none "
                               "(this dry run cannot name it before fabops is on the host)")
    else:
        target, start = _named_target(c, host, opts.ref)
    bad = [f"{failed_before(target)}: the host's known-bad list names it"] if target in (status.get("bad") or ()) \
        else []
    return {"result": "would_install", "exit_code": errors.OK, "from": from_, "to": target, "duration": 0.0,
            "message": "; ".join([f"{install}; then the host's planner decides, from {start}"] + _watch_said(host)
                                 + _moved(status) + bad),
            "warnings": ["preflight not run: fabops is not installed on the host at this version yet"] + bad,
            "plan": {"install": install, "from": from_, "to": target, "pin": status.get("pin"), "bad": bool(bad),
                     "known_bad": None}}


def _watch_said(host: Host) -> List[str]:
    """The watch a deploy there keeps after the gate, in the words of the
    installed host's dry run (host/would.watched), from hosts.yml: which
    services restart is its planner's to say, so all of them, "if it
    goes ahead", as its pin line says. Nothing when hosts.yml sets no watch."""
    from .host.would import watched

    w = watched(host.services)
    return [f"if it goes ahead, it would watch {w.target} {w.why}"] if w else []


def _named_target(c, host: Host, ref: Optional[str]) -> Tuple[Optional[str], str]:
    """(commit, words): what --ref or the branch head names, as far as the
    laptop can resolve it without fabops on the host (only a full SHA, or
    the head `git ls-remote` reads)."""
    from .host.pipeline import FULL_SHA

    if ref:
        commit = ref if FULL_SHA.fullmatch(ref) else None
        return commit, f"--ref {ref}" + ("" if commit else ", which it resolves after its fetch")
    head = _branch_head(c, host)
    if not head:
        return None, f"the head of {host.app.branch}, which git ls-remote could not read"
    return head, f"the head of {host.app.branch} (now {short_sha(head)})"


def _moved(status: dict) -> List[str]:
    """The checkout's HEAD when it is not the deployed commit (moved by
    hand, a reset cut off), said as a fact."""
    head, deployed = status.get("head"), status.get("deployed")
    if head and deployed and head != deployed:
        return [f"the checkout is at {short_sha(head)}, not the deployed {short_sha(deployed)}"]
    return []


def _branch_head(c, host: Host) -> Optional[str]:
    """The commit the app's branch is at on its remote, without fetching."""
    from .host.git import ls_remote_cmd, parse_ls_remote

    app = host.app
    r = Target.of(c, host).run(ls_remote_cmd(path(app.path), app.remote, app.branch), check=False, timeout=60)
    return parse_ls_remote(r.stdout) if r.ok else None


def _deploy_local(c, host: Host, opts: DeployOptions, on_event) -> DeployOutcome:
    """The sandbox host: the same pipeline, started as over SSH in a process
    of its own (a session of its own), which this one follows: Ctrl-C here
    (`fabops: interrupted`, exit 130) ends only the following, and the run
    goes on to its end (its rollback, its record) as it does on a host whose
    link was cut. A dry run changes nothing and runs here."""
    if opts.attach:
        return _attach_local(host, opts, on_event)
    if not opts.dry_run:
        return _deploy_local_detached(host, opts, on_event)
    from .host.events import EventLog
    from .host.pipeline import UpdateOptions
    from .host.update import run_update

    run_id = new_run_id()
    outcome = DeployOutcome(host.name, run_id)
    events = EventLog(None, [lambda e: (outcome.events.append(e), on_event(e))])  # a dry run writes nothing
    events.start_heartbeat()  # progress lines for long steps, as over SSH
    try:
        res = run_update(c, host, UpdateOptions(
            trigger=opts.trigger, actor=opts.actor or default_actor(), ref=opts.ref, stash=opts.stash,
            wait=opts.wait, run_id=run_id, clear_pin=opts.clear_pin and not opts.ref,
            allow_unverified=opts.allow_unverified and bool(opts.ref),
            pin_reason=opts.pin_reason if opts.ref else None,
        ), events, dry_run=True)
    finally:
        events.close()
    outcome.result = res.to_dict()
    return outcome


def _attach_local(host: Host, opts: DeployOptions, on_event) -> DeployOutcome:
    """--attach ID on this machine: follow a run started with --no-watch (its
    message names this command), as over SSH."""
    import os

    from .paths import HostPaths

    outcome = DeployOutcome(host.name, opts.attach)
    paths = HostPaths.for_home(host.home)
    events = paths.run_events(opts.attach)
    if not os.path.isfile(events):
        raise errors.UsageError(f"no run {opts.attach} on this host ({events} is missing)", host=host.name)
    with open(events, "rb") as fh:
        recorded, _ = _split_events(fh.read())
    try:
        with open(paths.state, encoding="utf-8") as fh:
            state = fh.read()
    except OSError:
        state = ""
    if _replayed(outcome, recorded, state, opts, on_event):
        return outcome
    quiet = _Quiet(opts.liveness)
    try:
        event = _follow_file(events, quiet.ended, lambda e: (quiet.saw(), outcome.events.append(e), on_event(e)),
                             opts.watch)
    except KeyboardInterrupt:
        raise still_running(host, opts, opts.attach) from None
    if event is None:
        history = suggest(opts.inventory, "history", "-H", host.name)
        raise CommandFailed(f"run {opts.attach} has written nothing for {opts.liveness:g} s and has no result: it "
                            f"no longer runs; {history} shows what it recorded", host=host.name)
    _finish(host, opts, outcome, event)
    return outcome


def ended_cmd(host: Host, run_id: str) -> Cmd:
    """--attach over SSH, one round trip: the last line of the run's event
    file (its result, once it has ended), then the host's state.json."""
    return sh("tail -n 1 {events} 2>/dev/null; echo; cat {state} 2>/dev/null",
              events=path(host.paths.run_events(run_id)), state=path(host.paths.state))


def _replayed(outcome: DeployOutcome, recorded: List[dict], state: str, opts: DeployOptions, on_event) -> bool:
    """Whether the attached run had already ended (its last event is its
    result): then it is replayed (_replay), with `state` (state.json's
    text) for where the host is now."""
    if not recorded or recorded[-1].get("kind") != "result":
        return False
    _replay(outcome, recorded, _state_now(state), suggest(opts.inventory, "history", "-H", outcome.host), on_event)
    return True


def _replay(outcome: DeployOutcome, recorded: List[dict], now: Tuple[Optional[str], Optional[str]], history: str,
            on_event) -> DeployOutcome:
    """--attach on a run that has already ended (#24's trial: it was
    replayed as if live, its stale pids and all, and never said it had
    ended): said plainly first, with its result and when, then the steps
    it recorded (its result's, not its live lines: nothing runs now), and
    where the host is now if it has moved on (`now`: its deployed commit
    and pin; `history`: the command that lists the runs since). The
    outcome is the recorded result, so the exit code is the run's
    (docs/pipeline.md, "Deploy from a laptop or CI")."""
    result = {k: v for k, v in recorded[-1].items() if k not in ("kind", "t")}
    ended = recorded[-1].get("t")
    when = ""
    if isinstance(ended, (int, float)):
        minutes = max(0, int(time.time() - ended) // 60)
        when = (f", at {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(ended))} ("
                + (f"{minutes} min ago)" if minutes else "less than a minute ago)"))
    pinned = f", and it pinned the host to {short_sha(result['pinned'])}" if result.get("pinned") else ""
    on_event({"kind": "log", "message": f"run {outcome.run_id} ({result.get('trigger')} by {result.get('actor')}) "
                                        f"already ended{when}: {result.get('result')}{pinned}; its recorded steps:"})
    for step in result.get("steps") or ():
        on_event({"kind": "step", "step": step.get("name"), "status": "ok" if step.get("ok") else "failed",
                  "seconds": step.get("seconds", 0.0), "message": step.get("message")})
    on_event({"kind": "result", **result})
    # where the run left the host: its target once it got there, else where it went from
    left = result.get("to") if result.get("result") in ("deployed", "noop") else result.get("from")
    if (now[0] and left and now[0] != left) or (pinned and now[1] != result["pinned"]):
        on_event({"kind": "log", "message": f"the host has moved on since: it is at {short_sha(now[0], '-')} now, "
                                            + (f"pinned to {short_sha(now[1])}" if now[1] else "not pinned")
                                            + f" ({history} says how)"})
    outcome.replayed, outcome.pin_now = True, now[1]
    outcome.events.extend(recorded)
    outcome.result = result
    return outcome


def _state_now(text: str) -> Tuple[Optional[str], Optional[str]]:
    """The host's deployed commit and pin now, from state.json's text; None for what is unknown."""
    try:
        state = json.loads(text)
    except ValueError:
        return None, None
    deployed, pin = (state.get("deployed"), state.get("pin")) if isinstance(state, dict) else (None, None)
    return (deployed if isinstance(deployed, str) else None), (pin if isinstance(pin, str) else None)


def _deploy_local_detached(host: Host, opts: DeployOptions, on_event) -> DeployOutcome:
    """A run on this machine starts as over SSH: the same `local-update` in
    a session of its own (the terminal's Ctrl-C never reaches it), stdin
    from /dev/null, its settings in runs/<id>.host.yml (0600, never in an
    argv), followed through its event file until it ends (--no-watch:
    until its watch starts; it watches on after this process returns)."""
    import os
    import subprocess
    import sys

    from .host.files import atomic_write, ensure_dir, ensure_home
    from .paths import HostPaths

    outcome = DeployOutcome(host.name, new_run_id())
    paths = HostPaths.for_home(host.home)
    ensure_home(paths.home)
    ensure_dir(paths.runs)
    config = paths.runs + f"/{outcome.run_id}.host.yml"
    atomic_write(config, host_yml(host))
    events, out = paths.run_events(outcome.run_id), paths.runs + f"/{outcome.run_id}.out"
    # both there (0600, fabops' own files) before the run starts: the events
    # are read from their first line
    for name in (events, out):
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    # This interpreter's fabops, not a venv under home (setup makes none for
    # the sandbox); and no --install-config: the sandbox keeps its hosts.yml.
    argv = [sys.executable, "-m", "fabops.cli", *local_update_argv(host, outcome.run_id, opts, config)[1:]]
    argv = argv[:argv.index("--install-config")]
    with open(out, "ab") as fh:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        event = _follow_file(events, lambda: proc.poll() is not None,
                             lambda e: (outcome.events.append(e), on_event(e)), opts.watch)
    except KeyboardInterrupt:
        raise still_running(host, opts, outcome.run_id) from None
    if event is None:
        with open(out, encoding="utf-8", errors="replace") as fh:
            last = [ln for ln in fh.read().splitlines() if ln.strip()][-1:]
        raise CommandFailed(f"the run {outcome.run_id} ended (exit {proc.returncode}) without a result"
                            + (f": {last[0]}" if last else ""), host=host.name)
    _finish(host, opts, outcome, event)
    return outcome


class _Quiet:
    """A run followed by --attach is not our child: it has ended when its
    event file stays silent longer than the liveness window (it writes a
    heartbeat every 2 s while it runs)."""

    def __init__(self, liveness: float):
        self.liveness, self.last = liveness, time.monotonic()

    def saw(self) -> None:
        self.last = time.monotonic()

    def ended(self) -> bool:
        return time.monotonic() - self.last > self.liveness


def _follow_file(events: str, ended: Callable[[], bool], on_event, watch: bool) -> Optional[dict]:
    """Read a run's event file on this machine until its result (or, without
    `watch`, the start of its watch); None when `ended()` says the run is
    over without it. No link to lose here, so no watchdog."""
    last = ("result",) if watch else ("result", "watch")
    buf = b""
    with open(events, "rb") as fh:
        while True:
            over = ended()  # before reading: the last lines are read after it ends
            data = fh.read()
            events, buf = _split_events(buf + data)
            for event in events:
                on_event(event)
                if event.get("kind") in last:
                    return event
            if over and not data:
                return None
            if not data:
                time.sleep(0.1)
