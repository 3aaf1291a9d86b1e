"""reset, backup-env, restore-env, clean, system-update: the 3 a.m. tasks."""
from __future__ import annotations

import sys
import time

from invoke import Collection

from .. import errors
from ..shortsha import short_sha
from ._base import JSON_SCHEMA, fabops_task, finish, print_envelope, print_json, print_text, select


def confirm(question: str, yes: bool) -> None:
    """`--yes`, or a `y` typed at a TTY; with no TTY, refuse (exit 64).
    Ctrl-D (end of input) is a no, as Enter is. Every task that asks
    (reset and its --force question, restore-env, an in-place backup
    --restore) asks here, before it changes anything, so a no is one answer
    for all of them: `fabops: cancelled: nothing was changed`, exit 64
    (docs/errors.md)."""
    if yes:
        return
    if not sys.stdin.isatty():
        # `fabops: restore …: refusing`, lower case after the prefix as every message (trial 2 #7);
        # a question's own `?` is not kept before the colon
        asked = question.rstrip("?")
        raise errors.UsageError(f"{asked[:1].lower()}{asked[1:]}: refusing without confirmation (no TTY); "
                                "pass --yes")
    try:
        answer = input(f"{question} [y/N] ").strip().lower()
    except EOFError:  # not a failed connection (it was reported as one, with no reason)
        print(file=sys.stderr)  # end the prompt's line: the message starts on its own
        answer = ""
    if answer not in ("y", "yes"):
        # said where every asking task is documented (docs/maintenance.md, docs/backups.md)
        raise errors.UsageError("cancelled: nothing was changed")


def each_host(inventory, hosts, fn, accept_new, connect_timeout):
    """for_each_host as the maintenance tasks call it (env-set's too)."""
    from ._base import for_each_host

    return for_each_host(inventory, hosts, fn, accept_new=accept_new, connect_timeout=connect_timeout)


def errors_out(outcome):
    """Each failed host's error, as every maintenance task says it."""
    from .render import host_errors

    host_errors(outcome.results)


def progress_for(host):
    """A run's progress callback: each line prefixed with its host."""
    return lambda m: print_text(f"[{host.name}] {m}")


@fabops_task(help={
    "force": "If a hung run holds the host lock, stop it (after confirmation).",
    "actor": "Who resets, for the history (default user@laptop).",
})
def reset(c, hosts=None, yes=False, dry_run=False, force=False, actor=None, json=False, inventory=None,
          accept_new=False, connect_timeout=None):
    """Emergency reset to origin: save .env and local changes, reset, re-run deps, restart, poll."""
    from ..connection import close_quietly, connect
    from ..maintenance import reset_plan
    from .deploy import inventory_flag
    from .render import host_errors

    inv, chosen = select(inventory, hosts)
    conns = {}
    plans = {}
    results = {}
    try:
        for host in chosen:
            conns[host.name] = connect(host, inv, accept_new=accept_new, connect_timeout=connect_timeout)
            plans[host.name] = reset_plan(conns[host.name], host, inventory_flag(inventory))
        # decide first, then ask: a host whose plan refuses (a held port, a
        # run holding the lock) is reported, never asked about or touched
        refused = {h.name: r for h in chosen for r in [refusal(h, plans[h.name], force)] if r}
        acting = [h for h in chosen if h.name not in refused]
        out = sys.stderr if json else sys.stdout  # keep stdout pure JSON for scripts
        # --json prints its envelope only; the plan goes to stderr there
        # only when a person is about to confirm it (no --yes, no --dry-run)
        asking = not (dry_run or yes)
        for host in () if json and not asking else chosen if dry_run else acting:
            for line in reset_lines(host, plans[host.name], dry_run, force):
                print_text(line, file=out)
        if dry_run:
            _reset_dry_run(chosen, plans, refused, force, json)
            return
        if not json or asking:  # said before the question, where the plan is
            host_errors(refused.values())
        if acting:
            results = _resets(acting, plans, conns, yes, actor, json)
    finally:
        for cxn in conns.values():
            close_quietly(cxn)
    ordered = [refused.get(h.name) or results[h.name] for h in chosen]
    code = errors.worst((r.value.exit_code if r.ok else r.code) for r in ordered)
    if json:
        print_envelope(ordered, lambda v: v.to_dict(), code=code)
    else:
        for r in ordered:
            if r.ok:
                print_text(f"[{r.host}] {r.value.result}: {r.value.message}")
        host_errors(results.values())
    finish(code)


