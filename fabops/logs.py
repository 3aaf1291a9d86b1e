"""`inv logs`: read or follow service output and fabops' own logs on hosts.

Following runs the remote `tail -F`/`journalctl -f` under a pty: when the
laptop stops (Ctrl-C), closing the channel hangs up the pty and the kernel
ends the whole remote process group, so no `tail` is left behind.
"""
from __future__ import annotations

import re
import threading
from typing import Callable, List, Optional

from . import errors
from .errors import UsageError
from .host.record import FAILURES
from .host.services import process_log_path
from .inventory import Host, Inventory
from .shell import Cmd, join, lines as seq, path, program, raw, sh
from .target import Target


# --since: the time forms journalctl reads (systemd.time(7), "PARSING
# TIMESTAMPS"), checked here so a typo is exit 64 before any connection,
# not a host's journalctl error or, for a file, nothing at all.
_UNITS = sorted("usec us µs msec ms seconds second sec s minutes minute min m hours hour hr h "
                "days day d weeks week w months month M years year y".split(), key=len, reverse=True)
_SPAN = r"(?:\d+(?:\.\d+)?\s*(?:%s)?\s*)+" % "|".join(_UNITS)
_WEEKDAY = r"(?i:mon(?:day)?|tue(?:sday)?|wed(?:nesday)?|thu(?:rsday)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)"
# Compiled by since_value, the one that reads it: a few ms of every
# command's import otherwise (monitor imports this module for error_words).
_SINCE = (
    r"(?:now|today|yesterday|tomorrow"
    r"|@\d+(?:\.\d+)?"  # seconds since the epoch
    rf"|[+-]\s*{_SPAN}|{_SPAN}\s+(?:ago|left)"  # relative: -1h, 1 hour ago
    # absolute: [weekday] date [time] or time alone, [UTC]
    rf"|(?:{_WEEKDAY}\s+)?(?P<date>\d{{2,4}}-\d{{1,2}}-\d{{1,2}})(?:[ T](?P<time>\d{{1,2}}:\d\d(?::\d\d(?:\.\d{{1,6}})?)?))?(?:\s+UTC)?"
    r"|(?P<clock>\d{1,2}:\d\d(?::\d\d(?:\.\d{1,6})?)?)(?:\s+UTC)?)")
SINCE_FORMS = ("'1 hour ago', '-30min', '2h 15m ago', 'today', 'yesterday', '2026-11-28', "
               "'2026-11-28 10:00[:00]', '10:00' or '@1764930000' (journalctl's forms)")


def since_value(text: str) -> str:
    """The --since value as journalctl gets it: one of the forms
    SINCE_FORMS shows (systemd.time(7)), a date's `T` made a space (older
    journalctl read only the space). Anything else is a usage error."""
    value = " ".join(str(text).split())
    m = re.fullmatch(_SINCE, value)
    if m is not None and m.group("date"):
        import datetime

        y, mo, d = (int(x) for x in m.group("date").split("-"))
        hh, mm, ss = ([int(float(x)) for x in m.group("time").split(":")] + [0])[:3] if m.group("time") else (0, 0, 0)
        try:
            datetime.datetime(y if y >= 100 else 2000 + y, mo, d, hh, mm, ss)
        except ValueError:
            m = None
    elif m is not None and m.group("clock"):
        hh, mm = (int(x) for x in m.group("clock").split(":")[:2])
        m = m if hh < 24 and mm < 60 else None
    if m is None:
        raise UsageError(f"--since {text!r} is not a time; give e.g. {SINCE_FORMS}")
    if m.group("time"):  # 2026-11-28T10:00: the separator only
        value = value[:m.start("time") - 1] + " " + value[m.start("time"):]
    return value


