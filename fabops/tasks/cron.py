"""`inv cron`: show, install or remove fabops' managed crontab block."""
from __future__ import annotations

import sys

from invoke import Collection

from .. import errors
from ..printable import printable
from ._base import fabops_task, finish, print_text, width


@fabops_task(help={
    "show": "Show the managed block on each host (the default).",
    "install": "Install or update the block from hosts.yml (`setup` does this too).",
    "remove": "Remove only fabops' block; every other line stays.",
    "splay": "Random delay, in seconds, before each local-update (default 30).",
})
def cron(c, hosts=None, show=False, install=False, remove=False, dry_run=False, splay=30, inventory=None,
         accept_new=False, connect_timeout=None):
    """Show, install or remove the managed crontab block (local-update, health --fix, clean, backup-env, backup)."""
    from ..cron import (apply_block, current_block, diff, read_crontab, remove_block, render_block, sandbox_table,
                        table_name, write_crontab)
    from ._base import for_each_host

    if install and remove:
        raise errors.UsageError("--install and --remove exclude each other")
    from .deploy import inventory_flag

    flag = inventory_flag(inventory)  # the commands the messages name work as printed

    def one(cxn, host):
        old = read_crontab(cxn, host)
        app = host.app.name
        missing = install and _no_fabops(cxn, host)
        if missing and not dry_run:
            raise errors.CommandFailed(_refusal(missing, host.name, flag), host=host.name)
        if remove:
            new = remove_block(old, app)
        elif install:
            new = apply_block(old, app, render_block(host, splay=int(splay)))
        else:
            return {"block": current_block(old, app), "changed": False, "table": sandbox_table(host)}
        changed = new != old
        if changed and not dry_run:
            write_crontab(cxn, new, host.name, host)
        return {"block": current_block(new, app), "changed": changed, "diff": diff(old, new, table_name(host)),
                "table": sandbox_table(host), "missing": missing}

    outcome = for_each_host(inventory, hosts, one, accept_new=accept_new, connect_timeout=connect_timeout)
    from .render import host_errors

    for r in outcome.results:
        if r.ok:
            _say(r.host, r.value, install, remove, dry_run, flag)
    host_errors(outcome.results)
    # a dry run exits as the install would: it refuses (2) where fabops is missing
    refused = any(r.ok and r.value.get("missing") for r in outcome.results)
    finish(max(outcome.code, errors.FAILED) if refused else outcome.code)


def _say(host: str, v: dict, install: bool, remove: bool, dry_run: bool, flag) -> None:
    """One host's lines: what changed (or would), the diff, the block."""
    from ..host.would import Would, lines
    from .setup import diff_lines

    columns = width()
    if not (install or remove):
        print_text(f"[{host}] " + ("no fabops block in the crontab" if not v["block"] else "managed block:")
                   + _sandbox(v))
        if v["block"]:
            _data(diff_lines(host, v["block"], columns))
        return
    if v.get("missing"):  # the install would refuse: said as every dry run says a refusal, in its words
        print_text(f"[{host}] would stop: {_refusal(v['missing'], host, flag)}")
        if v["changed"]:
            print_text(f"[{host}] the block it would install once fabops is there:")
            _data(diff_lines(host, v["diff"], columns))
        return
    if v["changed"] and dry_run:  # every dry run's line form (host/would.py), then the diff
        why = "fabops' block removed; every other line stays" if remove else "fabops' block from hosts.yml"
        for line in lines([Would("change", "crontab", why)], f"[{host}] "):
            print_text(line)
    elif remove and not v["changed"]:
        print_text(f"[{host}] crontab: nothing to remove (no fabops block in the crontab)" + _sandbox(v))
    else:
        print_text(f"[{host}] crontab: {'changed' if v['changed'] else 'ok'}" + _sandbox(v))
    if v["changed"] and (dry_run or install):
        _data(diff_lines(host, v["diff"], columns))


def _refusal(missing: str, host: str, flag) -> str:
    """Why `cron --install` refuses on a host without fabops, and the way
    out: the real run's error and its dry run's `would stop:` line (one
    wording, as deploy's dry run says its refusal: docs/architecture.md,
    "Plans")."""
    from .render import hint

    return f"{missing}: run {hint(flag, host, 'setup')} (it installs fabops there and this block) instead"


def _no_fabops(cxn, host) -> str:
    """Why the block's lines would fail on `host`: they run the fabops
    that setup installs in the host's home; '' when it is there."""
    from ..shell import path as host_path, sh
    from ..target import Target

    fabops = host.paths.venv_bin("fabops")
    if Target.of(cxn, host).ok(sh("test -x {fabops}", fabops=host_path(fabops))):
        return ""
    return f"{fabops} is not installed (the block's lines run it)"


def _sandbox(v: dict) -> str:
    """A local host's note: its table is a file in the sandbox."""
    return f" ({v['table']}: the sandbox's table; your own crontab is untouched)" if v.get("table") else ""


def _data(lines) -> None:
    """Lines of a crontab (a diff, the block), as they are but for their
    control characters: never wrapped again (diff_lines did it)."""
    sys.stdout.write("".join(printable(ln, lines=True) + "\n" for ln in lines))
    sys.stdout.flush()


ns = Collection("cron", cron)
