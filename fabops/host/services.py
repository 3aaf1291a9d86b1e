"""Services behind one interface with two back ends (docs/pipeline.md).

- `systemd`: production; `sudo -n systemctl ...`, status from one batched
  `systemctl show`.
- `process`: a pidfile supervisor for the sandbox, the demo, tests and hosts
  without systemd: setsid, output to a log file, SIGTERM then SIGKILL after a
  grace period, stale-pidfile detection by process start time.

Both are pure command builders plus pure parsers; `ServiceManager` runs them
through `c`, so they work on the host (local Context) and agentless over SSH.
All commands are POSIX sh.
"""
from __future__ import annotations

import os
import posixpath
from typing import Dict, List, Optional, Sequence, Tuple

from ..inventory import Host, Service
from ..paths import HostPaths
from ..records import Plain, plain
from ..shell import Cmd, lines, path, raw, sh, sudo
from ..target import Target

STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


@plain
class ServiceStatus(Plain):
    name: str
    active: bool
    state: str  # active | inactive | failed | activating | deactivating | stale | unknown
    pid: Optional[int] = None
    since: Optional[float] = None  # epoch seconds the current process started

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------- systemd


def systemd_action_cmd(action: str, units: Sequence[str]) -> Cmd:
    return sudo(["systemctl", action, *units])


def held_systemd_cmd(home: str, action: str, unit: str) -> Cmd:
    """`systemctl ACTION UNIT` after the restore hold's check and a
    reset-failed. The hold is checked here too: a unit skipped by its
    ExecCondition= is no failed start to systemctl (docs/backups.md, "The
    hold"). A unit that hit systemd's start limit (5 starts in 10 s)
    refuses every start until reset-failed; fabops keeps its own backoff
    (3 automatic restarts an hour), so clearing systemd's is safe."""
    from .hold import hold_check  # as process_start_cmd

    return sh("{held}{reset} 2>/dev/null; {action}", held=hold_check(HostPaths(home).restore_hold),
              reset=systemd_action_cmd("reset-failed", [unit]), action=systemd_action_cmd(action, [unit]))


def systemd_status_cmd(units: Sequence[str]) -> Cmd:
    # --timestamp=unix needs systemd 248; older ones (Debian bullseye's 247)
    # refuse the whole command, so fall back to the default timestamp format.
    return sh("{{ systemctl show --timestamp=unix -p Id,ActiveState,SubState,MainPID,ExecMainStartTimestamp {units} "
              "2>/dev/null || systemctl show -p Id,ActiveState,SubState,MainPID,ExecMainStartTimestamp {units}; }}",
              units=list(units))


def parse_systemd_show(output: str, units: Sequence[str]) -> Dict[str, ServiceStatus]:
    """Blocks of KEY=VALUE separated by blank lines, in the order asked."""
    blocks: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    for line in output.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    out: Dict[str, ServiceStatus] = {}
    for unit, block in zip(units, blocks):
        state = block.get("ActiveState") or "unknown"
        pid = _int(block.get("MainPID"))
        since = None
        stamp = block.get("ExecMainStartTimestamp", "")
        if stamp.startswith("@"):
            since = _float(stamp[1:])
        elif stamp:
            since = _parse_systemd_time(stamp)
        out[unit] = ServiceStatus(unit, state == "active" and bool(pid), state, pid or None, since)
    for unit in units:
        out.setdefault(unit, ServiceStatus(unit, False, "unknown"))
    return out


def _parse_systemd_time(stamp: str) -> Optional[float]:
    """systemd's default format, `Sun 2026-11-29 10:00:00 UTC` (systemd < 248).
    Only UTC, or the zone this process is in, can be read without a tz database."""
    import calendar
    import time as _time

    parts = stamp.split()
    if len(parts) != 4:
        return None
    try:
        tm = _time.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    if parts[3] in ("UTC", "GMT"):
        return float(calendar.timegm(tm))
    if parts[3] in _time.tzname:
        return _time.mktime(tm)
    return None


# ---------------------------------------------------------------- process

# Shell helpers: `alive PID START` is true when PID runs and is the same
# process that was started (its start time matches), so a recycled PID in a
# stale pidfile is never signalled.
_PRELUDE = raw(r"""
stat_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null; }
alive() {
  set -- "$1" "$2" $(stat_of "$1")
  [ -n "$3" ] && [ "$3" != Z ] && [ "$3" != X ] && { [ -z "$2" ] || [ "$2" = "${22}" ]; }
}
gone() {
  [ "$(cat "$3.gone" 2>/dev/null)" = "$1" ] && return 0
  echo "$1" > "$3.gone" 2>/dev/null || return 0
  printf '%s\n' "fabops: $4's process $1 exited (error: found gone at $(date '+%Y-%m-%d %H:%M:%S %Z'))" >> "$2"
}
""")
# `gone PID LOG PIDFILE NAME`: the process back end's record of a death, as
# journald's "Main process exited, ... status=1/FAILURE" is systemd's: a stop
# (before every restart: health --fix, a deploy's, `restart`) that finds the
# recorded process gone appends one line to the service's log, once per PID
# (PIDFILE.gone says which PID was written), so monitor's "errors in the last
# hour" and `logs --errors` count a crash under both back ends
# (docs/monitor.md). A status look writes nothing: dry runs and monitor read;
# monitor lists a death no stop has met yet from the notes, beside the
# count, not in it (unlogged_deaths).


