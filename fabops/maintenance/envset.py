"""`env-set`, `env-unset`, `env-push`: change the app's `.env` on the host
without an editor (docs/maintenance.md, "Secrets without an editor").

Values travel only on a command's stdin (docs/security.md, "Secrets stay
out of argv"): the host-side merge below is a python3 script whose argv
holds the mode and the path, never a value, and it prints key names only.
Each change backs the `.env` up first (backup-env's mechanism, so
`restore-env` undoes it), writes the new file atomically with the old
file's owner and mode (a symlink or any other non-regular `.env` is
refused: written through, it would hand the link's target to a service,
docs/architecture.md "Units"), restarts the services that read it, runs
the readiness gate and, when the gate fails, puts the old file back and
restarts them again."""
from __future__ import annotations

import inspect
import json
import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import CommandFailed, UsageError
from ..host.preflight import env_pairs
from ..host.would import Would
from ..inventory import Host, Service
from ..probe import MARK, split_sections
from ..shell import Cmd, quote_path, sh
from ..target import Target
from .common import app_file
from .envrun import EnvRun, deployed_of, exit_code  # noqa: F401  exit_code: the task's (tasks/envset.py)
from .required import Required, required_cmd, required_gone, required_keys

# A shell variable's name (POSIX): what a unit's environment and `sh` accept.
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_key(key: Optional[str]) -> str:
    """`key` when it is a shell variable's name, else a UsageError that
    shows it printable (a control character is never echoed raw)."""
    if not key:
        raise UsageError("a KEY is required (a shell variable name, e.g. API_TOKEN)")
    if not KEY_RE.match(key):
        raise UsageError(f"{key!r} is not a variable name: letters, digits and _ only, not starting with a digit")
    return key


def check_value(key: str, value: str) -> str:
    """A value a unit's environment can hold: no NUL byte."""
    if "\0" in value:
        raise UsageError(f"the value of {key} holds a NUL byte, which no environment variable can hold")
    return value


def check_not_empty(key: str, value: str, allow_empty: bool) -> str:
    """`value`, unless it is empty and the person did not ask for that
    (--allow-empty): `printf %s "$TOKEN" | inv env-set API_TOKEN` with
    $TOKEN unset, or Enter at the prompt, would write `KEY=` and restart
    the services on it, wiping a secret (docs/maintenance.md, "Secrets
    without an editor"). Refused before connecting, so a dry run says the same."""
    if value or allow_empty:
        return value
    raise UsageError(f"the value of {key} is empty (nothing on stdin, or Enter at the prompt): setting {key}= "
                     f"would wipe it, so nothing was changed; give --allow-empty to set it empty on purpose")


def one_value(text: str) -> str:
    """The value piped on stdin: one trailing newline stripped (`echo`'s)."""
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


@dataclass
class Change:
    """What the run asks: keys to set (with values: never printed, never
    in to_dict), keys to remove."""

    set: Dict[str, str] = field(default_factory=dict)
    unset: List[str] = field(default_factory=list)
    prune: bool = False  # env-push --prune: the host's keys `set` does not name are removed too

    def stdin(self) -> str:
        return json.dumps({"set": self.set, "unset": self.unset, "prune": self.prune})


def push_change(text: str, prune: bool = False) -> Change:
    """A local .env's pairs as a Change (pure): every key set; with `prune`
    the host's keys the file does not name are removed (on the host, where
    they are known)."""
    pairs = env_pairs(text)
    for key, value in pairs.items():
        check_value(check_key(key), value)
    return Change(set=pairs, prune=prune)