def since_unmet(hosts: List[Host], source: str, service: Optional[str], lines: int, errors_only: bool) -> Optional[str]:
    """Why --since leaves some of the chosen logs whole, or None when it
    filters them all. It is journalctl's filter: the update and health logs,
    an app log and the process back end's log are files whose lines need
    not carry a time (a command's output in the update log has none), so
    they show their last `lines` lines, as without --since."""
    hit, names = [], []
    for host in hosts:
        if source != "journal":
            hit.append(host.name)
            continue
        files = [s.name for s in ([host.service(service)] if service else host.services) if s.manager == "process"]
        if files:
            hit.append(host.name)
            names += [n for n in files if n not in names]
    if not hit:
        return None
    what = f"the {source} log" if source != "journal" else f"the process back end's log ({', '.join(names)})"
    from .host.record import counted

    # `the last 1 line`, not `1 lines` (trial 2 #7)
    shown = "new lines only" if lines == 0 else f"the last {counted(lines, 'error line' if errors_only else 'line')} of {what}"
    where = f" on {', '.join(hit)}" if len(hit) < len(hosts) else ""
    return f"--since applies to journal logs only; showing {shown}{where}"


def log_command(host: Host, source: str, service: Optional[str], lines: int, errors_only: bool,
                since: Optional[str], follow: bool) -> Cmd:
    """The shell command that prints (or follows) the chosen log on the host."""
    lines = max(0, int(lines))  # 0: new lines only (a follow resuming after a reconnect)
    if source == "journal":
        chosen = [host.service(service)] if service else list(host.services)
        if not chosen:
            raise UsageError("no services configured", host=host.name)
        units = [s.name for s in chosen if s.manager == "systemd"]
        files = [process_log_path(host.paths.home, s) for s in chosen if s.manager == "process"]
        cmds = []
        if units:
            cmds.append(_journal_cmd(units, lines, errors_only, since, follow))
        if files:
            cmds.append(_file_cmd(files, lines, errors_only, follow))
        if follow and len(cmds) > 1:
            return sh("{both} & wait", both=seq(cmds, " & "))
        return seq(cmds, "; ")
    if source in ("update", "health", "app"):
        log = host.logs.get(source)
        if not log:
            if source == "app":
                raise UsageError("no `logs.app` path in hosts.yml for this host", host=host.name)
            log = host.paths.log(source)
        return _file_cmd([log], lines, errors_only, follow, source)
    raise UsageError(f"unknown log source {source!r}")


# What a person calls an error in a log line, matched case-insensitively
# anywhere in it (docs/monitor.md): a word "error" (TypeError, ERROR:), and
# crashes that never say it: a Python `Traceback`, an `Exception`, Node's
# `Uncaught`, Go's `panic:`, `FATAL`, `Segmentation fault`, `core dumped`, and
# systemd's "Main process exited, code=exited, status=1/FAILURE" and
# "Failed with result 'exit-code'". One list: `logs --errors` keeps these
# lines and monitor's "errors in the last hour" counts them.
ERROR_WORDS = ("error", "exception", "traceback", "uncaught", "panic", "fatal", "segmentation fault",
               "core dumped", "/failure", "failed with result")


# The health log's status words (host/health._line) that are errors: a
# failed check's (health's Nagios CRITICAL, exit 2; docs/monitor.md)
HEALTH_FAILURES = (errors.FAILED,)


def error_words(source: str = "") -> List[str]:
    """ERROR_WORDS as grep's `-e WORD` arguments (with -i); for the update
    log (`source` update) also the status word of every run that failed or
    was rolled back, which need not say "error": as host/record.py writes
    it (`[trigger actor] ROLLED_BACK a -> b ...`), for each of its
    FAILURES, and a failed backup's or restore's (their lines are in the
    one format too: host/record.log_line). All fixed strings: monitor's
    python3 matches them as such (host/monitorfacts.py)."""
    words = [arg for word in ERROR_WORDS for arg in ("-e", word)]
    if source == "update":
        # and env-set's (maintenance/envrun.RESULTS): a gate that failed, a run an error stopped
        for result in FAILURES + ("backup_failed", "restore_failed", "reverted", "failed"):
            words += ["-e", "] %s " % result.upper()]
    return words


