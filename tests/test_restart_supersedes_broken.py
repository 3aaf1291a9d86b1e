"""Trial #24: after `restart` said `✓ bot ready` and `health` said OK,
`status` still said `last check …: broken` (exit 2) and monitor `the last
update ended BROKEN: a person is needed`, until a no-op deploy. A person's
restart that brings every service up is recorded as a run is (history and
state.json's merge), so its verdict supersedes the broken one; it is no
update check, so state.json's last check and its result stay the last
update check's (host/state.verdict_of)."""
import json

from fabops.host.state import host_result
from tests.conftest import one, run_cli


def test_a_restart_that_brings_every_service_up_clears_broken(sandbox):
    code, _ = sandbox.result()
    assert code == 0
    inv = str(sandbox.inventory)
    state = sandbox.state
    state["last_result"] = "broken"  # a run that ended broken, as the trial's crash loop left it
    (sandbox.home / "state.json").write_text(json.dumps(state))
    sandbox.stop()
    r = run_cli("status", "-i", inv, "-H", "local", env={"COLUMNS": "200"})
    assert r.returncode == 2 and "broken" in r.stdout, r.stdout

    r = run_cli("restart", "-i", inv, "-H", "local")
    assert r.returncode == 0 and "✓" in r.stdout, r.stdout + r.stderr
    r = run_cli("status", "-i", inv, "-H", "local", env={"COLUMNS": "200"})
    # the update check's own result stays what it was, and the restart's verdict is said under it
    assert r.returncode == 0 and "restart by " in r.stdout and "healthy again" in r.stdout, r.stdout
    r = run_cli("monitor", "-i", inv, "-H", "local", "--json")
    facts = one(r.stdout)
    assert not [f for f in facts["findings"] if "BROKEN" in f["message"]], facts["findings"]
    last = sandbox.history()[-1]
    assert (last["trigger"], last["result"], last["to"]) == ("restart", "deployed", state["deployed"]), last
    after = sandbox.state
    assert host_result(after) == "deployed", after
    # no update check ran: its time and result are the last check's (#24)
    assert (after["last_check"], after["last_result"]) == (state["last_check"], "broken"), after



def test_a_restart_elsewhere_than_the_deployed_commit_stays_broken(sandbox):
    """The checkout is not on the deployed commit (a broken reset can leave
    it so): a restart would start that checkout, not the deployed commit,
    so it refuses (exit 2, nothing restarted, nothing recorded: #24, the
    way out is a rollback or a deploy: tests/test_restart_checkout_moved.py)
    and BROKEN stays."""
    code, _ = sandbox.result()
    assert code == 0
    inv = str(sandbox.inventory)
    state = sandbox.state
    state.update(last_result="broken", deployed="0" * 40)
    (sandbox.home / "state.json").write_text(json.dumps(state))
    runs = len(sandbox.history())
    sandbox.stop()
    r = run_cli("restart", "--dry-run", "-i", inv, "-H", "local")
    assert r.returncode == 2 and "would stop: the checkout is at" in r.stdout and "record" not in r.stdout, r.stdout
    r = run_cli("restart", "-i", inv, "-H", "local")
    assert r.returncode == 2 and "✓" not in r.stdout and "the checkout is at" in r.stderr, r.stdout + r.stderr
    assert sandbox.state["last_result"] == "broken" and len(sandbox.history()) == runs
    r = run_cli("status", "-i", inv, "-H", "local", env={"COLUMNS": "200"})
    assert r.returncode == 2 and "broken" in r.stdout, r.stdout


def test_a_restart_of_a_healthy_host_says_healthy_not_healthy_again(sandbox):
    """#24: a restart of a host nothing was wrong with was recorded as
    'restarted bot at X; healthy again': "again" claims a recovery. Only a
    host whose verdict was broken is healthy again (host/record.healthy_again)."""
    code, _ = sandbox.result()
    assert code == 0
    r = run_cli("restart", "-i", str(sandbox.inventory), "-H", "local")
    assert r.returncode == 0 and "✓" in r.stdout, r.stdout + r.stderr
    last = sandbox.history()[-1]
    assert last["trigger"] == "restart" and last["message"].endswith("; healthy"), last
    assert "again" not in last["message"] and "again" not in sandbox.state["verdict"]["message"], last
