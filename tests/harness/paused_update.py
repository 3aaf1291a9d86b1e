"""`fabops local-update ARGS...` with the pipeline stopped at one step
boundary: `python -m tests.harness.paused_update STEP ARGS...`.

The test injects the pause (fabops/host/pipeline.py, PAUSE); production code
reads nothing for it. At STEP the run announces `paused` in its event log
and waits there until the test kills its process group."""
import sys
import time

from fabops.cli import main
from fabops.host import pipeline


def pause_at(wanted: str):
    def pause(step, events):
        if step != wanted:
            return
        events.emit("paused", step=step)
        while True:  # until the test's SIGKILL
            time.sleep(0.1)

    return pause


if __name__ == "__main__":
    pipeline.PAUSE = pause_at(sys.argv[1])
    main(["fabops", "local-update", *sys.argv[2:]])
