"""What every fabops task shares: the `-H` flag, common help, and the one
place where errors become a line on stderr and an exit code.

Task modules stay thin: parse flags, select hosts, open connections, call the
library, render. Importing this module must stay cheap (no rich, no fabric):
the host-side cron path goes through it.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from invoke import Exit, Task, task

from .. import errors
from ..errors import FabopsError, UsageError
# JSON_SCHEMA and error_text: for the task modules that import them from here
from ..host.report import (JSON_SCHEMA, envelope_of, error_envelope, error_text, failure, host_error, keys_sorted,
                           plain, print_json)
from ..printable import STDERR_FIT, printable

if TYPE_CHECKING:  # annotations only: the task modules load these lazily
    from ..fanout import FanoutResult
    from ..inventory import Host

COMMON_HELP = {
    "hosts": "Hosts or groups, comma-separated (default: the inventory's `default`).",
    "inventory": "Path of hosts.yml (default: $FABOPS_INVENTORY, or hosts.yml here or in a parent).",
    "json": "Print machine-readable JSON on stdout instead of tables.",
    "parallel": "How many hosts to work on at once (default 10).",
    "accept_new": "Trust and record a host key never seen before (trust on first use).",
    "connect_timeout": "Seconds to wait for the SSH connection (default 10).",
    "dry_run": "Show what would change and change nothing.",
    "yes": "Do not ask for confirmation.",
    "wide": "Show long text in full, wrapped, instead of cut to the terminal width (JSON always has it all).",
}


@dataclass(frozen=True)
class Flag:
    """One flag of the whole command line: its short letter (or none) and,
    for numbers, how the value is read. `count` is a whole number of at
    least `low`; `seconds` is 30, 30s, 2m or 250ms, positive unless `low` is
    0 (then 0 is allowed)."""

    short: Optional[str] = None
    number: Optional[str] = None  # None, "count" or "seconds"
    low: float = 1
    value: Optional[str] = None  # what --help calls the value, when not SECONDS, N or VALUE


# Every parameter of every task, once: the same long name means the same
# short letter in every task, or none. A letter belongs to one long name
# only (tests/test_cli.py fails on a clash, and on a task parameter missing
# here). Flags that trust, wait or change more get no letter on purpose:
# `--accept-new` trusts an unknown host key and must be typed in full.
FLAGS: Dict[str, Flag] = {
    "hosts": Flag("H"),
    "inventory": Flag("i"),
    "json": Flag("j"),
    # no letter: before the task name `-d` is Invoke's --debug, so `fabops
    # -d deploy` would deploy for real; a dry run is asked for in full
    "dry_run": Flag(),
    "yes": Flag("y"),
    "parallel": Flag("p", "count", 1),
    "follow": Flag("f"),
    "n": Flag("n", "count", 0),
    "check": Flag("c"),
    "service": Flag("s"),
    "ref": Flag("r"),
    "actor": Flag("a"),
    "timeout": Flag("t", "seconds"),
    "keep": Flag(None, "count", 1),  # a count for backup-env, a switch for demo
    "list": Flag("l"),
    "backup": Flag("b"),
    "errors": Flag("e"),
    "quiet": Flag("q"),
    "verbose": Flag("v"),
    "wide": Flag(),
    "action": Flag(value="ACTION"),  # agent: status | stop | forget
    "key": Flag(value="KEY"),  # env-set/env-unset: a variable name (its value is never a flag)
    "file": Flag(value="FILE"),  # env-push: a local .env
    # no short letter
    "accept_new": Flag(),
    "allow_root_unit": Flag(value="UNIT"),  # gives a pusher root through that unit: typed in full
    "change_user": Flag(),  # moves who fabops runs as: typed in full
    "accept_signers": Flag(),  # widens who can ship (verify: signers): typed in full
    "connect_timeout": Flag(None, "seconds"),
    "wait": Flag(None, "seconds", 0),
    "liveness": Flag(None, "seconds"),
    "watch": Flag(None, "seconds"),  # monitor: an interval; deploy: --watch/--no-watch
    "splay": Flag(None, "seconds", 0),
    "rolling": Flag(None, "count", 0),
    "min_age": Flag(None, "seconds", 0),  # promote: 0 promotes what every host has deployed healthy
    "attach": Flag(),
    "clear_pin": Flag(),
    "allow_unverified": Flag(),  # ships an unsigned commit: typed in full
    "allow_empty": Flag(),  # env-set: wipes a value on purpose: typed in full
    "pin_reason": Flag(value="TEXT"),  # local-update: promote's words for the pin it sets
    "settings_from": Flag(value="SHA"),  # local-update: the commit deploy's sent settings came from
    "dir": Flag(),
    "download": Flag(),
    "fix": Flag(),
    "force": Flag(),
    "from_": Flag(),  # promote --from (`from` is a Python word)
    "history": Flag(),
    "install": Flag(),
    "install_config": Flag(),
    "offline": Flag(),
    "prune": Flag(),  # env-push: also remove the keys FILE does not name
    "prometheus": Flag(),  # monitor: the metrics, not the dashboard
    "remove": Flag(),
    "replace_units": Flag(),
    "run_id": Flag(),
    "show": Flag(),
    "since": Flag(),
    "source": Flag(),
    "stash": Flag(),
    "stop": Flag(),
    "to": Flag(),
    "trigger": Flag(),
    "verify": Flag(),
    "restore": Flag(value="RUN_ID"),
    "only": Flag(value="ITEM"),
    "output": Flag(value="FILE"),  # prometheus-targets: written atomically, not printed
}


def metavar(param: str) -> str:
    """What a value-taking flag's value is called in --help and docs/tasks.md:
    SECONDS (30, 30s, 2m, 250ms), N (a whole number) or VALUE. Invoke would
    say STRING for all three, since fabops parses the numbers itself."""
    spec = FLAGS.get(param)
    if spec and spec.value:
        return spec.value
    return {"seconds": "SECONDS", "count": "N"}.get(spec.number if spec else None, "VALUE")


def flag_name(param: str) -> str:
    """The flag as a person types it: `--parallel`, `--connect-timeout`, and
    `-n` for a one-letter parameter (Invoke takes `-n` only: `--n` is not a
    flag, so a message naming it would send the user to a typo)."""
    if len(param) == 1:
        return "-" + param
    return "--" + param.replace("_", "-")


def read_number(param: str, value: Any, low: Optional[Dict[str, float]] = None, task: str = "") -> Any:
    """A numeric flag's value as int (count) or float (seconds); None and
    booleans pass through. A bad value is a UsageError naming the flag and
    the form it takes (exit 64, never a traceback). `low`: a task's own
    lowest value for a flag (history's -n is 1 or more, logs' may be 0),
    said as `TASK -n must be at least 1` for 0 and a negative alike: one
    rule, one message."""
    spec = FLAGS.get(param)
    if spec is None or spec.number is None or value is None or isinstance(value, bool):
        return value
    flag = bound = flag_name(param)
    if low and param in low:
        spec, bound = replace(spec, low=low[param]), f"{task} {flag}"
    if spec.number == "count":
        try:
            number = int(str(value).strip())
        except ValueError:
            raise UsageError(f"{flag} takes a whole number, like {max(int(spec.low), 1) * 10}; not {value!r}") from None
        if number < spec.low:
            # a flag whose 0 is allowed here (`-n`, `--rolling`) says only
            # that a negative is wrong: a task where 0 means nothing to do
            # (history -n 0) refuses it itself, and "at least 0" would then
            # send the user from one refusal to the next
            raise UsageError(f"{bound} cannot be negative, not {number}" if spec.low == 0
                             else f"{bound} must be at least {int(spec.low)}, not {number}")
        return number
    from ..validate import parse_duration

    try:
        seconds = parse_duration(value if not isinstance(value, str) else value.strip())
    except ValueError:
        raise UsageError(f"{flag} takes seconds, like 30, 30s or 2m; not {value!r}") from None
    if spec.low and seconds <= 0:
        raise UsageError(f"{flag} must be more than 0 seconds")
    return seconds


class FabopsTask(Task):
    """An Invoke Task with fabops' flag vocabulary and error handling.

    Short flags come from FLAGS, never from Invoke's first-come, first-served
    letters, so `-c` cannot mean `--check` in one task and something else in
    the next. Numeric flags are parsed here, not by Invoke (which would print
    a traceback for `--parallel abc`).
    """

    def __init__(self, body, *args, low: Optional[Dict[str, float]] = None, **kwargs):
        kwargs["auto_shortflags"] = False  # letters come from FLAGS only (arg_opts)
        super().__init__(body, *args, **kwargs)
        self.low = low or {}  # this task's own lowest values (read_number)

    def arg_opts(self, name, default, taken_names):
        spec = FLAGS.get(name)
        if spec is None:
            raise ValueError(f"task parameter {name!r} is not in fabops.tasks._base.FLAGS: add it there")
        opts = super().arg_opts(name, default, taken_names)
        if spec.short and spec.short != opts["names"][0]:
            opts["names"] = [opts["names"][0], spec.short]
        if spec.number and opts.get("kind") in (int, float):
            opts["kind"] = str  # read_number parses it, with a usage error
        return opts

    def get_arguments(self, ignore_unknown_help=None):
        # Invoke pops each flag's help while building the arguments, so a
        # second call (docs generation, tests, an embedding program) would
        # see none: keep the task's help intact.
        saved = dict(self.help)
        try:
            args = super().get_arguments(ignore_unknown_help)
        finally:
            self.help = saved
        for arg in args:  # read by --help (tasks/program.py, NamedValues)
            arg.fabops_metavar = metavar(arg.attr_name or arg.name)
        return args

    def __call__(self, *args, **kwargs):
        through_agent(self.name)  # under `inv`: the whole command line, once, in the agent
        try:
            show_commands(debug_enabled())
            # Every value a task body gets went through read_number, passed by
            # name (Invoke's executor) or by position (a call from Python), so
            # task bodies take their numbers as read and never check again.
            call = inspect.signature(self.body).bind_partial(*args, **kwargs)
            for name, value in call.arguments.items():
                call.arguments[name] = read_number(name, value, self.low, self.name)
            kwargs = call.arguments
            return super().__call__(*call.args, **call.kwargs)
        except BrokenPipeError:
            errors.quiet_closed_pipe()
        except Exit:
            raise
        except (KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - the one place a bug is caught
            # Ctrl-C too: Invoke's Program would end it with exit 1 and no
            # word; it is `fabops: interrupted`, exit 130 (docs/errors.md)
            if debug_enabled():  # the traceback first; the exit code stays the documented one
                import traceback

                traceback.print_exc()
            if kwargs.get("json") is True and isinstance(exc, FabopsError):
                # a script piping --json to jq still gets one envelope: no
                # host got as far as a result
                print_json(error_envelope(exc))
            message, code = failure(exc)  # host/report.py: the cron fast path says the same
            raise Exit(for_stderr(message), code=code) from None


_CALLED: List[str] = []  # fabops task bodies entered in this process


def tasks_called() -> List[str]:
    """The fabops tasks this process entered, in order (program.not_run:
    which task of the command line stopped the rest)."""
    return list(_CALLED)


def through_agent(name: str) -> None:
    """Under Invoke's `inv`, the first task body hands the whole command
    line to the agent (fabops/agent/, docs/architecture.md "The agent") and
    the process ends with the run's exit code. Only when it is the command
    line's first task and nothing of fabops ran before: a task of the
    user's that ran first (`inv mark deploy`), or one that calls a fabops
    task from Python, would run twice. Nothing happens when the agent is
    off, under `fabops` (cli.py asked it before parsing) or in a run of the
    agent's."""
    first_call = not _CALLED
    _CALLED.append(name)
    main = sys.modules.get("invoke.main")
    tasks = getattr(getattr(main, "program", None), "tasks", None)
    if not first_call or not tasks or getattr(tasks[0], "name", None) != name:
        return
    from ..agent.client import forward

    code = forward(sys.argv, binary="inv")
    if code is not None:
        raise SystemExit(code)


