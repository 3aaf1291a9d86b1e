"""What cron's tasks print and decide, shared by the task layer
(fabops/tasks/update.py, health.py, _base.py) and the cron fast path
(host/fastpath.py), so both say exactly the same (docs/architecture.md,
"The cron fast path"). The host side imports it: standard library and
fabops' host-safe modules only, Python 3.9.
"""
from __future__ import annotations

import sys


def plain(text: str) -> str:
    """Lines that may quote a host, without their escape sequences and
    control characters (fabops/printable.py) and with no line ending in
    spaces: a pipe, a diff or a CI log gets what a person sees."""
    from ..printable import printable

    return "\n".join(line.rstrip(" ") for line in printable(text, lines=True).split("\n"))


def whole_lines(trigger: str) -> bool:
    """Whether local-update prints its lines whole, unwrapped: under cron
    with stdout not a terminal, where cron's line appends them to
    <home>/cron.log. A log is data: one entry a line, for grep, whatever
    the width (failures, on stderr, were whole there already)."""
    try:
        return trigger == "cron" and not sys.stdout.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stdout
        return trigger == "cron"
