"""The off-host copy of the local snapshots: a restic repository, on the
host (docs/backups.md, "Off the host").

After a run has written its local snapshot, every local snapshot the
repository does not have yet (this run's, and those of earlier runs that
could not reach it: the catch-up) goes up with `restic backup`, oldest
first, tagged with the host, the deployed commit and the run id, and timed
at its run's start. Then the repository's snapshots the local retention
rule would not keep (host/backup.to_delete over the host's
`repository_keep`, else its `keep`: a failed one once an ok one is newer)
are forgotten by id and pruned. Encryption,
deduplication, retention and `check` are restic's, not ours.

restic is found on PATH and runs at the run's priority (the backup module
lowers its own: host/backup.lower_priority). The password reaches it only
through `--password-file`, a path: never its value in an argv or an
environment; the repository's URL through RESTIC_REPOSITORY in restic's
environment, never its argv (a URL may hold a user or a token). The file
must be the deploy user's alone (no group or other bits). A repository
that is not there yet is created (`restic init`) with that password.
restic's words are passed on with the repository's URL replaced by
`<repository>`, and any other URL's password masked (fabops/redact.py).

Standard library only; Python 3.9.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ..inventory import Host, Repository
from ..redact import redacted

RESTIC = "restic"
NOT_THERE = "Is there a repository at the following location?"  # restic's words for a missing repository
RESTIC_SHORT_ID = 8  # restic's own short snapshot id (`restic snapshots`' ID column): not a commit's length


def short_id(snapshot_id: str) -> str:
    """A restic snapshot's id as restic itself shortens it (its `short_id`)."""
    return str(snapshot_id)[:RESTIC_SHORT_ID]


OFFSITE_TIMEOUT = 4 * 3600.0  # seconds one restic command may run before it is ended
NO_RESTIC = ("restic is not on the host's PATH: `apt install restic` on Debian and Ubuntu, the release binary "
             "on Amazon Linux and bullseye (docs/backups.md)")


class ResticError(Exception):
    """A restic command that failed: its last words, the URL masked."""


