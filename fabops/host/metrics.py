"""A small CPU/memory/disk sample appended by every cron run on the host
(`<host home>/metrics.jsonl`), so `inv monitor --history` can draw trends.

Reading /proc and statvfs costs well under a millisecond; the file is kept
to the last few days by trimming it when it grows past a bound.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional

from .files import append_line, atomic_write

MAX_LINES = 4000  # about two weeks at one sample per 5 min
TRIM_TO = 3000


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


def record(path: str) -> None:
    """Append one sample; trim the file now and then. Never raises."""
    try:
        s = sample()
        if s is None:
            return
        append_line(path, json.dumps(s, separators=(",", ":")), fsync=False)
        if os.path.getsize(path) > MAX_LINES * 120:
            with open(path, encoding="utf-8") as fh:
                lines = fh.readlines()
            if len(lines) > MAX_LINES:
                atomic_write(path, "".join(lines[-TRIM_TO:]))
    except OSError:
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
        "since": tail[0]["t"] if tail else None,
    }
