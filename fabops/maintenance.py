"""The 3 a.m. tasks, agentless over SSH (or a local Context): reset,
.env backup and restore, cleanup of old recordings, system updates.

Nothing is deleted or reset without a backup first; `.env` contents are
never printed (only sizes, sha256 and key names). They reuse the pipeline's
lock file (flock), dependency rules, readiness poll, state and history files.
"""
from __future__ import annotations

import json
import os
import posixpath
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .errors import CommandFailed, FabopsError, UsageError
from .inventory import Host
from .probe import MARK, split_sections
from .shell import Cmd, as_cmd, in_dir, inventory_shell, path, quote_path, raw, sh, with_env

# ------------------------------------------------------------------ helpers


def run(c, cmd: Cmd, what: str, host: Host, warn: bool = False):
    result = c.run(as_cmd(cmd), hide=True, warn=True, in_stream=False)
    if not result.ok and not warn:
        raise CommandFailed.from_result(what, result, host=host.name)
    return result


def app_file(host: Host, rel: str) -> Cmd:
    return quote_path(posixpath.join(host.app.path.rstrip("/"), rel))


def stamp(fine: bool = False) -> str:
    """A sortable local timestamp; `fine` adds microseconds so two backups in
    the same second never overwrite each other."""
    if fine:
        import datetime

        return datetime.datetime.now().strftime("%Y%m%dT%H%M%S-%f")
    return time.strftime("%Y%m%dT%H%M%S")


# A record in the pipeline's own files, written with the host's python3:
# one history line (O_APPEND) and a merge into state.json (temp, fsync, rename).
_RECORD = r"""
import json, os, sys, tempfile
home, record, updates = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
os.makedirs(home, mode=0o700, exist_ok=True)
fd = os.open(os.path.join(home, "history.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode()); os.fsync(fd); os.close(fd)
path = os.path.join(home, "state.json")
try:
    state = json.load(open(path))
except Exception:
    state = {}
state.update(updates)
fd, tmp = tempfile.mkstemp(dir=home)
with os.fdopen(fd, "w") as fh:
    json.dump(state, fh, indent=2, sort_keys=True); fh.flush(); os.fsync(fh.fileno())
os.chmod(tmp, 0o600); os.replace(tmp, path)
"""


def record_run(c, host: Host, record: dict, state_updates: dict) -> None:
    run(c, sh("python3 -c {script} {home} {record} {updates}", script=_RECORD, home=path(host.at_home()),
              record=json.dumps(record, default=str), updates=json.dumps(state_updates)),
        "recording the run", host)


# ------------------------------------------------------------------ backup-env


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
        src=app_file(host, host.env_file), missing="no .env at " + host.env_file, d=path(backups),
        top=path(host.backup_dir), tmp=path(f"{backups}/{name}.tmp"), dest=path(f"{backups}/{name}"),
        new=MARK + "new", keep=int(keep), end=MARK + "end")


