"""New-user trial (#24): after a reset onto a commit whose services did
not come up, the checkout is off the deployed commit. status and monitor
advised "`inv restart -H local` restarts it now" and `restart --dry-run`
said it would record the verdict, but a restart started the bad checkout
again (exit 2, "bot died after starting"). The way out is a rollback or
a deploy: the restart refuses (exit 2, nothing restarted), its dry run
says the same `would stop:` line, and status and monitor give the same
words (monitor.checkout_moved_text). On the local sandbox through the
real console script."""
import json
import time

from tests.conftest import run_cli
from tests.test_reset_known_bad import _crashed_and_remembered


def test_a_restart_off_the_deployed_commit_says_rollback_or_deploy(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    good, bad = _crashed_and_remembered(sandbox)
    inv = str(sandbox.inventory)
    r = run_cli("reset", "-i", inv, "-H", "local", "--yes", timeout=180)
    assert r.returncode == 5 and sandbox.head() == bad, r.stdout + r.stderr
    # the checkout is the commit that just crashed, marked bad: no advice to deploy the branch's head (that
    # same commit) again, but a fixed one (#24's fresh-clone trial)
    words = (f"the checkout is at {bad[:10]}, not the deployed {good[:10]}, so a restart would start {bad[:10]} "
             f"again; {bad[:10]} failed to start before; `fabops rollback -i {inv} -H local --to {good[:10]}` goes "
             f"back to {good[:10]}, `fabops deploy -i {inv} -H local --ref COMMIT` deploys a fixed one")
    # the restart budget spent, bot down: status and monitor give the way out, not `restart`
    state = sandbox.state
    state["restarts"] = [time.time() - 60] * 3
    (sandbox.home / "state.json").write_text(json.dumps(state))
    m = run_cli("monitor", "-i", inv, "-H", "local", "--json")
    findings = [f["message"] for f in json.loads(m.stdout)["hosts"]["local"]["findings"]]
    backoff = [f for f in findings if f.startswith("restart backoff:")]
    assert len(backoff) == 1 and backoff[0].endswith(words) and "restarts it now" not in backoff[0], findings
    s = run_cli("status", "-i", inv, "-H", "local", env={"COLUMNS": "400"})
    assert words in " ".join(s.stdout.split()) and "restarts it now" not in s.stdout, s.stdout
    for cols in ("80", "200"):
        dry = run_cli("restart", "-i", inv, "-H", "local", "--dry-run", env={"COLUMNS": cols})
        assert dry.returncode == 2, dry.stdout + dry.stderr
        said = " ".join(dry.stdout.replace(" \\\n", " ").split())  # a long command's lines end in ` \`
        assert f"would stop: {words}" in said and "record" not in said, dry.stdout
    pid = sandbox.pid() if (sandbox.home / "services" / "bot.pid").exists() else None
    r = run_cli("restart", "-i", inv, "-H", "local", "--json")
    assert r.returncode == 2 and words in " ".join((r.stdout + r.stderr).split()), r.stdout + r.stderr
    assert sandbox.head() == bad and not [h for h in sandbox.history() if h.get("trigger") == "restart"]
    if pid is not None:  # nothing was restarted
        assert (sandbox.home / "services" / "bot.pid").read_text().split()[0] == str(pid)
    # the advice works as written: back on the good commit, and a restart restarts again
    r = run_cli("rollback", "-i", inv, "-H", "local", "--to", good[:10], "--json", timeout=180)
    assert r.returncode == 0 and sandbox.head() == good, r.stdout + r.stderr
    dry = run_cli("restart", "-i", inv, "-H", "local", "--dry-run")
    assert dry.returncode == 0 and "would restart" in dry.stdout, dry.stdout + dry.stderr
