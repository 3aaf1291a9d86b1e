"""`inv backup [--list] [--dry-run]`: local snapshots of the app's data and
settings, made by the host (fabops/host/backup.py, docs/backups.md), and
copied off the host to a restic repository when `backup.repository` is
set (fabops/host/restic.py); without one, every output says so."""
from __future__ import annotations

from invoke import Collection

from .. import errors
from ..host.report import backup_run_lines as run_lines, size_text as _size
from ._base import fabops_task, finish, print_envelope, print_text


def verify_lines(data: dict) -> list:
    """--verify's checks: the newest local snapshot against its manifest,
    and the repository's (restic check, the newest restored and compared)."""
    v = data.get("verify") or {}
    out = []
    for where, c in (("local", v.get("local")), ("off-host", v.get("offsite"))):
        if not c:
            continue
        what = (f"restic check ok, snapshot {c.get('id')} (run {c.get('run_id')}) restored to a temp dir: "
                if where == "off-host" else f"snapshot {c.get('run_id')}: ")
        if c.get("error"):
            out.append(f"verify {where} FAILED: {c['error']}")
        elif c.get("bad"):
            out += [f"verify {where} FAILED: {what}{len(c['bad'])} of {c.get('items')} files differ"]
            out += [f"  {b}" for b in c["bad"]]
        else:
            out.append(f"verify {where}: {what}{c.get('items')} files match the manifest's sha256")
    return out


def list_lines(data: dict) -> list:
    from .render import fmt_duration

    snaps = data.get("snapshots") or []
    out = [f"{s['run_id']}  {fmt_duration(s.get('age'))} ago  {_size(s.get('size'))}  {s.get('items')} items  "
           + ("ok" if s.get("ok") else f"{s.get('failed')} FAILED")
           + ("  (saved before a restore)" if s.get("undo_of") else "") for s in snaps] \
        or ["no snapshots yet"]
    off = data.get("offsite_snapshots")
    if off is None:
        return out
    out = (["on the host:"] + [f"  {line}" for line in out]
           + [f"off the host (restic): {len(off.get('snapshots') or [])} snapshots"])
    if off.get("error"):
        return out[:-1] + [f"off the host FAILED: {off['error']}"]
    return out + [f"  {s['run_id']}  {s['id']}  {fmt_duration(s.get('age'))} ago  "
                  + (_size(s["size"]) if s.get("size") is not None else "size ? (not on the host)")
                  for s in off.get("snapshots") or []]


def _action(list, dry_run, verify, restore, only, to, yes):
    """The host's action and its arguments, from the flags (usage errors
    before anything connects; an in-place restore asks first, its dry run
    never: it changes nothing)."""
    from ..host.record import default_actor
    from ..paths import check_run_id
    from .maintenance import confirm

    if sum(map(bool, (list, verify, restore or dry_run))) > 1:
        raise errors.UsageError("backup --list, --verify, --restore and --dry-run are different tasks: give one "
                                "(or --restore RUN_ID --dry-run: that restore's plan)")
    if (only or to) and not restore:
        raise errors.UsageError("backup --only and --to go with --restore RUN_ID")
    if restore:
        check_run_id(restore, "backup --restore")  # a file name under backups/, never a path (`../x`)
        if dry_run:
            return "restore-plan", (restore, only or "", to or "")
        if not to:
            confirm(f"Restore snapshot {restore} in place (the services stop; what is there now is saved first)?",
                    yes)
        # who runs it is the laptop's to say, as for a backup (the host would record its own deploy user)
        return "restore", (restore, only or "", to or "", default_actor())
    if not (list or dry_run or verify):
        # who runs it is the laptop's to say (the host would record its own deploy user)
        return "run", (default_actor(),)
    return ("list" if list else "plan" if dry_run else "verify"), ()


