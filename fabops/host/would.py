"""The one output shape of every dry run (docs/architecture.md, "Plans"):
`would: [{action, target, why}]` in the JSON envelope, and one human line
per entry. The deploy planner (host/plan.py, rendered by host/dry_run.py),
health --fix (host/health.py), restart, unpin, setup --check and the
maintenance tasks all say what they would do through this module, so a
reader and a script see one form whichever task they dry-ran.

It lives on the host side (standard library only) because the host's dry
run renders it too; the laptop's tasks import it from here."""
from __future__ import annotations

from typing import Iterable, List, NamedTuple, Optional


class Would(NamedTuple):
    """One write a run would make. A tuple, so `action, target, why = w`
    reads it as the planners yield it."""

    action: str  # a verb: restart, checkout, run, notify, record, clear pin, delete, change, stop, ...
    target: str  # what it acts on: a service, a commit, a file, "-" when nothing in particular
    why: str  # the fact that makes the run do it

    def to_dict(self) -> dict:
        return {"action": self.action, "target": self.target, "why": self.why}

    def line(self) -> str:
        """`would ACTION TARGET: WHY` (no TARGET when it is "-"); a `log`
        entry reads `would append to the TARGET` (#24's fresh-clone trial:
        `would log health log: …`), its JSON keeping action `log`."""
        action = "append to the" if self.action == "log" and self.target.endswith(" log") else self.action
        head = f"would {action}" + ("" if self.target in ("", "-") else f" {self.target}")
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


def watch_seconds(services) -> float:
    """The watch window after the gate of a deploy that restarts `services`
    (the inventory's): the longest of their `watch` (hosts.yml; 0: none;
    docs/pipeline.md, "Watch"). One reckoning: the real run waits it
    (Pipeline._watch) and every dry run says it (watched)."""
    return max((s.watch for s in services), default=0.0)


def watched(services) -> Optional[Would]:
    """The watch a deploy that restarts `services` keeps after their gate,
    as every dry run says it: the host's (host/dry_run.actions) and the
    laptop's before fabops is on the host (fabops/deploy.py, which knows
    only hosts.yml: its planner picks the services). None when hosts.yml
    gives them none (the real run skips the watch)."""
    seconds = watch_seconds(services)
    if seconds <= 0:
        return None
    kept = [s for s in services if s.watch > 0]
    up_to = "" if len({s.watch for s in kept}) == 1 else "up to "  # each its own window, the longest last
    return Would("watch", ", ".join(s.name for s in kept),
                 f"for {up_to}{seconds:g} s after the gate, and roll back if one dies or fails its check there")
