"""The command-line programs: `fabops` (fabops/cli.py) and Invoke's `inv`
serving the task tree with the same parse contract.

The contract (docs/architecture.md, "Command line"): a parse error is a
usage error (exit 64) with a did-you-mean, a closed stdout ends quietly,
--help names what a value is, and `fabops -H web deploy` works like
`fabops deploy -H web`. `TaskProgram` is that contract as a subclass of
Invoke's Program, the way Invoke documents custom command-line programs;
`FabopsProgram` adds fabops' own core flags. Under `inv`, `serve_inv()`
gives Invoke's running program the `TaskProgram` class (why, there).
"""
from __future__ import annotations

import difflib
import functools
import logging
import re
import sys
from typing import List, Optional, Tuple

from invoke import Argument, Exit, Program
from invoke.exceptions import ParseError
from invoke.parser import Parser, ParserContext

from ..errors import INTERRUPTED, USAGE, quiet_closed_pipe
from ..host.report import INTERRUPTED_LINE
from ..shell import set_program
from ._base import DEBUG_GIVEN, FabopsTask, for_stderr, width, wrap

# Invoke's core flags that mean nothing for a fabops task, with the reason the
# refusal gives. They set Invoke's defaults for c.run() and its runtime
# config, and fabops runs its commands through its own connections (a
# Target, with a Config of its own: fabops/connection.py), so honouring
# them silently would mislead: `--dry` deploys for real, `-T 5` times
# nothing out, `-w` warns of nothing, and `--prompt-for-sudo-password` asks
# for a password fabops never types (sudo -n; without a terminal it was a
# traceback). Refused from the command line only (TaskProgram.parse_cleanup):
# `run: {echo: true}` in ~/.invoke.yaml is a user's c.run() preference, not a
# request to a fabops task. docs/architecture.md, "Command line".
REFUSED_CORE = {
    "dry": "fabops tasks take their own --dry-run",
    "echo": "use --debug to see each command fabops runs",
    "hide": "fabops captures its commands' output itself",
    "pty": "fabops chooses a pty per command itself",
    "warn-only": "a failed command is always reported, with its exit code",
    "command-timeout": "set FABOPS_COMMAND_TIMEOUT (seconds) for fabops' own commands",
    "config": "fabops reads hosts.yml (-i/--inventory), not an Invoke config file",
    "prompt-for-sudo-password": "fabops never types a sudo password: it runs `sudo -n` with the rules "
                                "`setup` installs (docs/security.md)",
    "write-pyc": "it only changes how Python caches fabops' own modules",
}


# What Invoke's own core flags take, for `fabops --help` (Invoke says STRING
# or INT for all of them).
CORE_METAVARS = {
    "hide": "WHAT", "print-completion-script": "SHELL", "list-depth": "N", "config": "FILE",
    "list-format": "FORMAT", "help": "TASK", "hosts": "HOSTS", "list": "NAMESPACE", "command-timeout": "SECONDS",
    "collection": "NAME", "search-root": "DIR", "complete": None,
}


# Invoke's help for a core flag, where fabops means something else by it.
CORE_HELP = {
    "debug": "Show each command fabops runs (host, exit, seconds) and the traceback of any error, "
             "on stderr (or FABOPS_DEBUG=1).",
    "list-depth": "When listing tasks, only show the first N levels.",
    "version": "Show fabops' version, with the Invoke, Fabric, Paramiko and Python it runs on, and exit "
               "(`inv --version` is Invoke's own: Invoke's version only).",
}


class NamedValues(ParserContext):
    """A parser context whose --help says `--parallel=N`, `--wait=SECONDS`,
    not Invoke's `=STRING`: fabops reads its numbers from strings
    (tasks/_base.py, metavar), so Invoke only ever sees STRING."""

    @classmethod
    def of(cls, ctx: ParserContext) -> "NamedValues":
        return cls(name=ctx.name, aliases=ctx.aliases, args=ctx.args.values())

    def help_for(self, flag: str) -> Tuple[str, str]:
        names, text = super().help_for(flag)
        name = getattr(self.flags[flag], "fabops_metavar", None)  # set by FabopsTask, FabopsProgram
        if name:
            names = re.sub(r"(?<=[ =\[])(STRING|INT)\b", name, names)
            if self.flags[flag].kind is list and "=" not in names:
                names += f"={name}"  # Invoke shows no value for a repeatable flag
        return names, text


