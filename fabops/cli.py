"""The `fabops` console script: the task tree as `inv` serves it with the
root tasks.py, so the host can run `fabops local-update` without a tasks.py.
The program itself (parse contract, global -H, completion) is
fabops/tasks/program.py."""
from __future__ import annotations

import functools


def said_if_interrupted(entry):
    """`entry` with a Ctrl-C anywhere in it said as a task says it (docs/errors.md,
    130): `fabops: interrupted`, exit 130, no traceback. Cron's fast path,
    a task and Invoke's parse say it themselves; this covers the rest (the
    imports of each step, the agent's client, the task tree)."""

    @functools.wraps(entry)
    def run(argv=None):
        try:
            return entry(argv)
        except KeyboardInterrupt:
            import sys

            from .errors import INTERRUPTED
            from .host.report import INTERRUPTED_LINE

            print(INTERRUPTED_LINE, file=sys.stderr)
            raise SystemExit(INTERRUPTED) from None

    return run


@said_if_interrupted
def main(argv=None):
    from .host.fastpath import serve

    if serve(argv, _task_text):  # cron's local-update and health, without Invoke (host/fastpath.py)
        return
    from .agent.client import forward

    code = forward(argv)  # through the agent, when it is on (docs/architecture.md, "The agent")
    if code is not None:
        raise SystemExit(code)
    run_program(argv)


@said_if_interrupted
def run_program(argv=None):
    """fabops' program, here or in a run of the agent's."""
    from . import __version__
    from .shell import set_program
    from .tasks import ns
    from .tasks.program import FabopsProgram

    set_program("fabops")  # after the task tree's import: serve_inv's word is for `inv`
    program = FabopsProgram(namespace=ns, version=__version__, name="fabops", binary="fabops")
    program.run(argv)


def _task_text():
    """The task layer's print_text and for_stderr, for the fast path's lines
    that need them (long lines, a terminal)."""
    from .tasks._base import for_stderr, print_text

    return print_text, for_stderr


if __name__ == "__main__":  # pragma: no cover
    main()
