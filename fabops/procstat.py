"""A service process's age and CPU ticks as /proc gives them: the reads
monitor's CPU window makes at each end (PROC_STAT) and status's read of
its services' ages, so the two reckon a service's uptime one way
(docs/monitor.md). Kept apart from monitor.py so status (remote.py) reads
it without importing the dashboard."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from .inventory import Host
from .shell import Cmd, lines, path, raw, sh

# printf, not echo, for what the host holds: dash's echo reads backslashes
# (a process's name in /proc/PID/stat; a cgroup path's `\x2d`).
PROC_STAT = raw(
    'read -r U R < /proc/uptime; [ -n "$TK" ] || TK=$(getconf CLK_TCK 2>/dev/null || echo 100); echo "$U $TK"; '
    '[ -n "${T0:-}" ] || T0=${U%.*}${U#*.}; '
    'for p in $PIDS; do [ "$p" -gt 0 ] 2>/dev/null && [ -r /proc/$p/stat ] && read -r L < /proc/$p/stat && printf \'%s\\n\' "$L"; done; '
    'for g in $CGS; do for f in "/sys/fs/cgroup$g/cpu.stat" "/sys/fs/cgroup/unified$g/cpu.stat"; do '
    '[ -r "$f" ] && read -r K V < "$f" && printf \'cg %s %s\\n\' "$g" "$V" && break; done; done; true'
)


def _proc_stat(line: str) -> Optional[Tuple[int, int, int]]:
    """(pid, utime+stime ticks, start time ticks) of a /proc/<pid>/stat line.
    The command name sits in parentheses and may hold spaces or ')'."""
    head, sep, rest = line.rpartition(")")
    fields = rest.split()
    pid = head.split("(", 1)[0].strip()
    if not sep or not pid.isdigit() or len(fields) < 20:
        return None
    try:
        # fields[0] is field 3 (state): utime 14, stime 15, starttime 22
        return int(pid), int(fields[11]) + int(fields[12]), int(fields[19])
    except ValueError:
        return None


def parse_end(text: str) -> Tuple[Optional[float], int, Dict[int, Tuple[int, int]], Dict[str, int]]:
    """One end of a window as the script printed it (PROC_STAT): the uptime,
    the tick rate, {pid: (ticks, start)} and {cgroup: usage_usec}."""
    lines = text.splitlines()
    head = lines[0].split() if lines else []
    try:
        uptime = float(head[0]) if head else None
    except ValueError:
        uptime = None
    hz = int(head[1]) if len(head) > 1 and head[1].isdigit() and int(head[1]) > 0 else 100
    procs, cgroups = {}, {}
    for line in lines[1:]:
        if line.startswith("cg "):
            words = line.split()
            if len(words) == 3 and words[2].isdigit():
                cgroups[words[1]] = int(words[2])
            continue
        parsed = _proc_stat(line)
        if parsed:
            procs[parsed[0]] = (parsed[1], parsed[2])
    return uptime, hz, procs, cgroups


def process_ages(uptime: Optional[float], hz: int, procs: Dict[int, Tuple[int, int]]) -> Dict[int, float]:
    """{pid: seconds since the process started}: the host's /proc/uptime less
    the start time in its /proc/<pid>/stat, to a tenth of a second (the
    clock's ticks are hundredths). monitor's and status's one reckoning of
    a service's uptime (status read the mtime of /proc/<pid>, whole
    seconds and often later than the start; monitor cut to whole seconds:
    the two disagreed by 1-2 s, trial 2 #8)."""
    if uptime is None:
        return {}
    return {pid: round(max(0.0, uptime - start / hz), 1) for pid, (_ticks, start) in procs.items()}


def ages_cmd(host: Host) -> Cmd:
    """status's read of its services' ages: each main PID (systemd's
    MainPID, the process back end's pidfile) and the /proc reads monitor's
    closing sample makes (PROC_STAT), parsed by service_ages."""
    parts = [raw("PIDS= CGS=")]
    units = [s.name for s in host.services if s.manager == "systemd"]
    if units:
        parts.append(sh('PIDS="$PIDS $(systemctl show -p MainPID --value {units} 2>/dev/null)"', units=units))
    for svc in (s for s in host.services if s.manager == "process"):
        parts.append(sh('[ -r {pf} ] && read -r P1 R < {pf} && PIDS="$PIDS $P1"', pf=path(host.paths.service_pid(svc.name))))
    return lines(parts + [PROC_STAT])


def service_ages(text: str) -> Dict[int, float]:
    """{pid: age} from ages_cmd's output."""
    uptime, hz, procs, _ = parse_end(text)
    return process_ages(uptime, hz, procs)
