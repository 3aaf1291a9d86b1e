"""`.env` on the host: backup (0600, rotated, size and sha256 only), the
list, download, key-level diff, and restore (the current one backed up
first). Contents are never printed."""
from __future__ import annotations

import inspect

import os
import posixpath
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .. import errors
from ..errors import CommandFailed, FabopsError, UsageError
from ..host.preflight import env_pairs
from ..host.would import Would
from ..inventory import Host
from ..probe import MARK, split_sections
from ..shell import Cmd, as_cmd, path, quote_path, sh
from ..target import Target
from .common import app_file, stamp
from .required import Required


@dataclass
class EnvBackup:
    name: str
    path: str
    size: int
    sha256: str
    local: Optional[str] = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def env_backup_dir(host: Host) -> str:
    return host.backup_dir.rstrip("/") + "/env"


def backup_env_cmd(host: Host, name: str, keep: int) -> Cmd:
    backups = env_backup_dir(host)
    # rotation: keep the newest `keep` (names sort by time)
    return sh(
        "set -e; umask 077\n"
        "[ -f {src} ] || {{ echo {missing} >&2; exit 3; }}\n"
        "mkdir -p {d}; chmod 700 {top} {d}\n"
        "cp {src} {tmp} && chmod 600 {tmp} && mv {tmp} {dest}\n"
        "echo {new}; wc -c < {dest}; sha256sum {dest} | cut -d' ' -f1\n"
        "cd {d} && ls -1 | grep -E '^[0-9]{{8}}T[0-9]{{6}}.*\\.env$' | sort | head -n -{keep} | xargs -r rm -f --\n"
        "echo {end}\n",
        src=app_file(host, host.env_file), missing=f"no {host.env_file} at {posixpath.join(host.app.path, host.env_file)}: nothing to back up", d=path(backups),
        top=path(host.backup_dir), tmp=path(f"{backups}/{name}.tmp"), dest=path(f"{backups}/{name}"),
        new=MARK + "new", keep=int(keep), end=MARK + "end")


def list_env_cmd(host: Host) -> Cmd:
    return sh("cd {d} 2>/dev/null || exit 0\n"
              "for f in $(ls -1 | grep -E '\\.env$' | sort); do "
              "printf '%s %s %s\\n' \"$f\" \"$(wc -c < \"$f\")\" \"$(sha256sum \"$f\" | cut -d' ' -f1)\"; done\n",
              d=path(env_backup_dir(host)))


def parse_env_list(output: str, host: Host) -> List[EnvBackup]:
    out = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            out.append(EnvBackup(parts[0], env_backup_dir(host) + "/" + parts[0], int(parts[1]), parts[2]))
    return out


def backup_env(c, host: Host, keep: int = 20, download: Optional[str] = None) -> EnvBackup:
    if keep < 1:
        raise UsageError("--keep must be at least 1")
    name = stamp(fine=True) + ".env"
    out = Target.of(c, host).run(backup_env_cmd(host, name, keep), "backing up .env")
    s = split_sections(out.stdout)
    parts = s.get("new", "").split()
    if len(parts) != 2:
        raise CommandFailed("backing up .env printed nothing useful", host=host.name)
    backup = EnvBackup(name, env_backup_dir(host) + "/" + name, int(parts[0]), parts[1])
    if download:
        backup.local = fetch_private(c, host, backup.path, os.path.join(download, host.name), name)
    return backup


