"""`promote`: deploy to one environment exactly the commit another one
proved (docs/environments.md, "Promote").

Decide once, then act (docs/architecture.md, "Plans"): the facts of every
host of the `--from` environment are read (one round trip each: status'
look, the lock's holder and the host's clock), and, once they agree on a
candidate, every `--to` host's (one round trip each: its deployed commit,
pin and whether it already runs a descendant of the candidate; one host
per (remote, branch) also fetches it to tell whether the candidate is on
it); `decide` is the one pure function that turns them into a
`PromotePlan`. The real run acts on that plan (each `--to`
host deployed as `deploy --ref CANDIDATE` is, trigger `promote`); the dry
run renders the same plan, with each `--to` host's own dry run. This
module returns data; fabops/tasks/promote.py renders it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import errors
from .errors import FabopsError
from .host.git import END_OF_OPTIONS, git
from .inventory import Host
from .probe import MARK, split_sections
from .shell import Cmd, path, quote_path, sh
from .shortsha import short_sha
from .target import Target

# How long every host of the `--from` environment must have run the
# candidate healthy (since its watch passed) before it is promoted, unless
# hosts.yml's `promote_after` or `--min-age` says otherwise (docs/hosts.md).
DEFAULT_PROMOTE_AFTER = 3600.0
# How often a promote waiting for a `--from` host's lock looks again.
POLL = 2.0
# Where the `--to` host's fetch of its branch goes: a ref of promote's own,
# never the remote-tracking ref a real run updates (two fetches of one ref
# race on its lock: docs/pipeline.md, step 2).
PROMOTE_REF = "refs/fabops/promote"


@dataclass(frozen=True)
class SourceFacts:
    """One `--from` host as read in one round trip."""

    host: str
    deployed: Optional[str]  # state.json's: the commit deployed and past its watch
    deployed_at: Optional[float]  # when its watch passed (the promotion's time), by the host's clock
    now: float  # the host's clock when read
    min_age: float  # its promote_after (or --min-age)
    down: Tuple[str, ...] = ()  # services not running now
    health: Optional[str] = None  # the last health check's status (state.json's health: ok, down)
    result: Optional[str] = None  # the host's last verdict (host/state.host_result)
    in_progress: Optional[str] = None  # a run that has not finished (its id): its watch has not passed
    bad: Tuple[Tuple[str, float, str], ...] = ()  # (commit, when marked, why) of state.json's bad targets
    holder: Dict = field(default_factory=dict)  # the lock's holder ({} when free)

    @property
    def age(self) -> Optional[float]:
        """How long the commit has run healthy here (None: no time recorded).
        `now` is the host's `date +%s`, whole seconds, and deployed_at the
        fraction-of-a-second time its watch passed: just after the watch,
        now may read up to a second before it. A commit is never younger
        than 0 (so --min-age 0 always passes, and --json never shows a
        negative age); a real age is under-read by less than a second,
        which only ever waits longer."""
        return max(0.0, self.now - self.deployed_at) if self.deployed_at is not None else None


@dataclass(frozen=True)
class Ancestry:
    """Whether the candidate is on the `--to` environment's branch, as one
    of its hosts fetched it: True, False, or None when that checkout does
    not have the commit at all."""

    host: str
    branch: str
    contains: Optional[bool]


@dataclass(frozen=True)
class TargetFacts:
    """One `--to` host as read in one round trip (target_cmd): state.json's
    deployed commit and pin, the checkout's commit and whether it descends
    from the candidate (a hotfix shipped there with `deploy --ref`), and,
    on the one host per (remote, branch) that fetched it, the ancestry."""

    host: str
    deployed: Optional[str] = None
    pin: Optional[str] = None
    pin_reason: Optional[str] = None
    head: Optional[str] = None  # the checkout's commit (what runs)
    ahead: bool = False  # head is a descendant of the candidate, not the candidate itself
    ancestry: Optional[Ancestry] = None


@dataclass(frozen=True)
class Check:
    """One check of a promotion: its name, whether it passed, and why not
    (`reasons`, one line each) with the exit code a failure gives."""

    name: str
    ok: bool
    reasons: Tuple[str, ...] = ()
    code: int = errors.OK

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "reasons": list(self.reasons), "code": self.code}


@dataclass(frozen=True)
class PromotePlan:
    source: str
    target: str
    candidate: Optional[str]
    checks: Tuple[Check, ...]
    forced: bool = False
    need: Optional[str] = None  # "targets": decide again with the --to hosts' facts (the caller gathers them)
    already: Tuple[str, ...] = ()  # --to hosts that already run the candidate: nothing to deploy there
    warnings: Tuple[str, ...] = ()  # said, never refused: a --to host's pin that the promotion replaces

    @property
    def refusals(self) -> List[str]:
        return [r for c in self.checks if not c.ok for r in c.reasons]

    @property
    def code(self) -> int:
        """The refusal's exit code: LOCKED (4) for a `--from` host mid-deploy,
        FAILED (2) for any other refusal (docs/errors.md), OK to go on."""
        return errors.worst([c.code for c in self.checks if not c.ok] or [errors.OK])

    def to_dict(self) -> dict:
        return {"from": self.source, "to": self.target, "candidate": self.candidate, "forced": self.forced,
                "refused": bool(self.refusals), "checks": [c.to_dict() for c in self.checks],
                "already": list(self.already), "warnings": list(self.warnings)}


def span(seconds: float) -> str:
    """A duration as a person reads it: 45s, 12m, 1h 5m, 2d 3h."""
    s = int(max(0, round(seconds)))
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            rest = (s % size) // subsize
            return f"{s // size}{unit}" + (f" {rest}{sub}" if rest else "")
    return f"{s // 60}m" if s >= 60 else f"{s}s"


def _agree(sources: Sequence[SourceFacts], env: str) -> Tuple[Optional[str], Check]:
    """The one commit every host deployed, or the check that says why none."""
    none = [s.host for s in sources if not s.deployed]
    if none:
        return None, Check("agree", False, tuple(f"{h} has no deployed commit yet" for h in none), errors.FAILED)
    commits = {s.deployed for s in sources}
    if len(commits) > 1:
        each = ", ".join(f"{s.host} runs {short_sha(s.deployed)}" for s in sources)
        return None, Check("agree", False, (f"{env} hosts disagree: {each}",), errors.FAILED)
    return sources[0].deployed, Check("agree", True)


def _locked(sources: Sequence[SourceFacts]) -> Check:
    from .host.queue import locked_line

    held = tuple(f"{s.host} is mid-deploy: {locked_line('promote', s.holder)}" for s in sources if s.holder)
    return Check("lock", not held, held, errors.LOCKED if held else errors.OK)


def _healthy(sources: Sequence[SourceFacts]) -> Check:
    """A host is healthy for promotion when every service runs, its last
    health check found none down, its last verdict is not broken and no
    run of its is unfinished (a run in its watch has not proved anything)."""
    reasons = []
    for s in sources:
        if s.down:
            reasons.append(f"{s.host}: {', '.join(s.down)} not running")
        if s.health == "down":
            reasons.append(f"{s.host}: its last health check found a service down")
        if s.result == "broken":
            reasons.append(f"{s.host}: its last run ended broken")
        if s.in_progress and not s.holder:
            reasons.append(f"{s.host}: run {s.in_progress} has not finished, so its watch has not passed")
    return Check("healthy", not reasons, tuple(reasons), errors.FAILED if reasons else errors.OK)


def _old_enough(sources: Sequence[SourceFacts], candidate: str) -> Check:
    reasons = []
    for s in sources:
        age = s.age or 0.0  # never below 0 (SourceFacts.age)
        if age < s.min_age:
            reasons.append(f"{s.host}: {short_sha(candidate)} has run healthy for {span(age)}, promote needs "
                           f"{span(s.min_age)}: {span(s.min_age - age)} more (--min-age to change it)")
    return Check("age", not reasons, tuple(reasons), errors.FAILED if reasons else errors.OK)


def _bad_newer(sources: Sequence[SourceFacts], candidate: str) -> Check:
    """A commit marked bad on a host after the candidate passed its watch
    there: the environment tried something newer and it failed, so what it
    proved is in question until it deploys again (docs/environments.md)."""
    reasons = []
    for s in sources:
        for sha, at, why in s.bad:
            if sha != candidate and s.deployed_at is not None and at > s.deployed_at:
                reasons.append(f"{s.host}: {short_sha(sha)}, newer than {short_sha(candidate)}, is marked bad"
                               + (f" ({why})" if why else ""))
    return Check("bad", not reasons, tuple(reasons), errors.FAILED if reasons else errors.OK)


def _ancestry(candidate: str, a: Ancestry, force: bool) -> Check:
    if a.contains:
        return Check("ancestor", True)
    where = f"{a.branch} (as {a.host} fetched it)"
    # a commit the checkout does not have after fetching the branch is in none of its history
    why = f"{short_sha(candidate)} is not an ancestor of {where}" + (
        "" if a.contains is False else ": that history does not have it")
    if force:
        return Check("ancestor", True, (why + "; --force promotes it anyway",))
    return Check("ancestor", False, (why + "; --force promotes it anyway",), errors.FAILED)


def _targets(candidate: str, targets: Sequence[TargetFacts], force: bool) -> Check:
    """A `--to` host whose checkout already runs a descendant of the
    candidate (a hotfix shipped with `deploy --ref`): promoting would move
    it back and drop that commit, so it is refused unless --force."""
    back = tuple(f"{t.host} runs {short_sha(t.head)}, a descendant of {short_sha(candidate)}: promoting would move "
                 "it back; --force promotes it anyway" for t in targets if t.ahead)
    if back and not force:
        return Check("descendant", False, back, errors.FAILED)
    return Check("descendant", True, back)


def _pins(candidate: str, targets: Sequence[TargetFacts]) -> Tuple[str, ...]:
    return tuple(f"{t.host} is pinned to {short_sha(t.pin)}" + (f" ({t.pin_reason})" if t.pin_reason else "")
                 + f": promote replaces that pin with {short_sha(candidate)}"
                 for t in targets if t.pin and t.pin != candidate)


def decide(source: str, target: str, sources: Sequence[SourceFacts],
           ancestry: Union[Ancestry, Sequence[Ancestry], None] = None, force: bool = False,
           targets: Optional[Sequence[TargetFacts]] = None) -> PromotePlan:
    """The promotion's plan from the facts gathered: the candidate (the
    commit every `source` host deployed) and each check's result, in
    order. Pure: no command, no clock but each host's own `now`. With a
    candidate and no `targets` yet, `need` asks for them: the caller reads
    each `target` host (with the ancestry, one per (remote, branch),
    unless --force) and decides again. `ancestry` is one Ancestry or
    several; by default those the `targets` carry."""
    candidate, agree = _agree(sources, source)
    checks = [_locked(sources), agree, _healthy(sources)]
    if candidate is None:
        return PromotePlan(source, target, None, tuple(checks), force)
    checks += [_old_enough(sources, candidate), _bad_newer(sources, candidate)]
    if targets is None:
        return PromotePlan(source, target, candidate, tuple(checks), force, need="targets")
    if isinstance(ancestry, Ancestry):
        ancestry = (ancestry,)
    ancestry = tuple(ancestry or (t.ancestry for t in targets if t.ancestry))
    if force and not ancestry:
        checks.append(Check("ancestor", True, ("not checked: --force",)))
    for a in ancestry:  # one per (remote, branch) of the --to hosts
        checks.append(_ancestry(candidate, a, force))
    if not force and not ancestry:  # a caller's mistake: never promote unchecked without --force
        raise FabopsError("no --to host read whether the candidate is on its branch")
    checks.append(_targets(candidate, targets, force))
    already = tuple(t.host for t in targets if t.deployed == candidate and not t.ahead)
    return PromotePlan(source, target, candidate, tuple(checks), force, already=already,
                       warnings=_pins(candidate, targets))


# ---------------------------------------------------------------- gathering


def source_cmd(host: Host) -> Cmd:
    """One round trip: the lock's holder (tested, never taken), the host's
    clock, then status' look (services, state.json, ...: remote.status_cmd)."""
    from .maintenance.reset import lock_section_cmd
    from .remote import status_cmd

    return sh("{lock}echo {m}now; date +%s\n{status}", lock=lock_section_cmd(host), m=MARK, status=status_cmd(host))