def fabops_task(*args, **kwargs) -> Callable:
    """`@task` with FabopsTask and the common flag help merged in."""
    kwargs.setdefault("klass", FabopsTask)

    def decorate(fn):
        import inspect

        params = inspect.signature(fn).parameters
        help_ = {k: v for k, v in COMMON_HELP.items() if k in params}
        help_.update(kwargs.pop("help", {}) or {})
        return task(help=help_, **kwargs)(fn)

    if args and callable(args[0]):
        fn, args = args[0], args[1:]
        return decorate(fn)
    return decorate


# `--debug`, as given on this command line (set by tasks/program.py,
# take_debug). One meaning: fabops' own debugging, each command fabops runs
# with its exit and duration on stderr, and a traceback for any error; never
# Invoke's DEBUG logging of its parser and loader (117 lines before the task
# ran, none of them about the task).
DEBUG_GIVEN = [False]


def debug_enabled() -> bool:
    """`--debug` (tasks/program.py, DEBUG_GIVEN) or FABOPS_DEBUG=1: fabops'
    own debugging, each command it runs and the traceback of any error
    (docs/errors.md). Never Invoke's DEBUG logging (program.take_debug)."""
    if os.environ.get("FABOPS_DEBUG", "").lower() in ("1", "true", "yes"):
        return True
    return DEBUG_GIVEN[0]


