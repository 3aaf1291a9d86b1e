"""A deploy on the deployed commit with its service stopped (#24's trial):
its dry run said `would restart bot: down on the deployed commit`, exit 0,
and the real deploy exited 1 (`warning: was unhealthy, restarted: bot is
stopped`) and said `healthy again`. The planner decides the warning, so
the dry run says it and exits 1 as the real run does (docs/pipeline.md,
"--dry-run"); a service that was only stopped comes back `healthy`, and
`healthy again` is for a host whose verdict was broken, as a person's
restart says it (host/record.healthy_again). Real runs on the sandbox host."""
import json

from tests.conftest import run_cli

DOWN = "unhealthy on the deployed commit: bot "


def _run(sandbox, *args):
    return run_cli(*args, "-i", str(sandbox.inventory), env={"COLUMNS": "200"})


def test_the_dry_run_of_a_sick_restart_exits_as_the_real_run_and_says_why(sandbox):
    sandbox.result()
    sandbox.stop()
    r = _run(sandbox, "deploy", "--dry-run")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"[local] warning: {DOWN}" in r.stdout and "would restart bot" in r.stdout, r.stdout
    r = _run(sandbox, "deploy", "--json")
    res = json.loads(r.stdout)["hosts"]["local"]
    assert (r.returncode, res["result"]) == (1, "deployed"), res
    assert res["warnings"][0].startswith(DOWN), res
    assert res["message"].endswith("; healthy"), res  # it was stopped, not broken


def test_a_sick_restart_after_a_broken_verdict_is_healthy_again(sandbox):
    sandbox.result()
    sandbox.stop()
    (sandbox.home / "state.json").write_text(json.dumps(dict(sandbox.state, last_result="broken")))
    code, res = sandbox.result("--trigger", "deploy")
    assert (code, res["result"]) == (1, "deployed") and res["message"].endswith("; healthy again"), res
