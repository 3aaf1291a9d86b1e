"""Restoring a backup snapshot, on the host (docs/backups.md, "Restore").

Decide once, then act (docs/architecture.md, "Plans"): a restore reads the
snapshot (its manifest, and each files.tar's members), `decide` turns that
into a RestorePlan (what is stopped, what is saved first, where each item
goes, what is left alone and what is refused), the real run acts on it
and `backup --restore RUN_ID --dry-run` renders it (RestorePlan.would),
reading the snapshot without writing anything.

`--to DIR` puts the chosen items beside the live data for inspection:
files.tar unpacked under DIR (each path as it was archived: absolute,
without the leading /), every other item as its file. Nothing is stopped.

In place (the default): under the host lock, the host's services are
stopped, what is there now is saved (a local snapshot of its own, which
retention does not touch in that run; a save that failed for an item the
restore overwrites, other than for its absence, refuses the restore and
starts the services again), the items are put back (the files'
listed paths replaced by the archived trees, a SQLite database replaced
whole with its -wal and -shm removed, the .env replaced 0600), the services
are started and each must pass its readiness gate. An item is put back
in place only where the host's backup settings put it now: a snapshot's
manifest (from a repository, not trusted) does not choose where a restore
writes. A dump's output and
fabops' own state are never put back in place: a dump is loaded with its
database's own tool, and state.json belongs to the deploys (`--to DIR`
gives both). A snapshot that is not on the host is fetched from the
repository (restic restore into a temporary directory, removed after); its
dry run reads the manifest and the tar with `restic dump` instead.

Standard library only (and the host's siblings); Python 3.9.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Callable, Dict, List, Optional, Sequence, Tuple

from ..inventory import Host
from ..paths import HostPaths
from .report import item_label
from .would import Would, as_json

IN_PLACE = ("files", "sqlite", "env")  # the kinds put back in place; dumps and state only with --to
# why an item of another kind is skipped in place: its own reason (a trial
# read a dump's reason on state.json)
NOT_IN_PLACE = {"dump": "not put back in place: a dump is loaded with its database's own tool (--to DIR gives "
                        "the file)",
                "state": "not put back in place: fabops' state belongs to the deploys (--to DIR gives the file)"}


class RestoreError(Exception):
    """A restore that cannot start (no such snapshot, no such item): the
    person's words name nothing there (USAGE, 64)."""


class RestoreFailed(RestoreError):
    """A restore that could not read what it names (the repository out of
    reach, a dump that timed out or failed, a manifest that is not one):
    the host's failure, not the person's words (FAILED, 2). Nothing was
    touched either way."""


# ------------------------------------------------------------------ finding the snapshot


def in_repository(host: Host, run_id: str) -> dict:
    """The repository's snapshot of run `run_id` (restic's object), for a
    snapshot no longer on the host."""
    from . import restic

    repo = host.backup.repository
    if repo is None:
        raise RestoreError(f"no snapshot {run_id} on the host, and no repository: `backup --list` shows them")
    try:
        restic.ready(repo)
        snaps = json.loads(restic.call(repo, "snapshots", "--json", "--host", host.name, timeout=600) or "[]")
    except (restic.ResticError, ValueError) as exc:
        raise RestoreFailed(f"snapshot {run_id} is not on the host, and the repository: {exc}") from None
    found = [s for s in snaps if restic.run_tag(s) == run_id]
    if not found:
        raise RestoreError(f"no snapshot {run_id} on the host or in the repository: `backup --list` shows them")
    return found[0]


def _inner(snap: dict) -> str:
    """The snapshot directory's path inside a repository snapshot."""
    return "/" + str(snap["paths"][0]).lstrip("/")


def _offsite(snap: dict) -> str:
    from .restic import short_id

    return f"off-host {short_id(snap.get('short_id') or snap.get('id', ''))}"


def source_dir(host: Host, paths: HostPaths, run_id: str) -> Tuple[str, Optional[str], str]:
    """The snapshot's directory, the temporary directory to remove after
    (a snapshot fetched from the repository) and where it came from."""
    from . import restic

    local = paths.backup_snapshot(run_id)
    if os.path.isfile(paths.backup_manifest(local)):
        return local, None, "local"
    snap = in_repository(host, run_id)
    os.makedirs(paths.backups, mode=0o700, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".restore-", dir=paths.backups)
    try:
        restic.call(host.backup.repository, "restore", str(snap["id"]), "--target", tmp)
    except restic.ResticError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RestoreFailed(str(exc)) from None
    except BaseException:  # a Ctrl-C or SIGTERM while it fetches (Deferred ends the restore): no temp dir left
        # (a SIGKILL, the OOM killer or a power loss leaves it: the next
        # backup run removes it under the backup lock, backup.sweep_fetches)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(tmp, _inner(snap).lstrip("/")), tmp, _offsite(snap)


def chosen(manifest: object, only: Optional[str]) -> List[dict]:
    """The manifest's items a restore puts back: those with a file in the
    snapshot, or the one `only` names (by name or file). A manifest that is
    not an object with a list of item objects is RestoreError (an item's
    own bad fields refuse that item: _malformed)."""
    listed = manifest.get("items") if isinstance(manifest, dict) else None
    if not isinstance(listed, list) or not all(isinstance(i, dict) for i in listed):
        raise RestoreFailed("the snapshot's manifest.json is not a fabops manifest (no list of items): nothing "
                           "was touched")
    items = [i for i in listed if not i.get("skipped") and i.get("sha256")]
    if only:
        items = [i for i in items if only in (i.get("name"), i.get("file"))]
        if not items:
            # as the restore's rows name them (`state (state.json)`):
            # --only takes either
            names = ", ".join(item_label(i) for i in manifest.get("items") or [] if not i.get("skipped"))
            raise RestoreError(f"the snapshot has no item {only!r}: it has {names}")
    return items


