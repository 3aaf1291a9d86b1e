"""`inv deploy`, `inv rollback`, `inv unpin`: the laptop and CI side of the pipeline."""
from __future__ import annotations

import os
import re
import sys
import threading
import time

from invoke import Collection

from .. import errors
from ..host.report import said_once as _said_once
from ..printable import printable
from ..shortsha import short_sha
from ._base import error_text, fabops_task, finish, for_each_host, print_envelope, print_text, select

DEPLOY_HELP = {
    "ref": "Deploy this branch, tag or commit instead of the branch head; pins the host until `unpin`.",
    "rolling": "Deploy N hosts at a time and stop at the first failure (0, the default: all at once).",
    "wait": "Seconds to wait for the host lock (default 0; 300 in CI).",
    "liveness": "Seconds without an event from the host before the link counts as lost (default 5).",
    "offline": "Install fabops' dependencies on the host from wheels downloaded here, not from the index.",
    "actor": "Who deploys, for the lock message and the history (default user@laptop, or $GITHUB_ACTOR).",
    "stash": "Save local changes found in the host's checkout aside and proceed (default: refuse).",
    "attach": "Follow an earlier run again by its id (after a lost connection); a run that has ended is said "
              "as such, its recorded steps replayed, with its recorded exit code.",
    "watch": ("Wait for the watch window after the gate (default). --no-watch returns once the services pass "
              "their gate; the host still watches them and rolls back on its own (with --rolling, the next batch "
              "starts before this one's watch ends)."),
    "allow_unverified": ("With --ref: deploy that commit even if it is not signed by a key of the host's allowed "
                         "signers (docs/security.md, \"Verified commits\"); recorded in its history."),
}


