"""`python -m bench [pipeline ...]`: run the benchmarks and print Markdown.
A suite that takes options (OPTIONS) gets the rest of the line:
`python -m bench backup --files-mib 64 --sqlite-mib 16`."""
import sys

from bench import agent, backup, cron, hostscript, monitor, pipeline, recovery, refactor, settle, transport, trees

SUITES = {"agent": agent.main, "pipeline": pipeline.main, "monitor": monitor.main, "transport": transport.main,
          "recovery": recovery.main, "refactor": refactor.main,
          "cron": cron.main, "settle": settle.main, "backup": backup.main, "trees": trees.main,
          "hostscript": hostscript.main}
OPTIONS = {"backup", "trees", "hostscript", "agent"}


def main(argv):
    names = argv or list(SUITES)
    for i, name in enumerate(names):
        if name not in SUITES:
            sys.exit(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
        if name in OPTIONS:
            SUITES[name](names[i + 1:])
            return
        SUITES[name]()


main(sys.argv[1:])
