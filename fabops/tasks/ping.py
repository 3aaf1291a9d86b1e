"""`inv ping`: connect to hosts and report what they are, in one round trip."""
from __future__ import annotations

import sys

from invoke import Collection

from ..fanout import run_hosts
from ._base import check_parallel, check_timeout, fabops_task, finish, print_envelope, select


@fabops_task
def ping(c, hosts=None, parallel=10, json=False, accept_new=False, connect_timeout=None, inventory=None):
    """Connect to each host and show its kernel, uptime, Python and round-trip time."""
    from ..connection import close_quietly, connect
    from ..probe import probe

    parallel = check_parallel(parallel)
    timeout = check_timeout(connect_timeout, "--connect-timeout")
    inv, chosen = select(inventory, hosts)

    def one(host):
        cxn = connect(host, inv, accept_new=accept_new, connect_timeout=timeout)
        try:
            return probe(cxn)
        finally:
            close_quietly(cxn)

    outcome = run_hosts(chosen, one, parallel=parallel)
    if json:
        print_envelope(outcome.results, lambda v: v.to_dict(), code=outcome.code)
    else:
        from rich.table import Table

        from ..render import console, fmt_duration, host_errors, status_cell

        table = Table(title="ping", title_justify="left")
        for col in ("host", "status", "kernel", "uptime", "python", "user", "rtt"):
            table.add_column(col)
        for r in outcome.results:
            if r.ok:
                p = r.value
                table.add_row(r.host, status_cell(r.code), p.kernel or "?", fmt_duration(p.uptime_seconds),
                              p.python or "[red]none[/red]", p.user or "?", fmt_duration(p.seconds))
            else:
                table.add_row(r.host, status_cell(r.code), "", "", "", "", "")
        console().print(table)
        sys.stdout.flush()
        host_errors(outcome.results)
    finish(outcome.code)


ns = Collection("ping", ping)
