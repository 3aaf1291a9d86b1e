"""A deploy that meets the lock held and stops (#24's trial: exit 4, its
summary cut at `… run 20…`, no next step named): the real run and its dry
run give the holder's run id whole and the next steps, --wait and, for a
holder whose run writes its events, --attach (host/queue.locked_line).
Real runs on the sandbox host: a deploy's run holds its watch while
another deploy is asked with --wait 0."""
import json

from tests.conftest import run_cli
from tests.test_watch_lock import CronRun, long_watch


def test_a_locked_deploy_names_the_holders_run_whole_and_the_next_steps(sandbox):
    sandbox.result()
    long_watch(sandbox, "4s")
    sandbox.origin.good("2")
    holder = CronRun(sandbox, run_id="20261207T000000-abc123", trigger="deploy", actor="ann@laptop")
    try:
        holder.wait_for_watch()
        sandbox.origin.good("3")
        said = {}
        for dry in ((), ("--dry-run",)):
            r = run_cli("deploy", "-i", str(sandbox.inventory), "--wait", "0", *dry, env={"COLUMNS": "80"})
            said[dry] = (r.returncode, " ".join(r.stdout.split()))
        r = run_cli("deploy", "-i", str(sandbox.inventory), "--wait", "0", "--json")
        message = json.loads(r.stdout)["hosts"]["local"]["message"]
        holder.result()
    finally:
        holder.end()
    steps = "(use --wait SECONDS to queue behind it, or --attach 20261207T000000-abc123 to follow it)"
    assert message.startswith("locked: deploy by ann@laptop (") and message.endswith(steps), message
    for dry, (code, out) in said.items():
        assert code == 4 and "run 20261207T000000-abc123)" in out and steps in out and "…" not in out, (dry, out)