def interruptible(step):
    """A step of Invoke's Program.run with Ctrl-C said as a task says it:
    Invoke's run() ends a KeyboardInterrupt as a silent exit 1, and it
    spends a few milliseconds parsing before a task (FabopsTask) could say
    it (docs/errors.md, 130)."""

    @functools.wraps(step)
    def run(self, *args, **kwargs):
        try:
            return step(self, *args, **kwargs)
        except KeyboardInterrupt:
            raise Exit(INTERRUPTED_LINE, code=INTERRUPTED) from None

    return run


class TaskProgram(Program):
    """Invoke's Program with fabops' parse contract for the task part of the
    command line: any parse error is exit 64 on one line, an unknown task or
    flag with a did-you-mean; `--help`/`--list` into a closed pipe end quietly;
    Ctrl-C while it parses is `fabops: interrupted`, exit 130 (under `inv`,
    from the task tree's import on: serve_inv)."""

    @interruptible
    def create_config(self) -> None:
        super().create_config()

    @interruptible
    def parse_collection(self) -> None:
        super().parse_collection()

    @interruptible
    def load_collection(self) -> None:
        super().load_collection()

    @interruptible
    def update_config(self, *args, **kwargs) -> None:
        super().update_config(*args, **kwargs)

    @interruptible
    def execute(self) -> None:
        """Invoke's executor, which stops at the first task that fails: the
        tasks after it are said not to have run (not_run), never silently
        skipped (docs/errors.md, "Several tasks on one command line")."""
        try:
            super().execute()
        except Exit as exc:
            raise not_run(exc, [ctx.name for ctx in self.tasks], self.prog) from None

    @property
    def prog(self) -> str:
        """`fabops`, or `inv` for Invoke's own binary (named "inv[oke]")."""
        return re.sub(r"\[.*?\]", "", self.binary or "fabops")

    def usage_error(self, text: str) -> Exit:
        """Exit 64 with `PROG: text`, wrapped on a terminal as every other
        `fabops:` error is (for_stderr; one line in a pipe)."""
        return Exit(for_stderr(f"{self.prog}: {text}"), code=USAGE)

    _hiding = False

    @property
    def initial_context(self) -> ParserContext:
        ctx = NamedValues.of(super().initial_context)
        if self._hiding:  # only while print_help lists the core flags
            hidden = self.hidden_core_flags()
            ctx = NamedValues(name=ctx.name, aliases=ctx.aliases,
                              args=[a for a in ctx.args.values() if a.name not in hidden])
        return ctx

    def _make_parser(self, ignore_unknown: bool = False) -> Parser:
        # Invoke's one seam for the task parser (parse_tasks, a task's --help,
        # --complete): the contexts, as NamedValues for their --help. Only
        # those of the tasks the command line names (a word that names no
        # task is parsed the same either way), unless it completes or lists:
        # Invoke's parser deep-copies every context it is given, which was
        # most of a warm run's parse (docs/benchmarks.md, "The agent").
        args = getattr(self, "args", None)
        words = None if args is None or args.complete.value or args.list.value else set(self.argv or ())
        if words is not None and isinstance(args.help.value, str):
            words.add(args.help.value)  # `--help=deploy`, `-hdeploy`: the name is no word of its own
        unknown = self.config.tasks.ignore_unknown_help
        contexts = [ParserContext(name=name, aliases=aliases,
                                  args=self.collection[name].get_arguments(ignore_unknown_help=unknown))
                    for name, aliases in self.collection.task_names.items()
                    if words is None or name in words or words.intersection(aliases)]
        return Parser(initial=self.initial_context, contexts=[NamedValues.of(c) for c in contexts],
                      ignore_unknown=ignore_unknown)

    @interruptible
    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise self.usage_error(self.explain(exc)) from None

    @interruptible
    def parse_cleanup(self) -> None:
        wanted = self.args.help.value  # `--help NAME`: True for a bare --help
        if isinstance(wanted, str) and wanted not in self.parser.contexts:
            raise self.usage_error(self.unknown_task(wanted))
        if self.args.list.value and self.tasks:
            # Invoke's core --list, found after a task that has no --list of its
            # own (`restore-env --list`): it listed the tasks and exited 0
            name = self.tasks[0].name
            raise self.usage_error(f"unknown flag '--list' for {name}; see `{self.prog} {name} --help`")
        if self.args.complete.value:
            from ..completion import complete

            complete(self)  # host names after -H; the rest is Invoke's completion
        # completion offers the core flags --help lists (Invoke's completes
        # from initial_context): none that fabops refuses
        self._hiding = bool(self.args.complete.value)
        try:
            super().parse_cleanup()
        except ParseError as exc:
            raise self.usage_error(str(exc)) from None
        except BrokenPipeError:  # `--help | head`
            quiet_closed_pipe()
        finally:
            self._hiding = False
        self.refuse_core_flags()
        self.refuse_mixed_hosts()
        take_debug(self, after_tasks=True)  # --debug after the task name counts too

    def refuse_mixed_hosts(self) -> None:
        """`fabops ping -H local status`: -H is each task's own, so `status`
        would run on the default host (production, in the README's
        inventory) right after a task the user aimed at `local`. When some
        of the tasks on one command line name hosts and others do not,
        that is a usage error, before any task runs."""
        takers = [ctx for ctx in self.tasks if "hosts" in ctx.args and _is_fabops(self.collection[ctx.name])]
        named = [ctx for ctx in takers if ctx.args["hosts"].value is not None]
        bare = [ctx for ctx in takers if ctx.args["hosts"].value is None]
        if named and bare:
            raise self.usage_error(
                f"{bare[0].name} has no -H and would run on the default host, while {named[0].name} names "
                f"-H {named[0].args['hosts'].value}: -H belongs to each task, so give {bare[0].name} its own "
                f"(or run one task per command)")

    def refuse_core_flags(self) -> None:
        """A core flag of REFUSED_CORE on the command line of a fabops task is
        a usage error, before any task runs (and before Invoke's sudo
        password prompt, which comes after the parse). Under `inv`, a task of
        the user's own tasks.py may still use them."""
        given = [name for name in REFUSED_CORE if self.args[name].value]
        ours = [ctx.name for ctx in self.tasks if _is_fabops(self.collection[ctx.name])]
        if given and ours:
            flag = self.initial_context.flags["--" + given[0]]
            raise self.usage_error(f"Invoke's {_spelled(flag)} does not apply to fabops tasks: "
                                   f"{REFUSED_CORE[given[0]]}")

    def hidden_core_flags(self) -> set:
        """The refused core flags, hidden from --help when every task is
        fabops' own (always for `fabops`); a tasks.py with tasks of its own
        keeps Invoke's whole help, since its tasks may use them."""
        if all(_is_fabops(self.collection[name]) for name in self.collection.task_names):
            return set(REFUSED_CORE)
        return set()

    def print_help(self) -> None:
        self._hiding = True  # initial_context leaves the hidden flags out
        try:
            super().print_help()
        finally:
            self._hiding = False

    def print_task_help(self, name: str) -> None:
        """Invoke's task help, with the docstring wrapped at word boundaries
        to the width (Invoke prints each line as it is, and a terminal cut a
        description longer than 80 columns mid-word)."""
        import inspect

        ctx = self.parser.contexts[name]
        tuples = ctx.help_tuples()
        print(f"Usage: {self.binary} [--core-opts] {name} {'[--options] ' if tuples else ''}[other tasks here ...]")
        print("")
        print("Docstring:")
        docstring = inspect.getdoc(self.collection[name])
        for line in (docstring or "none").splitlines():
            print(wrap(self.leading_indent + line) if line.strip() else "")
        print("")
        print("Options:")
        if tuples:
            self.print_columns(tuples)
        else:
            print(self.leading_indent + "none")
            print("")

    def print_columns(self, tuples) -> None:
        """Invoke's two columns (flags or tasks, and their help) with the help
        wrapped at spaces only: Invoke's textwrap broke `local-update` after
        its hyphen and would cut a long word; and to $COLUMNS, as every
        other output of fabops (Invoke asks the terminal only)."""
        import textwrap

        name_width = max(len(name) for name, _ in tuples)
        spec_width = self.leading_indent_width + name_width + self.col_padding
        wrapper = textwrap.TextWrapper(width=max(width() - spec_width - 1, 20), break_long_words=False,
                                       break_on_hyphens=False)
        for name, help_str in tuples:
            chunks = wrapper.wrap(help_str or "")
            spec = self.leading_indent + name.ljust(name_width) + " " * self.col_padding
            print((spec + chunks[0]) if chunks else spec.rstrip())
            for chunk in chunks[1:]:
                print(" " * len(spec) + chunk)
        print("")

    def explain(self, exc: ParseError) -> str:
        """Invoke's parse error in fabops' words: an unknown word is named as a
        task or a flag, with a did-you-mean; any other error as Invoke said it."""
        token, ctx = self.first_unknown()
        if token is None:
            return _needs_value(str(exc), self.prog, self.tasks_named())
        if not token.startswith("-"):
            return self._twice(ctx) or self.unknown_task(token)
        if token in ("-H", "--hosts") and not ctx.name:
            # `inv -H web deploy`: Invoke's own program has no global -H
            return f"unknown flag {token!r} before the task name (put it after: `{self.prog} TASK -H NAME`); " \
                   f"see `{self.prog} --help`"
        hint = _close(token, list(ctx.flags) + list(ctx.inverse_flags))
        if ctx.name:
            return f"unknown flag {token!r} for {ctx.name}{hint}; see `{self.prog} {ctx.name} --help`"
        return f"unknown flag {token!r}{hint}; see `{self.prog} --help`"

    def tasks_named(self) -> List[str]:
        """The task names among the command line's words (for a message)."""
        words = set(self.argv or ())
        return [name for name in self.collection.task_names if name in words]

    def first_unknown(self) -> Tuple[Optional[str], Optional[ParserContext]]:
        """The first word the task parser could not place, and the context it
        came in (the core context, named None, before any task). Invoke's
        parser with ignore_unknown stops there and hands back the rest as
        `unparsed` (documented on Parser), so fabops never reads its message."""
        try:
            result = self._make_parser(ignore_unknown=True).parse_argv(self.core.unparsed)
        except ParseError:  # another error came first: Invoke's text says it
            return None, None
        if not result.unparsed:
            return None, None
        self._left = len(result.unparsed)  # how many words the parser could not place
        return result.unparsed[0], result[-1]

    def _twice(self, ctx: Optional[ParserContext]) -> Optional[str]:
        """A task's flag given a second time (`status -H a -H b`): Invoke
        takes no second value, and the value read as an unknown task."""
        words = self.core.unparsed
        at = len(words) - getattr(self, "_left", 0)
        before = words[at - 1] if 0 < at <= len(words) else None
        if ctx is None or not ctx.name or before not in ctx.flags or not ctx.flags[before].takes_value:
            return None
        both = " (-H a,b selects both)" if before in ("-H", "--hosts") else ""
        return f"{before} given twice for {ctx.name}; give it once{both}"

    def unknown_task(self, token: str) -> str:
        return f"unknown task {token!r}{_close(token, list(self.collection.task_names))}; see `{self.prog} --list`"