def error_filter(source: str, follow: bool) -> Cmd:
    """`| grep` keeping the lines that mention an error (error_words: in
    the update log also the line of every run that failed or was rolled
    back). In the health log, the line of every check that failed (`TIME
    HOST FAILED: bot is stopped`, as host/health._line writes it: its
    Nagios word after the time and the host's name), which need not say
    "error" either (#24's trial: `logs --source health --errors` showed
    none)."""
    words = error_words(source)
    if source == "health":
        for word in HEALTH_FAILURES:
            words += ["-e", "^[^ ]* [^ ]* %s: " % errors.NAMES[word]]
    return sh(" | grep{buffered} -i {words}", buffered=raw(" --line-buffered") if follow else raw(""), words=join(words))


def _journal_cmd(units: List[str], lines: int, errors_only: bool, since: Optional[str], follow: bool) -> Cmd:
    """journalctl for these units: the last `lines` lines (of the window
    when there is one: --since), or with `errors_only` the last `lines`
    error lines of the window (--since, else the last 24 h); following,
    then new ones."""
    argv = ["journalctl", "--no-pager", "-o", "short-iso"]
    for unit in units:
        argv += ["-u", unit]
    window = since or ("-24h" if errors_only else None)
    if follow and lines and window:
        return _journal_window_follow_cmd(join(argv), window, lines, errors_only)
    if follow and not lines:
        # new lines only (a resumed follow): no window. With one, -n 0
        # limits only the first pass of an older journalctl's follow loop
        # (systemd 247's source), so its first new entry brought the window.
        window = None
    if window:
        argv += ["--since", window]
    if follow:
        argv += ["-n", str(lines), "-f"]
    elif not window:
        argv += ["-n", str(lines)]
    grep = error_filter("journal", True) if errors_only else raw("")
    # a window's last `lines` lines: the whole window through tail, never
    # `--since W -n N`, which an older journalctl reads as the window's
    # first N (issue #24: the same flaw as its follow)
    tail = sh(" | tail -n {n}", n=lines) if window and not follow else raw("")
    return sh("{journal}{grep}{tail}", journal=join(argv), grep=grep, tail=tail)


def _journal_window_follow_cmd(journal: Cmd, window: str, lines: int, errors_only: bool) -> Cmd:
    """`-f -n N` with a window (`--since`, or `--errors`' last 24 h) on the
    journal: the last N lines (error lines with --errors) of the window,
    then new ones, with no gap and no line twice (issue #24: `-n N -f |
    grep` showed only the errors among the last N lines, often none; and
    `--since W -n N -f` showed the window's first N entries, then, at the
    next new entry, all the rest of it, on systemd 247). The history run
    writes the cursor of the last entry it read (--cursor-file, systemd >=
    242) and the follow starts right after it (--after-cursor); with no
    entry in the window there is no cursor, and the follow reads the same
    window, which then holds only new entries.
    The cursor file lives in a 0700 directory of mktemp's (in
    $XDG_RUNTIME_DIR when there is one), removed before the follow starts
    and by the traps if the history run is cut (Ctrl-C, a lost link's
    hang-up: docs/architecture.md, "Following logs")."""
    grep = error_filter("journal", True) if errors_only else raw("")
    return sh(
        # the traps come first: a hang-up right after mktemp still removes it
        "( d=; trap '[ -z \"$d\" ] || rm -rf -- \"$d\"' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; "
        "trap 'exit 143' TERM; "
        "d=$(mktemp -d \"${{XDG_RUNTIME_DIR:-${{TMPDIR:-/tmp}}}}/fabops-logs.XXXXXX\" 2>/dev/null || mktemp -d) || "
        "{{ echo 'fabops: logs -f: mktemp -d failed: no private directory for the journal cursor' >&2; "
        "exit 1; }}; "
        "{journal} --since {window} --cursor-file=\"$d/cursor\"{grep} | tail -n {n}; "
        "c=$(cat \"$d/cursor\" 2>/dev/null); rm -rf -- \"$d\"; trap - EXIT; "
        "if [ -n \"$c\" ]; then {journal} --after-cursor=\"$c\" -n all -f; "
        "else {journal} --since {window} -n all -f; fi{grep} )",
        journal=journal, window=window, grep=grep, n=lines)