def restore_lines(data: dict, prefix: int = 0) -> list:
    """A restore: where from, what it saved first, each item, each service's
    gate. With --to, an item put in one place says where on its own row
    when the row still fits the width with the `prefix` columns before it
    (`[host] `), else on the lines under it (#24's fresh-clone trial: a
    lone `into PATH` under a blank name column)."""
    from ..host.report import item_label
    from ._base import width

    r = data.get("restore") or {}
    out = [f"restore {r.get('run_id')} from the {r.get('from')} snapshot "
           + (f"into {r['to']}" if r.get("to") else "in place") + (": ok" if r.get("ok") else ": FAILED")]
    if r.get("saved"):
        out.append(f"  saved what was there first as snapshot {r['saved']}"
                   + (f": REFUSED, {r['refused']}" if r.get("refused") else " (restore it to undo this)"))
    items = r.get("items") or []
    # one column, each item named as a backup run's rows name it (`files (files.tar)`, host/report.item_label)
    name_w = max((len(item_label(i)) for i in items), default=0)
    for i in items:
        state = "ok" if i.get("ok") and not i.get("skipped") else (f"skipped: {i['skipped']}" if i.get("skipped")
                                                                   else f"FAILED {i.get('error')}")
        row, put = f"  {item_label(i).ljust(name_w)}  {state}", list(i.get("put") or ()) if r.get("to") else []
        if len(put) == 1 and prefix + len(row) + len(f", into {put[0]}") <= width():
            row, put = f"{row}, into {put[0]}", []
        out.append(row)
        # under DIR each path is the source's, not DIR's top (docs/backups.md, "Restore")
        out += [f"  {''.ljust(name_w)}  into {dest}" for dest in put]
    out += [f"  service {s.get('service')}: " + ("ready" if s.get("ok") else f"FAILED {s.get('message')}")
            for s in r.get("services") or []]
    return out + ([f"  HELD: {r['held']}"] if r.get("held") else [])  # not started (host/restore.kept_down)


@fabops_task(help={
    "list": "List the host's snapshots, local and in the repository (age, size), instead of making one.",
    "dry_run": "Show what a backup would copy and which snapshots retention would delete, or with --restore what "
               "the restore would stop, save, put back or refuse; change nothing.",
    "restore": "Put snapshot RUN_ID back in place: stop the services, save what is there now, restore, start them "
               "and run their readiness gate (asks first, or --yes).",
    "splay": "Before a run, wait a random 0..SECONDS, so hosts that share a repository do not all upload at once "
             "(cron's line).",
    "only": "With --restore: only this item (its name or file: files, env, sqlite-app.db, ...).",
    "to": "With --restore: put the items into this directory beside the live data instead; nothing is stopped.",
    "yes": "With --restore in place: do not ask.",
    "verify": "Check the newest local snapshot against its manifest's sha256, and the repository: restic check "
              "and its newest snapshot restored into a temp dir and compared.",
})
def backup(c, hosts=None, list=False, dry_run=False, verify=False, restore=None, only=None, to=None, yes=False,
           json=False, inventory=None, accept_new=False, connect_timeout=None, splay=0):
    """Back up the app's data and settings into a local snapshot on the host, then off the host (restic)."""
    from ..host.report import splay_wait
    from ..host.would import lines
    from ..maintenance.backup import backup as on_host, exit_code
    from ._base import for_each_host
    from .render import host_errors

    action, extra = _action(list, dry_run, verify, restore, only, to, yes)
    if action == "run":  # cron's line waits its splay here too when it takes the full program (host/fastpath)
        splay_wait(splay or 0)
    outcome = for_each_host(inventory, hosts, lambda cxn, host: on_host(cxn, host, action, extra),
                            accept_new=accept_new, connect_timeout=connect_timeout)
    codes = [exit_code(action, r.value) if r.ok else r.code for r in outcome.results]
    if json:
        print_envelope(outcome.results, code=errors.worst(codes), **({"dry_run": True} if dry_run else {}))
        finish(errors.worst(codes))
        return
    for r in outcome.results:
        if not r.ok:
            continue
        said = (list_lines(r.value) if list else lines(r.value.get("would") or []) if dry_run
                else verify_lines(r.value) if verify else restore_lines(r.value, len(f"[{r.host}] ")) if restore
                else run_lines(r.value))
        for line in said + [f"warning: {w}" for w in r.value.get("warnings") or []]:
            print_text(f"[{r.host}] {line}")
    host_errors(outcome.results)
    finish(errors.worst(codes))


ns = Collection("backup", backup)