def _reset_dry_run(chosen, plans, refused, force: bool, json: bool) -> None:
    """--dry-run's end: each host's plan in --json (its lines are printed),
    and the refusals' code (the real reset's)."""
    from ..host.would import as_json
    from ..maintenance.reset import reset_would

    code = errors.worst(r.code for r in refused.values())
    if json:
        print_json({"schema": JSON_SCHEMA, "code": code, "dry_run": True,
                    "hosts": {h.name: {**plans[h.name].to_dict(), "would": as_json(reset_would(h, plans[h.name], force))}
                              for h in chosen}})
    finish(code)


def _resets(acting, plans, conns, yes: bool, actor, json: bool) -> dict:
    """Ask about the hosts that would be reset (and, with --force, about
    the lock holders their plans found), then reset them: each one's
    result, by host name. --force stops only a holder that was asked about."""
    from ..fanout import run_hosts
    from ..host.record import default_actor
    from ..maintenance import reset as do_reset

    confirm(f"Reset {', '.join(h.name for h in acting)}?", yes)
    stopping = [h.name for h in acting if plans[h.name].lock == "locked"]  # --force: refusal let them by
    if stopping:
        confirm(f"Stop the run that holds the host lock on {', '.join(stopping)}?", yes)
    who = actor or default_actor()
    outcome = run_hosts(acting, lambda h: do_reset(conns[h.name], h, plans[h.name], who, force=h.name in stopping,
                                                   progress=None if json else progress_for(h)))
    return {r.host: r for r in outcome.results}


def refusal(host, p, force: bool):
    """A refusing host's result as the real reset's error would be (its
    words and exit code: ResetPlan.refusal), or None when it would act."""
    from ..fanout import HostResult

    refused = p.refusal(force)
    if not refused:
        return None
    code, why = refused
    error = (errors.LockedError if code == errors.LOCKED else errors.FabopsError)("; ".join(why), host=host.name)
    return HostResult(host.name, error=error, code=code)


def reset_lines(host, p, dry_run: bool, force: bool = False) -> list:
    """What reset prints of its plan before it acts: with --dry-run, every
    write in the line form every dry run shares; else the same plan as one
    line before the confirmation; then the local changes it saves. A
    target that failed its gate says the line the real reset says
    (ResetPlan.known_bad, host/plan.known_bad's words)."""
    from ..host.record import counted
    from ..host.would import lines
    from ..maintenance.reset import reset_would

    bad = p.known_bad
    listed = [f"[{host.name}]   {line}" for line in p.dirty[:20]]
    if dry_run:
        said = lines(reset_would(host, p, force), f"[{host.name}] ")
        # the local changes under the step that saves them, not after the
        # last one (#24's trial read them as part of `would record state.json`)
        at = next((i + 1 for i, line in enumerate(said) if line.startswith(f"[{host.name}] would save ")), len(said))
        return ([f"[{host.name}] plan: {bad}"] if bad else []) + said[:at] + listed + said[at:]
    else:
        out = [f"[{host.name}] plan: save .env and {counted(len(p.dirty), 'local change')} to {host.backup_dir}/reset-<time>/, "
               f"stop {', '.join(s.name for s in reversed(host.services)) or 'nothing'}, "
               f"reset {short_sha(p.head, 'none')} -> {short_sha(p.target, '?')} ({host.app.remote}/{host.app.branch}), "
               f"run {counted(len(host.deps), 'dependency rule')}{', ' + host.setup_command if host.setup_command else ''}, "
               "start and poll readiness" + (f"; {bad}" if bad else "")]
    return out + listed


@fabops_task(name="backup-env", help={
    "download": "Also copy the backup to DIR/<host>/ here (0700 dir, 0600 file).",
    "keep": "How many backups to keep on the host (default 20).",
    "list": "List the backups on the host instead of making one.",
})
def backup_env(c, hosts=None, download=None, keep=20, list=False, json=False, inventory=None, accept_new=False,
               connect_timeout=None):
    """Back up the app's .env on the host (0600, rotated); prints size and sha256, never the content."""
    from ..maintenance import backup_env as do_backup, list_env_cmd, parse_env_list

    if list and download:
        # --list makes no backup, so there is nothing to download: refused
        # rather than a listing that quietly leaves DIR empty
        raise errors.UsageError("backup-env --list makes no backup to --download; give one or the other")
    if list:
        fn = lambda cxn, host: parse_env_list(cxn.output(list_env_cmd(host)), host)  # noqa: E731
    else:
        def fn(cxn, host):
            return _env_backed_up(cxn, host, lambda: do_backup(cxn, host, keep=keep, download=download))
    outcome = each_host(inventory, hosts, fn, accept_new, connect_timeout)
    if json:
        print_envelope(outcome.results, lambda v: [b.to_dict() for b in v] if list else v.to_dict(), code=outcome.code)
    else:
        for r in outcome.results:
            if not r.ok:
                continue
            items = r.value if list else [r.value]
            if list and not items:
                print_text(f"[{r.host}] no .env backups yet")
            for b in items:
                where = f" -> {b.local}" if b.local else ""
                print_text(f"[{r.host}] {b.name}  {b.size} bytes  sha256 {b.sha256}{where}")
        errors_out(outcome)
    finish(outcome.code)


