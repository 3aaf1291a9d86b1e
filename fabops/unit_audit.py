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


# What decides whether a unit runs code as root: who it runs as, every
# command it runs (the Ex forms carry the +, ! and !! flags), where, and
# what environment it reads.
# ExecConditionEx too: a unit's ExecCondition= runs before every start
# (fabops' own units check a cut-off restore's hold with it), as root
# unless User= says otherwise or a flag overrides it
EXEC_PROPS = ("ExecConditionEx", "ExecStartPreEx", "ExecStartEx", "ExecStartPostEx", "ExecReloadEx", "ExecStopEx", "ExecStopPostEx")
PROPS = ("Id", "LoadState", "FragmentPath", "SourcePath", "User", "WorkingDirectory", "EnvironmentFiles", "PermissionsStartOnly") + EXEC_PROPS
# systemd's names for the flags that run a command with root's rights
# whatever User= says: + (privileged), ! (no-setuid), !! (ambient)
ROOT_FLAGS = ("privileged", "no-setuid", "ambient")


def _props() -> List[str]:
    return [w for p in PROPS for w in ("-p", p)]


def unit_facts_cmd(units: List[str]) -> Cmd:
    """setup's read, as the setup user: one block of `Key=value` lines per
    unit, named by the name hosts.yml gives (`Name=`), ended by `@@end`."""
    return sh("for u in {units}; do printf 'Name=%s\\n' \"$u\"; systemctl show {props} -- \"$u\" 2>/dev/null; "
              "echo @@end; done", units=units, props=_props())


def units_cmd(units: List[str]) -> Cmd:
    """monitor's cheaper read: the login's home, then every unit in one
    systemctl (blocks in the order asked, blank-line separated)."""
    return sh("printf 'Home=%s\\n' \"$HOME\"; echo; systemctl show {props} -- {units} 2>/dev/null", units=units,
              props=_props())


def parse_unit_facts(text: str, order: Optional[List[str]] = None) -> Dict[str, Dict[str, List[str]]]:
    """{name: {Key: [values]}} from either read (a key may repeat: one
    Exec line per command). A block ends at `@@end` or a blank line; it is
    named by its `Name=` line, else by `order` (the units asked, in order).
    A block with neither (the Home= line of units_cmd) is under ""."""
    blocks: List[Dict[str, List[str]]] = []
    cur: Dict[str, List[str]] = {}
    for line in text.splitlines() + [""]:
        if line in ("@@end", ""):
            if cur:
                blocks.append(cur)
            cur = {}
        elif "=" in line:
            k, v = line.split("=", 1)
            cur.setdefault(k, []).append(v)
    out: Dict[str, Dict[str, List[str]]] = {}
    pending = list(order or [])
    for block in blocks:
        if "Name" in block:
            out[block["Name"][0]] = block
        elif "Id" in block and pending:
            out[pending.pop(0)] = block
        else:
            out.setdefault("", block)
    return out


def _exec_entries(facts: Dict[str, List[str]]):
    """(property, path, argv words, flags) of every command of the unit."""
    import re

    for prop in EXEC_PROPS:
        for value in facts.get(prop, []):
            path = re.search(r"path=([^ ;]+)", value)
            argv = re.search(r"argv\[\]=(.*?) ; ", value)
            flags = re.search(r"flags=([^;]*)", value)
            yield (prop, path.group(1) if path else "", (argv.group(1) if argv else "").split(),
                   (flags.group(1) if flags else "").split())


def runs_as_root(facts: Dict[str, List[str]]) -> bool:
    return (facts.get("User") or [""])[0] in ("", "root", "0")


