"""A failure reason as an older fabops stored it (issue #24): state.json's
`failing` and `retry` reasons spelled their commit with 12 characters
(`6ccd907a404e failed (…)`) while every screen now spells one with 10
(fabops/shortsha.py). status and monitor show a stored reason's leading
commit as every screen does when it is a prefix of the commit the record
names; the stored text and --json keep what the host wrote."""
import json
import time

from fabops.shortsha import respelled, short_sha
from tests.test_status_state import SHA, host, status  # noqa: F401 - the fixture

LEGACY = f"{SHA[:12]} failed (bot died 3.1 s after start)"
NOW = f"{SHA[:10]} failed (bot died 3.1 s after start)"
OTHER = "f" * 40


def test_a_leading_prefix_of_the_recorded_commit_is_respelled():
    assert respelled(LEGACY, SHA) == NOW
    assert respelled(NOW, SHA) == NOW and respelled(f"{SHA} failed (x)", SHA) == f"{short_sha(SHA)} failed (x)"
    # not the recorded commit, not a commit, too short to be one, no commit recorded: as stored
    for reason, sha in ((LEGACY, OTHER), ("deadbeefcafe1234 failed", SHA), (f"{SHA[:6]} x", SHA), (LEGACY, None),
                        ("failed (disk full)", SHA), ("", SHA)):
        assert respelled(reason, sha) == reason, (reason, sha)


def test_status_shows_a_legacy_reason_in_the_one_spelling(host):  # noqa: F811 - the fixture
    inv, home = host
    now = time.time()
    (home / "state.json").write_text(json.dumps({
        "deployed": OTHER, "failing": {"target": SHA, "since": now - 600, "count": 2, "reason": LEGACY,
                                       "result": "rolled_back"},
        "retry": {"target": SHA, "next_at": now + 600, "reason": LEGACY}}))
    r = status(inv)
    said = " ".join(r.stdout.split())
    # the commit in the one spelling, said once: status names it before the
    # reason and drops the reason's own leading copy (71b3824)
    assert said.count(SHA[:10]) == 1 and SHA[:12] not in said, r.stdout
    assert f"for {SHA[:10]}: failed (bot died 3.1 s after start)" in said, r.stdout
    data = json.loads(status(inv, "--json").stdout)["hosts"]["local"]
    assert data["failing"]["reason"] == LEGACY  # the data keeps what the host wrote


def test_monitors_finding_shows_it_in_the_one_spelling():
    from fabops import inventory
    from fabops.monitor import evaluate

    h = inventory.loads("hosts:\n  h:\n    app: {path: /srv/app}\n    services: []\n", "h.yml").hosts["h"]
    facts = {"services": [], "deploy": {"deployed": OTHER, "failing": {"target": SHA, "since": time.time(),
                                                                      "count": 2, "reason": LEGACY}}}
    _, found = evaluate(facts, h)
    said = [m for _, m in found if "updates failing" in m]
    assert len(said) == 1 and said[0].endswith(f": {NOW}"), found
