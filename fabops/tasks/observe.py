"""`inv monitor` and `inv logs`: look at hosts from the laptop (agentless)."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Optional

from invoke import Collection

from .. import errors as E
from ..printable import printable
from ._base import envelope, error_text, fabops_task, finish, print_json, print_json_line, print_text, select

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values, lo: float = 0.0, hi: float = 100.0) -> str:
    if not values:
        return "not available yet"
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, max(0, int((v - lo) / span * (len(SPARK) - 1) + 0.5)))] for v in values)


def _mark(ok, warn=False):
    if ok is None:
        return "[dim]?[/dim]"
    return "✅" if ok else ("⚠️ " if warn else "❌")


def render_host(facts, host, show_history=False, flag: Optional[str] = None):
    """One host's panel: its services' table, then its figures, deploy
    state, logs and cleanup paths, sparklines (--history) and findings.
    `flag`: the run's `-i` (tasks/deploy.inventory_flag), for the commands
    it names."""
    from rich.console import Group
    from rich.panel import Panel

    from .render import Unbroken, literal, status_cell

    lines = [_system_line(facts, host.thresholds)]
    lines += _deploy_lines(facts.get("deploy"))
    lines += _backup_lines(facts.get("backup"), facts.get("findings") or ())
    lines += _heartbeat_lines(facts.get("heartbeat"))
    lines += _log_lines(facts, host.name, flag)
    if show_history:
        lines += _history_lines(facts.get("history") or {})
    title = f"{literal(host.name)}  {status_cell(facts['code'])}"
    # a long line continues two columns in, as status' do (print_hanging), never at the edge
    lines = [Unbroken(line, hang=2) for line in lines]
    return Panel(Group(_service_table(facts, host.thresholds), *lines, _findings_list(facts)),
                 title=title, title_align="left")


def _service_table(facts, th):
    """One row per service: state, pid, CPU, memory, age, port and check."""
    from rich.table import Table

    from .render import literal, service_labels

    # one space between columns and nothing that wraps mid-cell: the panel
    # fits 80 columns (CI logs, pipes) for the find-to-do services
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    for col in ("service", "state", "pid", "CPU", "MEM", "up", "port", "check"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    labels = service_labels(s["name"] for s in facts["services"])
    for s in facts["services"]:
        table.add_row(literal(labels[s["name"]]), f"{_mark(s['active'])} {literal(s['state'])}",
                      literal(s["pid"] or "-"), *_service_cells(s, th))
    return table


def _service_cells(s, th) -> list:
    """A service's CPU, MEM, up, port and check cells."""
    from ..monitor import answer_owner, own_figures
    from .render import fmt_uptime, literal

    whose = answer_owner(s)
    s = own_figures(s)  # a stale pid file's PID, now another process's: none of its figures are the service's
    if s["cpu"] is not None:
        cpu = f"{_mark(s['cpu'] < th['cpu'], True)} {s['cpu']:g}%"
    elif s["active"] and s["pid"]:
        cpu = "new"  # younger than the sample window: shown, not judged
    else:
        cpu = "-"
    mem = "-" if s["memory"] is None else f"{_mark(s['memory'] < th['memory'], True)} {s['memory']:g}%"
    # a port or a check that answers while the service is not running is
    # another process's, never the service's ✅ (trial 2 #5); while it is
    # reloading, starting, ... it may be either: `?` (monitor.answer_owner,
    # the finding says which)
    # short: the table fits 80 columns; the finding says whose
    mark, other = {"own": (None, ""), "other": (_mark(False, True), " (other)"), "unsure": (_mark(None), "")}[whose]
    if not s["port"]:
        port = "-"
    elif mark and s["port_open"]:
        port = f"{mark} {s['port']}{other}"
    else:
        port = f"{_mark(s['port_open'])} {s['port']}"
    if s["http_expect"] is None:
        check = "-"
    else:
        ok = s["http_status"] == s["http_expect"]
        lat = f" {s['http_latency'] * 1000:.0f} ms" if ok and s["http_latency"] is not None else ""
        mark, lat = (mark, other) if ok and mark else (_mark(ok), lat)
        check = f"{mark} {literal(s['http_status'] or 'no answer')}{lat}"
    return [cpu, mem, fmt_uptime(s["uptime"]), port, check]


