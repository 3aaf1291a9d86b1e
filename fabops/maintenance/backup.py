"""`backup` from the laptop: one round trip runs the host's own backup code
(fabops/host/backup.py) with the host's settings on stdin, and reads its
one JSON answer (docs/backups.md). The decisions are the host's: what a run
copies, what retention deletes; this module only carries them."""
from __future__ import annotations

import json
import sys

from .. import errors
from ..errors import CommandFailed, FabopsError
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


def exit_code(action: str, data: dict) -> int:
    """A run with a failed item, or whose off-host copy failed, is FAILED
    (2): that item, or that snapshot off the host, has no backup (the
    local snapshot is still written). A listing, a plan and an all-ok run
    are OK (no repository configured is a warning line, not a code: cron's
    run must not read as failing). A verify is FAILED unless every check
    it made (local, off-host) is ok."""
    if action == "list":  # the repository's snapshots could not be read
        return errors.FAILED if (data.get("offsite_snapshots") or {}).get("error") else errors.OK
    if action == "restore":  # an item not put back, or a service that failed its gate after
        return errors.OK if (data.get("restore") or {}).get("ok") else errors.FAILED
    if action == "restore-plan":  # the real restore's code when an item is refused: it is not put back
        items = (data.get("restore_plan") or {}).get("items") or []
        return errors.FAILED if any(i.get("refused") for i in items) else errors.OK
    if action == "verify":  # a snapshot that does not match its manifest, or none to check
        checks = [v for v in (data.get("verify") or {}).values() if v]
        return errors.OK if checks and all(v.get("ok") for v in checks) else errors.FAILED
    failed = not data.get("ok") or bool((data.get("offsite") or {}).get("error"))
    return errors.FAILED if action == "run" and failed else errors.OK
