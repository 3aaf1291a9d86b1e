"""`inv hosts`: list and validate the inventory."""
from __future__ import annotations

from invoke import Collection

from ..errors import UsageError
from ._base import JSON_SCHEMA, fabops_task, load_inventory, print_json, print_text


@fabops_task(help={"check": "Only validate hosts.yml: print one line and exit 0, or 78 with the problem.",
                   "show": "Print the settings HOST resolves to (a host, group or pattern, as -H takes) and where "
                           "each came from: defaults, a group, the host, or built-in."})
def hosts(c, check=False, wide=False, json=False, inventory=None, show=None):
    """List the hosts and groups of hosts.yml, validate it with --check, or --show one host's settings."""
    if show is not None and check:
        raise UsageError("--show and --check do not go together: --show validates hosts.yml too")
    inv = load_inventory(inventory)
    if show is not None:
        _show(inv, inv.select(show), json)
        return
    if json:
        _json(inv)
        return
    if check:
        print_text(f"{inv.path}: OK ({_count(len(inv.hosts), 'host')}, {_count(len(inv.groups), 'group')})")
        return
    from rich.markup import escape
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    from .render import console, service_labels

    out = console()
    narrow = out.width < 120
    # the host's environment is one of its groups, marked (docs/environments.md)
    member_of = {name: [g + (" (environment)" if g == inv.hosts[name].environment else "")
                        for g, m in inv.groups.items() if name in m] for name in inv.hosts}
    rows = []
    for name, h in inv.hosts.items():
        # a local host logs in as no one: it runs as this machine's user (Host.runs_as), not hosts.yml's `user`
        address = (f"local, as {h.runs_as}" if h.is_local else
                   f"{h.user + '@' if h.user else ''}{h.address}{':' + str(h.port) if h.port else ''}")
        # narrow: `python-api`, not `voice-meeting-python-api.service`
        labels = service_labels(s.name for s in h.services) if narrow else {s.name: s.name for s in h.services}
        services = [f"{labels[s.name]} [dim]{s.manager}{' :' + str(s.port) if s.port else ''}[/dim]" for s in h.services]
        rows.append((name + (" (default)" if inv.default == name else ""), address, ", ".join(member_of[name]),
                     f"{h.app.path} [dim]({h.app.remote}/{h.app.branch})[/dim]", services))
    if narrow:
        # A CI log, a pipe, a small terminal: one line per host, its app and
        # services indented under it; long lines are cut, or wrapped with --wide.
        out.print(f"[bold]{escape(str(inv.path))}[/bold]")
        for label, address, groups, app, services in rows:
            out.print(f"[bold]{escape(label)}[/bold]  {escape(address)}" + (f"  [dim]groups:[/dim] {escape(groups)}"
                                                                             if groups else ""),
                      no_wrap=not wide, overflow="fold" if wide else "ellipsis")
            for line in [app] + services:
                out.print(Padding(Text.from_markup(line, overflow="fold" if wide else "ellipsis"), (0, 0, 0, 4)),
                          no_wrap=not wide)
        return
    table = Table(title=f"{inv.path}", title_justify="left")
    for col in ("host", "address", "groups"):
        table.add_column(col, no_wrap=True)
    for col in ("app", "services"):
        table.add_column(col, overflow="fold" if wide else "ellipsis", no_wrap=not wide)
    for label, address, groups, app, services in rows:
        table.add_row(f"[bold]{escape(label)}[/bold]", escape(address), escape(groups), app, "\n".join(services))
    out.print(table)


def _json(inv) -> None:
    """`hosts --json` (docs/json.md): every host's settings, masked, and the groups."""
    print_json({"schema": JSON_SCHEMA, "code": 0, "path": inv.path, "default": inv.default,
                "groups": {k: list(v) for k, v in inv.groups.items()},
                # beside `groups`, whose lists consumers read as they were: the
                # key paths each group sets (their values, masked, are each
                # member's in `hosts`; `hosts --show` says which came from it)
                "group_settings": {k: list(v) for k, v in inv.group_keys.items()},
                "environments": list(inv.environments),
                "hosts": {name: h.shown_dict() for name, h in inv.hosts.items()}})


