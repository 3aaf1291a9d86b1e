"""The cron fast path: cron's `local-update` and `health` lines run
straight into fabops.host, without Invoke (docs/architecture.md, "The cron
fast path").

Cron runs `fabops local-update --trigger cron --splay N -i host.yml` and
`fabops health --fix --quiet -i host.yml` every few minutes for the life of
the host, and nearly every poll has nothing to do; `fabops backup --splay N
-i host.yml` on backup.schedule (a daily run needs no paramiko either). Through Invoke's Program
a poll imported all of Invoke (with unittest.mock and asyncio), built the
task tree and its parser, and only then ran a `git fetch`. Here a command
line this module reads exactly (those three tasks, the flags below, each
given once, in the forms `--flag VALUE`, `--flag=VALUE` and `-f VALUE`) runs
the same host-side code with the same output and exit code, its commands
through host/localrun.py instead of Invoke's runner. Anything else (--help,
--debug or FABOPS_DEBUG, completion, another task or flag, a value it
cannot read, a host that is not `connection: local` for health) goes to
the full program, which says what it says; FABOPS_FASTPATH=0 sends
everything there.
"""
from __future__ import annotations

import atexit
import os
import sys
from typing import Callable, Dict, List, Optional, Tuple

from . import report
from .. import errors
from ..errors import FabopsError, UsageError

VALUED = ("hosts", "inventory", "trigger", "splay")
COMMON = {"-H": "hosts", "--hosts": "hosts", "-i": "inventory", "--inventory": "inventory",
          "-j": "json", "--json": "json"}
TASKS: Dict[str, Dict[str, str]] = {
    "local-update": dict(COMMON, **{"--trigger": "trigger", "--splay": "splay", "-v": "verbose",
                                    "--verbose": "verbose"}),
    "health": dict(COMMON, **{"--fix": "fix", "-q": "quiet", "--quiet": "quiet", "--trigger": "trigger"}),
    "backup": dict(COMMON, **{"--splay": "splay"}),
}

# What the fast path needs of the task layer (tasks/_base.py's print_text
# and for_stderr), handed in by fabops/cli.py, which may import it: loaded
# only where it changes a line (Text).
TaskText = Callable[[], Tuple[Callable, Callable]]


def parse(argv: List[str]) -> Optional[Tuple[str, dict]]:
    """(task, {parameter: value}) for a command line this module runs
    exactly as the full program would; None for any other."""
    if not argv or argv[0] not in TASKS:
        return None
    flags, given = TASKS[argv[0]], {}
    words = iter(argv[1:])
    for word in words:
        flag, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        name = flags.get(flag)
        if name is None or name in given:
            return None
        if name not in VALUED:
            if eq:
                return None
            given[name] = True
            continue
        if not eq:
            value = next(words, "")
        if not value or value.startswith("-"):
            return None
        given[name] = value
    if "splay" in given:
        from ..validate import parse_duration

        try:  # as tasks/_base.read_number reads seconds; the full program words any problem
            given["splay"] = parse_duration(given["splay"].strip())
        except ValueError:
            return None
    return argv[0], given


def wanted() -> bool:
    """Whether this process may take the fast path at all."""
    if os.environ.get("FABOPS_FASTPATH", "") == "0" or not sys.platform.startswith("linux"):
        return False  # off by request; or a host local-update refuses (connection.require_linux) words it
    return os.environ.get("FABOPS_DEBUG", "").lower() not in ("1", "true", "yes")  # --debug's tracebacks


