"""Lifecycle hooks (#29; docs/pipeline.md, "Hooks") on the local sandbox,
through the real console script: a failing before_restart stops the run
with nothing restarted and the checkout put back; a failing after_deploy
rolls back as a failed gate does (the commit marked bad, on_rollback run);
on_failure runs once per failed run and never for a hold; a hook past its
timeout is killed with everything it started; the environment is the
documented one, the script is in no argv and the app's .env is not
exported; the dry run lists the hooks the real run runs."""
import json
import os
import time

import yaml

from tests.conftest import run_cli
from tests.harness.agent import wait_gone


def with_hooks(box, **hooks) -> None:
    """Give the sandbox's host these hooks (hosts.yml's `hooks:`)."""
    data = yaml.safe_load(box.inventory.read_text())
    data["hosts"]["local"]["hooks"] = hooks
    box.inventory.write_text(yaml.safe_dump(data, sort_keys=False))


def steps(res) -> dict:
    return {s["name"]: s for s in res["steps"]}


def failures(box) -> list:
    path = box.base / "failures"
    return path.read_text().splitlines() if path.exists() else []


ON_FAILURE = 'echo "$FABOPS_RESULT $FABOPS_RUN_ID $FABOPS_MESSAGE" >> ../../failures'


def test_a_failing_before_restart_stops_the_run_with_nothing_restarted(sandbox):
    box = sandbox
    with_hooks(box, before_restart="echo migrating\nif [ -f NOMIGRATE ]; then echo 'migration 42 failed' >&2; exit 3; fi",
               on_failure=ON_FAILURE)
    code, res = box.result()
    assert (code, res["result"]) == (0, "deployed"), res
    assert steps(res)["before_restart hook"]["ok"] and steps(res)["before_restart hook"]["message"] == "ok: migrating"
    deployed, pid = box.state["deployed"], box.pid()
    bad = box.origin.push("v2 whose migration fails", {"VERSION": "2\n", "NOMIGRATE": "x\n"})
    code, res = box.result("--trigger", "deploy")
    assert (code, res["result"]) == (2, "aborted"), res
    hook = steps(res)["before_restart hook"]
    assert not hook["ok"] and hook["message"] == "exit 3: migration 42 failed", hook
    assert not any(name.startswith("restart") for name in steps(res)), res["steps"]  # nothing restarted
    assert "the before_restart hook failed (exit 3: migration 42 failed)" in res["message"]
    assert "nothing was restarted; back on " + deployed[:10] in res["message"], res["message"]
    assert box.pid() == pid and box.head() == deployed and box.state["deployed"] == deployed
    assert bad not in box.state["bad"]  # the commit did not fail a gate: retried later, as a failed rule is
    assert box.health()["status"] == "ok"
    # the hook's output is in the update log, under its own title
    log = (box.base / "host" / "log" / "update.log").read_text()
    assert "--- before_restart hook, exit 3" in log and "migration 42 failed" in log
    # on_failure ran once for this failed run, with its result and run id
    (line,) = failures(box)
    assert line.startswith(f"aborted {res['run_id']} ") and "the before_restart hook failed" in line, line
    # cron's next poll waits for the retry (a hold, no failure): on_failure does not run
    code, res = box.result()
    assert res["result"] == "deferred" and len(failures(box)) == 1, res
    # a person's deploy fails again: a second failed run, a second on_failure
    code, res = box.result("--trigger", "deploy")
    assert res["result"] == "aborted" and len(failures(box)) == 2, res
    history = [r for r in box.history() if r["result"] == "aborted"]
    assert [r["steps"][-1]["name"] for r in history] == ["on_failure hook"] * 2  # each record holds its step


def test_a_failing_after_deploy_rolls_back_like_a_failed_gate(sandbox):
    box = sandbox
    with_hooks(box, after_deploy={"run": "test ! -f BADSMOKE || { echo 'smoke: 500 on /'; exit 1; }",
                                  "timeout": "20s"},
               on_rollback='echo "$FABOPS_HOOK $FABOPS_RESULT $FABOPS_FROM $FABOPS_TO" >> ../../rolled',
               on_failure=ON_FAILURE)
    code, res = box.result()
    assert (code, res["result"]) == (0, "deployed") and steps(res)["after_deploy hook"]["ok"], res
    assert not (box.base / "rolled").exists() and failures(box) == []  # neither runs on a good deploy
    good = box.state["deployed"]
    bad = box.origin.push("v2 fails its smoke test", {"VERSION": "2\n", "BADSMOKE": "x\n"})
    code, res = box.result("--trigger", "deploy")
    assert (code, res["result"]) == (2, "rolled_back"), res
    names = [s["name"] for s in res["steps"]]
    assert names[names.index("after_deploy hook"):] == ["after_deploy hook", "rollback", "rollback bot",
                                                        "on_rollback hook", "on_failure hook"], names
    assert "watch" not in names  # the smoke test failed before the watch: no watch of a failed commit
    assert f"{bad[:10]} failed (the after_deploy hook failed: exit 1: smoke: 500 on /)" in res["message"]
    assert box.head() == good and box.state["deployed"] == good and box.health()["status"] == "ok"
    assert bad in box.state["bad"]  # marked bad as a failed gate marks it: cron skips it
    # from where the run went (the good commit) to the target it tried (the bad one)
    assert (box.base / "rolled").read_text().split() == ["on_rollback", "rolled_back", good, bad]
    (line,) = failures(box)
    assert line.startswith(f"rolled_back {res['run_id']} "), line
    code, res = box.result()
    assert res["result"] == "skipped_bad" and len(failures(box)) == 1, res


