"""What the maintenance tasks share: app paths, time stamps, and the
history record a reset writes."""
from __future__ import annotations

import posixpath
import time
from typing import Optional

from ..inventory import Host
from ..shell import Cmd, quote_path
from ..target import Target


def app_file(host: Host, rel: str) -> Cmd:
    return quote_path(posixpath.join(host.app.path.rstrip("/"), rel))


def stamp(fine: bool = False) -> str:
    """A sortable local timestamp; `fine` adds microseconds so two backups in
    the same second never overwrite each other."""
    if fine:
        import datetime

        return datetime.datetime.now().strftime("%Y%m%dT%H%M%S-%f")
    return time.strftime("%Y%m%dT%H%M%S")


def record_run(c, host: Host, record: dict, state_updates: dict, bad: Optional[tuple] = None) -> None:
    """One history line and a merge into state.json, as the pipeline writes
    them (remote.state_merge_cmd: the one state write sent to a host), with
    `bad` (sha, entry or None) marked or cleared in that merge: one round
    trip."""
    from ..remote import state_merge_cmd

    Target.of(c, host).run(state_merge_cmd(host, state_updates, record, bad), "recording the run")
