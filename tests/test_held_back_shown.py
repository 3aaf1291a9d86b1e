"""New-user trial (#24): after a deploy of C crashed and was rolled back
(C on state's known-bad list), a `rollback` and an `unpin`, `status` and
`monitor` said OK, exit 0, with no "behind" line, until cron's next run
recorded `skipped_bad`: the rollback's deploy had ended the `failing`
record and unpin writes none, while cron could not move. Both now read the
branch's head as the checkout last fetched it (no fetch) and warn of a
known-bad one cron will hold back (host/state.held_back, through
failing_of: one rule), exit 1, in the words of the warning after a
skipped_bad run. Panels at 80 and 200 columns; on the sandbox:
tests/test_failing_sandbox.py."""
import pytest

from tests import test_golden as golden
from tests.test_golden import NOW, WIDTHS, check, render
from tests.test_monitor_panel_hangs import _facts

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still
DEPLOYED = "9faf75dc81d6ccc9c0a8cf6ca23bc3e19101dfed"  # process_recorded.json's
C = "c0ffee0123456789abcdef0123456789abcdef01"
REASON = "bot died 1 s after passing its gate: its process is gone"


def _state(**more):
    return {"deployed": DEPLOYED, "bad": {C: {"at": NOW - 600, "reason": REASON}}, **more}


@pytest.mark.parametrize("state, origin, held", [
    (_state(), C, True),  # the trial's: nothing recorded, origin at the bad C
    (_state(), None, False),  # origin not read: nothing guessed
    (_state(), DEPLOYED, False),  # on it: nothing behind
    (_state(pin=DEPLOYED), C, False),  # pinned: cron keeps the pin whatever origin is
    (_state(bad={}), C, False),  # not known bad: cron deploys it
    # a record a run wrote stands, and says since when (the held one has no run yet)
    (_state(failing={"target": C, "result": "rolled_back", "reason": REASON, "since": NOW, "count": 1}), C, False),
    # a record whose cause is gone gives way to what cron will hold back
    (_state(failing={"target": DEPLOYED, "result": "aborted", "reason": "x", "since": NOW, "count": 1}), C, True),
])
def test_the_one_rule(state, origin, held):
    from fabops.host.state import failing_of
    from fabops.remote import status_code

    failing = failing_of(state, origin)
    if held:
        assert failing == {"target": C, "result": "skipped_bad", "reason": REASON, "since": None, "count": 0,
                           "last": None}, failing
    else:
        assert failing is None or failing.get("count") != 0, failing
    # status' exit code reads the parsed data (failing already judged), as monitor's evaluate does
    data = {"services": [], "deployed": DEPLOYED, "failing": failing}
    assert status_code(data) == (1 if failing else 0)


def test_monitor_warns_in_the_words_of_a_skipped_run():
    from fabops import errors
    from tests.conftest import json_schema
    import jsonschema

    facts, _ = _facts(bad=[C], origin=C)
    dep = facts["deploy"]
    assert dep["origin"] == C and dep["failing"]["count"] == 0, dep
    said = [f for f in facts["findings"] if f["message"].startswith(f"behind {C[:10]}")]
    assert facts["code"] == errors.WARNING and said == [{
        "level": "WARNING",
        "message": f"behind {C[:10]} (origin's head as last fetched): {C[:10]} failed its gate before "
                   "(bot died after starting), so cron skips it until origin moves"}], facts["findings"]
    jsonschema.validate(facts, json_schema("facts"))
    # origin on the deployed commit, or not read: OK, as before
    assert _facts(bad=[C], origin=DEPLOYED)[0]["code"] == errors.OK
    assert _facts(bad=[C])[0]["deploy"]["origin"] is None


@pytest.mark.parametrize("width", WIDTHS)
def test_its_panels(width, frozen, capsys, monkeypatch):
    from fabops.host.state import failing_of
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console, status_panel

    facts, host = _facts(bad=[C], origin=C)
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    data = {"services": [], "deployed": DEPLOYED, "deployed_at": NOW - 3600, "head": DEPLOYED,
            "last_check": NOW - 60, "last_result": "noop", "bad": [C], "origin": C,
            "failing": failing_of(_state(), C)}
    status = render(capsys, monkeypatch, width, status_panel, "sandbox", data)
    words = f"behind {C[:10]} (origin's head as last fetched): {C[:10]} failed its watch before ({REASON})"
    assert words in " ".join(status.split()), status
    assert "behind c0ffee0123 (origin's head as last fetched): c0ffee0123 failed its gate before" in \
        " ".join(text.replace("│", " ").split()), text
    check("held-back", width, text + status)
