"""What cron's tasks print and decide, shared by the task layer
(fabops/tasks/update.py, health.py, _base.py) and the cron fast path
(host/fastpath.py), so both say exactly the same (docs/architecture.md,
"The cron fast path"). The host side imports it: standard library and
fabops' host-safe modules only, Python 3.9.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Tuple

from .. import errors
from ..errors import FabopsError


def plain(text: str) -> str:
    """Lines that may quote a host, without their escape sequences and
    control characters (fabops/printable.py) and with no line ending in
    spaces: a pipe, a diff or a CI log gets what a person sees."""
    from ..printable import printable

    return "\n".join(line.rstrip(" ") for line in printable(text, lines=True).split("\n"))


def whole_lines(trigger: str) -> bool:
    """Whether local-update prints its lines whole, unwrapped: under cron
    with stdout not a terminal, where cron's line appends them to
    <home>/cron.log. A log is data: one entry a line, for grep, whatever
    the width (failures, on stderr, were whole there already)."""
    try:
        return trigger == "cron" and not sys.stdout.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stdout
        return trigger == "cron"


# ------------------------------------------------------------ --json

JSON_SCHEMA = 1  # docs/json.md, docs/json.schema.json


def print_json(data: Any) -> None:
    """One JSON document on stdout, flushed (every task's --json)."""
    import json

    sys.stdout.write(json.dumps(keys_sorted(data), indent=2, default=str) + "\n")
    sys.stdout.flush()


def keys_sorted(data: Any, keep: bool = False) -> Any:
    """`data` with every object's keys sorted, as json.dumps(sort_keys=True)
    writes them, but for the hosts of an envelope (a `hosts` object), which
    stay in selection order (docs/json.md; #24's fresh-clone trial: `status
    -H local,find-to-do --json` listed them alphabetically)."""
    if isinstance(data, dict):
        order = list(data) if keep else sorted(data, key=str)
        return {k: keys_sorted(data[k], k == "hosts") for k in order}
    if isinstance(data, (list, tuple)):
        return [keys_sorted(v) for v in data]
    return data


def error_text(error: Any) -> str:
    """A host's error as a person reads it, in tables, on stderr and in
    --json: a FabopsError's message; anything else (a bug, kept as that
    host's internal error) with its class name, since `KeyError: 'port'`
    says what a bare `'port'` does not."""
    message = getattr(error, "message", None)
    return str(message) if message else f"{error.__class__.__name__}: {error}"


def envelope_of(hosts: Dict[str, Any], code: int, **extra) -> dict:
    """Every task's --json: `{schema, code, hosts: {name: value or
    {error, code}}}` (docs/json.md); `extra` adds task-level keys."""
    return {"schema": JSON_SCHEMA, "code": code, "hosts": hosts, **extra}


def host_error(error: Any, code: int) -> dict:
    """A host's --json value when it has no result: its error and code."""
    return {"error": error_text(error), "code": code}


def error_envelope(exc: Any) -> dict:
    """The --json of a run that failed before any host had a result (a
    script piping --json to jq still gets one envelope)."""
    return envelope_of({}, exc.exit_code, error=str(exc))


INTERRUPTED_LINE = "fabops: interrupted"  # Ctrl-C (SIGINT), exit 130: one line, no traceback


def failure(exc: BaseException) -> Tuple[str, int]:
    """The one `fabops: …` message and exit code of an error that ended a
    task (docs/errors.md): Ctrl-C's one line; every line of a many-line FabopsError (all of
    hosts.yml's problems) a complete `fabops: …` line, for grep and CI
    annotations; a failure fanout knows (a timeout, a lost connection) as
    it maps it; anything else an internal error. Printable: an error may
    quote a host."""
    from ..printable import printable

    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C mid-run: what it did is in the run's own record
        # (a deploy's that goes on on the host says how to follow it: deploy.StillRunning)
        return (printable(f"fabops: {exc}") if str(exc) else INTERRUPTED_LINE), errors.INTERRUPTED
    if isinstance(exc, FabopsError):
        return "\n".join(printable(f"fabops: {line}") for line in str(exc).splitlines()), exc.exit_code
    from ..fanout import map_failure

    mapped = map_failure(exc)
    if mapped is not None:
        return printable(f"fabops: {mapped}", lines=True), mapped.exit_code
    return (printable(f"fabops: internal error: {exc.__class__.__name__}: {exc} "
                      "(run with --debug for the traceback)", lines=True), errors.INTERNAL)


# ------------------------------------------------------------ local-update

def default_trigger(trigger: Optional[str], splay: float) -> str:
    """cron's line says --trigger cron; a crontab written before it did
    still passes --splay, which only cron's line does."""
    return trigger or ("cron" if splay > 0 else "manual")


def splay_wait(splay: float) -> None:
    """Wait a random 0..splay seconds (at most an hour) before any work, so
    many hosts polling one origin do not all fetch at once: done here
    because cron's sh has no $RANDOM; a deliberate random delay, not a wait
    for readiness."""
    if splay > 0:
        import random
        import time

        time.sleep(random.uniform(0, min(splay, 3600)))


def said_once(result, message) -> str:
    """`locked: deploy by …`, not `locked: locked: deploy by …` (trials):
    a message that starts with its result word (the lock's own line) is
    shown as it is; local-update's line and deploy's `= ` line alike."""
    if not message:
        return str(result)
    return message if message.startswith(f"{result}:") else f"{result}: {message}"


def update_lines(name: str, result: Any, always: bool, plan: Optional[dict] = None) -> Optional[Tuple[str, bool]]:
    """local-update's human output: (text, whether it goes to stderr), or
    None for a no-op unless `always` (-v, a dry run). The result line and
    its warnings, then `plan`'s rules, restarts and dirty files (a dry
    run's); a failure goes to stderr."""
    if result.result == "noop" and not always:
        return None
    import time

    # with its zone, as health's lines (a trial read a bare time as UTC)
    lines = [f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {name}: {said_once(result.result, result.message)}"]
    lines += [f"  warning: {warning}" for warning in result.warnings]
    lines += [f"  {key}: {', '.join(plan[key])}" for key in ("rules", "restart", "dirty") if (plan or {}).get(key)]
    # the lifecycle hooks the run would run, as the plan's `would` says them (host/dry_run.hook_actions)
    lines += [f"  would run {w['target']}: {w['why']}" for w in (plan or {}).get("would") or []
              if w.get("action") == "run" and str(w.get("target")).endswith(" hook")]
    return "\n".join(lines), result.exit_code not in (errors.OK, errors.WARNING)


def event_line(event: dict) -> Optional[str]:
    """local-update -v's line for a run event, or None (a step's start)."""
    kind = event.get("kind")
    if kind == "step" and event.get("status") != "start":
        mark = "ok" if event.get("status") == "ok" else "FAILED"
        line = f"  {event.get('step')}: {mark} ({event.get('seconds', 0):.2f}s)"
        if event.get("message"):  # a step without one ends at its time, not on a space
            line += f" {event['message']}"
        return line
    if kind == "log":
        return f"  {event.get('message')}"
    return None


# ------------------------------------------------------------ health

def health_code(report: Any, reached: bool) -> int:
    """A host's health exit code; Nagios: an unreachable host (any error)
    is UNKNOWN (3), whatever the error was."""
    return report.code if reached else errors.UNREACHABLE


def health_error_line(name: str, error: Any) -> str:
    return f"fabops: {name}: {error_text(error)}"


def health_lines(name: str, report: Any, quiet: bool, nothing: str = "") -> List[str]:
    """A host's health lines: none when --quiet and healthy. The Nagios
    word once: every message already says what happened (restarted, still
    failing, --fix would restart, the host is busy), so the status word
    beside it (`OK ok`, `FAILED would_restart`) only repeated it; --json
    keeps `status`. `nothing`: a dry run's line when it would write
    nothing."""
    if quiet and report.code == errors.OK:
        return []
    from .would import lines

    return [f"{name}: {errors.NAMES.get(report.code)}: {report.message}",
            *lines(report.would or (), f"{name}: ", none=nothing)]


def duration_text(seconds) -> str:
    """A duration or an age as every panel says it (`501 ms`, `39.8 s`,
    `12m 5s`, `5h 10m`, `3d 4h`): here, not in fabops/tasks/render.py, so
    the library's findings (monitor.backup_findings) say an age in the
    same words as the panel's row beside them (docs/monitor.md, "Backups")."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {sec}s"


def size_text(n) -> str:
    """A byte count as backup's lines say it (B, KiB, MiB, GiB)."""
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # unreachable


def backup_run_lines(data: dict) -> list:
    """A backup run's manifest as lines: the snapshot, then each item (the
    task's, and cron's fast path's: host/fastpath.backup)."""
    if data.get("cut_off"):  # refused, no snapshot made: its one line (host/backup.cut_off)
        return [str(data.get("error"))]
    items = [i for i in data.get("items") or [] if not i.get("skipped")]
    failed = [i for i in items if not i.get("ok")]
    total = sum(int(i.get("size") or 0) for i in items)
    noun = "item" if len(items) == 1 else "items"  # `1 items ok` read as a slip (one item: a run of .env alone)
    head = (f"snapshot {data.get('run_id')}: " + (f"{len(failed)} of {len(items)} {noun} FAILED" if failed
                                                   else f"{len(items)} {noun} ok")
            + f", {size_text(total)} in {data.get('snapshot')}")
    out = [head]
    rows = data.get("items") or []
    # one column each for the name, the state, the size and the time (the trial read `env  ok  35 B` /
    # `state.json  ok  1.2 KiB` as a ragged list)
    name_w = max((len(item_label(i)) for i in rows), default=0)
    size_w = max((len(size_text(i.get("size"))) for i in rows if i.get("ok") and not i.get("skipped")), default=0)
    for i in rows:
        if i.get("skipped"):
            state = f"skipped ({i['skipped']})"
        elif i.get("ok"):
            state = f"ok      {size_text(i.get('size')).rjust(size_w)}  {float(i.get('duration') or 0):6.2f} s"
        else:
            state = f"FAILED  {i.get('error')}"
        out.append(f"  {item_label(i).ljust(name_w)}  {state}")
    if data.get("deleted"):
        out.append(f"retention deleted {len(data['deleted'])}: {', '.join(data['deleted'])}")
    return out + backup_offsite_lines(data.get("offsite"))


def item_label(i) -> str:
    """An item as a run's row names it: the manifest's name, the one
    history, monitor and `--only` use, then its file when that differs
    (`files (files.tar)`, `env`). #24's trial: the rows said `files.tar`
    where everything else said `files` (docs/backups.md). A backup's run,
    its dry run (host/backup.BackupPlan.would), a restore's rows and its
    dry run (host/restore) all name items this way; `i` is a manifest's
    item (a dict) or a planned one (host/backup.Item: .name, .file)."""
    name, file = (i.get("name"), i.get("file")) if isinstance(i, dict) else (i.name, i.file)
    if not name:
        return str(file)
    return str(name) if not file or file == name else f"{name} ({file})"


def backup_offsite_lines(off) -> list:
    """The off-host copy's outcome: what went up (a catch-up names the
    earlier runs too), or why it failed and that the local snapshot stays."""
    if not off:
        return []
    up = off.get("uploaded") or []
    went = (f"{len(up)} snapshot{'s' if len(up) != 1 else ''} up ("
            + ", ".join(f"{u['run_id']} as {u['id']}" for u in up) + ")") if up else "nothing new to copy"
    if off.get("error"):
        # "nothing new to copy" would be untrue here: this run's snapshot
        # did not go up (trial 5)
        copied = f"{went} before it failed; " if up else "nothing was copied; "
        return [f"off-host FAILED: {off['error']}", f"  the local snapshot is kept; {copied}the next run copies "
                "what is missing"]
    gone = off.get("forgotten") or []
    return [f"off-host: {went}, forgot {len(gone)} by retention's rule ({float(off.get('duration') or 0):.1f} s)"]
