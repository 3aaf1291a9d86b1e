"""What `health` (and any agentless task) needs of a host's home, written
down (docs/architecture.md, "Plans"): state.json, the host lock, the
history and the health log, through one interface whichever side reads
them.

Two implementations, one behaviour (tests/test_store.py runs the same
tests against both): `host/health.LocalStore` on the host itself (cron,
a `connection: local` host: the files directly) and `remote.RemoteStore`
over SSH (agentless: the host's python3, flock(1) and sh, no fabops
there). Standard library only: the host's Python 3.9."""
from __future__ import annotations

import os
from typing import Optional, Protocol, runtime_checkable

from ..inventory import Host
from ..paths import HostPaths


class Held(Protocol):
    """The host lock, taken: held until released (or the holder dies)."""

    def release(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    def load(self) -> dict:
        """state.json's JSON object; {} when it is missing, unreadable,
        corrupt or not an object (a read: nothing is written, a corrupt
        file is left as it is)."""

    def update(self, updates: dict) -> None:
        """Merge `updates`' top-level keys into state.json as it is now
        (host/state.merge_state_file, on both sides): keys another writer
        set meanwhile stay; a corrupt file is moved aside to
        state.json.corrupt-<ns> first, then the update starts it over."""

    def record(self, updates: dict, record: dict) -> None:
        """A task's verdict recorded as a run's is (host/record.healthy_again):
        append `record` to history.jsonl and its line to the update log
        (host/record.log_line), then merge `updates` into state.json as
        `update` does."""

    def lock(self, info: dict) -> Held:
        """Take the host lock, recording `info` (actor, trigger, ...) as
        its holder, or raise LockedError naming who holds it and the host.
        host/queue.py's rules for `info`'s trigger (take_lock): health's
        never waits; an emergency tool ends a run's watch first."""

    def log(self, line: str) -> None:
        """Append `line` to the health log (hosts.yml's `logs.health`, else
        the home's health.log), 0600 in a 0700 directory made if missing;
        best effort: a log that cannot be written is no error."""


class LocalStore:
    """state.json, the lock and the health log, on this machine (cron, a
    `connection: local` host): the Store with the files read directly."""

    def __init__(self, host: Host):
        self.host = host
        self.paths = HostPaths.for_home(host.home)

    def load(self) -> dict:
        from .files import read_object

        return read_object(self.paths.state)

    def update(self, updates: dict) -> None:
        from .state import merge_state_file

        merge_state_file(self.paths.state, updates)  # the one merge: a run's keys written meanwhile stay

    def record(self, updates: dict, record: dict) -> None:
        from .record import append_run

        # history and the update-log line, as every run's (a log that
        # cannot be written is no error here, as the health log's)
        append_run(self.host, self.paths, record)
        self.update(updates)

    def lock(self, info: dict) -> Held:
        return take_lock(self.paths, info, self.host.name)

    def log(self, line: str) -> None:
        from .files import append_line

        # hosts.yml spells it with ~/ as the host's shell reads it (RemoteStore's)
        path = os.path.expanduser(self.host.logs.get("health") or self.paths.health_log)
        try:
            append_line(path, line, fsync=False)
        except OSError:
            pass


def take_lock(paths: HostPaths, info: dict, host_name: str, ended: Optional[dict] = None):
    """The host lock taken on this machine by a task that is not a run
    (health --fix, and reset, restart or restore-env on a local host):
    host/queue.py's rules for its trigger, as remote.remote_lock_script
    applies them over SSH (an emergency tool ends a watch first; any
    other holder is LockedError at once, naming the host)."""
    from ..errors import LockedError
    from .lock import HostLock
    from .queue import EMERGENCY_TRIGGERS, lock_waiter

    trigger = info.get("trigger", "")
    ends = lock_waiter(trigger, lambda: None, paths.watch_end, info.get("actor", ""), "")

    def should_wait(holder: dict) -> bool:
        # `ended` gets the record of the run whose watch we end (the tool
        # names it), as remote_lock_script's ENDED line does over SSH
        if ended is not None and not ended and trigger in EMERGENCY_TRIGGERS and \
                holder.get("phase") in ("watch", "promote"):
            ended.update(holder)
        return ends(holder)

    try:
        return HostLock(paths.lock, info).acquire(should_wait=should_wait)
    except LockedError as exc:
        exc.host = exc.host or host_name
        raise