# ------------------------------------------------------------------ what a tar may write


def _unsafe(m: tarfile.TarInfo, links: List[str]) -> Optional[str]:
    """Why a member must not be written (None: it may): a path out of its
    tree, one beneath a symlink member (it would be written through the
    link), a hard link out of the tree, a device or a fifo. A symlink
    itself, absolute or not, is data: it is put back as it was."""
    parts = m.name.split("/")
    if m.name.startswith("/") or ".." in parts:
        return "a path outside its tree"
    if any(m.name.startswith(link + "/") for link in links):
        return "beneath a symlink in the archive"
    if m.islnk() and (m.linkname.startswith("/") or ".." in m.linkname.split("/")):
        return "a hard link outside its tree"
    if m.ischr() or m.isblk() or m.isfifo():
        return "a device or a fifo"
    return None


def member_problem(members: Sequence[tarfile.TarInfo]) -> Optional[str]:
    """The first member a restore must not write, as `member NAME is WHY`
    (None: every member may be written). The one check of the members: the
    plan refuses the item with it, and the act's safe_members raises it."""
    links: List[str] = []
    for m in members:
        why = _unsafe(m, links)
        if why:
            return f"member {m.name!r} is {why}"
        if m.issym():
            links.append(m.name.rstrip("/"))
    return None


def safe_members(tar: tarfile.TarFile) -> List[tarfile.TarInfo]:
    """Every member, or TarError naming the first one a restore must not
    write (before anything is written: a snapshot from a repository is
    not trusted to stay under the paths it lists)."""
    members = tar.getmembers()
    problem = member_problem(members)
    if problem:
        raise tarfile.TarError(f"files.tar {problem}: nothing of it was put back")
    return members


def read_tar(fh: IO[bytes], mode: str = "r") -> Tuple[Tuple[str, ...], Optional[str]]:
    """A tar's member names and its member_problem (or why it cannot be
    read); `mode` "r|" reads a stream (restic dump's stdout)."""
    try:
        with tarfile.open(fileobj=fh, mode=mode) as tar:
            members = list(tar)
    except (tarfile.TarError, OSError, EOFError) as exc:
        return (), f"cannot be read as a tar ({type(exc).__name__}: {exc})"
    return tuple(m.name for m in members), member_problem(members)


# ------------------------------------------------------------------ the facts and the plan


@dataclass(frozen=True)
class Found:
    """A snapshot as a restore reads it before deciding: where it is, the
    items chosen from its manifest, each files item's tar (member names
    and the first member that must not be written) and each listed path as
    an in-place restore replaces it (a link's target)."""

    run_id: str
    where: str  # local, or off-host <restic short id>
    path: str  # the snapshot's directory on the host, or in the repository snapshot
    items: Tuple[dict, ...]
    tars: Dict[str, Tuple[Tuple[str, ...], Optional[str]]]
    roots: Dict[str, str]


def _malformed(i: dict) -> Optional[str]:
    """Why a manifest item cannot be read as one (None: it can): its file
    must be a plain name in the snapshot (never a path out of it), its
    sources a list of paths."""
    file, sources = i.get("file"), i.get("sources")
    if not isinstance(file, str) or file in ("", ".", "..") or "/" in file or "\0" in file:
        return f"its manifest entry names no plain file ({file!r})"
    if not isinstance(i.get("name"), str) or not isinstance(i.get("kind"), str):
        return "its manifest entry has no name or kind"
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        return f"its manifest entry's sources are not a list of paths ({sources!r})"
    if i["kind"] != "dump" and not sources:
        return "its manifest entry lists no source"
    return None


def _roots(items: Sequence[dict]) -> Dict[str, str]:
    return {src: os.path.realpath(src) if os.path.lexists(src) else src
            for i in items if i.get("kind") == "files" and not _malformed(i) for src in i["sources"]}


def found_in(snap: str, run_id: str, where: str, only: Optional[str]) -> Found:
    """The facts of a snapshot directory on the host (a local snapshot, or
    one fetched from the repository): read only."""
    try:
        with open(os.path.join(snap, "manifest.json"), encoding="utf-8") as fh:
            items = chosen(json.load(fh), only)
    except ValueError as exc:
        raise RestoreFailed(f"snapshot {run_id}'s manifest.json cannot be read as JSON ({exc}): nothing was "
                           "touched") from None
    tars = {}
    for i in items:
        if i.get("kind") == "files" and not _malformed(i):
            try:
                with open(os.path.join(snap, str(i["file"])), "rb") as fh:
                    tars[str(i["file"])] = read_tar(fh)
            except OSError as exc:
                tars[str(i["file"])] = (), f"cannot be read ({exc.strerror or exc})"
    return Found(run_id, where, snap, tuple(items), tars, _roots(items))


