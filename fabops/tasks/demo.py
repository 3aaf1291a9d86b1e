"""`inv demo`: see the whole loop on this machine in one command."""
from __future__ import annotations

import os
from pathlib import Path

from invoke import Collection

from .. import errors
from ..shell import program
from ._base import command_lines, fabops_task, finish, load_inventory, wrap


@fabops_task(help={
    "dir": "Where to build the throwaway sandbox (default .fabops-demo/ next to hosts.yml).",
    "keep": "Leave the sample app running afterwards (`demo --stop` stops it).",
    "stop": "Stop the sample app an earlier --keep left running and leave the sandbox as it is "
            "(`demo` alone rebuilds it).",
})
def demo(c, dir=None, keep=False, stop=False, inventory=None):
    """Run the whole loop on a local sandbox: deploy, monitor, cron update, a bad commit rolled back."""
    from ..demo import DEFAULT_DIR, DemoViews, local_entry, run_demo
    from ..fanout import HostResult
    from .render import console, history_table, literal, print_hanging, status_panel
    from .observe import render_all

    if stop and keep:
        raise errors.UsageError("--stop and --keep go in separate runs: --keep leaves a new demo's app running, "
                                "--stop stops the one left running")
    inv = load_inventory(inventory)
    here = Path(os.path.dirname(os.path.abspath(inv.path)))
    base = Path(dir) if dir else here / DEFAULT_DIR
    out = console()
    if stop:
        _stop(out, base)
        return
    if "local" not in inv.hosts:
        raise errors.UsageError(f"{inv.path} has no `local` sandbox host")
    import yaml

    entry = local_entry(yaml.safe_load(open(inv.path, encoding="utf-8")) or {})

    def say(markup: str) -> None:  # wrapped at spaces, continuations under the text
        print_hanging(out, markup)

    say(f"[bold]fabops demo[/bold]: a sandbox in {literal(str(base))} (origin repo, host checkout, state) for the "
              "`local` host of hosts.yml: the sample app runs as a process on this machine, no ssh or systemd")
    views = DemoViews(
        dashboard=lambda facts, host: out.print(render_all([HostResult(host.name, value=facts, code=facts["code"])],
                                                           {host.name: host})),
        history=history_table,
        status=status_panel,
        command=lambda words: _command(out, words),
    )
    result = run_demo(base.resolve(), entry, say=say, views=views, keep=keep, inventory_dir=here, own=bool(dir),
                      usual=inventory)
    good = sum(1 for s in result.steps if s.ok)
    out.print()
    stopped = "" if keep else (f"; the sample app is stopped (`{program()} demo --keep` leaves it running, for "
                               f"`{program()} monitor -H local` and the rest)")
    say_wrapped(out, f"[bold]{'✅' if result.ok else '❌'} {good}/{len(result.steps)} steps behaved as narrated "
                     f"in {result.seconds:.1f} s[/bold]" + stopped, head=2)
    if keep and result.port_moved:
        say_wrapped(out, f"the app's port in hosts.yml was taken, so it listens on another one: "
                         f"`{program()} monitor -i {result.inventory} -H local` looks at it")
    if keep:
        _settings(out, inv.path, result.inventory, own=bool(dir or result.port_moved))
        _your_commits(out, base, result.inventory if dir or result.port_moved else inventory)
        again = f"{program()} demo" + (f" -i {inventory}" if inventory else "") + (f" --dir {dir}" if dir else "")
        _left_running(out, result, again)
    finish(errors.OK if result.ok else errors.FAILED)


def _stop(out, base: Path) -> None:
    """`inv demo --stop`: only the app; the sandbox (the origin's commits,
    the history, the .env backups) is the user's until `inv demo` rebuilds
    it."""
    from ..demo import stop_kept
    from .render import literal

    stopped = stop_kept(base.resolve())
    if stopped:
        apps = ", ".join(f"{name} (pid {pid})" for name, pid in stopped)
        say_wrapped(out, f"stopped: {literal(apps)}, the sandbox's app (whichever run started it); "
                         f"{literal(str(base))} is kept as it is", head=len("stopped: "))
    else:
        say_wrapped(out, f"nothing to stop: no demo app is running from {literal(str(base))}",
                    head=len("nothing to stop: "))
    agent = _agent_line()
    if agent:
        say_wrapped(out, agent, head=len("still running: "))


def _agent_line() -> str:
    """What --stop leaves running besides the app: the per-user agent, which
    any fabops command (the demo's too) starts and which ends by itself after
    its idle time (docs/agent.md). #24's trial: --stop said nothing of it, so
    a process was left with no word of how to end it. It is the user's, not
    the demo's (another command may be using it), so it is named, not ended."""
    from ..agent import client, where

    try:
        sock = client.connect(where.socket_dir(), start=False)
    except (OSError, PermissionError):
        return ""  # none of this user's answers: nothing left running
    if sock is None:
        return ""
    sock.close()
    minutes = where.idle_seconds() / 60
    idle = f"{minutes:.0f} minutes" if minutes >= 1 else f"{where.idle_seconds():.0f} s"
    return (f"still running: your fabops agent (docs/agent.md); it ends by itself after {idle} without a command, "
            "`fabops agent stop` ends it now")


