"""Local backup snapshots, on the host (docs/backups.md).

A run writes one directory per run, `<home>/backups/<run-id>/` (0700; its
files 0600): each item of the host's `backup:` settings copied (`files`: one
tar of the listed paths minus the excludes; `sqlite`: SQLite's online backup
API into a new database, never `cp`; `dump`: a command's stdout), `.env`,
state.json and history.jsonl always, and manifest.json (each item's name,
kind, size, sha256, duration, ok or error; the deployed commit; the run's
start and end). It is written as `.<run-id>.partial` and renamed when the
manifest is in, so a listing never reads half a run. A failed item does
not stop the others. After a run whose every item is ok, retention
(`keep`, as restic's --keep-daily/weekly/monthly) deletes the snapshots it
does not keep.

Decide once, then act: `plan` says what a run copies and which snapshots
retention would delete; `run` acts on that plan and the dry run renders
it. With `backup.repository` set, the run then copies its snapshot (and
any an unreachable repository missed) off the host with restic
(host/restic.py). A run holds the host lock for its local snapshot only,
waiting for a deploy to end (LOCK_WAIT), and the backup lock for the
off-host copy and retention (deploys and health --fix go on meanwhile);
it runs at low priority (nice, ionice); a failed run notifies once per
reason.

The laptop runs it in one round trip: `python -I -m fabops.host.backup
plan|run [ACTOR]|list|verify` (or `restore RUN_ID ONLY DIR [ACTOR]` and
`restore-plan RUN_ID ONLY DIR`: host/restore.py, its restore and that
restore's dry run) with the host's
settings (host.yml) on stdin, and reads one JSON object on stdout.
Standard library only; Python 3.9.
"""
from __future__ import annotations

import datetime
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..errors import LockedError
from ..inventory import Host, Keep
from ..paths import RUN_ID, HostPaths
from .events import new_run_id
from .files import sha256_file
from .report import item_label
from .would import Would

FORMAT = 1  # manifest.json's format
DUMP_TIMEOUT = 3600.0  # seconds a dump command may run before it is killed (and fails)
# seconds the laptop waits for the files, sqlite and plain copies together:
# the laptop's allowance only, the host sets copies no limit (a dump has one)
COPY_ALLOWANCE = 4 * 3600.0
NO_OFF_HOST = ("no off-host copy: backup.repository is not set, so these snapshots are on the host's own disk, "
               "which a dead disk or a terminated instance takes with them (docs/backups.md)")
# --list with no snapshot: there is nothing on the host's disk to warn about, only no repository (trial)
NO_REPOSITORY = "no off-host copy is configured: backup.repository is not set (docs/backups.md)"
# seconds a run waits for the host lock (a deploy, its watch included, or another backup)
LOCK_WAIT = 1800.0
# an in-place restore's Ctrl-C or SIGTERM before it stopped anything (host/restore.Deferred): it ends, exit 130
INTERRUPTED_BEFORE = "fabops: backup --restore interrupted before it stopped anything: nothing was changed"
NICE = 19  # the run's niceness; its I/O is best-effort at the lowest priority (ionice -c 2 -n 7)


@dataclass(frozen=True)
class Item:
    """One thing a run copies, and the file it becomes in the snapshot."""

    name: str  # files, sqlite-<file name>, dump-<name>, env, state, history
    kind: str  # files | sqlite | dump | env | state
    file: str  # its file in the snapshot directory
    sources: Tuple[str, ...] = ()  # the absolute paths read (a dump reads none)
    command: Optional[str] = None  # a dump's shell code
    always: bool = False  # .env and fabops' own files: a missing one is skipped, not failed

    def to_dict(self) -> dict:
        data = {"name": self.name, "kind": self.kind, "file": self.file, "sources": list(self.sources)}
        if self.command is not None:
            data["command"] = self.command
        return data


@dataclass(frozen=True)
class Snapshot:
    """A snapshot on the host, as its manifest tells it."""

    run_id: str
    path: str
    started: float
    ended: float
    ok: bool
    size: int
    items: int
    failed: int
    commit: Optional[str] = None
    undo_of: Optional[str] = None  # the restore whose "what was there first" this is

    def to_dict(self, now: float) -> dict:
        return {"run_id": self.run_id, "path": self.path, "started": self.started, "ended": self.ended,
                "age": round(max(0.0, now - self.ended), 1), "ok": self.ok, "size": self.size,
                "items": self.items, "failed": self.failed, "commit": self.commit,
                **({"undo_of": self.undo_of} if self.undo_of else {})}


HOW = {"files": "tar", "sqlite": "SQLite online backup", "dump": "stdout of"}  # a dry run's words per kind


