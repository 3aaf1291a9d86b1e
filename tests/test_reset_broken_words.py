"""#24's fresh-clone trial, item 4: after `reset` onto a commit that
crashes (exit 5, BROKEN), monitor said "`inv deploy -H local` deploys the
branch's head", though that head is the commit that just broke the host,
and status and monitor kept the failing-updates line's "rolled back to X,
healthy" beside "bot is down". A checkout known bad gets no advice to
deploy it again (monitor.checkout_moved_text: a rollback, or a deploy of a
fixed commit), and "healthy" is dropped once a later run broke the host
(monitor.failing_words)."""
import json

import pytest

from fabops.monitor import checkout_moved_text, failing_words
from tests import test_golden as golden
from tests.conftest import ROOT
from tests.test_golden import WIDTHS, check
from tests.test_monitor_checkout_moved import DEPLOYED, MOVED, _facts, _panel

frozen = golden.frozen


def test_a_known_bad_checkout_is_not_suggested_again():
    plain = checkout_moved_text(DEPLOYED, MOVED, "local")
    assert plain.endswith("`fabops deploy -H local` deploys the branch's head"), plain
    said = checkout_moved_text(DEPLOYED, MOVED, "local", bad=(MOVED,))
    assert "branch's head" not in said and "`fabops deploy -H local --ref COMMIT` deploys a fixed one" in said, said
    assert f"{MOVED[:10]} failed to start before" in said and "rollback -H local --to" in said, said


def test_healthy_is_dropped_once_a_later_run_broke_the_host():
    failing = {"target": MOVED, "result": "rolled_back", "count": 1,
               "reason": f"gate: bot died; rolled back to {DEPLOYED[:10]}, healthy"}
    assert failing_words(failing, None)[2].endswith(", healthy")
    why = failing_words(failing, None, "broken")[2]
    assert why.endswith(f"rolled back to {DEPLOYED[:10]}"), why


@pytest.mark.parametrize("width", WIDTHS)
def test_the_panel_after_a_broken_reset(width, frozen, capsys, monkeypatch):
    from fabops import monitor

    facts, host = _facts(MOVED, "broken")
    facts["deploy"]["bad"] = [MOVED]  # the reset marked the commit it crashed on (maintenance/reset.py)
    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    facts = monitor.judged(facts, host, case["now"])  # judged again, as _facts judged it, with the mark
    text = _panel(capsys, monkeypatch, width, facts, host)
    said = " ".join(text.replace("│", " ").split())
    assert "branch's head" not in said and "deploys a fixed one" in said, text
    check("monitor-checkout-moved-bad", width, text)