def _settings(out, root: str, sandbox: str, own: bool) -> None:
    """Which inventory `-H local` reads after --keep, and so where the
    sandbox's settings change (#24's trial: edits to the sandbox's
    hosts.yml did nothing to a plain `inv setup -H local`). The demo writes
    its hosts.yml from the `local` host of the checkout's hosts.yml on every
    run (fabops/demo.py, sandbox_entry), so that one is the one; the
    sandbox's copy is what `-i` reads when --dir or a taken port moved it."""
    from .render import literal

    def rel(path: str) -> str:
        path = os.path.abspath(path)
        return os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path

    if own:
        text = (f"settings: `-i {rel(sandbox)} -H local` reads the sandbox's own copy of the `local` host of "
                f"{rel(root)}; edits to it last until the next `{program()} demo` writes it again")
    else:
        text = (f"settings: `-H local` reads the `local` host of {rel(root)}; change the sandbox's settings "
                f"there ({rel(sandbox)} is the demo's copy of it, written again by each `{program()} demo`)")
    say_wrapped(out, literal(text), head=len("settings: "))


def _your_commits(out, base: Path, inventory) -> None:
    """Where a person trying fabops on the kept sandbox commits (nothing
    said so): the author clone, whose pushes go to the sandbox's origin;
    then a deploy, with the inventory that reaches the sandbox."""
    from .deploy import inventory_flag
    from .render import hint, literal

    deploy = hint(inventory_flag(inventory), "local", "deploy")
    author = os.path.abspath(base / "author")
    if author.startswith(os.getcwd() + os.sep):  # `.fabops-demo/author`, as README says it
        author = os.path.relpath(author)
    say_wrapped(out, f"your own commits: `git commit` and `git push` in {literal(author)} (the "
                     f"sandbox's author clone; it pushes to the sandbox's origin), then {literal(deploy)} deploys "
                     "them", head=len("your own commits: "))


def _left_running(out, result, again: str) -> None:
    """The last line, where a person looks once the narration ends: what is
    left running and how to stop it. `inv demo --stop` stops the app by its
    pidfile, wherever a deploy or restart has moved it since (a `kill --
    -PID` printed here went stale after the first deploy, and could then
    signal a stranger that got the number), and keeps the sandbox; a plain
    `inv demo` stops it and starts over."""
    from .render import literal

    if result.kept:
        apps = ", ".join(f"{name} (pid {pid}, port {port})" for name, pid, port in result.kept)
        say_wrapped(out, f"still running: {literal(apps)}; {literal(f'`{again} --stop`')} stops it, "
                         f"{literal(f'`{again}`')} starts over", head=len("still running: "))
    else:
        out.print("nothing was left running")


def _command(out, words) -> None:
    """A command the narration shows for a person to run, dim, two columns
    in: whole on one line, or on several joined by a shell's ` \\` (pasted
    as shown, it is still one command): never wrapped as prose (#24's
    trial: `fabops local-update --trigger cron -i` / `/tmp/…/hosts.yml`)."""
    from rich.text import Text

    for n, line in enumerate(command_lines(words, out.width - 4)):
        out.print(Text(("  " if n == 0 else "    ") + line, style="dim"), no_wrap=True, overflow="ignore", crop=False)


def say_wrapped(out, markup: str, head: int = 0) -> None:
    """One line of rich markup broken where `_base.wrap`, the one wrapper,
    breaks it: at spaces, to the console's width, and never inside a `code
    span` that fits on a line (a command split as `inv demo ` / `--keep`
    cannot be copied whole). The first `head` characters of the text (a
    `✅ ` or `still running: `) start the first line; every continuation is
    indented under the text after them, by their width on screen (an emoji
    takes two columns). The styles of the markup are kept."""
    from rich.cells import cell_len
    from rich.text import Text

    line = Text.from_markup(markup)
    indent = cell_len(line.plain[:head])
    body = line[head:]
    room = max(out.width - indent, 20)
    # wrap keeps a code span that fits whole (_base.whole_spans) and gives
    # back the text's own characters: where its lines break is found in it
    solid = body.plain
    pos = 0
    for n, chunk in enumerate(wrap(solid, room).split("\n")):
        words = chunk.lstrip(" ")
        tail = ""  # a command's ` \\` (wrap's: _base._continued), not in the text
        if words.endswith(" \\") and solid.find(words, pos) < 0:
            words, tail = words[:-2], " \\"
        start = solid.index(words, pos)
        pos = start + len(words)
        lead = line[:head] if n == 0 else Text(" " * indent)
        # wrap never makes a line longer than `room` (a longer word is cut
        # at a `/` or the width: _base.fitted); what rich prints is that line
        out.print(Text.assemble(lead, " " * (len(chunk) - len(words) - len(tail)), body[start:pos], tail),
                  no_wrap=True, overflow="ignore", crop=False)


ns = Collection("demo", demo)