def env_entries(text: str) -> List[Tuple[Optional[str], str]]:
    """(key or None, raw text) segments covering `text`, for the merge that
    rewrites some assignments and keeps every other byte: one per line or
    assignment env_pairs reads (host/preflight.py: the one tokenizer, the
    services' reading), an assignment spanning its quoted lines and
    continuations, keyed only when env_pairs takes its key. env_pairs reads
    CR LF and CR as LF; the cuts are mapped back onto `text`, so a file's
    line ends stay its own. Shipped to the host as source with env_pairs."""
    spans: list = []
    flat = text.replace("\r\n", "\n").replace("\r", "\n")
    env_pairs(flat, spans)
    # where each of flat's characters starts in `text`: a CR LF is one
    at, k = [], 0
    while k < len(text):
        at.append(k)
        k += 2 if text.startswith("\r\n", k) else 1
    at.append(len(text))
    return [(key, text[at[start]:at[end]]) for key, start, end in spans]


# The host side: the pipeline's dotenv parser (host/preflight.py) and the
# merge's segmenter (env_entries), shipped as source as restore-env's key
# diff ships it, and a merge that keeps every other line as it is
# (comments, order, quoting). Exit 65: not a regular file.
_MERGE = "from typing import Dict, List, Optional, Tuple\n" + inspect.getsource(env_pairs) + \
    inspect.getsource(env_entries) + r'''
import json, os, re, stat, sys
mode, target = sys.argv[1], sys.argv[2]
def line(key, value):
    if re.fullmatch(r"[A-Za-z0-9_./:@+,=-]+", value):
        return key + "=" + value + "\n"
    return key + '="' + re.sub(r'(["\\`$])', r"\\\1", value) + '"\n'
try:
    st = os.lstat(target)
except FileNotFoundError:
    st = None
if st is not None and not stat.S_ISREG(st.st_mode):
    print("kind " + ("symlink" if stat.S_ISLNK(st.st_mode) else "other"))
    sys.exit(65)
old = b""
if st is not None:
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        old = fh.read()
if mode == "restore":
    new = None if sys.argv[3] == "-" else open(sys.argv[3], "rb").read()
else:
    ask = json.load(sys.stdin)
    text = old.decode("utf-8", "replace")
    gone = set(ask["unset"]) | (set(env_pairs(text)) - set(ask["set"]) if ask.get("prune") else set())
    segs = [(k, raw) for k, raw in env_entries(text) if k not in gone]
    done = set()
    for n, (k, raw) in enumerate(segs):
        if k in ask["set"]:
            segs[n] = (k, "" if k in done else line(k, ask["set"][k]))
            done.add(k)
    body = "".join(raw for _, raw in segs)
    if body and not body.endswith("\n"):
        body += "\n"
    body += "".join(line(k, v) for k, v in ask["set"].items() if k not in done)
    # never write a file that reads otherwise than asked (a last line that
    # ends in a backslash and no newline joins the line appended after it;
    # a CR in a value reads as LF): exit 67, key names only
    want = {k: v for k, v in env_pairs(text).items() if k not in gone}
    want.update(ask["set"])
    got = env_pairs(body)
    if got != want:
        print("unlike " + " ".join(sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))))
        sys.exit(67)
    new = body.encode("utf-8")
a, b = env_pairs(old.decode("utf-8", "replace")), env_pairs((new or b"").decode("utf-8", "replace"))
print("existed " + ("yes" if st is not None else "no"))
print("added " + " ".join(sorted(set(b) - set(a))))
print("removed " + " ".join(sorted(set(a) - set(b))))
print("changed " + " ".join(sorted(k for k in set(a) & set(b) if a[k] != b[k])))
if mode == "plan" or (new is not None and new == old):
    sys.exit(0)
if new is None:
    os.unlink(target)
    sys.exit(0)
tmp = target + ".fabops-tmp"
try:
    os.unlink(tmp)
except FileNotFoundError:
    pass
# The temporary file holds every value: whatever fails before it is renamed
# over the .env (the old owner refused, a full disk, an interrupt), it is
# removed, and the failure named, exit 66 (run_merge; docs/maintenance.md).
step = "writing " + tmp
try:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if st is not None:
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                step = "giving the new file the owner of the old one (uid %d, gid %d)" % (st.st_uid, st.st_gid)
                os.fchown(fd, st.st_uid, st.st_gid)
                step = "writing " + tmp
        view = memoryview(new)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    step = "renaming " + tmp + " over " + target
    os.replace(tmp, target)
except BaseException as exc:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError:
        print("left " + tmp)
    if not isinstance(exc, OSError):
        raise
    print("failed " + step + ": " + (exc.strerror or str(exc)))
    sys.exit(66)
dfd = os.open(os.path.dirname(target) or ".", os.O_RDONLY)
os.fsync(dfd)
os.close(dfd)
print("written")
'''

