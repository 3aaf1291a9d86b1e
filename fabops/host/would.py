"""The one output shape of every dry run (docs/architecture.md, "Plans"):
`would: [{action, target, why}]` in the JSON envelope, and one human line
per entry. The deploy planner (host/plan.py, rendered by host/dry_run.py),
health --fix (host/health.py), restart, unpin, setup --check and the
maintenance tasks all say what they would do through this module, so a
reader and a script see one form whichever task they dry-ran.

It lives on the host side (standard library only) because the host's dry
run renders it too; the laptop's tasks import it from here."""
from __future__ import annotations

from typing import Iterable, List, NamedTuple


class Would(NamedTuple):
    """One write a run would make. A tuple, so `action, target, why = w`
    reads it as the planners yield it."""

    action: str  # a verb: restart, checkout, run, notify, record, clear pin, delete, change, stop, ...
    target: str  # what it acts on: a service, a commit, a file, "-" when nothing in particular
    why: str  # the fact that makes the run do it

    def to_dict(self) -> dict:
        return {"action": self.action, "target": self.target, "why": self.why}

    def line(self) -> str:
        """`would ACTION TARGET: WHY` (no TARGET when it is "-")."""
        head = f"would {self.action}" + ("" if self.target in ("", "-") else f" {self.target}")
        return f"{head}: {self.why}" if self.why else head


def as_json(woulds: Iterable[Would]) -> List[dict]:
    """The envelope's `would` list."""
    return [_would(w).to_dict() for w in woulds]


def lines(woulds: Iterable, prefix: str = "", none: str = "") -> List[str]:
    """The human form: `PREFIX would ...`, one line per entry, in order
    (Would values, or the dicts of a JSON `would` list); `PREFIX NONE` when
    there are none and `none` is given (a dry run that would change nothing
    says so)."""
    said = [prefix + _would(w).line() for w in woulds]
    return said or ([prefix + none] if none else [])


def _would(w) -> Would:
    if isinstance(w, dict):
        return Would(str(w.get("action", "")), str(w.get("target", "")), str(w.get("why", "")))
    return Would(*w)
