"""rollback without --to (issue #24): it went *forward* when state's
`previous` was newer than the deployed commit (after a rollback, whose
promotion makes the commit it left `previous`, or a `deploy --ref` of an
older commit). The host's planner picks the commit now (host/plan.py,
rollback_target): the last good commit deployed before the current one
that is older than it (an ancestor), from the history; none: refused,
exit 2, nothing recorded. The dry run and the real run ask the same
planner, so both say the same. And the pin's way out names the run's -i
(`inv unpin -i PATH -H HOST`), in the dry run's `would pin` line too,
which the host writes without knowing it."""
from types import SimpleNamespace

import pytest

from tests.conftest import one, run_cli
from tests import test_golden as golden
from tests.test_golden import SHA, WIDTHS, check, render

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still


def rollback(sandbox, *args):
    r = run_cli("rollback", "-i", str(sandbox.inventory), "--json", *args)
    return r.returncode, one(r.stdout)


def test_rollback_never_moves_forward(sandbox):
    sandbox.result()
    v1 = sandbox.origin.head
    v2 = sandbox.origin.good("2")
    sandbox.result()
    v3 = sandbox.origin.good("3")
    sandbox.result()
    code, res = rollback(sandbox, "--dry-run")
    assert (code, res["result"], res["to"]) == (0, "would_deploy", v2), res
    code, res = rollback(sandbox)
    assert (code, res["result"], res["to"]) == (0, "deployed", v2), res
    assert sandbox.state["previous"] == v3  # the commit it left: newer, never a rollback target
    # the last good commit deployed before v2 that is older than it: v1, not v3
    code, res = rollback(sandbox, "--dry-run")
    assert (code, res["result"], res["to"]) == (0, "would_deploy", v1), res
    code, res = rollback(sandbox)
    assert (code, res["result"], res["to"]) == (0, "deployed", v1), res
    assert sandbox.health()["version"] == "1" and sandbox.state["pin"] == v1


def test_rollback_with_nothing_older_is_refused_by_the_dry_run_and_the_real_run(sandbox):
    sandbox.result()
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    sandbox.result()
    assert rollback(sandbox)[1]["to"] == v1
    before = (sandbox.state, len(sandbox.history()))
    assert before[0]["previous"] != v1  # the newer commit it left
    why = (f"no good commit older than {v1[:10]} was deployed on this host, so there is nothing to roll back "
           "to; give a commit with --to SHA")
    code, res = rollback(sandbox, "--dry-run")
    assert (code, res["result"], res["message"]) == (2, "would_abort", f"would stop: {why}"), res
    code, res = rollback(sandbox)
    assert (code, res["result"], res["message"]) == (2, "aborted", why), res
    # a refusal: nothing moved, nothing recorded (no failing streak, no history record)
    state = sandbox.state
    assert (state["deployed"], state["pin"], state["failing"], len(sandbox.history())) == (v1, v1, None, before[1])
    assert state["last_result"] == before[0]["last_result"]
    r = run_cli("rollback", "-i", str(sandbox.inventory))
    assert r.returncode == 2 and "give a commit with --to SHA" in " ".join(r.stdout.split()), r.stdout + r.stderr
    # --to still goes where it is told
    code, res = rollback(sandbox, "--to", before[0]["previous"])
    assert (code, res["result"]) == (0, "deployed"), res


def test_the_pin_names_the_runs_inventory(sandbox, tmp_path):
    """The dry run's `would pin` line (written on the host) and the real
    run's `pinned to` line say the `inv unpin` that works as printed."""
    sandbox.result()
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    sandbox.result()
    inv = str(sandbox.inventory)
    hint = f"`fabops unpin -i {inv} -H local`"
    r = run_cli("rollback", "-i", inv, "--dry-run", "--wide")
    said = " ".join(r.stdout.split())
    assert r.returncode == 0 and f"would pin {v1[:10]}: rollback: cron stays on it until {hint}" in said, r.stdout
    assert said.count("unpin") == 1, r.stdout  # the pin said once (trial #12)
    r = run_cli("rollback", "-i", inv, "--wide")
    said = " ".join(r.stdout.split())
    assert r.returncode == 0 and f"pinned to {v1[:10]}: cron stays on it until {hint}" in said, r.stdout
    # --json keeps what the host wrote: no command a script cannot run anyway
    r = run_cli("rollback", "-i", inv, "--dry-run", "--json", "--to", sandbox.origin.head)
    pins = [w["why"] for w in one(r.stdout)["plan"]["would"] if w["action"] == "pin"]
    assert pins == ["rollback: cron stays on it until it is unpinned (once its gate and watch pass)"], pins


def _rollback_outcome(result: str, woulds=()):
    """A rollback's outcome on find-to-do: the dry run's plan rendered by
    the host's own code (dry_run.actions), or the real run's result."""
    from fabops import inventory
    from fabops.fanout import FanoutResult, HostResult
    from fabops.host.dry_run import actions
    from fabops.host.plan import Plan
    from fabops.host.would import as_json

    host = inventory.loads("hosts:\n  find-to-do:\n    app: {path: /srv/app}\n    services:\n"
                           "      - {name: voice-meeting-discord-bot.service}\n", "h.yml").hosts["find-to-do"]
    p = Plan("deploy", "", f"roll back {SHA[1][:10]} -> {SHA[0][:10]}", SHA[0], SHA[1], pin=SHA[0],
             services=("voice-meeting-discord-bot.service",))
    res = {"result": result, "exit_code": 0, "from": SHA[1], "to": SHA[0], "duration": 2.4, "subject": "v1",
           "author": "Alice", "message": f"{SHA[1][:10]} -> {SHA[0][:10]}"}
    if result == "would_deploy":
        res["message"] = f"would roll back {SHA[1][:10]} -> {SHA[0][:10]}"
        res["plan"] = {"kind": "deploy", "from": SHA[1], "to": SHA[0], "changed_files": 1, "dirty": [], "pin": None,
                       "bad": False, "would": as_json(actions(host, p, "rollback"))}
    return FanoutResult([HostResult("find-to-do", value=SimpleNamespace(result=res, install=None))])


@pytest.mark.parametrize("result, name", [("would_deploy", "rollback-dry-run"), ("deployed", "rollback-pinned")])
@pytest.mark.parametrize("width", WIDTHS)
def test_rollback_summary(width, result, name, frozen, capsys, monkeypatch):
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    text = render(capsys, monkeypatch, width, _report, _rollback_outcome(result), False, task="rollback",
                  flag="ops/hosts.yml", dry_run=result == "would_deploy")
    said = " ".join(text.split())
    assert said.count("`fabops unpin -i ops/hosts.yml -H find-to-do`") == 1 and said.count("pin") == 2, text
    check(name, width, text)