@dataclass(frozen=True)
class BackupPlan:
    host: str
    run_id: str
    app: str  # the app directory: a dump's cwd, relative paths' base
    snapshot: str  # the directory the run writes
    items: Tuple[Item, ...]
    exclude: Tuple[str, ...]
    keep: Keep
    existing: Tuple[Snapshot, ...]  # the snapshots there now, newest first
    delete: Tuple[str, ...]  # run ids retention deletes after this run, if it is ok
    env: Dict[str, str]
    never: Tuple[str, ...] = ()  # real paths `files` never archives: the snapshots themselves, fabops' venv
    undo_of: Optional[str] = None  # a restore's save: the run id it restores (kept_undo)
    # the `.<run-id>.partial` directories there now and their bytes: under
    # the host lock (a real run's plan) each is one a cut-off run left (stale)
    partials: Tuple[Tuple[str, int], ...] = ()
    # the `.restore-*` directories there now and their bytes (fetch_dirs)
    fetches: Tuple[Tuple[str, int], ...] = ()

    def would(self, offsite: bool = False, held: Optional[Dict[str, dict]] = None) -> List[Would]:
        """The dry run's lines; `offsite`: a repository is set, so a
        delete also waits for the repository to have the snapshot (retain:
        a failed copy keeps the ones not yet off the host). `held`: the
        locks held now, by name (peek_holder)."""
        out = self._leftovers(held or {})
        out.append(Would("write", self.snapshot, "a new snapshot (0700; files 0600) with manifest.json"))
        for it in self.items:
            what = f"backup.dump {it.name[len('dump-'):]}" if it.kind == "dump" else ", ".join(it.sources)
            how = HOW.get(it.kind, "copy" + (" if present" if it.always else ""))
            # the real run's own check (copy_item): an item it fails is said as failing, and the dry run exits 2
            error = cannot_copy(it, self.app)
            label = item_label(it)  # as the real run's rows name it (`files (files.tar)`)
            out.append(Would("fail", label, error) if error else Would("copy", label, f"{how} {what}"))
        when = "if every item is copied" + (" and the repository has it (a failed off-host copy keeps one not "
                                             "yet off the host for the next run)" if offsite else "")
        out += [Would("delete", run_id, "retention: not among the snapshots the keep policy "
                      f"(daily {self.keep.daily}, weekly {self.keep.weekly}, monthly {self.keep.monthly}) keeps, "
                      f"{when}") for run_id in self.delete]
        return out

    def _leftovers(self, held: Dict[str, dict]) -> List[Would]:
        """What cut-off runs left, which the run removes (sweep,
        sweep_fetches). While the host lock is held, a live run's partial
        is there too (the real run finds it finished once it holds the
        lock), so none is listed: the wait is said instead (#26). A
        `.restore-*` directory is listed only while no one holds the backup
        lock, which a restore holds while its directory exists."""
        from .lock import describe_holder

        if "the host lock" in held:
            return [Would("wait for", "the host lock", f"held by {describe_holder(held['the host lock'])}: the run "
                          f"waits up to {LOCK_WAIT:g} s for it, then stops (exit 4); once it holds it, it removes "
                          "the partial snapshots and restore fetch directories that cut-off runs left (none is "
                          "listed now: the holder may be writing one)")]
        out = [Would("delete", name, f"a partial snapshot ({_size(size)}) that a run cut off before its manifest "
                     "left (killed, or the host went down); removed once this run holds the host lock, which "
                     "every run writing one holds") for name, size in self.partials]
        return out + [Would("delete", name, f"a restore's fetch from the repository ({_size(size)}) that a restore "
                            "cut off while fetching left (killed, or the host went down): a decrypted copy of a "
                            "snapshot, .env included; removed once this run holds the backup lock, which a restore "
                            "holds while its directory exists") for name, size in
                      (() if "the backup lock" in held else self.fetches)]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "snapshot": self.snapshot, "items": [i.to_dict() for i in self.items],
                "exclude": list(self.exclude), "keep": dict(self.keep.__dict__), "delete": list(self.delete)}


# ------------------------------------------------------------------ retention (pure)

_BUCKETS: Tuple[Tuple[str, Callable[[datetime.datetime], tuple]], ...] = (
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar()[:2])),
    ("monthly", lambda t: (t.year, t.month)),
)


def kept(times: Iterable[datetime.datetime], keep: Keep) -> Set[datetime.datetime]:
    """The snapshot times `keep` keeps, as restic's --keep-daily/weekly/
    monthly: newest first, for each policy the newest snapshot of each of
    the last N days (ISO weeks, months) that have one; the union of the
    three. The newest snapshot is always kept."""
    order = sorted(set(times), reverse=True)
    out: Set[datetime.datetime] = set(order[:1])
    for name, bucket in _BUCKETS:
        count, seen = getattr(keep, name), []
        for t in order:
            if len(seen) >= count:
                break
            if bucket(t) not in seen:
                seen.append(bucket(t))
                out.add(t)
    return out


def kept_undo(s: Snapshot, now: float, keep: Keep) -> bool:
    """A restore's save ("restore it to undo this") is outside the keep
    rule's days for `keep.daily` days: it is usually the day's newest
    snapshot but one, and the next backup's daily rule would delete it
    (a trial lost it so on the same day)."""
    # the repository's snapshots (restic.Remote) carry no undo_of
    return bool(getattr(s, "undo_of", None)) and now - s.started < max(1, keep.daily) * 86400


def to_delete(snapshots: Sequence[Snapshot], keep: Keep, new: Optional[float] = None,
              protect: Iterable[str] = ()) -> List[str]:
    """Run ids retention deletes: among ok snapshots (and a new one started
    at `new`), those `kept` does not keep, but never a restore's recent
    save (kept_undo) nor a run id in `protect` (protected: what a restore
    marked in state.json needs); a failed snapshot goes once an ok one is
    newer (it is superseded)."""
    now = new if new is not None else max((s.started for s in snapshots), default=0.0)
    protect = set(protect)
    snapshots = [s for s in snapshots if not kept_undo(s, now, keep) and s.run_id not in protect]
    good = {s.run_id: datetime.datetime.fromtimestamp(s.started) for s in snapshots if s.ok}
    times = list(good.values()) + ([datetime.datetime.fromtimestamp(new)] if new is not None else [])
    keeps = kept(times, keep)
    newest_ok = max(times) if times else None
    out = [rid for rid, t in good.items() if t not in keeps]
    out += [s.run_id for s in snapshots if not s.ok and newest_ok is not None
            and datetime.datetime.fromtimestamp(s.started) < newest_ok]
    return sorted(out)


def protected(paths: HostPaths) -> Set[str]:
    """The run ids retention never deletes while state.json marks a restore
    (host/restore.Underway; docs/backups.md, "A restore cut off in the
    middle"): the snapshot it puts back, the one each restore it took over
    was putting back, and their saves of what was there before (`protect`).
    A restore cut off putting items back is finished only by restoring that
    snapshot again, and undone only with that save."""
    from .files import read_object

    mark = read_object(paths.state).get("in_progress")
    if not isinstance(mark, dict) or mark.get("trigger") != "restore":
        return set()
    listed = mark.get("protect") if isinstance(mark.get("protect"), list) else []
    return {str(r) for r in [mark.get("run_id"), *listed] if r}


def cut_off(host: Host, paths: HostPaths) -> Optional[str]:
    """Why a backup run must not copy now (None: it may): a restore cut off
    putting items back (host/plan.cut_off_words), whose data is half the
    snapshot's and half the old, or whose hold still stands (a take-over
    that saved nothing: host/restore.Underway.back_out). Such a copy would
    be a good-looking backup of data that never ran."""
    from .files import read_object
    from .hold import read_hold
    from .plan import cut_off_words

    words = cut_off_words(read_object(paths.state).get("in_progress"), host.name) or read_hold(paths.restore_hold)
    return f"not backing up: {words}" if words else None


# ------------------------------------------------------------------ the plan