def list_env_cmd(host: Host) -> Cmd:
    return sh("cd {d} 2>/dev/null || exit 0\n"
              "for f in $(ls -1 | grep -E '\\.env$' | sort); do "
              "echo \"$f $(wc -c < \"$f\") $(sha256sum \"$f\" | cut -d' ' -f1)\"; done\n",
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
    out = run(c, backup_env_cmd(host, name, keep), "backing up .env", host)
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
    from . import target

    target.get(c, remote, dest + ".part")
    os.chmod(dest + ".part", 0o600)
    os.replace(dest + ".part", dest)
    return dest


# ------------------------------------------------------------------ restore-env

# Which keys differ between two dotenv files, printed without any value.
_ENV_DIFF = r"""
import sys
def keys(path):
    out = {}
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip()
    return out
a, b = keys(sys.argv[1]), keys(sys.argv[2])
print("added " + " ".join(sorted(set(b) - set(a))))
print("removed " + " ".join(sorted(set(a) - set(b))))
print("changed " + " ".join(sorted(k for k in set(a) & set(b) if a[k] != b[k])))
"""


def env_diff(c, host: Host, current: str, other: str) -> Dict[str, List[str]]:
    r = run(c, sh("python3 -c {script} {current} {other}", script=_ENV_DIFF, current=as_cmd(current),
                  other=as_cmd(other)), "comparing .env keys", host)
    out = {"added": [], "removed": [], "changed": []}
    for line in r.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in out:
            out[kind] = rest.split()
    return out


# ------------------------------------------------------------------ clean


@dataclass
class CleanResult:
    path: str
    glob: str
    files: int
    bytes: int
    dry_run: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def clean_cmd(rule_path: str, glob: str, older_than: float, dry_run: bool) -> Cmd:
    """find -P (the default) never follows symlinks, -maxdepth 1 never leaves
    the rule's directory, -type f skips links and directories. A rule path
    that is itself a symlink is examined as a link, never descended."""
    return sh(
        "[ -d {p} ] && [ ! -L {p} ] || {{ echo 0 0; exit 0; }}\n"
        "find {p} -mindepth 1 -maxdepth 1 -type f -name {glob} -mmin +{minutes} -printf '%s\\n'{action} "
        "| awk '{{n++; b+=$1}} END {{printf \"%d %d\\n\", n, b}}'\n",
        p=path(rule_path), glob=glob, minutes=max(1, int((older_than + 59) // 60)),
        action=raw("") if dry_run else raw(" -delete"))


def clean(c, host: Host, dry_run: bool = False) -> List[CleanResult]:
    out = []
    for rule in host.cleanup:
        r = run(c, clean_cmd(rule.path, rule.glob, rule.older_than, dry_run), f"cleaning {rule.path}", host)
        parts = r.stdout.split()
        files, size = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (0, 0)
        out.append(CleanResult(rule.path, rule.glob, files, size, dry_run))
    return out


# ------------------------------------------------------------------ system-update

# Prints the manager's absolute path: sudo resets PATH (secure_path), and
# sudoers rules name absolute paths anyway.
DETECT = raw("for m in dnf yum apt-get; do if command -v $m >/dev/null 2>&1; then command -v $m; exit 0; fi; done; echo none")


def check_updates_cmd(manager: str) -> Cmd:
    if manager in ("dnf", "yum"):
        # exit 100 means "updates available", 0 none, anything else an error
        return sh("{manager} -q check-update; rc=$?; echo; echo {rc} $rc", manager=manager, rc=MARK + "rc")
    return sh("apt list --upgradable 2>/dev/null | tail -n +2; echo {rc} 0", rc=MARK + "rc")


def parse_check(manager: str, output: str) -> List[str]:
    s = split_sections(output.replace(f"{MARK}rc ", f"{MARK}rc\n"))
    body = output.split(MARK)[0]
    rc = s.get("rc", "").strip()
    if manager in ("dnf", "yum"):
        if rc not in ("0", "100"):
            raise CommandFailed(f"{manager} check-update failed (exit {rc or '?'})")
        if rc == "0":
            return []
        pkgs = []
        for line in body.splitlines():
            parts = line.split()
            if len(parts) >= 3 and "." in parts[0] and not line.startswith(("Obsoleting", "Security", "Last metadata")):
                pkgs.append(f"{parts[0]} {parts[1]}")
        return pkgs
    return [line.split("/")[0] + " " + (line.split()[1] if len(line.split()) > 1 else "")
            for line in body.splitlines() if "/" in line]


def update_cmd(manager: str, manager_path: str) -> Cmd:
    if manager in ("dnf", "yum"):
        return sh("sudo -n {m} -y -q upgrade && {{ if command -v needs-restarting >/dev/null 2>&1; then "
                  "sudo -n \"$(command -v needs-restarting)\" -r >/dev/null 2>&1 || echo REBOOT; fi; }}", m=manager_path)
    return sh("sudo -n {m} -y -q upgrade && {{ [ -f /var/run/reboot-required ] && echo REBOOT || true; }}", m=manager_path)


@dataclass
class UpdateReport:
    manager: str
    updates: List[str] = field(default_factory=list)
    applied: bool = False
    reboot_needed: Optional[bool] = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def system_update(c, host: Host, apply: bool) -> UpdateReport:
    path = run(c, with_env(DETECT, host.env), "detecting the package manager", host).stdout.strip()
    manager = posixpath.basename(path)
    if manager == "none":
        raise FabopsError("no dnf, yum or apt-get on the host", host=host.name)
    r = c.run(with_env(check_updates_cmd(manager), host.env), hide=True, warn=True, in_stream=False)
    try:
        updates = parse_check(manager, r.stdout)
    except CommandFailed as exc:
        raise CommandFailed(exc.message, host=host.name) from None
    report = UpdateReport(manager, updates)
    if apply and updates:
        from .shell import sudo_failure

        u = c.run(with_env(update_cmd(manager, path), host.env), hide=True, warn=True, in_stream=False, timeout=3600)
        if not u.ok:
            err = sudo_failure(u.stderr, [manager, "upgrade"], host=host.name)
            if err:
                raise err
            raise CommandFailed.from_result(f"{manager} upgrade", u, host=host.name)
        report.applied = True
        report.reboot_needed = "REBOOT" in u.stdout
    return report


# ------------------------------------------------------------------ reset


def reset_plan_cmd(host: Host) -> Cmd:
    return sh(
        "echo {m}head; git -C {app} rev-parse HEAD 2>/dev/null\n"
        "echo {m}dirty; git -C {app} status --porcelain=v1 --untracked-files=all 2>/dev/null\n"
        "echo {m}target; git -C {app} ls-remote {remote} {ref} 2>/dev/null | cut -f1\n"
        "echo {m}env; [ -f {env} ] && echo yes\n"
        "echo {m}end\n",
        m=MARK, app=path(host.app.path), remote=host.app.remote, ref=f"refs/heads/{host.app.branch}",
        env=app_file(host, host.env_file))


@dataclass
class ResetPlan:
    head: Optional[str]
    target: Optional[str]
    dirty: List[str]
    has_env: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def reset_plan(c, host: Host) -> ResetPlan:
    s = split_sections(run(c, reset_plan_cmd(host), "reading the checkout", host).stdout)
    return ResetPlan(
        head=(s.get("head") or None),
        target=(s.get("target") or "").split()[0] if s.get("target") else None,
        dirty=[ln for ln in (s.get("dirty") or "").splitlines() if ln.strip()],
        has_env=s.get("env") == "yes",
    )


def save_local_state_cmd(host: Host, dest: str) -> Cmd:
    """Save .env, tracked changes (binary patch) and untracked, non-ignored
    files (tarball) into `dest` (0700, files 0600) before anything is reset."""
    return sh(
        "set -e; umask 077\n"
        "mkdir -p {d}; chmod 700 {top} {d}\n"
        "[ -f {env} ] && cp {env} {d}/env || true\n"
        "git -C {app} diff --binary HEAD > {d}/tracked.patch\n"
        "git -C {app} status --porcelain=v1 --untracked-files=all > {d}/STATUS\n"
        "git -C {app} rev-parse HEAD > {d}/HEAD\n"
        "cd {app} && git ls-files --others --exclude-standard -z > {d}/untracked.list\n"
        "if [ -s {d}/untracked.list ]; then tar --null -T {d}/untracked.list -czf {d}/untracked.tar.gz; fi\n"
        "rm -f {d}/untracked.list; chmod 600 {d}/*\n"
        "echo {d}\n",
        d=path(dest), top=path(host.backup_dir), env=app_file(host, host.env_file), app=path(host.app.path))


def reset_cmd(host: Host) -> Cmd:
    remote, branch = host.app.remote, host.app.branch
    # clean -fd, never -x: ignored files (.env, node_modules) stay
    return with_env(sh(
        "set -e\n"
        "git -C {app} fetch --quiet --prune {remote} {spec}\n"
        "git -C {app} checkout --quiet --force -B {branch} {tracking}\n"
        "git -C {app} reset --quiet --hard {tracking}\n"
        "git -C {app} clean -fdq\n"
        "git -C {app} rev-parse HEAD\n",
        app=path(host.app.path), remote=remote, spec=f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}",
        branch=branch, tracking=f"{remote}/{branch}"), host.env)


def rule_cmd(host: Host, rule_run: str, cwd: str) -> Cmd:
    """A dependency rule's `run:` (hosts.yml shell code, by design) in its cwd."""
    return with_env(in_dir(posixpath.join(host.app.path.rstrip("/"), cwd), inventory_shell(rule_run)), host.env)


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
        from . import errors

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
        raise FabopsError("the lock holder recorded no pid; stop it by hand", host=host.name)
    run(c, sh("kill -TERM -- -{pid} 2>/dev/null || kill -TERM {pid} 2>/dev/null; "
              "i=0; while ! flock -n {lock} true && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
              "flock -n {lock} true || {{ kill -KILL -- -{pid} 2>/dev/null || kill -KILL {pid}; }}",
              pid=pid, lock=path(host.at_home("lock"))),
        "stopping the lock holder", host, warn=True)


def reset(c, host: Host, plan: ResetPlan, actor: str, force: bool = False, progress=None) -> ResetResult:
    from .errors import LockedError
    from .host.events import new_run_id
    from .host.readiness import wait_ready
    from .remote import RemoteLock, managers_for

    say = progress or (lambda _m: None)
    run_id = new_run_id()
    info = {"actor": actor, "trigger": "reset", "target": plan.target, "since": time.time(), "pid": None, "run_id": run_id}
    started = time.monotonic()
    try:
        lock = RemoteLock(c, host, info).__enter__()
    except LockedError:
        if not force:
            raise
        holder = _remote_holder(c, host)
        say(f"--force: stopping the run that holds the lock (pid {holder.get('pid')})")
        stop_holder(c, host, holder)
        lock = RemoteLock(c, host, info).__enter__()
    steps: List[dict] = []

    def step(name, ok=True, message=""):
        steps.append({"name": name, "ok": ok, "message": message})
        say(f"{'✓' if ok else '✗'} {name} {message}".rstrip())

    try:
        dest = f"{host.backup_dir.rstrip('/')}/reset-{stamp()}"
        run(c, save_local_state_cmd(host, dest), "saving local state", host)
        step("save", message=f"saved .env and local changes to {dest}")
        manager, probe = managers_for(c, host)
        for svc in reversed(host.services):
            manager.stop(svc)
        step("stop", message=", ".join(s.name for s in reversed(host.services)))
        new_head = run(c, reset_cmd(host), "git reset", host).stdout.strip().splitlines()[-1]
        step("reset", message=f"{(plan.head or 'none')[:12]} -> {new_head[:12]} (git reset --hard, clean -fd)")
        ok = True
        for rule in host.deps:
            r = c.run(rule_cmd(host, rule.run, rule.cwd), hide=True, warn=True, in_stream=False)
            step(f"deps: {rule.run}", r.ok, "" if r.ok else f"exit {r.exited}")
            ok = ok and r.ok
        if ok and host.setup_command:
            r = c.run(rule_cmd(host, host.setup_command, "."), hide=True, warn=True, in_stream=False)
            step(f"setup: {host.setup_command}", r.ok, "" if r.ok else f"exit {r.exited}")
            ok = r.ok
        if ok:
            for svc in host.services:
                manager.start(svc)
                ready = wait_ready(manager, svc, probe=probe)
                step(f"start {svc.name}", ready.ok, ready.message)
                if not ready.ok:
                    ok = False
                    break
        result = "deployed" if ok else "broken"
        message = (f"reset to {new_head[:12]}; services healthy" if ok else f"reset to {new_head[:12]} but it is not healthy") \
            + f"; saved data in {dest}"
        now = time.time()
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ts": now, "run_id": run_id, "trigger": "reset",
                  "actor": actor, "host": host.name, "from": plan.head, "to": new_head, "result": result,
                  "exit_code": 0 if ok else 5, "message": message, "duration": round(time.monotonic() - started, 3),
                  "steps": steps, "warnings": [], "saved": dest}
        updates = {"last_check": now, "last_result": result, "in_progress": None, "pin": None, "pin_reason": None}
        if ok:
            updates.update({"deployed": new_head, "deployed_at": now})
        record_run(c, host, record, updates)
        return ResetResult(result, message, dest, plan.head, new_head, steps)
    finally:
        lock.__exit__(None, None, None)


def _remote_holder(c, host: Host) -> dict:
    from .remote import read_home_json

    return read_home_json(c, host, "lock")


def restore_env(c, host: Host, name: str, actor: str, dry_run: bool = False, progress=None) -> dict:
    """Back up the current .env, restore `name`, restart and poll. Returns
    the key changes (names only)."""
    from .host.readiness import wait_ready
    from .remote import RemoteLock, managers_for

    say = progress or (lambda _m: None)
    if "/" in name or name.startswith(".") or not name.endswith(".env"):
        raise UsageError(f"--backup must be a backup name like 20261128T101500.env, not {name!r}")
    src = quote_path(env_backup_dir(host) + "/" + name)
    exists = c.run(sh("[ -f {src} ]", src=src), hide=True, warn=True, in_stream=False)
    if not exists.ok:
        raise UsageError(f"no backup {name!r} on the host (see `inv backup-env --list`)", host=host.name)
    diff = env_diff(c, host, app_file(host, host.env_file), src)
    if dry_run:
        return {"diff": diff, "restored": False}
    info = {"actor": actor, "trigger": "restore-env", "target": None, "since": time.time(), "pid": None}
    with RemoteLock(c, host, info):
        before = backup_env(c, host, keep=10_000)
        say(f"saved the current .env as {before.name}")
        dest = app_file(host, host.env_file)
        tmp = path(posixpath.join(host.app.path.rstrip("/"), host.env_file) + ".fabops-tmp")
        run(c, sh("umask 077; cp {src} {tmp} && chmod 600 {tmp} && mv {tmp} {dest}", src=src, tmp=tmp, dest=dest),
            "restoring .env", host)
        manager, probe = managers_for(c, host)
        results = []
        for svc in host.services:
            manager.restart(svc)
            ready = wait_ready(manager, svc, probe=probe)
            results.append(ready.to_dict())
            say(f"{'✓' if ready.ok else '✗'} {ready.message}")
            if not ready.ok:
                break
    return {"diff": diff, "restored": True, "previous_saved_as": before.name, "services": results}
