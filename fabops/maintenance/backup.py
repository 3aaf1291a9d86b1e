"""`backup` from the laptop: one round trip runs the host's own backup code
(fabops/host/backup.py) with the host's settings on stdin, and reads its
one JSON answer (docs/backups.md). The decisions are the host's: what a run
copies, what retention deletes; this module only carries them."""
from __future__ import annotations

import json
import sys

from .. import errors
from ..errors import CommandFailed, FabopsError
from ..host.backup import exit_code  # noqa: F401 (the task's; cron's fast path exits with it too)
from ..inventory import Host
from ..shell import Cmd, join, path, sh
from ..target import Target

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
    r = Target.of(c, host).run(backup_cmd(host_python(host), action, extra), f"backup {action}", check=False,
                               stdin=host_yml(host), timeout=waits)
    try:
        data = json.loads(r.stdout)
    except ValueError:
        data = None
    if r.exited == 0 and isinstance(data, dict):
        return data
    said = f"{r.stderr}\n{r.stdout}"
    if r.exited == errors.USAGE:  # restore: no such snapshot or item, nothing touched
        raise errors.UsageError(r.stderr.strip().removeprefix("fabops: "), host=host.name)
    if r.exited == errors.LOCKED:  # the host waited its LOCK_WAIT for a deploy (or another backup)
        raise errors.LockedError(r.stderr.strip().removeprefix("fabops: ") or "locked", host=host.name)
    if r.exited == errors.FAILED and r.stderr.startswith("fabops: backup"):  # its own one line (host/backup.main)
        raise FabopsError(r.stderr.strip().removeprefix("fabops: "), host=host.name)
    if r.exited == 127 or "No module named" in said:
        raise FabopsError("fabops on the host has no backup yet (not installed, or older than this one): "
                          "a deploy or `setup` installs it", host=host.name)
    raise CommandFailed.from_result("backup", r, host=host.name)
