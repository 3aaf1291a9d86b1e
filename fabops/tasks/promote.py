"""`inv promote --from staging --to production`: deploy to one environment
exactly the commit another one ran healthily (docs/environments.md,
"Promote"). The decision is fabops/promote.py's; this module reads the
hosts, renders the plan and, unless it refuses or it is a dry run, deploys
each `--to` host as `deploy --ref` does (tasks/deploy.py shows them)."""
from __future__ import annotations


from invoke import Collection

from .. import errors
from ..shortsha import short_sha
from ._base import fabops_task, finish, load_inventory, print_json, print_text
from .deploy import DEPLOY_HELP

PROMOTE_HELP = {
    "from_": "The environment whose commit is promoted (a group with `environment: true`): every host of it must "
             "run the same commit, healthy, for at least its promote_after.",
    "to": "The environment that gets that commit, each host as `deploy --ref COMMIT` does, pinned to it.",
    "min_age": "How long every --from host must have run the commit healthy (default: its promote_after, else 1h).",
    "force": "Promote a commit that is not an ancestor of the --to environment's branch, or onto a --to host that "
             "already runs a descendant of it (default: refused, exit 2).",
    "rolling": "Deploy N --to hosts at a time and stop at the first failure (0, the default: all at once).",
    "wait": "Seconds to wait for a --from host's lock held by a run mid-change (default 0, 300 in CI); "
            "a run in its watch is waited for as deploy waits.",
    "liveness": DEPLOY_HELP["liveness"], "offline": DEPLOY_HELP["offline"], "actor": DEPLOY_HELP["actor"],
}

# what a passed check says (fabops/promote.py, decide: one name per check)
PASSED = {
    "lock": "no {src} host is mid-deploy",
    "agree": "every {src} host runs {c}",
    "healthy": "every {src} host is healthy, with no run unfinished",
    "age": "every {src} host has run it healthy for at least its promote_after",
    "bad": "no commit was marked bad on {src} since it was deployed there",
    "ancestor": "it is on {dst}'s branch",
    "descendant": "no {dst} host runs a descendant of it",
}


def _environment(inv, name, flag):
    """The hosts of environment `name` (exit 64 unless it is one)."""
    if not name:
        raise errors.UsageError(f"{flag} ENVIRONMENT is required: promote --from staging --to production")
    hosts = inv.select(name)
    if name not in inv.environments:
        raise errors.UsageError(f"{flag} {name}: not an environment (a group with `environment: true`, "
                                f"docs/environments.md); environments: {', '.join(inv.environments) or 'none'}")
    return hosts


def _gather(inv, sources, targets, opts):
    """Each --from host's facts (fanned out, one round trip each), then the
    plan; once it has a candidate, each --to host's (its deployed commit,
    pin and whether it runs a descendant: one round trip each, the first
    host of each (remote, branch) also fetching it for the ancestry unless
    --force). A host that could not be read is its error: nothing is
    decided."""
    from ..connection import close_quietly, connect
    from ..fanout import run_hosts
    from ..promote import decide, read_source, read_target

    def with_cxn(host, fn):
        cxn = connect(host, inv, accept_new=opts["accept_new"], connect_timeout=opts["connect_timeout"])
        try:
            return fn(cxn)
        finally:
            close_quietly(cxn)

    say = None if opts["json"] else (lambda host: lambda m: print_text(f"[{host}] · {m}"))
    read = run_hosts(sources, lambda h: with_cxn(h, lambda c: read_source(
        c, h, opts["min_age"], opts["wait"], say and say(h.name))), parallel=opts["parallel"])
    if read.code != errors.OK:
        return read, None
    facts = [r.value for r in read.results]
    plan = decide(opts["source"], opts["target"], facts, force=opts["force"])
    if plan.need == "targets":
        fetchers = {}
        for h in targets:
            fetchers.setdefault((h.app.remote, h.app.branch), h.name)
        fetch = set() if opts["force"] else set(fetchers.values())
        got = run_hosts(targets, lambda h: with_cxn(h, lambda c: read_target(c, h, plan.candidate, h.name in fetch)),
                        parallel=opts["parallel"])
        if got.code != errors.OK:
            return type(read)(read.results + [r for r in got.results if not r.ok]), None
        plan = decide(opts["source"], opts["target"], facts, None, opts["force"], [r.value for r in got.results])
    return read, plan


def render_plan(plan, dry_run=False) -> None:
    """The candidate and each check: `✓` with what it found, `✗` one line
    per reason it refuses."""
    head = f"promote {plan.source} → {plan.target}: "
    head += (f"candidate {short_sha(plan.candidate)}" if plan.candidate else "no candidate")
    print_text(head + (" (dry run)" if dry_run else ""))
    for check in plan.checks:
        if not check.ok:
            for reason in check.reasons:
                print_text(f"✗ {reason}")
        elif check.reasons:  # passed with a note (--force)
            for reason in check.reasons:
                print_text(f"✓ {check.name}: {reason}")
        else:
            print_text("✓ " + PASSED[check.name].format(src=plan.source, dst=plan.target,
                                                        c=short_sha(plan.candidate)))
    for host in plan.already:
        print_text(f"· {host} is already at {short_sha(plan.candidate)}: nothing to deploy there")
    for warning in plan.warnings:
        print_text(f"warning: {warning}")
    if plan.refusals:
        print_text(f"refused: nothing deployed to {plan.target} (exit {plan.code})")


