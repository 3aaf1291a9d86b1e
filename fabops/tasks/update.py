"""The update pipeline's tasks: local-update (cron), history, status,
metrics, unpin.

`local-update` runs on the host itself and is on the cron path: nothing here
may import paramiko, fabric or rich at module level.
"""
from __future__ import annotations

import re
import sys
from typing import Optional

from invoke import Collection

from .. import errors
from ..host import report
from ._base import fabops_task, finish, load_inventory, print_envelope, print_text


def _host_for_local(inventory, hosts):
    """The host entry a host-side command acts as: `-H`, else the inventory's
    default (host.yml names exactly one host)."""
    inv = load_inventory(inventory)
    chosen = inv.select(hosts)
    if len(chosen) != 1:
        raise errors.UsageError("local-update acts as exactly one host; name it with -H")
    return inv, chosen[0]


@fabops_task(
    help={
        "trigger": "Who runs this: cron (its crontab line says so), deploy, ci, rollback, reset, promote or manual "
                   "(default: a person on the host).",
        "actor": "The person behind the run, for the lock message and the history (default user@hostname).",
        "ref": "Deploy this ref or commit instead of the branch head; pins the host.",
        "stash": "Save local changes in the checkout aside (patch + tarball in the backup dir) and proceed.",
        "wait": "Seconds to wait for the host lock (default 0; 300 for a deploy from CI).",
        "run_id": "Id of this run; its events go to <host home>/runs/<id>.jsonl.",
        "install_config": ("Install this file as the host's host.yml under the lock, once the run trusts its target "
                           "(used by deploy; until then the installed host.yml is in effect)."),
        "clear_pin": ("Clear a pin left by rollback or deploy --ref, as deploy does: once the branch's head "
                      "deploys (at once if it is there); a run that aborts or rolls back leaves it."),
        "allow_unverified": "With --ref: deploy it even if it is not signed by a key of the host's allowed signers.",
        "pin_reason": "With --ref: why the host is pinned, as status shows it, written with the pin "
                      "(default: TRIGGER by ACTOR; promote gives its own).",
        "verbose": "Print every step; by default only a one-line result, and nothing for a no-op.",
        "splay": "Wait a random 0..SECONDS first, so many hosts polling one origin do not all fetch at once (cron).",
        "settings_from": ("The commit the --install-config settings came from (deploy sends its inventory's "
                          "checkout's): on a host that requires signed commits, CI's are installed only when it is "
                          "the target."),
    }
)
def local_update(
    c, hosts=None, trigger=None, actor=None, ref=None, stash=False, wait=None, run_id=None,
    install_config=None, clear_pin=False, dry_run=False, verbose=False, json=False, inventory=None, splay=0,
    allow_unverified=False, pin_reason=None, settings_from=None,
):
    """Converge this host on its branch: fetch, gate, restart, roll back on failure (cron's entry point)."""
    from ..host.events import EventLog, new_run_id
    from ..paths import HostPaths, check_run_id
    from ..host.pipeline import UpdateOptions
    from ..connection import local_context
    from ..host.update import run_update
    from ..host.verify import unverified_allowed

    if run_id is not None:
        # it names files under the host's runs/: `../x` is refused before
        # anything runs, as `deploy --attach` refuses it (one rule)
        check_run_id(run_id, "--run-id")
    inv, host = _host_for_local(inventory, hosts)
    splay = splay or 0  # FabopsTask read it (seconds, never negative)
    report.splay_wait(splay)
    if ref is not None:
        from ..host.git import check_ref

        check_ref(ref)
    if pin_reason is not None and (ref is None or "\n" in pin_reason):
        raise errors.UsageError("--pin-reason needs --ref COMMIT and one line: it is the reason of the pin --ref sets")
    if settings_from is not None and not re.fullmatch(r"[0-9a-f]{40}", settings_from):
        raise errors.UsageError(f"--settings-from {settings_from!r}: a full commit SHA (40 hex digits)")
    trigger = report.default_trigger(trigger, splay)
    # the laptop's settings, installed as host.yml by the run once it trusts
    # the target (host/settings.Sent); until then the host's own are in effect
    host, sent = _with_config(host, install_config, run_id)
    opts = UpdateOptions(
        trigger=trigger, actor=actor or "", ref=ref, stash=stash, wait=wait,
        run_id=run_id or new_run_id(), clear_pin=clear_pin,
        allow_unverified=unverified_allowed(allow_unverified, ref), pin_reason=pin_reason or None,
        settings_from=settings_from,
    )
    paths = HostPaths.for_home(host.home)
    whole = report.whole_lines(trigger)
    listeners = []
    if verbose and not json:
        listeners.append(lambda event: _print_event(event, whole))
    events = EventLog(paths.run_events(opts.run_id) if run_id else None, listeners)
    events.start_heartbeat()
    try:
        # fabops' own context, not Invoke's (which read ~/.invoke.yaml)
        result = run_update(local_context(host), host, opts, events, dry_run=dry_run, sent=sent)
    finally:
        events.close()
    if json:
        report.print_json(report.envelope_of({host.name: result.to_dict()}, result.exit_code))
    else:
        said = report.update_lines(host.name, result, verbose or dry_run, result.plan if dry_run else None)
        if said is not None:
            _print(said[0], sys.stderr if said[1] else sys.stdout, whole)
    finish(result.exit_code)


