"""`inv` as fabops serves it from its first line (docs/architecture.md,
"Command line").

Invoke's `inv` prints a bare `--help`, and logs its loader's `--debug`
lines, before it imports any tasks.py; serve_inv (tasks/program.py), which
runs when fabops' task tree is imported, came too late for both: `inv
--help` listed the core flags fabops refuses (exit 64), and `inv --debug
TASK` printed three lines of Invoke's loader before fabops' own (#24).

fabops-inv.pth, installed beside the package, calls `install()` when the
interpreter starts as `inv` or `invoke` (any other program in the
environment pays one comparison of its argv[0]). It gives Invoke's program
object the `EarlyInv` class, which changes two things and only while the
tasks load:

- a bare `--help` loads the tasks first, then prints: once serve_inv has
  made the program a TaskProgram, its help leaves out what fabops refuses
  (a tasks.py with tasks of its own keeps Invoke's whole help, and a
  directory without a tasks.py gets Invoke's help, as before);
- Invoke's debug log is held while the tasks load: dropped when they were
  fabops' (serve_inv took --debug: it means fabops' commands), written as
  Invoke would have written it otherwise.

Standard library and invoke only, and nothing raised from here stops the
interpreter from starting.
"""
from __future__ import annotations

import logging

from invoke import Exit, Program


class EarlyInv(Program):
    """Invoke's Program until fabops' task tree loads (serve_inv then gives
    the same object the TaskProgram class); see the module docstring."""

    def parse_collection(self) -> None:
        bare_help = self.args.help.value is True and self.namespace is None
        held = _Held() if self.args.debug.value else None
        if bare_help:  # Invoke would print its help here, before loading
            self.args.help.set_value(False, cast=False)  # (`.value = ` would cast it to the string "False")
        try:
            Program.parse_collection(self)  # not super(): this object may have changed class meanwhile
        except Exception:
            if not bare_help:
                raise
            # no tasks.py here, or one that fails to load: Invoke's own help, as before
            self.args.help.set_value(True, cast=False)
            if held:
                held.let_go(replay=True)
                held = None
            self.print_help()
            raise Exit
        finally:
            if bare_help:
                self.args.help.set_value(True, cast=False)  # parse_cleanup prints it, as the program now is
            if held:
                held.let_go(replay=type(self) is EarlyInv)  # not fabops' tree: Invoke's lines, as it logs them


class _Held(logging.Handler):
    """The root logger's handlers (Invoke's enable_logging) set aside, and
    the records logged meanwhile kept, until `let_go`."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.root = logging.getLogger()
        self.handlers = list(self.root.handlers)
        self.records: list = []
        for handler in self.handlers:
            self.root.removeHandler(handler)
        self.root.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def let_go(self, replay: bool) -> None:
        """Take this handler off; `replay`: put Invoke's handlers back and
        write the held records through them (otherwise fabops took --debug,
        and take_debug has already set the logging as fabops wants it)."""
        self.root.removeHandler(self)
        if not replay:
            return
        for handler in self.handlers:
            self.root.addHandler(handler)
        for record in self.records:
            for handler in self.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)


def install() -> None:
    """Called by fabops-inv.pth when the program is `inv` or `invoke`."""
    try:
        import invoke.main

        if type(invoke.main.program) is Program:  # Invoke's own, not someone's subclass
            invoke.main.program.__class__ = EarlyInv
    except Exception:  # an Invoke without invoke.main.program: it keeps its own behaviour
        pass