def _system_line(facts, th) -> str:
    from ._base import KEEP
    from .render import fmt_duration, literal

    sys_cpu = "?" if facts["cpu"] is None else f"{facts['cpu']:g}%"
    sys_mem = "?" if facts["memory"] is None else f"{facts['memory']:g}%"
    disk = "?" if facts["disk"] is None else f"{_mark(facts['disk'] < th['disk'], True)} {facts['disk']:g}%"
    load = literal(facts.get("load") or "?")
    # the window every CPU figure of the panel covers (docs/monitor.md, "CPU")
    w = facts.get("cpu_window")
    span = "" if not w else f"{w:g} s" if w < 10 else f"{w:.0f} s" if w < 120 else fmt_duration(w)
    window = f" (last {span})" if span else ""
    # a figure's name stays on the line of its value (KEEP: render.Unbroken
    # wraps at the other spaces; a trial read `load 1.03  up` │ `17h 44m`)
    return (f"host CPU {sys_cpu}{window}  memory{KEEP}{sys_mem}  disk {disk}  load{KEEP}{load}  "
            f"up{KEEP}{fmt_duration(facts.get('uptime'))}")


def _deploy_lines(dep) -> list:
    """What is deployed and since when (and where the checkout is when it
    is not there), the last update check and its result, a restart or
    health --fix that judged the host since (its own line), the last run
    (its own line, as status says it), the pin and
    the remembered bad targets, and a run under way (or killed) with the
    step it is in, as status says it."""
    from ._base import KEEP
    from .render import (NO_STATE, RESULT_STYLE, ago, checkout_moved, in_progress_line, last_run_lines, literal,
                         pin_lines, short, verdict_lines)

    if dep is None:
        return [f"[dim]{NO_STATE}[/dim]"]
    # `last update check` is one name: a wrap after `checkout is at X;` keeps it whole (KEEP: render.Unbroken)
    line = (f"deployed {literal(short(dep.get('deployed')))} ({ago(dep.get('deployed_at'))})"
            f"{checkout_moved(dep.get('deployed'), dep.get('head'))}; last{KEEP}update{KEEP}check "
            f"{ago(dep.get('last_check'))}")
    if dep.get("last_result"):
        style = RESULT_STYLE.get(dep["last_result"], "white")
        line += f": [{style}]{literal(dep['last_result'])}[/{style}]"
    # the run and its step alone: a restore cut off putting items back, and
    # its way out, is the findings' line (monitor.cut_off_finding; #24: the
    # panel said it twice)
    running = ([in_progress_line(dep.get("in_progress_run"), dep.get("in_progress_step"))]
               if dep.get("in_progress") else [])
    # the last run on its own line, in status' words (render.last_run_lines):
    # the check's result alone hid an env-set that was `reverted` (#29 trial)
    return ([line] + verdict_lines(dep.get("verdict")) + last_run_lines(dep.get("last_run"), dep.get("verdict"))
            + pin_lines(dep) + running)


def _backup_lines(b, findings=()) -> list:
    """The last backup: when, under which schedule, ok or FAILED (its
    reason's head, unless a finding below carries it), whether it is off
    the host, and the last good one's age after a failure
    (docs/monitor.md, "Backups"). Nothing with backup.schedule off and no
    backup, or when it was not read."""
    from ..monitor import reason_head
    from .render import ago, literal

    if not b or (b["last"] is None and not b["schedule"]):
        return []
    sched = f" (backup.schedule {literal(b['schedule'])})" if b["schedule"] else " (backup.schedule off)"
    last = b["last"]
    if last is None:
        return [f"[dim]backup: none yet{sched}[/dim]"]
    where = ("on this host only" if last["offsite"] is None else "copied off the host" if last["offsite"]
             else "[yellow]not copied off the host[/yellow]")
    if last["ok"]:
        return [f"last backup {ago(last['at'])}{sched}: [green]ok[/green], {where}"]
    good = ago(b["last_ok_at"]) if b["last_ok_at"] else "never"
    line = f"last backup {ago(last['at'])}{sched}: [red]FAILED[/red], {where}; last good one {good}"
    # the row says the state; a finding (backup failed/late) says the reason
    # whole, so the row saying it too was one fact on five lines (#24's trial)
    reason = reason_head(last["message"], None)
    if any(reason in f["message"] for f in findings):
        return [line]
    return [f"{line}; why: {literal(reason_head(last['message']))}"]


