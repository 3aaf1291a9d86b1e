"""The `fabops` console script: the task tree as `inv` serves it with the
root tasks.py, so the host can run `fabops local-update` without a tasks.py.
The program itself (parse contract, global -H, completion) is
fabops/tasks/program.py."""
from __future__ import annotations


def main(argv=None):
    from . import __version__
    from .tasks import ns
    from .tasks.program import FabopsProgram

    program = FabopsProgram(namespace=ns, version=__version__, name="fabops", binary="fabops")
    program.run(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
