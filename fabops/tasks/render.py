"""rich rendering shared by the task modules. Imported lazily, only when a
task renders, so the host-side cron path never loads rich."""
from __future__ import annotations

import re
import sys
import threading
from typing import Iterable, List

from .. import errors
from ..host.report import duration_text as fmt_duration  # host/report's: monitor's findings say an age as the panels do
from ..printable import printable
from ..shortsha import SHORT, SPELLED, respelled, short_sha
from ._base import HANGING, KEEP, error_text, for_stderr, unbroken, whole_spans, wrap


def literal(text, lines: bool = False) -> str:
    """Host text to print through rich markup: shown as it is written (a
    `[/]` or a `[link=…]` in a commit subject is text, not markup), without
    its escape sequences or control characters (fabops/printable.py)."""
    from rich.markup import escape

    return escape(printable(text, lines))


class _NoTrailingSpaces:
    """The file every Console writes through. rich pads a table row, a
    title or a Padding to the full width, so lines carried spaces to 80
    columns: in a pipe (diffs, `grep 'x$'`, CI logs trip on them) and on a
    terminal alike (a copied table pastes them; #24). Spaces before a line's
    end are dropped, also where a terminal's style codes stand among them
    (`text   \x1b[0m\n`): the codes are kept, in their order. Spaces at the
    end of a write are held until the next write shows whether the line
    goes on (then they are written) or ends; style codes after them are
    written at once, so a reset is never held back. That moves held spaces
    after a style's end, which changes nothing visible: no style fabops
    prints on a space shows on one (no background, no underline)."""

    def __init__(self, stream):
        self.stream = stream
        self.held = ""

    def write(self, text: str) -> int:
        whole = _SPACES_AT_END.sub(lambda m: m.group(0).replace(" ", ""), self.held + text)
        tail = _SPACES_LAST.search(whole)
        self.held = " " * tail.group(0).count(" ")
        self.stream.write(whole[:tail.start()] + tail.group(0).replace(" ", ""))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):  # a replaced or closed stream
            return False

    def __getattr__(self, name):  # fileno, encoding, ...: the stream's own
        return getattr(self.stream, name)


_STYLE_CODE = r"\x1b\[[0-9;:]*m"  # SGR: what rich writes around styled text on a terminal
_SPACES_AT_END = re.compile(rf"(?:[ ]|{_STYLE_CODE})+(?=\n)")  # before a line's end
_SPACES_LAST = re.compile(rf"(?:[ ]|{_STYLE_CODE})*\Z")  # at the end of a write


def console(stderr: bool = False):
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    out.file = _NoTrailingSpaces(out.file)  # a terminal too: rich still sees it is one (isatty)
    if not stderr:
        # rich's own handler exits 1, which reads as WARNING here: a closed
        # pipe ends the same way in every task (exit 141, nothing printed).
        out.on_broken_pipe = errors.quiet_closed_pipe
    return out


def print_hanging(out, markup: str, hang: int = 0) -> None:
    """Rich markup printed as _base.wrap prints plain lines: wrapped at
    spaces, with continuation lines under the text (after the line's indent
    and its `✓ `, `[host] ` or `host: `), not at column 0; a line with no
    such prefix continues `hang` columns in. A `code span` that fits a line
    is not broken at its spaces, nor a number and its unit (_base.unbroken).
    The demo's narration and `status`' lines: rich wraps at spaces, but
    every continuation started at the left edge (and inside `inv unpin`)."""
    from rich.text import Text

    for line in Text.from_markup(markup).split("\n", allow_blank=True):
        parts = _hanging(line, out, out.width, hang)
        if parts is None:
            out.print(line)
            continue
        for part in parts:
            out.print(part, no_wrap=True, crop=False)