def fetch_private(c, host: Host, remote: str, local_dir: str, name: str) -> str:
    """Download to local_dir/name with 0700 dir and 0600 file, never wider."""
    os.makedirs(local_dir, mode=0o700, exist_ok=True)
    os.chmod(local_dir, 0o700)
    dest = os.path.join(local_dir, name)
    fd = os.open(dest + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    Target.of(c, host).get(remote, dest + ".part")
    os.chmod(dest + ".part", 0o600)
    os.replace(dest + ".part", dest)
    return dest


# ------------------------------------------------------------------ restore-env

# Which keys differ between two dotenv files, printed without any value; the
# parser is the pipeline's own (host/preflight.py), shipped as source, so the
# diff needs no fabops on the host.
_ENV_DIFF = "from typing import Dict\n" + inspect.getsource(env_pairs) + r"""
import sys
def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None
raw_a, raw_b = read(sys.argv[1]), read(sys.argv[2])
def pairs_of(raw):
    return {} if raw is None else env_pairs(raw.decode("utf-8", "replace"))
a, b = pairs_of(raw_a), pairs_of(raw_b)
print("same " + ("yes" if raw_a is not None and raw_a == raw_b else "no"))
print("added " + " ".join(sorted(set(b) - set(a))))
print("removed " + " ".join(sorted(set(a) - set(b))))
print("changed " + " ".join(sorted(k for k in set(a) & set(b) if a[k] != b[k])))
"""


def env_diff(c, host: Host, current: str, other: str) -> Tuple[Dict[str, List[str]], Required]:
    """The keys `other` adds, removes and changes against `current` (names
    only) and, in the same round trip, the checkout's commit and the keys
    its .env.example names (required.required_keys: what the next deploy's
    preflight requires, which a restore must not remove: restore_would)."""
    from .required import required_cmd, required_keys

    r = Target.of(c, host).run(sh("python3 -c {script} {current} {other} || exit $?\n{required}", script=_ENV_DIFF,
                                  current=as_cmd(current), other=as_cmd(other), required=required_cmd(host)),
                               "comparing .env keys")
    return parse_env_diff(r.stdout), required_keys(r.stdout)


def parse_env_diff(output: str) -> Dict[str, List[str]]:
    """_ENV_DIFF's lines, which come before the first marker (the
    required_cmd sections after them are required_keys')."""
    out = {"added": [], "removed": [], "changed": [], "same": False}
    for line in output.split("\n" + MARK)[0].splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "same":
            out["same"] = rest == "yes"
        elif kind in out:
            out[kind] = rest.split()
    return out


SAME = "the backup matches the current .env"


def keys_text(diff: Dict[str, List[str]]) -> str:
    """The keys a restore changes, names only: the dry run's restore line
    and the real run's, said before its restarts' verdict."""
    return "keys " + "; ".join(f"{kind}: {', '.join(diff.get(kind) or ()) or '-'}"
                               for kind in ("added", "removed", "changed"))


def restore_would(host: Host, name: str, diff: Dict[str, List[str]], required: Required = (None, []),
                  force: bool = False) -> List[Would]:
    """What `restore-env` does, in order (pure): the dry run's `would`, the
    steps the real restore takes. Key names only, never a value. A backup
    that is byte for byte the current .env is nothing to do: no save, no
    copy, no restart. A backup that lacks keys the checkout's .env.example
    names (`required`, env_diff) is refused, exit 2, unless `force`, which
    begins the plan with a `warn` step: the next deploy would refuse the
    host (required.required_gone, env-unset's rule; docs/maintenance.md)."""
    from .required import required_gone

    if diff.get("same"):
        return []
    return (required_gone(host, diff, required, force, restoring=name)
            + [Would("save", host.env_file, "the current one, as a new backup first"),
               Would("restore", name, keys_text(diff))]
            + [Would("restart", s.name, "then poll it until ready") for s in host.services])


class CutOff(FabopsError):
    """A restore cut off while putting items back stands: restore-env's
    restarts would start the services on half-restored data (BROKEN, as
    the planner's abort and reset's refusal: docs/errors.md)."""

    exit_code = errors.BROKEN


def refuse_cut_off(t: Target, host: Host, inventory: Optional[str] = None) -> None:
    """CutOff, in the planner's words (host/plan.cut_off_words; `inventory`:
    the `-i PATH` its take-over command needs), when state.json marks a
    restore cut off putting items back; nothing else."""
    import json

    from ..host.plan import cut_off_words

    text = t.output(sh("cat {state} 2>/dev/null; echo", state=path(host.paths.state)))
    try:
        state = json.loads(text) if text.strip() else {}
    except ValueError:
        state = {}
    words = cut_off_words(state.get("in_progress") if isinstance(state, dict) else None, host.name, inventory)
    if words:
        raise CutOff(f"not restoring .env: {words}", host=host.name)


def restore_env(c, host: Host, name: str, actor: str, dry_run: bool = False, progress=None,
                inventory: Optional[str] = None, force: bool = False) -> dict:
    """Back up the current .env, restore `name`, restart and poll. Returns
    the key changes (names only). `inventory` is the `-i PATH` a hint must
    name (tasks/deploy.inventory_flag), or None. `force`: restore a backup
    that lacks keys the checkout's .env.example needs (restore_would)."""
    from ..remote import RemoteLock

    say = progress or (lambda _m: None)
    if "/" in name or name.startswith(".") or not name.endswith(".env"):
        # named as backup_env names them (stamp(fine=True)): `backup-env --list` shows them
        raise UsageError(f"--backup must be a backup name like 20261128T101500-123456.env, not {name!r}")
    src = quote_path(env_backup_dir(host) + "/" + name)
    t = Target.of(c, host)
    if not t.ok(sh("[ -f {src} ]", src=src)):
        from ..deploy import suggest

        raise UsageError(f"no backup {name!r} on the host (see {suggest(inventory, 'backup-env', '-H', host.name, '--list')})",
                         host=host.name)
    refuse_cut_off(t, host, inventory)  # before its plan too: the dry run says the same refusal
    diff, required = env_diff(c, host, app_file(host, host.env_file), src)
    would = restore_would(host, name, diff, required, force)  # refused here, dry run or not, unless forced
    if dry_run:  # the same checks and diff, rendered: nothing locked, saved, copied or restarted
        return {"diff": diff, "restored": False, "would": [w.to_dict() for w in would]}
    if not would:  # the backup is the current .env: nothing to restore, nothing to restart
        say(f"nothing to restore: {SAME}")
        return {"diff": diff, "restored": False, "services": []}
    info = {"actor": actor, "trigger": "restore-env", "target": None, "since": time.time(), "pid": None}
    from .envrun import EnvRun, read_deployed

    run = EnvRun(c, host, "restore-env", actor, read_deployed(t, host), say)  # its history record (#29)
    with RemoteLock(c, host, info):
        refuse_cut_off(t, host, inventory)  # again under the lock: a restore that held it may have been cut off since
        # and the plan again: the .env, and what the checkout requires of it, are another run's to change
        # until this one holds the lock (a deploy or rollback to a commit whose .env.example needs more)
        diff, required = env_diff(c, host, app_file(host, host.env_file), src)
        would = restore_would(host, name, diff, required, force)
        if not would:
            say(f"nothing to restore: {SAME}")
            return {"diff": diff, "restored": False, "services": []}
        return run.restored(lambda: _restore(c, host, name, src, diff, say, run.wrote, would), name)


def _restore(c, host: Host, name: str, src, diff: dict, say, wrote=lambda _changed=True: None,
             would: List[Would] = ()) -> dict:
    """Under the lock: the plan's warning said first (a forced restore of
    a backup that lacks required keys: restore_would), the current .env
    saved, the backup copied over it (its temporary copy, which holds the
    values, removed if the copy fails), the services restarted and
    polled. `wrote` is told once the .env is the backup's (EnvRun.wrote: a
    stop during the restarts is then recorded `broken`)."""
    for step in would:
        if step.action == "warn":
            say(f"warning: {step.why}")
    t = Target.of(c, host)
    before = backup_env(c, host, keep=10_000)
    say(f"saved the current .env as {before.name}")
    dest = app_file(host, host.env_file)
    tmp = path(posixpath.join(host.app.path.rstrip("/"), host.env_file) + ".fabops-tmp")
    t.run(sh("umask 077; cp {src} {tmp} && chmod 600 {tmp} && mv {tmp} {dest} || {{ rm -f {tmp}; exit 1; }}",
             src=src, tmp=tmp, dest=dest), "restoring .env")
    wrote(True)
    say(f"restored {name}: {keys_text(diff)}")  # what changed, then the restarts' verdict (#24)
    results = restart_polled(c, host, host.services, say)
    warned = [step.why for step in would if step.action == "warn"]  # a forced restore: kept, exit 1
    return {"diff": diff, "restored": True, "previous_saved_as": before.name, "services": results,
            **({"warnings": warned} if warned else {})}


def restart_polled(c, host: Host, services, say) -> List[dict]:
    """Restart each of `services` and poll it until ready (the readiness
    gate after a .env change: restore-env's, env-set's); the first that
    fails ends the round. Each one's readiness, as a dict."""
    from ..host.readiness import wait_ready
    from ..remote import managers_for

    manager, probe = managers_for(c, host)
    results = []
    for svc in services:
        manager.restart(svc)
        ready = wait_ready(manager, svc, probe=probe)
        results.append(ready.to_dict())
        say(f"{'✓' if ready.ok else '✗'} {ready.message}")
        if not ready.ok:
            break
    return results