class _ShownCommand(logging.Formatter):
    """`fabops: debug: HOST: CMD (exit N, 0.12 s)`, printable (a command may
    quote the inventory); a many-line script shows its first line and how
    many follow, not a page of shell."""

    def format(self, record) -> str:
        host, cmd, exited, seconds = record.args
        # the first line that says something: a script may start with a blank
        # one (#24's fresh-clone trial: `local:  … (+13 lines)`)
        lines = str(cmd).split("\n")
        at = next((n for n, line in enumerate(lines) if line.strip()), 0)
        first, rest = lines[at].strip(), lines[:at] + lines[at + 1:]
        more = f" … (+{len(rest)} lines)" if rest else ""
        return printable(f"fabops: debug: {host}: {first}{more} (exit {exited}, {seconds:.2f} s)")


class _ToStderr(logging.Handler):
    """Writes to the sys.stderr of the moment (a test or an embedding
    program may have replaced it since the handler was made)."""

    def emit(self, record) -> None:
        sys.stderr.write(self.format(record) + "\n")
        sys.stderr.flush()


def show_commands(on: bool = True) -> None:
    """Each command fabops runs on stderr (fabops.target.COMMANDS), or none:
    set for every task call, so a run without --debug after one with it in
    the same process shows nothing."""
    logger = logging.getLogger("fabops.commands")
    if on and not any(isinstance(h, _ToStderr) for h in logger.handlers):
        handler = _ToStderr()
        handler.setFormatter(_ShownCommand())
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if on else logging.WARNING)