def _show(inv, chosen, json: bool) -> None:
    """`hosts --show`: each chosen host's settings, one per line, with the
    layer of hosts.yml that gave it (Inventory.settings; docs/hosts.md, "Groups")."""
    if json:
        print_json({"schema": JSON_SCHEMA, "code": 0, "path": inv.path, "hosts": {
            h.name: {"settings": [{"key": k, "value": v, "from": src} for k, v, src in inv.settings(h)]}
            for h in chosen}})
        return
    from rich.markup import escape

    from .render import console

    out = console()
    for h in chosen:
        rows = [(key, "off" if value is None and key.startswith(("schedule.", "backup.schedule")) else _value(value),
                 src) for key, value, src in inv.settings(h)]
        out.print(escape(f"{h.name} ({inv.path})"))
        for line in _show_lines(rows, out.width):
            out.print(line, no_wrap=True, overflow="ignore", crop=False)


def _show_lines(rows, width: int) -> list:
    """`hosts --show`'s rows as markup lines: setting, value, from. The
    setting and from columns are as wide as their longest entry and the
    value gets the rest; a value longer than that is never broken mid-word
    in its column (#28's trial read `.../host/back` | `up`): it goes whole
    on a line of its own under the row, indented, a path deeper than that
    line broken only after a `/` (_base.fitted, as docs/architecture.md's
    rendering rules keep paths whole). A value of several lines (a hook's
    script) goes under the row as its lines, each indented, never joined
    into one (#29's trial read a three-line script as one command)."""
    from rich.markup import escape

    key_w = max(len("setting"), *(len(k) for k, _, _ in rows))
    room = max(width - key_w - max(len("from"), *(len(s) for _, _, s in rows)) - 4, 10)
    value_w = min(room, max(len("value"), *(len(v) for _, v, _ in rows if len(v) <= room and "\n" not in v)))
    lines = [f"[bold]{'setting'.ljust(key_w)}  {'value'.ljust(value_w)}  from[/bold]"]
    for key, shown, src in rows:
        where = f"[dim]{escape(src)}[/dim]" if src == "built-in" else f"[bold]{escape(src)}[/bold]"
        fits = len(shown) <= value_w and "\n" not in shown
        lines.append(f"{escape(key.ljust(key_w))}  {escape(shown.ljust(value_w)) if fits else ' ' * value_w}  {where}")
        if not fits:
            lines += [escape(piece) for piece in _under(shown.rstrip("\n"), width)]
    return lines


def _under(shown: str, width: int) -> list:
    """A value too long for its column, or of several lines, under its row:
    each of its lines four columns in (its own indentation kept), broken
    at spaces and a deep path only after a `/` (_base.fitted); a script's
    line that goes on continues two columns further in, so it does not read
    as the script's next line."""
    import textwrap

    from ._base import fitted

    pieces, hang = [], "  " if "\n" in shown else ""
    for line in shown.split("\n"):
        indent = "    " + line[:len(line) - len(line.lstrip())]
        wrapped = textwrap.wrap(fitted(line.strip(), width - len(indent) - len(hang)), width - len(indent),
                                initial_indent=indent, subsequent_indent=indent + hang,
                                break_long_words=False, break_on_hyphens=False)
        pieces += wrapped or [""]  # an empty line of the script stays a line, with no trailing spaces
    return pieces


def _value(value) -> str:
    """A setting's value as one line of text: YAML's words for none and
    booleans, a list comma-separated (a schedule's None is `off`, _show)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value) if value else "[]"
    if isinstance(value, dict):
        import json

        return json.dumps(value, ensure_ascii=False) if value else "{}"
    return str(value)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@fabops_task(help={"output": "Write the targets to FILE, atomically (a temp file, then a rename), instead of "
                             "printing them; FILE's directory must exist."})
def prometheus_targets(c, hosts=None, inventory=None, output=None):
    """Print Prometheus' file_sd targets for the hosts: each one's node_exporter, labelled host, groups, environment and environments."""
    import sys

    from ..host.record import counted
    from ..prometheus_targets import document, targets, write

    inv = load_inventory(inventory)
    chosen = inv.select(hosts)
    found = targets(inv, chosen)
    text = document(found)
    if output is None:
        # Prometheus' own format, as it is (never wrapped): `> FILE` or a pipe
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    _, old = write(output, text)
    said = f"{counted(len(found), 'target')} ({counted(len(chosen), 'host')})"
    print_text(f"{output}: {said}, " + ("unchanged" if old == text else "written"))  # as the person named it


ns = Collection("inventory", hosts, prometheus_targets)