def _heartbeat_lines(fact) -> list:
    """The last heartbeat ping (docs/monitor.md, "Heartbeat"): its age, run,
    which URL and its answer, in yellow when it failed; never the URL.
    Nothing for a host without a heartbeat and no ping."""
    from ..host.heartbeat import line
    from .render import literal

    said = line(fact, time.time())
    if said is None:
        return []
    return [literal(said[0]) if said[1] else f"[yellow]{literal(said[0])}[/yellow]"]


def _errors_where(facts, host: str, flag: Optional[str] = None) -> str:
    """The hour's error count, a death counted before its log says it
    (beside the count, not in it: a look cannot tell when it died), and
    where they are when the update log has some: `logs --errors` reads the
    service's log only (#24's trial: `2` beside its 1 line; docs/monitor.md).
    The command is named as every hint names one (deploy.suggest: `-H`, and
    `-i` when the inventory is not the usual one), and one clause follows
    another: no two brackets in a row (#24's fresh-clone trial)."""
    from ..deploy import suggest

    deaths = len(facts.get("unlogged_deaths") or ())
    more = f"+{deaths} death{'' if deaths == 1 else 's'} not logged yet" if deaths else ""
    errs, update = facts.get("errors_last_hour"), facts.get("errors_last_hour_update")
    if errs is None or not update:
        return ("not available" if errs is None else str(errs)) + (f" ({more})" if more else "")
    logs = "service log" if len(facts.get("services") or ()) == 1 else "service logs"
    parts = ([f"{errs - update} in the {logs}"] if errs > update else []) + [f"{update} in the update log"]
    return ", ".join(parts + ([more] if more else [])) + \
        f"; {suggest(flag, 'logs', '-H', host, '--source', 'update', '--errors')} shows the update log's"


def _log_lines(facts, host: str, flag: Optional[str] = None) -> list:
    """Errors in the last hour (naming a death counted before its log says
    it), the journal's size, each cleanup path."""
    from ..host.record import counted
    from ..host.report import size_text
    from .render import literal, service_labels

    deaths = facts.get("unlogged_deaths") or []
    lines = [literal(f"errors in the last hour: {_errors_where(facts, host, flag)}"
                     + (f"   journal: {facts['journal_usage']}" if facts.get("journal_usage") else ""))]
    if deaths:  # which, and why `logs --errors` does not show it yet (docs/monitor.md)
        labels = service_labels(s["name"] for s in facts["services"])
        names = " and ".join(f"{labels.get(d['service'], d['service'])}'s process {d['pid'] or '?'}" for d in deaths)
        each = "it" if len(deaths) == 1 else "each"
        lines.append(literal(f"  not logged yet: {names} exited (a restart or stop logs {each})"))
    for c in facts.get("cleanup", []):
        if c["exists"]:
            lines.append(literal(f"{c['path']}/{c['glob']}: {counted(c['files'], 'file')}, "
                                 f"{size_text(c['kib'] * 1024)}, {c['last_24h']} in the last 24 h"))
        else:
            lines.append(f"[dim]{literal(c['path'])}: not there yet[/dim]")
    return lines


def _history_lines(hist) -> list:
    return [f"CPU    {sparkline(hist.get('cpu'))}",
            f"memory {sparkline(hist.get('memory'))}",
            f"disk   {sparkline(hist.get('disk'))}"]


def _findings_list(facts):
    """The findings, one bullet each; a long one (a path, a reason) wraps
    at spaces with its next lines under its text, not under the bullet."""
    from rich.table import Table

    from .render import Unbroken, literal

    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column()
    holders = [s["port_holder"] for s in facts.get("services") or () if s.get("port_holder")]
    for f in facts.get("findings", []):
        color = "red" if f["level"] in ("FAILED", "BROKEN") else "yellow"
        named = [h for h in holders if h in f["message"]]
        # a command the finding names (`rollback -H HOST`) is copied whole: never split over two lines
        grid.add_row(f"[{color}]•[/{color}]", _Held(f["message"], named, color) if named
                     else Unbroken(f"[{color}]{literal(f['message'])}[/{color}]", spans=True))
    return grid