def source(host: Host, path: str) -> str:
    """A `backup:` path on this host: ~/ expanded, relative to the app directory."""
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(os.path.expanduser(host.app.path), path))


def items(host: Host, paths: HostPaths) -> Tuple[Item, ...]:
    b = host.backup
    out: List[Item] = []
    if b.files:
        out.append(Item("files", "files", "files.tar", tuple(source(host, p) for p in b.files)))
    taken: Set[str] = set()
    for p in b.sqlite:
        name, n = f"sqlite-{os.path.basename(source(host, p))}", 1
        while name in taken:  # a.db twice beside a.db-2: every name differs, whatever the list
            n += 1
            name = f"sqlite-{os.path.basename(source(host, p))}-{n}"
        taken.add(name)
        out.append(Item(name, "sqlite", name, (source(host, p),)))
    out += [Item(f"dump-{d.name}", "dump", f"dump-{d.name}.out", command=d.command) for d in b.dump]
    out.append(Item("env", "env", "env", (source(host, host.env_file),), always=True))
    out.append(Item("state", "state", "state.json", (paths.state,), always=True))
    out.append(Item("history", "state", "history.jsonl", (paths.history,), always=True))
    return tuple(out)


def snapshots(paths: HostPaths) -> List[Snapshot]:
    """The finished snapshots (a manifest in a run id's directory), newest first."""
    try:
        names = os.listdir(paths.backups)
    except OSError:
        return []
    out = []
    for name in names:
        if not RUN_ID.fullmatch(name):
            continue
        try:
            with open(paths.backup_manifest(paths.backup_snapshot(name)), encoding="utf-8") as fh:
                m = json.load(fh)
            done = [i for i in m["items"] if not i.get("skipped")]
            out.append(Snapshot(name, paths.backup_snapshot(name), float(m["started"]), float(m["ended"]),
                                bool(m["ok"]), sum(int(i.get("size") or 0) for i in done), len(done),
                                sum(1 for i in done if not i.get("ok")), m.get("commit"), m.get("undo_of")))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a snapshot of ours (or a damaged one): never deleted by retention either
    return sorted(out, key=lambda s: (s.started, s.run_id), reverse=True)


# A run's snapshot is named by its run id (events.new_run_id: when the run
# started, and 6 random hex digits), known only once it runs. A dry run plans
# with this form of it, so its `would write` names what the real run writes,
# not an id of its own that no run will use (#24); both name it in plan().
DRY_RUN_ID = "YYYYMMDDTHHMMSS-xxxxxx"


def plan(host: Host, paths: HostPaths, run_id: Optional[str] = None, now: Optional[float] = None) -> BackupPlan:
    """What a run copies and which snapshots retention deletes if it is ok."""
    run_id = run_id or new_run_id()
    existing = snapshots(paths)
    return BackupPlan(host.name, run_id, source(host, "."), paths.backup_snapshot(run_id), items(host, paths),
                      host.backup.exclude, host.backup.keep, tuple(existing),
                      tuple(to_delete(existing, host.backup.keep, time.time() if now is None else now,
                                      protected(paths))),
                      dict(host.env), tuple(os.path.realpath(d) for d in (paths.backups, paths.venv)),
                      partials=partials(paths), fetches=fetch_dirs(paths))


def partials(paths: HostPaths) -> Tuple[Tuple[str, int], ...]:
    """The `.<run-id>.partial` directories in backups/ (name, bytes), by
    name: a snapshot being written, or one a run cut off before its
    manifest (SIGKILL, the OOM killer, a power loss) left for good. Never
    a snapshot: snapshots() reads run ids' directories only."""
    try:
        names = sorted(os.listdir(paths.backups))
    except OSError:
        return ()
    out = []
    for name in names:
        if name.startswith(".") and name.endswith(".partial") and RUN_ID.fullmatch(name[1:-len(".partial")]):
            out.append((name, _bytes(os.path.join(paths.backups, name))))
    return tuple(out)


def fetch_dirs(paths: HostPaths) -> Tuple[Tuple[str, int], ...]:
    """The `.restore-*` directories in backups/ (name, bytes), by name: a
    restore's fetch of a snapshot from the repository (host/restore.py,
    source_dir), or one a restore cut off during its fetch (SIGKILL, the
    OOM killer, a power loss) left for good. Never a snapshot."""
    try:
        names = sorted(os.listdir(paths.backups))
    except OSError:
        return ()
    return tuple((name, _bytes(os.path.join(paths.backups, name))) for name in names
                 if name.startswith(".restore-") and os.path.isdir(os.path.join(paths.backups, name)))


def _bytes(top: str) -> int:
    """The bytes of the files under `top` (links not followed; one that
    vanishes meanwhile counts 0)."""
    total = 0
    for root, _, files in os.walk(top):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _size(n: int) -> str:
    from .report import size_text

    return size_text(n)


def sweep(p: BackupPlan, paths: HostPaths) -> Tuple[List[dict], List[str]]:
    """Remove the partial directories the plan found, the host lock held
    (locked_run): every run that writes one (a backup's snapshot, a
    restore's save of what is there) holds the host lock while it does, and
    the kernel releases a flock only when its holder ends (host/lock.py),
    so none of them is a live run's. What was removed ({name, size}) and
    one warning saying it, or why one is still there."""
    return _remove(paths, p.partials, PARTIAL_WORDS)


# a sweep's words for what it removes: one, more than one, who left them, one not removed
PARTIAL_WORDS = ("partial snapshot", "partial snapshots", "that runs cut off before their manifest left (killed, "
                 "or the host went down)", "a partial snapshot a cut-off run left")
FETCH_WORDS = ("restore fetch directory", "restore fetch directories", "that restores cut off while fetching "
               "from the repository left (killed, or the host went down), each a decrypted copy of a snapshot",
               "a restore's fetch a cut-off restore left")


