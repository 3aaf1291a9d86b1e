"""The command-line program: an Invoke Program serving the task tree as
`fabops` (fabops/cli.py), and the same parse contract for `inv`.

The command-line contract (docs/architecture.md, "Command line") is kept
here for both programs: a parse error is a usage error (exit 64) with a
did-you-mean, a closed stdout ends quietly, and `fabops -H web deploy` works
like `fabops deploy -H web`. Under `inv`, `adopt()` (called when the task
tree is imported) gives Invoke's own Program the same parse-error handling;
Invoke parses its core flags before it imports tasks.py, so only those keep
Invoke's exit 1.
"""
from __future__ import annotations

import difflib
import functools
import re

from invoke import Argument, Exit, Program
from invoke.exceptions import ParseError

from ..errors import USAGE, quiet_closed_pipe

# Invoke's core flags that fabops refuses (tasks/_base.py, refuse_core_flags),
# as given on this command line. Recorded from the parse, not read from
# config: `run: {echo: true}` in ~/.invoke.yaml is a user's c.run()
# preference, not a request to a fabops task, and must not refuse every task.
CORE_FLAGS_GIVEN: set = set()

_UNKNOWN = re.compile(r"^No idea what '(.+)' is!$")


def explain(exc: ParseError, program: Program) -> str:
    """Invoke's parse error in fabops' words, with a did-you-mean."""
    text = str(exc)
    m = _UNKNOWN.match(text)
    if not m:
        return text
    token = m.group(1)
    prog = _prog(program)
    if token.startswith("-"):
        ctx = getattr(exc, "context", None)
        choices = list(getattr(ctx, "flags", {}) or {}) + list(getattr(ctx, "inverse_flags", {}) or {})
        what, where = "flag", (f" for {ctx.name}" if getattr(ctx, "name", None) else "")
        see = f"see `{prog} {ctx.name} --help`" if getattr(ctx, "name", None) else f"see `{prog} --help`"
    else:
        collection = getattr(program, "collection", None)
        choices = list(collection.task_names) if collection is not None else []
        what, where, see = "task", "", f"see `{prog} --list`"
    hint = difflib.get_close_matches(token, choices, n=1, cutoff=0.6)
    did = f" (did you mean {hint[0]!r}?)" if hint else ""
    if token.split("=")[0] in ("-H", "--hosts") and not getattr(ctx, "name", None):
        # `inv -H web deploy`: Invoke's own program has no global -H.
        did = f" before the task name (put it after: `{prog} TASK -H NAME`)"
    return f"unknown {what} {token!r}{where}{did}; {see}"


def _prog(program: Program) -> str:
    """`fabops`, or `inv` for Invoke's own binary (named "inv[oke]")."""
    return re.sub(r"\[.*?\]", "", program.binary or "fabops")


def _usage_errors(method):
    """Wrap a Program parse step: ParseError becomes exit 64 with one line."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            if method.__name__ == "parse_cleanup":
                CORE_FLAGS_GIVEN.update(f for f in ("dry", "echo") if self.args[f].value)
                if self.args.complete.value:
                    from ..completion import complete

                    complete(self)
            return method(self, *args, **kwargs)
        except ParseError as exc:
            raise Exit(f"{_prog(self)}: {explain(exc, self)}", code=USAGE) from None
        except BrokenPipeError:  # `--help | head`
            quiet_closed_pipe()

    wrapper._fabops = True
    return wrapper


def _named_values(help_for):
    """`--parallel=N`, `--wait=SECONDS` in --help, not Invoke's `=STRING`
    (fabops reads its numbers from strings; tasks/_base.py metavar)."""

    @functools.wraps(help_for)
    def wrapper(self, flag):
        names, text = help_for(self, flag)
        name = getattr(self.flags[flag], "fabops_metavar", None)
        if name:
            names = re.sub(r"(?<=[ =\[])(STRING|INT)\b", name, names)
            if self.flags[flag].kind is list and "=" not in names:
                names += f"={name}"  # Invoke shows no value for a repeatable flag
        return names, text

    wrapper._fabops = True
    return wrapper


def adopt(program_class=Program) -> None:
    """Give Invoke's `inv` the same task-parse contract (idempotent)."""
    for name in ("parse_tasks", "parse_cleanup"):
        method = getattr(program_class, name)
        if not getattr(method, "_fabops", False):
            setattr(program_class, name, _usage_errors(method))
    from invoke.parser import ParserContext

    if not getattr(ParserContext.help_for, "_fabops", False):
        ParserContext.help_for = _named_values(ParserContext.help_for)


# What Invoke's own core flags take, for `fabops --help` (Invoke says STRING
# or INT for all of them).
CORE_METAVARS = {
    "hide": "WHAT", "print-completion-script": "SHELL", "list-depth": "N", "config": "FILE",
    "list-format": "FORMAT", "help": "TASK", "hosts": "HOSTS", "list": "NAMESPACE", "command-timeout": "SECONDS",
    "collection": "NAME", "search-root": "DIR", "complete": None,
}


class FabopsProgram(Program):
    """`fabops`: exit 64 on any parse error (core flags included) and a global -H."""

    def core_args(self):
        args = super().core_args()
        args.append(Argument(names=("hosts", "H"), help="Hosts or groups for the task, as the task's own -H."))
        for arg in args:  # --help names what a value is (see _named_values)
            arg.fabops_metavar = CORE_METAVARS.get(arg.name)
        return args

    parse_core = _usage_errors(Program.parse_core)

    def parse_core_args(self):
        """`--print-completion-script bash|zsh` prints fabops' scripts, which
        also complete host names after -H (fish keeps Invoke's)."""
        self._refuse_repeated_hosts()
        super().parse_core_args()
        from ..completion import SCRIPTS

        shell = self.args["print-completion-script"].value
        if shell in SCRIPTS:
            print(SCRIPTS[shell], end="")
            raise Exit
    parse_cleanup = _usage_errors(Program.parse_cleanup)

    def _refuse_repeated_hosts(self):
        """`fabops -H a -H b ping`: Invoke's core parser keeps the first value
        and reads `b` as a task name; say what happened instead."""
        tasks = set(self.namespace.task_names) | {a for al in self.namespace.task_names.values() for a in al}
        seen = 0
        for word in self.argv[1:]:
            if word in tasks or word == "--":
                break
            if word in ("-H", "--hosts") or word.startswith(("--hosts=", "-H")):
                seen += 1
        if seen > 1:
            raise Exit("fabops: -H given twice before the task name; give it once "
                       "(-H a,b selects both)", code=USAGE)

    @_usage_errors
    def parse_tasks(self):
        Program.parse_tasks(self)
        given = self.args.hosts.value
        if given is None:
            return
        takers = [ctx for ctx in self.tasks if "hosts" in ctx.args]
        if not takers:
            raise Exit(f"fabops: -H was given, but {', '.join(c.name for c in self.tasks) or 'no task'} "
                       "does not take -H", code=USAGE)
        for ctx in takers:
            own = ctx.args["hosts"].value
            if own is not None and own != given:
                raise Exit(f"fabops: -H given twice ({given!r} before {ctx.name}, {own!r} after it); give it once",
                           code=USAGE)
            ctx.args["hosts"].value = given
