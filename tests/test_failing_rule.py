"""What "behind T: updates failing" says (new-user trial, #24): state.json's
`failing` names what cron cannot deploy now. The write rule
(host/state.failing_after, Recorder.settle's) and the read rule
(host/state.failing_of, monitor's and status') as tables, and the words
monitor and status say for each (monitor.failing_words)."""
import pytest

from fabops.host.state import failing_after, failing_of

A, B, D = "a" * 40, "b" * 40, "d" * 40
OLD = {"target": A, "result": "aborted", "reason": "port 3013 is held", "since": 10.0, "count": 2, "last": 20.0}


@pytest.mark.parametrize("result,target,deployed,expect", [
    # a failure of the same target goes on with its streak; another's replaces it
    ("aborted", A, D, {"target": A, "result": "aborted", "since": 10.0, "count": 3}),
    ("rolled_back", B, D, {"target": B, "result": "rolled_back", "since": 99.0, "count": 1}),
    # a hold names what it holds back, superseding an older target's failure
    ("skipped_bad", B, D, {"target": B, "result": "skipped_bad", "since": 99.0, "count": 1}),
    ("deferred", A, D, {"target": A, "result": "deferred", "since": 10.0, "count": 3}),
    # a broken run on the deployed commit (restart backoff) leaves another target's streak: cron still holds
    # that one back (trial 4: B's streak was replaced, and monitor OK once a restart cleared the verdict)
    ("broken", D, D, OLD),
    ("aborted", D, D, OLD),
    # converged: no failing
    ("deployed", B, B, None),
    ("noop", D, D, None),
    # said nothing of a target: left as it was
    ("locked", B, D, OLD),
    ("superseded", B, D, OLD),
])
def test_failing_after(result, target, deployed, expect):
    got = failing_after(dict(OLD), result, target, deployed, "why", 99.0)
    if expect is None or expect is OLD:
        assert got == expect
    else:
        assert {k: got[k] for k in expect} == expect and got["last"] == 99.0, got
        assert got["reason"] == ("why" if result not in ("locked", "superseded") else OLD["reason"])


def test_a_broken_run_on_the_deployed_commit_with_no_streak_is_recorded():
    # nothing to keep: recorded, and failing_of drops it (its target is deployed)
    got = failing_after(None, "broken", D, D, "why", 99.0)
    assert got["target"] == D and got["result"] == "broken" and failing_of({"deployed": D, "failing": got}) is None


@pytest.mark.parametrize("state,shown", [
    ({"deployed": D, "failing": OLD}, True),
    ({"deployed": A, "failing": OLD}, False),  # its target deployed
    ({"deployed": D, "failing": None}, False),
    ({"deployed": D, "failing": "junk"}, False),  # a hand edit
    # a broken run's record while the host's verdict is broken: shown; once a
    # restart's verdict stands (same last_check), dropped
    ({"deployed": D, "last_result": "broken", "last_check": 5.0,
      "failing": dict(OLD, target=B, result="broken")}, True),
    ({"deployed": D, "last_result": "broken", "last_check": 5.0,
      "verdict": {"result": "deployed", "check": 5.0}, "failing": dict(OLD, target=B, result="broken")}, False),
    # a verdict an update check has ended does not count: broken again
    ({"deployed": D, "last_result": "broken", "last_check": 6.0,
      "verdict": {"result": "deployed", "check": 5.0}, "failing": dict(OLD, target=B, result="broken")}, True),
    ({"deployed": D, "verdict": {"result": "deployed", "check": None},
      "failing": dict(OLD, target=B, result="skipped_bad")}, True),
])
def test_failing_of(state, shown):
    assert (failing_of(state) is not None) == shown


def test_the_words_for_a_hold_a_retry_and_a_failure():
    from fabops.monitor import failing_words

    verb, last, why = failing_words(dict(OLD, target=B, result="skipped_bad", reason="bot died after starting"), None)
    assert (verb, last) == ("skipped", "")
    assert why == f"{B[:10]} failed its gate before (bot died after starting), so cron skips it until origin moves"
    verb, last, why = failing_words(dict(OLD, result="deferred", reason="npm ci failed"),
                                    {"target": A, "next_at": 1e9})
    assert verb == "deferred" and why.startswith("its dependency rule failed (npm ci failed); next try "), why
    # a failed before_restart hook is said as the hook, not as a dependency rule (trial)
    verb, last, why = failing_words(dict(OLD, result="deferred", reason="the before_restart hook failed (timed out "
                                         "after 2 s)"), {"target": A, "next_at": 1e9})
    assert why.startswith("its before_restart hook failed (timed out after 2 s); next try "), why
    verb, last, why = failing_words(OLD, None)
    assert (verb, last, why) == ("failing", ", last aborted", "port 3013 is held")


def test_status_and_monitor_judge_alike():
    from fabops import errors, inventory
    from fabops.monitor import evaluate
    from fabops.remote import status_code

    h = inventory.loads("hosts:\n  h:\n    app: {path: /srv/app}\n    services: []\n", "h.yml").hosts["h"]
    for failing, code in ((dict(OLD, target=B, result="skipped_bad"), errors.WARNING),
                          (dict(OLD, target=D, result="broken"), errors.OK)):
        dep = {"deployed": D, "failing": failing, "last_result": "skipped_bad", "last_check": 1.0}
        assert evaluate({"services": [], "deploy": dep}, h, now=2.0)[0] == code
        assert status_code({"services": [], **dep}) == code


def test_a_bad_target_has_no_next_try():
    """Trial: after B was marked bad (skipped_bad), status and monitor
    still said `next try HH:MM` from an older retry record for B. The
    run's settle drops that record; the words never say it for a bad one."""
    from fabops.host.record import Recorder, RunResult
    from fabops.host.state import State
    from fabops.monitor import failing_words

    retry = {"target": B, "next_at": 1e9, "attempts": 1, "reason": "npm ci failed"}
    rolled = dict(OLD, target=B, result="rolled_back", reason="bot died after starting")
    assert "next try" in failing_words(rolled, retry)[2]
    assert "next try" not in failing_words(rolled, retry, None, [B])[2]
    assert "next try" not in failing_words(rolled, retry, None, {B: {"reason": "gate"}})[2]

    saved = []
    st = State(retry=dict(retry), bad={B: {"reason": "gate", "at": 1.0}})
    res = RunResult(result="skipped_bad", run_id="r1", trigger="cron", actor="cron", from_=A, to=B)
    Recorder(None, None, res, lambda s, **kw: saved.append(s), lambda sha: (), lambda: st).settle(st)
    assert st.retry is None and saved == [st]
    st = State(retry=dict(retry), bad={})  # a target not bad keeps its retry
    res = RunResult(result="deferred", run_id="r2", trigger="cron", actor="cron", from_=A, to=B)
    Recorder(None, None, res, lambda s, **kw: None, lambda sha: (), lambda: st).settle(st)
    assert st.retry == retry
