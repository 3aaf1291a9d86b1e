"""Units that would give root away (docs/security.md, "Units that run as
root"): a unit without User= whose program, command line or working
directory lies in the deploy user's files runs that user's code as root,
so a right to restart it is root for that user, and through cron for every
pusher. setup reads every unit it would grant rights on (unit_facts_cmd)
and refuses; monitor reads the same properties (units_cmd) and warns."""
from __future__ import annotations

import posixpath
from typing import Dict, List, Optional

from .shell import Cmd, sh


def absolute(path: str, home: str) -> str:
    """A host path as a unit or a root-owned script must spell it: `~/`
    becomes the deploy user's home as the host reports it (root's is
    /root, not /home/root)."""
    if path == "~" or path.startswith("~/"):
        return posixpath.join(home, path[2:])
    return path


def unit_facts_cmd(units: List[str]) -> Cmd:
    """setup's read: who each unit runs as, what it starts and where, and
    whether the login user can write the program it starts: one command,
    one block of `Key=value` lines per unit, each ended by `@@end`."""
    return sh("for u in {units}; do systemctl show -p Id -p User -p ExecStart -p WorkingDirectory -- \"$u\"; "
              "p=$(systemctl show -p ExecStart --value -- \"$u\" | sed -n 's/^{{ path=\\([^ ;]*\\).*/\\1/p' | head -n 1); "
              "if [ -n \"$p\" ] && [ -w \"$p\" ]; then echo Writable=yes; else echo Writable=no; fi; echo @@end; done",
              units=units)


def units_cmd(units: List[str]) -> Cmd:
    """monitor's cheaper read (one systemctl for every unit, no write
    test): the login's home, then a block per unit, blank-line separated."""
    return sh("echo \"Home=$HOME\"; echo; systemctl show -p Id -p User -p ExecStart -p WorkingDirectory -- {units} "
              "2>/dev/null", units=units)


def parse_unit_facts(text: str) -> Dict[str, Dict[str, str]]:
    """{Id: {User, ExecStart, WorkingDirectory, ...}} from either read; a
    block ends at `@@end` or a blank line. A block without Id (the Home=
    line of units_cmd) is under ""."""
    out: Dict[str, Dict[str, str]] = {}
    cur: Dict[str, str] = {}
    for line in text.splitlines() + [""]:
        if line in ("@@end", ""):
            if cur:
                out[cur.get("Id", "")] = cur
            cur = {}
        elif "=" in line:
            k, v = line.split("=", 1)
            cur.setdefault(k, v)
    return out


def root_unit_problem(facts: Dict[str, str], writable_roots: List[str]) -> Optional[str]:
    """Why granting restart on this unit gives root to whoever can write
    `writable_roots` (the checkout, the deploy user's home), or None."""
    if facts.get("User", "") not in ("", "root", "0"):
        return None
    exec_start, workdir = facts.get("ExecStart", ""), facts.get("WorkingDirectory", "")
    for root in writable_roots:
        prefix = root.rstrip("/") + "/"
        if prefix in exec_start + " " or workdir == root or workdir.startswith(prefix):
            return f"runs as root from {root}, which the deploy user can write"
    if facts.get("Writable") == "yes":
        return "runs as root a program the deploy user can write"
    return None
