"""`python -m bench [pipeline ...]`: run the benchmarks and print Markdown."""
import sys

from bench import agent, cron, monitor, pipeline, recovery, refactor, settle, transport

SUITES = {"agent": agent.main, "pipeline": pipeline.main, "monitor": monitor.main, "transport": transport.main,
          "recovery": recovery.main, "refactor": refactor.main,
          "cron": cron.main, "settle": settle.main}


def main(argv):
    names = argv or list(SUITES)
    for name in names:
        if name not in SUITES:
            sys.exit(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
        SUITES[name]()


main(sys.argv[1:])