def _hanging(line, out, width: int, hang: int, spans: bool = True):
    """One line of rich Text broken to `width` as print_hanging prints it
    and a panel's Unbroken(hang=) yields it: continuation lines under the
    text after its prefix (HANGING), else `hang` columns in. None when it
    fits, or has no indent to hang by (or one past half the width)."""
    from rich.text import Text

    indent = len(HANGING.match(line.plain).group(0))
    head, body = line.divide([indent]) if indent else (Text(""), line)
    indent = indent or hang
    if line.cell_len <= width or not indent or indent > width // 2:
        return None
    # the spaces of a code span that fits a line as a character that is
    # not one, for the wrap; the same length, so the styles stay put
    room = width - indent
    body.plain = unbroken(whole_spans(body.plain, room) if spans else body.plain)
    parts = _kept_lines(body, out, room)
    return [Text.assemble(head if i == 0 else " " * indent, part) for i, part in enumerate(parts)]


def _kept_lines(text, out, room: int) -> list:
    """`text` (its KEEPs in place) wrapped to `room` cells by rich, each line
    with its spaces back and none at its end."""
    lines = list(text.wrap(out, room, overflow="fold"))
    for part in lines:
        part.plain = part.plain.replace(KEEP, " ")
        part.rstrip()
    return lines


class Unbroken:
    """A line of rich markup for a panel: wrapped as rich wraps it, except
    that a number stays with its unit (`up 14h 11m`, not `up 14h` │ `11m`:
    _base.unbroken), and with `spans`, a `code span` that fits the line
    stays whole (a command a finding names: _base.whole_spans). With
    `hang`, a line too long continues as print_hanging's do, `hang` columns
    in: a monitor panel's line, as `status` prints it (#24's trial: the
    bad targets' second line started at the panel's edge)."""

    def __init__(self, markup: str, spans: bool = False, hang: int = 0):
        self.markup, self.spans, self.hang = markup, spans, hang

    def __rich_console__(self, console, options):
        from rich.text import Text

        text = Text.from_markup(self.markup)
        hung = _hanging(text, console, options.max_width, self.hang, self.spans) \
            if self.hang and "\n" not in text.plain else None
        if hung is not None:
            yield from hung
            return
        text.plain = unbroken(whole_spans(text.plain, options.max_width) if self.spans else text.plain)
        yield from _kept_lines(text, console, options.max_width)


def fmt_uptime(seconds) -> str:
    """A service's uptime as status and monitor print it (procstat.process_ages
    reckons it): `-` when not running, `<1 s` for a process younger than a
    second, else fmt_duration (`12.4 s`, `3m 5s`)."""
    if seconds is None:
        return "-"
    return "<1 s" if seconds < 1 else fmt_duration(seconds)


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


def host_errors(results: Iterable) -> None:
    """Errors go to stderr, one line per host, as the task layer prints them."""
    from ._base import debug_enabled

    for r in results:
        if r.error is None:
            continue
        if debug_enabled() and not isinstance(r.error, errors.FabopsError):
            # a bug in one host's thread (exit 70): --debug promises its
            # traceback, as for a bug outside the fan-out (FabopsTask)
            import traceback

            traceback.print_exception(type(r.error), r.error, r.error.__traceback__, file=sys.stderr)
        sys.stderr.write(for_stderr(printable(f"fabops: {r.host}: {error_text(r.error)}", lines=True)) + "\n")


RESULT_STYLE = {
    "noop": "dim",
    "deployed": "green",
    "deployed!": "yellow",  # an unsigned commit shipped (host/record.shown_result)
    "healthy": "green",
    "aborted": "yellow",
    "rolled_back": "yellow",
    "broken": "bold red",
    "locked": "magenta",
    "skipped_bad": "yellow",
    "skipped_unverified": "yellow",
    "deferred": "yellow",
    # env-set, env-unset, env-push (maintenance/envset.RESULTS), restore-env
    "changed": "green",
    "reverted": "yellow",
    "restored": "green",
    "failed": "red",
    "would_deploy": "cyan",
    "would_install": "cyan",
    "would_abort": "yellow",
    "would_break": "bold red",
}


def service_labels(names) -> dict:
    """The short names tables show (inventory.short_service_names: the one
    rule, which Host.service also accepts as a service's name)."""
    from ..inventory import short_service_names

    return short_service_names(names)