def _end(proc: subprocess.Popen, ended: List[bool]) -> None:
    ended.append(True)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _dumped(repo, snap_id: str, path: str, read: Callable[[IO[bytes]], object], timeout: Optional[float] = None):
    """`read` of one file of a repository snapshot, as `restic dump`
    streams it: nothing is written on the host. What `read` leaves (all of
    a tar that failed early: it may be gigabytes) is drained in chunks to
    nowhere, never held, so restic ends. restic is ended (with its
    children) after `timeout` (restic.OFFSITE_TIMEOUT, docs/backups.md:
    each restic command is ended after four hours): RestoreError. restic's
    words are not passed on (the snapshots call before it reached the
    repository)."""
    import threading

    from . import restic

    timeout = restic.OFFSITE_TIMEOUT if timeout is None else timeout
    proc = subprocess.Popen(restic.restic_argv(repo, "dump", snap_id, path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=restic.restic_env(repo),
                            start_new_session=True)
    ended: List[bool] = []
    timer = threading.Timer(timeout, _end, (proc, ended))
    timer.daemon = True
    timer.start()
    try:
        got = read(proc.stdout)
        while proc.stdout.read(1 << 16):  # the rest, to nowhere, so restic ends
            pass
    finally:
        proc.stdout.close()
        code = proc.wait()
        timer.cancel()
    what = f"{path} of the repository's snapshot {restic.short_id(snap_id)}"
    if ended and code:  # ended by the timer, not by itself just before it fired
        raise RestoreFailed(f"restic dump of {what} still running after {timeout:g} s: ended, nothing was touched")
    if code:
        raise RestoreFailed(f"{what} could not be read (restic dump exited {code})")
    return got


def found_off_host(host: Host, run_id: str, only: Optional[str]) -> Found:
    """The facts of a snapshot that is only in the repository, read with
    `restic dump` (the manifest, then each chosen files.tar streamed): the
    real restore fetches it into a temporary directory, this writes
    nothing."""
    snap = in_repository(host, run_id)
    repo, inner, sid = host.backup.repository, _inner(snap), str(snap["id"])
    try:
        manifest = json.loads(_dumped(repo, sid, f"{inner}/manifest.json", lambda fh: fh.read()))
    except ValueError as exc:
        raise RestoreFailed(f"snapshot {run_id}'s manifest.json in the repository cannot be read as JSON ({exc}): "
                           "nothing was touched") from None
    items = chosen(manifest, only)
    tars = {str(i["file"]): _dumped(repo, sid, f"{inner}/{i['file']}", lambda fh: read_tar(fh, "r|"))
            for i in items if i.get("kind") == "files" and not _malformed(i)}
    return Found(run_id, _offsite(snap), inner, tuple(items), tars, _roots(items))


def look(host: Host, paths: HostPaths, run_id: str, only: Optional[str]) -> Found:
    """The facts, read without writing anything (the dry run's)."""
    local = paths.backup_snapshot(run_id)
    if os.path.isfile(paths.backup_manifest(local)):
        return found_in(local, run_id, "local", only)
    return found_off_host(host, run_id, only)


@dataclass(frozen=True)
class Saving:
    """What an in-place restore saves first, from host/backup's items now:
    the snapshot directory the save writes (named with backup.DRY_RUN_ID:
    its run id is made when the save runs, after the stop) and each item
    it copies, by name: its kind, file and sources. An item is put back in
    place only where the save has just copied it from (decide), so the save
    undoes the restore and a snapshot's manifest does not choose where a
    restore writes."""

    snapshot: str
    items: Dict[str, Tuple[str, str, Tuple[str, ...]]]

    @classmethod
    def of(cls, snapshot: str, items: Sequence) -> "Saving":
        """From host/backup.items (name, kind, file, sources each)."""
        return cls(snapshot, {it.name: (it.kind, it.file, tuple(it.sources)) for it in items})

    @property
    def files(self) -> Tuple[str, ...]:
        return tuple(file for _, file, _ in self.items.values())


@dataclass(frozen=True)
class RestorePlan:
    """What a restore does, decided once from Found. Each item: `put`, the
    [archived path or file, destination] pairs it writes; `left`, listed
    paths files.tar does not hold (not touched); `skipped` (not put back
    in place) or `refused` (a member check, a malformed manifest entry, or
    destinations the host's backup settings do not list now: nothing of it
    is written)."""

    run_id: str
    where: str
    path: str
    to: Optional[str]  # None: in place
    items: Tuple[dict, ...]
    services: Tuple[str, ...]  # stopped, then started in this order (in place)
    save: Optional[Saving]  # in place

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "from": self.where, "snapshot": self.path, "to": self.to,
                "stop": list(self.services), "save": self.save.snapshot if self.save else None,
                "items": [{k: i[k] for k in ("name", "file", "kind", "put", "left", "skipped", "refused")}
                          for i in self.items]}

    @property
    def refused(self) -> List[str]:
        return [f"{i['file']} {i['refused']}" for i in self.items if i["refused"]]

    def would(self, backups: str, held: Dict[str, dict], lock_wait: float,
              found: Optional[dict] = None) -> List[Would]:
        """The plan's steps in the order the real run takes them: the
        dry run's `would`. `held`: the locks held now, by name. `found`:
        state.json's in_progress now, which an in-place restore takes over
        or keeps (Underway) once it holds the host lock."""
        from .lock import describe_holder

        snap = f"snapshot {self.run_id}"
        wait = {name: Would("wait for", name, f"held by {describe_holder(h)}: the restore waits up to {lock_wait:g} s "
                            "for it, then stops (exit 4)") for name, h in held.items()}
        out = [Would("restore", snap, f"from the {self.where} snapshot "
                     + ("in place" if self.to is None else f"into {self.to}: nothing is stopped"))]
        out += [wait["the backup lock"]] if "the backup lock" in wait else []
        if self.where != "local":
            out.append(Would("fetch", snap, f"restic restore into a temporary directory under {backups}, removed "
                             "after"))
        out += [wait["the host lock"]] if "the host lock" in wait else []
        out += self._marked(found if "the host lock" not in held else None)
        out += [Would("stop", name, "nothing writes while the snapshot is put back") for name in self.services]
        if self.save:
            out.append(Would("save", self.save.snapshot, f"what is there now ({', '.join(self.save.files)}), after "
                             "the stop: restoring it undoes this restore. If saving an item that is put back fails "
                             "(but for its absence), nothing is put back and the services start again"))
        for i in self.items:
            out += _item_would(i, snap, self.to)
        out += [Would("start", name, "then its readiness gate") for name in self.services]
        if self.to is None:
            out.append(Would("record", "history.jsonl", "the restore (trigger restore); a failed one notifies"))
            out.append(Would("log", "update log", "its line, as every run's (RESTORED, or RESTORE_FAILED and why)"))
        return out

    def _marked(self, found: Optional[dict]) -> List[Would]:
        """In place: the state.json mark Underway writes before the stop
        (docs/backups.md, "A restore cut off in the middle"), and what it
        does with an interrupted run's mark `found` (None: none, or the
        host lock's live holder's, which the restore waits for)."""
        if self.to is not None:
            return []
        mark = Would("record", "state.json", "in_progress: this restore (trigger restore), its step moved on as it "
                                             "goes (stop, save, put back, start), cleared once the services are "
                                             "started again")
        if not isinstance(found, dict) or not found:
            return [mark]
        run, cut = f"run {found.get('run_id')}", f"interrupted at step {found.get('step')}"
        if found.get("trigger") == "restore":  # the real run's warning: `taking over from an interrupted run …`
            return [Would("take over", run, f"a restore {cut}: this restore starts the services again"), mark]
        return [Would("keep", run, f"a {found.get('trigger')} {cut}: its mark put back when the restore ends, "
                                   "for the next deploy or local-update to finish it"), mark]


