"""fabops' home on a host, and every file in it: the one place their names
are spelled (docs/architecture.md, "Host layout").

`HostPaths(home)` names them as the home is given: on the host itself
(the pipeline, cron) an absolute path (`for_home` expands it); over SSH as
hosts.yml spells it, a leading ~/ kept for the host's shell (quote with
shell.path). Host paths are POSIX whatever runs this. Standard library
only: the host side imports it (its cron path runs Python 3.9)."""
from __future__ import annotations

import os
import posixpath
import re

from .records import Frozen, frozen

# A run's id, as host/events.new_run_id makes it (20261206T130834-a26a0a) or
# `local-update --run-id` and `deploy --attach` take it: one file name under
# runs/, never a path (`../x` named a file outside it).
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")


def check_run_id(run_id: str, flag: str = "run id") -> str:
    """`run_id` when it is one, else UsageError (exit 64) naming `flag`:
    every run file's name passes here (HostPaths.run_file), and the flags
    that take an id check it first, before anything runs."""
    if not RUN_ID.fullmatch(run_id):
        from .errors import UsageError

        raise UsageError(f"{flag} {run_id}: not a run id (one reads like 20261206T130834-a26a0a: letters, "
                         "digits, '-', '_', no '/')")
    return run_id


@frozen
class HostPaths(Frozen):
    home: str

    @classmethod
    def for_home(cls, home: str) -> "HostPaths":
        """On this machine: the home expanded and absolute."""
        return cls(os.path.abspath(os.path.expanduser(home)))

    @classmethod
    def as_spelled(cls, home: str) -> "HostPaths":
        """Over SSH: the home as hosts.yml spells it, normalised (a trailing
        slash dropped, a leading ~/ kept for the host's shell)."""
        return cls(posixpath.normpath(home) if home.strip("/") else "/")

    def file(self, *parts: str) -> str:
        """A path under the home (the named ones below are preferred)."""
        return posixpath.join(self.home, *parts)

    # ---- state and history
    @property
    def lock(self) -> str:
        return self.file("lock")

    @property
    def state(self) -> str:
        return self.file("state.json")

    @property
    def state_aside_prefix(self) -> str:
        """A corrupt state.json moved aside is this prefix and the time of the
        move in nanoseconds (host/state.merge_state_file); monitor shows it."""
        return self.state + ".corrupt-"

    @property
    def restore_hold(self) -> str:
        """Written (its one line: the take-over words) by an in-place restore
        before it puts the first item back, removed once every item is
        back: while it is there the services refuse to start, at boot too
        (host/launch.py, host/services.py; docs/backups.md, "A restore cut
        off in the middle")."""
        return self.file("restore-cut-off")

    @property
    def history(self) -> str:
        return self.file("history.jsonl")

    @property
    def metrics(self) -> str:
        return self.file("metrics.jsonl")

    @property
    def watch_end(self) -> str:
        """A rollback's, reset's or restart's request that the run watching
        now end its watch (host/queue.py)."""
        return self.file("watch-end")

    @property
    def runs(self) -> str:
        return self.file("runs")

    def run_file(self, run_id: str, suffix: str) -> str:
        """A run's own file: its events (jsonl), its settings (host.yml,
        dry-run.yml), its output (out)."""
        return posixpath.join(self.runs, f"{check_run_id(run_id)}.{suffix}")

    def run_events(self, run_id: str) -> str:
        return self.run_file(run_id, "jsonl")

    # ---- backups (host/backup.py, docs/backups.md)
    @property
    def backups(self) -> str:
        """Local backup snapshots: one directory per run, named by its run id."""
        return self.file("backups")

    @property
    def backup_lock(self) -> str:
        """Held by a backup's off-host copy and retention, and by a restore:
        not the host lock, which a backup holds only for its local snapshot
        (an upload may take hours; deploys and health --fix go on)."""
        return self.file("backup.lock")

    def backup_snapshot(self, run_id: str) -> str:
        return posixpath.join(self.backups, check_run_id(run_id))

    def backup_partial(self, run_id: str) -> str:
        """A snapshot being written: renamed to backup_snapshot when its
        manifest is in, so a listing never reads half a run."""
        return posixpath.join(self.backups, f".{check_run_id(run_id)}.partial")

    @staticmethod
    def backup_manifest(snapshot: str) -> str:
        """The manifest in a snapshot's directory (partial or done)."""
        return posixpath.join(snapshot, "manifest.json")

    # ---- settings and fabops itself
    @property
    def host_yml(self) -> str:
        return self.file("host.yml")

    @property
    def host_json(self) -> str:
        """host.yml's data as JSON, with the text it was read from: the cron
        fast path's copy (host/fastpath.py), used only while host.yml still
        holds exactly that text."""
        return self.file("host.json")

    @property
    def env_sh(self) -> str:
        """The inventory's env as quoted exports (shell.env_file_text)."""
        return self.file("env.sh")

    @property
    def venv(self) -> str:
        return self.file("venv")

    def venv_bin(self, name: str) -> str:
        return posixpath.join(self.venv, "bin", name)

    @property
    def dist(self) -> str:
        """Wheels uploaded for the install (install.py)."""
        return self.file("dist")

    # ---- logs
    @property
    def update_log(self) -> str:
        return self.file("update.log")

    @property
    def health_log(self) -> str:
        return self.file("health.log")

    @property
    def cron_log(self) -> str:
        return self.file("cron.log")

    def log(self, source: str) -> str:
        """The log of `source` (update, health, cron) when hosts.yml names none."""
        return self.file(f"{source}.log")

    # ---- the `process` service manager
    @property
    def services(self) -> str:
        """pidfiles and logs of the `process` service manager."""
        return self.file("services")

    def service_pid(self, name: str) -> str:
        return posixpath.join(self.services, f"{name}.pid")

    def service_log(self, name: str) -> str:
        return posixpath.join(self.services, f"{name}.log")
