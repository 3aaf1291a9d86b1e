"""`inv health [--fix]`: Nagios-style checks that heal and speak up."""
from __future__ import annotations

import sys

from invoke import Collection

from .. import errors
from ..host import report
from ._base import fabops_task, finish, print_envelope, print_text


@fabops_task(help={
    "fix": "Restart failing services under the host lock and poll readiness (never while a deploy runs).",
    "timeout": "Seconds to wait for a restarted service to be ready (default 60).",
    "actor": "Who runs this, for the lock message (default user@hostname).",
    "quiet": "Print nothing when everything is healthy (for cron).",
    "trigger": "Who runs this: cron (its crontab line says so; only its --fix pings the heartbeat) or manual "
               "(the default).",
})
def health(c, hosts=None, fix=False, timeout=60.0, actor=None, quiet=False, dry_run=False, json=False, inventory=None,
           accept_new=False, connect_timeout=None, trigger=None):
    """Check every service (process, port, HTTP, unit); with --fix restart and re-check. Nagios exit codes."""
    from ..host.health import Channels, LocalStore, health_trigger, plan_only, run_health
    from ..host.record import default_actor
    from ..notify import notify, sources, webhooks
    from ..remote import RemoteStore, lock_holder, managers_for
    from ._base import for_each_host

    who, trigger = actor or default_actor(), health_trigger(trigger)

    def one(cxn, host):
        local = cxn.is_local
        store = LocalStore(host) if local else RemoteStore(cxn, host)
        manager, probe = managers_for(cxn, host)
        home = host.home if local else None  # a remote host's run notifies from here: this environment's channels
        if dry_run:  # the same look and plan_health, rendered: nothing taken, written or sent
            channels = Channels(tuple(webhooks(home)), sources(home))  # the ones send() below would use
            return plan_only(host, fix=fix, store=store, manager=manager, probe=probe,
                             holder=lambda: lock_holder(cxn, host), channels=channels)

        def send(event, message):
            return [d.to_dict() for d in notify(host.name, event, message, home=home, environment=host.environment)]

        return run_health(cxn, host, fix=fix, actor=who, store=store, manager=manager, probe=probe,
                          timeout=timeout, notify=send, trigger=trigger)

    outcome = for_each_host(inventory, hosts, one, accept_new=accept_new, connect_timeout=connect_timeout)
    codes = [report.health_code(r.value, r.ok) for r in outcome.results]
    # A plain health's dry run would write nothing, and says so and why: it
    # is a read (#24: its dry run printed the check alone, as if --dry-run
    # had done nothing). A --fix dry run always has a `would`: the health
    # log line every --fix plan writes (host/health.actions).
    nothing = WOULD_NOTHING if dry_run and not fix else ""
    if json:
        # Nagios: an unreachable host is UNKNOWN (3), whatever the error was
        print_envelope([r if r.ok else _unknown(r) for r in outcome.results], lambda v: _value(v, dry_run, nothing),
                       code=errors.worst(codes))
    else:
        for r in outcome.results:
            if not r.ok:
                print_text(report.health_error_line(r.host, r.error), file=sys.stderr)
                continue
            for line in report.health_lines(r.host, r.value, quiet, nothing):
                print_text(line)
    finish(errors.worst(codes))


WOULD_NOTHING = "would write nothing: a plain health only reads (health --fix --dry-run shows what --fix would do)"


def _value(report, dry_run: bool, nothing: str) -> dict:
    """A host's --json value; a dry run adds `dry_run` and, when its `would`
    is empty, `note`: why it would write nothing."""
    value = report.to_dict()
    if dry_run:
        value["dry_run"] = True
        if nothing and not value.get("would"):
            value["note"] = nothing
    return value


def _unknown(result):
    from dataclasses import replace

    return replace(result, code=report.health_code(None, reached=False))


ns = Collection("health", health)
