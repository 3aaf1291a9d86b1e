"""`backup` from the laptop: one round trip runs the host's own backup code
(fabops/host/backup.py) with the host's settings on stdin, and reads its
one JSON answer (docs/backups.md). The decisions are the host's: what a run
copies, what retention deletes; this module only carries them."""
from __future__ import annotations

import contextlib
import json
import os
import sys

from .. import errors
from ..errors import CommandFailed, FabopsError
from ..host.backup import exit_code  # noqa: F401 (the task's; cron's fast path exits with it too)
from ..inventory import Host
from ..shell import Cmd, join, path, sh
from ..target import Target

class Interrupted(FabopsError):
    """An in-place restore ended by Ctrl-C (or SIGTERM) before it stopped
    anything: nothing was changed (docs/errors.md, 130)."""

    exit_code = errors.INTERRUPTED


ACTIONS = ("plan", "run", "list", "verify", "restore", "restore-plan")


def backup_cmd(python: str, action: str, extra=()) -> Cmd:
    """The host's backup module, isolated (-I: no PYTHONPATH, no cwd on
    sys.path), its settings on stdin. `action` is one of ACTIONS (quoted
    like any value). What it left of its input is read after it ends: a
    host without that Python (or that module) ends before reading it, which
    over SSH would hide its exit status and its words."""
    return sh("{python} -I -m fabops.host.backup {args}; rc=$?; cat >/dev/null; exit $rc", python=path(python),
              args=join([action, *extra]))


def host_python(host: Host) -> str:
    """The Python that has this fabops: a local host's (connection: local)
    is this interpreter (setup makes no venv for it), a host's its venv
    under home."""
    return sys.executable if host.is_local else host.paths.venv_bin("python")


class Waiting:
    """The laptop's Ctrl-C while an in-place restore runs on `host`
    (docs/backups.md, "Ctrl-C during a restore"). On a `connection: local`
    host the restore's process is in the terminal's foreground group and
    gets the Ctrl-C itself (host/restore.Deferred): before its first stop
    it ends (exit 130, its own line), after it it says `finishing the
    restore first: the services are stopped` on stderr, which `relay`
    shows as it comes. Over SSH (no terminal on the host) a Ctrl-C does
    not reach it, and the first one says so. A second Ctrl-C stops the
    laptop waiting (`fabops: interrupted`, exit 130), as a deploy's Ctrl-C
    ends its following: the host's run goes on to its end and records
    itself. Only in the main thread (signal's rule): with several hosts
    the task's own Ctrl-C handling stays."""

    def __init__(self, host: Host):
        self.host, self.caught, self._before = host, 0, None

    def __enter__(self) -> "Waiting":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._before = (signal.signal(signal.SIGINT, self._caught),)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self._before is not None:
            signal.signal(signal.SIGINT, self._before[0] if self._before[0] is not None else signal.SIG_DFL)

    def _caught(self, _signum, _frame) -> None:
        self.caught += 1
        if self.caught == 1:
            if not self.host.is_local:
                _say(f"fabops: {self.host.name}: a Ctrl-C does not reach the restore over SSH: it goes on to its "
                     "end on the host and never stops with the services stopped (Ctrl-C again stops waiting)")
            return
        from ..deploy import suggest

        _say(f"fabops: interrupted: no longer waiting; the restore goes on on {self.host.name} to its end "
             f"({suggest(None, 'history', '-H', self.host.name)} says how it ended)")
        # out at once: Invoke's runner would wait for the host's process
        # before it let any exception by (it joins its reading threads)
        os._exit(errors.INTERRUPTED)

    def relay(self):
        """An err_stream for Invoke's runner that shows the host's
        deferred-Ctrl-C line (host/restore.Deferred.LINE) as it comes and
        nothing else (the rest of stderr stays captured for the error)."""
        return _Relay(self.host.name)


class _Relay:
    def __init__(self, name: str):
        self.name, self.buf = name, ""

    def write(self, text: str) -> None:
        from ..host.restore import Deferred

        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line == Deferred.LINE:
                _say(f"fabops: {self.name}: {line.removeprefix('fabops: ')}")

    def flush(self) -> None:
        pass


def _say(line: str) -> None:
    from ..printable import printable

    try:
        sys.stderr.write(printable(line) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # nobody reads stderr any more: the exit code still says it
        pass


def backup(c, host: Host, action: str, extra=()) -> dict:
    """The host's answer to `action`: a run's manifest (`run`), the plan a
    dry run shows (`plan`, `restore-plan`) or the snapshots there (`list`).
    A run may take hours (the host lets each dump run an hour; copies have
    no host limit): the laptop waits run_timeout, never the connection's
    default, as for a restore's plan (it reads a snapshot's whole tar, from
    the repository when it is not on the host); a backup's plan or a
    listing copies nothing, and keeps that default."""
    from ..deploy import host_yml
    from ..host.backup import run_timeout

    waits = run_timeout(host) if action in ("run", "verify", "restore", "restore-plan") else None
    in_place = action == "restore" and not extra[2]  # (RUN_ID, ONLY, DIR, ACTOR): no DIR
    with Waiting(host) if in_place else contextlib.nullcontext() as waiting:
        shown = dict(hide="stdout", err_stream=waiting.relay()) if in_place else {}
        r = Target.of(c, host).run(backup_cmd(host_python(host), action, extra), f"backup {action}", check=False,
                                   stdin=host_yml(host), timeout=waits, **shown)
    try:
        data = json.loads(r.stdout)
    except ValueError:
        data = None
    if r.exited == 0 and isinstance(data, dict):
        return data
    said = f"{r.stderr}\n{r.stdout}"
    if r.exited == errors.USAGE:  # restore: no such snapshot or item, nothing touched
        raise errors.UsageError(r.stderr.strip().removeprefix("fabops: "), host=host.name)
    if r.exited == errors.INTERRUPTED and action.startswith("restore"):  # Ctrl-C before a restore stopped anything
        raise Interrupted(r.stderr.strip().removeprefix("fabops: "), host=host.name)
    if r.exited == errors.LOCKED:  # the host waited its LOCK_WAIT for a deploy (or another backup)
        raise errors.LockedError(r.stderr.strip().removeprefix("fabops: ") or "locked", host=host.name)
    if r.exited == errors.FAILED and r.stderr.startswith("fabops: backup"):  # its own one line (host/backup.main)
        raise FabopsError(r.stderr.strip().removeprefix("fabops: "), host=host.name)
    if r.exited == 127 or "No module named" in said:
        raise FabopsError("fabops on the host has no backup yet (not installed, or older than this one): "
                          "a deploy or `setup` installs it", host=host.name)
    raise CommandFailed.from_result("backup", r, host=host.name)
