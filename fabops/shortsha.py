"""How a person reads a commit: its first SHORT hex characters, the same on
every screen (status, history, a deploy's summary and dry run, monitor,
rollback, reset, unpin). Ten: what most outputs already showed, and with
the 7 of `git log --oneline` beside 10 and 12 on one screen (issue #24) the
lengths read as different commits. Data keeps the full SHA (state,
history, --json). Standard library only, Python 3.9: the host side may use
it too (tests/test_layers.py, HOST_SIBLINGS)."""
from __future__ import annotations

from typing import Optional

SHORT = 10


def short_sha(sha: Optional[str], missing: str = "-") -> str:
    """`sha` as a person reads it; `missing` when there is none."""
    return sha[:SHORT] if sha else missing


SPELLED = 7  # the fewest hex characters a message spells a commit with (git's --oneline)


def respelled(reason, sha: Optional[str]) -> str:
    """A reason as the host stored it (state.json's failing, retry), its
    leading commit, when that is a prefix of `sha` (the commit the record
    names), spelled as every screen does: a state.json from an older fabops
    spelled it with 12 characters (`6ccd907a404e failed (…)`)."""
    word, sep, rest = str(reason).partition(" ")
    if isinstance(sha, str) and len(word) >= SPELLED and sha.startswith(word) and all(c in "0123456789abcdef" for c in word):
        return short_sha(sha) + sep + rest
    return str(reason)
