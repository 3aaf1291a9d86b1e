"""`restart` decides before it acts, as deploy and reset do
(docs/architecture.md, "Plans"): one round trip reads the host lock's
holder and the declared ports of the services it would restart; the
decision is remote.restart_plan (its services, the lock verdict) with the
ports another process holds while their service is not running (the
deploy preflight's rule and words, host/readiness.held_among). The real
restart acts on that decision or refuses with its words and exit code;
`--dry-run` renders the same decision (restart_would).

Why: a restart whose service could not bind its port was only found out
by the readiness gate, after the restart (exit 2, without the advice
deploy and reset give), while its dry run said it would restart."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..errors import BROKEN, FAILED, LOCKED, OK, FabopsError, LockedError
from ..host.would import Would
from ..inventory import Host
from ..probe import MARK, split_sections
from ..shell import Cmd, path, sh
from ..target import Target
from .reset import held_in, ports_cmd, state_from_text, lock_section_cmd, where_cmd


@dataclass(frozen=True)
class RestartDecision:
    plan: object  # remote.RestartPlan: the services, in order, and the lock verdict
    held: Tuple[str, ...] = ()  # the preflight's refusal of each held port, in the services' order
    # the checkout is off the deployed commit (a reset or rollback that did
    # not come up): monitor.checkout_moved_text's words, else None
    moved: Optional[str] = None
    # a restore cut off while putting items back (host/plan.UNSAFE_RESTORE_STEPS):
    # host/plan.restore_cut_off_text's words, the planner's and health --fix's, else None
    cut_off: Optional[str] = None

    def refusal(self) -> Optional[Tuple[int, List[str]]]:
        """Why the real restart would restart nothing, with its exit code
        (None: it acts): a run holding the lock (LOCKED, the lock script's
        own rule), else a restore cut off putting items back (BROKEN, as
        reset's and the planner's refusal of it, docs/errors.md: it would
        start the services on half-restored data; the way out is the
        restore that takes it over, docs/backups.md "A restore cut off in
        the middle"), else a held port (FAILED: the service could not
        start), else a checkout off the deployed commit (FAILED: it would
        start that checkout again, which did not come up; the way out is a
        rollback or a deploy, #24)."""
        if self.plan.verdict == "locked":
            return LOCKED, [self.plan.why]
        if self.cut_off:  # before the ports, as health --fix: no restart may start on that data
            return BROKEN, [self.cut_off]
        if self.held:
            return FAILED, list(self.held)
        return (FAILED, [self.moved]) if self.moved else None


def restart_facts_cmd(host: Host, services, lock: bool = True) -> Cmd:
    """The decision's facts in one round trip: the checkout's commit and
    state.json (reset's sections: where the checkout is, what is
    deployed), `services`' declared ports (their status, whose each
    listener is) and, with `lock`, the lock's holder (tested, never
    taken); a local target reads the lock in-process (parse_restart_facts's
    caller)."""
    return sh("{where}{ports}{holder}echo {m}end\nexit ${{lock_rc:-0}}\n", m=MARK, where=where_cmd(host),
              ports=ports_cmd(host, services), holder=lock_section_cmd(host) if lock else sh(""))


def parse_restart_facts(output: str, host: Host, services,
                        inventory: Optional[str] = None) -> Tuple[List[str], Optional[dict], Optional[str],
                                                                  Optional[str]]:
    """restart_facts_cmd's output: the held ports' refusals, the lock's
    holder ({} when free; None when the script did not read it), the
    checkout-moved words (monitor.checkout_moved_text; None when the
    checkout is on the deployed commit or either was not read; `inventory`:
    the run's `-i`, for the commands it names), and the words of a restore
    cut off putting items back (host/plan.restore_cut_off_text, as the
    planner's abort; None without one)."""
    from ..host.plan import cut_off_words
    from ..monitor import checkout_moved_text
    from ..remote import parse_lock_holder

    s = split_sections(output)
    holder = parse_lock_holder(s["lock"]) if "lock" in s else None
    state = state_from_text(s.get("state", ""))
    moved = checkout_moved_text(state.get("deployed"), s.get("head", "").strip() or None, host.name, inventory,
                                state.get("in_progress"), tuple(state.get("bad") or ()))
    cut_off = cut_off_words(state.get("in_progress"), host.name, inventory)
    return (held_in(s, host, services) if "owners" in s else []), holder, moved, cut_off


def restart_decision(c, host: Host, service: Optional[str], inventory: Optional[str] = None) -> RestartDecision:
    """What `restart [--service NAME]` would do on this host now: read,
    nothing taken or written."""
    from ..host.lock import peek_holder
    from ..remote import restart_plan

    t = Target.of(c, host)
    services = [host.service(service)] if service else list(host.services)
    held, holder, moved, cut_off = parse_restart_facts(
        t.run(restart_facts_cmd(host, services, lock=not t.is_local),
              "reading the checkout, the declared ports and the host lock").stdout, host, services, inventory)
    if holder is None:
        holder = peek_holder(t.paths.lock)
    return RestartDecision(restart_plan(host, service, holder), tuple(held), moved, cut_off)


def restart_would(host: Host, d: RestartDecision) -> List[Would]:
    """The dry run's `would`: `would stop` for each reason it refuses, else
    the restart's writes in order (remote.restart_would)."""
    from ..remote import restart_would as writes

    refused = d.refusal()
    return [Would("stop", "-", why) for why in refused[1]] if refused else writes(host, d.plan)


def refused_error(host: Host, d: RestartDecision) -> Optional[FabopsError]:
    """The real restart's error where the decision refuses (its words,
    its exit code), else None."""
    refused = d.refusal()
    if not refused:
        return None
    code, why = refused
    error = (LockedError if code == LOCKED else FabopsError)("; ".join(why), host=host.name)
    error.exit_code = code  # BROKEN for a cut-off restore (as reset's), FAILED for the others
    return error


def restart(c, host: Host, service: Optional[str], actor: str, progress=None,
            inventory: Optional[str] = None) -> List[dict]:
    """Decide, then restart (remote.restart_services: under the lock, each
    service then its readiness poll) or raise the refusal, nothing
    restarted."""
    from ..remote import restart_services

    error = refused_error(host, restart_decision(c, host, service, inventory))
    if error is not None:
        raise error
    return restart_services(c, host, service, actor, progress=progress)


def dry_run(c, host: Host, service: Optional[str], inventory: Optional[str] = None) -> Tuple[int, dict]:
    """`restart --dry-run`: the decision rendered, with the real restart's
    exit code."""
    d = restart_decision(c, host, service, inventory)
    refused = d.refusal()
    if refused and refused[0] == LOCKED:  # as the real restart's: the lock's line on stderr, exit 4
        raise LockedError(f"would stop: {d.plan.why}", host=host.name)
    return (refused[0] if refused else OK), {"dry_run": True, "would": [w.to_dict() for w in restart_would(host, d)]}
