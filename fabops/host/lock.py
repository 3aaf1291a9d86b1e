"""The host lock: `fcntl.flock` on `<host home>/lock`.

The kernel releases a flock when its holder dies, so there are no stale
locks. Agentless tasks can take the same lock from a shell with `flock(1)`.
The holder writes who it is (actor, trigger, target, pid, since) into the
lock file itself, so a second caller can name it.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from typing import Callable, Optional

from ..errors import LockedError
from ..shortsha import short_sha
from .files import ensure_dir, read_object

POLL = 0.2


def describe_holder(holder: dict) -> str:
    """`trigger by actor (target …, pid …, since …, run …)`, naming only
    what the holder recorded: a restart has no target, and an agentless
    tool's pid is the host shell's, which it does not record (`target ?,
    pid None` told a person nothing)."""
    if not holder:
        return "another process (no details recorded)"
    since = holder.get("since")
    facts = [f"target {short_sha(str(holder['target']))}" if holder.get("target") else "",
             f"pid {holder['pid']}" if holder.get("pid") else "",
             "since " + time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(since))
             if isinstance(since, (int, float)) else "",
             f"run {holder['run_id']}" if holder.get("run_id") else ""]
    facts = [f for f in facts if f]
    # `? by ?` told a trial nothing: a holder that wrote no trigger or actor
    # (a person's `flock lock ...`) is another process
    who = (f"{holder.get('trigger', '?')} by {holder.get('actor', '?')}" if holder.get("trigger") or holder.get("actor")
           else "another process (no details recorded)")
    return who + (f" ({', '.join(facts)})" if facts else "")


def peek_holder(path: str) -> dict:
    """Who holds the lock now ({} when nobody does), without taking it: a
    shared non-blocking flock succeeds only while nobody holds it exclusively
    (used by --dry-run, which must not block a real run)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return {}
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_object(path) or {"recorded": False}  # held, by a holder that wrote nothing
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return {}
    finally:
        os.close(fd)


class HostLock:
    """Context manager around one exclusive flock."""

    def __init__(self, path: str, info: dict):
        self.path = path
        self.info = dict(info)
        self.fd: Optional[int] = None

    def try_acquire(self) -> bool:
        ensure_dir(os.path.dirname(self.path))
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        self.info.setdefault("pid", os.getpid())
        self.info.setdefault("since", time.time())
        self.update()
        return True

    def update(self, **fields) -> None:
        """Rewrite the holder record (e.g. once the target is known)."""
        self.info.update(fields)
        if self.fd is None:
            return
        data = json.dumps(self.info, sort_keys=True).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def acquire(
        self,
        wait: float = 0.0,
        should_wait: Optional[Callable[[dict], bool]] = None,
        on_wait: Optional[Callable[[dict], None]] = None,
    ) -> "HostLock":
        """Take the lock, waiting up to `wait` seconds (polling). When
        `should_wait(holder)` says so, wait even with `wait` == 0 (a deploy
        whose target the holder is already deploying). Raises LockedError."""
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            if self.try_acquire():
                return self
            holder = self._holder()
            patient = should_wait is not None and should_wait(holder)
            if time.monotonic() >= deadline and not patient:
                # The holder may have ended while we read its record (its
                # release empties the file first): one more try, so a run
                # that just finished is not reported as holding the lock.
                if self.try_acquire():
                    return self
                err = LockedError(f"locked: {describe_holder(holder)}")
                err.holder = holder  # type: ignore[attr-defined]
                raise err
            if on_wait is not None:
                on_wait(holder)  # every poll: the caller says what changed (a countdown)
            time.sleep(POLL)

    def _holder(self) -> dict:
        """The holder's record; it writes it just after taking the lock, so an
        empty file is given a moment before we call the holder anonymous."""
        give_up = time.monotonic() + 1.0
        while True:
            holder = read_object(self.path)
            if holder or time.monotonic() >= give_up:
                return holder
            time.sleep(0.02)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False
