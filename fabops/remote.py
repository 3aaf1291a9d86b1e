"""Agentless reads and small writes over plain SSH (or a local Context).

These work even when fabops is not installed on the host, or is broken
(DESIGN.md §2 rule 3): only POSIX sh, coreutils and, for state edits,
python3 and flock(1).
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

from .errors import CommandFailed
from .fanout import FanoutResult, run_hosts
from .host.services import parse_process_status, parse_systemd_show, process_status_cmd, systemd_status_cmd
from .inventory import Host
from .probe import MARK, split_sections
from .shell import q, quote_path


def for_each_host(
    inventory: Optional[str],
    hosts: Optional[str],
    fn: Callable[[Any, Host], Any],
    *,
    parallel: int = 10,
    accept_new: bool = False,
    connect_timeout=None,
) -> FanoutResult:
    """Load the inventory, select hosts, and run `fn(connection, host)` on each
    in bounded parallel, one connection per host, closed afterwards."""
    from .connection import close_quietly, connect
    from .tasks._base import check_timeout, select

    timeout = check_timeout(connect_timeout, "--connect-timeout")
    inv, chosen = select(inventory, hosts)

    def one(host: Host):
        cxn = connect(host, inv, accept_new=accept_new, connect_timeout=timeout)
        try:
            return fn(cxn, host)
        finally:
            close_quietly(cxn)

    return run_hosts(chosen, one, parallel=parallel)


def home_file(host: Host, name: str) -> str:
    return quote_path(host.home.rstrip("/") + "/" + name)


def history_cmd(host: Host, n: int) -> str:
    return f"tail -n {int(n)} {home_file(host, 'history.jsonl')} 2>/dev/null || true"


def parse_history(output: str) -> List[dict]:
    records = []
    for line in output.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def read_remote_history(c, host: Host, n: int = 20) -> List[dict]:
    return parse_history(c.run(history_cmd(host, n), hide=True, warn=True).stdout)


def status_cmd(host: Host) -> str:
    """One round trip: service states, state.json and the last history record."""
    home = host.home.rstrip("/")
    parts = []
    units = [s.name for s in host.services if s.manager == "systemd"]
    procs = [s for s in host.services if s.manager == "process"]
    if units:
        parts.append(f"echo '{MARK}systemd'; {systemd_status_cmd(units)} 2>/dev/null")
    if procs:
        parts.append(f"echo '{MARK}process'\n{process_status_cmd(home, procs)}")
    parts.append(f"echo '{MARK}state'; cat {home_file(host, 'state.json')} 2>/dev/null")
    parts.append(f"echo '{MARK}last'; tail -n 1 {home_file(host, 'history.jsonl')} 2>/dev/null")
    parts.append(
        f"echo '{MARK}head'; git -C {quote_path(host.app.path)} rev-parse HEAD 2>/dev/null"
    )
    parts.append(f"echo '{MARK}end'")
    return "\n".join(parts) + "\n"


def parse_status(output: str, host: Host) -> Dict[str, Any]:
    sections = split_sections(output)
    services: Dict[str, Any] = {}
    units = [s.name for s in host.services if s.manager == "systemd"]
    procs = [s.name for s in host.services if s.manager == "process"]
    if units:
        services.update(parse_systemd_show(sections.get("systemd", ""), units))
    if procs:
        services.update(parse_process_status(sections.get("process", ""), procs))
    try:
        state = json.loads(sections.get("state") or "{}")
    except ValueError:
        state = {}
    try:
        last = json.loads(sections.get("last") or "null")
    except ValueError:
        last = None
    return {
        "services": [services[s.name].to_dict() for s in host.services],
        "deployed": state.get("deployed"),
        "deployed_at": state.get("deployed_at"),
        "previous": state.get("previous"),
        "head": (sections.get("head") or None),
        "pin": state.get("pin"),
        "pin_reason": state.get("pin_reason"),
        "bad": sorted((state.get("bad") or {}).keys()),
        "last_check": state.get("last_check"),
        "last_result": state.get("last_result"),
        "in_progress": state.get("in_progress"),
        "last_run": last,
    }


def gather_status(c, host: Host) -> Dict[str, Any]:
    result = c.run(status_cmd(host), hide=True, warn=True)
    return parse_status(result.stdout, host)


# Edits state.json under the host lock with the host's own python3: agentless,
# and atomic (temp file, fsync, rename) like the host side.
_STATE_EDIT = r"""
import json, os, sys, tempfile
path = sys.argv[1]
try:
    state = json.load(open(path))
except Exception:
    state = {}
old = state.get("pin")
state["pin"] = None
state["pin_reason"] = None
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
with os.fdopen(fd, "w") as fh:
    json.dump(state, fh, indent=2, sort_keys=True)
    fh.flush()
    os.fsync(fh.fileno())
os.chmod(tmp, 0o600)
os.replace(tmp, path)
print(old or "")
"""


def unpin_cmd(host: Host, wait: float = 10.0) -> str:
    lock = home_file(host, "lock")
    state = home_file(host, "state.json")
    return (
        f"[ -f {state} ] || {{ echo; exit 0; }}; "
        f"flock -w {float(wait):g} {lock} python3 -c {q(_STATE_EDIT)} {state}"
    )


def unpin(c, host: Host) -> Optional[str]:
    """Clear the host's pin; returns the commit it was pinned to, if any."""
    result = c.run(unpin_cmd(host), hide=True, warn=True)
    if not result.ok:
        if result.exited == 1 and not result.stdout.strip() and not result.stderr.strip():
            from .errors import LockedError

            raise LockedError("locked: a run holds the host lock; try again when it ends", host=host.name)
        last = (result.stderr or result.stdout).strip().splitlines()
        raise CommandFailed(f"unpin failed: {last[-1] if last else 'exit ' + str(result.exited)}", host=host.name)
    return result.stdout.strip() or None