def _with_config(host, install_config, run_id=None):
    """Deploy uploads the laptop's resolved settings as runs/<id>.host.yml:
    (the settings the run starts with, what it may install). The run
    installs them as host.yml (host/settings.Sent), with the host's own
    settings that the laptop left unset kept (docs/hosts.md, "What a deploy
    keeps"), only under the lock and once its plan trusts the target
    (docs/security.md, "Verified commits"); until then it runs with the
    host's installed host.yml. A dry run installs nothing."""
    if not install_config:
        return host, None
    from ..host.settings import Sent, installed
    from ..inventory import loads
    from ..paths import HostPaths

    with open(install_config, encoding="utf-8") as fh:
        text = fh.read()
    home = loads(text, install_config).select(host.name)[0].home
    where = HostPaths.for_home(home).host_yml
    try:
        with open(where, encoding="utf-8") as fh:
            old = fh.read()
    except FileNotFoundError:  # no host.yml yet (a host set up by an older fabops): nothing to keep
        old = None
    text, warnings = installed(old, text, host.name)
    sent = Sent(text, where, loads(text, install_config).select(host.name)[0], tuple(warnings))
    own = _installed_host(old, where, host.name, home)
    if own is None:
        _refuse_unset_home(where, HostPaths.for_home(home).run_events(run_id) if run_id else None, host.name)
    return own or sent.host, sent


def _refuse_unset_home(where: str, events: Optional[str] = None, name: str = "") -> None:
    """No installed host.yml for the sent home: the sent settings are all a
    run would have. On a host where setup installed allowed signers (any
    app's), settings that name a home setup never set up must not run
    unverified there, hooks included (docs/security.md, "When a deploy's
    settings are installed"): refused, exit 78, before the lock. `events`:
    the run's event file, which a deploy follows (deploy.follow): the
    refusal is its result there, as a refused --ref's is (exit 64), so the
    laptop says it at once instead of waiting for a first event that never
    comes and saying it lost contact (exit 3)."""
    from ..host.verify import signed_apps

    signed = signed_apps()
    if not signed:
        return
    exc = errors.ConfigError(where, "", f"not there, and this host requires signed commits ({signed[0]}): "
                                        "a deploy runs only where setup set up fabops; run setup for this host")
    if events:
        from ..host.events import EventLog

        log = EventLog(events)
        try:
            log.emit("result", host=name, result="aborted", exit_code=exc.exit_code, message=exc.message,
                     config={"path": where, "problem": exc.problem})
        finally:
            log.close()
    raise exc


