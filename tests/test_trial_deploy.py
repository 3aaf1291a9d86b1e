"""Trial findings on deploy and rollback (2026-12-06), each on the local
sandbox through the real `fabops` console script: an unknown --ref is a
usage error naming the ref (#13), `--no-watch` reports the time it took
(#4), rollback's dry run says its fetch and its pin once (#12)."""
import json
import re

from tests.conftest import run_cli


def test_an_unknown_ref_is_a_usage_error_naming_it(sandbox):
    """Trial #13: a deploy (and its dry run) to a ref origin does not have
    exited 2 with a failed fetch step whose message was the fetch's
    success (`origin/main is …`). It is a bad flag value: exit 64, one
    line naming the ref, and no run recorded on the host."""
    sandbox.result()
    before = sandbox.history()
    want = "--ref nosuchref: no such branch, tag or commit on origin"
    r = sandbox.update("--ref", "nosuchref", "--trigger", "deploy")
    res = json.loads(r.stdout)["hosts"]["local"]
    assert (r.returncode, res["exit_code"], res["message"]) == (64, 64, want), r.stdout
    fetch = [s for s in res["steps"] if s["name"] == "fetch"]
    assert fetch == [dict(fetch[0], ok=False, message=want)], res["steps"]
    assert sandbox.history() == before  # a mistyped flag is no run of the host's
    for dry in ((), ("--dry-run",)):
        r = run_cli("deploy", "-i", str(sandbox.inventory), "-H", "local", "--ref", "nosuchref", *dry,
                    env={"COLUMNS": "80"})
        assert r.returncode == 64, (dry, r.stdout, r.stderr)
        assert f"fabops: local: {want}\n" in r.stderr, (dry, r.stderr)
        assert "origin/main is" not in r.stdout + r.stderr and "would_abort" not in r.stdout, (dry, r.stdout)


def test_no_watch_reports_the_time_it_took(sandbox):
    """Trial #4: `deploy --no-watch` said `0 ms` in its summary (its gate
    took 0.79 s): its duration is the run's, from its start to its watch."""
    from tests.test_watch_lock import long_watch

    sandbox.result()
    long_watch(sandbox, "3s")
    sandbox.origin.good("2")
    r = run_cli("deploy", "-i", str(sandbox.inventory), "-H", "local", "--no-watch", "--json")
    res = json.loads(r.stdout)["hosts"]["local"]
    assert (r.returncode, res["result"], res["watching"]) == (0, "deployed", True), r.stdout + r.stderr
    gate = sum(s["seconds"] for s in res["steps"])
    assert gate > 0 and res["duration"] >= gate, res
    # the host watches on: its run ends before the sandbox goes
    wait_for_record(sandbox, res["run_id"])


def wait_for_record(sandbox, run_id: str, timeout: float = 60) -> dict:
    """Poll the history until run `run_id` has its record."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [h for h in sandbox.history() if h.get("run_id") == run_id]
        if done:
            return done[-1]
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} left no record")


def test_rollback_dry_run_says_its_fetch_and_its_pin_once(sandbox):
    """Trial #12: rollback's dry run printed `fetch … <40 hex> is <12 hex>`,
    and two pin lines, one giving `--ref` as the reason though nobody
    passed --ref (a rollback pins by itself)."""

    sandbox.result()
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    code, res = sandbox.result()
    # trial #20: `clean; 1 files changed`
    assert [s["message"] for s in res["steps"] if s["name"] == "preflight"] == ["clean; 1 file changed"], res
    checks = [re.search(r"\((\d+) HTTP (checks?)\)$", s["message"]) for s in res["steps"]
              if s["name"] == "restart bot"]
    assert checks and checks[0] and (checks[0][1] == "1") == (checks[0][2] == "check"), res["steps"]
    inv = str(sandbox.inventory)
    r = run_cli("rollback", "-i", inv, "-H", "local", "--dry-run", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    # the host's planner picks the commit (issue #24: host/plan.rollback_target), no --ref to resolve
    assert "fetch (" in out and f"would checkout {v1[:10]}" in out, out
    assert not re.search(r"[0-9a-f]{40}", out), out
    # the plan's lines, which the summary row follows (issue #24)
    plan = out[:out.index("\nrollback\n")]
    pins = [line for line in re.sub(r"\n +", "\n", plan).replace("\n", " ").split("[local]") if "pin" in line]
    # the way out with the run's -i (issue #24), however 80 columns cut the long path
    assert len(pins) == 1 and f"would pin {v1[:10]}: rollback: cron stays on it until `fabops unpin -i" in pins[0], out
    assert "".join(pins[0].split()).endswith("".join(f"{inv} -H local` (once its gate and watch pass)".split())), out
    assert "--ref" not in out, out
