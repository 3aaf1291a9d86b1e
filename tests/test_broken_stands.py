"""Trial (#24, fresh-eyes trial 3, item 1): a reset onto a commit that does
not come up ends BROKEN (exit 5), its checkout off the deployed commit.
The next cron run held ("skipped_bad", exit 1), said nothing of the dead
service, and wrote its own result over BROKEN, so monitor's "a person is
needed" line went away while the service stayed down. A hold changes
nothing, so the verdict stands: cron's run says it, exit 5, and monitor
still shows it. On the local sandbox through the real console script."""
import json

from tests.conftest import run_cli
from tests.test_reset_known_bad import _crashed_and_remembered


def test_a_hold_never_hides_a_broken_reset(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    good, bad = _crashed_and_remembered(sandbox)
    inv = str(sandbox.inventory)
    r = run_cli("reset", "-i", inv, "-H", "local", "--yes", timeout=180)
    assert r.returncode == 5 and "broken: reset to" in r.stdout, r.stdout + r.stderr
    assert sandbox.head() == bad and sandbox.state["last_result"] == "broken"
    # its dry run gives the real run's result and code, and says the record
    # it would make (#24's trial: `would_abort: would stop: …`, exit 2)
    before, runs = sandbox.state, len(sandbox.history())
    code, res = sandbox.result("--dry-run")
    assert (code, res["result"], res["exit_code"]) == (5, "would_break", 5), res
    assert res["message"].startswith(f"would record broken: origin is at {bad[:10]}, which failed its gate"), res
    # the reset recorded its BROKEN: the real run only keeps it in state.json (no history line)
    assert [(w["action"], w["target"]) for w in res["plan"]["would"]] == [("record", "state.json")], res
    assert sandbox.state == before and len(sandbox.history()) == runs  # it wrote nothing
    r = run_cli("local-update", "-i", inv, "--trigger", "cron", "--dry-run", env={"COLUMNS": "200"})
    assert r.returncode == 5 and "local: would_break: would record broken: origin is at" in r.stdout + r.stderr, r
    runs = len(sandbox.history())
    for _ in range(2):  # and again: it stands, whatever cron's polls find
        code, res = sandbox.result()
        assert (code, res["result"]) == (5, "broken"), res
        assert f"origin is at {bad[:10]}, which failed its gate" in res["message"], res
        assert "the last run left this host BROKEN" in res["message"] and "deploy or rollback" in res["message"]
        assert sandbox.state["last_result"] == "broken" and sandbox.head() == bad
    # the reset recorded and notified it: the polls add no history line (review: one every 5 minutes hid
    # every other run), and a backup's record since is no verdict: it is still the reset's BROKEN
    assert len(sandbox.history()) == runs, sandbox.history()[runs:]
    assert run_cli("backup", "-i", inv, "-H", "local").returncode == 0
    r = run_cli("monitor", "-i", inv, "-H", "local", "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    said = [f["message"] for f in json.loads(r.stdout)["hosts"]["local"]["findings"]]
    # with the way out in the tool's own commands (#24)
    assert any(m.startswith("the last reset ended BROKEN: a person is needed: ") and " rollback " in m
               for m in said), said
    # a person's rollback ends it: back on the good commit, healthy, not broken
    r = run_cli("rollback", "-i", inv, "-H", "local", "--to", good, "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    code, res = sandbox.result()
    assert code in (0, 1) and res["result"] != "broken" and sandbox.state["last_result"] != "broken", res
