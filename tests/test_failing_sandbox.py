"""New-user trial (#24): monitor's and status' "behind T: updates failing"
names what cron cannot deploy now. On the local sandbox through the real
console script: (a) a deploy --ref aborted for a held port, then the port
freed, a restart and a local-update that skips origin's known-bad head;
(b) a cron run in restart backoff (broken on the deployed commit), then a
person's restart; (c) a rollback and an unpin, with origin at a known-bad
commit. Each ends with the warning naming the commit cron skips (exit 1),
and nothing stale in --json."""
import json

from tests.conftest import run_cli
from tests.test_port_held_sandbox import other_process  # noqa: F401 - a fixture


def _looked(sandbox):
    """(monitor's code, its findings, its deploy.failing; status' code, its failing)."""
    inv = str(sandbox.inventory)
    m = run_cli("monitor", "-i", inv, "-H", "local", "--json")
    host = json.loads(m.stdout)["hosts"]["local"]
    s = run_cli("status", "-i", inv, "-H", "local", "--json")
    st = json.loads(s.stdout)["hosts"]["local"]
    return m.returncode, [f["message"] for f in host["findings"]], host["deploy"]["failing"], s.returncode, st["failing"]


def _skips(sandbox, bad):
    code, findings, failing, scode, sfailing = _looked(sandbox)
    said = [f for f in findings if f.startswith(f"behind {bad[:10]}: updates skipped since ")]
    assert code == 1 and scode == 1, (code, scode, findings)
    assert len(said) == 1 and f"{bad[:10]} failed its gate before (bot died after starting" in said[0], findings
    assert said[0].endswith(", so cron skips it until origin moves"), said
    assert failing["target"] == bad and failing["result"] == "skipped_bad" and sfailing == failing, failing
    return findings


def test_a_freed_port_and_a_broken_backoff_leave_no_stale_warning(sandbox, other_process, monkeypatch):  # noqa: F811
    monkeypatch.delenv("CI", raising=False)
    inv = str(sandbox.inventory)
    sandbox.result()
    a = sandbox.origin.good("2")
    bad = sandbox.origin.crash("3")
    r = run_cli("deploy", "-i", inv, "-H", "local", "--json", timeout=180)
    assert json.loads(r.stdout)["hosts"]["local"]["result"] == "rolled_back", r.stdout + r.stderr
    deployed = sandbox.state["deployed"]
    # (a) a deploy --ref A while another process holds the port: aborted
    sandbox.stop()
    other = other_process(sandbox.port)
    r = run_cli("deploy", "-i", inv, "-H", "local", "--ref", a, timeout=180)
    assert r.returncode == 2 and sandbox.state["failing"]["target"] == a, r.stdout + r.stderr
    other.terminate()
    other.wait(10)
    r = run_cli("restart", "-i", inv, "-H", "local", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    code, res = sandbox.result("--trigger", "manual")
    assert (code, res["result"]) == (1, "skipped_bad"), res
    findings = _skips(sandbox, bad)
    assert not any("held by another process" in f or a[:10] in f for f in findings), findings
    # (b) cron in restart backoff: bot down, three restarts in the hour
    state = sandbox.state
    import time

    state["restarts"] = [time.time() - 60] * 3
    (sandbox.home / "state.json").write_text(json.dumps(state))
    sandbox.stop()
    code, res = sandbox.result()
    assert (code, res["result"]) == (5, "broken"), res
    r = run_cli("restart", "-i", inv, "-H", "local", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    # the backoff's broken run on the deployed commit left the held B's streak (trial 4: it replaced it,
    # and monitor was OK once the restart's verdict cleared the breakage, while cron still skipped B)
    assert sandbox.state["failing"]["target"] == bad and sandbox.state["deployed"] == deployed
    _skips(sandbox, bad)
    code, res = sandbox.result()
    assert (code, res["result"]) == (1, "skipped_bad"), res
    _skips(sandbox, bad)


def test_a_rollback_then_unpin_warns_of_the_known_bad_head(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    inv = str(sandbox.inventory)
    sandbox.result()
    sandbox.origin.good("2")
    assert sandbox.result()[1]["result"] == "deployed"
    bad = sandbox.origin.crash("3")
    assert sandbox.result()[1]["result"] == "rolled_back"
    assert sandbox.result()[1]["result"] == "skipped_bad"
    _skips(sandbox, bad)
    r = run_cli("rollback", "-i", inv, "-H", "local", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sandbox.result()[1]["result"] == "noop"  # pinned: cron stays
    r = run_cli("unpin", "-i", inv, "-H", "local")
    assert r.returncode == 0, r.stdout + r.stderr
    # before cron's next run: the rollback ended the record and unpin wrote
    # none, so status and monitor said OK (#24's trial); origin's head as
    # last fetched is the known-bad commit cron will skip: said now
    _holds_before_any_run(sandbox, bad)
    code, res = sandbox.result()
    assert (code, res["result"]) == (1, "skipped_bad"), res
    _skips(sandbox, bad)


def _holds_before_any_run(sandbox, bad):
    """monitor and status warn of origin's known-bad head (exit 1) with the
    words of a skipped_bad run's warning, before any run made one; the
    dry runs say what the real ones will do with it."""
    inv = str(sandbox.inventory)
    code, findings, failing, scode, sfailing = _looked(sandbox)
    head = f"behind {bad[:10]} (origin's head as last fetched): {bad[:10]} failed its gate before (bot died after"
    said = [f for f in findings if f.startswith(head)]
    assert code == 1 and scode == 1 and len(said) == 1, (code, scode, findings)
    assert said[0].endswith(", so cron skips it until origin moves"), said
    assert (failing["target"], failing["result"], failing["count"]) == (bad, "skipped_bad", 0), failing
    assert sfailing == failing, (sfailing, failing)
    for cols in ("80", "200"):
        s = run_cli("status", "-i", inv, "-H", "local", env={"COLUMNS": cols})
        assert s.returncode == 1 and head in " ".join(s.stdout.split()), s.stdout + s.stderr
        m = run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": cols})
        assert m.returncode == 1 and head in " ".join(m.stdout.replace("│", " ").split()), m.stdout + m.stderr
    r = run_cli("local-update", "-i", inv, "--trigger", "cron", "--dry-run", "--json")
    res = json.loads(r.stdout)["hosts"]["local"]
    assert (r.returncode, res["result"]) == (1, "skipped_bad"), r.stdout + r.stderr
    assert f"origin is at {bad[:10]}, which failed its gate" in res["message"], res
    r = run_cli("deploy", "-i", inv, "-H", "local", "--dry-run")
    joined = " ".join(r.stdout.split())
    assert f"{bad[:10]} failed its gate before (bot died after" in joined, r.stdout + r.stderr
    assert "so cron skips it; this deploy tries it again" in joined, r.stdout
