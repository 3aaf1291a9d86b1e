"""rich rendering shared by the task modules. Imported lazily, only when a
task renders, so the host-side cron path never loads rich."""
from __future__ import annotations

import sys
from typing import Iterable

from . import errors


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def fmt_duration(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {sec}s"


STATUS_STYLE = {
    errors.OK: ("✅", "green"),
    errors.WARNING: ("⚠️ ", "yellow"),
    errors.FAILED: ("❌", "red"),
    errors.UNREACHABLE: ("❓", "magenta"),
    errors.LOCKED: ("🔒", "yellow"),
    errors.BROKEN: ("🔥", "bold red"),
    errors.INTERNAL: ("🐞", "bold red"),
}


def status_cell(code: int) -> str:
    icon, style = STATUS_STYLE.get(code, ("?", "white"))
    return f"[{style}]{icon} {errors.NAMES.get(code, str(code))}[/{style}]"


def fanout_summary(results: Iterable, title: str = "Summary") -> None:
    """One row per host: status, time, and the error line where there is one."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("host")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for r in results:
        detail = "" if r.error is None else (getattr(r.error, "message", None) or str(r.error))
        table.add_row(r.host, status_cell(r.code), fmt_duration(r.seconds), detail)
    console().print(table)


def host_errors(results: Iterable) -> None:
    """Errors go to stderr, one line per host, as the task layer prints them."""
    for r in results:
        if r.error is not None:
            msg = getattr(r.error, "message", None) or f"{r.error.__class__.__name__}: {r.error}"
            sys.stderr.write(f"fabops: {r.host}: {msg}\n")
