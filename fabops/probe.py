"""`ping`: is the host there, and what is it? One round trip, pure parsing.

A fact is a command plus a pure `parse(output)` (pyinfra's shape); the
command prints sections between markers so that one exec answers everything.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Dict, Optional

from .shell import sh

MARK = "@@fabops:"

# POSIX sh only: the host may have no bash. Every tool may be missing; a
# missing answer is an empty section, never a failed command. `python3 -V`
# answers before the interpreter starts up (no site, no imports): a fork
# and an exec, where running code cost each of 20 hosts a whole start.
PROBE_SCRIPT = sh("""\
echo {m}kernel; uname -srm 2>/dev/null
echo {m}uptime; read -r U R 2>/dev/null < /proc/uptime && echo "$U"
echo {m}python; python3 -V 2>/dev/null
echo {m}user; id -un 2>/dev/null
echo {m}end
""", m=MARK)


@dataclass
class Probe:
    kernel: Optional[str] = None
    uptime_seconds: Optional[float] = None
    python: Optional[str] = None
    user: Optional[str] = None
    seconds: float = 0.0  # round-trip time of the probe

    def to_dict(self) -> dict:
        return asdict(self)


def split_sections(output: str) -> Dict[str, str]:
    """Split marker-delimited output into {section: text}. Junk before the
    first marker (a noisy login banner, a shell warning) is ignored."""
    sections: Dict[str, str] = {}
    current = None
    lines: list = []
    for line in output.splitlines():
        if line.startswith(MARK):
            if current is not None:
                sections[current] = "\n".join(lines).strip()
            current = line[len(MARK):].strip()
            lines = []
        elif current is not None:
            lines.append(line)
    if current is not None and current != "end":
        sections[current] = "\n".join(lines).strip()
    return sections


def parse_probe(output: str) -> Probe:
    s = split_sections(output)
    uptime = None
    try:
        uptime = float(s.get("uptime", "").split()[0])
    except (ValueError, IndexError):
        pass
    return Probe(
        kernel=s.get("kernel") or None,
        uptime_seconds=uptime,
        python=_version(s.get("python")),
        user=s.get("user") or None,
    )


def _version(text: Optional[str]) -> Optional[str]:
    """"3.11.2" from `python3 -V`'s "Python 3.11.2" (a bare version too)."""
    words = (text or "").split()
    if words and words[0] == "Python":
        words = words[1:]
    return words[0] if words else None


def probe(c) -> Probe:
    """Run the probe on `c` (a Connection or a local Context)."""
    started = time.monotonic()
    from .target import Target

    found = parse_probe(Target.of(c).output(PROBE_SCRIPT))
    found.seconds = time.monotonic() - started
    return found