def _file_cmd(paths: List[str], lines: int, errors_only: bool, follow: bool, source: str = "journal") -> Cmd:
    files = [path(p) for p in paths]
    grep = error_filter(source, follow) if errors_only else raw("")
    if follow and errors_only and lines:
        return _file_errors_follow_cmd(paths, lines, source)
    if follow:
        return sh("tail -q -n {n} -F {files} 2>/dev/null{grep}", n=lines, files=files, grep=grep)
    if errors_only:
        return sh("cat {files} 2>/dev/null{grep} | tail -n {n}", files=files, grep=grep, n=lines)
    return sh("tail -q -n {n} {files} 2>/dev/null", n=lines, files=files)


def _file_errors_follow_cmd(paths: List[str], lines: int, source: str) -> Cmd:
    """`-f --errors -n N` on log files: the last N error lines of the files
    as they are now (as without -f: `cat | grep | tail`), then each file's
    new error lines (issue #24). Each file's size is read first; the history
    reads that many bytes of it (`head -c`) and the follow starts at the
    next byte (`tail -c +SIZE+1 -F`), so no line is missed or shown twice. A
    file missing now is followed from its first byte once it appears; one
    truncated meanwhile, from its start (tail -F). One tail per file, each
    with its own line-buffered grep, so two files' lines never interleave
    mid-line."""
    sizes, heads, tails = [], [], []
    grep = error_filter(source, True)
    for i, p in enumerate(paths):
        var = sh("s{i}", i=i)  # s0, s1, ...: a variable name of ours, never a value
        sizes.append(sh("{var}=$(stat -c %s {f} 2>/dev/null || echo 0)", var=var, f=path(p)))
        heads.append(sh("head -c \"${var}\" {f}", var=var, f=path(p)))
        tails.append(sh("tail -c +$((${var} + 1)) -F {f} 2>/dev/null{grep}", var=var, f=path(p), grep=grep))
    follow = tails[0] if len(tails) == 1 else sh("{each} & wait", each=seq(tails, " & "))
    return sh("( {sizes}; {{ {heads}; }} 2>/dev/null{grep} | tail -n {n}; {follow} )",
              sizes=seq(sizes, "; "), heads=seq(heads, "; "), grep=grep, n=lines, follow=follow)


class _Lines:
    """Whole lines of one host's output, each handed to `emit(host, line)`.
    A line that is exactly `self.marker` is not shown: it calls `on_marker`
    (a resumed follow's "the remote tail runs now")."""

    def __init__(self, host: str, emit: Callable[[str, str], None]):
        self.host, self.emit, self.buf = host, emit, ""
        self.marker: Optional[str] = None
        self.on_marker: Callable[[], None] = lambda: None

    def feed(self, text: str) -> None:
        self.buf += text.replace("\r\n", "\n").replace("\r", "\n")
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if self.marker is not None and line == self.marker:
                self.marker = None
                self.on_marker()
                continue
            self.emit(self.host, line)

    def close(self) -> None:
        if self.buf:
            self.emit(self.host, self.buf)
            self.buf = ""


def read_logs(inv: Inventory, hosts: List[Host], *, source, service, lines, errors_only, since,
              emit: Callable[[str, str], None], accept_new=False, connect_timeout=None):
    """Each host's lines, as `emit(host, line)` events, host by host; returns
    the fan-out result (the task reports the hosts that failed)."""
    from .connection import close_quietly, connect
    from .fanout import run_hosts

    def one(host):
        cmd = log_command(host, source, service, lines, errors_only, since, follow=False)
        cxn = connect(host, inv, accept_new=accept_new, connect_timeout=connect_timeout)
        try:
            return Target.of(cxn, host).output(cmd)
        finally:
            close_quietly(cxn)

    outcome = run_hosts(hosts, one)
    for r in outcome.results:
        if r.ok:
            out = _Lines(r.host, emit)
            out.feed(r.value)
            out.close()
    return outcome