def root_paths(facts: Dict[str, List[str]]) -> List[str]:
    """Every absolute path the unit uses with root's rights: the programs
    and arguments of the commands that run as root, and, for a root unit,
    its working directory and environment files."""
    root = runs_as_root(facts)
    start_only = (facts.get("PermissionsStartOnly") or ["no"])[0] == "yes"
    paths: List[str] = []
    for prop, path, argv, flags in _exec_entries(facts):
        privileged = root or any(f in ROOT_FLAGS for f in flags) or (
            start_only and prop not in ("ExecStartEx",))
        if privileged:
            paths += [path] + [w for w in argv if w.startswith("/")]
    if root:
        workdir = (facts.get("WorkingDirectory") or [""])[0].lstrip("!-")
        paths.append("/root" if workdir == "~" else workdir)
        for entry in facts.get("EnvironmentFiles", []):
            paths.append(entry.split(" (")[0].lstrip("-"))
    return [p for p in dict.fromkeys(paths) if p.startswith("/")]


# Where the system keeps units that are not fabops' nor in /etc: packages'
# (Debian's /lib is /usr/lib on merged-/usr systems), a local install's
# (/usr/local/lib), and units systemd generates at boot, e.g. from a SysV
# init script in /etc/init.d (/run/systemd/generator*). `unit: true` would
# write /etc/systemd/system/<name>, which outranks every one of them.
SYSTEM_UNIT_DIRS = ("/lib/systemd/", "/usr/lib/systemd/", "/usr/local/lib/systemd/", "/run/systemd/generator")
# Units whose stop locks every operator out of the host (the SSH server
# and what logins and the network need): never a deploy user's to stop.
LOCKOUT_UNITS = ("ssh.service", "sshd.service", "ssh.socket", "sshd.socket", "dbus.service", "dbus.socket",
                 "dbus-broker.service", "networking.service", "NetworkManager.service", "cloud-init.service",
                 "sudo.service", "amazon-ssm-agent.service", "snap.amazon-ssm-agent.amazon-ssm-agent.service")


def system_unit(facts: Dict[str, List[str]]) -> str:
    """Where the system's unit comes from (its file; for a generated unit,
    the script it was made from), or "" (a unit in /etc, the operator's or
    fabops', or none)."""
    fragment = (facts.get("FragmentPath") or [""])[0]
    if not fragment.startswith(SYSTEM_UNIT_DIRS):
        return ""
    source = (facts.get("SourcePath") or [""])[0]
    return f"{fragment}, generated from {source}" if source and source != fragment else fragment


def lockout_unit(name: str, facts: Optional[Dict[str, List[str]]] = None) -> bool:
    """Whether stopping the unit locks logins out, by systemd's own name
    for it (`ssh` is ssh.service; an alias names its unit), whatever
    hosts.yml wrote."""
    names = {name if "." in name else name + ".service"}
    names.update((facts or {}).get("Id", []))
    return any(n in LOCKOUT_UNITS or n.startswith(("systemd-", "getty@", "serial-getty@", "user@", "ssh@", "sshd@"))
               for n in names)


def with_parents(paths: List[str]) -> List[str]:
    """The paths and every directory above them but /: whoever can write a
    directory can replace what is in it."""
    out: List[str] = []
    for p in paths:
        p = posixpath.normpath(p)
        while p not in ("/", ""):
            out.append(p)
            p = posixpath.dirname(p)
    return list(dict.fromkeys(out))


def root_unit_problem(facts: Dict[str, List[str]], writable_roots: List[str],
                      writable: Optional[List[str]] = None) -> Optional[str]:
    """Why granting restart on this unit gives root to whoever can write
    `writable_roots` (the checkout, the deploy user's home) or the paths in
    `writable` (what setup found the deploy user can write), or None."""
    if not facts or "LoadState" not in facts:
        return "could not be read (systemctl show)"
    if facts["LoadState"][0] == "not-found":
        return None
    used = root_paths(facts)
    for path in used:
        for root in writable_roots:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return f"runs as root from {root}, which the deploy user can write"
    mine = set(writable or ())
    for path in used:
        for p in with_parents([path]):
            if p in mine:
                return f"runs as root {path}, and the deploy user can write {p}"
    return None
