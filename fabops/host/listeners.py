"""Whose a listening port is: the service's own, or another process's
(docs/pipeline.md, "Whose port").

A port that listens, and an HTTP check that answers on it, prove nothing
about a service when another process holds the port (`python3 -m
http.server 3013` started by hand): the service then dies of EADDRINUSE
while the other process answers for it. So the readiness gate, the watch
and the preflight ask `port_owner`: the LISTEN sockets on the port (state
0A in /proc/net/tcp and tcp6, by inode) against the sockets among the open
files of the service's processes (`socket:[inode]` links in
/proc/PID/fd). The service's processes are those of its systemd unit's
cgroup (cgroup.procs, found from its MainPID), or for the process back end
its recorded PID's process group and session, and under either every
descendant of its main PID.

One /proc read per look, nothing run. When the service's own file
descriptors cannot be read (another user's process: EACCES), the answer is
"unverified" and the caller trusts the port as before, saying so; what
the readable ones hold still counts. Every listener on the port must be
the service's: a stranger beside its own is another process.

Self-contained and standard library only: it runs on the host's Python
3.9, and as `python3 -c` source over a connection (checks.RemoteProbe,
monitor), where `main` prints the answer as one JSON line.
"""
from __future__ import annotations

import os
import sys
from collections import namedtuple

PROC = "/proc"
CGROUP_ROOT = "/sys/fs/cgroup"
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column
COMMAND_WIDTH = 60  # a holder's command line is cut to this many characters

# what port_owner answers
CLOSED = "closed"
OWN = "own"
OTHER = "other"
UNVERIFIED = "unverified"


# collections.namedtuple, not typing's: this file runs on every monitor
# look as `python3 -c` source, and typing is the largest import it would
# make (docs/benchmarks.md, "One python3 on the host"). The annotations
# below are never evaluated (`from __future__ import annotations`), so
# builtin generics and `X | None` in them are fine on the host's 3.9.
class Listener(namedtuple("Listener", "address port inode")):
    """address: 127.0.0.1, 0.0.0.0, ::, ::1 ...; port; the socket's inode."""
    __slots__ = ()


class PortOwner(namedtuple("PortOwner", "port state pid command why", defaults=(None, "", ""))):
    """port; state: closed | own | other | unverified; pid: the other
    process holding it, when it could be found; command: its command line,
    cut to COMMAND_WIDTH; why: unverified: why not."""
    __slots__ = ()

    @property
    def holder(self) -> str:
        """`pid 4242: python3 -m http.server 3013`, or what is known."""
        if self.pid is None:
            return "a process this user cannot see"
        return f"pid {self.pid}: {self.command}" if self.command else f"pid {self.pid}"

    def held_message(self, service: str) -> str:
        """The gate's, the watch's and the preflight's words for a port
        another process holds."""
        return f"port {self.port} is held by another process ({self.holder}), not {service}"

    def refusal(self, service: str, state: str) -> str:
        """Why a run that would start `service` (not running: `state` in
        words) refuses up front: the preflight's and a restart plan's words."""
        return (f"{self.held_message(service)} ({state}): stop that process or give {service} another port, "
                "then run again")

    def to_dict(self) -> dict:
        return {"state": self.state, "pid": self.pid, "command": self.command or None}


# ---------------------------------------------------------------- parsing


def _address(text: str) -> str:
    """/proc/net/tcp's hex address: 8 digits (IPv4) or 32 (IPv6), each
    32-bit word in the host's byte order (little-endian on every host we
    run on)."""
    import socket

    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def parse_listeners(text: str, only: int | None = None) -> list[Listener]:
    """The LISTEN sockets in /proc/net/tcp or tcp6 text (the header line
    and anything unreadable skipped); on port `only` alone when given (the
    others' addresses are not worked out: no socket import for them)."""
    out: list[Listener] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 10 or parts[3] != LISTEN:
            continue
        addr, _, port = parts[1].rpartition(":")
        try:
            if only is not None and int(port, 16) != only:
                continue
            listener = Listener(_address(addr), int(port, 16), int(parts[9]))
        except ValueError:
            continue
        if listener.inode:
            out.append(listener)
    return out


def parse_stat(text: str) -> tuple[int, int, int] | None:
    """(ppid, process group, session) from a /proc/PID/stat line."""
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def socket_inode(link: str) -> int | None:
    """The inode of a `socket:[12345]` fd link, else None."""
    if link.startswith("socket:[") and link.endswith("]"):
        try:
            return int(link[8:-1])
        except ValueError:
            return None
    return None


# ---------------------------------------------------------------- reading /proc


