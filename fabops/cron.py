"""The managed crontab block: pure text functions plus thin runners.

The block sits between `# >>> fabops <app> >>>` and `# <<< fabops <app> <<<`;
every other line of the user's crontab is kept byte for byte. Each line
sets its own PATH inline (a `PATH=` line in a crontab would also change the
user's own jobs below it), runs `<host home>/venv/bin/fabops` with the host's
own `host.yml`, and appends its output to `<host home>/cron.log`.

A `sandbox: true` host (`inv demo`'s host, on this machine): its table
is the file `<host home>/crontab` (sandbox_table), so
setup and `cron --install/--remove` on it never read or change the
person's own crontab; nothing runs that file (the demo runs its update).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from .inventory import Host
from .errors import CommandFailed
from .shell import path as host_path, raw, sh
from .target import Target

# (schedule key, fabops arguments) in the order they appear in the block.
JOBS = (
    ("update", ["local-update", "--trigger", "cron"]),
    ("health", ["health", "--fix", "--quiet", "--trigger", "cron"]),  # cron's: it pings the heartbeat
    ("clean", ["clean"]),
    ("backup-env", ["backup-env"]),
)
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def markers(app: str) -> Tuple[str, str]:
    return f"# >>> fabops {app} >>>", f"# <<< fabops {app} <<<"


def _cron_escape(command: str) -> str:
    # In a crontab, an unescaped % ends the command and feeds the rest as stdin.
    return command.replace("%", "\\%")


def job_line(host: Host, schedule: str, args: List[str], splay: int = 30) -> str:
    """One crontab line: the schedule (cron's syntax, validated in hosts.yml)
    and the command cron's /bin/sh runs."""
    extra = ["--splay", int(splay)] if args[0] in ("local-update", "backup") else []
    cmd = sh("cd && PATH={path} {fabops} {args} -i {config} >> {log} 2>&1",
             path=(host.env or {}).get("PATH") or DEFAULT_PATH, fabops=host_path(host.paths.venv_bin("fabops")),
             args=list(args) + extra, config=host_path(host.paths.host_yml), log=host_path(host.paths.cron_log))
    return f"{schedule} {_cron_escape(cmd)}"


def render_block(host: Host, splay: int = 30, schedules: Optional[dict] = None) -> str:
    begin, end = markers(host.app.name)
    sched = schedules if schedules is not None else host.schedule
    lines = [begin, "# Managed by fabops (`inv setup`); edits inside this block are replaced. `inv cron --remove` removes it."]
    for key, args in JOBS:
        expr = sched.get(key)
        if expr:
            lines.append(job_line(host, expr, args, splay))
    if host.backup.schedule:  # backup.schedule: null turns it off (docs/backups.md)
        lines.append(job_line(host, host.backup.schedule, ["backup"], splay))
    lines.append(end)
    return "\n".join(lines) + "\n"


def find_block(text: str, app: str) -> Optional[Tuple[int, int]]:
    """(start, end) character offsets of our block including its newline, or None."""
    begin, end = markers(app)
    lines = text.splitlines(keepends=True)
    pos = 0
    start = None
    for line in lines:
        if line.rstrip("\n") == begin and start is None:
            start = pos
        elif line.rstrip("\n") == end and start is not None:
            return start, pos + len(line)
        pos += len(line)
    return None


def apply_block(text: str, app: str, block: str) -> str:
    """Insert or replace our block; everything else is unchanged."""
    span = find_block(text, app)
    if span is not None:
        return text[: span[0]] + block + text[span[1]:]
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


def remove_block(text: str, app: str) -> str:
    span = find_block(text, app)
    if span is None:
        return text
    return text[: span[0]] + text[span[1]:]


def current_block(text: str, app: str) -> Optional[str]:
    span = find_block(text, app)
    return None if span is None else text[span[0]:span[1]]


# ------------------------------------------------------------------ runners

READ = raw("crontab -l 2>/dev/null; true")


def sandbox_table(host: Optional[Host]) -> Optional[str]:
    """Where a sandbox host's crontab is kept (a file in its home, as
    hosts.yml spells it), or None for a host whose crontab is the real
    one (ssh, or a plain `connection: local` host: this machine's)."""
    return host.paths.file("crontab") if host is not None and host.sandbox else None


def read_crontab(c, host: Optional[Host] = None) -> str:
    table = sandbox_table(host)
    if table:
        return Target.of(c, host).output(sh("cat {table} 2>/dev/null; true", table=host_path(table)))
    return Target.of(c).output(READ)


WRITE = raw("crontab -")


def write_crontab(c, text: str, host_name: str, host: Optional[Host] = None) -> None:
    # `crontab -` validates the whole file and installs it atomically. The
    # table comes on stdin: its lines carry `env` values, and an argv is
    # what `ps` shows every user of the host (docs/security.md).
    t = c if isinstance(c, Target) else Target(c, host_name)  # a UserTarget stays one (setup_user)
    table = sandbox_table(host)
    if table:  # the sandbox's file, in its home: the person's crontab is never written
        t.run(sh("mkdir -p {home} && umask 077 && cat > {table}", home=host_path(host.paths.home),
                 table=host_path(table)), "writing the sandbox's crontab file", stdin=text)
        return
    r = t.run(WRITE, check=False, stdin=text)
    if not r.ok:  # crontab's last line is "errors in crontab file"; the line before names the problem
        raise CommandFailed(f"crontab refused the new table: {(r.stderr or r.stdout).strip()[-200:]}", host=host_name)


def table_name(host: Host) -> str:
    """The table as a diff names it: `crontab`, or the sandbox's file."""
    return sandbox_table(host) or "crontab"


def diff(old: str, new: str, name: str = "crontab") -> str:
    """A unified diff, `name (now)` -> `name (after)`: what setup and cron
    show before they change a file."""
    import difflib

    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"{name} (now)", tofile=f"{name} (after)"))