def test_a_hook_that_changes_a_tracked_file_leaves_nothing_the_next_run_refuses(sandbox):
    """`before_restart: rails db:migrate` rewrites the tracked db/schema.rb:
    fabops' own change, as a dependency rule's (docs/hooks.md, "What a hook
    changes"), so cron's next poll is a noop, not `aborted` for a person's
    work with on_failure every poll; the next deploy's checkout puts the
    file back to its commit and the hook writes it again."""
    box = sandbox
    with_hooks(box, before_restart="echo '-- migrated' >> db/schema.rb", on_failure=ON_FAILURE)
    box.origin.push("v2 with a schema", {"db/schema.rb": "-- schema v2\n"})
    code, res = box.result()
    assert (code, res["result"]) == (0, "deployed"), res
    schema = box.app / "db" / "schema.rb"
    assert schema.read_text() == "-- schema v2\n-- migrated\n"
    assert box.state["own_files"] == ["db/schema.rb"], box.state
    code, res = box.result()  # cron's next poll
    assert (code, res["result"]) == (0, "noop"), res
    assert failures(box) == []
    box.origin.push("v3 changes the schema", {"db/schema.rb": "-- schema v3\n"})
    code, res = box.result()
    assert (code, res["result"]) == (0, "deployed"), res
    assert schema.read_text() == "-- schema v3\n-- migrated\n"
    code, res = box.result()
    assert (code, res["result"]) == (0, "noop") and failures(box) == [], res


def test_a_hook_past_its_timeout_is_killed_with_what_it_started(sandbox):
    box = sandbox
    with_hooks(box, before_restart={"run": "sleep 300 &\necho $! > ../../child.pid\necho $$ > ../../shell.pid\n"
                                           "echo waiting\nsleep 300", "timeout": "1s"})
    started = time.monotonic()
    code, res = box.result("--trigger", "deploy")
    assert time.monotonic() - started < 60, "the hook was not killed at its timeout"
    assert (code, res["result"]) == (2, "aborted"), res
    hook = steps(res)["before_restart hook"]
    assert hook["message"] == "timed out after 1 s (killed with its process group): waiting", hook
    for name in ("child.pid", "shell.pid"):
        pid = int((box.base / name).read_text())
        assert wait_gone(pid), f"{name}: process {pid} is still there after the hook's timeout"


ENV_HOOK = """env | grep '^FABOPS_' | sort > ../../env
echo "DISCORD_TOKEN=${DISCORD_TOKEN:-unset}" >> ../../env
id -u > ../../uid
pwd > ../../pwd
tr '\\0' ' ' < /proc/$$/cmdline > ../../argv
# a marker only this script holds: it must be in no argv
"""


def test_the_hooks_environment_argv_and_user_and_the_dry_run_that_lists_them(sandbox):
    box = sandbox
    with_hooks(box, before_restart=ENV_HOOK, on_failure={"run": "true", "timeout": "5s"})
    code, res = box.result()
    assert res["result"] == "deployed", res
    old = box.state["deployed"]
    new = box.origin.good("2")
    # the dry run lists the hooks the real run runs, in its order, from the same plan
    r = box.update("--dry-run", "--trigger", "deploy")
    would = json.loads(r.stdout)["hosts"]["local"]["plan"]["would"]
    assert [(w["action"], w["target"]) for w in would] == [
        ("checkout", new[:10]), ("run", "before_restart hook"), ("restart", "bot"), ("watch", "bot"),
        ("run", "on_failure hook")], would
    assert would[1]["why"].startswith("6 lines, timeout 60 s; after the rules, before the restart")
    assert would[-1]["why"] == "1 line, timeout 5 s; once, if the run fails"
    shown = run_cli("local-update", "-i", str(box.inventory), "--dry-run", "--trigger", "deploy")
    assert "would run before_restart hook: 6 lines, timeout 60 s; " in shown.stdout, shown.stdout
    code, res = box.result("--trigger", "deploy", "--actor", "ana@laptop")
    assert res["result"] == "deployed", res
    env = dict(line.split("=", 1) for line in (box.base / "env").read_text().splitlines())
    # the test run's own (pytest's, and .ci/run's FABOPS_REQUIRE_ALL), which a
    # sandbox host's hook inherits from its parent as a real host's does cron's
    ours = ("FABOPS_AGENT", "FABOPS_TEST_SESSION", "FABOPS_REQUIRE_ALL")
    env = {k: v for k, v in env.items() if k not in ours}
    assert env == {"FABOPS_ACTOR": "ana@laptop", "FABOPS_APP": str(box.app), "FABOPS_FROM": old,
                   "FABOPS_HOOK": "before_restart", "FABOPS_HOST": "local", "FABOPS_MESSAGE": "",
                   "FABOPS_RESULT": "", "FABOPS_RUN_ID": res["run_id"], "FABOPS_TO": new,
                   "FABOPS_TRIGGER": "deploy", "DISCORD_TOKEN": "unset"}, env  # the app's .env is not exported
    # run as the user that runs the pipeline (the deploy user), never through sudo
    assert int((box.base / "uid").read_text()) == os.getuid()
    assert (box.base / "pwd").read_text().strip() == str(box.app)
    argv = (box.base / "argv").read_text()
    assert argv.startswith("bash ") and "/hook-before_restart-" in argv and "marker" not in argv, argv
    assert not list(box.home.glob("hook-*")), "the script file was left behind"