def password_problem(path: str) -> Optional[str]:
    """Why the password file cannot be used, or None: it must be a regular
    file only its owner may read (0600 or 0400)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"the repository's password file {path} is not there (backup.repository.password_file)"
    except OSError as exc:
        return f"the repository's password file {path} cannot be read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return f"the repository's password file {path} is not a file"
    if st.st_mode & 0o077:
        return (f"the repository's password file {path} is open to others (mode {stat.S_IMODE(st.st_mode):04o}): "
                f"chmod 600 it")
    return None


def restic_argv(repo: Repository, *args: str) -> List[str]:
    """restic with the repository's password file (a path: the password
    itself is never in an argv), then `args`. The repository's URL is not
    in it either (a URL may hold a user or a token, and every user's `ps`
    shows an argv): restic_env gives it."""
    return [RESTIC, "--password-file", os.path.expanduser(repo.password_file), *args]


def restic_env(repo: Repository) -> Dict[str, str]:
    """The child's environment: this one, with the repository's URL as
    RESTIC_REPOSITORY (readable only by this user, in /proc/PID/environ)."""
    env = {k: v for k, v in os.environ.items() if k != "RESTIC_REPOSITORY_FILE"}
    return {**env, "RESTIC_REPOSITORY": repo.url}


def call(repo: Repository, *args: str, timeout: float = OFFSITE_TIMEOUT) -> str:
    """One restic command; its stdout, or ResticError with its last words.
    A command still running after `timeout` is ended with its children."""
    proc = subprocess.Popen(restic_argv(repo, *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=restic_env(repo), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ResticError(f"restic {args[0]} still running after {timeout:g} s: ended") from None
    if proc.returncode:
        # the URL as given is <repository>; a URL restic spells its own way
        # (a backend's request, an ssh line) still shows no password
        text = redacted(err.decode("utf-8", "replace").replace(repo.url, "<repository>"))
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        # restic's verdict first, then what ssh said: the same words whichever wrote first
        fatal = [ln for ln in lines if ln.startswith("Fatal:")]
        said = "; ".join(fatal[-1:] + [ln for ln in lines if not ln.startswith("Fatal:")][-2:])[:400]
        raise ResticError(f"restic {args[0]} exited {proc.returncode}" + (f": {said}" if said else ""))
    return out.decode("utf-8", "replace")


def remote_runs(repo: Repository, host: str) -> List[dict]:
    """The host's snapshots in the repository (restic's JSON objects),
    creating the repository first when it is not there."""
    try:
        out = call(repo, "snapshots", "--json", "--host", host, timeout=600)
    except ResticError as exc:
        if NOT_THERE not in str(exc):
            raise
        call(repo, "init", timeout=600)
        return []
    data = json.loads(out or "[]")
    return data if isinstance(data, list) else []


def run_tag(snap: dict) -> Optional[str]:
    """The run id a repository snapshot was tagged with (run=<id>)."""
    for tag in snap.get("tags") or []:
        if str(tag).startswith("run="):
            return str(tag)[len("run="):]
    return None


def upload(repo: Repository, host: str, snap) -> str:
    """`restic backup` of one local snapshot (host/backup.Snapshot); the
    new snapshot's id. Tagged with the host, the commit, the run id and
    whether every item was ok (ok=no: retention's rule for failed ones),
    and its exact start (started=: restic's --time keeps whole seconds, and
    two runs in one second must still be told apart by retention)."""
    when = datetime.datetime.fromtimestamp(snap.started).strftime("%Y-%m-%d %H:%M:%S")
    out = call(repo, "backup", "--json", "--quiet", "--host", host, "--time", when,
               "--tag", f"host={host}", "--tag", f"commit={snap.commit or 'none'}", "--tag", f"run={snap.run_id}",
               "--tag", f"ok={'yes' if snap.ok else 'no'}", "--tag", f"started={snap.started!r}", snap.path)
    for line in reversed(out.splitlines()):
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("message_type") == "summary":
            return str(msg.get("snapshot_id") or "")
    return ""


@dataclass(frozen=True)
class Remote:
    """A repository snapshot, as the retention rule reads it."""

    run_id: str
    started: float
    ok: bool  # no ok=no tag (a snapshot uploaded before the tag existed counts as ok)
    id: str


def remotes(snaps: Sequence[dict]) -> List[Remote]:
    """The repository's snapshots of our runs (a run= tag with a run id's
    time; the started= tag's exact one when it has it)."""
    out = []
    for s in snaps:
        run_id = run_tag(s)
        started = _exact_start(s) or run_started(run_id or "")
        if run_id and started is not None:
            out.append(Remote(run_id, started, "ok=no" not in (s.get("tags") or []), str(s.get("id"))))
    return out


def _exact_start(snap: dict) -> Optional[float]:
    """The started= tag's time (None for one uploaded before it existed)."""
    for tag in snap.get("tags") or []:
        if str(tag).startswith("started="):
            try:
                return float(str(tag)[len("started="):])
            except ValueError:
                return None
    return None


def ready(repo: Optional[Repository]) -> None:
    """ResticError unless a repository is set, restic is on PATH and the
    password file is the user's alone."""
    if repo is None:
        raise ResticError("no repository is configured (backup.repository)")
    if shutil.which(RESTIC) is None:
        raise ResticError(NO_RESTIC)
    problem = password_problem(os.path.expanduser(repo.password_file))
    if problem:
        raise ResticError(problem)


def check_files(directory: str, manifest: dict) -> List[str]:
    """The files of `manifest`'s items that are missing from `directory` or
    whose sha256 differs from the manifest's (a skipped item has none)."""
    from .files import sha256_file

    bad = []
    for item in manifest.get("items") or []:
        if item.get("skipped") or not item.get("sha256"):
            continue
        path = os.path.join(directory, str(item.get("file")))
        if not os.path.isfile(path):
            bad.append(f"{item.get('file')}: missing")
        elif sha256_file(path) != item["sha256"]:
            bad.append(f"{item.get('file')}: sha256 differs from the manifest's")
    return bad


def checked(manifest: dict) -> int:
    return sum(1 for i in manifest.get("items") or [] if not i.get("skipped") and i.get("sha256"))


def verify(host: Host, scratch: str) -> dict:
    """`restic check`, then the host's newest snapshot in the repository
    restored into a temporary directory under `scratch` (removed after)
    and every file compared with the sha256 of the manifest it holds."""
    repo = host.backup.repository
    out = {"ok": False, "checked": False, "run_id": None, "id": None, "items": 0, "bad": [], "error": None}
    try:
        ready(repo)
        call(repo, "check")
        out["checked"] = True
        snaps = json.loads(call(repo, "snapshots", "--json", "--host", host.name, timeout=600) or "[]")
        if not snaps:
            raise ResticError("the repository has no snapshot of this host yet: run `backup` first")
        newest = max(snaps, key=lambda s: (run_tag(s) or "", str(s.get("time"))))
        out.update(run_id=run_tag(newest), id=short_id(newest.get("short_id") or newest.get("id", "")))
        tmp = tempfile.mkdtemp(prefix=".verify-", dir=scratch)
        try:
            call(repo, "restore", str(newest["id"]), "--target", tmp)
            restored = os.path.join(tmp, str((newest.get("paths") or [""])[0]).lstrip("/"))
            with open(os.path.join(restored, "manifest.json"), encoding="utf-8") as fh:
                manifest = json.load(fh)
            out.update(items=checked(manifest), bad=check_files(restored, manifest))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        out["ok"] = not out["bad"]
    except (ResticError, OSError, ValueError, KeyError) as exc:
        out["error"] = f"off-host: {exc}"
    return out


def run_started(run_id: str) -> Optional[float]:
    """A run id's start (its first 15 characters, the host's local time)."""
    try:
        return time.mktime(time.strptime(run_id[:15], "%Y%m%dT%H%M%S"))
    except (TypeError, ValueError):
        return None


def listing(host: Host, now: float, sizes: Optional[Dict[str, int]] = None) -> dict:
    """The host's snapshots in the repository, newest first: run id,
    restic's short id, age, size, commit; or the error that kept them from
    being read. One `restic snapshots` call: the size is the local
    snapshot's (`sizes`, by run id: its manifest's items, what a restore
    writes), None for one no longer on the host (a `restic stats` per
    snapshot would load the repository's index each time)."""
    repo, out, sizes = host.backup.repository, {"snapshots": [], "error": None}, sizes or {}
    try:
        ready(repo)
        snaps = json.loads(call(repo, "snapshots", "--json", "--host", host.name, timeout=600) or "[]")
        for s in sorted(snaps, key=lambda s: run_tag(s) or "", reverse=True):
            run_id = run_tag(s) or "?"
            started = run_started(run_id)
            commit = next((t[len("commit="):] for t in s.get("tags") or [] if t.startswith("commit=")), None)
            out["snapshots"].append({"run_id": run_id, "id": short_id(s.get("short_id") or s["id"]),
                                     "age": None if started is None else round(max(0.0, now - started), 1),
                                     "size": sizes.get(run_id), "commit": None if commit == "none" else commit})
    except (ResticError, OSError, ValueError, KeyError) as exc:
        out["error"] = f"off-host: {exc}"
    return out


def offsite(host: Host, local: Sequence, retention: Callable[[Sequence], List[str]]) -> dict:
    """Every local snapshot (host/backup.Snapshot, newest first) the
    repository lacks goes up, oldest first; then the repository's
    snapshots `retention` does not keep (the local rule, host/backup.
    to_delete: a failed one only once an ok one is newer) are forgotten
    and pruned. What went up and was forgotten, and the first error (None
    when all is done). A snapshot that could not go up stays local and
    goes up with a later run."""
    repo, start = host.backup.repository, time.monotonic()
    # has: the run ids the repository holds, None when it could not be read
    out: dict = {"ok": False, "uploaded": [], "forgotten": [], "pruned": False, "has": None, "error": None}
    try:
        ready(repo)
        there = {run_tag(s) for s in remote_runs(repo, host.name)}
        out["has"] = sorted(str(r) for r in there if r)
        for snap in sorted(local, key=lambda s: (s.started, s.run_id)):
            if snap.run_id not in there:
                sid = upload(repo, host.name, snap)
                out["uploaded"].append({"run_id": snap.run_id, "id": short_id(sid)})
                out["has"] = sorted(out["has"] + [snap.run_id])
        now = remotes(remote_runs(repo, host.name))
        gone = set(retention(now))
        ids = [r.id for r in now if r.run_id in gone]
        if ids:
            call(repo, "forget", "--prune", *ids)
        out.update(ok=True, pruned=bool(ids), forgotten=sorted(gone),
                   has=sorted(r.run_id for r in now if r.run_id not in gone))
    except (ResticError, OSError, ValueError) as exc:
        out["error"] = f"off-host copy: {exc}"
    out["duration"] = round(time.monotonic() - start, 3)
    return out