def _installed_host(text, where: str, name: str, home: str):
    """The host's entry of its installed host.yml, when it holds one for
    this home; None when there is none to run with (no file, unreadable,
    another host's or another home's): the sent settings are then all there is."""
    from ..inventory import loads
    from ..paths import HostPaths

    try:
        found = loads(text, where).hosts.get(name) if text else None
    except errors.FabopsError:
        return None
    same = found is not None and HostPaths.for_home(found.home).home == HostPaths.for_home(home).home
    return found if same else None


def _print(text: str, stream=None, whole: bool = False) -> None:
    """Wrapped on stdout and whole on a piped stderr (print_text); stdout's
    whole too when `whole` (report.whole_lines: cron's log)."""
    if whole and (stream or sys.stdout) is sys.stdout:
        print(report.plain(text), file=stream, flush=True)
    else:
        print_text(text, file=stream)


def _print_event(event: dict, whole: bool = False) -> None:
    line = report.event_line(event)
    if line is not None:
        _print(line, whole=whole)


def _report_each(outcome, json, render_name: str, **render_options) -> None:
    """--json, or one rendered block per host, then per-host errors; the exit code."""
    if json:
        print_envelope(outcome.results, code=outcome.code)
    else:
        from . import render

        for r in outcome.results:
            if r.ok:
                getattr(render, render_name)(r.host, r.value, **render_options)
        render.host_errors(outcome.results)
    finish(outcome.code)


# `-n` may be 0 elsewhere (logs --follow: new lines only); here 0 would
# show "no history yet" over a history that exists: 0 and a negative are
# one usage error, `history -n must be at least 1` (read_number), not a
# guess at "all" (docs/pipeline.md)
@fabops_task(help={"n": "How many runs to show, 1 or more (default 20)."}, low={"n": 1})
def history(c, hosts=None, n=20, wide=False, json=False, inventory=None, accept_new=False, connect_timeout=None):
    """Show the last deploys, rollbacks and automatic updates of each host."""
    from ..remote import read_remote_history
    from ._base import for_each_host

    outcome = for_each_host(inventory, hosts, lambda cxn, host: read_remote_history(cxn, host, int(n)),
                            accept_new=accept_new, connect_timeout=connect_timeout)
    _report_each(outcome, json, "history_table", wide=wide)


@fabops_task
def status(c, hosts=None, json=False, inventory=None, accept_new=False, connect_timeout=None):
    """Show each service's state, PID and uptime, the deployed commit, pins and the last run; exit 2 when a service is down."""
    from ..remote import gather_status, status_code
    from ._base import for_each_host

    outcome = for_each_host(inventory, hosts, gather_status, accept_new=accept_new, connect_timeout=connect_timeout)
    for r in outcome.results:
        if r.ok:
            r.code = status_code(r.value)
    from .deploy import inventory_flag

    _report_each(outcome, json, "status_panel", flag=inventory_flag(inventory))  # `inv unpin -i PATH`


@fabops_task
def metrics(c, hosts=None, inventory=None, accept_new=False, connect_timeout=None):
    """Print each host's metrics in Prometheus' text format: what its runs write for node_exporter (docs/metrics.md)."""
    from ..host.prom import merged, render
    from ..prometheus import host_families
    from ._base import for_each_host
    from .render import host_errors

    outcome = for_each_host(inventory, hosts, host_families, accept_new=accept_new, connect_timeout=connect_timeout)
    # the exposition as it is (a scraper's format: never wrapped or padded),
    # every host's samples under one HELP and TYPE per metric
    sys.stdout.write(render(merged(r.value for r in outcome.results if r.ok)))
    sys.stdout.flush()
    host_errors(outcome.results)
    finish(outcome.code)


ns = Collection("update", local_update, history, status, metrics)