def _read(path: str) -> str:
    """A file's text, "" when it cannot be read (preflight.read_text's twin: this
    file runs alone as `python3 -c` source and imports nothing of fabops)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def listeners(port: int, proc: str = PROC) -> list[Listener]:
    """Every LISTEN socket on `port`, IPv4 and IPv6."""
    return [x for name in ("tcp", "tcp6") for x in parse_listeners(_read(f"{proc}/net/{name}"), port)]


def _pids(proc: str) -> list[int]:
    try:
        return [int(d) for d in os.listdir(proc) if d.isdigit()]
    except OSError:
        return []


def _table(proc: str) -> dict[int, tuple[int, int, int]]:
    """{pid: (ppid, group, session)} of every process this user can see."""
    out = {}
    for pid in _pids(proc):
        found = parse_stat(_read(f"{proc}/{pid}/stat"))
        if found is not None:
            out[pid] = found
    return out


def _cgroup_procs(pid: int, proc: str, root: str) -> set[int]:
    """The PIDs of `pid`'s cgroup (v2: the `0::` line), or none."""
    for line in _read(f"{proc}/{pid}/cgroup").splitlines():
        if line.startswith("0::/") and line.strip() != "0::/":
            text = _read(root + line[3:].strip() + "/cgroup.procs")
            return {int(p) for p in text.split() if p.isdigit()}
    return set()