def _source_value(facts, recorded) -> dict:
    return {"role": "from", "deployed": facts.deployed, "deployed_at": facts.deployed_at,
            "age": facts.age,  # never below 0, as the age check reads it (SourceFacts.age)
            "min_age": facts.min_age, "recorded": recorded}


def _print_json(read, plan, outcome, code, recorded=()) -> None:
    from ..host.report import envelope_of, host_error

    hosts = {}
    for r in read.results:
        hosts[r.host] = _source_value(r.value, r.host in recorded) if r.ok else host_error(r.error, r.code)
    for r in outcome.results if outcome else ():
        if r.ok:
            res = r.value.result
            hosts[r.host] = res | {"install": r.value.install, "pinned": res.get("pinned")}
        else:
            hosts[r.host] = host_error(r.error, r.code)
    extra = {"promote": plan.to_dict()} if plan else {}
    print_json(envelope_of(hosts, code, **extra))


def _deploy_targets(inv, targets, plan, opts):
    """Each --to host deployed as `deploy --ref CANDIDATE` (trigger
    promote: same gate, watch and rollback, pinned on promotion), its pin's
    reason promote's words, which the run writes with the pin in its own
    locked save (a note written after the run could overwrite a rollback
    made meanwhile); or its dry run."""
    from ..connection import close_quietly, connect
    from ..deploy import DeployOptions, ci_settings_from, deploy_host
    from ..promote import pin_reason_of
    from .deploy import board_or_lines, fan, showing

    dopts = DeployOptions(ref=plan.candidate, trigger="promote", actor=opts["actor"], wait=opts["wait"],
                          liveness=opts["liveness"], offline=opts["offline"], dry_run=opts["dry_run"],
                          clear_pin=False, inventory=opts["inventory"], pin_reason=pin_reason_of(plan, opts["actor"]),
                          # in CI, the commit the settings came from: main's head is not the candidate
                          settings_from=ci_settings_from(inv.path))
    printer = board_or_lines(targets, opts["json"], opts["dry_run"])

    def one(host):
        cxn = connect(host, inv, accept_new=opts["accept_new"], connect_timeout=opts["connect_timeout"])
        try:
            return deploy_host(cxn, host, dopts, printer(host.name))
        finally:
            close_quietly(cxn)

    return showing(printer, lambda: fan(targets, one, opts["parallel"], opts["rolling"]))


def _record_sources(inv, sources, plan, outcome, opts):
    """A history line on each --from host naming the --to hosts that now run
    the candidate (none: nothing is recorded). Returns the hosts recorded."""
    from ..connection import close_quietly, connect
    from ..fanout import run_hosts
    from ..host.events import new_run_id
    from ..promote import record_source, source_record

    shipped = [r.host for r in outcome.results
               if r.ok and r.value.result.get("to") == plan.candidate
               and r.value.result.get("result") in ("deployed", "noop")]
    if not shipped:
        return [], []
    run_id = new_run_id()

    def one(host):
        cxn = connect(host, inv, accept_new=opts["accept_new"], connect_timeout=opts["connect_timeout"])
        try:
            record_source(cxn, host, source_record(host.name, plan, opts["actor"], shipped, run_id))
        finally:
            close_quietly(cxn)

    done = run_hosts(sources, one, parallel=opts["parallel"])
    return [r.host for r in done.results if r.ok], [r for r in done.results if not r.ok]


@fabops_task(help=PROMOTE_HELP)
def promote(c, from_=None, to=None, min_age=None, force=False, rolling=0, wait=None, liveness=5.0, offline=False,
            actor=None, dry_run=False, wide=False, json=False, inventory=None, accept_new=False,
            connect_timeout=None, parallel=10):
    """Deploy to --to exactly the commit every --from host ran healthy, then pin it there (docs/environments.md)."""
    from ..host.queue import CI_WAIT
    from ..host.record import default_actor
    from .render import host_errors

    inv = load_inventory(inventory)
    sources, targets = _environment(inv, from_, "--from"), _environment(inv, to, "--to")
    if from_ == to:
        raise errors.UsageError(f"--from and --to are both {from_}: promote moves a commit between two environments")
    from ..ci import in_ci

    if wait is None and in_ci():
        wait = CI_WAIT  # as a deploy from CI waits (docs/pipeline.md, step 1)
    opts = dict(source=from_, target=to, min_age=min_age, force=force, rolling=int(rolling or 0), wait=wait,
                liveness=liveness, offline=offline, actor=actor or default_actor(), dry_run=dry_run, json=json,
                inventory=inventory, accept_new=accept_new, connect_timeout=connect_timeout, parallel=parallel)
    read, plan = _gather(inv, sources, targets, opts)
    if plan is None or plan.refusals:
        code = plan.code if plan else read.code
        if json:
            _print_json(read, plan, None, code)
        else:
            if plan:
                render_plan(plan, dry_run)
            host_errors(read.results)
        finish(code)
    if not json:
        render_plan(plan, dry_run)
    outcome = _deploy_targets(inv, targets, plan, opts)
    recorded, failed = ([], []) if dry_run else _record_sources(inv, sources, plan, outcome, opts)
    code = errors.worst([r.value.exit_code if r.ok else r.code for r in outcome.results]
                        + [r.code for r in failed])
    if json:
        _print_json(read, plan, outcome, code, recorded)
    else:
        from .deploy import report

        report(outcome, False, wide, task="promote", flag=inventory, pins=True, dry_run=dry_run)
        if recorded:
            print_text(f"recorded in {from_}'s history: {', '.join(recorded)} (promoted to {to})")
        host_errors(failed)
    finish(code)


ns = Collection("promote", promote)
