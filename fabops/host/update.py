"""The host-side entry point: `local-update` runs the pipeline under the
lock, or with --dry-run plans it (docs/architecture.md, "The pipeline").
Cron, a deploy over SSH and a `connection: local` host all come here."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..inventory import Host
from ..shell import tune_runner
from .dry_run import runner
from .events import EventLog
from .pipeline import UpdateOptions
from .record import RunResult

if TYPE_CHECKING:  # host/settings.py imports yaml, which cron's own runs need not load
    from .settings import Sent


def run_update(c, host: Host, opts: UpdateOptions, events: Optional[EventLog] = None,
               dry_run: bool = False, sent: Optional[Sent] = None) -> RunResult:
    """Run the pipeline on this host (with a local Context); with
    `dry_run`, plan it and change nothing (host/dry_run.runner picks which).
    `sent`: a deploy's settings, installed once the plan trusts the target."""
    tune_runner()
    return runner(dry_run)(c, host, opts, events, sent).run()