def _item_would(i: dict, snap: str, into: Optional[str]) -> List[Would]:
    """One planned item's writes (or why there are none)."""
    if i["skipped"]:
        return [Would("skip", item_label(i), i["skipped"])]
    if i["refused"]:  # named as the real restore's row names it (`files (files.tar)`)
        return [Would("refuse", item_label(i), f"{i['refused']}: nothing of it would be put back")]
    if i["kind"] == "files":
        out = [Would("write", dest, f"{src} as files.tar of {snap} holds it") if into is not None
               else Would("replace", dest, f"with its tree from files.tar of {snap}"
                          + ("" if dest == src else f" ({src} is a link to it)"))
               for src, dest in i["put"]]
        return out + [Would("leave", src, "files.tar does not hold it") for src in i["left"]]
    if into is not None:
        return [Would("write", dest, f"{src} of {snap} (0600)") for src, dest in i["put"]]
    how = {"env": "0600", "sqlite": "its mode kept; its -wal and -shm removed first"}.get(i["kind"], "its mode kept")
    return [Would("replace", dest, f"with {src} of {snap}, whole ({how})") for src, dest in i["put"]]


def _not_listed(item: dict, now: Optional[Tuple[str, str, Tuple[str, ...]]]) -> Optional[str]:
    """Why an item may not be put back in place (None: it may): its
    destinations come from the snapshot's manifest, which a repository's
    snapshot does not vouch for, so they must be what the host's backup
    settings list for that item name now (kind, file and sources). A
    files item may hold fewer paths than the list has now (a path added to
    `backup.files` since): each is still one the host names, and the save
    copies them all first."""
    if now == (item["kind"], item["file"], tuple(item["sources"])):
        return None
    if now and item["kind"] == "files" and now[:2] == (item["kind"], item["file"]) \
            and set(item["sources"]) <= set(now[2]):
        return None
    said = ", ".join(item["sources"]) or "none"
    return (f"its paths in the snapshot ({said}) are not what the host's backup settings list for "
            f"{item['name']} now ({', '.join(now[2]) if now else 'no such item'}): a snapshot does not choose "
            "where a restore writes (--to DIR gives its files)")


def _decide_item(i: dict, found: Found, into: Optional[str],
                 listed: Dict[str, Tuple[str, str, Tuple[str, ...]]]) -> dict:
    bad = _malformed(i)
    item = {"name": i.get("name"), "file": str(i.get("file")), "kind": i.get("kind"),
            "sources": [] if bad else list(i["sources"]), "put": [], "left": [], "skipped": None, "refused": bad}
    if bad:
        return item
    if into is None and item["kind"] not in IN_PLACE:
        item["skipped"] = NOT_IN_PLACE.get(item["kind"], "not put back in place (--to DIR gives the file)")
    elif into is None and (why := _not_listed(item, listed.get(item["name"]))):
        item["refused"] = why
    elif item["kind"] == "files":
        names, item["refused"] = found.tars[item["file"]]
        for src in [] if item["refused"] else item["sources"]:
            arc = src.lstrip("/")
            if any(n == arc or n.startswith(arc + "/") for n in names):
                item["put"].append([src, os.path.join(into, arc) if into is not None else found.roots[src]])
            else:
                item["left"].append(src)
    else:
        item["put"].append([item["file"], os.path.join(into, item["file"]) if into is not None
                            else item["sources"][0]])
    return item


def decide(host: Host, found: Found, into: Optional[str], save: Optional[Saving]) -> RestorePlan:
    """Pure: the plan for the facts found. In place, every service is
    stopped and started, `save` says what is saved first, and an item is
    put back only where `save` copies it from (the host's backup settings
    now; without one, nothing is put back in place)."""
    listed = save.items if save is not None and into is None else {}
    items = tuple(_decide_item(i, found, into, listed) for i in found.items)
    here = into is None
    return RestorePlan(found.run_id, found.where, found.path, into, items,
                       tuple(s.name for s in host.services) if here else (), save if here else None)


def _into(into: Optional[str]) -> Optional[str]:
    return None if into is None else os.path.abspath(os.path.expanduser(into))


