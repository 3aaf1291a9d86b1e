"""Ctrl-C during a deploy's watch (#24's trial): the laptop said only
`fabops: interrupted` (exit 130) while the run went on on the host. It
says so now, and the command that follows it, as `--no-watch` does
(docs/pipeline.md, step 8); exit 130 stays. A real `fabops deploy` on the
sandbox host, interrupted as a terminal does (SIGINT to its process group)
once the host's run holds its watch; that run still ends deployed."""
import json
import time

from tests.test_interrupt import Fabops
from tests.test_watch_lock import long_watch


def _holder(sandbox) -> dict:
    try:
        return json.loads((sandbox.home / "lock").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def test_ctrl_c_in_a_deploys_watch_says_the_run_goes_on_and_how_to_follow_it(sandbox):
    sandbox.result()
    long_watch(sandbox, "3s")
    v2 = sandbox.origin.good("2")
    run = Fabops("deploy", "-i", str(sandbox.inventory), fast=False)
    try:
        run.wait_for(lambda: _holder(sandbox).get("phase") == "watch")
        run_id = _holder(sandbox)["run_id"]
        code, _, err = run.ctrl_c()
    finally:
        run.end()
    # the host's run ends on its own: waited for before anything is asserted
    deadline = time.monotonic() + 60
    while not [h for h in sandbox.history() if h.get("run_id") == run_id] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == 130, err
    line = " ".join(err.split())
    assert line.startswith("fabops: interrupted: the run goes on on the host;"), err
    assert f"deploy -i {sandbox.inventory} -H local --attach {run_id}` follows it" in line, err
    ended = [h for h in sandbox.history() if h.get("run_id") == run_id]
    assert ended and (ended[-1]["result"], ended[-1]["to"]) == ("deployed", v2), sandbox.history()
