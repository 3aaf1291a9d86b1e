"""Restoring a backup snapshot, on the host (docs/backups.md, "Restore").

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
are started and each must pass its readiness gate. A dump's output and
fabops' own state are never put back in place: a dump is loaded with its
database's own tool, and state.json belongs to the deploys (`--to DIR`
gives both). A snapshot that is not on the host is fetched from the
repository (restic restore into a temporary directory, removed after).

Standard library only (and the host's siblings); Python 3.9.
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from typing import Callable, List, Optional, Tuple

from ..inventory import Host
from ..paths import HostPaths

IN_PLACE = ("files", "sqlite", "env")  # the kinds put back in place; dumps and state only with --to


class RestoreError(Exception):
    """A restore that cannot start (no such snapshot, no such item)."""


def source_dir(host: Host, paths: HostPaths, run_id: str) -> Tuple[str, Optional[str], str]:
    """The snapshot's directory, the temporary directory to remove after
    (a snapshot fetched from the repository) and where it came from."""
    from . import restic

    local = paths.backup_snapshot(run_id)
    if os.path.isfile(paths.backup_manifest(local)):
        return local, None, "local"
    repo = host.backup.repository
    if repo is None:
        raise RestoreError(f"no snapshot {run_id} on the host, and no repository: `backup --list` shows them")
    try:
        restic.ready(repo)
        snaps = json.loads(restic.call(repo, "snapshots", "--json", "--host", host.name, timeout=600) or "[]")
    except (restic.ResticError, ValueError) as exc:
        raise RestoreError(f"snapshot {run_id} is not on the host, and the repository: {exc}") from None
    found = [s for s in snaps if restic.run_tag(s) == run_id]
    if not found:
        raise RestoreError(f"no snapshot {run_id} on the host or in the repository: `backup --list` shows them")
    os.makedirs(paths.backups, mode=0o700, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".restore-", dir=paths.backups)
    try:
        restic.call(repo, "restore", str(found[0]["id"]), "--target", tmp)
    except restic.ResticError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RestoreError(str(exc)) from None
    return os.path.join(tmp, str(found[0]["paths"][0]).lstrip("/")), tmp, f"off-host {found[0].get('short_id')}"


def chosen(manifest: dict, only: Optional[str]) -> List[dict]:
    """The manifest's items a restore puts back: those with a file in the
    snapshot, or the one `only` names (by name or file)."""
    items = [i for i in manifest.get("items") or [] if not i.get("skipped") and i.get("sha256")]
    if only:
        items = [i for i in items if only in (i.get("name"), i.get("file"))]
        if not items:
            names = ", ".join(str(i.get("name")) for i in manifest.get("items") or [] if not i.get("skipped"))
            raise RestoreError(f"the snapshot has no item {only!r}: it has {names}")
    return items


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


def safe_members(tar: tarfile.TarFile) -> List[tarfile.TarInfo]:
    """Every member, or TarError naming the first one a restore must not
    write (before anything is written: a snapshot from a repository is
    not trusted to stay under the paths it lists)."""
    members, links = tar.getmembers(), []
    for m in members:
        why = _unsafe(m, links)
        if why:
            raise tarfile.TarError(f"files.tar member {m.name!r} is {why}: nothing of it was put back")
        if m.issym():
            links.append(m.name.rstrip("/"))
    return members


# Python's own extraction filter where it has one (3.12, and late 3.9-3.11
# patch releases): "tar", not 3.14's default "data", which refuses the
# absolute symlinks an app's data may hold; safe_members checks the rest
_FILTER = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}


def unpack(tar_path: str, item: dict, into: Optional[str]) -> None:
    """files.tar into `into` (as archived), or in place: each listed path
    (a listed symlink's target) replaced by its archived tree."""
    with tarfile.open(tar_path) as tar:
        members = safe_members(tar)
        if into is not None:
            tar.extractall(into, members=members, **_FILTER)
            return
        for src in item.get("sources") or []:
            arc = src.lstrip("/")
            root = os.path.realpath(src) if os.path.lexists(src) else src
            mine = [m for m in members if m.name == arc or m.name.startswith(arc + "/")]
            if not mine:
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
    """One item put back; why it was not (None when it was)."""
    src = os.path.join(snap, str(item["file"]))
    if into is None and item.get("kind") not in IN_PLACE:
        return ("not put back in place: a dump is loaded with its database's own tool, fabops' state belongs "
                "to the deploys (--to DIR gives the file)")
    if item.get("kind") == "files":
        unpack(src, item, into)
    elif into is not None:
        put(src, os.path.join(into, str(item["file"])), 0o600)
    else:
        dest = item["sources"][0]
        if item.get("kind") == "sqlite":  # a stale WAL beside the restored database would corrupt it
            for side in ("-wal", "-shm"):
                if os.path.lexists(dest + side):
                    os.unlink(dest + side)
        put(src, dest, 0o600 if item.get("kind") == "env" else None)
    return None


def put_back(snap: str, items: List[dict], into: Optional[str]) -> List[dict]:
    out = []
    for item in items:
        try:
            skipped, error = put_item(snap, item, into), None
        except (OSError, tarfile.TarError) as exc:
            skipped, error = None, f"{type(exc).__name__}: {exc}"
        out.append({"name": item.get("name"), "file": item.get("file"), "ok": error is None,
                    "skipped": skipped, "error": error})
    return out


def service_manager(host: Host):
    """The host's services, driven from the host itself (as cron's health does)."""
    from ..target import Target
    from .localrun import LocalContext
    from .services import ServiceManager

    t = Target.of(LocalContext(host.env), host)
    return ServiceManager(t, host, home=t.paths.home, app_path=t.local_path(host.app.path))


def start_all(manager, host: Host) -> List[dict]:
    """Start every service and run its readiness gate: each one's verdict."""
    from .readiness import wait_ready

    out = []
    for svc in host.services:
        try:
            manager.start(svc)
            ready = wait_ready(manager, svc)
            out.append({"service": svc.name, "ok": ready.ok, "message": ready.message})
        except Exception as exc:  # noqa: BLE001 - a start that fails is that service's result
            out.append({"service": svc.name, "ok": False, "message": f"{type(exc).__name__}: {exc}"})
    return out


def save_refused(saved: dict, items: List[dict]) -> Optional[str]:
    """Why a restore must not go on after saving what is there (None: it may):
    an item it would overwrite whose save failed, for a reason other than
    there being nothing to save (a deleted data directory is what a restore
    is for), could not be given back by that snapshot."""
    overwritten = {i.get("name") for i in items if i.get("kind") in IN_PLACE}
    bad = [f"{i.get('name')} ({i.get('error')})" for i in saved.get("items") or [] if not i.get("ok")
           and i.get("name") in overwritten and not str(i.get("error") or "").startswith("not found:")]
    if not bad:
        return None
    return (f"nothing was put back: saving what was there first failed ({', '.join(bad)}), so "
            f"snapshot {saved.get('run_id')} could not undo this restore; the services were started again")


def in_place(host: Host, snap: str, items: List[dict], save: Callable[[], dict]) -> dict:
    """Stop, save what is there now (`save`: a run's manifest, after the
    stop so no write is lost), put back only when that save is ok, start,
    gate (the lock held). A save that fails or raises starts the services
    again and puts nothing back."""
    manager = service_manager(host)
    for svc in host.services:
        manager.stop(svc)
    try:
        saved = save()
    except BaseException:
        start_all(manager, host)
        raise
    refused = save_refused(saved, items)
    done = [] if refused else put_back(snap, items, None)
    started = start_all(manager, host)
    return {"saved": saved.get("run_id"), "refused": refused, "items": done, "services": started}


def restore(host: Host, paths: HostPaths, run_id: str, only: Optional[str], into: Optional[str],
            save: Callable[[], dict], lock_wait: float) -> dict:
    """Restore snapshot `run_id` (its `only` item) in place, or into `into`.
    In place, `save` snapshots what is there first (host/backup's run,
    without retention) under the host lock. The backup lock is held
    throughout; each lock is waited for up to `lock_wait`."""
    from .lock import HostLock
    from .record import default_actor

    with HostLock(paths.backup_lock, {"actor": default_actor(), "trigger": "restore", "run_id": run_id}).acquire(
            wait=lock_wait):  # no backup's retention deletes the snapshot while it is read
        return _restore(host, paths, run_id, only, into, save, lock_wait)


def _restore(host: Host, paths: HostPaths, run_id: str, only: Optional[str], into: Optional[str],
             save: Callable[[], dict], lock_wait: float) -> dict:
    from .lock import HostLock
    from .record import default_actor

    snap, tmp, where = source_dir(host, paths, run_id)
    try:
        with open(paths.backup_manifest(snap), encoding="utf-8") as fh:
            items = chosen(json.load(fh), only)
        if into is not None:
            into = os.path.abspath(os.path.expanduser(into))
            os.makedirs(into, mode=0o700, exist_ok=True)
            out = {"items": put_back(snap, items, into), "services": [], "saved": None}
        else:
            info = {"actor": default_actor(), "trigger": "restore", "run_id": run_id}
            with HostLock(paths.lock, info).acquire(wait=lock_wait):
                started = time.monotonic()
                try:
                    out = in_place(host, snap, items, save)
                except BaseException as exc:
                    record(host, paths, {"run_id": run_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"},
                           started)
                    raise
                out = {**out, "notified": record(host, paths, {"run_id": run_id, **out, "ok": _ok(out)}, started)}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"restore": {"run_id": run_id, "from": where, "to": into, "ok": _ok(out), **out}, "warnings": []}


def _ok(out: dict) -> bool:
    return not out.get("refused") and all(i["ok"] for i in out["items"]) and all(s["ok"] for s in out["services"])


def why_failed(done: dict) -> str:
    """An in-place restore's outcome in one line."""
    if done.get("error") or done.get("refused"):
        return str(done.get("error") or done.get("refused"))
    bad = [f"{i.get('file')} ({i.get('error')})" for i in done.get("items") or [] if not i.get("ok")]
    bad += [f"service {s.get('service')} ({s.get('message')})" for s in done.get("services") or [] if not s["ok"]]
    return "FAILED: " + ", ".join(bad) if bad else f"snapshot {done.get('run_id')} put back in place"


def record(host: Host, paths: HostPaths, done: dict, started: float) -> List[dict]:
    """An in-place restore recorded as a run is: one history record
    (trigger restore; the commit does not change), and a notification
    when it failed. What was notified."""
    from ..notify import notify
    from .events import new_run_id
    from .files import append_json, read_object
    from .record import default_actor

    commit, message = read_object(paths.state).get("deployed"), why_failed(done)
    append_json(paths.history, {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ts": time.time(), "run_id": new_run_id(),
        "trigger": "restore", "actor": default_actor(), "host": host.name, "from": commit, "to": commit,
        "result": "restored" if done["ok"] else "restore_failed", "exit_code": 0 if done["ok"] else 2,
        "message": message, "duration": round(time.monotonic() - started, 3), "steps": [], "warnings": [],
        "restored": done.get("run_id"), "saved": done.get("saved")})
    if done["ok"]:
        return []
    return [d.to_dict() for d in notify(host.name, "restore_failed", message, home=host.home)]