def not_run(exc: Exit, names: List[str], prog: str) -> Exit:
    """`exc` (a task's failure), with one line naming the tasks of the
    command line after the failed one, which Invoke does not run (#24's
    fresh-clone trial: `health history` ran no history, without a word)."""
    from ._base import tasks_called

    called = tasks_called()
    if not exc.code or not called or called[-1] not in names:
        return exc
    failed = called[-1]
    rest = names[len(names) - names[::-1].index(failed):]
    if not rest:
        return exc
    line = for_stderr(f"{prog}: {', '.join(rest)} not run: {failed} exited {exc.code}, and a failed task stops "
                      "the ones after it")
    return Exit("\n".join(m for m in (exc.message, line) if m), code=exc.code)


def _is_fabops(task) -> bool:
    return isinstance(task, FabopsTask)


def _spelled(arg) -> str:
    """`--dry/-R`: how the flag may have been typed."""
    longs = [n for n in arg.names if len(n) > 1]
    shorts = [n for n in arg.names if len(n) == 1]
    return "/".join(["--" + n for n in longs] + ["-" + n for n in shorts])


def take_debug(program: Program, after_tasks: bool = False) -> None:
    """`--debug` means fabops' debugging (DEBUG_GIVEN), not Invoke's DEBUG
    logging: `fabops` clears the flag before Invoke acts on it; under `inv`,
    Invoke has turned its logging on before the task tree loads, so it is
    turned off again here (a few lines of Invoke's loader come first).
    `after_tasks`: the second look, once Invoke has merged the core flags
    given after a task name (`inv ping -H local --debug`) into its core."""
    if getattr(program, "core", None) is None:
        return  # a program that has parsed nothing yet: the tree imported from Python
    # this command line's answer, either way: a program run twice in one
    # process (tests, an embedding) must not keep an earlier run's --debug
    given = bool(program.args.debug.value)
    DEBUG_GIVEN[0] = (DEBUG_GIVEN[0] or given) if after_tasks else given
    if not DEBUG_GIVEN[0]:
        return
    program.args.debug.value = False
    root = logging.getLogger()
    if root.level == logging.DEBUG:  # invoke.util.enable_logging's basicConfig
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)