def _remove(paths: HostPaths, found: Iterable[Tuple[str, int]],
            words: Tuple[str, str, str, str]) -> Tuple[List[dict], List[str]]:
    """Remove the directories `found` ((name, bytes) in backups/): what
    was removed ({name, size}) and one warning saying it (`words`:
    PARTIAL_WORDS, FETCH_WORDS), or why one is still there."""
    one, many, left_by, each = words
    swept: List[dict] = []
    warnings: List[str] = []
    for name, size in found:
        gone, why = os.path.join(paths.backups, name), "it is still there"
        try:
            shutil.rmtree(gone)
        except OSError as exc:  # a file the deploy user may not remove: said, and the run goes on
            why = f"{exc.filename or gone}: {exc.strerror or exc}"
        if os.path.lexists(gone):
            warnings.append(f"could not remove {gone}, {each}: {why}")
        else:
            swept.append({"name": name, "size": size})
    if swept:
        total = sum(s["size"] for s in swept)
        warnings.insert(0, f"removed {len(swept)} {one if len(swept) == 1 else many} ({_size(total)}) {left_by}: "
                        f"{', '.join(s['name'] for s in swept)}")
    return swept, warnings


def sweep_fetches(paths: HostPaths, info: dict) -> Tuple[List[dict], List[str]]:
    """Remove the `.restore-*` directories that restores cut off during
    their fetch left (fetch_dirs; a Ctrl-C or SIGTERM removes its own): a
    decrypted copy of a snapshot, .env included, that retention and --list
    never read. A restore holds the backup lock for as long as its
    directory exists (host/restore.py, restore), and the kernel releases a
    flock only when its holder ends, so one found with the backup lock held
    here is no live restore's. Called under the host lock, which a restore
    takes after the backup lock: the backup lock is tried, never waited
    for (both would wait for good); while someone holds it (a restore
    fetching, another run's upload) they are left for a later run."""
    from .lock import HostLock

    if not fetch_dirs(paths):
        return [], []
    lock = HostLock(paths.backup_lock, info)
    if not lock.try_acquire():
        return [], []
    try:  # listed again under the lock: a restore that ended meanwhile removed its own
        return _remove(paths, fetch_dirs(paths), FETCH_WORDS)
    finally:
        lock.release()


def run_timeout(host: Host) -> float:
    """Seconds the laptop waits for a run: each dump's DUMP_TIMEOUT, which
    the host enforces (it ends a stuck dump, and the laptop still reads the
    manifest), plus COPY_ALLOWANCE for the copies, which only the laptop
    counts: copies that take longer end the wait as a timeout."""
    from .restic import OFFSITE_TIMEOUT

    offsite = 2 * OFFSITE_TIMEOUT if host.backup.repository else 0.0  # the upload, then forget --prune
    return 2 * LOCK_WAIT + DUMP_TIMEOUT * len(host.backup.dump) + COPY_ALLOWANCE + offsite


# ------------------------------------------------------------------ the run


def _private(path: str) -> str:
    os.chmod(path, 0o600)
    return path


def excluded(name: str, patterns: Tuple[str, ...]) -> bool:
    """Whether an archive path matches an exclude pattern: its name or any
    trailing part of its path (`cache/*` leaves out every cache/ tree)."""
    parts = name.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(t, g) for t in tails for g in patterns)


def _arcname(path: str) -> str:
    return path.lstrip("/") or "."


def _under(path: str, roots: Tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


class _Padded:
    """A file read for the tar: `size` bytes, the missing end as zeros when
    the file shrank while it was read (the archive stays whole, as GNU tar
    pads; the item warns)."""

    def __init__(self, fh, size: int):
        self.fh, self.left, self.short = fh, size, False

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.fh.read(n)
        if len(data) < n:
            self.short, data = True, data + bytes(n - len(data))
        self.left -= len(data)
        return data


def _add_entry(tar, src: str, name: str, warnings: List[str]) -> bool:
    """One entry (lstat: a link stays a link); whether it is a directory to walk."""
    try:
        info = tar.gettarinfo(src, arcname=name)
        if info is None:  # a socket or the like: nothing a tar holds
            return False
        if not info.isreg():
            tar.addfile(info)
            return info.isdir()
        with open(src, "rb") as fh:
            padded = _Padded(fh, info.size)
            tar.addfile(info, padded)
        if padded.short:
            warnings.append(f"files: {src} shrank while it was read (its end is zeros in the tar)")
    except FileNotFoundError:
        warnings.append(f"files: {src} vanished while the tar was written (left out)")
    return False


def _add_tree(tar, top: str, arc: str, exclude: Tuple[str, ...], never: Tuple[str, ...],
              warnings: List[str]) -> None:
    """`top` (a real path) as `arc` and everything under it, without what
    `exclude` matches or what is under `never`; links inside stay links."""
    todo = [(top, arc)]
    while todo:
        src, name = todo.pop()
        if excluded(name, exclude) or _under(src, never) or not _add_entry(tar, src, name, warnings):
            continue
        try:
            names = sorted(os.listdir(src), reverse=True)
        except FileNotFoundError:
            warnings.append(f"files: {src} vanished while the tar was written (left out)")
            continue
        todo += [(os.path.join(src, n), f"{name}/{n}") for n in names]


def copy_files(it: Item, dest: str, exclude: Tuple[str, ...], never: Tuple[str, ...] = (),
               warnings: Optional[List[str]] = None) -> Optional[str]:
    """One tar of the item's paths minus `exclude` and what is under `never`.
    A listed path that is a symlink is followed (its tree is archived under
    the listed name); links inside the tree stay links. A missing path fails
    the item; the others are still in the tar. A file that vanishes or
    shrinks during the walk is a warning, never the end of the tar."""
    import tarfile

    warnings = [] if warnings is None else warnings
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for p in it.sources:
            if os.path.exists(p):
                _add_tree(tar, os.path.realpath(p), _arcname(p), exclude, never, warnings)
    return cannot_copy(it, "")


def cannot_copy(it: Item, app: str) -> Optional[str]:
    """Why the item fails before anything is read (`app`: a dump's cwd),
    or None. One check for the run (copy_files, copy_sqlite, copy_dump)
    and its dry run (BackupPlan.would), so `--dry-run` says `would fail`
    and exits 2 where the run fails the item (#26's trial: a missing
    database read `would copy`, exit 0). An `always` item is skipped when
    missing, never failed."""
    if it.always:
        return None
    if it.kind == "dump":
        return None if os.path.isdir(app) else f"the app directory {app} is not there: the dump runs in it"
    if it.kind == "sqlite":
        if not os.path.isfile(it.sources[0]):
            return f"not found: {it.sources[0]}"
        # opened read-only: an unreadable database fails its connect (docs/backups.md)
        return None if os.access(it.sources[0], os.R_OK) else f"not readable: {it.sources[0]}"
    missing = [p for p in it.sources if not os.path.exists(p)]
    return f"not found: {', '.join(missing)}" if missing else None


def copy_sqlite(it: Item, dest: str) -> Optional[str]:
    """SQLite's online backup API: a consistent copy while the app writes
    (one step: the copy holds one read transaction), checked with
    PRAGMA integrity_check. The source is opened read-only (mode=ro): never
    created, never written, and readable when only the app may write it; a
    WAL database's reader still needs to write its -shm file."""
    import sqlite3
    from contextlib import closing
    from urllib.parse import quote

    src = it.sources[0]
    error = cannot_copy(it, "")
    if error:
        return error
    try:
        with closing(sqlite3.connect(f"file:{quote(src)}?mode=ro", uri=True, timeout=0)) as s, \
                closing(sqlite3.connect(dest)) as d:
            # the read lock first: held, the one-step copy reads under it
            _read_lock(s)
            s.backup(d)
            check = d.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.OperationalError as exc:
        wal = os.path.exists(f"{src}-wal") or os.path.exists(f"{src}-shm")
        return f"OperationalError: {exc}" + (" (a WAL database's reader must be able to write its -shm file "
                                             "and directory: docs/backups.md)" if wal else "")
    return None if check == "ok" else f"the copy fails PRAGMA integrity_check: {check}"


# How long a SQLite copy waits for its read lock, polling every millisecond.
SQLITE_LOCK_WAIT = 120.0


def _read_lock(conn) -> None:
    """Take a read transaction on `conn` (opened with timeout=0), polling
    every millisecond for up to SQLITE_LOCK_WAIT seconds. A rollback-journal
    database written without pause is locked only while each commit is
    written: backup() alone retries every 250 ms and SQLite's busy handler
    backs off to 100 ms, and both could miss every gap for minutes on a
    loaded machine (a CI run's backup timed out after 30 s); a 1 ms poll
    meets the next gap."""
    import sqlite3

    deadline = time.monotonic() + SQLITE_LOCK_WAIT
    while True:
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.rollback()
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.001)


