"""`inv setup`: converge a host, item by item, reporting `ok` or `changed`.

Every item knows the text it wants on the host, reads what is there in one
command, and only writes on a difference, so a second run is all `ok`.
`--check` shows a unified diff of every file or crontab it would change and
changes nothing. System files go through `sudo -n` and are validated before
they are moved into place (`visudo -cf`, `logrotate -d`); a failed validation
leaves the old file untouched. It also finds what the legacy scripts left
behind (their cron lines, /etc/sudoers lines, logrotate file, unit files).
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterator, List, Optional

from .cron import apply_block, diff, read_crontab, render_block, sandbox_table, table_name, write_crontab
from .errors import CommandFailed
from .host.hold import hold_check
from .host.record import counted
from .host.would import Would, as_json
from .inventory import Host
from .shell import Cmd, path as host_path, program, raw, sh, sudo
from .target import Target, UserTarget
from .unit_audit import (absolute, lockout_unit, system_unit, parse_unit_facts, root_paths, root_unit_problem,
                         unit_facts_cmd, with_parents)
from .validate import TEXTFILE_DIRS, metrics_dir_problem

WRAPPERS = {
    "monitor-bot": ["monitor"],
    "bot-status": ["status"],
    "bot-logs": ["logs", "-f"],
    "bot-restart": ["restart"],
    "bot-update": ["local-update", "--verbose"],
    "bot-health": ["health"],
}
MANAGED = "# Managed by fabops: changes here are replaced by `inv setup`."
# Which app a root file of fabops' belongs to: two apps whose directories
# share a name would share a drop-in, launchers and a logrotate file, each
# setup taking them from the other.
APP_LINE = "# fabops app: "
LEGACY_CRON = re.compile(r"(auto-update|health-check|voice-meeting-bot|monitor-bot)", re.I)


@dataclass
class ItemResult:
    name: str
    status: str  # ok | changed | would change | warning | failed | refused (exit 78: the inventory must change)
    message: str = ""
    diff: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SetupReport:
    host: str
    items: List[ItemResult] = field(default_factory=list)
    check: bool = False  # --check: the report is a plan, and its JSON carries `would`

    @property
    def exit_code(self) -> int:
        from . import errors

        if any(i.status == "refused" for i in self.items):
            return errors.CONFIG
        if any(i.status == "failed" for i in self.items):
            return errors.FAILED
        if any(i.status == "warning" for i in self.items):
            return errors.WARNING
        return errors.OK

    def to_dict(self) -> dict:
        d = {"host": self.host, "items": [i.to_dict() for i in self.items], "exit_code": self.exit_code}
        if self.check:
            d["would"] = as_json(would(self.items))
        return d


def would(items: List[ItemResult]) -> List[Would]:
    """The items --check found would change, in setup's order, in the shape
    every dry run shares (host/would.py): the item is the target, what it
    names (a file, the crontab's block, a group) is why; the diff stays in
    the item."""
    return [Would("change", i.name, i.message) for i in items if i.status == "would change"]


def _read(t: Target, path: str, root: bool) -> Optional[str]:
    if root:
        cmd = sh("if {test}; then {cat} 2>/dev/null; else echo '@@absent'; fi",
                 test=sudo(["test", "-e", path]), cat=sudo(["cat", path]))
    else:
        cmd = sh("if test -e {p}; then cat {p} 2>/dev/null; else echo '@@absent'; fi", p=host_path(path))
    out = t.output(cmd)
    return None if out == "@@absent\n" else out


# How put_file checks a system file before it is moved into place ($T is
# the temp file): by name, so that no caller passes shell code.
VALIDATORS = {
    "visudo": raw('visudo -cf "$T" >/dev/null'),
    "logrotate": raw('logrotate -d "$T" >/dev/null 2>&1'),
}


def put_file(c, host: Host, path: str, content: str, *, mode: str, root: bool, validate: Optional[str] = None,
             owner: Optional[str] = None, decode: bool = False) -> None:
    """Write `content` (sent on stdin) via a temp file; validate it
    (`validate` names one of VALIDATORS); then install it with its mode in
    one rename. The old file is untouched if validation fails. `decode`:
    `content` is base64 of a binary file (the OpenPGP keyring), decoded
    into the temp file.

    A file root reads is staged in a root-owned temp file (`sudo mktemp`),
    never in a directory the deploy user could write: swapping it between
    the validation and the install would install any sudoers rule. The
    user's own files are staged in fabops' 0700 home."""
    check = raw("")
    if validate:
        # as root (sudo -n): visudo and logrotate live in /usr/sbin, outside a
        # deploy user's PATH but inside sudo's secure_path
        check = sh("{root}{validator} || {{ echo \"validation failed\" >&2; exit 65; }}\n",
                   root=raw("sudo -n ") if root else raw(""), validator=VALIDATORS[validate])
    if root:
        own = sh(" -o {owner}", owner=owner) if owner else raw(" -o root -g root")
        script = sh(
            "set -e\n"
            "T=$(sudo -n mktemp)\n"
            "trap 'sudo -n rm -f \"$T\"' EXIT\n"
            "{decode}sudo -n tee \"$T\" >/dev/null\n"
            "{check}"
            "test -d {parent} || (umask 022 && sudo -n mkdir -p {parent})\n"
            "sudo -n install -m {mode}{own} \"$T\" {dest}\n",
            check=check, parent=host_path(posixpath.dirname(path)), mode=mode, own=own, dest=host_path(path),
            decode=raw("base64 -d | ") if decode else raw(""))
    else:
        # a fresh, unpredictable name (mktemp: O_EXCL, 0600) in fabops' own
        # 0700 home, never a name built from inventory values in /tmp
        script = sh(
            "set -e; umask 077\n"
            "mkdir -p {home}; chmod 700 {home}\n"
            "T=$(mktemp {template})\n"
            "trap 'rm -f \"$T\"' EXIT\n"
            "{decode} > \"$T\"\n"
            "{check}"
            "test -d {parent} || (umask 022 && mkdir -p {parent})\n"
            "install -m {mode} \"$T\" {dest}\n",
            home=host_path(host.home), template=host_path(host.paths.file(".setup.XXXXXXXX")), check=check,
            parent=host_path(posixpath.dirname(path)), mode=mode, dest=host_path(path),
            decode=raw("base64 -d") if decode else raw("cat"))
    # the text on stdin: host.yml holds env values and check headers, and an
    # argv is what `ps` shows every user of the host (docs/security.md)
    Target.of(c, host).run(script, f"writing {path}", argv=["install", path], stdin=content)


# ------------------------------------------------------------------ renderers


# The only commands fabops runs as root after setup: the service actions of
# the pipeline, `restart` and `health --fix` (fabops/host/services.py). Each
# rule is one exact argument vector: sudo matches a rule with arguments
# against the whole command line, so `systemctl restart UNIT --now` or a
# second unit is refused. No `status` (its pager, run as root, is a shell),
# no `show` or `is-active` (they need no root), no journalctl (journal
# access is membership of the systemd-journal group, which setup adds: a
# root journalctl can --vacuum, --rotate and read any -D directory).
SUDO_VERBS = ("start", "stop", "restart", "reset-failed")


def sudo_commands(host: Host, systemctl: str = "/usr/bin/systemctl", without=()) -> List[List[str]]:
    """Every argument vector the drop-in allows, in its order; none for the
    units in `without` (refused: they run as root from the user's files)."""
    units = [s.name for s in host.services if s.manager == "systemd" and s.name not in without]
    return [[systemctl, verb, u] for u in units for verb in SUDO_VERBS]


def sudoers_text(host: Host, systemctl: str = "/usr/bin/systemctl", without=()) -> str:
    user = host.user or "ec2-user"
    lines = [MANAGED, f"# Only the exact commands fabops runs as root for {host.app.name}'s units",
             "# (docs/security.md); the journal is read through the systemd-journal group."]
    for argv in sudo_commands(host, systemctl, without):
        # `:` is allowed in unit names and special in sudoers (escape it)
        lines.append(f"{user} ALL=(root) NOPASSWD: {' '.join(a.replace(':', chr(92) + ':') for a in argv)}")
    return "\n".join(lines) + "\n"


def sudoers_path(host: Host) -> str:
    """The drop-in's name: sudo silently skips a file in /etc/sudoers.d
    whose name holds a '.' or ends in '~', so an app at ~/app.v2 would get
    no rules at all."""
    return "/etc/sudoers.d/fabops-" + host.app.name.replace(".", "_").rstrip("~")


def logrotate_text(host: Host, home: str = "", group: str = "", user_dirs=()) -> str:
    """fabops' logrotate file. Paths are absolute (logrotate runs as root
    and would read ~ as /root). A log in a directory the deploy user can
    write (its home, `user_dirs`) is rotated as that user (`su`): root
    renaming files where that user can plant links is a known way to root.
    Logs in root's directories (setup makes /var/log/<dir> root-owned) are
    rotated by root, which alone may rename there (docs/security.md, "Log
    files")."""
    paths = [absolute(host.logs[k], home) for k in ("update", "health") if host.logs.get(k)]
    if not paths:
        return ""
    user = host.user or "root"
    group = group or user
    theirs = [p for p in paths
              if (home and p.startswith(posixpath.join(home, ""))) or posixpath.dirname(p) in user_dirs]
    blocks = []
    for chosen, su in (([p for p in paths if p not in theirs], ""), (theirs, f"    su {user} {group}\n")):
        if chosen:
            blocks.append(" ".join(chosen) + " {\n" + su +
                          "    weekly\n    rotate 8\n    compress\n    delaycompress\n    missingok\n    notifempty\n"
                          f"    create 0640 {user} {group}\n" + "}\n")
    return f"{MANAGED}\n" + "".join(blocks)


JOURNAL_GROUP = "systemd-journal"


def journal_access(c, host: Host, check: bool) -> ItemResult:
    """The deploy user reads its units' journals as a member of
    systemd-journal (`inv logs`, monitor's error count), never through a
    root journalctl. Takes effect from the next login; every fabops task
    logs in afresh."""
    user = host.user or "ec2-user"
    name = "journal access"
    if user == "root":
        return ItemResult(name, "ok", "root reads every journal")
    t = Target.of(c, host)
    groups = t.output(sh("getent group {group} >/dev/null || echo @@nogroup; id -nG {user}", group=JOURNAL_GROUP,
                         user=user))
    if "@@nogroup" in groups:
        return ItemResult(name, "warning", f"no {JOURNAL_GROUP} group on this host: `{program()} logs` sees only "
                                           f"what {user} may read of the journal")
    if JOURNAL_GROUP in groups.split():
        return ItemResult(name, "ok", f"{user} is in {JOURNAL_GROUP}")
    what = f"add {user} to {JOURNAL_GROUP}, so that `{program()} logs` reads the units' journals without sudo"
    if check:
        return ItemResult(name, "would change", what)
    t.sudo(["usermod", "-a", "-G", JOURNAL_GROUP, user], f"adding {user} to {JOURNAL_GROUP}")
    return ItemResult(name, "changed", f"added {user} to {JOURNAL_GROUP} (`{program()} logs` needs no sudo)")


# Where each service's start script lives: root-owned (0755, in a 0755
# directory), so neither the deploy user nor a pusher can change what the
# unit starts; named by the app and the unit, both of a safe alphabet.
LAUNCHERS = "/usr/local/libexec/fabops"


def launcher_path(host: Host, svc) -> str:
    return posixpath.join(LAUNCHERS, host.app.name, svc.name)


def unit_text(host: Host, svc, home: str) -> str:
    """The unit: who runs it, where, and the launcher it starts. No command
    text and no EnvironmentFile= (systemd reads those as root and rewrites
    % \\ and $): the launcher reads the .env as the service's user
    (docs/architecture.md, "Units")."""
    app = absolute(host.app.path, home)
    workdir = posixpath.normpath(posixpath.join(app, svc.workdir))
    # ExecCondition=: the launcher's hold check alone (docs/backups.md, "The
    # hold"). While a cut-off restore holds the data it exits 75 and systemd
    # skips the start, at boot too: the unit stays inactive, not failed, and
    # nothing restarts it (Restart= retries an ExecStartPre= failure every
    # RestartSec= for good; RestartPreventExitStatus= reads only the main
    # process, and would keep an app's own exit 75 from its restarts)
    return (
        f"{MANAGED}\n[Unit]\nDescription={svc.name} (deployed by fabops)\nAfter=network-online.target\n"
        "Wants=network-online.target\n\n[Service]\n"
        f"User={host.user or 'ec2-user'}\nWorkingDirectory={workdir}\nExecCondition={launcher_path(host, svc)} --check\n"
        f"ExecStart={launcher_path(host, svc)}\n"
        "Restart=on-failure\nRestartSec=2\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def launcher_text(host: Host, svc, home: str) -> str:
    """The root-owned script the unit starts: fabops.host.launch, from
    fabops' venv, reads the .env as the unit's user and execs the command.
    The command is quoted for sh, the only program that reads this file."""
    env_file = posixpath.join(absolute(host.app.path, home), host.env_file)
    python = absolute(host.paths.venv_bin("python"), home)
    hold = absolute(host.paths.restore_hold, home)
    # -I: the working directory (the checkout) is not on sys.path, so an app's
    # own fabops/ directory cannot stand in for the launcher; PYTHON* ignored.
    # The hold is checked by this script's sh (host/hold.hold_check), not by the
    # venv's module, so a unit holds whatever fabops the venv has (install may
    # put an older one back); --check (the unit's ExecCondition=) is that alone
    exec_line = sh("{held}[ \"$1\" = --check ] && exit 0\n"
                   "exec {python} -I -m fabops.host.launch {env_file} {command}\n", held=hold_check(hold),
                   python=python, env_file=env_file, command=svc.command or "false")
    return (f"#!/bin/sh\n# {MANAGED[2:]}\n# {svc.name}: run as {host.user or 'ec2-user'} (the unit's User=), "
            f"which reads the .env itself.\n{exec_line}")


def wrapper_text(host: Host, args: List[str]) -> str:
    exec_line = sh("exec {fabops} {args} -i {config} \"$@\"\n", fabops=host_path(host.paths.venv_bin("fabops")),
                   args=list(args), config=host_path(host.paths.host_yml))
    return f"#!/bin/sh\n# {MANAGED[2:]}\n# The legacy command, now the fabops equivalent on this host.\n{exec_line}"


# ------------------------------------------------------------------ the run


@dataclass
class _Setup:
    """One host's setup run: the connection and the flags the item
    functions below read."""

    t: Target  # the setup user: root's part, through sudo -n
    host: Host
    check: bool
    yes: bool
    offline: bool
    replace_units: bool
    splay: int
    host_yml_text: Optional[str] = None
    allow_root_units: tuple = ()
    change_user: bool = False
    refused_units: List[str] = field(default_factory=list)
    pending_units: List[str] = field(default_factory=list)  # --check: units this run would rewrite
    _home: Optional[str] = None
    _group: str = ""
    _unit_facts: Optional[Dict[str, Dict[str, List[str]]]] = None
    dt: Optional[Target] = None  # the deploy user: its own files (the same login unless setup_user differs)
    accept_signers: bool = False  # --accept-signers: add new verify signers unasked (setup_signers.py)
    ask_signers: Optional[Callable[[str], bool]] = None  # a terminal's yes to new signers; None: no terminal

    def __post_init__(self):
        user = self.host.user or "ec2-user"
        login = self.t
        # root's part never sources env.sh: the deploy user writes that file
        self.t = Target(login.c, login.name, login.home)
        if self.dt is None:
            separate = self.host.setup_user and self.host.setup_user != user and not login.is_local
            self.dt = UserTarget(login, user) if separate else login

    def user_home(self) -> str:
        """The deploy user's home as the host's passwd says (asked once,
        with its primary group)."""
        if self._home is None:
            user = self.host.user or "ec2-user"
            out = self.t.output(sh("getent passwd {user} | cut -d: -f6; id -gn {user}", user=user)).split("\n")
            home = out[0].strip()
            if not home.startswith("/"):
                from .errors import ConfigError

                raise ConfigError("hosts.yml", f"hosts.{self.host.name}.user",
                                  f"{user!r} has no home directory on {self.host.name} (getent passwd {user})")
            self._home, self._group = home, (out[1].strip() if len(out) > 1 else "") or user
        return self._home

    def unit_facts(self) -> Dict[str, Dict[str, List[str]]]:
        """What systemd says of every systemd service in hosts.yml, read
        once per run as the setup user (one command); a unit this run
        writes is read again by the next run."""
        if self._unit_facts is None:
            units = [s.name for s in self.host.services if s.manager == "systemd"]
            self._unit_facts = parse_unit_facts(self.t.output(unit_facts_cmd(units))) if units else {}
        return self._unit_facts

    def user_group(self) -> str:
        self.user_home()
        return self._group

    def writable_by_user(self, paths: List[str]) -> List[str]:
        """Which of `paths` the deploy user can write, asked as root through
        `sudo -u` with no shell of that user's (no env.sh, no PATH of its
        own): one command."""
        if not paths:
            return []
        user = self.host.user or "ec2-user"
        out = self.t.output(sh("for p in {paths}; do if sudo -n -u {user} /usr/bin/test -w \"$p\"; then "
                               "printf '%s\\n' \"$p\"; fi; done", paths=paths, user=user))
        return [ln for ln in out.splitlines() if ln]

    def file(self, name, path, text, *, mode, root, validate=None, owner=None,
             after: Optional[Callable[[], None]] = None, managed_only=False, secret=False) -> ItemResult:
        """A file with exactly `text`: ok, or a diff (would change, or
        written through put_file and then `after`). A `secret` file's diff
        shows how many lines change, never their values (it goes to a
        terminal or a CI log)."""
        t = self.t if root else self.dt
        old = _read(t, path, root)
        if root:
            app = absolute(self.host.app.path, self.user_home())
            text = text.replace(MANAGED + "\n", f"{MANAGED}\n{APP_LINE}{app}\n", 1)
            other = re.search("^" + re.escape(APP_LINE) + "(.*)$", old or "", re.M)
            if old and MANAGED in old and other and other.group(1) != app and not self.change_user:
                return ItemResult(name, "refused", (
                    f"{path} is fabops' file for the app at {other.group(1)}; this app ({app}) would take it "
                    f"over. fabops names an app's root files by its directory's name ({self.host.app.name}) and "
                    f"a unit by its own: give one app another directory name (or unit name), or, if this is "
                    f"that app moved, run setup with --change-user"))
        if old == text:
            return ItemResult(name, "ok", path)
        # written by a release before the app line: whose it was is unknown,
        # so taking it is said, never silent (docs/security.md)
        adopted = (f" (adopted: an earlier fabops wrote it without naming its app; it now names {app}. If "
                   f"another app in a directory also named {self.host.app.name} used it, rename one directory)"
                   if root and old and MANAGED in old and not other else "")
        if managed_only and old is not None and MANAGED not in old:
            return ItemResult(name, "warning", f"{path} exists and was not written by fabops; "
                                               "left alone (use --replace-units to replace it)")
        d = diff(old or "", text, path)
        if secret:
            d = secret_diff(path, d)
        if self.check:
            return ItemResult(name, "would change", path + adopted, d)
        try:
            put_file(t, self.host, path, text, mode=mode, root=root, validate=validate, owner=owner)
        except CommandFailed as exc:
            if not validate or "validation failed" not in str(exc):
                raise
            # the old file stays; the rest of setup goes on
            return ItemResult(name, "failed", f"{validate} refused the new {path}; the old one is kept "
                                              "(the text it refused is the diff below)", d)
        if after:
            after()
        return ItemResult(name, "changed", path + adopted, d)


# An item: a generator of results (ok, changed, would change, warning; a
# diff where a file changes), each said as it comes, like pyinfra's
# operations (docs/architecture.md, "Setup items"). Most items yield one; crontab, sudo rights and logrotate also
# report the legacy setup's leftovers they find.
Items = Iterator[ItemResult]


def setup_host(c, host: Host, *, check: bool, yes: bool, offline: bool, replace_units: bool = False,
               splay: int = 30, host_yml_text: Optional[str] = None, allow_root_units=(), change_user: bool = False,
               progress: Optional[Callable[[ItemResult], None]] = None, accept_signers: bool = False,
               ask_signers: Optional[Callable[[str], bool]] = None) -> SetupReport:
    """Converge one host, item by item, in this order; with `check`, change
    nothing and report what would change. A refused deploy user stops the
    run before anything is written."""
    t = Target.of(c, host)
    if host.user is None and not t.is_local:
        # no `user:` in hosts.yml: the deploy user is whom ssh logged in as
        # (~/.ssh/config's User), as the host says, never a guess
        who = t.output(raw("id -un")).strip()
        if who:
            host = replace(host, user=who)
    run = _Setup(t, host, check, yes, offline, replace_units, splay, host_yml_text, tuple(allow_root_units),
                 change_user, accept_signers=accept_signers, ask_signers=ask_signers)
    report = SetupReport(host.name, check=check)
    for item in ITEMS:
        for result in item(run):
            report.items.append(result)
            if progress:
                progress(result)
        if item is _deploy_user and any(r.status == "refused" for r in report.items):
            break
    return report


def _deploy_user(run: _Setup) -> Items:
    """The deploy user is pinned by the drop-in setup wrote: a hosts.yml
    edit (which a pusher may make) never changes who fabops' units, cron
    and sudo rules run as; the operator does, with --change-user
    (docs/security.md, "The deploy user is pinned")."""
    user = run.host.user or "ec2-user"
    old = _read(run.t, sudoers_path(run.host), root=True) or ""
    subjects = {ln.split()[0] for ln in old.splitlines() if ln.strip() and not ln.startswith("#")}
    if not subjects or subjects == {user}:
        return
    was = ", ".join(sorted(subjects))
    if run.change_user:
        yield ItemResult("deploy user", "warning", f"changing the deploy user from {was} to {user} (--change-user)")
        return
    yield ItemResult("deploy user", "refused", (
        f"fabops on this host deploys as {was} ({sudoers_path(run.host)}); hosts.yml now says {user}. "
        f"The deploy user is changed only by the operator: run setup with --change-user if that is what you want"))


def secret_diff(path: str, d: str) -> str:
    """A secret file's diff `d` as it is shown: how many lines change, never
    their values."""
    changed = sum(1 for ln in d.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---"))
    return f"--- {path}\n+++ {path} (fabops)\n@@ {counted(changed, 'line')} changed; values not shown @@\n"


def _env_file(run: _Setup) -> Items:
    """The inventory's env as fabops' env.sh (0600), first: every command
    over SSH sources it, the install's included, and none carries the
    values in its argv (docs/security.md)."""
    from .shell import env_file_text

    yield run.file("env.sh", run.host.paths.env_sh, env_file_text(run.host.env), mode="0600", root=False,
                   secret=True)


def _install(run: _Setup) -> Items:
    """fabops itself, at this exact version, in its own venv."""
    from .install import ensure_installed

    inst = ensure_installed(run.dt, run.host, offline=run.offline, dry_run=run.check)
    # --check's status says `would change`: its message says what, once
    # (`would change  fabops install: upgrade from 0.9.0 fabops 1.0.0 …`,
    # not `… fabops install: would upgrade …`, nor its `would` line twice)
    message = inst.message[len("would "):] if run.check and inst.message.startswith("would ") else inst.message
    yield ItemResult("fabops install", ("would change" if run.check else "changed") if inst.changed else "ok", message)


def _host_yml(run: _Setup) -> Items:
    """The host's own settings, as the host reads them (0600 in a 0700 home)."""
    from .deploy import host_yml

    home = run.host.paths.home
    if not run.check:
        run.dt.run(sh("mkdir -p {home} && chmod 700 {home}", home=host_path(home)), "making fabops' directory")
    yield run.file("host.yml", run.host.paths.host_yml, run.host_yml_text or host_yml(run.host), mode="0600",
                   root=False, secret=True)


def _crontab(run: _Setup) -> Items:
    """The deploy user's managed crontab block, and the legacy lines it
    replaces (commented out with --yes, after the old crontab is saved)."""
    t, host = run.dt, run.host
    old_tab = read_crontab(t, host)
    new_tab = apply_block(old_tab, host.app.name, render_block(host, splay=run.splay))
    begin = f"# >>> fabops {host.app.name} >>>"
    if sandbox_table(host):  # a local host is the sandbox: never the person's crontab
        begin += f" in {sandbox_table(host)} (the sandbox's table: your own crontab is not read or changed)"
    saved = host.paths.file("crontab.before-fabops")
    legacy = [ln for ln in _outside_block(old_tab, host.app.name) if ln.strip() and not ln.lstrip().startswith("#")
              and LEGACY_CRON.search(ln)]
    if legacy:
        if run.yes and not run.check:
            new_tab = "\n".join(("# disabled by fabops setup: " + ln) if ln in legacy else ln
                                for ln in new_tab.split("\n"))
            yield ItemResult("legacy cron lines", "changed",
                             f"commented out {counted(len(legacy), 'legacy line')}; the old crontab is saved in {saved}")
        else:
            yield ItemResult("legacy cron lines", "warning",
                             f"{counted(len(legacy), 'legacy line')} would update outside the lock: " + " | ".join(legacy)
                             + " (run with --yes to comment them out, after a backup)")
    if new_tab == old_tab:
        yield ItemResult("crontab", "ok", begin)
    elif run.check:
        yield ItemResult("crontab", "would change", begin, diff(old_tab, new_tab, table_name(host)))
    else:
        t.run(sh("umask 077 && cat > {saved}", saved=host_path(saved)), "saving the old crontab", stdin=old_tab)
        write_crontab(t, new_tab, host.name, host)
        yield ItemResult("crontab", "changed", begin, diff(old_tab, new_tab, table_name(host)))


def _root_units(run: _Setup) -> Items:
    """Refuse sudo rights on a unit that runs the deploy user's code as
    root, unless --allow-root-unit names it (docs/security.md, "Units that
    run as root"). Read as the setup user (the deploy user's shell could
    tell a story), and what the deploy user can write is asked of the
    host as root, through `sudo -u`."""
    host = run.host
    units = [s.name for s in host.services
             if s.manager == "systemd" and s.name not in run.pending_units + run.refused_units]
    if not units or (host.user or "ec2-user") == "root":
        return  # a root deploy user has nothing to gain (and is pinned: _deploy_user)
    for name in run.allow_root_units:
        if name not in units:
            yield ItemResult(f"root unit {name}", "warning", f"--allow-root-unit {name}: no such systemd service "
                                                             "in hosts.yml (ignored)")
    home = run.user_home()
    roots = [absolute(host.app.path, home), home]
    facts = run.unit_facts()
    writable = run.writable_by_user(with_parents([p for u in units for p in root_paths(facts.get(u, {}))]))
    for unit in units:
        problem = root_unit_problem(facts.get(unit, {}), roots, writable)
        if problem is None:
            continue
        if unit in run.allow_root_units:
            yield ItemResult(f"root unit {unit}", "warning", f"{unit} {problem}; restart granted anyway "
                                                             "(--allow-root-unit)")
            continue
        run.refused_units.append(unit)
        yield ItemResult(f"root unit {unit}", "refused", (
            f"{unit} {problem}: restarting it from fabops would run the deploy user's code as root, so the "
            f"drop-in gets no rule for it. Fix: add User={host.user or 'ec2-user'} to the unit (or `unit: true` "
            f"with --replace-units), or pass --allow-root-unit {unit} if that is what you want"))


def _broad_sudo(run: _Setup) -> Items:
    """The drop-in is least privilege only if the deploy user has nothing
    more: warn while it still has `NOPASSWD: ALL` (cloud-init's rule for
    ec2-user), naming the file that grants it."""
    t, user = run.t, run.host.user or "ec2-user"
    if user == "root":
        return
    listed = t.output(sh("sudo -n -l -U {user} 2>/dev/null", user=user))
    if not re.search(r"NOPASSWD:\s*ALL\s*$", listed, re.M):
        return
    # the glob expanded by root: /etc/sudoers.d is 0750 on Amazon Linux
    files = t.output(sh("sudo -n sh -c 'grep -lsE \"$1\" /etc/sudoers /etc/sudoers.d/*' sh {pattern} 2>/dev/null",
                        pattern="^[[:space:]]*" + user.replace(".", "[.]").replace("$", "[$]")
                        + "[[:space:]].*NOPASSWD:[[:space:]]*ALL")).split()
    where = ", ".join(files) or "a rule for one of its groups (sudo -l -U " + user + ")"
    fix = (f"remove it (visudo -f {files[0]})" if files else "remove it with visudo") + (
        "" if run.host.setup_user and run.host.setup_user != user else
        f", after setting setup_user in hosts.yml to another user with sudo for `{program()} setup`")
    yield ItemResult("broad sudo", "warning", f"{user} still has NOPASSWD: ALL ({where}): fabops' drop-in is least "
                                              f"privilege only without it; {fix}")


def _sudo_rights(run: _Setup) -> Items:
    """For systemd services: the root-unit check, the sudoers drop-in
    (validated with visudo), journal access, and the legacy /etc/sudoers
    lines (reported only)."""
    t, host = run.t, run.host
    if not any(s.manager == "systemd" for s in host.services):
        return
    yield from _root_units(run)
    yield run.file("sudoers", sudoers_path(host), sudoers_text(host, without=run.refused_units), mode="0440",
                   root=True, validate="visudo")
    yield journal_access(t, host, run.check)
    yield from _broad_sudo(run)
    legacy_sudo = t.output(raw("sudo -n grep -nE 'NOPASSWD:.*systemctl' /etc/sudoers 2>/dev/null")).strip()
    if legacy_sudo:
        yield ItemResult("legacy /etc/sudoers lines", "warning",
                         "NOPASSWD systemctl lines appended by the legacy setup (never edited by fabops; "
                         "remove them with visudo once the drop-in works): " + " | ".join(legacy_sudo.splitlines()))


def _system_units(run: _Setup) -> Items:
    """A service name that is already a package's unit (ssh.service), a
    local install's or a generated one (a SysV script's) is the system's:
    `unit: true` would write /etc/systemd/system/<name>, which replaces
    that unit for good, and a right to stop the SSH
    server locks every operator out. hosts.yml (which a pusher may edit)
    cannot ask for either (docs/security.md, "System units"). Other package
    units (nginx.service) get their rights, said once."""
    host = run.host
    facts = run.unit_facts()
    for svc in host.services:
        if svc.manager != "systemd":
            continue
        package = system_unit(facts.get(svc.name, {}))
        if svc.unit and package:
            run.refused_units.append(svc.name)
            yield ItemResult(f"unit {svc.name}", "refused", (
                f"{svc.name} is a unit the system already has ({package}); `unit: true` would write "
                f"/etc/systemd/system/{svc.name} and replace it. Give the app's service a name of its own"))
        elif lockout_unit(svc.name, facts.get(svc.name)):
            run.refused_units.append(svc.name)
            yield ItemResult(f"unit {svc.name}", "refused", (
                f"{svc.name} is one of the units every login needs; a right to stop it would let the deploy "
                f"user (and, through cron, whoever pushes) lock everyone out of the host. Remove it from "
                f"services in hosts.yml"))
        elif package:
            yield ItemResult(f"unit {svc.name}", "ok", f"{package}, the system's unit: the deploy user may "
                                                      f"start, stop and restart it")


def _units(run: _Setup) -> Items:
    """Unit files from the template, with their root-owned launchers, only
    for services that ask for one (`unit: true`); hand-installed ones (the
    legacy setup copied them) are reported and left alone unless
    --replace-units."""
    t, host = run.t, run.host
    for svc in host.services:
        if svc.manager != "systemd" or svc.name in run.refused_units:
            continue
        path = f"/etc/systemd/system/{svc.name}"
        if not svc.unit:
            existing = _read(t, path, root=False)
            if existing is not None and MANAGED not in existing:
                yield ItemResult(f"unit {svc.name}", "ok", f"hand-installed {path} "
                                 "(left alone; `unit: true` + --replace-units lets fabops manage it)")
            continue

        def reload_enable(name=svc.name):
            run._unit_facts = None  # the root audit reads the unit as written
            t.run(sh("{reload} && {enable}", reload=sudo(["systemctl", "daemon-reload"]),
                     enable=sudo(["systemctl", "enable", name])), f"enabling {name}",
                  argv=["systemctl", "enable", name])

        home = run.user_home()
        yield run.file(f"launcher {svc.name}", launcher_path(host, svc), launcher_text(host, svc, home), mode="0755",
                       root=True, managed_only=not run.replace_units)
        result = run.file(f"unit {svc.name}", path, unit_text(host, svc, home), mode="0644", root=True,
                          after=reload_enable, managed_only=not run.replace_units)
        if result.status == "would change":
            run.pending_units.append(svc.name)  # its audit is of the unit this run writes, User= and all
        yield result


def _log_files(run: _Setup) -> Items:
    """The update and health logs, writable by the deploy user (0640). A
    log under ~/ is the user's to make, as that user (no sudo). One under
    /var/log is looked at and made by root, only where nothing is (noclobber:
    O_EXCL, so neither an existing file nor a link is ever written through);
    an existing file is never chowned, an existing directory's mode never
    changed (docs/security.md, "Log files")."""
    t, host = run.t, run.host
    user = host.user or "root"
    for key in ("update", "health"):
        path = host.logs.get(key)
        if not path:
            continue
        name, log, parent = f"log {key}", host_path(path), host_path(posixpath.dirname(path))
        if path.startswith("~/"):
            fact = run.dt.output(sh("if test -L {log}; then echo link; elif test -e {log}; then echo exists; "
                                    "else echo absent; fi", log=log)).strip()
        else:
            # as root: a directory the deploy user cannot search (0700 audit
            # logs) must not make an existing file look absent
            fact = t.output(sh("sudo -n sh -c 'if [ -L \"$1\" ]; then echo link; elif [ -e \"$1\" ]; then "
                               "echo exists; else echo absent; fi' sh {log}", log=path)).strip()
        if fact == "exists":
            if path.startswith("~/"):
                writable = run.dt.ok(sh("test -w {log}", log=log))
            else:
                writable = bool(run.writable_by_user([path]))
            fact = "writable" if writable else "exists"
        if fact == "writable":
            yield ItemResult(name, "ok", path)
        elif fact == "link":
            yield ItemResult(name, "warning", f"{path} is a symbolic link; fabops never writes or chowns through "
                                              f"one (remove it, then run setup again)")
        elif fact == "exists":
            yield ItemResult(name, "warning", f"{path} exists and {user} cannot write it; fabops never chowns an "
                                              f"existing file. The path comes from hosts.yml: if it is this app's "
                                              f"log, `sudo chown -h {user} {path}`")
        elif fact != "absent":
            yield ItemResult(name, "warning", f"{path}: could not tell what is there ({fact or 'no answer'})")
        elif run.check:
            yield ItemResult(name, "would change", f"create {path} (0640, {user})")
        elif path.startswith("~/"):
            run.dt.run(sh("mkdir -p {parent} && (umask 027 && set -C && : > {log})", parent=parent, log=log),
                       f"creating {path}", argv=["touch", path])
            yield ItemResult(name, "changed", f"created {path} (0640, {user})")
        else:
            t.run(sh("{mkdir} && {create}",
                     mkdir=sh("test -d {parent} || {make}", parent=parent,
                              make=sudo(["install", "-d", "-m", "0755", "-o", "root", "-g", "root",
                                         posixpath.dirname(path)])),
                     create=sh("sudo -n sh -c 'set -C; umask 137; : > \"$1\" && chown -h \"$2\" \"$1\"' sh "
                               "{log} {user}", log=path, user=user)),
                  f"creating {path}", argv=["sh", "-c", path])
            yield ItemResult(name, "changed", f"created {path} (0640, {user})")


def _logrotate(run: _Setup) -> Items:
    """fabops' logrotate file (checked with logrotate -d); a legacy file that
    rotates the same logs is moved aside with --yes (logrotate refuses
    duplicate entries)."""
    t, host = run.t, run.host
    if host.sandbox:  # the sandbox's logs are its own: nothing is written under /etc for it
        return
    logs = [absolute(host.logs[k], run.user_home()) for k in ("update", "health") if host.logs.get(k)]
    if not logs:
        return
    user_dirs = run.writable_by_user(sorted({posixpath.dirname(p) for p in logs}))
    rotate = logrotate_text(host, run.user_home(), run.user_group(), user_dirs)
    if not rotate:
        return
    own = f"/etc/logrotate.d/fabops-{host.app.name}"
    patterns = [w for k in ("update", "health") if host.logs.get(k) for w in ("-e", host.logs[k])]
    others = t.output(sh("grep -lF {patterns} /etc/logrotate.d/* 2>/dev/null | grep -vx {own}", patterns=patterns,
                         own=own)).split()
    for other in others:
        if run.yes and not run.check:
            t.run(sh("sudo -n mv {other} {saved} 2>/dev/null || sudo -n mv {other} {disabled}", other=other,
                     saved=host_path(host.paths.file(posixpath.basename(other) + ".logrotate-before-fabops")),
                     disabled=other + ".disabled-by-fabops"), f"moving {other} aside", argv=["mv", other])
            yield ItemResult("legacy logrotate", "changed", f"moved {other} aside (logrotate rejects duplicate entries)")
        else:
            yield ItemResult("legacy logrotate", "warning",
                             f"{other} already rotates these logs; logrotate rejects duplicates (--yes moves it aside)")
    yield run.file("logrotate", own, rotate, mode="0644", root=True, validate="logrotate")


def _wrappers(run: _Setup) -> Items:
    """The team's habits: the legacy command names, now fabops, in
    ~/.local/bin; the sandbox's in its home's bin/, never the person's own
    ~/.local/bin."""
    for name, args in WRAPPERS.items():
        path = run.host.paths.file("bin", name) if run.host.sandbox else f"~/.local/bin/{name}"
        yield run.file(f"wrapper {name}", path, wrapper_text(run.host, args), mode="0755", root=False)


def _first_run(run: _Setup) -> Items:
    """A checkout fabops has not seen yet: said, not an error."""
    if not run.dt.ok(sh("test -f {state}", state=host_path(run.host.paths.state))):
        yield ItemResult("state", "warning", "no fabops state yet: the first local-update adopts a healthy HEAD")


def _backups(run: _Setup) -> Items:
    """Where the backups go (docs/backups.md): a warning with no
    repository (a backup on the host's own disk is not a backup), or when
    the copy would fail (restic not on cron's PATH, the password file
    missing or open to others: host/restic.ready's words), read as the
    deploy user, who runs them, in one command (restic looked up on the
    PATH cron's line sets). Setup installs neither."""
    from .cron import DEFAULT_PATH
    from .host.backup import NO_OFF_HOST
    from .host.restic import NO_RESTIC
    from .redact import redacted_url

    repo = run.host.backup.repository
    if repo is None:
        yield ItemResult("backups", "warning", NO_OFF_HOST)
        return
    said = run.dt.output(sh(
        "(PATH={path}; command -v restic) >/dev/null 2>&1 || echo norestic; if [ ! -e {pw} ]; then echo missing; "
        "elif [ ! -f {pw} ]; then echo notfile; else echo mode $(stat -c %a {pw}); fi",
        path=(run.host.env or {}).get("PATH") or DEFAULT_PATH, pw=host_path(repo.password_file))).split()
    mode = said[said.index("mode") + 1] if "mode" in said and said.index("mode") + 1 < len(said) else ""
    where = f"the repository's password file {repo.password_file}"
    problems = ([NO_RESTIC] if "norestic" in said else []) + (
        [f"{where} is not there (backup.repository.password_file)"] if "missing" in said else
        [f"{where} is not a file"] if "notfile" in said else
        [f"{where} is open to others (mode {mode.zfill(4)}): chmod 600 it"] if mode[-2:] != "00" else [])
    if problems:
        yield ItemResult("backups", "warning", "; ".join(problems) + ": backups would stay on the host")
    else:
        yield ItemResult("backups", "ok", f"off the host to {redacted_url(repo.url)}")


def _heartbeat(run: _Setup) -> Items:
    """The heartbeat's last ping (docs/monitor.md, "Heartbeat"), read from
    state.json as monitor reads it: the host.yml item installs the URL,
    this says whether cron's runs reach it (a failed last ping: a
    warning). Never the URL."""
    if run.host.heartbeat is None:
        return
    import json
    import time

    from .host.heartbeat import facts, line

    text = run.dt.output(sh("cat {state} 2>/dev/null || true", state=host_path(run.host.paths.state)))
    try:
        state = json.loads(text) if text.strip() else None
    except ValueError:  # a corrupt state.json: the next run moves it aside (docs/monitor.md)
        state = None
    said = line(facts(state, run.host.heartbeat), time.time())
    if said is not None:
        yield ItemResult("heartbeat", "ok" if said[1] else "warning", said[0].partition(": ")[2])


def _verify(run: _Setup) -> Items:
    """Only verified commits ship (docs/security.md, "Verified commits"):
    hosts.yml's signers where the host's check reads them, root's (in
    /etc/fabops/<app>/; a sandbox's in its home), before the first run can
    deploy. Those files, not host.yml, make the host check every target,
    so a push that drops `verify:` cannot turn it off: without `verify:`,
    a file that is there stays, said. Refused (exit 78) where the host
    cannot check a listed key (SSH keys on git older than 2.34, OpenPGP
    keys without gpgv: a host that could not honour it must not look
    protected), and where a key would be added that no person confirmed
    (setup_signers.confirm_problem)."""
    from .host.verify import GPG_PROGRAM, KEYRING, beside, signers_path
    from .setup_signers import added_signers, added_words, confirm_problem, look_cmd, unable

    host = run.host
    path, root = signers_path(host, host.home), not host.sandbox
    if host.verify is None:
        where = host_path(path) if host.sandbox else path
        if run.dt.output(sh("test -f {p} && echo there || true", p=where)).strip() == "there":
            yield ItemResult("verified commits", "warning", (
                f"{path} is there, so this host still requires signed commits, though this inventory sets no "
                f"verify: (only root turns it off: sudo rm {path})"))
        return
    signers = host.verify.signers
    problem = unable(run.dt.output(look_cmd()), signers)
    if problem:
        yield ItemResult("verified commits", "refused", f"{problem}: this host cannot honour verify:")
        return
    ssh_text = _read(run.t if root else run.dt, path, root)
    added = added_signers(signers, ssh_text, _read_binary(run, beside(path, KEYRING), root), path)
    if added:
        problem = confirm_problem(run, added, first=ssh_text is None)
        if problem:
            yield ItemResult("verified commits", "refused", problem)
            return
        if run.check:
            yield ItemResult("new signers", "would change", "would add " + added_words(added))
    yield from _signer_files(run, path, beside(path, KEYRING), beside(path, GPG_PROGRAM), root)


def _signer_files(run: _Setup, path: str, keyring: str, program: str, root: bool) -> Items:
    """The three files, all written whenever `verify:` is set, empty of a
    kind it lists no key of, so a key taken out of hosts.yml leaves every
    file it was in: the allowed-signers file, the keyring, the wrapper."""
    from .host.verify import allowed_signers_text, gpg_program_text, keyring_bytes

    signers = run.host.verify.signers
    first = run.file("verified commits", path, f"{MANAGED}\n{allowed_signers_text(signers)}", mode="0644", root=root)
    yield first
    if first.status == "refused":  # another app's directory: none of its files is taken either
        return
    yield _keyring(run, keyring, keyring_bytes(signers), root)
    text = gpg_program_text(keyring).replace("#!/bin/sh\n", f"#!/bin/sh\n{MANAGED}\n", 1)
    yield run.file("verified commits", program, text, mode="0755", root=root)


def _read_binary(run: _Setup, path: str, root: bool) -> Optional[bytes]:
    import base64

    from .setup_signers import read_binary_cmd

    out = (run.t if root else run.dt).output(read_binary_cmd(path, root)).strip()
    return None if out == "@@absent" else base64.b64decode(out)


def _keyring(run: _Setup, path: str, data: bytes, root: bool) -> ItemResult:
    """The OpenPGP keyring: ok, or a diff of its fingerprints (it is binary,
    sent as base64 and decoded on the host)."""
    import base64

    from .setup_signers import keyring_listing

    old = _read_binary(run, path, root)
    if old == data:
        return ItemResult("verified commits", "ok", path)
    d = diff(keyring_listing(old), keyring_listing(data), path)
    if run.check:
        return ItemResult("verified commits", "would change", path, d)
    put_file(run.t if root else run.dt, run.host, path, base64.b64encode(data).decode() + "\n", mode="0644",
             root=root, decode=True)
    return ItemResult("verified commits", "changed", path, d)


def _metrics_dir(run: _Setup) -> Items:
    """node_exporter's textfile directory (hosts.yml's metrics_dir,
    docs/metrics.md): made when absent, 0755 and the deploy user's, so its
    runs write their file there and node_exporter's user reads it. One
    under ~/ (or a sandbox's) is the deploy user's to make, without sudo;
    any other is looked at by root, component by component, and made only
    as metrics_dir_step decides (docs/security.md, "The metrics
    directory"). An existing directory is never chowned nor its mode
    changed, and a link is never followed: a warning says what to do."""
    where = run.host.metrics_dir
    if not where:
        return
    user, own = run.host.user or "root", where.startswith("~/") or run.host.sandbox
    if own:
        look = sh("if [ -L {d} ]; then echo link; elif [ -d {d} ]; then echo dir; elif [ -e {d} ]; then echo other; "
                  "else echo absent; fi", d=host_path(where))
        fact = run.dt.output(look).strip()
        what = {"link": "a symbolic link", "other": "not a directory"}.get(fact, f"unknown ({fact or 'no answer'})")
        step = {"dir": ("dir", ""), "absent": ("user", "")}.get(
            fact, ("warning", f"{where} is {what}; fabops makes only a directory that is not there"))
    else:
        step = metrics_dir_step(where, user, run.t.output(metrics_dir_look(where, user)).splitlines())
    action, words = step
    if action == "dir":
        writable = run.dt.ok(sh("test -w {d}", d=host_path(where))) if own else bool(run.writable_by_user([where]))
        yield ItemResult("metrics dir", "ok", where) if writable else ItemResult(
            "metrics dir", "warning", f"{where} exists and {user} cannot write it, so no run can write its metrics "
                                      f"there; fabops never chowns an existing directory: `sudo chown {user} {where}`, "
                                      "or name another metrics_dir")
    elif action == "warning":
        yield ItemResult("metrics dir", "warning", words)
    elif run.check:
        yield ItemResult("metrics dir", "would change", f"create {where} (0755, {user})")
    else:
        if action == "root":  # the last directory only; chown -h of what this mkdir made (docs/security.md)
            run.t.run(sudo(["sh", "-c", 'mkdir -m 0755 -- "$1" && chown -h -- "$2" "$1"', "sh", where, user]),
                      f"creating {where}")
        elif own:
            run.dt.run(sh("mkdir -p {d} && chmod 0755 {d}", d=host_path(where)), f"creating {where}")
        else:  # its parent is the deploy user's: that user makes it
            run.dt.run(sh("mkdir -m 0755 -- {d}", d=where), f"creating {where}")
        yield ItemResult("metrics dir", "changed", f"created {where} (0755, {user})")


def metrics_dir_parts(where: str) -> List[str]:
    """/, then each directory down to `where` itself."""
    parts = [p for p in where.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def metrics_dir_look(where: str, user: str) -> Cmd:
    """Root's look at every directory on the way to `where`: the deploy
    user's uid, then one line per directory (link, dir UID MODE, other,
    absent). As root, so a directory the deploy user cannot search hides
    nothing, and with -L first, so no link is followed."""
    return sudo(["sh", "-c", 'id -u -- "$1" || echo none; shift; for p; do if [ -L "$p" ]; then echo link; '
                 'elif [ -d "$p" ]; then echo dir $(stat -c "%u %a" -- "$p"); elif [ -e "$p" ]; then echo other; '
                 'else echo absent; fi; done', "sh", user, *metrics_dir_parts(where)])


def metrics_dir_step(where: str, user: str, facts: List[str]) -> tuple[str, str]:
    """What setup does with a metrics_dir outside ~/, from root's look
    (metrics_dir_look): ("dir", "") when it is there; ("root", "") to make
    the last directory as root, only in a textfile-collector place
    (validate.metrics_dir_problem) whose every directory above is no link,
    its parent root's and none writable by the deploy user or by anyone
    but its owner, so nobody but root can swap a directory on the way
    between the look and the mkdir; ("user", "") when the parent is the
    deploy user's own; else ("warning", why and what to run). Pure: the
    tests give it facts."""
    parts, uid, kinds = metrics_dir_parts(where), (facts or ["none"])[0].strip(), [f.split() for f in facts[1:]]
    if len(kinds) != len(parts) or not uid.isdigit() or not all(
            k in (["link"], ["other"], ["absent"]) or re.fullmatch(r"dir \d+ [0-7]+", " ".join(k)) for k in kinds):
        return "warning", f"{where}: could not tell what is there ({' / '.join(facts) or 'no answer'})"
    for part, kind in zip(parts, kinds):
        if kind[0] == "link":
            return "warning", (f"{part} is a symbolic link; fabops makes a metrics directory only on a path with "
                               "none (root would follow it), and never follows one")
        if kind[0] == "other":
            return "warning", f"{part} is not a directory; fabops makes only a directory that is not there"
    if kinds[-1][0] == "dir":
        return "dir", ""
    parent, above, problem = parts[-2], kinds[-2], metrics_dir_problem(where)
    if above[0] == "dir" and above[1] == uid and uid != "0":
        return "user", ""
    if problem:
        return "warning", f"{where} is not there and fabops does not make it as root: metrics_dir {problem}"
    make = f"`sudo install -d -m 0755 -o {user} {where}`"
    if above[0] != "dir":
        return "warning", (f"{parent} does not exist, and fabops makes only the last directory of a metrics_dir: "
                           f"install node_exporter's textfile collector first (Debian's prometheus-node-exporter "
                           f"makes {TEXTFILE_DIRS[0]}), or run {make}")
    unsafe = [p for p, k in zip(parts, kinds[:-1]) if k[1] == uid or int(k[2], 8) & 0o022]
    if unsafe or above[1] != "0":
        why = f"{unsafe[0]} is {user}'s or writable by others than its owner" if unsafe else f"{parent} is not root's"
        return "warning", (f"{where} is not there and fabops does not make it as root: {why}, so a directory on "
                           f"its way could change before root makes it; check the path, then run {make}")
    return "root", ""


ITEMS = (_deploy_user, _env_file, _install, _host_yml, _crontab, _system_units, _units, _sudo_rights, _verify,
         _log_files, _metrics_dir, _logrotate, _wrappers, _first_run, _backups, _heartbeat)


def _outside_block(text: str, app: str) -> List[str]:
    from .cron import find_block

    span = find_block(text, app)
    if span is not None:
        text = text[: span[0]] + text[span[1]:]
    return text.splitlines()