def planned(host: Host, paths: HostPaths, run_id: str, only: Optional[str], into: Optional[str],
            save: Optional[Saving], lock_wait: float) -> dict:
    """`backup --restore RUN_ID --dry-run`: the snapshot read (never
    fetched), the plan decided as the real restore decides it, and the
    locks' holders read without taking them. Writes nothing."""
    from .files import read_object
    from .lock import peek_holder

    into = _into(into)
    p = decide(host, look(host, paths, run_id, only), into, save)
    locks = {"the backup lock": paths.backup_lock, **({"the host lock": paths.lock} if into is None else {})}
    held = {name: h for name, h in ((n, peek_holder(path)) for n, path in locks.items()) if h}
    found = read_object(paths.state).get("in_progress")
    return {"restore_plan": p.to_dict(), "would": as_json(p.would(paths.backups, held, lock_wait, found)),
            "warnings": []}


# ------------------------------------------------------------------ acting on the plan


# Python's own extraction filter where it has one (3.12, and late 3.9-3.11
# patch releases): "tar", not 3.14's default "data", which refuses the
# absolute symlinks an app's data may hold; safe_members checks the rest
_FILTER = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}


def unpack(tar_path: str, item: dict, into: Optional[str]) -> None:
    """files.tar into `into` (as archived), or in place: each planned path
    (a listed symlink's target) replaced by its archived tree. The members
    are checked again as they are read (safe_members)."""
    with tarfile.open(tar_path) as tar:
        members = safe_members(tar)
        if into is not None:
            tar.extractall(into, members=members, **_FILTER)
            return
        for src, root in item.get("put") or []:
            arc = src.lstrip("/")
            mine = [m for m in members if m.name == arc or m.name.startswith(arc + "/")]
            if not mine:  # the plan found them: a tar that changed since is left alone
                continue
            if os.path.isdir(root) and not os.path.islink(root):
                shutil.rmtree(root)
            elif os.path.lexists(root):
                os.unlink(root)
            for m in mine:
                m.name = (root + m.name[len(arc):]).lstrip("/")
                tar.extract(m, "/", **_FILTER)


def put(src: str, dest: str, mode: Optional[int] = None) -> None:
    """A file replaced whole: a new temporary beside it (a random name,
    O_EXCL|O_NOFOLLOW: never a file or link already there, and 0600 from
    its first byte), written, fsynced, given its mode (`mode`, else the
    destination's, else 0600) and renamed over it."""
    import secrets
    import stat

    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(dest).st_mode)
        except FileNotFoundError:
            mode = 0o600
    tmp = f"{dest}.fabops-restore-{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def put_item(snap: str, item: dict, into: Optional[str]) -> Optional[str]:
    """One planned item put back; why it was not (None when it was)."""
    if item.get("skipped"):
        return item["skipped"]
    src = os.path.join(snap, str(item["file"]))
    if item.get("kind") == "files":
        unpack(src, item, into)
        return None
    for _, dest in item["put"]:
        if into is not None:
            put(src, dest, 0o600)
            continue
        if item.get("kind") == "sqlite":  # a stale WAL beside the restored database would corrupt it
            for side in ("-wal", "-shm"):
                if os.path.lexists(dest + side):
                    os.unlink(dest + side)
        put(src, dest, 0o600 if item.get("kind") == "env" else None)
    return None


def put_back(snap: str, items: Sequence[dict], into: Optional[str]) -> List[dict]:
    out = []
    for item in items:
        if item.get("refused"):  # the plan's refusal (decide): nothing of it is written
            skipped, error = None, f"{item['file']} {item['refused']}: nothing of it was put back"
        else:
            try:
                skipped, error = put_item(snap, item, into), None
            except (OSError, tarfile.TarError) as exc:
                skipped, error = None, f"{type(exc).__name__}: {exc}"
        # where it went: with --to the paths under DIR mirror the sources' (a new-user trial read `files.tar ok`
        # and looked for it at DIR's top), so the result names each path written (docs/backups.md, "Restore")
        put = [dest for _, dest in item.get("put") or ()] if error is None and skipped is None else []
        out.append({"name": item.get("name"), "file": item.get("file"), "ok": error is None,
                    "skipped": skipped, "error": error, "put": put})
    return out


def service_manager(host: Host):
    """The host's services, driven from the host itself (as cron's health does)."""
    from ..target import Target
    from .localrun import LocalContext
    from .services import ServiceManager

    t = Target.of(LocalContext(host.env), host)
    return ServiceManager(t, host, home=t.paths.home, app_path=t.local_path(host.app.path))


def start_all(manager, host: Host, names: Sequence[str]) -> List[dict]:
    """Start each named service and run its readiness gate: each one's verdict."""
    from .readiness import wait_ready

    out = []
    for svc in (host.service(name) for name in names):
        try:
            manager.start(svc)
            ready = wait_ready(manager, svc)
            out.append({"service": svc.name, "ok": ready.ok, "message": ready.message})
        except Exception as exc:  # noqa: BLE001 - a start that fails is that service's result
            out.append({"service": svc.name, "ok": False, "message": f"{type(exc).__name__}: {exc}"})
    return out


def save_refused(saved: dict, items: Sequence[dict]) -> Optional[str]:
    """Why a restore must not go on after saving what is there (None: it may):
    an item it would overwrite whose save failed, for a reason other than
    there being nothing to save (a deleted data directory is what a restore
    is for), could not be given back by that snapshot."""
    overwritten = {i.get("name") for i in items if i.get("kind") in IN_PLACE and not i.get("refused")}
    bad = [f"{i.get('name')} ({i.get('error')})" for i in saved.get("items") or [] if not i.get("ok")
           and i.get("name") in overwritten and not str(i.get("error") or "").startswith("not found:")]
    if not bad:
        return None
    return (f"nothing was put back: saving what was there first failed ({', '.join(bad)}), so "
            f"snapshot {saved.get('run_id')} could not undo this restore")