def copy_dump(it: Item, dest: str, cwd: str, env: Dict[str, str]) -> Optional[str]:
    """The dump command's stdout, run as this (the deploy) user in the app
    directory; a non-zero exit or DUMP_TIMEOUT fails the item, and a
    timeout ends everything the command started. No app directory fails
    the item (the command never runs somewhere else)."""
    error = cannot_copy(it, cwd)
    if error:
        return error
    with open(dest, "wb") as out:
        proc = subprocess.Popen(["/bin/sh", "-c", it.command or ""], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.PIPE, cwd=cwd,
                                env={**os.environ, **env}, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=DUMP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return f"still running after {DUMP_TIMEOUT:g} s: killed"
    if proc.returncode:
        last = (err.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        # a dump's last words may quote its connection URL: masked, since they
        # go to the manifest, the history and the update log (redact.py)
        from ..redact import redacted

        last = redacted("".join(c if c.isprintable() else "?" for c in last))[:200]
        return f"exited {proc.returncode}" + (f": {last}" if last else "")
    return None


def copy_plain(it: Item, dest: str) -> Optional[str]:
    shutil.copyfile(it.sources[0], dest)
    return None


def copy_item(p: BackupPlan, it: Item, into: str, warnings: Optional[List[str]] = None) -> dict:
    """One item, copied into the snapshot directory `into`: its manifest
    entry (what went wrong short of failing it added to `warnings`)."""
    dest, start = os.path.join(into, it.file), time.monotonic()
    entry = it.to_dict()
    if it.always and not os.path.exists(it.sources[0]):
        return {**entry, "ok": True, "skipped": "not there", "size": 0, "sha256": None, "duration": 0.0}
    try:
        if it.kind == "files":
            error = copy_files(it, dest, p.exclude, p.never, warnings)
        elif it.kind == "sqlite":
            error = copy_sqlite(it, dest)
        elif it.kind == "dump":
            error = copy_dump(it, dest, p.app, p.env)
        else:
            error = copy_plain(it, dest)
    except Exception as exc:  # noqa: BLE001 - one item's failure is its own, never the run's
        error = f"{type(exc).__name__}: {exc}"
    there = os.path.isfile(dest)
    entry.update(ok=error is None, error=error, size=os.path.getsize(_private(dest)) if there else 0,
                 sha256=sha256_file(dest) if there else None, duration=round(time.monotonic() - start, 3))
    return entry


def _commit(paths: HostPaths) -> Optional[str]:
    try:
        with open(paths.state, encoding="utf-8") as fh:
            data = json.load(fh)
        return data.get("deployed") if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def run(p: BackupPlan, paths: HostPaths, then: Optional[Callable[[dict], None]] = None) -> dict:
    """Act on the plan: the snapshot and its manifest (write_snapshot),
    `then` (the off-host copy, given the manifest: it copies the snapshots
    retention is about to delete too), then retention (retain). Returns the
    manifest with what retention deleted."""
    manifest = write_snapshot(p, paths)
    if then is not None:
        then(manifest)
    return {**manifest, "snapshot": p.snapshot, "deleted": retain(p, paths, manifest)}


def write_snapshot(p: BackupPlan, paths: HostPaths, swept: Tuple[Sequence[dict], Sequence[str]] = ((), ())) -> dict:
    """The snapshot and its manifest (with what `sweep` removed first, and
    its warnings). An error outside the items (no room for the manifest, a
    directory it may not make) removes this run's partial directory, then
    raises; one this run could not make (another run's, FileExistsError)
    is never touched."""
    old, partial = os.umask(0o077), paths.backup_partial(p.run_id)
    try:
        os.makedirs(paths.backups, mode=0o700, exist_ok=True)
        os.chmod(paths.backups, 0o700)
        os.mkdir(partial, 0o700)
        try:
            return _write(p, paths, partial, swept)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    finally:
        os.umask(old)


def retain(p: BackupPlan, paths: HostPaths, manifest: dict, offsite_has: Iterable[str] = ()) -> List[str]:
    """Retention, when every item is ok: the plan's decision, made once (a
    dry run showed it). While the off-host copy fails, only the snapshots
    already in the repository (`offsite_has`) are deleted: one not yet off
    the host stays for the next run to copy (catch-up), and a dead
    repository does not fill the disk. The run ids deleted (one still
    there is a warning)."""
    deleted: List[str] = []
    if not manifest["ok"]:
        return deleted
    failed, has = bool((manifest.get("offsite") or {}).get("error")), set(offsite_has)
    for run_id in p.delete:
        if failed and run_id not in has:
            continue
        gone = paths.backup_snapshot(run_id)
        shutil.rmtree(gone, ignore_errors=True)
        if os.path.lexists(gone):
            manifest["warnings"].append(f"retention could not delete {gone}: it is still there")
        else:
            deleted.append(run_id)
    return deleted


def _write(p: BackupPlan, paths: HostPaths, partial: str, swept: Tuple[Sequence[dict], Sequence[str]]) -> dict:
    """The items and the manifest into `partial`, renamed to the snapshot."""
    started, warnings = time.time(), list(swept[1])
    entries = [copy_item(p, it, partial, warnings) for it in p.items]
    manifest = {"format": FORMAT, "host": p.host, "run_id": p.run_id, "started": started,
                "ended": time.time(), "commit": _commit(paths), "ok": all(e["ok"] for e in entries),
                "items": entries, "warnings": warnings, **({"undo_of": p.undo_of} if p.undo_of else {}),
                **({"swept": list(swept[0])} if swept[0] else {})}
    with open(_private_new(paths.backup_manifest(partial)), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
    os.rename(partial, p.snapshot)
    return manifest


def _private_new(path: str) -> str:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


# ------------------------------------------------------------------ entry point (the laptop's round trip)


def offsite_would(host: Host) -> List[Would]:
    """A dry run's words for the off-host copy (it reads no repository:
    which earlier snapshots the repository lacks is the run's to find)."""
    if not host.backup.repository:
        return []
    k = host.backup.offsite_keep
    rule = "backup.repository_keep" if host.backup.repository_keep else "retention's rule"
    return [Would("upload", "the snapshot", "restic backup into backup.repository, with any earlier snapshot it "
                  "lacks"),
            Would("forget", "the repository's snapshots", f"restic forget --prune of those {rule} does "
                  f"not keep (daily {k.daily}, weekly {k.weekly}, monthly {k.monthly}; a failed one once an ok "
                  "one is newer)")]


def _warnings(host: Host) -> List[str]:
    return [] if host.backup.repository else [NO_OFF_HOST]


def lower_priority() -> str:
    """This process and what it starts (tar, a dump, restic) at low CPU and
    I/O priority: what it set, for the result."""
    os.setpriority(os.PRIO_PROCESS, 0, max(NICE, os.getpriority(os.PRIO_PROCESS, 0)))
    said = f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    ionice = shutil.which("ionice")
    if ionice and subprocess.run([ionice, "-c", "2", "-n", "7", "-p", str(os.getpid())], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        said += ", ionice best-effort 7"
    return said


def failure(done: dict) -> Optional[str]:
    """Why a run failed, in one line (None when it did not)."""
    bad = [f"{i['name']} ({i.get('error')})" for i in done.get("items") or [] if not i.get("ok")]
    off = done.get("offsite") or {}
    said = ([done["error"]] if done.get("error") else []) + ([f"items FAILED: {', '.join(bad)}"] if bad else []) \
        + ([off["error"]] if off.get("error") else [])
    return "; ".join(said) or None


def notify_once(host: Host, paths: HostPaths, done: dict) -> List[dict]:
    """A failed run notifies once per reason (state.json's backup_notified,
    cleared by a run that is all ok), as a deploy's failure does."""
    import re

    from ..notify import notify
    from .files import read_object
    from .state import merge_state_file

    reason, seen = failure(done), read_object(paths.state).get("backup_notified") or []
    if reason is None:
        if seen:
            merge_state_file(paths.state, {"backup_notified": []})
        return []
    # sizes, times and ports vary run to run, and what ssh adds after restic's verdict may be cut short
    key = re.sub(r"[0-9.]+", "", reason)[:100]
    if key in seen:
        return []
    merge_state_file(paths.state, {"backup_notified": (list(seen) + [key])[-20:]})
    return [d.to_dict() for d in notify(host.name, "backup_failed", reason, home=host.home,
                                        environment=host.environment)]


def locked_run(host: Host, paths: HostPaths, priority: str = "", actor: Optional[str] = None) -> dict:
    """A run (at the low priority main() set: `priority` says which): the local snapshot under the host lock (a
    deploy changes what it copies), then, under the backup lock only (an
    upload may take hours: deploys and health --fix go on), the off-host
    copy when a repository is set and retention; one notification per
    reason when it failed. Each lock is waited for up to LOCK_WAIT; the
    backup lock still held after that (another run's upload) fails this
    run's copy, and its snapshot goes up with the next run."""
    from .lock import HostLock
    from .record import default_actor

    # the actor: the laptop's (the task passes it), else this process's own user (cron's line)
    info = {"actor": actor or default_actor(), "trigger": "backup", "run_id": new_run_id()}
    started = time.monotonic()
    try:
        with HostLock(paths.lock, info).acquire(wait=LOCK_WAIT):
            refused = cut_off(host, paths)
            if refused:  # no snapshot, no retention: a failed run, recorded and notified (exit 5)
                said = {"run_id": info["run_id"], "ok": False, "items": [], "warnings": [], "commit": _commit(paths),
                        "error": refused, "cut_off": True}
                return _finish(host, paths, said, info["actor"], started)
            p = plan(host, paths, run_id=info["run_id"])
            (parts, said), (fetched, also) = sweep(p, paths), sweep_fetches(paths, info)
            manifest = write_snapshot(p, paths, (parts + fetched, said + also))
    except LockedError as exc:  # no snapshot at all: recorded and notified as any failed run, then exit 4
        said = {"run_id": info["run_id"], "ok": False, "items": [], "warnings": [], "commit": _commit(paths),
                "error": f"the host lock is {exc} (waited {LOCK_WAIT:g} s): no snapshot was made"}
        _finish(host, paths, said, info["actor"], started)
        raise
    try:
        with HostLock(paths.backup_lock, info).acquire(wait=LOCK_WAIT):
            done = run_rest(host, paths, p, manifest)
    except LockedError as exc:
        manifest["offsite"] = {"ok": False, "uploaded": [], "pruned": False,
                               "error": f"off-host copy: the backup lock is {exc}: the next run copies this one"}
        done = {**manifest, "snapshot": p.snapshot, "deleted": []}
    done["priority"] = priority
    return _finish(host, paths, done, info["actor"], started)


def _finish(host: Host, paths: HostPaths, done: dict, actor: str, started: float) -> dict:
    """A run's end, whatever it met: one notification per reason, then its
    history record and update-log line (record). Neither can turn the
    run's result into an error: each failure is a warning of the run."""
    try:
        done["notified"] = notify_once(host, paths, done)
    except OSError as exc:  # state.json not writable: the run's result stands
        done["warnings"].append(f"could not record the notification: {exc}")
    try:
        rec = record(host, paths, done, actor, time.monotonic() - started)
    except OSError as exc:  # a full disk: the snapshot and its result stand
        done["warnings"].append(f"could not record this run in the history: {exc.strerror or exc}")
    else:  # counted, and the host's metrics written (docs/metrics.md: a failure is the update log's)
        from .prom import backup_done

        backup_done(host, rec, done.get("items") or [])
    return done


def summary(done: dict) -> str:
    """A run in one line (the history's message, the update log's): why
    it failed, or what it kept where."""
    why = failure(done)
    if why:
        return why
    items = [i for i in done.get("items") or [] if not i.get("skipped")]
    off = done.get("offsite")
    where = "copied off the host" if off and not off.get("error") else "on this host only"
    return f"snapshot {done.get('run_id')}: {len(items)} item{'' if len(items) == 1 else 's'} ok, {where}"


def record(host: Host, paths: HostPaths, done: dict, actor: str, duration: float) -> dict:
    """A run recorded as every run is (docs/backups.md, "Scheduled"): one
    history record (trigger backup, the commit unchanged; result
    backed_up or backup_failed) and one update-log line; the record is
    returned. Whose failure notifies is notify_once's."""
    from .. import errors
    from .record import append_run

    ok = failure(done) is None
    rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ts": time.time(), "run_id": done.get("run_id"),
           "trigger": "backup", "actor": actor, "host": host.name, "from": done.get("commit"),
           "to": done.get("commit"), "result": "backed_up" if ok else "backup_failed",
           # no snapshot was made: locked out (4), or a cut-off restore's data (exit_code: 5)
           "exit_code": errors.LOCKED if done.get("error") and not done.get("cut_off") else exit_code("run", done),
           "message": summary(done), "duration": round(duration, 3),
           "steps": [], "warnings": list(done.get("warnings") or []), "snapshot": done.get("run_id")}
    warning = append_run(host, paths, rec)
    if warning:
        done["warnings"].append(warning)
    return rec


def exit_code(action: str, data: dict) -> int:
    """A run with a failed item, or whose off-host copy failed, is FAILED
    (2): that item, or that snapshot off the host, has no backup (the
    local snapshot is still written). A listing, a plan and an all-ok run
    are OK (no repository configured is a warning line, not a code: cron's
    run must not read as failing). A verify is FAILED unless every check
    it made (local, off-host) is ok. The laptop's task and cron's fast path
    (host/fastpath.py) both exit with it."""
    from .. import errors

    if action == "list":  # the repository's snapshots could not be read
        return errors.FAILED if (data.get("offsite_snapshots") or {}).get("error") else errors.OK
    if action == "restore":  # an item not put back, or a service that failed its gate after
        if (data.get("restore") or {}).get("held"):  # an item not put back holds the services down (kept_down)
            return errors.BROKEN
        return errors.OK if (data.get("restore") or {}).get("ok") else errors.FAILED
    if action == "restore-plan":  # the real restore's code when an item is refused: it is not put back
        items = (data.get("restore_plan") or {}).get("items") or []
        return errors.FAILED if any(i.get("refused") for i in items) else errors.OK
    if action == "plan" and data.get("cut_off"):  # the real run's refusal (cut_off): BROKEN
        return errors.BROKEN
    if action == "plan":  # the real run's code when an item would fail (cannot_copy): that item gets no backup
        return errors.FAILED if any(w.get("action") == "fail" for w in data.get("would") or ()) else errors.OK
    if action == "verify":  # a snapshot that does not match its manifest, or none to check
        checks = [v for v in (data.get("verify") or {}).values() if v]
        return errors.OK if checks and all(v.get("ok") for v in checks) else errors.FAILED
    if action == "run" and data.get("cut_off"):  # refused: a restore cut off putting items back (cut_off)
        return errors.BROKEN
    failed = not data.get("ok") or bool((data.get("offsite") or {}).get("error"))
    return errors.FAILED if action == "run" and failed else errors.OK


def run_rest(host: Host, paths: HostPaths, p: BackupPlan, manifest: dict) -> dict:
    """After the local snapshot (the backup lock held): the off-host copy
    when a repository is set, then retention. The run ids the repository
    has are kept in state.json (backup_offsite) whenever it could be read,
    for the runs that cannot read it."""
    from .files import read_object
    from .restic import offsite
    from .state import merge_state_file

    has: List[str] = []
    if host.backup.repository:
        # the repository's own keep (backup.repository_keep, else keep): it may keep more than the host
        off = manifest["offsite"] = offsite(host, snapshots(paths),
                                            lambda there: to_delete(there, host.backup.offsite_keep,
                                                                    protect=protected(paths)))
        if off.get("has") is None:
            has = list(read_object(paths.state).get("backup_offsite") or [])
        else:
            has = off["has"]
            merge_state_file(paths.state, {"backup_offsite": has[-1000:]})
    return {**manifest, "snapshot": p.snapshot, "deleted": retain(p, paths, manifest, has)}


def verify_local(paths: HostPaths) -> dict:
    """The newest local snapshot's files against its manifest's sha256."""
    from .restic import check_files, checked

    snaps = snapshots(paths)
    if not snaps:
        return {"ok": False, "run_id": None, "items": 0, "bad": [], "error": "no local snapshot to verify"}
    with open(paths.backup_manifest(snaps[0].path), encoding="utf-8") as fh:
        manifest = json.load(fh)
    bad = check_files(snaps[0].path, manifest)
    return {"ok": not bad, "run_id": snaps[0].run_id, "items": checked(manifest), "bad": bad, "error": None}


def verified(host: Host, paths: HostPaths) -> dict:
    """`verify`'s answer: the local check, and the repository's (restic
    check and a restore compared) when one is set (at the low priority
    main() set)."""
    from .restic import verify

    out = {"local": verify_local(paths)}
    if host.backup.repository:
        os.makedirs(paths.backups, mode=0o700, exist_ok=True)
        out["offsite"] = verify(host, paths.backups)
    return {"verify": out, "warnings": _warnings(host)}


def result(action: str, host: Host, paths: HostPaths, priority: str = "", actor: Optional[str] = None) -> dict:
    """What `action` (plan, run, list, verify) answers, as one JSON object
    (`actor`: who runs a run, as the laptop says it)."""
    now = time.time()
    if action == "list":
        from .restic import listing

        local = snapshots(paths)
        off = {"offsite_snapshots": listing(host, now, {s.run_id: s.size for s in local})} \
            if host.backup.repository else {}
        said = _warnings(host) if local or host.backup.repository else [NO_REPOSITORY]
        return {"snapshots": [s.to_dict(now) for s in local], **off, "warnings": said}
    if action == "verify":
        return verified(host, paths)
    if action == "plan":
        from .lock import peek_holder

        p = plan(host, paths, run_id=DRY_RUN_ID, now=now)
        # the locks' holders, read without taking them (as restore-plan does): the real run waits for the host lock
        held = {name: h for name, h in (("the host lock", peek_holder(paths.lock)),
                                        ("the backup lock", peek_holder(paths.backup_lock))) if h}
        refused = cut_off(host, paths)  # the run's refusal (locked_run), said as reset's dry run says its own
        would = [Would("stop", "-", refused)] if refused else \
            p.would(bool(host.backup.repository), held) + offsite_would(host)
        return {**p.to_dict(), "would": [w.to_dict() for w in would], **({"cut_off": True} if refused else {}),
                "warnings": _warnings(host)}
    done = locked_run(host, paths, priority, actor)
    return {**done, "warnings": done["warnings"] + _warnings(host)}


def restored(host: Host, paths: HostPaths, action: str, args: List[str]) -> dict:
    """`restore RUN_ID ONLY DIR [ACTOR]` (empty: none; ACTOR: the laptop's): host/restore.py, saving what
    is there first with a run that deletes nothing; `restore-plan RUN_ID
    ONLY DIR` (no ACTOR: main refuses one): that restore's plan, rendered (its dry run: nothing is
    written). At normal priority: a restore is wanted now, and the services
    it starts (process manager) would inherit a lowered one."""
    from dataclasses import replace

    from . import restore as r

    said = r.Saving.of(paths.backup_snapshot(DRY_RUN_ID), items(host, paths))
    if action == "restore-plan":
        return r.planned(host, paths, args[0], args[1] or None, args[2] or None, said, LOCK_WAIT)
    # the save's plan (its run id, the snapshots there) is made when the save runs: under both locks, after the stop
    return r.restore(host, paths, args[0], args[1] or None, args[2] or None,
                     lambda: run(replace(plan(host, paths), delete=(), undo_of=args[0]), paths), LOCK_WAIT, said,
                     args[3] if len(args) == 4 else None)


def main(argv: Optional[List[str]] = None) -> int:
    """`python -I -m fabops.host.backup plan|run|list|verify|restore|restore-plan`, host.yml on stdin."""
    from ..errors import FabopsError
    from ..inventory import loads

    argv = sys.argv[1:] if argv is None else argv
    restoring = argv[0] if argv and argv[0] in ("restore", "restore-plan") else None
    if not (len(argv) == 1 and argv[0] in ("plan", "run", "list", "verify") or len(argv) == 2 and argv[0] == "run"
            or len(argv) == 4 and restoring or len(argv) == 5 and restoring == "restore"):
        sys.stderr.write("usage: python -m fabops.host.backup plan|run [ACTOR]|list|verify < host.yml\n"
                         "       python -m fabops.host.backup restore RUN_ID ONLY|'' DIR|'' [ACTOR] < host.yml\n"
                         "       python -m fabops.host.backup restore-plan RUN_ID ONLY|'' DIR|'' < host.yml\n")
        return 64
    try:
        inv = loads(sys.stdin.read(), "host.yml")
        (host,) = inv.select(None)
    except (FabopsError, ValueError) as exc:  # ValueError: host.yml with no host, or more than one
        sys.stderr.write(f"fabops: host.yml: {exc}\n")
        return 78  # CONFIG (docs/errors.md)
    from ..errors import UsageError
    from ..paths import check_run_id
    from .restore import RestoreError, RestoreFailed

    try:
        paths = HostPaths.for_home(host.home)
        if restoring:
            check_run_id(argv[1], "backup --restore")  # a file name under backups/, never a path (`../x`)
        # the process lowers its own priority, here and not in the library
        # functions: a caller that runs them in process (a test, the agent)
        # would be left at nice 19 for good
        priority = lower_priority() if argv[0] in ("run", "verify") else ""
        answer = restored(host, paths, restoring, argv[1:]) if restoring else \
            result(argv[0], host, paths, priority, argv[1] if len(argv) == 2 else None)
    except RestoreFailed as exc:  # what it names could not be read (a dump timed out): nothing was touched
        sys.stderr.write(f"fabops: backup --restore failed on the host: {exc}\n")
        return 2  # FAILED (docs/errors.md)
    except (RestoreError, UsageError) as exc:  # no such snapshot or item, not a run id: nothing was touched
        sys.stderr.write(f"fabops: backup --restore: {exc}\n")
        return 64  # USAGE (docs/errors.md)
    except LockedError as exc:  # a deploy (or another backup) held the lock for all of LOCK_WAIT
        sys.stderr.write(f"fabops: backup {argv[0]}: {exc} (waited {LOCK_WAIT:g} s)\n")
        return 4  # LOCKED (docs/errors.md)
    except OSError as exc:  # outside any item: no room, no permission; its partial directory is gone
        sys.stderr.write(f"fabops: backup {argv[0]} failed on the host: {exc}\n")
        return 2  # FAILED (docs/errors.md)
    except KeyboardInterrupt:  # a restore's Ctrl-C or SIGTERM before its first stop (restore.Deferred)
        if not restoring:
            raise
        into = argv[3] if restoring == "restore" else ""  # --to DIR: what it wrote there so far stays
        sys.stderr.write(f"{INTERRUPTED_BEFORE}" + (f" in place ({into} may hold part of the items)" if into else "")
                         + "\n")
        return 130  # INTERRUPTED (docs/errors.md)
    json.dump(answer, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