def load_inventory(path: Optional[str] = None):
    from ..inventory import load

    return load(path)


def select(inventory_path: Optional[str], hosts: Optional[str], service: Optional[str] = None):
    """Load the inventory and resolve `-H`; returns (inventory, [Host]).
    With `service` (a task's --service), every chosen host must have it, by
    any name the tool prints (Host.service): checked here, before any
    connection, so a typo is exit 64 with the known names, never an exit 3
    from a host that could not be reached or a connection made for nothing."""
    inv = load_inventory(inventory_path)
    chosen = inv.select(hosts)
    if service is not None:
        for host in chosen:
            host.service(service)
    return inv, chosen


def envelope(results, value: Optional[Callable[[Any], Any]] = None, code: Optional[int] = None, **extra) -> dict:
    """Every task's --json: `{schema, code, hosts: {name: value or
    {error, code}}}` (docs/json.md). `code` is the task's exit code (by
    default the worst host's); `extra` adds task-level keys (hosts: path,
    default, groups)."""
    hosts = {}
    for r in results:
        if r.ok:
            hosts[r.host] = value(r.value) if value else r.value
        else:
            hosts[r.host] = host_error(r.error, r.code)
    if code is None:
        code = errors.worst(r.code for r in results)
    return envelope_of(hosts, code, **extra)