NOT_REGULAR = 65
WRITE_FAILED = 66  # the merge's write failed before the rename: its temporary file removed
UNLIKE = 67  # the merged text would not read as asked: nothing written


def merge_cmd(host: Host, mode: str, backup: Optional[str] = None) -> Cmd:
    """The host-side merge: `plan` (the key diff), `write` (the diff, then
    the write; the change on stdin) or `restore` (put `backup` back, or
    remove the file when `backup` is None: there was none before)."""
    # the backup's path as restore-env quotes it: a `~/` there is the host's home
    back = [quote_path(backup) if backup else "-"] if mode == "restore" else []
    args = [mode, app_file(host, host.env_file)] + back
    return sh("python3 -c {script} {args}", script=_MERGE, args=args)


def parse_merge(output: str) -> Dict[str, object]:
    out: Dict[str, object] = {"added": [], "removed": [], "changed": [], "existed": False, "written": False}
    for text in output.splitlines():
        kind, _, rest = text.partition(" ")
        if kind == "existed":
            out["existed"] = rest == "yes"
        elif kind == "written":
            out["written"] = True
        elif kind in ("added", "removed", "changed"):
            out[kind] = rest.split()
    return out


def run_merge(t: Target, host: Host, mode: str, change: Optional[Change] = None,
              backup: Optional[str] = None) -> Dict[str, object]:
    """merge_cmd run with the change on stdin; a `.env` that is not a
    regular file is refused (FAILED, docs/errors.md), nothing written."""
    return parse_merge(_merge_run(t, host, merge_cmd(host, mode, backup), mode, change).stdout)


def plan_with_required(t: Target, host: Host, change: Change) -> Tuple[Dict[str, object], Required]:
    """Under the lock, in one round trip: the key diff (run_merge's `plan`)
    and what the checkout's .env.example requires now (required_keys). The
    requirement read before the lock is a deploy's, a rollback's or a
    reset's to change meanwhile, and the run must judge a removal against
    the checkout it leaves the .env beside."""
    command = sh("{merge} || exit $?\n{required}", merge=merge_cmd(host, "plan"), required=required_cmd(host))
    out = _merge_run(t, host, command, "plan", change).stdout
    return parse_merge(out), required_keys(out)


def _merge_run(t: Target, host: Host, command: Cmd, mode: str, change: Optional[Change]):
    r = t.run(command, f"{'reading' if mode == 'plan' else 'writing'} .env keys",
              # a restore reads no change: over SSH, input it leaves unread would fail the run (Target.run)
              check=False, stdin=None if mode == "restore" else (change or Change()).stdin())
    if r.exited == NOT_REGULAR:
        kind = "a symlink" if "kind symlink" in r.stdout else "not a regular file"
        raise CommandFailed(f"{host.env_file} is {kind}: refusing to write through it (a link would hand its "
                            "target to the services: docs/security.md); make it a regular file", host=host.name)
    if r.exited == UNLIKE:
        keys = r.stdout.partition("unlike ")[2].split()
        raise CommandFailed(f"changing {host.env_file} refused: merged, it would not read as asked for "
                            f"{', '.join(keys) or 'some keys'} (a last line ending in a backslash with no newline "
                            "after it, or a carriage return in a value); nothing written: fix the file or the value "
                            "and run again", host=host.name)
    if r.exited == WRITE_FAILED:
        raise CommandFailed(_write_failed(host, r.stdout), host=host.name)
    if r.exited != 0:
        raise CommandFailed(f"changing {host.env_file} failed: {(r.stderr or '').strip()[-300:] or 'exit ' + str(r.exited)}",
                            host=host.name)
    return r


