"""A hold's words and its row agree on where it stays (review3 #11): with
the checkout moved (deployed A, HEAD B), a hold's row (skipped_bad,
deferred) shows from B (Plan.from_, what the history and status show)
while its message said `staying on A`. The hold touches nothing: it stays
where the checkout is and says so."""
import pytest

from fabops.host.plan import plan
from tests.test_plan import HOST, parse_row


@pytest.mark.parametrize("row, result, says", [
    ("cron | dep=A bad=B | o=B h=B | hold", "skipped_bad",
     "staying on B where the checkout is (not the deployed A) until origin moves"),
    ("cron | dep=A bad=C | o=C h=B | hold", "skipped_bad",
     "staying on B where the checkout is (not the deployed A) until origin moves"),
    ("cron | dep=A retry=B | o=B h=B | hold", "deferred", "staying on B where the checkout is (not the deployed A)"),
    ("cron | dep=A bad=B | o=B h=A | hold", "skipped_bad", "; staying on A until origin moves"),  # not moved
    ("cron | dep=A retry=B | o=B h=A | hold", "deferred", "; staying on A"),
])
def test_a_hold_says_where_its_row_says_it_is(row, result, says):
    st, facts, opts, _ = parse_row(row)
    got = plan(HOST, st, facts, opts)
    assert (got.kind, got.result) == ("hold", result), got
    assert got.message.endswith(says), got.message
    assert f"staying on {got.from_}" in got.message, (got.from_, got.message)