def parse_source(output: str, host: Host, min_age: float) -> SourceFacts:
    from .host.state import host_result
    from .remote import parse_lock_holder, parse_state, parse_status

    sections = split_sections(output)
    status = parse_status(output, host)
    state = parse_state(sections.get("state", ""), host)
    try:
        now = float(sections.get("now") or "")
    except ValueError:
        raise FabopsError("could not read the host's clock (`date +%s`)", host=host.name) from None
    health = state.get("health") if isinstance(state.get("health"), dict) else {}
    bad = state.get("bad") if isinstance(state.get("bad"), dict) else {}
    marked = tuple(sorted((sha, float(e.get("at") or 0), str(e.get("reason") or ""))
                          for sha, e in bad.items() if isinstance(e, dict)))
    running = state.get("in_progress")
    return SourceFacts(
        host=host.name, deployed=state.get("deployed"), deployed_at=state.get("deployed_at"), now=now,
        min_age=min_age, down=tuple(s["name"] for s in status["services"] if not s.get("active")),
        health=health.get("status"), result=host_result(state),
        in_progress=(str(running.get("run_id") or "?") if isinstance(running, dict) else None),
        bad=marked, holder=parse_lock_holder(sections.get("lock", "")))


def read_source(c, host: Host, min_age: Optional[float], wait: Optional[float],
                progress: Optional[Callable[[str], None]] = None, clock=time.monotonic, sleep=time.sleep) -> SourceFacts:
    """A `--from` host's facts. A run holding its lock is waited for as a
    deploy waits (host/queue.lock_verdict: the rest of a watch, or up to
    --wait for a run mid-change; docs/pipeline.md, step 1), then read
    again; still held at the end, the facts keep its holder and the plan
    refuses with LOCKED (exit 4)."""
    from .host.lock import describe_holder
    from .host.queue import lock_verdict, lock_wait, watch_left

    age = DEFAULT_PROMOTE_AFTER if min_age is None else min_age
    if min_age is None and host.promote_after is not None:
        age = host.promote_after
    t = Target.of(c, host)
    facts = parse_source(t.output(source_cmd(host)), host, age)
    if not facts.holder:
        return facts
    verdict, _ = lock_verdict("promote", wait, facts.holder)
    if verdict != "wait":
        return facts
    left = watch_left(facts.holder)
    deadline = clock() + (left if left is not None and wait != 0 else lock_wait("promote", wait))
    if progress:
        progress(f"waiting for {describe_holder(facts.holder)}")
    while facts.holder and clock() < deadline:
        sleep(POLL)
        facts = parse_source(t.output(source_cmd(host)), host, age)
    return facts