def _write_failed(host: Host, stdout: str) -> str:
    """The message of a write that failed before its rename (exit 66): the
    .env is as it was; the temporary file, which holds the values, is gone,
    or named when even its removal failed (a person removes it)."""
    said = dict(ln.partition(" ")[::2] for ln in stdout.splitlines())
    why, left = said.get("failed") or "before its rename", said.get("left")
    gone = (f", but its temporary copy {left} holds the new values and could not be removed: remove it by hand"
            if left else "; its temporary copy is removed")
    owner = (": run it as a user who may give the file that owner, or make the deploy user own "
             f"{host.env_file}" if "owner" in why else "")
    return f"changing {host.env_file} failed {why}; {host.env_file} is unchanged{gone}{owner}"


# ------------------------------------------------------------ who reads it

@dataclass(frozen=True)
class Reader:
    service: str
    restart: bool
    why: str

    def to_dict(self) -> dict:
        return {"service": self.service, "restart": self.restart, "why": self.why}


def readers(host: Host, env_path: str, unit_files: Optional[Dict[str, List[str]]],
            inventory: Optional[str] = None) -> List[Reader]:
    """Which services restart after the `.env` changes (pure), in the
    host's order. A unit setup wrote (`unit: true`) starts fabops'
    launcher, which reads the .env (docs/architecture.md, "Units"); any
    other systemd unit reads it when its EnvironmentFile= names it
    (`unit_files`: systemctl's EnvironmentFiles per unit, None when they
    could not be read). A process service's app reads the .env itself, if
    at all, which cannot be told from outside: it restarts, and so does a
    unit whose files could not be read. `inventory`: the run's `-i`, for
    the command a kept service's line names."""
    return [_reader(host, svc, env_path, unit_files, inventory) for svc in host.services]


def _reader(host: Host, svc: Service, env_path: str, unit_files: Optional[Dict[str, List[str]]],
            inventory: Optional[str]) -> Reader:
    if svc.manager != "systemd":
        return Reader(svc.name, True, "cannot tell whether a process service's app reads it: restarted")
    if svc.unit:
        return Reader(svc.name, True, "its unit's launcher reads it")
    files = (unit_files or {}).get(svc.name[:-len(".service")] if svc.name.endswith(".service") else svc.name)
    if files is None:
        return Reader(svc.name, True, "cannot tell whether its unit reads it (systemctl did not say): restarted")
    if env_path in files:
        return Reader(svc.name, True, "its unit's EnvironmentFile= names it")
    from ..deploy import suggest

    return Reader(svc.name, False, "its unit's EnvironmentFile= does not name it: not restarted (restart it with "
                  f"{suggest(inventory, 'restart', '-H', host.name, '--service', svc.name)} if the app reads the "
                  "file itself)")


def unit_files_cmd(host: Host) -> Cmd:
    """The .env's absolute path, each systemd unit's EnvironmentFiles
    (not the ones setup wrote: their launcher reads it), state.json
    (its deployed commit, for the run's record: deployed_of), and the
    checkout's commit with its .env.example (the keys the next deploy
    requires: required_keys); one round trip."""
    units = [s.name for s in host.services if s.manager == "systemd" and not s.unit]
    show = sh("systemctl show -p Id -p EnvironmentFiles {units} 2>/dev/null\n", units=units) if units else sh("")
    return sh("echo {m}env; echo {env}\necho {m}units\n{show}echo {m}state; cat {state} 2>/dev/null; echo\n"
              "{required}", m=MARK, env=app_file(host, host.env_file), show=show,
              state=quote_path(host.paths.state), required=required_cmd(host))