class Underway:
    """An in-place restore's `in_progress` in state.json, as a deploy's
    (docs/architecture.md, "The pipeline"; its run id the host lock's holder's):
    written before the first destructive step (the stop), its step moved
    on as the restore goes (stop, save, put back, start), cleared once the
    services were started again. A restore cut off between (the host
    process killed, the host down) leaves it: status and monitor show the
    run interrupted at its step, and the next run (a deploy or
    local-update finishes it as any interrupted run; a restore takes it
    over) proceeds. Under the host lock an `in_progress` found is stale (no
    live run's): a restore's is taken over, any other run's (a deploy's) is
    kept and put back at the end, so the run that finishes it still does.
    A SIGHUP (the ssh link of a terminal session dropping) does not end the
    restore meanwhile: it goes on to start the services, as a deploy's
    detached run does; a handler, not SIG_IGN, so the services started
    do not inherit it."""

    def __init__(self, paths: HostPaths, run_id: str, host: str = "HOST"):
        self.paths, self.run_id, self.host = paths, run_id, host
        self.kept: Optional[dict] = None  # another run's interrupted marker, put back at the end
        self.took_over: Optional[dict] = None  # the interrupted marker found
        self._hup: Optional[tuple] = None  # (the SIGHUP handler before) while ours is set
        self.held = False  # a cut-off restore's hold stands (__enter__), until this run's put back is done

    def __enter__(self) -> "Underway":
        from .files import read_object
        from .plan import restore_cut_off, restore_cut_off_text
        from .state import merge_state_file

        state = read_object(self.paths.state)
        found = state.get("in_progress") if isinstance(state.get("in_progress"), dict) else None
        self.took_over = found
        self.kept = (found.get("kept") if found.get("trigger") == "restore" else found) if found else None
        commit = state.get("deployed")
        # the snapshots retention keeps while this mark stands (host/backup.protected): a restore's it
        # takes over, and the save that restore made of what was there before it
        protect = [*(found.get("protect") or []), found.get("run_id")] if found and found.get("trigger") == "restore" \
            else []
        # a cut-off restore's hold standing: the data is half put back until this run's own put back is
        # done, so its mark says `restore: put back` from the first (killed while it stops or saves, it
        # is still cut off: the planner refuses it, not restarts it as at a safe step)
        # A mark at put back is one too without its hold file (a restore cut off under a fabops before the
        # hold, or killed between hold()'s state write and write_hold): the hold is written now, so a
        # reboot from here holds the services as well (docs/backups.md, "The hold")
        cut = restore_cut_off(found)
        if cut is not None and not os.path.lexists(self.paths.restore_hold):
            write_hold(self.paths, restore_cut_off_text(cut, self.host))
        self.held = os.path.lexists(self.paths.restore_hold) or cut is not None
        self.marker = {"run_id": self.run_id, "trigger": "restore", "from": commit, "to": commit, "pin": False,
                       "step": "restore: put back" if self.held else "restore: stop", "since": time.time(),
                       **({"kept": self.kept} if self.kept else {}),
                       **({"protect": [str(r) for r in protect if r]} if protect else {})}
        merge_state_file(self.paths.state, {"in_progress": self.marker})
        import threading

        if threading.current_thread() is threading.main_thread():
            self._hup = (signal.signal(signal.SIGHUP, lambda *_: None),)
        return self

    def step(self, name: str) -> None:
        from .state import merge_state_file

        if self.held and name in ("stop", "save"):  # still half put back (__enter__)
            return
        self.marker = {**self.marker, "step": f"restore: {name}"}
        merge_state_file(self.paths.state, {"in_progress": self.marker})

    def hold(self, saved: Optional[str]) -> None:
        """Before the first item is put back: the mark's step `restore: put
        back` (with the save's run id, which retention keeps meanwhile),
        then paths.restore_hold, the planner's words, written whole
        (write_hold): from here a reboot, a deploy or a person's start
        finds the services refusing to start (docs/backups.md, "A restore
        cut off in the middle")."""
        from .plan import restore_cut_off_text
        from .state import merge_state_file

        protect = [*(self.marker.get("protect") or []), *([saved] if saved else [])]
        self.marker = {**self.marker, "step": "restore: put back", **({"protect": protect} if protect else {})}
        merge_state_file(self.paths.state, {"in_progress": self.marker})
        write_hold(self.paths, restore_cut_off_text(self.run_id, self.host))

    def release(self) -> None:
        """Every item was put back: the hold goes, before the step moves on
        (a cut-off between leaves the mark, which the planner refuses, never
        a hold without one)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.restore_hold)
        self.held = False

    def back_out(self) -> bool:
        """After a save that failed or refused (nothing of this run put
        back): True when a cut-off restore's hold still stands (this run
        took it over): the data is still half put back, so that restore's
        mark goes back as it was and the services stay down. False: the
        services may start again."""
        from .plan import restore_cut_off
        from .state import merge_state_file

        if not os.path.lexists(self.paths.restore_hold) and restore_cut_off(self.took_over) is None:
            return False
        found = self.took_over if restore_cut_off(self.took_over) else {**self.marker, "step": "restore: put back"}
        merge_state_file(self.paths.state, {"in_progress": found})
        return True

    def done(self) -> None:
        """The services were started again: the marker goes (another run's
        interrupted one back in its place), unless a run since wrote its own."""
        from .files import read_object
        from .state import merge_state_file

        now = read_object(self.paths.state).get("in_progress")
        if isinstance(now, dict) and now.get("run_id") == self.run_id and now.get("trigger") == "restore":
            merge_state_file(self.paths.state, {"in_progress": self.kept})

    def __exit__(self, *exc) -> None:
        if self._hup is not None:
            signal.signal(signal.SIGHUP, self._hup[0] if self._hup[0] is not None else signal.SIG_DFL)

    def warnings(self) -> List[str]:
        """What the restore took over, said (as a deploy says it finishes an interrupted run)."""
        t = self.took_over
        if not t:
            return []
        said = f"interrupted run {t.get('run_id')} ({t.get('trigger')}, step {t.get('step')})"
        if t.get("trigger") == "restore":
            return [f"taking over from an {said}: this restore starts the services again"]
        return [f"an {said} is still to be finished: kept for the next deploy or local-update, which finishes it"]


def write_hold(paths: HostPaths, words: str) -> None:
    """paths.restore_hold with `words` (one line), written whole: a new
    file beside it, fsynced, renamed over it, the directory fsynced (a
    power loss leaves the old one or the new one, never an empty one)."""
    import secrets

    os.makedirs(paths.home, mode=0o700, exist_ok=True)
    tmp = f"{paths.restore_hold}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(" ".join(words.split()) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, paths.restore_hold)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dirfd = os.open(paths.home, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


class Deferred:
    """Ctrl-C (SIGINT) and SIGTERM during an in-place restore
    (docs/backups.md, "Ctrl-C during a restore"). Until `defer()` (just
    before the first stop) either ends the restore as Ctrl-C ends any
    task (a KeyboardInterrupt: the locks and the fetched snapshot's temp
    dir go, nothing was stopped or written: exit 130); once more while it
    ends is ignored, so that cleanup is not cut short. From `defer()` on
    the signal is noted, said once on stderr (LINE, which the laptop shows
    as it comes: maintenance/backup.py) and the restore goes on: a restore
    stopped there would leave the services stopped and half the data put
    back. It puts the items back, starts the services, runs their gate,
    records itself, then says it was interrupted (`said`). Handlers only
    in the main thread (signal's rule), and the ones before put back."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    LINE = ("fabops: finishing the restore first: the services are stopped; it puts the items back, starts "
            "the services and runs their gate, then ends")

    def __init__(self):
        self.got: Optional[str] = None  # the signal noted while deferring (SIGINT, SIGTERM)
        self.deferring = self.ending = self.recorded = False
        self._before: Dict[int, object] = {}

    def __enter__(self) -> "Deferred":
        import threading

        if threading.current_thread() is threading.main_thread():
            self._before = {s: signal.signal(s, self._caught) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._before.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    def defer(self) -> None:
        self.deferring = True

    def _caught(self, signum: int, _frame) -> None:
        if self.recorded:  # the restore is over (its services started, its record written): nothing to defer
            return
        if self.deferring:
            if self.got is None:
                self.got = signal.Signals(signum).name
                import sys

                with contextlib.suppress(OSError, ValueError):  # nobody reading (the link gone): still finish
                    sys.stderr.write(self.LINE + "\n")
                    sys.stderr.flush()
            return
        if not self.ending:
            self.ending = True
            raise KeyboardInterrupt

    def said(self) -> List[str]:
        """The run's warning when a signal was deferred (none otherwise)."""
        if self.got is None:
            return []
        return [f"interrupted ({'Ctrl-C' if self.got == 'SIGINT' else self.got}) while the services were stopped: "
                "the restore was finished first (items put back, services started, their gate run), then ended"]


def in_place(host: Host, paths: HostPaths, p: RestorePlan, snap: str, save: Callable[[], dict],
             said: Optional[List[str]] = None) -> dict:
    """Stop, save what is there now (`save`: a run's manifest, after the
    stop so no write is lost), put back only when that save is ok, start,
    gate (the lock held), each step marked in state.json (Underway), the
    put back under paths.restore_hold (Underway.hold). A save that fails
    or raises puts nothing back and starts the services again, unless the
    hold of a cut-off restore it took over stands (_resume).
    `said` gets Underway's warnings as soon as the mark is written, so a
    restore that then raises still records what it took over."""
    manager = service_manager(host)
    with Underway(paths, p.run_id, host.name) as underway:
        if said is not None:
            said += underway.warnings()
        for name in p.services:
            manager.stop(host.service(name))
        underway.step("save")
        try:
            saved = save()
        except BaseException:
            _resume(manager, host, p.services, underway)
            raise
        refused = save_refused(saved, p.items)
        done: List[dict] = []
        held, started = None, None  # held: kept_down's words; started: each service's verdict
        if refused:
            started = _resume(manager, host, p.services, underway)
            refused += "; the services were started again" if started is not None else HELD
        else:
            underway.hold(saved.get("run_id"))
            done = put_back(snap, p.items, None)
            held = kept_down(done, p.run_id, host.name)
            if held is None:
                underway.release()
                underway.step("start")
                started = start_all(manager, host, p.services)
                underway.done()
    return {"saved": saved.get("run_id"), "refused": refused, "items": done, "services": started or [],
            "warnings": underway.warnings(), **({"held": held} if not refused and held else {})}


def kept_down(done: Sequence[dict], run_id: str, host: str) -> Optional[str]:
    """Why the services stay down after a put back (None: every item is
    back, they start): an item not put back leaves the data half the
    snapshot's, so the hold and the mark at put back stay, as a cut-off
    restore's do, and a person restores again (exit 5: docs/backups.md,
    "The hold")."""
    from .plan import take_over

    bad = [str(i.get("file")) for i in done if not i.get("ok")]
    if not bad:
        return None
    return (f"not every item was put back ({', '.join(bad)}): the services stay down on half-restored data, "
            f"held as for a restore cut off putting items back; once what failed is fixed, "
            f"{take_over(run_id, host)} puts every item back and starts them")


HELD = ("; the services stay down: the restore this one took over was cut off putting items back, and its data "
        "is still half put back")


def _resume(manager, host: Host, names: Sequence[str], underway: Underway) -> Optional[List[dict]]:
    """After a save that failed or refused: the services started again
    and the mark cleared, each service's verdict; None when a cut-off
    restore's hold still stands (Underway.back_out: they stay down)."""
    if underway.back_out():
        return None
    underway.step("start")
    started = start_all(manager, host, names)
    underway.done()
    return started


def restore(host: Host, paths: HostPaths, run_id: str, only: Optional[str], into: Optional[str],
            save: Callable[[], dict], lock_wait: float, saving: Optional[Saving], actor: Optional[str] = None) -> dict:
    """Restore snapshot `run_id` (its `only` item) in place, or into `into`.
    The backup lock is held throughout (no retention deletes the snapshot
    while it is read) and the snapshot fetched under it when it is not on
    the host. In place, the host lock is taken next, and only then is the
    snapshot read and the plan decided (a listed path's link target as it
    is when the services stop); `save` then snapshots what is there first
    (host/backup's run, without retention, its run id made when it runs;
    `saving` says what it writes). Each lock is waited for up to
    `lock_wait`: the dry run's order (RestorePlan.would). `actor`: who
    runs it, as the laptop says it (the host never guesses it from its
    own environment, as for a backup: host/backup.locked_run); without
    one (run on the host itself) this process's own user."""
    from .lock import HostLock
    from .record import default_actor

    info = {"actor": actor or default_actor(), "trigger": "restore", "run_id": run_id}
    with Deferred() as guard, HostLock(paths.backup_lock, info).acquire(wait=lock_wait):
        snap, tmp, where = source_dir(host, paths, run_id)
        try:
            into = _into(into)
            with HostLock(paths.lock, info).acquire(wait=lock_wait) if into is None else contextlib.nullcontext():
                return act(host, paths, decide(host, found_in(snap, run_id, where, only), into, saving), snap, save,
                           info["actor"], guard)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)