class _Held:
    """A finding that names a port's holder (`pid 4242: python3 -m
    http.server 3013`): wrapped as any finding, with the holder on one
    line, cut at its end to fit that line (the pid and the head of its
    command kept; docs/monitor.md), where --json and health give it whole."""

    def __init__(self, message: str, holders, color: str):
        self.message, self.holders, self.color = message, holders, color

    def __rich_console__(self, console, options):
        from ._base import KEEP
        from .render import Unbroken, cut_cells, literal

        room = options.max_width - 3  # the holder's `(` before it and `),` or `);` after it
        text = literal(self.message)
        for holder in self.holders:
            whole = literal(holder)
            if room >= MIN_HOLDER:
                text = text.replace(whole, literal(cut_cells(holder, room)).replace(" ", KEEP))
        yield from Unbroken(f"[{self.color}]{text}[/{self.color}]").__rich_console__(console, options)


MIN_HOLDER = 24  # a narrower line keeps no holder whole: it wraps as any text


def _summary_table(results):
    """One row per host. The facts never wrap; the findings take what is
    left and are cut at the width (each host that is not OK gets its full
    panel below the table)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from .render import console, keep_reason, literal, rest_column, split_reason, status_cell

    def pct(value):
        return "?" if value is None else f"{value:g}%"

    rows = []
    for r in results:
        if r.ok:
            f = r.value
            up = sum(1 for s in f["services"] if s["active"])
            rows.append((r.host, f["code"], f"{up}/{len(f['services'])}", pct(f["cpu"]), pct(f["memory"]),
                         pct(f["disk"]), _findings_text(f)))
        else:
            rows.append((r.host, r.code, "", "", "", "", r.error))
    table = Table(title="monitor", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    fixed = [max([len("host")] + [len(row[0]) for row in rows]),
             max([len("status")] + [Text.from_markup(status_cell(row[1])).cell_len for row in rows])]
    table.add_column("host", no_wrap=True, min_width=fixed[0])
    table.add_column("status", no_wrap=True, min_width=fixed[1])
    for i, col in enumerate(("up", "CPU", "mem", "disk"), start=2):  # short: the findings get the room
        fixed.append(max([len(col)] + [len(row[i]) for row in rows]))
        table.add_column(col, no_wrap=True, min_width=fixed[-1])
    rest = rest_column(table, console().width, fixed, wide=False)
    table.add_column("detail", **rest)
    for host, code, *cells, detail in rows:
        if isinstance(detail, str):
            detail = literal(detail)
        else:  # an unreachable host: its reason (`timed out`) survives the cut
            context, reason = split_reason(printable(error_text(detail)))
            detail = f"[red]{literal(keep_reason(reason, rest['max_width'], context))}[/red]"
        table.add_row(literal(host), status_cell(code), *cells, detail)
    return table


# the findings that make a host FAILED come first in its row: a cut at the
# width then removes warnings, not the reason for its status
_LEVEL_ORDER = {"BROKEN": 0, "FAILED": 1, "UNREACHABLE": 2, "UNKNOWN": 2, "WARNING": 3}


def _findings_text(facts) -> str:
    """A host's findings for its one row: the worst first, and each service
    by the name its panel shows (`discord-bot`, not the unit name every
    service shares the start of, which filled the column at 80)."""
    from .render import service_labels

    labels = service_labels(s["name"] for s in facts["services"])
    found = sorted(facts["findings"], key=lambda x: _LEVEL_ORDER.get(x["level"], 4))
    text = "; ".join(x["message"] for x in found)
    for name in sorted(labels, key=len, reverse=True):
        text = text.replace(name, labels[name])
    return text


def render_all(results, hosts_by_name, show_history=False, flag: Optional[str] = None):
    """One panel per host; with several hosts a summary table first, and
    details only for the hosts that are not OK (`flag`: render_host's)."""
    from rich.console import Group

    from .render import literal, status_cell

    parts = []
    many = len(results) > 1
    if many:
        parts.append(_summary_table(results))
        # an unreachable host has no panel: its whole error, under the table
        parts.extend(f"[red]{literal(r.host)}: {literal(error_text(r.error), lines=True)}[/red]"
                     for r in results if not r.ok)
    for r in results:
        if r.ok and (not many or r.value["code"] != E.OK):
            parts.append(render_host(r.value, hosts_by_name[r.host], show_history, flag))
        elif not r.ok and not many:
            from rich.panel import Panel

            parts.append(Panel(f"[red]{literal(error_text(r.error), lines=True)}[/red]",
                               title=f"{literal(r.host)}  {status_cell(r.code)}", title_align="left"))
    return Group(*parts)


def _preload_rich() -> None:
    try:
        import rich.console  # noqa: F401
        import rich.panel  # noqa: F401
        import rich.table  # noqa: F401
    except Exception:  # noqa: BLE001 - the real import reports problems
        pass


def _envelope(results) -> dict:
    return envelope(results, code=_code(results))


def _code(results):
    codes = [(r.value["code"] if r.ok else r.code) for r in results]
    return E.worst(codes)


@fabops_task(help={
    "watch": "Refresh every SECONDS in place, over one kept-open connection per host.",
    "history": "Also show CPU, memory and disk sparklines from the samples recorded on the host.",
    "prometheus": "Print each host's metrics in Prometheus' text format instead (as the metrics task does, plus "
                  "fabops_monitor_success), read in the same one round trip per host; the exit code is still "
                  "monitor's. Not with --json, --watch or --history.",
})
def monitor(c, hosts=None, json=False, watch=None, history=False, prometheus=False, parallel=10, inventory=None,
            accept_new=False, connect_timeout=None):
    """Show a dashboard of each host's services, resources and deploy state (Nagios exit codes)."""
    try:
        _monitor(json, watch, history, parallel, inventory, hosts, accept_new, connect_timeout, prometheus)
    except KeyboardInterrupt:  # before --watch's handler is in place, or a one-shot look
        finish(E.INTERRUPTED, "fabops: interrupted before the first refresh ended: nothing to show")


def _monitor(json, watch, history, parallel, inventory, hosts, accept_new, connect_timeout, prometheus=False):
    from ..monitor import Refresher
    from .deploy import inventory_flag

    interval = watch  # seconds between refreshes (read by FabopsTask), or None: look once
    _prometheus_alone(prometheus, json=json, watch=interval is not None, history=history)
    inv, chosen = select(inventory, hosts)
    by_name = {h.name: h for h in chosen}
    if not json and not prometheus:
        # Import rich while the connections are being opened: the import is
        # CPU work, the handshake is mostly waiting, so they overlap.
        threading.Thread(target=_preload_rich, daemon=True).start()
    with Refresher(inv, chosen, parallel=parallel, accept_new=accept_new, connect_timeout=connect_timeout,
                   watch=interval is not None, flag=inventory_flag(inventory), marker=prometheus) as refresher:
        if interval is None:
            results = refresher.refresh()
            if prometheus:
                _print_exposition(results, by_name, refresher.last)
            elif json:
                print_json(_envelope(results))
            else:
                from .render import console

                console().print(render_all(results, by_name, history, inventory_flag(inventory)))
            finish(_code(results))
            return
        show = _Frames(json, lambda results: render_all(results, by_name, history, inventory_flag(inventory)))
        last = _follow_until_interrupted(lambda stop: show.watch(stop, refresher.refresh, interval))
        if last is None:  # Ctrl-C before the first refresh ended: no frame to stand for the hosts
            raise KeyboardInterrupt
        finish(_code(last))


def _prometheus_alone(prometheus: bool, **given: bool) -> None:
    """--prometheus prints the exposition once, as a scraper reads it: with
    --json (another format), --watch (refreshes: Prometheus scrapes again
    by itself) or --history (sparklines) it would have to drop one of them
    silently, so it refuses before connecting (exit 64, docs/monitor.md)."""
    flags = [f"--{name}" for name, on in given.items() if on]
    if prometheus and flags:
        raise E.UsageError(f"monitor --prometheus prints the metrics once, in Prometheus' text format: "
                           f"give it without {' and '.join(flags)}")


def _print_exposition(results, hosts_by_name, outputs) -> None:
    """The hosts' metrics (prometheus.monitor_exposition) on stdout as they
    are, a scraper's format (never wrapped or padded), and each host's error
    on stderr as every task says it."""
    from ..prometheus import monitor_exposition
    from .render import host_errors

    sys.stdout.write(monitor_exposition(results, hosts_by_name, outputs))
    sys.stdout.flush()
    host_errors(results)


class _Frames:
    """monitor --watch's refreshes until Ctrl-C: in place on a terminal, one
    after another in a pipe or a CI log, or one envelope per line (--json)."""

    def __init__(self, json: bool, render):
        from .render import console

        self.json, self.render, self.out = json, render, console()

    def watch(self, stop, refresh, interval):
        """Refresh every `interval` s until `stop` is set; the last complete
        frame's results (None: stopped before the first one). Ctrl-C sets
        `stop` (never a KeyboardInterrupt inside a refresh, which Invoke's
        runner would swallow and the loop would go on). A refresh that
        `stop` was set during is dropped, never drawn: the same signal went
        to the whole process group and may have cut its reads short (a local
        host's script), so the frame before it stays the last one."""
        results = _complete(stop, refresh)
        if results is None:
            return None
        if self.json or not self.out.is_terminal:
            return self._printed(stop, refresh, interval, results)
        from rich.live import Live

        with _quiet_keyboard(), Live(self.render(results), console=self.out, screen=False,
                                      auto_refresh=False) as live:
            while not stop.wait(interval):
                fresh = _complete(stop, refresh)
                if fresh is None:
                    break
                results = fresh
                live.update(self.render(results), refresh=True)
        return results

    def _printed(self, stop, refresh, interval, results):
        # a pipe or a CI log: every refresh is printed, one after another (a
        # live display would show only the last, at the end)
        while True:
            if self.json:
                print_json_line(_envelope(results))
            else:
                self.out.print(f"--- {time.strftime('%H:%M:%S %Z')}")
                self.out.print(self.render(results))
            if stop.wait(interval):
                return results
            fresh = _complete(stop, refresh)
            if fresh is None:
                return results
            results = fresh


def _complete(stop, refresh):
    """One refresh's results, or None when `stop` was set while it ran."""
    results = refresh()
    return None if stop.is_set() else results


LOG_SOURCES = ("journal", "update", "health", "app")
# Seconds within which a second SIGINT/SIGTERM is the first one delivered
# again (_follow_until_interrupted).
SAME_SIGNAL = 0.5


@fabops_task(help={
    "follow": "Keep printing new lines (Ctrl-C ends it cleanly).",
    "n": "How many lines to show (default 100); with --follow, 0 shows new lines only.",
    "since": "Only lines since this time, in journalctl's forms: '1 hour ago', '-30min', 'today', '2026-11-28 10:00', "
             "'10:00', '@EPOCH'. The journal only: files (the update, health and app logs, the process back end's "
             "log) show their last -n lines, and a warning says so.",
    "errors": "Only lines mentioning an error, and in the update log those of runs that failed or were rolled "
              "back (last 24 h by default for the journal).",
    "source": "journal (service output: journalctl, or the process back end's log), update, health or app.",
    "service": "Only this service, by its name or the short name tables show (default: all).",
    "json": "One JSON object per line: {host, source, line} (JSON lines).",
})
def logs(c, hosts=None, follow=False, n=100, since=None, errors=False, source="journal", service=None, json=False,
         inventory=None, accept_new=False, connect_timeout=None):
    """Show or follow service output and the fabops update and health logs on hosts."""
    from ..logs import follow_logs, read_logs, since_unmet, since_value

    if since is not None:
        since = since_value(since)  # a bad value is exit 64 before any connection
    if source not in LOG_SOURCES:
        raise E.UsageError(f"--source must be one of {', '.join(LOG_SOURCES)}, not {source!r}")
    if n == 0 and not follow:
        # 0 is for --follow (new lines only, as `tail -f -n 0`); a read of
        # none would print nothing and look like an empty log
        raise E.UsageError("logs -n 0 shows nothing without --follow; give -n 1 or more")
    inv, chosen = select(inventory, hosts, service)
    unmet = since is not None and since_unmet(chosen, source, service, n, errors)
    if unmet:  # on stderr: a pipe still gets only log lines (--json, only JSON lines)
        print_text(f"fabops: {unmet}", file=sys.stderr)
    # one host, read once, as text: its lines as they are, no prefix
    show = LinePrinter(chosen, source if json else None, prefix=follow or json or len(chosen) > 1)
    if follow:
        code = _follow_until_interrupted(
            lambda stop: follow_logs(inv, chosen, source=source, service=service, lines=n, errors_only=errors,
                                     since=since, emit=show, notice=_notice, accept_new=accept_new,
                                     connect_timeout=connect_timeout, stop=stop))
        finish(code)
        return
    outcome = read_logs(inv, chosen, source=source, service=service, lines=n, errors_only=errors,
                        since=since, emit=show, accept_new=accept_new, connect_timeout=connect_timeout)
    sys.stdout.flush()
    from .render import host_errors

    if not json:
        # An empty read printed nothing and exited 0, like a hang or a wrong
        # filter; say so, on stderr, so a pipe still gets only log lines.
        # --json stays JSON lines: none is its empty answer.
        for r in outcome.results:
            if r.ok and not str(r.value or "").strip():
                print_text(f"{r.host}: no {'error ' if errors else ''}log lines yet (--source {source})",
                           file=sys.stderr)
    host_errors(outcome.results)
    finish(outcome.code)


COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green")


class LinePrinter:
    """Renders `logs` events, `(host, line)`, from any thread: a coloured
    host prefix on a terminal, a plain `host | ` prefix in a pipe, or with
    `source` (logs --json) one JSON object per line, {host, source, line}
    (JSON lines, docs/json.md). Text keeps its words and loses its escape
    sequences and control characters (fabops/printable.py): a follower's
    terminal is never the host's to drive. JSON keeps the line as it is."""

    lock = threading.Lock()

    def __init__(self, hosts, source=None, prefix=True):
        width = max(len(h.name) for h in hosts)
        self.source, self.prefix = source, prefix
        self.plain = not sys.stdout.isatty()
        from .render import PrefixWriter

        self.prefixes = {h.name: h.name.ljust(width) + " | " for h in hosts}
        self.writers = {name: PrefixWriter(prefix) for name, prefix in self.prefixes.items()}
        self.colors = {h.name: COLORS[i % len(COLORS)] for i, h in enumerate(hosts)}

    def __call__(self, host: str, line: str) -> None:
        with self.lock:
            if self.source:
                import json

                sys.stdout.write(json.dumps({"host": host, "source": self.source, "line": line},
                                            ensure_ascii=False) + "\n")
            elif not self.prefix:
                sys.stdout.write(printable(line, lines=True) + "\n")
            elif self.plain:
                self.writers[host].write(line + "\n")
            else:
                from .render import console, literal

                color = self.colors[host]
                name = literal(self.prefixes[host][:-3])
                console().print(f"[{color}]{name}[/{color}] | " + literal(line, lines=True), soft_wrap=True)
            sys.stdout.flush()


def _notice(host: str, text: str) -> None:
    """A follow's news about its link (lost, reconnecting, back, or never
    made), on stderr, as every task names a host's error: `fabops: HOST: …`,
    and wrapped as those are: at spaces on a terminal, one line in a pipe
    (print_text, _base.for_stderr; #24's trial found this one never wrapped)."""
    print_text(f"fabops: {host}: {text}", file=sys.stderr)


@contextmanager
def _quiet_keyboard():
    """The terminal does not echo what is typed while the dashboard is live
    (ECHO and ECHOCTL off on stdin; Ctrl-C still signals, ISIG stays on).
    The tty echoed `^C` after the frame's last column, which put the cursor
    one line lower than rich's Live knew: its final redraw erased one line
    too few and left the old frame's top border over the new frame (a
    doubled border), and a `^C` or a keystroke mid-frame tore the frame.
    Restored on the way out, however the watch ends."""
    try:
        import termios

        fd = sys.stdin.fileno()
        # only the terminal's foreground job may change its settings: a
        # `monitor --watch &` doing so is stopped by the kernel (SIGTTOU)
        from ..agent.where import foreground

        if not foreground(fd):
            raise OSError("not the terminal's foreground job")
        saved = termios.tcgetattr(fd)
        quiet = list(saved)
        quiet[3] &= ~(termios.ECHO | getattr(termios, "ECHOCTL", 0))  # lflag; ECHOCTL is not everywhere
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except Exception:  # noqa: BLE001 - no terminal (or no termios, or in the background): nothing to quiet
        yield
        return
    try:
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        except (OSError, termios.error):  # the terminal went away, or a signal cut the drain short
            pass


def _follow_until_interrupted(follow):
    """Run `follow(stop)` with Ctrl-C (and SIGTERM) setting `stop` instead of
    raising KeyboardInterrupt wherever the main thread happens to be; a
    second Ctrl-C while it winds down exits at once."""
    import signal
    import threading

    stop = threading.Event()
    first = []

    def on_signal(signum, frame):
        # timeout(1) and `kill -INT -- -PGID` deliver one interrupt to the
        # process and again to its group: a second signal within a moment
        # of the first is that same one, not a person's second Ctrl-C
        if stop.is_set() and time.monotonic() - first[0] > SAME_SIGNAL:
            raise SystemExit(E.INTERRUPTED)
        if not stop.is_set():
            first.append(time.monotonic())
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return follow(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


ns = Collection("observe", monitor, logs)