_NEEDS_POSITIONAL = re.compile(r"'([\w.-]+)' did not receive required positional arguments: (.+)")
_NEEDS_VALUE = re.compile(r"Flag <Argument: ([\w-]+)(?: \((\w)\))?> needed value and was not given one!")


def _needs_value(text: str, prog: str, tasks: List[str]) -> str:
    """Invoke's `Flag <Argument: service (s)> needed value and was not given
    one!` as the flag a person typed: `--service (-s) needs a value`."""
    m = _NEEDS_VALUE.fullmatch(text.strip())
    if not m:
        p = _NEEDS_POSITIONAL.fullmatch(text.strip())  # `inv agent`: Invoke's words for a missing action
        return f"{p.group(1)} needs {p.group(2)}; see `{prog} {p.group(1)} --help`" if p else text
    name, short = m.group(1).replace("_", "-"), m.group(2)
    flag = f"-{name}" if len(name) == 1 else f"--{name}"
    also = f" (-{short})" if short and short != name else ""
    see = f"`{prog} {tasks[0]} --help`" if len(tasks) == 1 else f"`{prog} --help`"
    return f"{flag}{also} needs a value; see {see}"


def _close(token: str, choices) -> str:
    hint = difflib.get_close_matches(token, choices, n=1, cutoff=0.6)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def serve_inv() -> None:
    """Give Invoke's `inv` the task-parse contract while it loads this tree.

    `inv` is `invoke.main:program.run`, a Program made before any tasks.py is
    found, and Invoke offers a collection no hook into parsing (a collection's
    config reaches the executor, which runs after the parse). The program's
    remaining steps (parse_tasks, parse_cleanup, execute) are looked up on
    its class when run() calls them, so this one instance gets TaskProgram
    as its class: Invoke's Program and ParserContext stay untouched for any
    other program in the process, and a tasks.py that adds its own tasks to
    `ns` keeps them (re-running the command line through a program of our
    own from here would not). Invoke has parsed its core flags by now, so
    only an error in those keeps Invoke's exit 1.
    """
    main = sys.modules.get("invoke.main")  # only imported by the `inv`/`invoke` entry points
    program = getattr(main, "program", None)
    if program is not None:
        set_program("inv")  # the hints this run prints name `inv` (shell.program)
    if type(program) is Program:  # Invoke's own, not someone's subclass
        program.__class__ = TaskProgram
        take_debug(program)


