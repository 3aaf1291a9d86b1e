"""`inv ping`: connect to hosts and report what they are, in one round trip."""
from __future__ import annotations

import sys

from invoke import Collection

from ._base import fabops_task, finish, for_each_host, print_envelope


@fabops_task
def ping(c, hosts=None, parallel=10, json=False, accept_new=False, connect_timeout=None, inventory=None,
         wide=False):
    """Connect to each host and show its round-trip time, uptime, Python, user and kernel."""
    from ..probe import probe

    outcome = for_each_host(inventory, hosts, lambda t, host: probe(t), parallel=parallel, accept_new=accept_new,
                            connect_timeout=connect_timeout)
    if json:
        print_envelope(outcome.results, lambda v: v.to_dict(), code=outcome.code)
    else:
        from .render import host_errors

        ping_table(outcome.results, wide=wide)
        sys.stdout.flush()
        host_errors(outcome.results)
    finish(outcome.code)


def ping_table(results, wide: bool = False) -> None:
    """Facts that never wrap first; the kernel string (the longest) last,
    cut at the terminal width unless --wide."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from ..printable import printable
    from .render import console, fmt_duration, rest_column, status_cell

    out = console()
    rows = []
    for r in results:
        p = r.value if r.ok else None
        # what the host says is printable before the widths are measured
        rows.append([r.host, fmt_duration(p.seconds) if p else "", fmt_duration(p.uptime_seconds) if p else "",
                     printable(p.python or "none") if p else "", printable(p.user or "?") if p else "",
                     printable(p.kernel or "?") if p else "", r.code, bool(p and not p.python)])
    if out.width < 120:
        _lines(out, rows, wide)
        return
    table = Table(title="ping", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    statuses = [Text.from_markup(status_cell(row[6])).cell_len for row in rows]
    fixed = [max([len("host")] + [len(row[0]) for row in rows]), max([len("status")] + statuses)]
    table.add_column("host", no_wrap=True, min_width=fixed[0])
    table.add_column("status", no_wrap=True, min_width=fixed[1])
    for i, col in enumerate(("rtt", "uptime", "python", "user"), start=1):
        fixed.append(max([len(col)] + [len(row[i]) for row in rows]))
        table.add_column(col, no_wrap=True, min_width=fixed[-1])
    table.add_column("kernel", **rest_column(table, out.width, fixed, wide))
    for host, rtt, uptime, python, user, kernel, code, no_python in rows:
        python = f"[red]{escape(python)}[/red]" if no_python else escape(python)
        table.add_row(escape(host), status_cell(code), rtt, uptime, python, escape(user), escape(kernel))
    out.print(table)


def _lines(out, rows, wide: bool) -> None:
    """A CI log, a pipe, a small terminal: the facts on one line, the
    kernel string under it (cut at the width unless --wide)."""
    from rich.markup import escape
    from rich.padding import Padding
    from rich.text import Text

    from .render import status_cell

    out.print("[bold]ping[/bold]")
    # a pipe, a file, a CI log has no width: its rows whole, never cut
    # or wrapped (#24: a row was cut at the width of the terminal the
    # pipe ran in); a terminal cuts them at its width
    whole = not out.is_terminal
    cut = dict(no_wrap=True, overflow="ignore" if whole else "ellipsis", crop=not whole)
    # The column names on a line of their own (the wide table has them
    # too): without them `12.3 ms  3d 4h` does not say which is which.
    heads = ("host", "rtt", "uptime", "python", "user")
    widths = [max([len(heads[i])] + [len(row[i]) for row in rows]) for i in range(5)]
    status_width = max([len("status")] + [Text.from_markup(status_cell(row[6])).cell_len for row in rows])
    head = [h.ljust(w) for h, w in zip(heads, widths)]
    out.print(Text("  ".join([head[0], "status".ljust(status_width)] + head[1:]).rstrip()
                   + "\n" + "    kernel", style="bold"), **cut)
    for host, rtt, uptime, python, user, kernel, code, no_python in rows:
        status = Text.from_markup(status_cell(code))
        status.pad_right(status_width - status.cell_len)
        cells = [escape(c.ljust(w)) for c, w in zip((host, rtt, uptime, python, user), widths)]
        if no_python:
            cells[3] = f"[red]{cells[3]}[/red]"
        line = Text.from_markup(cells[0] + "  ")
        line.append_text(status)
        line.append_text(Text.from_markup("  " + "  ".join(cells[1:]).rstrip()))
        out.print(line, **cut)
        if kernel and whole:
            out.print(Text("    " + kernel, style="dim"), **cut)
        elif kernel:
            out.print(Padding(Text(kernel, style="dim", no_wrap=not wide,
                                   overflow="fold" if wide else "ellipsis"), (0, 0, 0, 4)))


ns = Collection("ping", ping)