def _svc_files(home: str, name: str):
    paths = HostPaths(home)
    return paths.services, paths.service_pid(name), paths.service_log(name)


_SHELL_KEYWORDS = {"trap", "set", "cd", "export", "if", "for", "while", "until", "case", "exec", ".", "source", "eval", "{", "("}


def exec_form(command: str) -> str:
    """`exec CMD` for a simple command, so the pidfile names the service
    itself; compound shell code (`a; b`, `trap ...`) runs as written under sh,
    and the whole process group is signalled on stop either way."""
    first = command.strip().split(None, 1)[0] if command.strip() else ""
    simple = not any(ch in command for ch in ";&|(){}\n`$<>")
    if simple and first and first not in _SHELL_KEYWORDS and "=" not in first:
        return "exec " + command
    return command


def process_start_cmd(home: str, app_path: str, svc: Service) -> Cmd:
    base, pidfile, log = _svc_files(home, svc.name)
    workdir = posixpath.normpath(posixpath.join(app_path, svc.workdir))
    # setsid: own session and process group, so stop can signal the whole
    # group and the service survives the SSH session that started it. The
    # service's command (hosts.yml shell code) is one quoted word for sh -c.
    # A restore cut off putting items back holds the data (HostPaths.restore_hold,
    # docs/backups.md "The hold"): no start, its words in the service's log and on
    # stderr, exit 75, read as every start reads it (host/hold.hold_check; imported
    # here: cron's no-op poll starts nothing, and imports only what it needs)
    from .hold import hold_check

    return sh(
        "{prelude}mkdir -p {base} && chmod 700 {base} && cd {workdir} || exit 1\n"
        "{held}"
        "setsid sh -c {inner} >>{log} 2>&1 </dev/null &\n"
        "pid=$!\n"
        'set -- $(stat_of "$pid")\n'
        'echo "$pid ${{20}}" > {pidtmp} && mv {pidtmp} {pidfile}\n'
        'echo "started $pid"\n',
        prelude=_PRELUDE, base=path(base), workdir=path(workdir), inner=exec_form(svc.command or "false"),
        held=hold_check(HostPaths(home).restore_hold, log), log=path(log), pidtmp=path(pidfile + ".tmp"),
        pidfile=path(pidfile))


def process_stop_cmd(home: str, svc: Service, grace: float = STOP_GRACE) -> Cmd:
    """Stop via the pidfile; no `exit`, so it can be followed by a start.
    A recorded process already gone is noted in its log (`gone`)."""
    _, pidfile, log = _svc_files(home, svc.name)
    return sh(
        "{prelude}if [ -r {pf} ]; then\n"
        "  read pid start < {pf}\n"
        '  if alive "$pid" "$start"; then\n'
        '    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null\n'
        '    i=0; while alive "$pid" "$start" && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done\n'
        '    if alive "$pid" "$start"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; echo killed; '
        "else echo stopped; fi\n"
        "  else gone \"$pid\" {log} {pf} {name}\n"
        "  fi\n"
        "  rm -f {pf} {noted}\n"
        "fi\n",
        prelude=_PRELUDE, pf=path(pidfile), ticks=max(1, int(grace * 10)), log=path(log), name=svc.name, noted=path(pidfile + ".gone"))


def process_status_cmd(home: str, services: Sequence[Service]) -> Cmd:
    checks = [_PRELUDE]
    for svc in services:
        _, pidfile, _ = _svc_files(home, svc.name)
        checks.append(sh(
            "if [ -r {pf} ]; then read pid start < {pf}; "
            'if alive "$pid" "$start"; then echo {name}" active $pid $(stat -c %Y /proc/$pid)"; '
            'else echo {name}" stale $pid -"; fi; '
            "else echo {name}' inactive - -'; fi",
            pf=path(pidfile), name=svc.name))
    return sh("{body}\n", body=lines(checks))


def parse_process_status(output: str, names: Sequence[str]) -> Dict[str, ServiceStatus]:
    out: Dict[str, ServiceStatus] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0] not in names:
            continue
        name, state, pid, since = parts
        out[name] = ServiceStatus(name, state == "active", state, _int(pid), _float(since))
    for name in names:
        out.setdefault(name, ServiceStatus(name, False, "unknown"))
    return out


