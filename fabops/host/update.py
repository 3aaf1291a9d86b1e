"""The host-side entry point: `local-update` runs the pipeline under the
lock, or with --dry-run plans it (docs/architecture.md, "The pipeline").
Cron, a deploy over SSH and a `connection: local` host all come here."""
from __future__ import annotations

from typing import Optional

from ..inventory import Host
from ..shell import tune_runner
from .dry_run import DryRun
from .events import EventLog
from .pipeline import Pipeline, UpdateOptions
from .record import RunResult


def run_update(c, host: Host, opts: UpdateOptions, events: Optional[EventLog] = None) -> RunResult:
    """Run the pipeline on this host (with a local Context); with
    opts.dry_run, plan it and change nothing."""
    tune_runner()
    kind = DryRun if opts.dry_run else Pipeline
    return kind(c, host, opts, events).run()