MIN_CONTEXT = 12  # a cut subject shorter than this says nothing: dropped instead


def split_reason(text: str):
    """(context, reason) of an error line: the reason is what follows its
    last `: ` outside parentheses (`cannot connect to user@host:22: timed
    out` -> `timed out`); ("", text) when there is none."""
    depth, at = 0, -1
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and text.startswith(": ", i):
            at = i
    return (text[:at], text[at + 2:]) if at > 0 else ("", text)


def keep_reason(reason: str, width: int, context: str = "", shas=()) -> str:
    """`context: reason` cut to `width` cells so that the reason survives
    (#24: the deploy summary, history and the monitor table cut `Subject
    (Author): watch: voice-meet…` at the end, and the end was why it
    failed). What goes first: the context (a commit's subject, a host's
    address), cut and then dropped; then, within the reason, what the line
    says elsewhere: a `.service` suffix, and a leading SHA of those the
    facts line shows (`shas`, which the reason always spells as every
    screen does, shortsha: `6ccd907a40 failed (…)`: the facts line names
    the commit); then the middle of the reason, so that its head and its
    outcome, the last `; ` clause (`rolled back to d1f80fc0df, healthy`:
    where the run ended), both stay; last, when even
    that leaves too little, the reason's tail. Text in parentheses is kept
    as long as there is room: in `X failed (bot died after starting)` it is
    the reason."""
    import re

    from rich.cells import cell_len

    # a SHA however long the message spells it (12 characters, 10, all 40)
    # reads as every screen shows a commit (shortsha: its first 10), never
    # a spliced string that names no commit
    for sha in (x for x in shas if x and len(x) >= SHORT):
        reason = re.sub(r"\b" + re.escape(sha[:SPELLED]) + r"[0-9a-f]*", short(sha), reason)
    if cell_len(f"{context}: {reason}" if context else reason) <= width:
        return f"{context}: {reason}" if context else reason
    room = width - cell_len(reason) - 2
    if context and room >= MIN_CONTEXT:
        return f"{cut_cells(context, room)}: {reason}"
    shortenings = [lambda r: re.sub(r"\b([\w@.-]+?)\.service\b", r"\1", r)]
    shortenings += [lambda r, sha=sha: re.sub("^" + re.escape(short(sha)) + " ", "", r)
                    for sha in shas if sha and len(sha) >= SHORT]
    # a hold's `origin is at SHA, which failed its gate (…)` / `…, whose
    # dependency rule failed (…)`: the SHA is the facts line's `to`, the
    # words after it are the reason (trial: the cut kept the SHA, lost them)
    shortenings += [lambda r, sha=sha: re.sub(r"^\S+ is at " + re.escape(short(sha)) + r", (which|whose) ",
                                              lambda m: "" if m[1] == "which" else "its ", r)
                    for sha in shas if sha and len(sha) >= SHORT]
    for shorten in shortenings:
        if cell_len(reason) <= width:
            break
        reason = shorten(reason)
    if cell_len(reason) <= width:
        return reason
    head, outcome = _outcome(reason)
    room = width - cell_len(outcome) - 2
    if outcome and room >= MIN_HEAD:
        # cut inside the parentheses: closed again, so the outcome does not
        # read as part of the aside
        cut = cut_cells(head, room - 1, True) + ")" if _open_at(head, room - 1) else cut_cells(head, room, True)
        return f"{cut}; {outcome}"
    return cut_cells(reason, width)


MIN_HEAD = 24  # the reason's head kept before its outcome: shorter says nothing, so the tail goes instead