def act(host: Host, paths: HostPaths, p: RestorePlan, snap: str, save: Callable[[], dict], actor: str,
        guard: Optional[Deferred] = None) -> dict:
    """The plan carried out from the snapshot directory `snap` (in place:
    the host lock held), recorded under `actor`. In place, `guard` defers
    Ctrl-C and SIGTERM from here (before the marker and the first stop)
    until the run is recorded (Deferred)."""
    if p.to is not None:
        os.makedirs(p.to, mode=0o700, exist_ok=True)
        out = {"items": put_back(snap, p.items, p.to), "services": [], "saved": None}
    else:
        guard = guard or Deferred()
        guard.defer()
        started, taken = time.monotonic(), []  # taken: what it took over (in_place's `said`)
        try:
            out = in_place(host, paths, p, snap, save, taken)
        except BaseException as exc:
            record(host, paths, {"run_id": p.run_id, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                                 "warnings": taken, "interrupted": guard.said()}, started, actor)
            raise
        done = {"run_id": p.run_id, **out, "ok": _ok(out), "interrupted": guard.said()}
        out = {**out, "warnings": out["warnings"] + guard.said(), "notified": record(host, paths, done, started, actor)}
        guard.recorded = True
    said = out.pop("warnings", [])  # an in-place restore's (Underway): the envelope's, not the restore's fields
    return {"restore": {"run_id": p.run_id, "from": p.where, "to": p.to, "ok": _ok(out), **out}, "warnings": said}