def parse_unit_files(output: str, host: Host) -> Tuple[str, Optional[Dict[str, List[str]]]]:
    """(the .env's path, EnvironmentFiles by unit; None when systemctl
    printed nothing for units it was asked about)."""
    s = split_sections(output)
    files: Dict[str, List[str]] = {}
    # systemctl show prints one block per unit, blank-line separated, its
    # properties in systemctl's own order (EnvironmentFiles= before Id=),
    # never in the order -p asked for them: a block is read whole
    for block in re.split(r"\n\s*\n", s.get("units", "")):
        unit, named = None, []
        for text in block.splitlines():
            key, _, value = text.partition("=")
            if key == "Id":
                unit = value.strip()
                unit = unit[:-len(".service")] if unit.endswith(".service") else unit
            elif key == "EnvironmentFiles" and value.strip():
                named.append(value.split(" (")[0].strip().lstrip("-"))
        if unit:
            files.setdefault(unit, []).extend(named)
    asked = any(sv.manager == "systemd" and not sv.unit for sv in host.services)
    return s.get("env", "").strip(), (files if files or not asked else None)


# ------------------------------------------------------------------ the run

def keys_changed(diff: Dict[str, object]) -> bool:
    return any(diff.get(k) for k in ("added", "removed", "changed"))


def env_would(host: Host, diff: Dict[str, object], plan: List[Reader],
              required: Tuple[Optional[str], List[str]] = (None, []), force: bool = False) -> List[Would]:
    """The run's plan (pure), decided once (docs/architecture.md, "Decide
    once, then act"): the steps the dry run renders as its `would` and the
    real run executes in this order (_execute): save, change, the services
    kept, then the restarts, which together are the readiness gate. Key
    names only, never a value; nothing when no key changes. `required`:
    the checkout's commit and the keys its .env.example names
    (required_keys); removing one is refused, exit 2, unless `force`: the
    next deploy would refuse the host (docs/maintenance.md)."""
    from .env import keys_text

    if not keys_changed(diff):
        return []
    warn = required_gone(host, diff, required, force)
    save = [Would("save", host.env_file, "the current one, as a new backup first (restore-env undoes the change)")]
    return warn + (save if diff.get("existed") else []) + [Would("change", host.env_file, keys_text(diff))] + [
        Would("keep", r.service, r.why) for r in plan if not r.restart] + [
        Would("restart", r.service, r.why + ", then poll it until ready") for r in plan if r.restart]


def nothing_words(change: Change, env_file: str) -> str:
    """What a run that changes nothing says, real or dry (#29's trial:
    env-unset of a key already absent said `.env already holds that`, and
    its dry run `no key changes`): the keys asked gone are not there, or
    the file already holds what was asked."""
    if change.unset and not change.set and not change.prune:
        return f"{', '.join(change.unset)} {'is' if len(change.unset) == 1 else 'are'} not in {env_file}: " \
               "nothing to change"
    return f"nothing to change: {env_file} already holds that"


def env_change(c, host: Host, change: Change, actor: str, trigger: str, dry_run: bool = False,
               progress=None, inventory: Optional[str] = None, force: bool = False) -> dict:
    """Plan (env_would), then (unless `dry_run`) execute it under the lock;
    a failed gate puts the old .env back and restarts its readers again.
    Returns key names, the backup's name and the services' results. A real
    run that changed something (or failed trying) is recorded in the
    host's history as every run is (EnvRun). `inventory`: the run's `-i`,
    for the commands its lines name (tasks/deploy.inventory_flag).
    `force`: remove keys the checkout's .env.example needs (env_would)."""
    from ..remote import RemoteLock
    from .env import refuse_cut_off

    say = progress or (lambda _m: None)
    t = Target.of(c, host)
    refuse_cut_off(t, host)  # a restore cut off putting items back: no restart may start on that data
    output = t.output(unit_files_cmd(host))
    env_path, unit_files = parse_unit_files(output, host)
    plan = readers(host, env_path, unit_files, inventory)
    diff = run_merge(t, host, "plan", change)
    required = required_keys(output)
    would = env_would(host, diff, plan, required, force)
    base = {"keys": {k: diff[k] for k in ("added", "removed", "changed")},
            "services": [r.to_dict() for r in plan]}
    if dry_run:
        return {**base, "dry_run": True, "would": [w.to_dict() for w in would]}
    if not would:  # a no-op, unrecorded as the pipeline's (host/record.Recorder.record)
        say(nothing_words(change, host.env_file))
        return {**base, "changed": False, "backup": None, "ready": []}
    info = {"actor": actor, "trigger": trigger, "target": None, "since": time.time(), "pid": None}
    run = EnvRun(c, host, trigger, actor, deployed_of(output), say)
    with RemoteLock(c, host, info):
        refuse_cut_off(t, host)  # again under the lock
        return {**base, **run.recorded(lambda: _apply(c, host, change, plan, say, inventory, run.wrote, force))}