def print_envelope(results, value: Optional[Callable[[Any], Any]] = None, code: Optional[int] = None, **extra) -> None:
    print_json(envelope(results, value, code, **extra))


def print_text(text: str, file=None) -> None:
    """One line (or lines) of plain output that may quote a host: printed
    without its escape sequences and control characters (fabops/printable.py),
    flushed, to stdout or `file`. On stdout each line is wrapped at word
    boundaries to the width (wrap); on stderr as for_stderr says."""
    # no line ends in spaces (a message built with an empty last part): a
    # pipe, a diff or a CI log gets what a person sees (render.console too)
    text = plain(text)
    out = file or sys.stdout
    if out is sys.stdout:
        text = wrap(text)
    elif out is sys.stderr:
        text = for_stderr(text)
    print(text, file=out, flush=True)


def for_stderr(text: str) -> str:
    """Error lines as stderr shows them: whole in a pipe, a file or a CI log
    (one complete `fabops: …` line each, for grep and CI annotations); on a
    terminal, where a person reads them, wrapped as stdout's lines are
    (wrap, under the text after `fabops: `), since the terminal would cut
    them mid-word. The width is $COLUMNS, else stderr's terminal's."""
    try:
        if not sys.stderr.isatty():
            return text
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return text
    try:
        columns = int(os.environ.get("COLUMNS") or os.get_terminal_size(sys.stderr.fileno()).columns)
    except (OSError, ValueError):
        columns = 80
    return wrap(text, columns)


STDERR_FIT[0] = for_stderr  # the library's stderr lines follow the same rule (printable.STDERR_FIT)


def width() -> int:
    """The columns output is wrapped to: $COLUMNS, else the terminal's, else
    80 (a pipe, a CI log), as rich decides for tables (render.console)."""
    import shutil

    return shutil.get_terminal_size((80, 24)).columns


# What a continuation line is indented under: the line's own indent, a
# timestamp (local-update's `2026-12-06T09:47:04 `), a `[host] ` or `host: `
# prefix and the indent after it, or a list marker (`- `, `· `, `✓ `, and
# deploy's progress marks `= ` for the result and `… ` for a running step).
HANGING = re.compile(r" *(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d{4})? +)?(?:\[[^\]\s]+\] +|[\w.@-]+: +)?(?:[-·✓✗•=…] +)?")


KEEP = "\ue000"  # a private-use character: never in the text, never a break (wrap, render's wrappers)
# a key list's label and the space after it (maintenance/env.keys_text)
_LABEL = re.compile(r"\b(added|removed|changed): (?=\S)")
# a number and its unit, or a duration's two halves: `12 s`, `3.1 s`, `75 ms`, `14h 11m`, `2d 3h`, `1.5 MiB`
_UNIT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?[dhm]?) (?=(?:ms|s|min|h|d|[KMGT]iB|\d+[dhms])(?!\w))")


def unbroken(text: str) -> str:
    """`text` with the space between a number and its unit as KEEP (the same
    length): a wrap that breaks only at spaces keeps `14h 11m` and `12 s`
    on one line (a trial read `up 14h` │ `11m`). The wrapper puts the
    spaces back in the lines it made. Likewise a key list's label and its
    first value (maintenance/env.keys_text: `changed: -`, `added: TOKEN`):
    env-push's dry run at 80 columns broke `changed:` from its `-` (#29's
    trial), which read as a list cut short."""
    return _LABEL.sub(lambda m: m.group(1) + ":" + KEEP, _UNIT.sub(lambda m: m.group(1) + KEEP, text))


# a `code span`, or a 'quoted example' (a value to type, quotes and all: '2026-11-28 10:00'); an
# apostrophe inside or after a word (a host's, the hosts') opens none
_CODE_SPAN = re.compile(r"`[^`\n]+`|(?<!\w)'(?=\S)[^'\n]*?(?<=\S)'(?!\w)")


