"""`inv demo`: see the whole loop on this machine in one command."""
from __future__ import annotations

import os
from pathlib import Path

from invoke import Collection

from .. import errors
from ._base import fabops_task, finish, load_inventory


@fabops_task(help={
    "dir": "Where to build the throwaway sandbox (default .fabops-demo/ next to hosts.yml).",
    "keep": "Leave the sample app running afterwards (stop it with `inv demo` again or kill its pid).",
})
def demo(c, dir=None, keep=False, inventory=None):
    """Run the whole loop on a local sandbox: deploy, monitor, cron update, a bad commit rolled back."""
    from ..demo import DEFAULT_DIR, DemoViews, local_entry, run_demo
    from ..fanout import HostResult
    from .render import console, history_table, literal, print_hanging, status_panel
    from .observe import render_all

    inv = load_inventory(inventory)
    if "local" not in inv.hosts:
        raise errors.UsageError(f"{inv.path} has no `local` sandbox host")
    import yaml

    entry = local_entry(yaml.safe_load(open(inv.path, encoding="utf-8")) or {})
    here = Path(os.path.dirname(os.path.abspath(inv.path)))
    base = Path(dir) if dir else here / DEFAULT_DIR
    out = console()

    def say(markup: str) -> None:  # wrapped at spaces, continuations under the text
        print_hanging(out, markup)

    say(f"[bold]fabops demo[/bold]: a sandbox in {literal(str(base))} (origin repo, host checkout, state) for the "
              "`local` host of hosts.yml: the sample app runs as a process on this machine, no ssh or systemd")
    views = DemoViews(
        dashboard=lambda facts, host: out.print(render_all([HostResult(host.name, value=facts, code=facts["code"])],
                                                           {host.name: host})),
        history=history_table,
        status=status_panel,
    )
    result = run_demo(base.resolve(), entry, say=say, views=views, keep=keep, inventory_dir=here)
    good = sum(1 for s in result.steps if s.ok)
    say(f"\n[bold]{'✅' if result.ok else '❌'} {good}/{len(result.steps)} steps behaved as narrated "
              f"in {result.seconds:.1f} s[/bold]" + ("" if keep else "; the sample app is stopped (`inv demo --keep` leaves it "
                                                         "running, for `inv monitor -H local` and the rest)"))
    if keep and result.port_moved:
        say(f"the app's port in hosts.yml was taken, so it listens on another one: "
                  f"`inv monitor -i {result.inventory} -H local` looks at it")
    if keep:
        # The last line, where a person looks once the narration ends: what
        # is left running and how to stop it (the next `inv demo` stops it
        # by its pidfile before it rebuilds the sandbox).
        again = "`inv demo" + (f" -i {inventory}" if inventory else "") + (f" --dir {dir}" if dir else "") + "`"
        if result.kept:
            apps = ", ".join(f"{name} (pid {pid}, port {port})" for name, pid, port in result.kept)
            # the next demo stops the app by its pidfile, wherever a deploy
            # or restart has moved it since (a `kill -- -PID` printed here
            # went stale after the first deploy, and could then signal a
            # stranger that got the number)
            say(f"still running: {literal(apps)}; stop: {literal(again)}")
        else:
            out.print("nothing was left running")
    finish(errors.OK if result.ok else errors.FAILED)


ns = Collection("demo", demo)