def keep_bytecode_caches() -> None:
    """`fabops`: Python's own choice about writing `__pycache__` again,
    after Invoke's parse turned it off (unless --write-pyc) so that no
    tasks.pyc lands beside a tasks.py. `fabops` loads no tasks.py; what it
    imports from here on is fabops' own modules, which each command imports
    only when it runs (the monitor, its renderer, the OpenSSH path), and
    without caches an editable install (the README's quick start) compiled
    those again on every command (docs/benchmarks.md). A wheel install has
    them compiled by pip either way. PYTHONDONTWRITEBYTECODE and `python -B`
    still turn writing off. `inv` keeps Invoke's choice: a tasks.py's own
    helpers and package modules import after the tree, and Invoke writes no
    cache beside them."""
    sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)


RUNS_ON = (("Invoke", "invoke"), ("Fabric", "fabric"), ("Paramiko", "paramiko"))


def version_line(version: Optional[str]) -> str:
    """`fabops 0.1.0 (Invoke 2.2.1, Fabric 3.2.2, Paramiko 3.4.0, Python
    3.11.2)`: from the installed distributions' metadata, nothing imported
    (a host's venv may lack Fabric and Paramiko: said so)."""
    import platform
    from importlib import metadata

    def installed(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    runs_on = ", ".join(f"{name} {installed(dist)}" for name, dist in RUNS_ON)
    return f"fabops {version or 'unknown'} ({runs_on}, Python {platform.python_version()})"


class FabopsProgram(TaskProgram):
    """`fabops`: exit 64 on any parse error (core flags included) and a global -H."""

    def core_args(self):
        args = super().core_args()
        args.append(Argument(names=("hosts", "H"), help="fabops only (with `inv`, -H goes after the task): "
                                                               "hosts or groups for every task named, as each task's "
                                                               "own -H."))
        for arg in args:  # --help names what a value is (NamedValues)
            arg.fabops_metavar = CORE_METAVARS.get(arg.name)
            arg.help = CORE_HELP.get(arg.name, arg.help)
        return args

    def print_version(self) -> None:
        """`fabops --version`: fabops' version and those it runs on (a bug
        report needs them; `inv --version` is Invoke's own and names only
        Invoke: it is answered before tasks.py loads, docs/tasks.md)."""
        print(version_line(self.version))

    @interruptible
    def parse_core(self, argv) -> None:
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise self.usage_error(str(exc)) from None
        except BrokenPipeError:  # `--version | head`, a completion script
            quiet_closed_pipe()
        keep_bytecode_caches()

    def parse_core_args(self):
        """`--print-completion-script bash|zsh` prints fabops' scripts, which
        also complete host names after -H (fish keeps Invoke's)."""
        self._refuse_repeated_hosts()
        super().parse_core_args()
        take_debug(self)  # before Invoke's parse_core reads --debug
        from ..completion import SCRIPTS

        shell = self.args["print-completion-script"].value
        if shell in SCRIPTS:
            print(SCRIPTS[shell], end="")
            raise Exit

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
            raise self.usage_error("-H given twice before the task name; give it once (-H a,b selects both)")

    @interruptible
    def execute(self) -> None:
        """Every task here is fabops' (FabopsTask says its own interrupt):
        this is Invoke's executor before, between and after them."""
        super().execute()

    def parse_tasks(self):
        super().parse_tasks()
        given = self.args.hosts.value
        if given is None:
            return
        takers = [ctx for ctx in self.tasks if "hosts" in ctx.args]
        if not takers:
            raise self.usage_error(f"-H was given, but {', '.join(c.name for c in self.tasks) or 'no task'} "
                                   "does not take -H")
        for ctx in takers:
            own = ctx.args["hosts"].value
            if own is not None and own != given:
                raise self.usage_error(f"-H given twice ({given!r} before {ctx.name}, {own!r} after it); give it once")
            ctx.args["hosts"].value = given
