"""`inv setup`: converge a host (install, host.yml, cron, sudoers, units, logs, wrappers)."""
from __future__ import annotations

import shutil
import sys
import textwrap

from invoke import Collection

from .. import errors
from ..printable import printable
from ._base import fabops_task, finish, print_envelope, print_text

STYLE = {"ok": "ok", "changed": "changed", "would change": "would change", "warning": "WARNING", "failed": "FAILED",
         "refused": "REFUSED"}


@fabops_task(help={
    "check": "Show a diff of everything that would change, and change nothing.",
    "yes": "Also take over from the legacy scripts: comment out their cron lines and move their logrotate file aside (backups first).",
    "offline": "Install fabops' dependencies from wheels downloaded here, not from the index.",
    "replace_units": "Replace unit files that exist but were not written by fabops.",
    "splay": "Random delay, in seconds, before each cron local-update (default 30).",
    "change_user": "Let this run change the deploy user that an earlier setup pinned, or move the app's root "
                   "files to this app directory (a hosts.yml edit alone cannot; docs/security.md).",
    "allow_root_unit": "Grant restart on this unit although it runs as root from the deploy user's files "
                       "(repeatable; docs/security.md).",
    "accept_signers": "Add the verify: signers the host does not have yet without asking (check the fingerprints "
                      "--check lists first; without a terminal, new signers are refused otherwise).",
}, iterable=["allow_root_unit"])
def setup(c, hosts=None, check=False, yes=False, offline=False, replace_units=False, splay=30, json=False,
          inventory=None, accept_new=False, connect_timeout=None, allow_root_unit=None, change_user=False,
          accept_signers=False):
    """Converge hosts: fabops venv, host.yml, cron block, sudoers drop-in, units, logs, logrotate, legacy commands."""
    from ._base import for_each_host
    from ..setup import setup_host

    if check and yes:
        raise errors.UsageError("--check changes nothing; drop --yes")

    width = shutil.get_terminal_size((80, 24)).columns

    def one(cxn, host):
        def show(item):
            if json:
                return
            lines = item_lines(host.name, item, width, diff=check or item.status == "changed")
            # one write: hosts run in parallel
            sys.stdout.write("".join(printable(ln, lines=True) + "\n" for ln in lines))
            sys.stdout.flush()

        return setup_host(cxn, host, check=check, yes=yes, offline=offline, replace_units=replace_units,
                          splay=int(splay), allow_root_units=allow_root_unit or (), change_user=change_user,
                          progress=show, accept_signers=accept_signers, ask_signers=None if json else ask_signers())

    outcome = for_each_host(inventory, hosts, one, accept_new=accept_new, connect_timeout=connect_timeout,
                            as_setup_user=True)
    if json:
        print_envelope(outcome.results, lambda v: v.to_dict(), code=_setup_code(outcome))
    else:
        from .render import host_errors

        for r in outcome.results:
            if r.ok:
                counts = {}
                for i in r.value.items:
                    counts[i.status] = counts.get(i.status, 0) + 1
                # "2 warnings", not "2 warning" (the other statuses are participles: "2 changed")
                print_text(f"[{r.host}] " + ", ".join(f"{n} {s}{'s' if s == 'warning' and n != 1 else ''}"
                                                      for s, n in counts.items()))
        host_errors(outcome.results)
    finish(_setup_code(outcome))


def ask_signers():
    """setup's question before it adds a verify: signer (docs/security.md,
    "New signers"): a `y` typed at a terminal, one host at a time (hosts
    run in parallel); None without a terminal, where new signers are
    refused unless --accept-signers."""
    if not sys.stdin.isatty():
        return None
    import threading

    lock = threading.Lock()

    def ask(question: str) -> bool:
        with lock:
            try:
                return input(prompt(question)).strip().lower() in ("y", "yes")
            except EOFError:  # Ctrl-D is a no, as Enter is
                print(file=sys.stderr)
                return False

    return ask


def prompt(question: str, columns=None) -> str:
    """The signers question (setup_signers.question: one key a line) as the
    terminal shows it: host text made harmless, each line wrapped at spaces
    to the width, a path that fits kept whole (_base.wrap; #29's trial got one
    160-column line), `[y/N] ` after its last line."""
    from ._base import wrap

    return wrap(printable(f"{question} [y/N]", lines=True), columns) + " "


def item_lines(host: str, item, width: int, diff: bool) -> list:
    """One setup item as lines no wider than `width` (80 in CI logs): the
    message wrapped under itself, then its diff (diff_lines), never cut
    (the diff is what --check is for)."""
    from ._base import fitted

    head = f"[{host}] {STYLE[item.status]:>12}  "
    text = f"{item.name}: {item.message}" if item.message else item.name
    room = max(20, width - len(head))
    # a path is one word (#29's trial: `…/host/home` then `/allowed_signers.gpg`):
    # one too long for the text's column starts left of it, as far as the
    # width needs, and only one longer than the whole line is broken (after
    # a `/`: fitted), as _base.wrap does for a command's words
    wrapped = textwrap.wrap(fitted(text, width), room, break_long_words=False, break_on_hyphens=False) or [""]
    lines = [head + wrapped[0]] + [" " * min(len(head), max(width - len(ln), 0)) + ln for ln in wrapped[1:]]
    if diff and item.diff:
        lines += diff_lines(host, item.diff, width)
    return lines


def diff_lines(host: str, diff: str, width: int) -> list:
    """A diff (or any file's lines: data a person reads), as setup --check
    and cron show it, on a terminal and in a pipe alike: each line after a
    `[host]   ` prefix, and a line longer than `width` wrapped at spaces,
    its continuations marked `↳` under the diff text (one column in, past
    the +/-/space column, so no continuation reads as a diff line). A word
    is broken only when it alone is longer than the room; no line ends in
    a space. The one renderer for diffs (setup and cron)."""
    pre = f"[{host}]   "
    fold = " " * (len(pre) + 1) + "↳ "
    lines = []
    for ln in diff.rstrip("\n").split("\n"):
        ln = ln.rstrip().expandtabs()  # a TAB's columns counted as shown
        if len(pre) + len(ln) <= width:
            lines.append((pre + ln).rstrip())  # a blank context line: no trailing spaces
            continue
        # textwrap keeps the space before a long word it breaks at a line's
        # end (`host.yml >> ` then the path's pieces): strip each line
        lines += [part.rstrip() for part in textwrap.wrap(ln, max(width, len(fold) + 20), initial_indent=pre,
                                                          subsequent_indent=fold, break_on_hyphens=False)]
    return lines


def _setup_code(outcome) -> int:
    return errors.worst((r.value.exit_code if r.ok else r.code) for r in outcome.results)


ns = Collection("setup", setup)
