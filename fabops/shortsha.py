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