def whole_spans(text: str, room: int) -> str:
    """`text` with the spaces of each `code span` or 'quoted example'
    (_CODE_SPAN) that fits in `room` as KEEP (the same length, so styles
    stay put): a command a message tells a person to run (see `inv cron
    --help`) or a value to type ('2026-11-28 10:00') is copied whole, never
    split across two lines. The one helper: wrap, render.print_hanging and so
    the demo's narration (tasks/demo.say_wrapped) keep spans with it."""
    return _CODE_SPAN.sub(lambda m: m.group(0).replace(" ", KEEP) if len(m.group(0)) <= room else m.group(0),
                          text)


_TRAILING = ":;,."  # what may end a word a line cannot hold: `/path/to/snapshot:` (#24's trial)


def fitted(text: str, room: int) -> str:
    """`text` with each word longer than `room` given places to break, so
    no line passes the width (#24's trial: backup --dry-run's
    `        /home/…/backups/YYYYMMDDTHHMMSS-xxxxxx:` was 81 columns at 80): a
    word that fits without its trailing `:` (`;`, `,`, `.`) is broken after
    its last `/`, so the colon stays with its end (one with no `/` keeps its
    line and the colon starts the next one); a longer one
    (a path deeper than the line) is broken after a `/`, only as far as the
    width needs (a piece with no `/` left at `room` characters). The pieces
    are split by spaces, which the wrap breaks at: each piece is as long as
    a line holds, so two never share one. A word inside a `command` is left
    whole: pasted, it must still be the word."""
    def pieces(word: str) -> str:
        bare = word.rstrip(_TRAILING)
        if len(bare) <= room:
            # a path keeps its colon: broken after its last `/` (a new
            # user read a line that starts with `:` as broken: trial 4)
            cut = bare.rfind("/") + 1
            return f"{word[:cut]} {word[cut:]}" if 0 < cut < len(bare) else f"{bare} {word[len(bare):]}"
        out = []
        while len(word) > room:
            cut = word.rfind("/", 0, room) + 1 or room  # after the last `/` that fits, else at the edge
            out.append(word[:cut])
            word = word[cut:]
        return " ".join(out + [word] if word else out)

    out, inside = [], False
    for word in text.split(" "):
        # a word of a `command` stays whole even so: a path cut in two is
        # not the path (the command's lines join with ` \\`: _continued)
        out.append(pieces(word) if len(word) > room and not inside and "`" not in word else word)
        inside ^= word.count("`") % 2 == 1
    return " ".join(out)


def command_lines(words: List[str], room: int) -> List[str]:
    """A command a person is told to run (its words, each already quoted
    for a shell), as lines they can copy and paste whole: one line when it
    fits `room`, else broken between words, every line but the last ending
    in ` \\` (a shell's continuation), none past `room` unless one word is
    (a word is never split: a path cut in two is not the path)."""
    if len(" ".join(words)) <= room:
        return [" ".join(words)]
    lines, line = [], ""
    for word in words:
        if line and len(line) + len(word) + 3 > room:  # `LINE WORD \` would not fit
            lines.append(line + " \\")
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line]


_COMMAND = re.compile(r"`[^`\n]+`")  # a command (or a name) a message tells a person to type
_STRAY = "\x1f"  # stands in for a backtick that opens no span while wrap reads the spans
_SHELL_QUOTE = re.compile(r"`(?=[^`'\n]*')")  # a shell's old `quote' (dash: "Syntax error: `(' unexpected")


def _set_aside(text: str) -> Tuple[str, bool]:
    """`text` with the backticks that open no span stood in for (_STRAY),
    and whether there were any: with an odd count, a shell's `quote' first
    (the message's own spans stay spans), else all of them (review 3: one
    stray backtick made all that followed it one span)."""
    if text.count("`") % 2 == 0:
        return text, False
    text = _SHELL_QUOTE.sub(_STRAY, text)
    return (text.replace("`", _STRAY) if text.count("`") % 2 else text), True