def process_gone_notes_cmd(home: str, services: Sequence[Service]) -> Cmd:
    """Each service's `.gone` note, `NAME PID` (the PID whose death `gone`
    wrote to its log), read with builtins: no fork for a look."""
    notes = [sh("[ -r {note} ] && read -r G R < {note} && echo {name}\" $G\"",
                note=path(_svc_files(home, svc.name)[1] + ".gone"), name=svc.name) for svc in services]
    return lines(notes + [raw("true")], "; ")


def unlogged_deaths(statuses: Dict[str, ServiceStatus], notes: str) -> List[Tuple[str, Optional[int]]]:
    """[(service, pid)] of the deaths `gone` has not written yet: a
    service found `stale` (its pidfile names a process that is gone) whose
    `.gone` note (process_gone_notes_cmd's output) does not name that PID.
    The next stop writes each one's line (process_stop_cmd); until then
    monitor counts it with the errors of the last hour as that line
    (docs/monitor.md), and writes nothing."""
    noted: Dict[str, Optional[int]] = {}
    for line in notes.splitlines():
        parts = line.split()
        if len(parts) == 2:
            noted[parts[0]] = _int(parts[1])
    return [(name, st.pid) for name, st in statuses.items()
            if st.state == "stale" and (name not in noted or noted[name] != st.pid)]


def process_log_path(home: str, svc: Service) -> str:
    return _svc_files(home, svc.name)[2]


# ---------------------------------------------------------------- runner


class ServiceManager:
    """Start/stop/restart/status for a host's services through `c`."""

    def __init__(self, c, host: Host, home: Optional[str] = None, app_path: Optional[str] = None):
        self.t = Target.of(c, host)
        self.host = host
        # On the host these are absolute (expanded); over SSH they may start
        # with ~/ and quote_path keeps that expandable.
        self.home = home or host.home
        self.app_path = app_path or host.app.path

    def _run(self, cmd: Cmd, what: str, argv=None):
        return self.t.run(cmd, what, argv=argv)

    def start(self, svc: Service) -> None:
        if svc.manager == "systemd":
            self._run(held_systemd_cmd(self.home, "start", svc.name), f"start {svc.name}", ["systemctl", "start", svc.name])
        else:
            self._run(process_start_cmd(self.home, self.app_path, svc), f"start {svc.name}")

    def stop(self, svc: Service) -> None:
        if svc.manager == "systemd":
            self._run(systemd_action_cmd("stop", [svc.name]), f"stop {svc.name}", ["systemctl", "stop", svc.name])
        else:
            self._run(process_stop_cmd(self.home, svc), f"stop {svc.name}")

    def restart(self, svc: Service) -> None:
        if svc.manager == "systemd":
            self._run(held_systemd_cmd(self.home, "restart", svc.name), f"restart {svc.name}", ["systemctl", "restart", svc.name])
        else:
            self._run(sh("{stop}{start}", stop=process_stop_cmd(self.home, svc),
                         start=process_start_cmd(self.home, self.app_path, svc)), f"restart {svc.name}")

    def status(self, services: Optional[Sequence[Service]] = None) -> Dict[str, ServiceStatus]:
        """Every service's status in one round trip per back end."""
        services = list(services if services is not None else self.host.services)
        out: Dict[str, ServiceStatus] = {}
        units = [s.name for s in services if s.manager == "systemd"]
        procs = [s for s in services if s.manager == "process"]
        if units:
            out.update(parse_systemd_show(self.t.output(systemd_status_cmd(units)), units))
        if procs:
            out.update(parse_process_status(self._process_status(procs), [s.name for s in procs]))
        return out

    def _process_status(self, procs: Sequence[Service]) -> str:
        """process_status_cmd's lines. On this machine as this user (the
        host's own runs: cron's poll, a deploy's gate) they are read in this
        process by host/monitorfacts.process, the monitor's reading of the
        same pidfiles and /proc: the shell's look started bash, sed and stat
        on every poll (docs/benchmarks.md, "Cron's no-op poll"). Over SSH,
        or as another user, the command runs there."""
        if type(self.t) is not Target or not self.t.is_local:
            return self.t.output(process_status_cmd(self.home, procs))
        from .monitorfacts import process

        pairs = [word for svc in procs for word in (svc.name, os.path.expanduser(_svc_files(self.home, svc.name)[1]))]
        return process(pairs)[0].decode("utf-8", "replace")


def _int(text) -> Optional[int]:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def _float(text) -> Optional[float]:
    try:
        return float(str(text).strip())
    except (TypeError, ValueError):
        return None
