"""Issue #24: one screen showed a commit as 7, 10 and 12 hex characters
(the history's cut, its columns, a dry run's and reset's lines), which
reads as different commits. Every laptop-side output spells it through
fabops/shortsha.py (10, what most outputs used); JSON keeps the full SHA."""
import re
from pathlib import Path

from fabops.shortsha import SHORT, short_sha

ROOT = Path(__file__).resolve().parent.parent
SHA = "9b8c7d6e5f4a3b2c1d0e" * 2
PIN = "0123456789abcdef0123" * 2


def test_the_helper():
    assert SHORT == 10 and short_sha(SHA) == SHA[:10] and short_sha(None) == "-" and short_sha("", "none") == "none"


def test_a_reason_spells_a_known_sha_as_every_screen_does_even_when_it_fits():
    """history and the summary show a host's message: its 12 (or 7)
    characters of a SHA the row names become 10, at any width."""
    from fabops.tasks.render import keep_reason

    for spelled in (SHA[:12], SHA[:7], SHA):
        got = keep_reason(f"{spelled} failed (bot died); rolled back to {spelled}, healthy", 200, shas=[SHA])
        assert got == f"{SHA[:10]} failed (bot died); rolled back to {SHA[:10]}, healthy", got


def test_laptop_side_lines_use_the_one_length():
    from fabops import inventory, remote
    from fabops.maintenance.reset import ResetPlan, reset_would

    host = inventory.loads("hosts: {web1: {app: {path: /srv/app}}}", "h.yml").hosts["web1"]
    assert [w.target for w in remote.unpin_plan(PIN)] == [PIN[:10]]

    said = reset_would(host, ResetPlan(SHA, PIN, [], False))
    assert any(w.target == f"{SHA[:10]} -> {PIN[:10]}" for w in said), said


def test_no_other_length_is_cut_anywhere():
    """A slice of 7, 8 or 12 (a SHA cut by hand) anywhere in fabops/, the
    host side too (record.short, plan.short, the lock holder's target, a
    checkout's step label: tests/test_host_short_sha.py)."""
    found = []
    for path in sorted((ROOT / "fabops").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\[:(7|8|12)\]", line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
