"""The session's leftover-process check (tests/harness/leftovers.py) finds
what this run started, by its marker or its ancestry, and nothing else."""
import os
import subprocess
import sys

from tests.harness.leftovers import MARKER, leftovers


def test_a_detached_child_is_found_and_nothing_else():
    value = os.environ[MARKER]
    # a daemon as the sample app is one: its own session, so not pytest's
    # process group; found by the marker it inherited
    detached = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    # a child given an environment without the marker: found by ancestry
    bare = subprocess.Popen(["sleep", "60"], env={"PATH": os.environ["PATH"]})
    # another run's process: the same variable with another value, not ours
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, MARKER: "another-run"}, start_new_session=True)
    try:
        found = leftovers(value, os.getpid())
        assert detached.pid in found and "time.sleep(60)" in found[detached.pid], found
        assert bare.pid in found and found[bare.pid] == "sleep 60", found
        # the other run's process is a child of this pytest here (we had to
        # start it): seen only through ancestry, so from another root it is not
        assert other.pid not in leftovers(value, root=1 << 30)
        assert detached.pid in leftovers(value, root=1 << 30)  # the marker alone finds it
        assert os.getpid() not in found and 1 not in found and os.getppid() not in found
    finally:
        for p in (detached, bare, other):
            p.kill()
            p.wait()
    assert not {detached.pid, bare.pid, other.pid} & set(leftovers(value, os.getpid()))