# The line a resumed follow's command prints as its tail starts (never shown).
RESUMED = "fabops-follow-resumed"
# Seconds between reconnect attempts after a follow lost its link.
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0)
# A silent link and a quiet log look alike: probe the transport this often,
# and call the link lost if the probe gets no answer within the same time.
PROBE_EVERY = 10.0


def follow_logs(inv: Inventory, hosts: List[Host], *, source, service, lines, errors_only, since,
                emit: Callable[[str, str], None], notice: Callable[[str, str], None],
                accept_new=False, connect_timeout=None, stop: Optional[threading.Event] = None) -> int:
    """Follow on every host at once until `stop` is set (Ctrl-C) or every stream ends.

    Each host streams in its own thread, connect included, so the caller's
    thread only waits on `stop`: Ctrl-C ends the follow promptly whether a
    host is connecting, streaming or reconnecting. A host whose link drops
    is reconnected with backoff and resumes with new lines only; a host that
    cannot be reached at the start is reported and not retried.
    Lines go to `emit(host, line)`, one thread per host (emit must be
    thread-safe); link news to `notice(host, text)`, the text without the
    host's name (notice adds it).
    Returns the worst exit code of the hosts that failed at the start."""
    stop = stop or threading.Event()
    outs = {h.name: _Lines(h.name, emit) for h in hosts}
    streams = []
    for host in hosts:
        first = log_command(host, source, service, lines, errors_only, since, follow=True)
        resume = log_command(host, source, service, 0, errors_only, None, follow=True)
        streams.append(_Stream(host, inv, first, resume, outs[host.name], stop, notice,
                               accept_new=accept_new, connect_timeout=connect_timeout))
    for st in streams:
        st.thread.start()
    try:
        while not stop.is_set() and any(st.thread.is_alive() for st in streams):
            stop.wait(0.2)
    finally:
        stop.set()
        for st in streams:
            st.hang_up()
        for st in streams:
            st.thread.join(3.0)  # each thread only closes its channel and connection now
    if any(st.closed_pipe for st in streams):
        errors.quiet_closed_pipe()  # as every task ends at a closed pipe (docs/errors.md, 141)
    return errors.worst(st.failure.exit_code for st in streams if st.failure is not None)


