"""The `fabops` console script: an Invoke Program serving the same task tree
as `inv` (with the root tasks.py), so the host can run `fabops local-update`
without a tasks.py."""
from __future__ import annotations

import sys

from invoke import Program
from invoke.exceptions import ParseError

from . import __version__
from .errors import USAGE


class FabopsProgram(Program):
    """Parse errors (unknown task, bad flag) are usage errors: exit 64, not 1."""

    def parse_core(self, argv):
        try:
            super().parse_core(argv)
        except ParseError as exc:
            print(f"fabops: {exc}", file=sys.stderr)
            sys.exit(USAGE)

    def parse_tasks(self):
        try:
            super().parse_tasks()
        except ParseError as exc:
            print(f"fabops: {exc}", file=sys.stderr)
            sys.exit(USAGE)


def main(argv=None):
    from .tasks import ns

    program = FabopsProgram(namespace=ns, version=__version__, name="fabops", binary="fabops")
    program.run(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