def cut_cells(text: str, cells: int, words: bool = False) -> str:
    """`text` in at most `cells` cells: whole, or cut with `…` after its
    last kept character that is not a space; with `words`, after a whole
    word when one ends in the kept text's second half."""
    from rich.cells import cell_len
    from rich.text import Text

    if cell_len(text) <= cells:
        return text
    t = Text(text)
    t.truncate(max(cells - 1, 0), overflow="crop")
    kept = t.plain
    if words and not text[len(kept)].isspace() and " " in kept[len(kept) // 2:]:
        kept = kept[:kept.rindex(" ")]
    return kept.rstrip() + "…"


def _open_at(text: str, cells: int) -> bool:
    """Whether a cut of `text` to `cells` (with its ellipsis) ends inside
    parentheses."""
    kept = cut_cells(text, cells, True)
    return kept.count("(") > kept.count(")")


def _outcome(reason: str):
    """(head, outcome): the outcome is the reason's last `; ` clause outside
    parentheses (how the run ended), "" when there is none."""
    depth, at = 0, -1
    for i, ch in enumerate(reason):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and reason.startswith("; ", i):
            at = i
    return (reason[:at], reason[at + 2:]) if at > 0 else (reason, "")


def rest_column(table, width: int, fixed, wide: bool) -> dict:
    """Options for a table's last, long-text column. rich measures a no-wrap
    cell by its whole text and squeezes the other columns to nothing to make
    room; a max_width of what is left keeps them whole and cuts the text
    with an ellipsis (or wraps it, with --wide). What is left is the width
    less the fixed columns and the table's own frame: edges, one divider
    between columns, and each column's padding (none at the outer edges
    without pad_edge)."""
    n = len(fixed) + 1
    frame = (2 if table.box and table.show_edge else 0) + (n - 1 if table.box else 0)
    pad_left, pad_right = table.padding[3], table.padding[1]
    frame += (pad_left + pad_right) * n - (0 if table.pad_edge else pad_left + pad_right)
    return {"overflow": "fold" if wide else "ellipsis", "no_wrap": not wide,
            "max_width": max(10, width - sum(fixed) - frame)}


def short(sha) -> str:
    """A commit as a person reads it (shortsha: one length everywhere)."""
    return short_sha(sha)


def in_place(rec: dict) -> bool:
    """Whether a history record is of a run that moved no commit (from ==
    to): a restart (a person's, local-update's, health --fix's), a backup,
    a check that found nothing to do, a deploy that finished an interrupted
    run on the commit its checkout was on. Shown as `at X` (span), never as
    `X→X`, which read as a redeploy (#24)."""
    return bool(rec.get("from")) and rec.get("from") == rec.get("to")


def looked(rec: dict) -> bool:
    """Whether a run got to read what was deployed: it has a `to` and was
    not locked out. One that did not (locked, unreachable, refused before
    it read state.json) has no `from` either, and that says nothing of a
    first deploy (#24: a locked deploy's row read `(first)→-`)."""
    return bool(rec.get("to")) and rec.get("result") != "locked"


def first(rec: dict) -> str:
    """A run's `from` as a person reads it: the commit; `(first)` for a run
    that looked and found nothing deployed, since `-→43d7eb27d6` read as a
    missing value or a typo; `-` for a run that did not look (looked)."""
    if rec.get("from"):
        return short(rec.get("from"))
    return "(first)" if looked(rec) else "-"


def span(rec: dict, arrow: str) -> str:
    """A run's `from→to` (`from` as first says it). A run that moved no
    commit: `at X` (in_place); one that did not look: `-` alone."""
    if in_place(rec):
        return f"at {short(rec.get('to'))}"
    if not rec.get("from") and not looked(rec):
        return "-"
    return f"{first(rec)}{arrow}{short(rec.get('to'))}"


def restated(rec: dict) -> bool:
    """Whether a record's message only says its `from -> to` again, as a
    deploy's does (host/pipeline.py, _promote): the row's span says it. A
    deploy that found the checkout on its target already says `already at
    X` (and the commit it promoted from): the row shows its subject too."""
    message = str(rec.get("message") or "")
    return message == f"{short(rec.get('from'))} -> {short(rec.get('to'))}" or (
        rec.get("result") == "deployed" and message.startswith(f"already at {short(rec.get('to'))}"))


def ago(ts) -> str:
    import time

    if not isinstance(ts, (int, float)):
        return "-"
    return fmt_duration(max(0.0, time.time() - ts)) + " ago"


def history_table(host: str, records, wide: bool = False) -> None:
    from rich import box
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    out = console()
    if not records:
        out.print(f"[dim]{literal(host)}: no history yet[/dim]")
        return
    rows = [_history_row(rec) for rec in records]
    from ..host.record import counted
    # a run that held the host on its commit (a bad, an unsigned, a retryable
    # target): its message is why, shown whole, wrapped, never cut (#29: at 80
    # columns the hold's reason lost its cause)
    from ..host.state import HOLDS as HELD

    title = f"{host}: last {counted(len(records), 'run')}"
    if out.width < 120:
        # A CI log, a pipe, a small terminal: one line of facts per run, and
        # what shipped (or why it failed) indented under it, wrapped.
        out.print(f"[bold]{literal(title)}[/bold]")
        widths = [max(len(cells[i]) for cells, _ in rows) for i in range(6)]
        for cells, what in rows:
            whole = wide or cells[4] in HELD
            what = _what(what, None if whole else out.width - 4)
            style = RESULT_STYLE.get(cells[4], "white")
            cells = [literal(c.ljust(w)) for c, w in zip(cells, widths)]
            cells[4] = f"[{style}]{cells[4]}[/{style}]"
            # one space between: time, trigger, actor, both SHAs, result and
            # duration fit 80 columns whole
            out.print(" ".join(cells), no_wrap=True, overflow="ellipsis")
            # what shipped: cut at the width (the facts above never are)
            # unless --wide asks for all of it, or a hold's reason is it
            text = Text(what, style="dim", no_wrap=not whole, overflow="fold" if whole else "ellipsis")
            out.print(Padding(text, (0, 0, 0, 4)))
        return
    table = Table(title=literal(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # Times and SHAs never wrap or shrink; what shipped takes the rest.
    fixed = []
    for i, col in enumerate(("time", "trigger", "actor", "from → to", "result", "took")):
        fixed.append(max([len(col)] + [len(cells[i]) for cells, _ in rows]))
        table.add_column(col, no_wrap=True, min_width=fixed[-1])
    rest = rest_column(table, out.width, fixed, wide)
    table.add_column("what", **rest)
    for cells, what in rows:
        style = RESULT_STYLE.get(cells[4], "white")
        # a hold's reason whole, wrapped at spaces in its column
        text = Text(_what(what, None), no_wrap=False, overflow="fold") if cells[4] in HELD \
            else literal(_what(what, None if wide else rest["max_width"]))
        table.add_row(*[literal(c) for c in cells[:4]], f"[{style}]{literal(cells[4])}[/{style}]", literal(cells[5]),
                      text)
    out.print(table)


def _history_row(rec: dict):
    """(cells, (what, reason, shas)) of one history record: the facts
    (time, trigger, actor, from→to, result, took), printable before the
    widths are measured, and what shipped or why not."""
    from ..host.record import SHIPPED_UNVERIFIED, shown_result, unverified_warning

    # the update log's word (host/record.shown_result): a restart's or
    # health --fix's `deployed` record reads `healthy`, not as a commit shipped
    result = shown_result(rec) if rec.get("result") else "?"
    # a run that moved no commit shipped nothing: what it did is its
    # message (a restart's, health --fix's, a backup's), unless that only
    # says `X -> X`: a deploy that finished an interrupted run on the
    # commit its checkout was on, whose subject the row shows as any deploy's
    what = "" if in_place(rec) and not restated(rec) else str(rec.get("subject") or "")
    if what and rec.get("author"):
        what += f" ({rec['author']})"
    # a run that did not ship: the subject is context and the message
    # the reason, which a cut keeps (keep_reason)
    reason = str(rec.get("message", "")) if result not in ("deployed", "noop") or not what else None
    if result == "deployed!":  # an unsigned commit shipped: why the row warns is its reason, its
        # outcome a last `; ` clause, which a cut keeps (keep_reason)
        reason = str(unverified_warning(rec)).replace(f": {SHIPPED_UNVERIFIED}", f"; {SHIPPED_UNVERIFIED}")
    actor = printable(str(rec.get("actor", "?")).split("@")[0])
    actor = actor if len(actor) <= 12 else actor[:11] + "…"  # the facts line fits 80 columns
    cells = [_when(rec), str(rec.get("trigger", "?")), actor, span(rec, "→"), result,
             fmt_duration(rec.get("duration"))]
    # markup-escaped as printed
    shas = tuple(x for x in (rec.get("from"), rec.get("to")) if isinstance(x, str))
    return [printable(c) for c in cells], (printable(what), None if reason is None else printable(reason), shas)


def _what(what, width) -> str:
    """A history row's text: the subject, or `subject: reason` cut so the
    reason stays (whole when width is None: --wide)."""
    subject, reason, shas = what
    if reason is None:
        return subject
    if width is None:
        return f"{subject}: {reason}" if subject else reason
    return keep_reason(reason, width, subject, shas)


def _when(rec: dict) -> str:
    """Compact local time with its zone: `11-29 10:30 UTC`."""
    import time

    ts = rec.get("ts")
    if isinstance(ts, (int, float)):
        return time.strftime("%m-%d %H:%M %Z", time.localtime(ts))
    return str(rec.get("time", "?"))[5:16].replace("T", " ")


def hint(flag, hosts, task: str, *words: str) -> str:
    """`fabops TASK [-i PATH] -H HOSTS WORDS…`, a command a message tells a
    person to run next, for the host(s) this run acted on (a name or names):
    deploy.suggest with `flag`, the `-i` tasks/deploy.inventory_flag gives
    for the run's inventory. Without -H it would act on the default host,
    which may be production."""
    from ..deploy import suggest

    names = [hosts] if isinstance(hosts, str) else list(hosts)
    return suggest(flag, task, "-H", ",".join(names), *words)


def pin_lines(data: dict, why: bool = False, host: str = "", flag=None) -> List[str]:
    """The pin and the remembered bad targets, for `status` (with the pin's
    reason and the way out for `host`, `flag` its `-i`: hint) and `monitor`."""
    out = []
    if data.get("pin"):
        out.append(f"[yellow]📌 pinned to {literal(short(data['pin']))}[/yellow]"
                   + (f" ({literal(data.get('pin_reason') or '?')}); {literal(hint(flag, host, 'unpin'))} "
                      "to follow the branch again" if why else ""))
    # monitor's and status': only those origin has not moved past (remote.bad_ahead; #24's trial saw
    # one on every panel; status listed them all until #24's leftovers)
    bad = data["bad_ahead"] if data.get("bad_ahead") is not None else data.get("bad")
    if bad:
        out.append(f"[yellow]remembered bad targets:[/yellow] {literal(', '.join(short(b) for b in bad))}")
    return out


def checkout_moved(deployed, head) -> str:
    """`  checkout is at X` after the deployed commit, when the checkout is
    on another (a reset or rollback that did not come up): status's and
    monitor's words; "" when it is on it or was not read."""
    return f"  [yellow]checkout is at {literal(short(head))}[/yellow]" if head and deployed and head != deployed \
        else ""


# what recorded a verdict without an update check, as a person typed it
_VERDICT_BY = {"restart": "restart", "health": "health --fix"}


def verdict_lines(verdict) -> List[str]:
    """A person's `restart` or `health --fix` that judged the host since the
    last update check, as what it was (#24: monitor said `last update check
    2 s ago: deployed` after a restart): its own line under the check's,
    with its time, who ran it and what it found (host/state.verdict_of).
    status's and monitor's."""
    if not verdict:
        return []
    what = _VERDICT_BY.get(verdict.get("trigger"), verdict.get("trigger") or "?")
    style = RESULT_STYLE.get(verdict.get("result"), "white")
    said = verdict.get("message") or verdict.get("result") or "?"
    return [f"{literal(what)} by {literal(verdict.get('actor') or '?')} {ago(verdict.get('at'))}: "
            f"[{style}]{literal(said)}[/{style}]"]


def in_progress_line(run_id, step, host=None, flag=None) -> str:
    """The run state.json says is under way (or was killed), and the step
    it recorded: status's and monitor's line. A restore at a step no other
    run resumes (host/plan.UNSAFE_RESTORE_STEPS: deploys and health --fix
    refuse, docs/backups.md) names the way out: the restore that takes it
    over, as `host` (the host's name) runs it."""
    from ..host.plan import UNSAFE_RESTORE_STEPS

    line = f"[magenta]run {literal(run_id)} in progress or interrupted at step {literal(step)}[/magenta]"
    if step not in UNSAFE_RESTORE_STEPS or not host:
        return line
    # "if": this line cannot tell a live restore (the lock's holder) from one cut off
    take = hint(flag, host, "backup", "--restore", str(run_id), "--yes")
    return (f"{line}[red]; if it was cut off, its services stay down (no deploy or health --fix starts them on "
            f"half-restored data) until {literal(take)} takes it over[/red]")


# status' and monitor's words for a host with no state.json yet (has_state false)
NO_STATE = "deploy state: not available yet (no fabops run on this host)"


def status_panel(host: str, data: dict, flag=None) -> None:
    import time

    from rich.table import Table

    table = Table(title=literal(host), title_justify="left")
    for col in ("service", "state", "pid", "uptime"):
        table.add_column(col)
    labels = service_labels(s["name"] for s in data.get("services", []))
    for svc in data.get("services", []):
        ok = svc.get("active")
        state = f"[green]✅ {literal(svc['state'])}[/green]" if ok else f"[red]❌ {literal(svc['state'])}[/red]"
        table.add_row(literal(labels[svc["name"]]), state, literal(svc.get("pid") or "-"),
                      fmt_uptime(svc.get("uptime") if ok else None))
    out = console()
    out.print(table)
    deployed = data.get("deployed")
    line = f"deployed [bold]{literal(short(deployed))}[/bold] ({ago(data.get('deployed_at'))})"
    # a host no fabops run has touched yet: monitor's words, not `deployed - (-)` (#24's fresh-clone trial)
    fresh = data.get("has_state") is False
    lines = [f"[dim]{NO_STATE}[/dim]" if fresh else line + checkout_moved(deployed, data.get("head"))] + \
        pin_lines(data, why=True, host=host, flag=flag)
    if data.get("in_progress"):
        ip = data["in_progress"]
        lines.append(in_progress_line(ip.get("run_id"), ip.get("step"), host, flag))
    until = data.get("restart_backoff_until")
    from ..host.state import failing_of
    from ..monitor import backoff_shown, restart_backoff_text

    if isinstance(until, (int, float)) and backoff_shown(data.get("services")):

        said = restart_backoff_text(until, host, flag, deployed, data.get("head"), data.get("in_progress"),
                                    data.get("bad") or ())
        lines.append(f"[red]{literal(said)}[/red]")
    if not fresh:
        lines.append(f"last check {ago(data.get('last_check'))}: {literal(data.get('last_result') or '-')}")
    lines += verdict_lines(data.get("verdict"))
    failing, retry = failing_of(data), data.get("retry")
    if failing:  # monitor's rule and words (host/state.failing_of, monitor.failing_words)
        lines.append(failing_line(failing, retry, data.get("last_result"), data.get("bad")))
    # a retry of the target that line names is said there, with its next
    # try (failing_words): its own line said the same reason twice (#24)
    if failing and isinstance(retry, dict) and retry.get("target") == failing.get("target"):
        retry = None
    if retry and isinstance(retry.get("next_at"), (int, float)):
        lines.append(f"[yellow]will retry {literal(short(retry.get('target')))} at "
                     f"{time.strftime('%H:%M %Z', time.localtime(retry['next_at']))}[/yellow] "
                     f"({literal(respelled(retry.get('reason', '?'), retry.get('target')))})")
    lines += last_run_lines(data.get("last_run"), data.get("verdict"))
    for text in lines:  # a long one continues two columns in, never at column 0 (trial #7)
        print_hanging(out, text, hang=2)


def failing_line(failing: dict, retry, last_result, bad=()) -> str:
    """status' `updates VERB since … (N runs) for T: WHY` line, in
    monitor's words (monitor.failing_words), or a hold no run has made yet
    (host/state.held_back). The line names T before its reason, so the
    reason's own leading SHA is said once (#24's fresh-clone trial)."""
    from ..monitor import behind_head, failing_words

    count, target = failing.get("count", 1), short(failing.get("target"))
    verb, _, why = failing_words(failing, retry, last_result, bad)
    ahead = behind_head(failing)
    if ahead:
        return f"[yellow]{literal(ahead)}:[/yellow] {literal(why)}"
    why = why[len(target) + 1:] if why.startswith(f"{target} ") else why
    return (f"[yellow]updates {verb} since {ago(failing.get('since'))} ({literal(count)} run"
            f"{'' if count == 1 else 's'}) for {literal(target)}:[/yellow] {literal(why)}")


def last_run_lines(last, verdict) -> List[str]:
    """The `last run: WHEN TRIGGER by ACTOR: WHAT` line status and
    monitor's panel show (docs/monitor.md: the last run, e.g. an env-set
    that was `reverted`), or none: no run yet, or the restart or health
    --fix the verdict line already says is the last run too (healthy_again
    gives both one time), said once."""
    if not isinstance(last, dict) or (verdict and (verdict.get("at"), verdict.get("trigger"))
                                      == (last.get("ts"), last.get("trigger"))):
        return []
    return [literal(f"last run: {_when(last)} {last.get('trigger')} by {last.get('actor')}: "
                    + last_run_words(last))]


def last_run_words(last: dict) -> str:
    """What status' last-run line says a run did: its result and span
    (`deployed X -> Y`), or, for a restart's or health --fix's record, its
    message (`restarted bot at X; healthy`): that record's `deployed` is for
    the verdict rules (host/record.shown_result), and read as a deploy."""
    from ..host.record import VERDICT_TRIGGERS

    if last.get("trigger") in VERDICT_TRIGGERS and last.get("message"):
        return str(last["message"])
    if last.get("result") == "rolled_back" and last.get("from") and last.get("to"):
        # `rolled_back A -> B` read as "rolled back to B", the commit that
        # failed (#24's trial): which failed, and where the host is
        return f"rolled back: {short(last['to'])} failed, back on {short(last['from'])}"
    return f"{last.get('result', '?')} {span(last, ' -> ')}"


class PrefixWriter:
    """A file-like object that writes whole lines, each after `prefix`: the
    one host-prefixed line writer (deploy's plain lines `[host] …`, logs'
    `host | …`), each line printable (no escape sequence or control
    character reaches the terminal). Many may share one stream; a lock makes
    each line atomic, so a line from one host never interleaves with part
    of another's."""

    _lock = threading.Lock()

    def __init__(self, prefix: str, stream=None, wrapped: bool = False):
        self.prefix = prefix
        self.stream = stream
        self.wrapped = wrapped
        self._buf = ""

    def _line(self, line: str) -> str:
        """One line as written: `wrapped` (deploy's progress, fabops' own
        words) breaks it at spaces to the width with a hanging indent, as
        _base.wrap does every plain line; without it (a log's own lines,
        data for grep) it stays whole."""
        text = self.prefix + printable(line, lines=True)
        return (wrap(text) if self.wrapped else text) + "\n"

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout  # looked up late: tests swap sys.stdout

    def write(self, text: str) -> int:
        self._buf += text
        if "\n" in self._buf:
            *lines, self._buf = self._buf.split("\n")
            out = self._out()
            with self._lock:
                for line in lines:
                    out.write(self._line(line))
                out.flush()
        return len(text)

    def flush(self) -> None:
        if self._buf:
            out = self._out()
            with self._lock:
                out.write(self._line(self._buf))
                out.flush()
            self._buf = ""

    def isatty(self) -> bool:
        return False
