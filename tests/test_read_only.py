"""Reads that write (#24): a task that only looks (status, monitor, history,
logs, ping, hosts, and every --dry-run) writes nothing on the host or in the
directory it runs from. Found on a new user's trial: a plain `health`
wrote state.json and health.log, and from an empty directory made a
`host/` folder. Local sandbox tier: every file under the sandbox and the
working directory, before and after each task."""
import os

import pytest

from tests.conftest import run_cli

# The sample app's own log: it writes a line for every request, and a look
# at a service is a request to it. That is the app's write, not fabops'.
APP_OUTPUT = os.path.join("home", "services", "bot.log")

READS = [
    ("status",), ("monitor",), ("monitor", "--json"), ("history",), ("logs", "-n", "3"), ("ping",), ("hosts",),
    ("status", "--json"), ("deploy", "--dry-run"), ("rollback", "--dry-run"), ("restart", "--dry-run"),
    ("unpin", "--dry-run"), ("clean", "--dry-run"),
    ("health",),  # without --fix a read: cron's `health --fix --quiet` keeps the record
    ("health", "--fix", "--dry-run"),
]


def _files(*roots) -> dict:
    found = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != ".git"]  # the origin's and checkout's objects: git's, read-only here
            for name in files + dirs:
                p = os.path.join(folder, name)
                if p.endswith(APP_OUTPUT):
                    continue
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                found[p] = (st.st_mtime_ns, st.st_size, st.st_mode)
    return found


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """One sandbox, deployed twice (so a rollback has somewhere to go), that
    every read below looks at."""
    from tests.conftest import require
    from tests.harness.apps import Sandbox
    import sys

    require(sys.platform.startswith("linux"), "the process back end needs Linux")
    box = Sandbox(tmp_path_factory.mktemp("ro"))
    try:
        assert box.result()[0] == 0
        box.origin.good("2")
        assert box.result()[0] == 0
        yield box
    finally:
        box.stop()


@pytest.mark.parametrize("task", READS, ids=" ".join)
def test_a_read_writes_nothing(deployed, tmp_path, task):
    cwd = tmp_path / "empty"  # as from a wheel install in an empty directory
    cwd.mkdir()
    before = _files(deployed.base, cwd)
    r = run_cli(*task, "-i", str(deployed.inventory), cwd=str(cwd))
    assert r.returncode in (0, 1), r.stdout + r.stderr  # looked, whatever it found
    after = _files(deployed.base, cwd)
    changed = sorted(os.path.relpath(p, deployed.base) if p.startswith(str(deployed.base)) else p
                     for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert changed == [], f"{' '.join(task)} wrote {changed}"
