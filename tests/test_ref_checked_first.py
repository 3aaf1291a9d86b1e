"""Trial (#24, a new user's trial of the deploy, item 2): `inv deploy
--ref nosuchref` during another deploy's watch first said `waiting for the
watch of deploy by … 1 s left` and only then `--ref nosuchref: no such
branch…` (exit 64). docs/pipeline.md says `--ref` is validated first: a
read-only git check needs no lock, so a mistyped ref is said at once,
before any wait (and before `locked`, exit 4). On the local sandbox
through the real console script."""
import time

from tests.conftest import run_cli
from tests.test_watch_lock import cron_run, long_watch  # noqa: F401 (cron_run: a fixture)

WANT = "--ref nosuchref: no such branch, tag or commit on origin"


def test_a_bad_ref_is_refused_before_waiting_for_a_watch(sandbox, cron_run):  # noqa: F811
    sandbox.result()
    v1 = sandbox.origin.head
    long_watch(sandbox, "30s")  # long enough for every step below to meet it, on a loaded machine
    sandbox.origin.good("2")
    cron = cron_run(trigger="deploy", actor="root@vm")
    cron.wait_for_watch()
    began = time.monotonic()
    r = run_cli("deploy", "-i", str(sandbox.inventory), "-H", "local", "--ref", "nosuchref",
                env={"COLUMNS": "200"}, timeout=120)
    took = time.monotonic() - began
    assert r.returncode == 64, r.stdout + r.stderr
    assert r.stderr == f"fabops: local: {WANT}\n", r.stderr
    assert "waiting" not in r.stdout, r.stdout
    holder = cron.wait_for_watch()  # the watch goes on: the refused deploy did not wait it out
    assert holder["run_id"] == "cronrun" and took < 30, took
    # and before `locked`: --wait 0 exits 4 on a ref that names a commit
    r = sandbox.update("--trigger", "deploy", "--ref", "nosuchref", "--wait", "0")
    assert r.returncode == 64 and WANT in r.stdout, r.stdout + r.stderr
    r = sandbox.update("--trigger", "deploy", "--ref", v1, "--wait", "0")
    assert r.returncode == 4, r.stdout + r.stderr
    assert cron.wait_for_watch()["run_id"] == "cronrun"  # still watching: the fixture ends it