class _Printer:
    """Host-prefixed progress lines, never interleaved: one line per step
    when it ends; a step still running after ANNOUNCE seconds gets a start
    line, then one line every BEAT seconds, so a CI log never goes quiet
    during a long `npm install` (the host's 1 s heartbeats drive it)."""

    ANNOUNCE = 2.0
    BEAT = 10.0

    def __init__(self, width: int, quiet: bool = False, clock=time.monotonic, dry_run: bool = False):
        self.width = width
        self.quiet = quiet
        self.clock = clock
        # a dry run's result is its plan, which the summary prints once
        self.dry_run = dry_run

    def __call__(self, host: str):
        from .render import PrefixWriter

        running: dict = {}
        # a failed step's line waits for the next event (a heartbeat half
        # a second on, or deploy.END when the following is over, however it
        # ends): a step that failed on a refused flag (exit 64,
        # an unknown --ref) is said by the host's one error line, not here
        held: list = []
        said: set = set()  # the run's log lines: a warning said as one (a known-bad target) is not said again
        out = PrefixWriter(f"[{host}]".ljust(self.width + 2) + " ", wrapped=True)

        def progress() -> str:
            if not running:
                return ""
            elapsed = self.clock() - running["t0"]
            if elapsed >= running["next"]:
                first = running["next"] == self.ANNOUNCE
                running["next"] = self.BEAT * (int(elapsed // self.BEAT) + 1)
                return f"… {running['step']} " + ("started" if first else f"{int(elapsed)} s")
            return ""

        def on_event(event: dict) -> None:
            if self.quiet:
                return
            kind = event.get("kind")
            text = None
            refused = kind == "result" and event.get("exit_code") in (errors.USAGE, errors.CONFIG)
            if held and not (kind == "heartbeat" and self.clock() - held[0][0] < 0.5):
                for _, line in held if not refused else ():
                    out.write(line)
                held.clear()
            if kind == "step" and event.get("status") == "start":
                running.clear()
                running.update(step=event.get("step"), t0=self.clock(), next=self.ANNOUNCE)
            elif kind == "step":
                running.clear()
                line = f"{event.get('step')} ({event.get('seconds', 0):.2f}s) {event.get('message') or ''}"
                if event.get("status") != "ok":
                    held.append((self.clock(), f"✗ {line}".rstrip() + "\n"))
                    return
                text = f"✓ {line}"
            elif kind == "heartbeat":
                text = progress()
            elif kind == "log":
                said.add(event.get("message"))
                text = f"· {event.get('message')}"
            elif kind == "result" and not self.dry_run and not refused:
                # a refused flag (exit 64) is the host's error line on
                # stderr, once (deploy_host), not also a run's result
                text = f"= {_said_once(event.get('result'), event.get('message'))}"
                # the run's warnings are why it exits 1: said here too, not
                # only in --json (a trial's rollback exited 1 in silence)
                # (once: the planner's warnings were log lines at the start, #24's fresh-clone trial)
                text += "".join(f"\n  warning: {w}" for w in event.get("warnings") or [] if w not in said)
            if text:
                out.write(text.rstrip() + "\n")

        return on_event


class _LiveBoard:
    """A rich Live table, one row per host: its current step and last word.
    Used on an interactive terminal; CI and pipes get plain lines."""

    # Below this width (an 80-column terminal) the step joins the detail
    # column, so that a host's last word has the room to say why.
    NARROW = 120

    def __init__(self, names, labels=None):
        from rich.live import Live

        from .render import console

        self.rows = {n: {"step": "connecting", "status": "…", "message": "", "steps": 0, "shas": []} for n in names}
        # full service name -> the short name the tables show (discord-bot)
        self.labels = labels or {}
        self.lock = threading.Lock()
        self.live = Live(self._table(), console=console(), refresh_per_second=8, transient=False)

    def _table(self):
        """One line per host, whatever the width: a live board whose rows
        grow taller as a message wraps jumps on every refresh. The host and
        the status stay whole, and so does the step on a wide terminal (cut
        at 22 columns); the detail takes the rest, cut so that its reason's
        head stays (render.keep_reason)."""
        from rich import box
        from rich.table import Table

        from .render import RESULT_STYLE, console, literal, rest_column

        width = console().width
        narrow = width < self.NARROW
        heads = ("host", "") if narrow else ("host", "", "step")
        rows = [(name, printable(row["status"]), self._step(row)) for name, row in self.rows.items()]
        table = Table(title="progress", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        fixed = [max([len(col)] + [len(r[i]) for r in rows]) for i, col in enumerate(heads)]
        for col, w in zip(heads, fixed):
            table.add_column(col, no_wrap=True, min_width=w)
        rest = rest_column(table, width, fixed, wide=False)
        table.add_column("detail", **rest)
        for (name, status, step), row in zip(rows, self.rows.values()):
            style = RESULT_STYLE.get(status, "green" if status == "✓" else "red" if status == "✗" else "cyan")
            cells = [literal(name), f"[{style}]{literal(status)}[/{style}]"] + ([] if narrow else [literal(step)])
            table.add_row(*cells, literal(self._detail(row, rest["max_width"], step if narrow else "")))
        return table

    @staticmethod
    def _step(row) -> str:
        step = printable(f"done ({row['steps']} steps)" if row.get("done") else f"{row['step']} ({row['steps']} done)")
        return step if len(step) <= 22 else step[:21] + "…"

    def _detail(self, row, width: int, step: str) -> str:
        """The host's last word in `width` cells, with `step` (narrow: no
        step column) before it while the run goes on. What goes first is
        what the line says elsewhere: the step, the service names' shared
        prefix (voice-meeting-discord-bot.service reads discord-bot, as in
        monitor), the SHAs' tails; the reason's head stays."""
        from .render import keep_reason

        message = printable(row["message"])
        for name in sorted(self.labels, key=len, reverse=True):
            message = message.replace(name, self.labels[name])
        if row.get("done"):
            step = ""  # the result's message says it all
        if not message:
            return keep_reason(step, width)
        return keep_reason(message, width, step, row["shas"])

    def __call__(self, host: str):
        from ..host.record import counted

        def on_event(event: dict) -> None:
            kind = event.get("kind")
            with self.lock:
                row = self.rows[host]
                if kind == "step":
                    row["step"] = event.get("step")
                    if event.get("status") == "start":
                        row["status"] = "…"
                    else:
                        row["steps"] += 1
                        row["status"] = "✓" if event.get("status") == "ok" else "✗"
                        row["message"] = event.get("message") or ""
                elif kind == "log":
                    row["message"] = event.get("message") or ""
                elif kind == "result":
                    row["step"] = "done"
                    row["done"] = True
                    row["status"] = event.get("result")
                    would = (event.get("plan") or {}).get("would")
                    # a dry run's plan is printed once, below the board
                    row["message"] = (f"{counted(len(would), 'planned change')}, listed below" if would
                                      else event.get("message") or "")
                    row["shas"] = [x for x in (event.get("from"), event.get("to")) if isinstance(x, str)]
                self.live.update(self._table())

        return on_event

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        # the summary below says every result: a run that ended leaves no
        # last frame above it (each host's result twice); Ctrl-C or an
        # error keeps the board, where each host was
        self.live.transient = exc[0] is None
        return self.live.__exit__(*exc)


def _board_or_lines(chosen, json, dry_run=False):
    """How a deploy or a rollback shows its progress: a live board on an
    interactive terminal, host-prefixed lines in CI or a pipe, nothing
    with --json."""
    if not json and _interactive():
        return _LiveBoard([h.name for h in chosen], _labels(chosen))
    return _Printer(max(len(h.name) for h in chosen), quiet=json, dry_run=dry_run)


def _showing(printer, run):
    """`run()`, inside the live board's display when `printer` is one."""
    if isinstance(printer, _LiveBoard):
        with printer:
            return run()
    return run()


def _labels(hosts) -> dict:
    """Every service's full name -> the short name tables show for it."""
    from .render import service_labels

    labels = {}
    for host in hosts:
        labels.update(service_labels(svc.name for svc in host.services))
    return labels


def _interactive() -> bool:
    from ..ci import in_ci

    return sys.stdout.isatty() and not in_ci()


def _run_deploys(inventory, hosts, opts, parallel, rolling, json, accept_new, connect_timeout):
    from ..connection import close_quietly, connect
    from ..deploy import deploy_host
    inv, chosen = select(inventory, hosts)
    from dataclasses import replace

    from ..deploy import ci_settings_from

    # in CI, the commit the settings came from (docs/security.md, "When a deploy's settings are installed")
    opts = replace(opts, settings_from=ci_settings_from(inv.path))
    printer = _board_or_lines(chosen, json, opts.dry_run)

    def one(host):
        cxn = connect(host, inv, accept_new=accept_new, connect_timeout=connect_timeout)
        try:
            return deploy_host(cxn, host, opts, printer(host.name))
        finally:
            close_quietly(cxn)

    return _showing(printer, lambda: _fan(chosen, one, parallel, rolling))


def _fan(chosen, one, parallel, rolling):
    from ..fanout import FanoutResult, HostResult, run_hosts

    if rolling:
        results = []
        for i in range(0, len(chosen), rolling):
            batch = run_hosts(chosen[i:i + rolling], one, parallel=rolling)
            results.extend(batch.results)
            if batch.code != errors.OK:
                for host in chosen[i + rolling:]:
                    results.append(HostResult(host.name, error=errors.FabopsError("skipped: an earlier batch failed"), code=errors.FAILED))
                break
        return FanoutResult(results)
    return run_hosts(chosen, one, parallel=parallel)


def _report(outcome, json, wide=False, task="deploy", flag=None, pins=None, dry_run=False):
    """The summary of a deploy or a rollback (`task`), which heads it; a run
    that pins its hosts (`pins`: a rollback, a deploy --ref) also says which
    hosts it pinned, in its JSON as `pinned`. `flag`: the run's `-i`
    (inventory_flag), for the commands it names. A dry run's plan lines
    come first, after its progress, and its summary rows after every one
    (#24: the rows sat between the fetch line and the plan)."""
    from .render import host_errors

    pins = task == "rollback" if pins is None else pins
    if json:
        extra = (lambda v: {"pinned": _pinned(v.result)}) if pins else (lambda v: {})
        print_envelope(outcome.results, lambda v: v.result | {"install": v.install} | extra(v), code=_code(outcome))
    else:
        lines = [_plans] + ([_pin_lines] if pins else [])
        before, after = (lines, []) if dry_run else ([], lines)
        for say in before:
            say(outcome, flag)
        _summary(outcome, wide, task)
        for say in after:
            say(outcome, flag)
        host_errors(outcome.results)
    _github_summary(outcome, task)


def _pinned(res: dict):
    """The commit a rollback or a deploy --ref pinned its host to, as the
    host says (`pinned`: at once for a no-op or a restart, when it
    promotes a deploy); a deployed run's target from a host that does not
    say; None when it did not get there, or not yet: a run that returned
    at its gate (--no-watch) pins only once its watch passes
    (`pin_on_promotion`, _pin_lines)."""
    if res.get("watching"):
        return None
    return res.get("pinned") or (res.get("to") if res.get("result") == "deployed" else None)


def _pin_lines(outcome, flag=None) -> None:
    """rollback and deploy --ref pin the host, and cron stays on the pin:
    said, with the way out (with the run's -i, `flag`), since only `unpin`
    said so before (#24)."""
    from .render import console, hint, literal, print_hanging, short

    out = console()
    for r in outcome.results:
        if not r.ok:
            continue
        res = r.value.result
        if _pinned(res):
            print_hanging(out, literal(f"[{r.host}] pinned to {short(res['to'])}: cron stays on it until "
                                       f"{hint(flag, r.host, 'unpin')} (then it follows the branch again)"))
        elif res.get("pin_on_promotion"):  # --no-watch: the host pins it once the watch passes
            print_hanging(out, literal(f"[{r.host}] pins the host to {short(res['pin_on_promotion'])} once its "
                                       f"watch passes: cron then stays on it until {hint(flag, r.host, 'unpin')} "
                                       "(then it follows the branch again)"))
        elif res.get("result") == "would_install":
            # the host's plan says its pin among its writes (_plans); before
            # fabops is on the host its planner has decided nothing, so the
            # pin is what a run that goes ahead does (deploy._dry_run_uninstalled),
            # and a rollback without --to has no target yet
            to = short(res["to"]) if res.get("to") else "the commit it picks"
            print_hanging(out, literal(f"[{r.host}] if the host's planner goes ahead, it pins the host to {to} "
                                       f"(cron stays on it until {hint(flag, r.host, 'unpin')})"))


def _watching(res: dict) -> bool:
    """Whether a run returned at its gate (--no-watch) and the host watches on."""
    return bool(res.get("watching")) and bool(res.get("message"))


def _whole(res: dict) -> bool:
    """Whether a host's message is shown whole, wrapped, never cut: a run
    that returned at its gate (it names the command that follows the
    watch), a dry run before fabops is on the host (its message is
    all it knows: where the planner starts and the facts it read, #24), and
    a run that met the lock held (the holder's run id and the next steps:
    `run 20…` was cut, #24's trial), and a message that gives a command to
    type (`` `--ref X --allow-unverified` ``: a cut one cannot be typed, and
    the cut dropped the commit the message starts with, #29's trial)."""
    return _watching(res) or (res.get("result") in ("would_install", "locked") and bool(res.get("message"))) \
        or bool(GIVES_COMMAND.search(str(res.get("message") or "")))


# a backquoted command with a flag in a run's message (host/plan.py's `--ref X --allow-unverified`)
GIVES_COMMAND = re.compile(r"`[^`]*--[a-z][^`]*`")


def _summary(outcome, wide=False, task="deploy"):
    from .render import console

    out = console()
    # A refused flag value (exit 64: an unknown --ref, a bad --attach) or a
    # host refused before its run (78: settings sent without a home where
    # signatures are required) is said once, whole, by its `fabops: host: …`
    # line on stderr; it is no run, so it has no row (a cut copy of that
    # line was one, #24).
    results = [r for r in outcome.results if r.ok or r.code not in (errors.USAGE, errors.CONFIG)]
    if not results:
        return
    if out.width < 120:
        _summary_lines(out, results, wide, task)
    else:
        _summary_table(out, results, wide, task)


def _summary_lines(out, results, wide, task) -> None:
    """A CI log or a pipe: one line of facts per host, what shipped (or why
    not) under it, cut at the width unless --wide."""
    from rich.padding import Padding
    from rich.text import Text

    from .render import RESULT_STYLE, fmt_duration, literal, print_hanging, span

    out.print(f"[bold]{task}[/bold]")
    width = max(len(r.host) for r in results)
    for r in results:
        if r.ok:
            res = r.value.result
            style = RESULT_STYLE.get(res.get("result"), "white")
            facts = (f"{literal(r.host.ljust(width))}  [{style}]{literal(res.get('result'))}[/{style}]  "
                     # history's words (render.span): `at X` for a run that moved no
                     # commit, not `X→X`; `(first)→X` for a first deploy, not `-→X`;
                     # `-` for a run that did not get to look (locked), not `(first)→-`
                     + literal(span(res, "→"))
                     + f"  {fmt_duration(res.get('duration'))}")
            text = _text(res, None if wide else out.width - 4)
        else:
            facts = f"{literal(r.host.ljust(width))}  [red]error[/red]  {fmt_duration(r.seconds)}"
            text = error_text(r.error) if wide else _error_cut(r.error, out.width - 4)
        out.print(facts, no_wrap=True, overflow="ellipsis")
        if r.ok and _whole(res):
            # e.g. the command that follows the watch (`--attach ID`), which
            # a cut line lost (#24): whole, wrapped under the facts
            print_hanging(out, "    " + literal(printable(_shipped(res) + res["message"])), hang=4)
        elif text:
            out.print(Padding(Text(printable(text), style="dim", no_wrap=not wide,
                                   overflow="fold" if wide else "ellipsis"),
                              (0, 0, 0, 4)))


def _summary_table(out, results, wide, task) -> None:
    """A wide terminal: one table row per host; a --no-watch run's message
    follows the table, whole, since it names the command that follows the
    watch."""
    from rich.table import Table

    from .render import RESULT_STYLE, first, fmt_duration, in_place, literal, print_hanging, rest_column, short

    rows = []
    for r in results:
        if r.ok:
            res = r.value.result
            # a run that moved no commit: `unchanged` under `to`, not the same
            # SHA twice, which read as a redeploy (render.in_place)
            # a first deploy has no `from`: `(first)`, history's word (render.first), not
            # `-`; a run that did not get to look (locked) has none either: `-`
            row = (r.host, str(res.get("result")), first(res),
                   "unchanged" if in_place(res) else short(res.get("to")),
                   fmt_duration(res.get("duration")), res)
        else:
            row = (r.host, "error", "-", "-", fmt_duration(r.seconds), r.error)
        rows.append([printable(c) for c in row[:5]] + [row[5]])  # before the widths are measured
    table = Table(title=task, title_justify="left")
    # hosts, SHAs, results and times never wrap or shrink; the message is
    # cut at the width (in full with --wide, and always in --json)
    fixed = []
    for i, col in enumerate(("host", "result", "from", "to", "took")):
        fixed.append(max([len(col)] + [len(row[i]) for row in rows]))
        table.add_column(col, no_wrap=True, min_width=fixed[-1])
    rest = rest_column(table, out.width, fixed, wide)
    table.add_column("message", **rest)
    for row in rows:
        style = "red" if row[1] == "error" else RESULT_STYLE.get(row[1], "white")
        if row[1] != "error" and _whole(row[5]):
            text = _shipped(row[5]) + ("watching (see below)" if _watching(row[5]) else "see below")
        elif row[1] != "error":
            text = _text(row[5], None if wide else rest["max_width"])
        else:
            text = error_text(row[5]) if wide else _error_cut(row[5], rest["max_width"])
        table.add_row(literal(row[0]), f"[{style}]{literal(row[1])}[/{style}]",
                      *[literal(c) for c in row[2:5]], literal(printable(text)))
    out.print(table)
    for r in results:
        if r.ok and _whole(r.value.result):
            print_hanging(out, literal(printable(f"[{r.host}] {r.value.result['message']}")))


def _plans(outcome, flag=None) -> None:
    """What a --dry-run would do on each host, beyond its one-line result;
    a pin with the way out as this run names it (`flag`: its -i)."""
    from ..host.dry_run import UNPINNED
    from ..host.would import lines
    from .render import console, hint, literal, print_hanging

    out = console()
    for r in outcome.results:
        plan = r.value.result.get("plan") if r.ok else None
        if not plan:
            continue
        _plan_head(out, r.host, r.value.result, plan)
        # then each write, in the line form every dry run shares (host/would.py),
        # wrapped under the text after `[host] ` as every plain line is
        way_out = "until " + hint(flag, r.host, "unpin")
        woulds = [{**w, "why": str(w.get("why", "")).replace(UNPINNED, way_out)} if w.get("action") == "pin" else w
                  for w in plan.get("would") or ()]
        for line in lines(woulds, f"[{r.host}] "):
            print_hanging(out, literal(line))


def _plan_head(out, host: str, res: dict, plan: dict) -> None:
    """A dry run's `plan:` line, then every warning its JSON has that the
    plan line or the result's message does not already say: the real run
    warns in the planner's same words (host/plan.py) and exits 1 for them,
    so a dry run that exits 1 says why (#24's trial: a clean plan, exit 1,
    the reason only in --json)."""
    from ..host.record import counted
    from .render import literal, print_hanging, short

    parts = []
    if plan.get("changed_files") is not None:
        parts.append(f"{counted(plan['changed_files'], 'changed file')}")
    if plan.get("dirty"):
        parts.append(f"{counted(len(plan['dirty']), 'local change')} in the checkout")
    if plan.get("pin"):
        parts.append(f"pinned to {literal(short(plan['pin']))}")
    if plan.get("known_bad"):  # the host planner's line, as the real run says it (Plan.known_bad)
        parts.append(f"[yellow]{literal(plan['known_bad'])}[/yellow]")
    if parts:
        print_hanging(out, literal(f"[{host}]") + " plan: " + "; ".join(parts))
    for warning in res.get("warnings") or ():
        if warning != plan.get("known_bad") and warning not in str(res.get("message") or ""):
            print_hanging(out, literal(f"[{host}]") + " [yellow]warning:[/yellow] " + literal(warning))


def _github_summary(outcome, task="deploy"):
    """Under GitHub Actions, a Markdown summary for the run page."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    lines = ["| host | result | from | to | commit | duration |", "|---|---|---|---|---|---|"]
    for r in outcome.results:
        if r.ok:
            res = r.value.result
            shipped = _shipped(res).rstrip(": ").replace("|", "\\|") or "-"
            lines.append(f"| {r.host} | {res.get('result')} | {short_sha(res.get('from'))} | {short_sha(res.get('to'))} "
                         f"| {shipped} | {res.get('duration', 0):.1f} s |")
        else:
            lines.append(f"| {r.host} | error: {error_text(r.error)} | - | - | - | - |")
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"### fabops {task}\n\n" + "\n".join(printable(line) for line in lines) + "\n\n")
    except OSError:
        pass


def _text(res: dict, width) -> str:
    """A host's line under its facts: what shipped and the message, whole
    (width None: --wide), or cut to width so that the message survives
    when the run did not ship: it says why (render.keep_reason)."""
    from .render import keep_reason

    if (res.get("plan") or {}).get("would"):
        # a dry run's message restates its plan, whose `would` lines follow
        # (_plans): what would ship, if the host knows, is all that is new
        return _shipped(res).rstrip(": ")
    message = str(res.get("message", ""))
    if ARROW_ONLY.fullmatch(message):
        # `A -> B` and no more: the facts line above shows `A→B` (#24's
        # trial read both), so what shipped is all this line says
        return _shipped(res).rstrip(": ")
    text = _shipped(res) + message
    if width is None or (res.get("result") in ("deployed", "noop", "would_deploy") and ONLY_COMMITS.fullmatch(message)):
        return text  # what shipped leads, and rich cuts its tail: the facts line names the commits
    # any other message says why, or how it ended (`waited for run X …; it
    # ended deployed: …`): cut so that its outcome stays, as the live board does
    shas = [x for x in (res.get("from"), res.get("to")) if isinstance(x, str)]
    return keep_reason(printable(message), width, printable(_shipped(res).rstrip(": ")), shas)


# A run's message that names only its commits, which the facts line shows too
ONLY_COMMITS = re.compile(r"(first deploy, at |up to date at )?[0-9a-f]{7,40}( -> [0-9a-f]{7,40})?")
# ... as its from→to alone (a deploy's `A -> B`), which that line says in the same words
ARROW_ONLY = re.compile(r"[0-9a-f]{7,40} -> [0-9a-f]{7,40}")


def _error_cut(error, width: int) -> str:
    """A host's error cut to width, its reason (after the last `: `) kept."""
    from .render import keep_reason, split_reason

    context, reason = split_reason(printable(error_text(error)))
    return keep_reason(reason, width, context)


def _shipped(res: dict) -> str:
    """`subject (author): ` of the target commit, as the host recorded it."""
    if not res.get("subject"):
        return ""
    return f"{res['subject']}" + (f" ({res['author']})" if res.get("author") else "") + ": "


def _code(outcome) -> int:
    codes = [(r.value.exit_code if r.ok else r.code) for r in outcome.results]
    return errors.worst(codes)


def inventory_flag(inventory):
    """The `-i PATH` the commands a deploy's messages suggest (`--attach
    ID`, `inv history`) need to work as printed: the inventory given with
    -i, unless the usual lookup without it (FABOPS_INVENTORY, then
    hosts.yml here or above: inventory.find_inventory) finds that very
    file; None without -i (the lookup found it)."""
    from ..inventory import find_inventory

    if not inventory:
        return None
    try:
        if os.path.samefile(inventory, find_inventory(None)):
            return None
    except OSError:  # no default inventory (or none readable): the flag is needed
        pass
    return inventory


@fabops_task(help=DEPLOY_HELP)
def deploy(
    c, hosts=None, ref=None, dry_run=False, parallel=10, rolling=0, wait=None, liveness=5.0, offline=False,
    actor=None, stash=False, attach=None, wide=False, json=False, inventory=None, accept_new=False, connect_timeout=None,
    watch=True,  # `--no-watch` is its inverse
    allow_unverified=False,
):
    """Deploy the branch head (or --ref) to hosts through the host-side pipeline, with rollback on failure."""
    from ..deploy import DeployOptions
    from ..host.record import default_actor
    from ..host.git import check_ref
    from ..paths import check_run_id
    from ..host.verify import unverified_allowed

    if ref is not None:
        check_ref(ref)
    if attach is not None:
        # a file name on the host (runs/<id>.jsonl): `../x` is no run of its
        check_run_id(attach, "--attach")
    from ..ci import in_ci

    opts = DeployOptions(ref=ref, trigger="ci" if in_ci() else "deploy",
                         actor=actor or default_actor(), stash=stash, wait=wait, liveness=liveness,
                         offline=offline, dry_run=dry_run, clear_pin=ref is None, attach=attach, watch=bool(watch),
                         inventory=inventory_flag(inventory), allow_unverified=unverified_allowed(allow_unverified, ref))
    outcome = _run_deploys(inventory, hosts, opts, parallel, rolling, json, accept_new, connect_timeout)
    # an attached run says the pin it set (a rollback's, a --ref deploy's) as it did when it ran (#24)
    pins = ref is not None or (attach is not None and any(r.ok and r.value.pin_said for r in outcome.results))
    _report(outcome, json, wide, flag=opts.inventory, pins=pins, dry_run=dry_run)
    finish(_code(outcome))


@fabops_task(help={
    "to": "Commit to roll back to (default: the last good commit the host deployed before the current one that is "
          "older than it, from its history; none: refused, exit 2).",
    "liveness": DEPLOY_HELP["liveness"], "offline": DEPLOY_HELP["offline"], "actor": DEPLOY_HELP["actor"],
    # a rollback is no `ci` run: it waits only when asked (host/queue.lock_wait), in CI too
    "wait": "Seconds to wait for the host lock (default 0).",
})
def rollback(c, hosts=None, to=None, wait=None, liveness=5.0, offline=False, actor=None, dry_run=False, wide=False,
             json=False, inventory=None, accept_new=False, connect_timeout=None, parallel=10):
    """Roll hosts back to the previous good commit (or --to) through the same gate, and pin them there."""
    from ..deploy import DeployOptions, deploy_host
    from ..host.record import default_actor
    from ..host.git import check_ref

    if to is not None:
        check_ref(to)
    inv, chosen = select(inventory, hosts)
    printer = _board_or_lines(chosen, json, dry_run)
    from ..deploy import ci_settings_from

    source = ci_settings_from(inv.path)  # in CI, the commit the settings came from (as deploy's)

    def one(t, host):
        # without --to, the host's planner picks the commit (host/plan.py,
        # rollback_target), for the dry run and the real run alike
        opts = DeployOptions(ref=to, trigger="rollback", actor=actor or default_actor(), wait=wait,
                             liveness=liveness, offline=offline, clear_pin=False, dry_run=dry_run,
                             inventory=inventory_flag(inventory), settings_from=source)
        return deploy_host(t, host, opts, printer(host.name))

    outcome = _showing(printer, lambda: for_each_host(inventory, hosts, one, parallel=parallel,
                                                      accept_new=accept_new, connect_timeout=connect_timeout))
    _report(outcome, json, wide, task="rollback", flag=inventory_flag(inventory), dry_run=dry_run)
    finish(_code(outcome))


# what unpin and its dry run say of a host that has no pin: one wording
# (the trial read `is not pinned` from the dry run, `was not pinned` from unpin)
NOT_PINNED = "not pinned: nothing to unpin"


@fabops_task
def unpin(c, hosts=None, dry_run=False, json=False, inventory=None, accept_new=False, connect_timeout=None):
    """Clear the pin left by rollback or deploy --ref, so cron follows the branch again."""
    from ..host.would import lines
    from ..remote import unpin as unpin_host, unpin_dry_run
    from ._base import for_each_host

    if dry_run:  # the pin read and remote.unpin_plan rendered: nothing written
        fn = unpin_dry_run
    else:
        fn = lambda cxn, host: {"was_pinned_to": unpin_host(cxn, host), "dry_run": False}  # noqa: E731
    outcome = for_each_host(inventory, hosts, fn, accept_new=accept_new, connect_timeout=connect_timeout)
    if json:
        print_envelope(outcome.results, code=outcome.code)
    else:
        from .render import host_errors

        for r in outcome.results:
            if not r.ok:
                continue
            pin = r.value["was_pinned_to"]
            if dry_run:
                for line in lines(r.value["would"], f"{r.host}: ", none=NOT_PINNED):
                    print_text(line)
            else:
                print_text(f"{r.host}: " + (f"unpinned (was pinned to {short_sha(pin)})" if pin else NOT_PINNED))
        host_errors(outcome.results)
    finish(outcome.code)


# promote (tasks/promote.py) shows the deploys it starts as deploy shows its own
board_or_lines = _board_or_lines
showing = _showing
fan = _fan
report = _report

ns = Collection("deploy", deploy, rollback, unpin)


@fabops_task(help={
    "service": "Restart only this service, by its name or the short name tables show (default: all, in inventory order).",
    "actor": DEPLOY_HELP["actor"],
})
def restart(c, hosts=None, service=None, actor=None, dry_run=False, json=False, inventory=None, accept_new=False,
            connect_timeout=None):
    """Restart services under the host lock, then poll until each is ready (agentless)."""
    from ..host.record import default_actor
    from ..host.would import lines
    from ..maintenance import restart as decided
    from ._base import for_each_host

    select(inventory, hosts, service)  # an unknown --service: exit 64 before any connection

    def one(cxn, host):
        # decided before acting (maintenance/restart.py): the lock's holder,
        # the checkout and the declared ports read; the dry run renders that decision
        if dry_run:  # (code, {dry_run, would}): nothing restarted
            return decided.dry_run(cxn, host, service, inventory_flag(inventory))
        return decided.restart(cxn, host, service, actor or default_actor(),
                               progress=None if json else (lambda m: print_text(f"[{host.name}] · {m}")),
                               inventory=inventory_flag(inventory))

    outcome = for_each_host(inventory, hosts, one, accept_new=accept_new, connect_timeout=connect_timeout)
    codes = []
    for r in outcome.results:
        if r.ok and dry_run:
            codes.append(r.value[0])
        elif r.ok:
            codes.append(errors.FAILED if any(not x["ok"] for x in r.value) else errors.OK)
        else:
            codes.append(r.code)
    if json:
        # a host's value is an object, as every other task's (docs/json.md): its services under `services`
        print_envelope(outcome.results, (lambda v: v[1]) if dry_run else (lambda v: {"services": v}),
                       code=errors.worst(codes))
    else:
        from .render import fmt_duration, host_errors

        for r in outcome.results:
            if r.ok and dry_run:
                for line in lines(r.value[1]["would"], f"[{r.host}] "):
                    print_text(line)
            elif r.ok:
                for x in r.value:
                    mark = "✓" if x["ok"] else "✗"
                    print_text(f"[{r.host}] {mark} {x['message']} ({fmt_duration(x['seconds'])})")
        host_errors(outcome.results)
    finish(errors.worst(codes))


ns.add_task(restart)