def ancestry_cmd(host: Host, candidate: str) -> Cmd:
    """One round trip on a `--to` host: fetch its branch into promote's own
    ref, then whether the candidate is there (`missing`) and an ancestor of
    it (`yes`/`no`). A failed fetch is the command's failure."""
    app = path(host.app.path)
    ref = f"{PROMOTE_REF}/{host.app.branch}"
    fetch = git(app, "fetch", "--quiet", "--no-tags", END_OF_OPTIONS, host.app.remote,
                f"+refs/heads/{host.app.branch}:{ref}")
    has = git(app, "cat-file", "-e", f"{candidate}^{{commit}}")
    anc = git(app, "merge-base", "--is-ancestor", END_OF_OPTIONS, candidate, ref)
    return sh("{fetch} || exit $?\n{has} 2>/dev/null || {{ echo missing; exit 0; }}\n"
              "if {anc}; then echo yes; else echo no; fi\n", fetch=fetch, has=has, anc=anc)


def target_cmd(host: Host, candidate: str, fetch: bool) -> Cmd:
    """One round trip on a `--to` host: state.json (its deployed commit and
    pin), the checkout's commit and whether it descends from the candidate
    (`yes`/`no`: a checkout without the candidate has no descendant of
    it), then, when `fetch` (one host per (remote, branch)), ancestry_cmd."""
    app = path(host.app.path)
    ahead = git(app, "merge-base", "--is-ancestor", END_OF_OPTIONS, candidate, "HEAD")
    look = sh("echo {m}state; cat {f} 2>/dev/null; echo; echo {m}head; {head} 2>/dev/null; echo {m}ahead\n"
              "if {ahead} 2>/dev/null; then echo yes; else echo no; fi\n", m=MARK, f=quote_path(host.paths.state),
              head=git(app, "rev-parse", "HEAD"), ahead=ahead)
    if not fetch:
        return look
    return sh("{look}echo {m}branch\n{anc}", look=look, m=MARK, anc=ancestry_cmd(host, candidate))


