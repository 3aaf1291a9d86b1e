"""A small CPU/memory/disk sample appended by every cron run on the host
(`<host home>/metrics.jsonl`), so `inv monitor --history` can draw trends
and a one-shot `inv monitor` can report CPU as the rate since the newest
sample, without a window of its own (docs/monitor.md, "CPU").

Each line starts with the clock it was taken on, in a fixed order a shell
can read (the monitor's script compares its age without a parser):
`{"boot":<boot id>,"up_cs":<centiseconds since boot>,"hz":<CLK_TCK>,"t":...`,
then the cumulative counters: /proc/stat's cpu line and, per configured
service, `svc`: {name: {"inv", "cg", "usec"}} (a systemd unit: its
invocation ID and its cgroup v2 cpu.stat usage_usec) and/or
{"pid", "start", "ticks"} (the main PID, its start time and utime+stime in
clock ticks: a process-managed service, or a unit whose cgroup is not
readable). A restart between two samples changes the invocation ID or the
PID/start time, which gives no figure, never a wrong one.

Reading /proc, the cgroup files and statvfs costs well under a millisecond
(systemctl runs only for a unit outside system.slice's default place); the
file is kept to the last few days by trimming it when it grows past a bound.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, Iterable, Optional

from .files import append_line, atomic_write

MAX_LINES = 4000  # about two weeks at one sample per 5 min
TRIM_TO = 3000
BOOT_ID = "/proc/sys/kernel/random/boot_id"
# cgroup v2: the unified hierarchy, or its mount beside v1's (a hybrid host)
CGROUP_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
# systemd's link from a running unit to its invocation ID (changes at every start)
INVOCATIONS = "/run/systemd/units"
SUFFIXES = (".service", ".socket", ".timer", ".scope", ".slice", ".target", ".mount", ".path")


def sample() -> Optional[dict]:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            cpu = [int(x) for x in fh.readline().split()[1:]]
        mem = {}
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    mem[key] = int(rest.split()[0])
        st = os.statvfs("/")
    except (OSError, ValueError, IndexError):
        return None
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    usable = used + st.f_bavail * st.f_frsize
    return {
        "t": round(time.time(), 1),
        "cpu": cpu,
        "memory": round(100.0 * (mem["MemTotal"] - mem.get("MemAvailable", 0)) / mem["MemTotal"], 1) if mem.get("MemTotal") else None,
        "disk": round(100.0 * used / usable, 1) if usable else None,
    }


def clock() -> dict:
    """The sample's clock: the boot it was taken in, centiseconds since that
    boot (CLOCK_BOOTTIME: /proc/uptime's clock, which no wall-clock change
    moves) and the clock tick rate of /proc/<pid>/stat."""
    try:
        with open(BOOT_ID, encoding="ascii") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = ""
    return {"boot": boot, "up_cs": int(time.clock_gettime(time.CLOCK_BOOTTIME) * 100),
            "hz": os.sysconf("SC_CLK_TCK")}


def proc_counters(pid) -> Optional[dict]:
    """{"pid", "start", "ticks"} of a live process: its start time and
    utime+stime (clock ticks), from /proc/<pid>/stat."""
    try:
        pid = int(pid)
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rpartition(")")[2].split()
        # fields[0] is field 3 (state): utime 14, stime 15, starttime 22
        if pid <= 0 or fields[0] in ("Z", "X"):
            return None
        return {"pid": pid, "start": int(fields[19]), "ticks": int(fields[11]) + int(fields[12])}
    except (OSError, ValueError, IndexError, TypeError):
        return None


def cgroup_usage(cgroup: str) -> Optional[int]:
    """usage_usec of a cgroup v2 (the first line of its cpu.stat)."""
    for root in CGROUP_ROOTS:
        try:
            with open(f"{root}{cgroup}/cpu.stat", encoding="ascii") as fh:
                key, value = fh.readline().split()
            return int(value) if key == "usage_usec" else None
        except (OSError, ValueError):
            continue
    return None


def unit_name(name: str) -> str:
    return name if name.endswith(SUFFIXES) else name + ".service"


def _invocation(unit: str) -> str:
    try:
        return os.readlink(f"{INVOCATIONS}/invocation:{unit}")
    except OSError:
        return ""


def _systemctl_show(units) -> Dict[str, Dict[str, str]]:
    """{unit: {ControlGroup, InvocationID, MainPID}} from one systemctl
    (the slow path: a unit outside system.slice's default place)."""
    import subprocess

    try:
        out = subprocess.run(["systemctl", "show", "-p", "Id,ControlGroup,InvocationID,MainPID", *units],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: Dict[str, Dict[str, str]] = {}
    for block in out.split("\n\n"):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            found[props["Id"]] = props
    return found


def unit_counters(units: Iterable[str]) -> Dict[str, dict]:
    """{unit as configured: counters} of the running units. A unit in its
    default cgroup (/system.slice/<unit>) costs two small reads; the others
    share one systemctl. No cgroup v2 usage: the main PID's counters."""
    out: Dict[str, dict] = {}
    slow = {}
    for name in units:
        unit = unit_name(name)
        inv, cg = _invocation(unit), f"/system.slice/{unit}"
        usec = cgroup_usage(cg) if inv and "@" not in unit else None
        if usec is None:
            slow[unit] = name
        else:
            out[name] = {"inv": inv, "cg": cg, "usec": usec}
    for unit, props in (_systemctl_show(list(slow)) if slow else {}).items():
        if unit not in slow or not props.get("InvocationID"):
            continue  # not running
        entry: dict = {"inv": props["InvocationID"]}
        cg = props.get("ControlGroup") or ""
        usec = cgroup_usage(cg) if cg.startswith("/") else None
        if usec is not None:
            entry.update(cg=cg, usec=usec)
        else:
            entry.update(proc_counters(props.get("MainPID")) or {})
        out[slow[unit]] = entry
    return out


def pidfile_counters(pidfile: str) -> Optional[dict]:
    """A process-managed service's counters: the PID in its pidfile (with the
    start time the back end wrote, when it still matches)."""
    try:
        with open(pidfile, encoding="ascii") as fh:
            words = fh.read().split()
    except OSError:
        return None
    found = proc_counters(words[0]) if words else None
    if found and len(words) > 1 and words[1] != str(found["start"]):
        return None  # the PID was reused by another process
    return found


def service_counters(services, paths) -> Dict[str, dict]:
    """{service name: counters} for the host's configured services."""
    out = unit_counters([s.name for s in services if s.manager == "systemd"])
    for svc in services:
        if svc.manager == "process" and paths is not None:
            found = pidfile_counters(paths.service_pid(svc.name))
            if found:
                out[svc.name] = found
    return out


def record(path: str, services=(), paths=None) -> None:
    """Append one sample (with `services`' counters, their pidfiles under
    `paths`); trim the file now and then. Never raises."""
    try:
        s = sample()
        if s is None:
            return
        rec = clock()  # first: the shell reads these keys from the line's start
        rec.update(s)
        if services:
            rec["svc"] = service_counters(services, paths)
        text = json.dumps(rec, separators=(",", ":"))
        append_line(path, text, fsync=False)
        # the file's size against the bound, this line as the typical one: the
        # file is read only when it holds about MAX_LINES lines
        if os.path.getsize(path) > MAX_LINES * (len(text) + 1):
            with open(path, encoding="utf-8") as fh:
                lines = fh.readlines()
            if len(lines) > MAX_LINES:
                atomic_write(path, "".join(lines[-TRIM_TO:]))
    except (OSError, ValueError):
        pass


def series(lines, n: int = 48) -> dict:
    """CPU % between consecutive samples, memory and disk %, oldest first."""
    samples = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("cpu"), list):
            samples.append(rec)
    cpu = []
    for a, b in zip(samples, samples[1:]):
        ca, cb = a["cpu"], b["cpu"]
        # Each point is the CPU use over the interval between two cron samples,
        # never an average since boot; a pair across a reboot (the counters
        # went back) or with no time between them gives no point.
        if len(ca) < 4 or len(ca) != len(cb) or any(y < x for x, y in zip(ca, cb)):
            continue
        total = sum(cb) - sum(ca)
        if total <= 0:
            continue
        idle = (cb[3] + (cb[4] if len(cb) > 4 else 0)) - (ca[3] + (ca[4] if len(ca) > 4 else 0))
        cpu.append(round(100.0 * (total - idle) / total, 1))
    tail = samples[-n:]
    return {
        "cpu": cpu[-n:],
        "memory": [s.get("memory") for s in tail if s.get("memory") is not None],
        "disk": [s.get("disk") for s in tail if s.get("disk") is not None],
        "since": tail[0].get("t") if tail else None,
    }