def _continued(chunks: List[str]) -> List[str]:
    """Wrapped lines, each that ends inside a `code span` (an odd count of
    backticks so far) given a shell's ` \\`: the span's lines pasted
    together are still one command."""
    out, inside = [], False
    for chunk in chunks:
        inside ^= chunk.count("`") % 2 == 1
        out.append(chunk + " \\" if inside else chunk)
    return out


def wrap(text: str, columns: Optional[int] = None) -> str:
    """Lines longer than `columns` (default width()) broken at spaces, never
    inside a word that fits: a path, a SHA, a name with hyphens stays whole
    (a word longer than the line is broken after a `/`, or its trailing
    colon goes to the next line: fitted), nor between a
    number and its unit (unbroken), nor inside a `code span` that fits
    (whole_spans; one that does not ends each of its lines but the last
    in a shell's ` \\`: _continued). Continuation lines are indented under the text (a
    hanging indent), not at column 0. A terminal wrapped such
    lines mid-word at the edge, a pipe not at all."""
    import textwrap

    columns = columns or width()
    out = []
    for line in text.split("\n"):
        if len(line) <= columns:
            out.append(line)
            continue
        indent = len(HANGING.match(line).group(0))
        if indent > columns // 2:  # a prefix that long leaves no room: under its start
            indent = len(line) - len(line.lstrip(" "))
        room = max(columns - indent, 20)
        # an odd backtick is no span's (host text: dash's "Syntax error: `(' unexpected"):
        # set aside while spans are read, or all that follows it would read as one (review 3)
        body, stray = _set_aside(line[indent:])
        body = whole_spans(unbroken(body), room)
        # a command in backticks too long for a line (a long `-i PATH`) must
        # break: each of its lines but the last ends in ` \\`, so what is
        # between the backticks still pastes as one command (#24's trial)
        spans = any(len(m.group(0)) > room for m in _COMMAND.finditer(body))
        fit = room - 2 if spans else room
        chunks = [chunk.replace(KEEP, " ") for chunk in textwrap.wrap(
            fitted(body, fit), fit, break_long_words=False, break_on_hyphens=False)] or [""]
        if spans:
            chunks = _continued(chunks)
        if stray:
            chunks = [chunk.replace(_STRAY, "`") for chunk in chunks]
        out.append(line[:indent] + chunks[0])
        # a command's word that fits a line but not with its ` \\` after
        # it starts left of the indent, as far as the width needs
        out.extend(" " * min(indent, max(columns - len(chunk), 0)) + chunk for chunk in chunks[1:])
    return "\n".join(out)


def print_json_line(data: Any) -> None:
    """One compact JSON document per line (JSON lines): `monitor --watch
    --json` refreshes."""
    sys.stdout.write(json.dumps(keys_sorted(data), default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def finish(code: int, message: Optional[str] = None) -> None:
    """End a task with `code` (after it rendered its own output)."""
    if code != errors.OK:
        raise Exit(for_stderr(message) if message else message, code=code)


def names(hosts: List[Any]) -> str:
    return ", ".join(h.name for h in hosts)


def for_each_host(
    inventory: Optional[str],
    hosts: Optional[str],
    fn: Callable[[Any, Host], Any],
    *,
    parallel: int = 10,
    accept_new: bool = False,
    connect_timeout: Optional[float] = None,
    as_setup_user: bool = False,
) -> FanoutResult:
    """Load the inventory, select hosts, and run `fn(target, host)` on each
    in bounded parallel, one connection per host (a fabops.target.Target),
    closed afterwards. `parallel` and `connect_timeout` are the task's flags
    as FabopsTask read them. `as_setup_user`: log in as each host's
    setup_user (`inv setup`), the deploy user otherwise."""
    from ..connection import close_quietly, connect
    from ..fanout import run_hosts
    from ..target import Target

    inv, chosen = select(inventory, hosts)

    def one(host: Host):
        login = replace(host, user=host.setup_user) if as_setup_user and host.setup_user else host
        cxn = connect(login, inv, accept_new=accept_new, connect_timeout=connect_timeout)
        try:
            return fn(Target.of(cxn, host), host)
        finally:
            close_quietly(cxn)

    return run_hosts(chosen, one, parallel=parallel)
