"""`inv hosts`: list and validate the inventory."""
from __future__ import annotations

from invoke import Collection

from ._base import JSON_SCHEMA, fabops_task, load_inventory, print_json


@fabops_task(help={"check": "Only validate hosts.yml: print one line and exit 0, or 78 with the problem."})
def hosts(c, check=False, json=False, inventory=None):
    """List the hosts and groups of hosts.yml, or validate it with --check."""
    inv = load_inventory(inventory)
    if json:
        print_json({"schema": JSON_SCHEMA, "code": 0, "path": inv.path, "default": inv.default,
                    "groups": {k: list(v) for k, v in inv.groups.items()},
                    "hosts": {name: h.to_dict() for name, h in inv.hosts.items()}})
        return
    if check:
        print(f"{inv.path}: OK ({len(inv.hosts)} hosts, {len(inv.groups)} groups)")
        return
    from rich.table import Table

    from ..render import console

    member_of = {name: [g for g, m in inv.groups.items() if name in m] for name in inv.hosts}
    table = Table(title=f"{inv.path}", title_justify="left")
    for col in ("host", "address", "groups", "app", "services"):
        table.add_column(col, overflow="fold")
    for name, h in inv.hosts.items():
        if h.is_local:
            address = "[cyan]local[/cyan]"
        else:
            address = f"{h.user + '@' if h.user else ''}{h.address}{':' + str(h.port) if h.port else ''}"
        label = f"[bold]{name}[/bold]" + (" (default)" if inv.default == name else "")
        services = "\n".join(
            f"{s.name} [dim]{s.manager}{' :' + str(s.port) if s.port else ''}[/dim]" for s in h.services
        )
        table.add_row(label, address, ", ".join(member_of[name]), f"{h.app.path}\n[dim]{h.app.remote}/{h.app.branch}[/dim]", services)
    console().print(table)


ns = Collection("inventory", hosts)
