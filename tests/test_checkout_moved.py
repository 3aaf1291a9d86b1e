"""Trial (issue #24's Done-when trial, item 4): after a broken reset the
checkout is at the commit that crashed while state.json still records the
good one as deployed. A rollback then said `deploy G -> G` (dry run) and
`deployed: G -> G` (real run, history, status's last run) though the
checkout moved from the broken commit, and deploy's dry run said
`deploy G -> B` with the checkout already at B. A run's `from` is where
the checkout is, and the plan says that it is not the deployed commit. On
the local sandbox through the real `fabops` console script."""
import json
import re

import pytest

from tests import test_golden as golden
from tests.conftest import one, run_cli
from tests.test_reset_known_bad import _crashed_and_remembered

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still


def _broken_reset(sandbox):
    """State says `good` is deployed; the checkout is at `bad` (a reset onto it that did not come up)."""
    good, bad = _crashed_and_remembered(sandbox)
    r = run_cli("reset", "-i", str(sandbox.inventory), "-H", "local", "--yes", timeout=180)
    assert r.returncode == 5, r.stdout + r.stderr
    assert (sandbox.head(), sandbox.state["deployed"]) == (bad, good)
    return good, bad


def _flat(text: str) -> str:
    """Output lines joined back where 80 columns wrapped them."""
    return re.sub(r"\n +", " ", text)


def test_from_is_where_the_checkout_is(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    good, bad = _broken_reset(sandbox)
    inv = str(sandbox.inventory)
    g, b = good[:10], bad[:10]
    moved = "(back to the deployed commit; the checkout had moved)"
    r = run_cli("deploy", "-i", inv, "-H", "local", "--dry-run", env={"COLUMNS": "80"})
    assert f"would checkout {b}: deploy {b} where the checkout already is (not the deployed {g})" in _flat(r.stdout), r.stdout
    r = run_cli("rollback", "-i", inv, "-H", "local", "--dry-run", env={"COLUMNS": "80"})
    assert f"would checkout {g}: roll back {b} -> {g} {moved}" in _flat(r.stdout), r.stdout
    assert f"{g} -> {g}" not in r.stdout and f"{g}→{g}" not in r.stdout, r.stdout
    r = run_cli("rollback", "-i", inv, "-H", "local", "--dry-run", "--json")
    res = one(r.stdout)
    assert (res["from"], res["to"], res["plan"]["from"], res["plan"]["to"]) == (bad, good, bad, good), res
    r = run_cli("rollback", "-i", inv, "-H", "local")
    assert r.returncode == 0 and f"= deployed: {b} -> {g}" in r.stdout, r.stdout + r.stderr
    last = sandbox.history()[-1]
    assert (last["trigger"], last["result"], last["from"], last["to"]) == ("rollback", "deployed", bad, good), last
    assert (sandbox.head(), sandbox.state["deployed"]) == (good, good)
    assert sandbox.state["previous"] != bad  # never promoted: the broken commit is no rollback target
    r = run_cli("status", "-i", inv, "-H", "local", "--json")
    status = json.loads(r.stdout)["hosts"]["local"]
    assert (status["last_run"]["from"], status["last_run"]["to"]) == (bad, good), status["last_run"]


def test_a_checkout_on_the_deployed_commit_keeps_its_words(sandbox):
    """The negative: with the checkout where the deploy left it, `from` is
    the deployed commit and nothing is said of the checkout."""
    sandbox.result()
    v1 = sandbox.origin.head
    v2 = sandbox.origin.good("2")
    r = run_cli("deploy", "-i", str(sandbox.inventory), "-H", "local", "--dry-run", env={"COLUMNS": "80"})
    assert f"would checkout {v2[:10]}: deploy {v1[:10]} -> {v2[:10]}\n" in r.stdout, r.stdout
    assert "the checkout" not in r.stdout, r.stdout


@pytest.mark.parametrize("width", golden.WIDTHS)
def test_rollback_dry_run_from_a_moved_checkout(width, frozen, capsys, monkeypatch):
    """The dry run's lines and summary row as the host's planner and render
    make them, at 80 and 200 columns: from the checkout (SHA[1]) back to
    the deployed SHA[0], and saying the checkout is not the deployed commit."""
    from types import SimpleNamespace

    from fabops import inventory
    from fabops.fanout import FanoutResult, HostResult
    from fabops.host.dry_run import render as plan_json
    from fabops.host.plan import Facts, Health, Opts, plan
    from fabops.host.state import State
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    host = inventory.loads("hosts:\n  find-to-do:\n    app: {path: /srv/app}\n    services:\n"
                           "      - {name: voice-meeting-discord-bot.service}\n", "h.yml").hosts["find-to-do"]
    deployed, checkout = golden.SHA[0], golden.SHA[1]
    state = State(deployed=deployed, bad={checkout: {"reason": "bot died after starting"}})
    facts = Facts(origin=checkout, head=checkout, health=(Health("voice-meeting-discord-bot.service", False, "down"),),
                  problems=(), changed=())
    p = plan(host, state, facts, Opts(trigger="rollback"))
    assert (p.kind, p.from_, p.target) == ("deploy", checkout, deployed), p
    res = {"result": "would_deploy", "exit_code": 0, "from": p.from_, "to": p.target, "duration": 0.4,
           "subject": "v1", "author": "Alice", "message": f"would {p.message}",
           "plan": plan_json(host, p, facts, state, {}, "rollback")}
    outcome = FanoutResult([HostResult("find-to-do", value=SimpleNamespace(result=res, install=None))])
    text = golden.render(capsys, monkeypatch, width, _report, outcome, False, task="rollback",
                         flag="ops/hosts.yml", dry_run=True)
    said = " ".join(text.split())
    assert f"roll back {checkout[:10]} -> {deployed[:10]} (back to the deployed commit; the checkout had moved)" in said, text
    assert re.search(f"{checkout[:10]}( │ |→){deployed[:10]}", text), text  # the summary row's from and to
    golden.check("rollback-checkout-moved", width, text)