def _ok(out: dict) -> bool:
    return not out.get("refused") and all(i["ok"] for i in out["items"]) and all(s["ok"] for s in out["services"])


def why_failed(done: dict) -> str:
    """An in-place restore's outcome in one line."""
    if done.get("error") or done.get("refused"):
        return str(done.get("error") or done.get("refused"))
    bad = [f"{i.get('file')} ({i.get('error')})" for i in done.get("items") or [] if not i.get("ok")]
    if done.get("held"):  # kept_down: the items, then why nothing was started
        return f"FAILED: {', '.join(bad)}; {done['held']}"
    bad += [f"service {s.get('service')} ({s.get('message')})" for s in done.get("services") or [] if not s["ok"]]
    return "FAILED: " + ", ".join(bad) if bad else f"snapshot {done.get('run_id')} put back in place"


def record(host: Host, paths: HostPaths, done: dict, started: float, actor: str) -> List[dict]:
    """An in-place restore recorded as a run is: one history record
    (trigger restore; the commit does not change; `actor`: restore's),
    and a notification when it failed. What was notified."""
    from ..notify import notify
    from .events import new_run_id
    from .files import read_object
    from .record import append_run

    commit, message = read_object(paths.state).get("deployed"), why_failed(done)
    rec = {  # with its update-log line, as every run's (a log not written: no error)
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ts": time.time(), "run_id": new_run_id(),
        "trigger": "restore", "actor": actor, "host": host.name, "from": commit, "to": commit,
        "result": "restored" if done["ok"] else "restore_failed",
        "exit_code": 0 if done["ok"] else 5 if done.get("held") else 2,  # held: kept_down, a person is needed
        "message": message, "duration": round(time.monotonic() - started, 3), "steps": [],
        # what it took over or kept (Underway) and a Ctrl-C or SIGTERM it deferred (Deferred)
        "warnings": (done.get("warnings") or []) + (done.get("interrupted") or []),
        "restored": done.get("run_id"), "saved": done.get("saved")}
    append_run(host, paths, rec)
    # counted and the textfile written as a backup is (docs/metrics.md, "Which
    # runs count"): a restore_failed that holds the services is Prometheus' to see
    from .prom import restore_done

    restore_done(host, rec)
    if done["ok"]:
        return []
    return [d.to_dict() for d in notify(host.name, "restore_failed", message, home=host.home,
                                        environment=host.environment)]