def serve(argv: Optional[List[str]], task_text: TaskText) -> bool:
    """Run `argv` (sys.argv when None; the program's name first) here and
    return True, or exit with its code; False when the full program should
    run it instead (nothing was printed or changed)."""
    if not isinstance(argv, (list, tuple)) and argv is not None:
        return False  # Invoke also takes a string; not cron's
    words = list(sys.argv if argv is None else argv)[1:]
    parsed = parse(words) if wanted() else None
    if parsed is None:
        return False
    task, given = parsed
    text = Text(task_text)
    try:
        if task in ("health", "backup"):
            code = (health if task == "health" else backup)(text, **given)
            if code is None:
                return False
        else:
            code = local_update(text, **given)
    except BrokenPipeError:
        errors.quiet_closed_pipe()
    except (KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - the one place a bug is caught, as FabopsTask
        # Ctrl-C as FabopsTask says it too: `fabops: interrupted`, exit 130
        if given.get("json") and isinstance(exc, FabopsError):  # one envelope for a script, as FabopsTask
            report.print_json(report.error_envelope(exc))
        message, failed = report.failure(exc)
        print(text.for_stderr(message), file=sys.stderr)
        sys.exit(failed)
    if argv is None:  # the console script's own process (cron's line), not a caller's
        leave(code)
    if code != errors.OK:
        sys.exit(code)
    return True


def leave(code: int) -> None:
    """End this process with `code` now, less the interpreter's teardown:
    at exit it freed every module and object one by one (the inventory's
    and plans' dataclasses, typing's caches), 8 ms of CPU on every poll
    for nothing (docs/benchmarks.md, "Cron's no-op poll"). What an exit
    does that anyone sees is done here, in its order: the atexit functions
    run, then stdout and stderr are flushed. Files were closed by then
    (`with`), the heartbeat thread is a daemon an exit does not wait for,
    and the kernel closes the lock's descriptor. Without atexit's runner,
    or when a stream cannot be flushed (its reader went away), this
    returns and the ordinary exit says what it says."""
    run = getattr(atexit, "_run_exitfuncs", None)  # CPython's, 3.9 to 3.13
    if run is None:
        return
    run()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


class Text:
    """Plain lines as tasks/_base.py prints them. That module loads Invoke
    and the task tree, so it is asked only where it would change a line:
    one longer than the width on stdout, or stderr on a terminal (it wraps
    them). Elsewhere its print_text is printable's text without trailing
    spaces, and its for_stderr the text as it is; tests/test_fastpath.py
    compares both paths' output."""

    def __init__(self, task_text: TaskText):
        self.task_text = task_text

    def print(self, text: str, file=None, whole: bool = False) -> None:
        """`whole`: stdout's lines unwrapped (report.whole_lines)."""
        out = file or sys.stdout
        lines = report.plain(text)
        if out is sys.stdout and not whole and max(map(len, lines.split("\n"))) > _width() \
                or out is sys.stderr and _tty():
            self.task_text()[0](text, file=file)
            return
        print(lines, file=out, flush=True)

    def for_stderr(self, text: str) -> str:
        return self.task_text()[1](text) if _tty() else text


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns  # as tasks/_base.width


def _tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def load(inventory: Optional[str], keep_copy: bool = False):
    """inventory.load(inventory), from the JSON copy of a home's host.yml
    (HostPaths.host_json) while host.yml still holds the text it was made
    from: importing yaml alone costs about a fifth of a no-op poll. Any
    other file, or a copy of other text, is parsed as YAML; with
    `keep_copy` (local-update, which writes to the home anyway; never a
    read like health) the copy is then written, when JSON holds the data
    exactly (YAML may give dates or number keys).

    A home's host.yml is one whose hosts all have that directory as their
    home: a file named host.yml elsewhere (`local-update -i ./host.yml` in
    the app's checkout) gets no copy beside it, an untracked host.json the
    next deploy would warn about."""
    import json

    from ..inventory import from_data, parse_yaml, read
    from ..paths import HostPaths

    path, text = read(inventory)
    full = os.path.abspath(path)
    home = os.path.dirname(full)
    paths = HostPaths.for_home(home)
    copy = paths.host_json if paths.host_yml == full else None

    def in_its_home(inv) -> bool:
        return all(HostPaths.for_home(h.home) == paths for h in inv.hosts.values())

    if copy is not None:
        try:
            with open(copy, encoding="utf-8") as fh:
                kept = json.load(fh)
            if isinstance(kept, dict) and kept.get("text") == text:
                inv = from_data(kept.get("data"), path)
                if in_its_home(inv):
                    return inv
        except (OSError, ValueError):
            pass
    data = parse_yaml(text, path)
    inv = from_data(data, path)  # valid before it is kept
    if copy is not None and keep_copy and in_its_home(inv):
        try:
            if json.loads(json.dumps(data)) == data:
                from .files import atomic_write

                atomic_write(copy, json.dumps({"text": text, "data": data}))  # 0600, as host.yml
        except (OSError, TypeError, ValueError):
            pass  # no copy: the next poll parses the YAML again
    return inv


def local_update(text: Text, hosts=None, trigger=None, verbose=False, json=False, inventory=None, splay=0) -> int:
    """tasks/update.local_update for cron's flags, through LocalContext."""
    from .events import EventLog, new_run_id
    from .localrun import LocalContext
    from .pipeline import UpdateOptions
    from .update import run_update

    chosen = load(inventory, keep_copy=True).select(hosts)
    if len(chosen) != 1:
        raise UsageError("local-update acts as exactly one host; name it with -H")
    host = chosen[0]
    report.splay_wait(splay)
    opts = UpdateOptions(trigger=report.default_trigger(trigger, splay), actor="", ref=None, stash=False,
                         wait=None, run_id=new_run_id(), clear_pin=False)
    whole = report.whole_lines(opts.trigger)

    def said(event: dict) -> None:
        line = report.event_line(event)
        if line is not None:
            text.print(line, whole=whole)

    events = EventLog(None, [said] if verbose and not json else [])
    events.start_heartbeat()
    try:
        result = run_update(LocalContext(host.env), host, opts, events)
    finally:
        events.close()
    if json:
        report.print_json(report.envelope_of({host.name: result.to_dict()}, result.exit_code))
        return result.exit_code
    said = report.update_lines(host.name, result, verbose)
    if said is not None:
        text.print(said[0], file=sys.stderr if said[1] else sys.stdout, whole=whole)
    return result.exit_code


def health(text: Text, hosts=None, fix=False, quiet=False, json=False, inventory=None, trigger=None) -> Optional[int]:
    """tasks/health.health for one `connection: local` host (host.yml's);
    None for any other selection (the full program connects over SSH)."""
    from ..notify import notify
    from ..target import Target
    from .health import LocalStore, health_trigger, run_health
    from .localrun import LocalContext
    from .record import default_actor
    from .services import ServiceManager

    chosen = load(inventory).select(hosts)
    if len(chosen) != 1 or not chosen[0].is_local:
        return None
    host = chosen[0]
    who, trigger = default_actor(), health_trigger(trigger)

    def send(event, message):
        return [d.to_dict() for d in notify(host.name, event, message, home=host.home, environment=host.environment)]

    checked, error = None, None
    try:  # one host's failure is its result, as fanout.run_hosts keeps it
        t = Target.of(LocalContext(host.env), host)
        manager = ServiceManager(t, host, home=t.paths.home, app_path=t.local_path(host.app.path))
        checked = run_health(t, host, fix=fix, actor=who, store=LocalStore(host), manager=manager, probe=None,
                            timeout=60.0, notify=send, trigger=trigger)
    except FabopsError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - that host's internal error
        from ..fanout import map_failure

        error = map_failure(exc, host.name) or exc
    code = report.health_code(checked, error is None)
    if json:
        value = checked.to_dict() if error is None else report.host_error(error, code)
        report.print_json(report.envelope_of({host.name: value}, code))
    elif error is not None:
        text.print(report.health_error_line(host.name, error), file=sys.stderr)
    else:
        for line in report.health_lines(host.name, checked, quiet):
            text.print(line)
    return code


def backup(text: Text, hosts=None, json=False, inventory=None, splay=0) -> Optional[int]:
    """tasks/backup.backup's run for one `connection: local` host (cron's
    line): the host's own run (host/backup.locked_run, which records and
    notifies) in this process at low priority, its lines or its JSON and
    its exit code as the task's; None for any other selection."""
    from ..paths import HostPaths
    from .backup import LOCK_WAIT, exit_code, lower_priority, result
    from .lock import LockedError

    chosen = load(inventory).select(hosts)
    if len(chosen) != 1 or not chosen[0].is_local:
        return None
    host = chosen[0]
    report.splay_wait(splay)
    try:
        data = result("run", host, HostPaths.for_home(host.home), lower_priority())
    except LockedError as exc:  # as host/backup.main says it, and the task's LockedError
        raise errors.LockedError(f"backup run: {exc} (waited {LOCK_WAIT:g} s)", host=host.name) from None
    except OSError as exc:  # outside any item: no room, no permission
        raise FabopsError(f"backup run failed on the host: {exc}", host=host.name) from None
    code = exit_code("run", data)
    if json:
        report.print_json(report.envelope_of({host.name: data}, code))
        return code
    for line in report.backup_run_lines(data) + [f"warning: {w}" for w in data.get("warnings") or []]:
        text.print(f"[{host.name}] {line}")
    return code