def _apply(c, host: Host, change: Change, plan: List[Reader], say, inventory: Optional[str] = None,
           wrote=lambda _changed=True: None, force: bool = False) -> dict:
    """Under the lock: the plan made again from what the file holds now
    and what the checkout requires now (plan_with_required; `force` as
    env_would takes it), executed (_execute), and the way back when the
    gate fails. `wrote`: told when the .env holds the change and when the
    old one is back (EnvRun.wrote, so a run stopped between them is
    recorded `broken`)."""
    from .env import env_backup_dir

    t = Target.of(c, host)
    diff, required = plan_with_required(t, host, change)  # again under the lock: the file and checkout now
    steps = env_would(host, diff, plan, required, force)
    if not steps:  # another run made the same change meanwhile
        say(nothing_words(change, host.env_file))
        return {"changed": False, "backup": None, "ready": []}
    backup, ready = _execute(c, host, change, steps, say, inventory, wrote)
    out = {"changed": True, "backup": backup.name if backup else None, "ready": ready, "rolled_back": False,
           "key_names": {k: list(diff.get(k) or ()) for k in ("added", "removed", "changed")},
           # a forced removal (the plan's warn step) stays in the result and the record: exit 1
           **({"warnings": [s.why for s in steps if s.action == "warn"]} if any(s.action == "warn" for s in steps)
              else {})}
    if all(x["ok"] for x in ready):
        return out
    say(f"the gate failed: putting the previous {host.env_file} back")
    run_merge(t, host, "restore", backup=env_backup_dir(host) + "/" + backup.name if backup else None)
    wrote(False)
    again = _restart(c, host, [s.target for s in steps if s.action == "restart"], say)
    back = all(x["ok"] for x in again)
    say(f"rolled back: the previous {host.env_file} is back" + (", and its services are ready" if back else
        ", but its services did not come up on it either: a person is needed (exit 5, docs/errors.md)"))
    return {**out, "rolled_back": True, "ready_after_rollback": again}


def _execute(c, host: Host, change: Change, steps: List[Would], say, inventory: Optional[str], wrote):
    """The plan's steps, in its order: (the backup or None, the gate's
    readiness). The restarts, the plan's last steps, are one gate: the
    first service that fails ends it (env.restart_polled)."""
    from ..deploy import suggest
    from .env import backup_env

    backup, ready = None, []
    for n, step in enumerate(steps):
        if step.action == "save":
            backup = backup_env(c, host, keep=10_000)
            undo = suggest(inventory, "restore-env", "-H", host.name, "--backup", backup.name)
            say(f"saved the current {host.env_file} as {backup.name} ({undo} puts it back)")
        elif step.action == "change":
            if backup is None:
                say(f"no {host.env_file} before: nothing to back up")
            run_merge(Target.of(c, host), host, "write", change)
            wrote(True)
            say(f"changed {host.env_file}: {step.why}")
        elif step.action == "keep":
            say(f"kept {step.target}: {step.why}")
        elif step.action == "warn":
            say(f"warning: {step.why}")
        elif step.action == "restart":
            ready = _restart(c, host, [s.target for s in steps[n:] if s.action == "restart"], say)
            break
    return backup, ready


def _restart(c, host: Host, services: List[str], say) -> List[dict]:
    """The reading services restarted and gated (env.restart_polled)."""
    from .env import restart_polled

    return restart_polled(c, host, [host.service(name) for name in services], say)
