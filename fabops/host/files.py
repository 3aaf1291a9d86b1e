"""Durable little files: atomic replace, fsynced appends, private dirs.
Their names are fabops/paths.py's HostPaths."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Iterator, List


def sha256_file(path: str) -> str:
    import hashlib  # here: its OpenSSL load was 2.6 ms of every cron poll, which hashes nothing (docs/benchmarks.md)

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_dir(path: str, mode: int = 0o700) -> str:
    os.makedirs(path, mode=mode, exist_ok=True)
    return path


def ensure_home(home: str) -> str:
    """fabops' home, made if missing and set to 0700 on every run, not only
    when it is made: a home opened up by hand (or by an old release) is
    private again at the next run (docs/architecture.md, "Host layout";
    over SSH, remote.home_dir_cmd)."""
    ensure_dir(home)
    for d in own_dirs(home):
        os.chmod(d, 0o700)
    return home


def own_dirs(home: str) -> List[str]:
    """fabops' home, and the `.fabops` directory above it (the default
    home is ~/.fabops/<app>): both are fabops' own, so both are 0700. A
    home elsewhere leaves its parent alone."""
    home = os.path.normpath(home)
    parent = os.path.dirname(home)
    return [home, parent] if os.path.basename(parent) == ".fabops" else [home]


def save_env_file(path: str, env) -> None:
    """fabops' env.sh, rewritten (0600) only when the inventory's env
    changed: commands over SSH source it (shell.source_env)."""
    from ..shell import env_file_text

    text = env_file_text(env)
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return
    except OSError:
        pass
    atomic_write(path, text)


def new_temp(directory: str):
    """(fd, path) of a new file `.tmp-…` in `directory`, made with O_EXCL
    and mode 0600, as tempfile.mkstemp makes one: its import (shutil,
    random, hashlib) cost every cron poll 5 ms. The directories are fabops'
    own; O_EXCL never opens a file that is already there, a link included."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for attempt in range(100):
        tmp = os.path.join(directory, ".tmp-%d-%d-%d" % (os.getpid(), time.monotonic_ns(), attempt))
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError("no new temporary file name in %s" % directory)


def atomic_write(path: str, data: str, mode: int = 0o600, durable: bool = True) -> None:
    """Temp file in the same dir, fsync, rename, fsync the dir: a reader or a
    crash sees the old file or the new one, never half of one. Not
    `durable`: no fsync, for a file the next run writes again anyway
    (host/prom.py's textfile): a reader still never sees half of one, and
    a crash may lose the last write."""
    directory = os.path.dirname(path) or "."
    ensure_dir(directory)
    fd, tmp = new_temp(directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def append_line(path: str, line: str, fsync: bool = True) -> None:
    """Append one line with a single write (O_APPEND keeps lines whole)."""
    ensure_dir(os.path.dirname(path) or ".")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def append_json(path: str, record: Any) -> None:
    append_line(path, json.dumps(record, sort_keys=True, default=str))


def read_object(path: str) -> dict:
    """A file's JSON object: {} when it is missing, unreadable, not JSON
    or not an object (state.json read by LocalStore, the lock's holder
    record)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_jsonl(path: str) -> Iterator[dict]:
    """Records of a JSON-lines file; a torn or corrupt line is skipped."""
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def tail_jsonl(path: str, n: int) -> List[dict]:
    records: List[dict] = []
    for rec in read_jsonl(path):
        records.append(rec)
        if len(records) > n:
            records.pop(0)
    return records
