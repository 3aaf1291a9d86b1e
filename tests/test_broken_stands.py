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
    for _ in range(2):  # and again: it stands, whatever cron's polls find
        code, res = sandbox.result()
        assert (code, res["result"]) == (5, "broken"), res
        assert f"origin is at {bad[:10]}, which failed its gate" in res["message"], res
        assert "the last run left this host BROKEN" in res["message"] and "deploy or rollback" in res["message"]
        assert sandbox.state["last_result"] == "broken" and sandbox.head() == bad
    r = run_cli("monitor", "-i", inv, "-H", "local", "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "BROKEN" in json.dumps(json.loads(r.stdout)["hosts"]["local"]), r.stdout
    # a person's rollback ends it: back on the good commit, healthy, not broken
    r = run_cli("rollback", "-i", inv, "-H", "local", "--to", good, "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    code, res = sandbox.result()
    assert code in (0, 1) and res["result"] != "broken" and sandbox.state["last_result"] != "broken", res
