"""Trial #24: after a run ended broken, `health --fix` (cron's line) found
every service healthy again, yet `monitor` kept saying `the last update
ended BROKEN` and `status` exited 2, until a deploy. A --fix run that finds
every service healthy on the deployed commit records that as a person's
`restart` does (host/record.healthy_again): one history record, once; a
run that finds nothing changed writes no history line and leaves
state.json as it is. On the local sandbox through the real `fabops`
console script: cron's own path (host/fastpath.py) and the full program
(tasks/health.py, as from a laptop)."""
import json

import pytest

from fabops.host.state import host_result
from fabops.shortsha import short_sha
from tests.conftest import one, run_cli

PATHS = [pytest.param({}, id="cron-fastpath"), pytest.param({"FABOPS_FASTPATH": "0"}, id="full-program")]


def _broken(sandbox, deployed=None):
    """A deployed sandbox, its services up, whose state says the last run ended broken."""
    code, _ = sandbox.result()
    assert code == 0
    state = sandbox.state
    state["last_result"] = "broken"  # as a crash loop past the restart budget left it
    if deployed:
        state["deployed"] = deployed
    (sandbox.home / "state.json").write_text(json.dumps(state))
    return state


@pytest.mark.parametrize("env", PATHS)
def test_a_healthy_fix_run_clears_broken_once(sandbox, env):
    state = _broken(sandbox)
    inv = str(sandbox.inventory)
    runs = len(sandbox.history())
    r = run_cli("status", "-i", inv, "-H", "local")
    assert r.returncode == 2 and "broken" in r.stdout, r.stdout

    # a plain health is a read: it clears nothing
    r = run_cli("health", "-i", inv, "-H", "local", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sandbox.state["last_result"] == "broken" and len(sandbox.history()) == runs

    r = run_cli("health", "--fix", "--dry-run", "--json", "-i", inv, "-H", "local", env=env)
    would = [(w["action"], w["target"]) for w in one(r.stdout)["would"]]
    assert ("record", "history") in would, r.stdout
    assert sandbox.state["last_result"] == "broken" and len(sandbox.history()) == runs

    r = run_cli("health", "--fix", "-i", inv, "-H", "local", env={**env, "COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    said = " ".join(r.stdout.split())
    assert f"the host is no longer broken (on the deployed {short_sha(state['deployed'])})" in said, r.stdout
    after = sandbox.state
    assert host_result(after) == "deployed", after
    # no update check: its time and result stay the last one's, the verdict is the fix's own (#24)
    assert (after["last_check"], after["last_result"]) == (state["last_check"], "broken"), after
    assert (after["verdict"]["trigger"], after["verdict"]["check"]) == ("health", state["last_check"]), after
    last = sandbox.history()[-1]
    assert len(sandbox.history()) == runs + 1
    assert (last["trigger"], last["result"], last["from"], last["to"]) == ("health", "deployed", state["deployed"],
                                                                           state["deployed"]), last
    assert last["message"] == f"every service healthy at {short_sha(state['deployed'])} again", last
    # the health run's own duration (its look, the checkout's commit, the lock), never a 0 ms it did not take
    assert last["duration"] > 0, last
    r = run_cli("history", "-i", inv, "-H", "local", env={"COLUMNS": "80"})
    row = [line for line in r.stdout.splitlines() if " health " in line]
    assert row and not row[-1].endswith(" 0 ms"), r.stdout
    r = run_cli("status", "-i", inv, "-H", "local", env={"COLUMNS": "200"})
    # the check's own `broken`, and under it the fix that judged the host since, as what it was
    fixed = f"health --fix by {last['actor']} "
    assert r.returncode == 0 and fixed in r.stdout and "every service healthy at" in r.stdout, r.stdout
    facts = one(run_cli("monitor", "-i", inv, "-H", "local", "--json").stdout)
    assert not [f for f in facts["findings"] if "BROKEN" in f["message"]], facts["findings"]
    assert facts["deploy"]["verdict"]["trigger"] == "health", facts["deploy"]
    r = run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": "200"})
    assert fixed in r.stdout and "last update check" in r.stdout, r.stdout

    # cron's next run: nothing changed, so no history line and state.json
    # untouched but for the run's metrics count (docs/metrics.md)
    before = {k: v for k, v in sandbox.state.items() if k != "metrics"}
    r = run_cli("health", "--fix", "--quiet", "-i", inv, "-H", "local", env=env)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert len(sandbox.history()) == runs + 1
    assert {k: v for k, v in sandbox.state.items() if k != "metrics"} == before


def test_healthy_elsewhere_than_the_deployed_commit_stays_broken(sandbox):
    """The checkout is not on the deployed commit (a broken reset can leave
    it so): its services being healthy says nothing of the deployed
    commit, so BROKEN stays, and nothing is recorded."""
    _broken(sandbox, deployed="0" * 40)
    runs = len(sandbox.history())
    r = run_cli("health", "--fix", "-i", str(sandbox.inventory), "-H", "local")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no longer broken" not in r.stdout, r.stdout
    assert sandbox.state["last_result"] == "broken" and len(sandbox.history()) == runs


@pytest.mark.parametrize("width", (80, 200))
def test_the_dry_run_says_the_record_it_would_write(sandbox, width):
    """`health --fix --dry-run` on a broken host whose services are healthy,
    at 80 and 200 columns (the deployed commit spelled as a placeholder of
    its length: each sandbox's commit differs), and it writes nothing."""
    from tests.test_golden import check
    from tests.test_piped_output import trailing

    state = _broken(sandbox)

    def written():  # fabops' files (the service's own log has the checks' request lines)
        return {p: p.read_bytes() for p in sorted(sandbox.home.rglob("*"))
                if p.is_file() and not (p.parent.name == "services" and p.suffix == ".log")}

    before = written()
    r = run_cli("health", "--fix", "--dry-run", "-i", str(sandbox.inventory), "-H", "local",
                env={"COLUMNS": str(width)})
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr
    assert not trailing(r.stdout)
    check("health-fix-dry-run-broken", width, r.stdout.replace(short_sha(state["deployed"]), "DEPLOYED10"))
    assert written() == before