def _env_backed_up(cxn, host, backup):
    """`backup()`'s .env backup; on the host itself (cron's weekly line)
    counted with its result, exit code and duration, and its time kept
    when it succeeded (host/prom.env_backup_done, docs/metrics.md). One a
    laptop runs over SSH writes nothing there, as a clean (_cleaned): the
    host's own runs write its metrics. A refused flag (--keep 0) is no run."""
    if not cxn.is_local:
        return backup()
    from ..host.prom import env_backup_done

    start = time.monotonic()
    try:
        made = backup()
    except errors.UsageError:
        raise
    except Exception as exc:
        env_backup_done(host, getattr(exc, "exit_code", errors.INTERNAL), time.monotonic() - start)
        raise
    env_backup_done(host, errors.OK, time.monotonic() - start)
    return made


@fabops_task(name="restore-env", help={
    "backup": "The backup to restore (a name from `backup-env --list`).",
    "actor": "Who restores, for the lock message.",
    "force": "Restore a backup that lacks a variable the deployed checkout's .env.example needs anyway (refused "
             "otherwise: the next deploy would refuse the host until it is set again).",
})
def restore_env(c, hosts=None, backup=None, yes=False, force=False, dry_run=False, actor=None, json=False,
                inventory=None, accept_new=False, connect_timeout=None):
    """Restore a .env backup (the current one is backed up first), restart and poll; shows key names only."""
    from ..host.record import default_actor
    from ..host.would import lines
    from ..maintenance import restore_env as do_restore
    from ..maintenance.env import SAME
    from .deploy import inventory_flag
    from .render import hint

    if not backup:
        names = [h.name for h in select(inventory, hosts)[1]]
        listing = hint(inventory_flag(inventory), names, "backup-env", "--list")
        raise errors.UsageError(f"--backup NAME is required (see {listing})")
    who = actor or default_actor()

    def run(plan: bool):
        return each_host(inventory, hosts, lambda cxn, host: do_restore(cxn, host, backup, who, dry_run=plan,
                                                                    progress=None if json or plan else progress_for(host),
                                                                    inventory=inventory_flag(inventory), force=force),
                     accept_new, connect_timeout)

    if dry_run or yes:
        outcome = run(dry_run)
    else:  # the dry run's plan first: nothing to ask (or refuse) when no host has anything to restore
        outcome = run(True)
        if any(r.ok and r.value["would"] for r in outcome.results):
            confirm(f"Restore {backup} and restart the services?", yes)
            outcome = run(False)
        else:  # as the real run says it (and returns it) when the backup is the current .env
            for r in outcome.results:
                if r.ok:
                    r.value = {"diff": r.value["diff"], "restored": False, "services": []}
                    if not json:
                        print_text(f"[{r.host}] nothing to restore: {SAME}")
    # a forced restore without keys the next deploy needs is a warning (maintenance/required.required_gone)
    codes = [(errors.FAILED if any(not s["ok"] for s in r.value.get("services", []))
              else errors.WARNING if r.value.get("warnings") else errors.OK) if r.ok
             else r.code for r in outcome.results]
    if json:
        print_envelope(outcome.results, code=errors.worst(codes))
    # a real run said its keys as it went, before its restarts' verdict (maintenance/env.restore_env)
    for r in outcome.results:
        if r.ok and dry_run and not json:  # the plan alone: its restore line names the keys
            for line in lines(r.value["would"], f"[{r.host}] ", none=f"would change nothing: {SAME}"):
                print_text(line)
    if not json:
        errors_out(outcome)
    finish(errors.worst(codes))