def members(pid: int, systemd: bool, proc: str = PROC, root: str = CGROUP_ROOT) -> set[int]:
    """The service's processes: its main PID, every descendant, and its
    unit's cgroup (systemd) or its process group and session (the process
    back end starts each service with setsid: group and session are its PID)."""
    table = _table(proc)
    found = {pid}
    if systemd:
        found |= _cgroup_procs(pid, proc, root)
    else:
        found |= {p for p, (_pp, group, session) in table.items() if pid in (group, session)}
    children: dict[int, list[int]] = {}
    for p, (ppid, _g, _s) in table.items():
        children.setdefault(ppid, []).append(p)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _sockets(pid: int, proc: str) -> set[int]:
    """The socket inodes among `pid`'s open files. PermissionError when
    they cannot be read; a process gone meanwhile has none."""
    out = set()
    try:
        fds = os.listdir(f"{proc}/{pid}/fd")
    except FileNotFoundError:
        return out
    for fd in fds:
        try:
            inode = socket_inode(os.readlink(f"{proc}/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
        if inode is not None:
            out.add(inode)
    return out


def command_line(pid: int, proc: str = PROC, width: int = COMMAND_WIDTH) -> str:
    """`python3 -m http.server 3013`: a process's command line, cut."""
    words = [w for w in _read(f"{proc}/{pid}/cmdline").split("\0") if w]
    if words and words[0].startswith("/"):
        words[0] = words[0].rsplit("/", 1)[1] or words[0]  # /usr/bin/python3 -> python3: the pid says which
    text = " ".join(words) or _read(f"{proc}/{pid}/comm").strip()
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= width else text[:width - 1] + "…"


def _holder(inodes: set[int], skip: set[int] | list[int], proc: str) -> int | None:
    """The first process (lowest PID) whose open files include one of
    `inodes`, or None when none this user can read does."""
    skip = set(skip)
    for pid in sorted(_pids(proc)):
        if pid in skip:
            continue
        try:
            if _sockets(pid, proc) & inodes:
                return pid
        except OSError:
            continue
    return None


def unit_procs(unit: str, proc: str = PROC) -> set[int]:
    """The processes in systemd unit `unit`'s cgroup (`bot` or
    `bot.service`: a component of their `0::` cgroup path), found from
    /proc alone: what is left of a unit whose main PID is gone."""
    name = unit if unit.endswith(".service") else unit + ".service"
    out = set()
    for pid in _pids(proc):
        for line in _read(f"{proc}/{pid}/cgroup").splitlines():
            if line.startswith("0::") and name in line[3:].strip().split("/"):
                out.add(pid)
    return out


def service_procs(pid: int | None, systemd: bool, unit: str = "", proc: str = PROC,
                  root: str = CGROUP_ROOT) -> set[int] | None:
    """The service's processes (`members`) when its main PID runs. When it
    does not (died, between systemd's restarts, a stale pidfile) what is
    left of it: its unit's cgroup (systemd, `unit` given) or its recorded
    PID's process group and session (the process back end). None: neither
    can be told (a systemd PID gone, no unit named)."""
    if pid and os.path.isdir(f"{proc}/{pid}"):
        return members(pid, systemd, proc, root)
    if systemd and unit:
        return unit_procs(unit, proc)
    if pid and not systemd:
        return members(pid, False, proc, root)
    return None if pid else set()


def _member_sockets(group: set[int], proc: str) -> tuple[set[int], list[int]]:
    """The socket inodes of the service's processes this user can read,
    and the processes it cannot (another user's helper): one unreadable
    member does not hide what the others hold."""
    mine: set[int] = set()
    unread = []
    for p in sorted(group):
        try:
            mine |= _sockets(p, proc)
        except PermissionError:
            unread.append(p)
    return mine, unread


def _holds_all(pid: int, inodes: set[int], proc: str) -> bool:
    """Whether the main PID itself holds every listener, the healthy
    service's usual case: it is always one of the service's processes
    (members), so the answer is OWN whoever the others are, and the table
    of every process on the host (a /proc read each: 8 of a cron poll's ms
    on a host with 170 processes, docs/benchmarks.md) is not read."""
    try:
        return inodes <= _sockets(pid, proc)
    except OSError:  # its open files cannot be read: the long way says what is known
        return False


def port_owner(port: int, pid: int | None, systemd: bool = False, proc: str = PROC,
               root: str = CGROUP_ROOT, unit: str = "") -> PortOwner:
    """Whose the LISTEN sockets on `port` are. `pid`: the service's main
    PID, the one last recorded when it is not running; `unit`: its systemd
    unit (service_procs: a restarted or dying instance of the service is
    never "another process"). CLOSED: nothing listens; OWN: every listener
    is a socket of the service's processes; OTHER: one is not (even beside
    the service's own: [::1]:PORT beside 127.0.0.1:PORT, SO_REUSEPORT, which
    a localhost check may reach), its holder named when this user can see
    it; UNVERIFIED: whose it is cannot be told (a member's open files
    cannot be read, or the service's process cannot be seen)."""
    inodes = {x.inode for x in listeners(port, proc)}
    if not inodes:
        return PortOwner(port, CLOSED)
    if pid and _holds_all(pid, inodes, proc):
        return PortOwner(port, OWN)
    group = service_procs(pid, systemd, unit, proc, root)
    if group is None:
        return PortOwner(port, UNVERIFIED, why=f"process {pid} not visible in {proc}")
    mine, unread = _member_sockets(group, proc)
    foreign = inodes - mine
    if not foreign:
        return PortOwner(port, OWN)
    holder = _holder(foreign, group, proc)
    if holder is None and unread:
        return PortOwner(port, UNVERIFIED, why=f"cannot read {proc}/PID/fd of pid {unread[0]}")
    return PortOwner(port, OTHER, holder, command_line(holder, proc) if holder else "")


def _json(value) -> str:
    """`value` (a dict of str, int and None) as json.dumps writes it,
    ASCII only, without importing json: main's one line a port, on a
    python3 that imports nothing else for it (docs/benchmarks.md, "One
    python3 on the host")."""
    if isinstance(value, dict):
        return "{" + ", ".join(_json(str(k)) + ": " + _json(v) for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    out = []
    for ch in str(value):
        code = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif 32 <= code < 127:
            out.append(ch)
        elif code > 0xFFFF:  # a surrogate pair, as json.dumps writes one
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 | code >> 10, 0xDC00 | code & 0x3FF))
        else:
            out.append("\\u%04x" % code)
    return '"' + "".join(out) + '"'


_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def main(argv: list[str]) -> int:
    """`python3 -c SOURCE PORT PID|- systemd[:UNIT]|process ...`: port_owner
    of each triple as one JSON line (state, pid, command, why); a PID of 0
    or `-` is a service whose main PID is not known."""
    for i in range(0, len(argv) - 2, 3):
        port, pid, kind = argv[i:i + 3]
        manager, _, unit = kind.partition(":")
        try:
            found = port_owner(int(port), int(pid) if pid.isdigit() and int(pid) > 0 else None,
                               manager == "systemd", unit=unit)
        except ValueError:
            found = PortOwner(0, UNVERIFIED, why=f"not a port: {port[:20]}")
        print(_json(dict(found.to_dict(), why=found.why or None)))
    return 0


def from_json(port: int, line: str) -> PortOwner:
    """main's line back as a PortOwner (UNVERIFIED when it is not one)."""
    import json  # the laptop's and the host's fabops: main's python3 -c never reads one

    try:
        data = json.loads(line)
        return PortOwner(port, data["state"], data.get("pid"), data.get("command") or "", data.get("why") or "")
    except (ValueError, KeyError, TypeError):
        return PortOwner(port, UNVERIFIED, why="no answer from the host's python3")


if __name__ == "__main__":  # pragma: no cover - run as `python3 -c` source
    sys.exit(main(sys.argv[1:]))
