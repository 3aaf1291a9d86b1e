"""`backup` from the laptop: one round trip runs the host's own backup code
(fabops/host/backup.py) with the host's settings on stdin, and reads its
one JSON answer (docs/backups.md). The decisions are the host's: what a run
copies, what retention deletes; this module only carries them."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

from .. import errors
from ..errors import CommandFailed, FabopsError
from ..host.backup import INTERRUPTED_BEFORE
from ..host.backup import exit_code  # noqa: F401 (the task's; cron's fast path exits with it too)
from ..inventory import Host
from ..shell import Cmd, join, path, sh
from ..target import Target, Feed

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
    the task's own Ctrl-C handling stays.

    On a local host the laptop says the restore goes on only once the
    host said it defers (its LINE relayed): before that the same Ctrl-C
    reached the host's process, which ends by itself with nothing changed
    (exit 130, or killed by the SIGINT before its handler was there:
    `backup` maps both), so the laptop waits for that end. A Ctrl-C before
    the host's process read its input (host.yml, on stdin) withholds it:
    the process, if there yet, ends on its empty input having done
    nothing, and the laptop says the restore was interrupted before it
    started (exit 130)."""

    BEFORE_START = "backup --restore interrupted before it started: nothing was changed"

    def __init__(self, host: Host):
        self.host, self.caught, self._before = host, 0, None
        import threading

        self.started = False  # the runner fed the host's process its input: it exists (and got a local Ctrl-C)
        self.withheld = False  # a Ctrl-C came first: the host's process gets no input, so it does nothing
        self._feeding = threading.Lock()
        self._relay = _Relay(host.name)

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
        if self.host.is_local:
            with self._feeding:
                if not self.started:  # the host's process has not read host.yml: it gets none and ends (_Fed)
                    self.withheld = True
                    return None
            if not self._relay.deferring:  # the host got it too: it ends (nothing changed) or says it defers
                return
            return self._stop_waiting()
        if self.caught == 1:
            _say(f"fabops: {self.host.name}: a Ctrl-C does not reach the restore over SSH: it goes on to its "
                 "end on the host and never stops with the services stopped (Ctrl-C again stops waiting)")
            return
        self._stop_waiting()

    def _stop_waiting(self) -> None:
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
        return self._relay

    def fed(self, stdin: str) -> "_Fed":
        """The host's input, as Target.run's stdin: its first read (Invoke's
        stdin thread, started once the process is) marks it `started`."""
        return _Fed(stdin, self)


class _Fed(Feed):
    def __init__(self, data: str, waiting: Waiting):
        super().__init__(data)
        self.waiting = waiting

    def read(self, size: int = -1) -> str:
        with self.waiting._feeding:  # Invoke's stdin thread; the Ctrl-C's handler decides under the same lock
            if self.waiting.withheld:
                return ""  # end of input at once: host.yml never reaches it
            self.waiting.started = True
        return super().read(size)


def _killed_early(r) -> bool:
    """A local host's process ended by the laptop's own Ctrl-C (its whole
    process group gets it) before its restore's handler was there: killed
    by the SIGINT (Python not yet started), or its KeyboardInterrupt's
    traceback and exit 1 (raised while `-m` imported the module or read
    host.yml, outside host/backup.main's catch). Nothing was changed: from
    the first stop on the host defers a Ctrl-C (host/restore.Deferred)."""
    return r.exited == -signal.SIGINT or r.exited == 1 and (r.stderr or "").rstrip().endswith("KeyboardInterrupt")


class _Relay:
    def __init__(self, name: str):
        self.name, self.buf = name, ""
        self.deferring = False  # the host said it defers the Ctrl-C (Deferred.LINE): its restore really runs

    def write(self, text: str) -> None:
        from ..host.restore import Deferred

        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line == Deferred.LINE:
                self.deferring = True
                _say(f"fabops: {self.name}: {line.removeprefix('fabops: ')}")

    def flush(self) -> None:
        pass


def _say(line: str) -> None:
    from ..printable import STDERR_FIT, printable

    try:  # wrapped at spaces on a terminal, whole in a pipe, as every `fabops:` line (STDERR_FIT)
        sys.stderr.write(STDERR_FIT[0](printable(line)) + "\n")
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
    yml = host_yml(host)
    with Waiting(host) if in_place else contextlib.nullcontext() as waiting:
        shown = dict(hide="stdout", err_stream=waiting.relay(), in_stream=waiting.fed(yml)) if in_place else {}
        r = Target.of(c, host).run(backup_cmd(host_python(host), action, extra), f"backup {action}", check=False,
                                   stdin=yml, timeout=waits, **shown)
    if in_place and waiting.withheld:  # its process, if any, had no host.yml: it read nothing, changed nothing
        raise Interrupted(Waiting.BEFORE_START, host=host.name)
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
    if in_place and host.is_local and _killed_early(r):
        raise Interrupted(INTERRUPTED_BEFORE.removeprefix("fabops: "), host=host.name)
    if r.exited == errors.LOCKED:  # the host waited its LOCK_WAIT for a deploy (or another backup)
        raise errors.LockedError(r.stderr.strip().removeprefix("fabops: ") or "locked", host=host.name)
    if r.exited == errors.FAILED and r.stderr.startswith("fabops: backup"):  # its own one line (host/backup.main)
        raise FabopsError(r.stderr.strip().removeprefix("fabops: "), host=host.name)
    if r.exited == 127 or "No module named" in said:
        raise FabopsError("fabops on the host has no backup yet (not installed, or older than this one): "
                          "a deploy or `setup` installs it", host=host.name)
    raise CommandFailed.from_result("backup", r, host=host.name)