def read_target(c, host: Host, candidate: str, fetch: bool) -> TargetFacts:
    from .remote import parse_state

    out = Target.of(c, host).output(target_cmd(host, candidate, fetch))
    sections = split_sections(out)
    state = parse_state(sections.get("state", ""), host)
    head = sections.get("head") or None
    return TargetFacts(host.name, state.get("deployed"), state.get("pin") or None, state.get("pin_reason") or None,
                       head, sections.get("ahead") == "yes" and head != candidate,
                       _ancestry_of(sections.get("branch", ""), host, candidate) if fetch else None)


def _ancestry_of(out: str, host: Host, candidate: str) -> Ancestry:
    out = out.strip()
    word = out.splitlines()[-1] if out else ""
    if word not in ("yes", "no", "missing"):
        raise FabopsError(f"could not tell whether {short_sha(candidate)} is on {host.app.branch}: {out or 'no answer'}",
                          host=host.name)
    return Ancestry(host.name, f"{host.app.remote}/{host.app.branch}",
                    {"yes": True, "no": False, "missing": None}[word])


# ---------------------------------------------------------------- recording


def source_record(host: str, plan: PromotePlan, actor: str, hosts: Sequence[str], run_id: str) -> dict:
    """The history record a `--from` host gets once its commit is promoted:
    trigger `promote`, result `promoted`, naming where it went (inv history)."""
    now = time.time()
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ts": now, "run_id": run_id, "trigger": "promote",
            "actor": actor, "host": host, "from": plan.candidate, "to": plan.candidate, "result": "promoted",
            "exit_code": errors.OK, "duration": 0.0, "steps": [], "warnings": [],
            "message": f"promoted {short_sha(plan.candidate)} to {plan.target} ({', '.join(hosts)})"}


def record_source(c, host: Host, record: dict) -> None:
    from .remote import state_merge_cmd

    Target.of(c, host).run(state_merge_cmd(host, {}, record), "recording the promotion")


def pin_reason_of(plan: PromotePlan, actor: str) -> str:
    return f"promoted from {plan.source} by {actor}"