class _Stream:
    """One host's follow: connect, stream, and reconnect after a lost link."""

    def __init__(self, host: Host, inv: Inventory, first: str, resume: str, out: _Lines, stop: threading.Event,
                 notice, *, accept_new: bool, connect_timeout):
        self.host, self.inv, self.out, self.stop, self.notice = host, inv, out, stop, notice
        self.commands = (first, resume)
        self.accept_new, self.connect_timeout = accept_new, connect_timeout
        self.failure: Optional[errors.FabopsError] = None
        self.closed_pipe = False  # stdout's reader went away: the follow ends with exit 141
        self.cxn = None
        self.chan = None
        self.thread = threading.Thread(target=self.run, name=f"logs-{host.name}", daemon=True)

    def run(self) -> None:
        try:
            self._follow()
        except BrokenPipeError:  # emit's stdout: `logs -f | head` has read enough
            self.closed_pipe = True
            self.stop.set()

    def _follow(self) -> None:
        from .connection import close_quietly, connect

        attempt = 0
        while not self.stop.is_set():
            try:
                self.cxn = connect(self.host, self.inv, accept_new=self.accept_new,
                                   connect_timeout=self.connect_timeout)
            except errors.FabopsError as exc:
                if attempt == 0:  # never connected: report it, as every task does
                    self.failure = exc
                    self.notice(self.host.name, exc.message)  # notice names the host: once
                    return
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                self.notice(self.host.name, f"reconnect failed ({exc.message}); next try in {delay:g} s")
                attempt += 1
                self.stop.wait(delay)
                continue
            command = self.commands[1 if attempt else 0]
            if attempt:
                # "new lines follow" is said when the resumed command runs,
                # not when the SSH session is up: it prints RESUMED right
                # before it starts the tail, and the notice waits for that
                # line (a line written before the tail has opened the log
                # is one of the "lines written meanwhile": docs/architecture.md).
                command = sh("printf '%s\\n' {mark}; {cmd}", mark=RESUMED, cmd=command)
                self.out.marker = RESUMED
                self.out.on_marker = lambda: self.notice(
                    self.host.name, "reconnected; new lines follow (lines written meanwhile "
                    f"are not shown: `{program()} logs -n N` reads them)")
            try:
                lost = self._stream(Target.of(self.cxn, self.host), command)
            finally:
                close_quietly(self.cxn)  # first: the output's close may meet a closed pipe
                self.out.close()
            if not lost or self.stop.is_set():
                return
            attempt += 1
            delay = RECONNECT_DELAYS[min(attempt - 1, len(RECONNECT_DELAYS) - 1)]
            self.notice(self.host.name, f"connection lost; reconnecting in {delay:g} s")
            self.stop.wait(delay)

    def _stream(self, t: Target, command: Cmd) -> bool:
        """Stream until the command ends (False) or the link is lost (True).
        Over SSH the pty ties the remote processes to the channel; a quiet
        channel is probed with a keepalive every PROBE_EVERY seconds."""
        try:
            chan = t.stream(command, pty=True, timeout=PROBE_EVERY)  # the env: the host's env.sh
        except Exception:  # noqa: BLE001 - paramiko raises several types for a dead link
            return True
        self.chan = chan
        if self.stop.is_set():  # Ctrl-C came while we started it
            self.hang_up()
        try:
            return self._read(t, chan)
        finally:
            try:
                chan.close()
            except Exception:  # noqa: BLE001 - closing a dead channel
                pass

    def _read(self, t: Target, chan) -> bool:
        import socket
        import time

        chan.settimeout(0.5)
        last_probe = time.monotonic()
        while not self.stop.is_set():
            try:
                data = chan.recv(65536)
            except socket.timeout:
                if not t.is_local and time.monotonic() - last_probe >= PROBE_EVERY:
                    if not _answers(t.transport, PROBE_EVERY):
                        return True
                    last_probe = time.monotonic()
                continue
            except Exception:  # noqa: BLE001 - closed by hang_up(), or the link died
                return not self.stop.is_set() and not t.is_local
            if not data:
                # the command ended, or the transport went away under it
                return not t.is_local and not chan.exit_status_ready() and not self.stop.is_set()
            self.out.feed(data.decode("utf-8", "replace"))
            last_probe = time.monotonic()
        return False

    def hang_up(self) -> None:
        """End the follow now; safe from any thread, any time."""
        chan = self.chan
        if chan is not None:
            try:
                chan.send(b"\x03")  # ^C (through the pty, or to the local group): SIGINT
            except Exception:  # noqa: BLE001
                pass
            try:
                chan.close()  # and the hang-up, for anything that ignored it
            except Exception:  # noqa: BLE001
                pass


def _answers(transport, timeout: float) -> bool:
    """Whether the peer answers a keepalive request within `timeout`.
    paramiko's global_request(wait=True) has no timeout of its own, so it
    runs in a helper thread that ends when the transport is closed."""
    done = threading.Event()

    def probe():
        try:
            transport.global_request("keepalive@openssh.com", wait=True)
        except Exception:  # noqa: BLE001
            pass
        finally:
            done.set()

    threading.Thread(target=probe, name="logs-probe", daemon=True).start()
    return done.wait(timeout) and transport.is_active()