@fabops_task
def clean(c, hosts=None, dry_run=False, json=False, inventory=None, accept_new=False, connect_timeout=None):
    """Delete files matching the cleanup rules (old *.pcm recordings); reports count and bytes per rule."""
    from ..host.record import counted
    from ..host.report import size_text
    from ..host.would import as_json, lines
    from ..maintenance import clean as do_clean
    from ..maintenance.clean import clean_would

    outcome = each_host(inventory, hosts, lambda cxn, host: _cleaned(cxn, host, do_clean(cxn, host, dry_run=dry_run), dry_run),
                    accept_new, connect_timeout)
    if json:
        # one shape for both runs (#24's trial: the real run gave a bare list):
        # each rule applied with its counts (deleted, or would delete), and a
        # dry run's `would`, the list every dry run shares (docs/json.md)
        print_envelope(outcome.results, lambda v: {"dry_run": dry_run, "rules": [x.to_dict() for x in v],
                                                   **({"would": as_json(clean_would(v))} if dry_run else {})},
                       code=outcome.code)
    else:
        for r in outcome.results:
            if r.ok:
                if not r.value:
                    print_text(f"[{r.host}] no cleanup rules")
                elif dry_run:
                    for line in lines(clean_would(r.value), f"[{r.host}] ", none="nothing to delete"):
                        print_text(line)
                for x in [] if dry_run else r.value:
                    print_text(f"[{r.host}] {x.path}/{x.glob}: deleted {counted(x.files, 'file')}, {size_text(x.bytes)}")
        errors_out(outcome)
    finish(outcome.code)


def _cleaned(cxn, host, results, dry_run: bool):
    """`results`, after a real clean on the host itself (cron's line) counted
    with what it freed, and the host's metrics written (host/prom.py,
    docs/metrics.md); a dry run or a clean over SSH writes none (the
    host's own runs write its file)."""
    if cxn.is_local and not dry_run:
        from ..host.prom import clean_done

        clean_done(host, sum(r.files for r in results), sum(r.bytes for r in results))
    return results


SHOWN = 50  # system-update lists this many packages per host; --json has them all


@fabops_task(name="system-update", help={
    "check": "Only list available updates: exit 1 when there are some, 0 when none (the default).",
})
def system_update(c, hosts=None, check=False, yes=False, json=False, inventory=None, accept_new=False,
                  connect_timeout=None):
    """List OS package updates (dnf, yum or apt), or apply them with --yes (not on a local host: that is this machine); says if a reboot is needed."""
    from ..host.record import counted
    from ..maintenance import system_update as do_update
    from .deploy import inventory_flag
    from .render import hint

    if check and yes:
        raise errors.UsageError("--check and --yes exclude each other")

    local = set()  # the sandbox hosts: no --yes is offered for them

    def one(cxn, host):
        if host.sandbox:
            local.add(host.name)
        if yes and host.sandbox:
            # setup and cron keep to the sandbox; upgrading packages cannot (trial: --check offered --yes there)
            raise errors.UsageError(f"{host.name} is the sandbox on this machine (sandbox: true): system-update --yes "
                                    "would upgrade this machine's own packages; apply updates on a real host",
                                    host=host.name)
        return do_update(cxn, host, apply=yes)

    outcome = each_host(inventory, hosts, one, accept_new, connect_timeout)
    codes = []
    for r in outcome.results:
        if r.ok:
            pending = r.value.updates and not r.value.applied
            codes.append(errors.WARNING if pending or r.value.reboot_needed else errors.OK)
        else:
            codes.append(r.code)
    if json:
        print_envelope(outcome.results, lambda v: v.to_dict(), code=errors.worst(codes))
    else:
        for r in outcome.results:
            if not r.ok:
                continue
            v = r.value
            if v.applied:
                print_text(f"[{r.host}] {v.manager}: applied {counted(len(v.updates), 'update')}"
                           + ("; a REBOOT is needed" if v.reboot_needed else "; no reboot needed"))
            else:
                apply = (" (this machine's own: --yes is refused on a local host)" if r.host in local
                         else f" (apply with {hint(inventory_flag(inventory), r.host, 'system-update', '--yes')})")
                print_text(f"[{r.host}] {v.manager}: {counted(len(v.updates), 'update')} available"
                           + (apply if v.updates else ""))
                for pkg in v.updates[:SHOWN]:
                    print_text(f"[{r.host}]   {pkg}")
                if len(v.updates) > SHOWN:  # the rest: how many, and where they are
                    print_text(f"[{r.host}]   … and {len(v.updates) - SHOWN} more: "
                               f"{hint(inventory_flag(inventory), r.host, 'system-update', '--check', '--json')} "
                               "lists them all")
        errors_out(outcome)
    finish(errors.worst(codes))


ns = Collection("maintenance", reset, backup_env, restore_env, clean, system_update)
