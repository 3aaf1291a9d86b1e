"""`inv monitor`: every fact about a host in one round trip, parsed purely.

`monitor_script(host)` builds one POSIX-sh script that prints sections
between markers; `parse(output, host)` turns its output into a dict;
`evaluate(facts, host)` applies the thresholds and returns the Nagios code
and findings. The host's one python3 reads the facts that are files
(host/monitorfacts.py), whose each port is and the HTTP checks; without it
coreutils/procps read the same, and missing tools degrade to "unknown",
never to a failed command (docs/monitor.md).
"""
from __future__ import annotations

import datetime
import functools
import json
import posixpath
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import errors
from .host.plan import restore_cut_off, restore_cut_off_text
from .host.readiness import state_phrase
from .host.state import RESTART_LIMIT, budget_spent_until, failing_of, host_result, verdict_of
from .host.services import process_gone_notes_cmd, process_status_cmd, systemd_status_cmd, unlogged_deaths
from .inventory import Host
from .logs import error_words
from .probe import MARK, split_sections
from .procstat import PROC_STAT, parse_end, process_ages
from .checks import http_check_input, listeners_source, parse_http_results, port_listening_cmd
from .host.httpcheck import result_line
from .host.listeners import OTHER, OWN, from_json
from .unit_audit import units_cmd
from .validate import cron_values
from .shell import Cmd, join, lines, path, quote_path, raw, sh
from .remote import bad_ahead, behind_cmd
from .shortsha import respelled, short_sha
from .target import Target

# The facts' own `schema` key; every key and its type: docs/json.schema.json
# ($defs/facts), which the tests check real output against.
SCHEMA_VERSION = 1
# Seconds over which CPU is sampled when monitor takes its own window (two
# /proc reads). top uses 3 s; half a second keeps a dashboard refresh quick
# while one clock tick (10 ms) is only 2 % of one core.
CPU_WINDOW = 0.5
# A one-shot monitor reports CPU since the newest cron sample (host/metrics.py)
# when it is younger than this many update intervals, else takes its window.
SAMPLE_AGE = 2


def _section(name: str, then: Optional[Cmd] = None) -> Cmd:
    # The leading newline ends whatever the previous command printed without
    # one (a truncated file), so a marker always starts a line.
    marker = sh("echo; echo {m}", m=MARK + name)
    return marker if then is None else sh("{marker}; {then}", marker=marker, then=then)


# What the script reads with shell builtins (`read`) instead of head/cat where
# it is easy: every avoided fork+exec saves 1-2 ms of the round trip.
_CPU = raw('read -r L < /proc/stat; echo "$L"')
_MEM = raw('while read -r K V R; do case $K in MemTotal:|MemAvailable:) echo "$K $V";; esac; done < /proc/meminfo')
_LOAD = raw('read -r L < /proc/loadavg; echo "$L"; read -r L < /proc/uptime; echo "$L"')
# Print /proc/uptime, the clock tick rate (asked once: $TK, empty at the
# script's start), each $PIDS' stat line and each
# $CGS' cgroup v2 usage (`cg PATH USEC`, host/metrics.CGROUP_ROOTS); sets T0 (uptime in centiseconds, the
# CPU window's start) the first time it runs, unless a young sample set it.
# The newest cron sample's line starts with its clock (host/metrics.py:
# {"boot":...,"up_cs":...): when it is from this boot and younger than
# $MAXAGE centiseconds, it opens the CPU window (T0) and SRC says `sample`.
_NEWEST_SAMPLE = raw(
    r'read -r BOOT 2>/dev/null < /proc/sys/kernel/random/boot_id || BOOT=; SRC=window; W=0; L=${M##*"$NL"}; '
    r'case $L in "{\"boot\":\"$BOOT\",\"up_cs\":"[0-9]*) S0=${L#*\"up_cs\":}; S0=${S0%%[!0-9]*}; '
    r'read -r U R < /proc/uptime; A=$(( ${U%.*}${U#*.} - S0 )); '
    r'if [ -n "$BOOT" ] && [ "$A" -ge 0 ] && [ "$A" -lt "$MAXAGE" ]; then T0=$S0; SRC=sample; fi;; esac'
)
# Each $PIDS' resident memory (VmRSS, kB) from /proc/<pid>/status, read
# with builtins: monitor.parse makes it a share of MemTotal and the
# process's age from pstat's start time, which ps's pmem and etimes cost
# five forks for.
_RSS = raw('for p in $PIDS; do [ "$p" -gt 0 ] 2>/dev/null && while read -r K V R; do case $K in VmRSS:) '
           'echo "$p $V"; break;; esac; done 2>/dev/null < /proc/$p/status; done; true')
# The host's UTC offset at its last update check (state.json's top-level
# `last_check`, in $S: json.dumps' indent of 2), not now's: across a DST
# change the two differ, and the cron-stalled rule steps the calendar from
# that check (stall_span). `date -d @SECONDS` is GNU's and busybox's; a date
# without it prints nothing, and the current offset stands in.
_TZ_LAST = raw('case $S in *"$NL  \\"last_check\\": "[0-9]*) L=${S#*"$NL  \\"last_check\\": "}; '
               'date -d "@${L%%[!0-9]*}" +%z 2>/dev/null;; esac; true')


def _checks(host: Host) -> list:
    return [s.check for s in host.services if s.check is not None]


def monitor_input(host: Host) -> str:
    """monitor_script's stdin: the HTTP checks' http_check_input, in the
    order of host.services ("" when no service has a check)."""
    return http_check_input(_checks(host)) if _checks(host) else ""


def sample_max_age(host: Host) -> float:
    """Seconds a cron sample may be old to open a one-shot monitor's CPU
    window: SAMPLE_AGE update intervals (0 without an update schedule)."""
    return SAMPLE_AGE * (update_interval(host.schedule.get("update")) or 0.0)


def monitor_script(host: Host, window: float = CPU_WINDOW, sample_age: Optional[float] = None,
                   marker: bool = False) -> Cmd:
    """The whole dashboard as one script (one exec per host per refresh).

    `window` is the least time between the two CPU samples. The window opens
    at the newest cron sample in metrics.jsonl when it is younger than
    `sample_age` seconds (default: sample_max_age; 0: never), read in this
    same script; else at the script's start. `monitor --watch` passes
    window=0 and sample_age=0 after its first refresh: the previous
    refresh's sample is the first one then, so the interval is the window
    and nothing waits. CPU is sampled at the start and at the end: the
    script's own run time is the window (or the time since the sample), and
    a sleep is added only when that is shorter than `window`. With
    `marker`, it also reads the install marker of the host's fabops (its
    version), so `monitor --prometheus` prints the host's metrics from
    this one round trip: the state section is state.json already
    (prometheus.monitor_exposition, docs/benchmarks.md's one round trip)."""
    age = sample_max_age(host) if sample_age is None else sample_age
    # the samples first (--history's and the CPU window's start): one tail
    parts: List[Cmd] = [sh("M=$(tail -n 97 {f} 2>/dev/null); MAXAGE={age}; TK=",
                           f=quote_path(host.paths.metrics), age=int(age * 100)), _NEWEST_SAMPLE]
    # (the disk, the zone: the facts' python3, _facts_part)
    parts += [_section("cpu0", _CPU), _section("mem", _MEM), _section("load", _LOAD)]
    parts += _service_parts(host)
    parts += _probe_parts(host)
    if marker:
        from .prometheus import marker_cmd

        parts.append(_section("marker", marker_cmd(host)))
    parts.append(_section("metrics", raw('[ -z "$M" ] || printf \'%s\\n\' "$M"')))
    # Every part that waits for a program and that nothing after it reads
    # runs beside the rest, all at the same time (_beside; docs/benchmarks.md,
    # "Beside one another"): the host's python3 (the slowest: an
    # interpreter's start; it reads every fact that is a file, says whose
    # each port is and runs every check: _facts_part), the journal's reads,
    # systemctl's sections and the checkout's git. The checks (monitor_input:
    # URLs, headers, bodies) come on the script's stdin, which that python3
    # alone reads (the rest reads /dev/null: _beside), so the specs never
    # reach an argv (docs/security.md). The journal's error counts follow the
    # python3's `errors` section, its last: the journal's part is printed
    # right after the python3's, and starts with them (_log_parts).
    beside = [_facts_part(host, len(_checks(host)))] + _log_parts(host) + _systemd_parts(host)
    beside.append(lines(_home_parts(host)))
    return sh("{top}\n{script}", top=_top(host), script=_beside(beside, lines(parts), lines(_closing_parts(window))))


# The file descriptors the beside parts' pipes are read from (_beside).
_BESIDE_FDS = (raw("3"), raw("4"), raw("5"), raw("6"))


def _beside(beside: List[Cmd], body: Cmd, closing: Cmd) -> Cmd:
    """`body`, then what each of `beside` printed, in their order, then
    `closing`: each of `beside` runs at the same time as `body` and as one
    another, its output going down a pipe that the rest reads from its own
    fd (3 to 6) and prints whole, with one cat for all, just before the
    closing samples (parse finds sections by name, not order). Only the
    first part reads the script's stdin; the others and the rest read
    /dev/null, so no command in them can swallow it. Pipes, not background
    jobs and temporary files: nothing is left to remove, and when the
    client goes away (the connection's end closes the script's stdout) the
    rest dies on its next write and each part on its own next one, so no
    part outlives its own programs' run (docs/benchmarks.md, "Beside one
    another"). cat reads each pipe as /proc/self/fd/N, its own inherited
    fd (the script reads /proc throughout; /dev/fd is not on every host)."""
    fds = _BESIDE_FDS[:len(beside)]
    script = sh("{body}\ncat {files}\n{closing}\n", body=body, closing=closing,
                files=join([sh("/proc/self/fd/{fd}", fd=fd) for fd in fds]))
    for part, fd in reversed(list(zip(beside, fds))):
        script = sh("{{ {part}\n}} | {{ exec {fd}<&0 </dev/null\n{rest}}}\n", part=part, fd=fd, rest=script)
    return script


def _top(host: Host) -> Cmd:
    """What the script reads before its parts split (_beside): $NL, and
    each unit's main PID, cgroup and invocation (a restart changes it) in
    $SC, one systemctl for both of their readers: the CPU samples ($PIDS,
    $CGS: the `cgroups` section names them) and the facts' python3 (whose
    each port is: $1, $2, ... the units' main PIDs in _units' order, as
    systemctl prints its blocks in the order asked; _facts_part)."""
    units = _units(host)
    if not units:
        return raw("NL='\n'; PIDS= CGS=")
    return sh("NL='\n'; SC=$(systemctl show -p Id,MainPID,ControlGroup,InvocationID {units} 2>/dev/null </dev/null); "
              'PIDS=; CGS=; for kv in $SC; do case $kv in MainPID=*) PIDS="$PIDS ${{kv#*=}}";; '
              'ControlGroup=/*) CGS="$CGS ${{kv#*=}}";; esac; done; set -- $PIDS', units=units)


def _systemd_parts(host: Host) -> List[Cmd]:
    """The units' states and what each runs (a unit running as root from
    our files): systemctl's two reads, beside the rest (monitor_script)."""
    units = _units(host)
    if not units:
        return []
    return [lines([_section("systemd", sh("{cmd} 2>/dev/null", cmd=systemd_status_cmd(units))),
                   _section("units", units_cmd(units))])]


def _service_parts(host: Host) -> List[Cmd]:
    """The `cgroups` section (_top read it), and $PIDS: the main PIDs that
    the CPU samples read (systemd's MainPID, the process back end's
    pidfiles)."""
    procs = _procs(host)
    parts: List[Cmd] = []
    if _units(host):
        parts.append(_section("cgroups", raw('printf \'%s\\n\' "$SC"')))
    if procs:  # (the `process` section: the facts' python3, _facts_part)
        for svc in procs:
            parts.append(sh('[ -r {pf} ] && read -r P1 R < {pf} && PIDS="$PIDS $P1"',
                            pf=path(host.paths.service_pid(svc.name))))
    return parts


def _probe_parts(host: Host) -> List[Cmd]:
    """The first per-process CPU sample (with each process's start time:
    its age), its memory and the ports."""
    # Per-process CPU is sampled over a window (docs/monitor.md, "CPU"): ps's
    # %CPU is the average over the process's whole life, which makes a bot a
    # second old look busy. The first /proc/<pid>/stat read is here, the
    # second at the end of the script, at least CPU_WINDOW later.
    # (the ports: the facts' python3, _facts_part)
    return [_section("pstat0", PROC_STAT), _section("rss", _RSS)]


def _port_parts(host: Host) -> List[Cmd]:
    """Whether something listens on each declared port, with `ss` or awk:
    a host without python3 (_shell_facts)."""
    return [_section(f"port:{svc.name}", sh("if {probe}; then echo open; else echo closed; fi",
                                            probe=port_listening_cmd(svc.port)))
            for svc in host.services if svc.port]


def _facts_part(host: Host, checks: int = 0) -> Cmd:
    """The one python3 (docs/benchmarks.md, "The monitor's host script: one
    python3"): the facts that are files (host/monitorfacts.py: the disk,
    the zones, the process services' states, the ports, the history, the
    logs' errors, the cleanup directories), then whose each declared port
    is (host/listeners.py, the gate's own fact: the `owners` section, one
    JSON line a port in host.services' order), then the `http` section
    (host/httpcheck.py: `checks` HTTP checks, their specs on stdin), then
    the `errors` section. A systemd service's main PID is systemctl's
    (MainPID); a process service's is the one monitorfacts finds running
    (`@NAME`). Without python3, the shell reads the same (_shell_facts)."""
    ported, units = [svc for svc in host.services if svc.port], _units(host)
    # OA: PORT PID KIND for each, word by word (digits, `-`, `@NAME` and a word)
    parts: List[Cmd] = [raw("OA=")]
    for svc in ported:
        if svc.manager == "systemd":
            # systemd:UNIT: what is left of a unit not running (its cgroup) is its own (listeners.service_procs);
            # its main PID is _top's positional parameter (none when systemctl printed nothing: `-`)
            parts.append(sh('OA="$OA "{port}" ${{{n}:--}} "{kind}', port=str(svc.port),
                            n=str(units.index(svc.name) + 1), kind=f"systemd:{svc.name}"))
        else:
            parts.append(sh('OA="$OA "{port}" "{pid}" process"', port=str(svc.port), pid="@" + svc.name))
    words = _fact_words(host)
    # the checks' specs: the script's stdin, read by this python3 (httpcheck.main) and nothing before it
    run = sh("python3 -I -S -c {source} {n} {words} $OA", source=_facts_source(bool(ported), bool(checks)),
             n=str(len(words)), words=words)
    parts.append(sh("if command -v python3 >/dev/null 2>&1; then {run}; else\n{shell}\nfi", run=run,
                    shell=lines(_shell_facts(host, checks))))
    return lines(parts)


def _fact_words(host: Host) -> list:
    """host/monitorfacts.py's records (`KIND COUNT ARG...`), in the order
    its sections are printed; paths through `path`, so `~` is the host's."""
    procs, words = _procs(host), ["disk", "0", "tz", "0"]

    def record(kind: str, *args) -> None:
        words.extend([kind, str(len(args)), *args])

    if procs:
        record("process", *[x for svc in procs for x in (svc.name, path(host.paths.service_pid(svc.name)))])
    for svc in host.services:
        if svc.port:
            record(f"port:{svc.name}", str(svc.port))
    record("tzlast", path(host.paths.state))
    record("history", path(host.paths.history))
    record("aside", path(host.paths.state_aside_prefix))
    record("errors_update", path(host.logs.get("update") or host.paths.log("update")), *error_words("update"))
    if procs:
        record("gone", *[x for svc in procs for x in (svc.name, path(host.paths.service_pid(svc.name) + ".gone"))])
    for i, rule in enumerate(host.cleanup):
        record(f"cleanup:{i}", path(rule.path), rule.glob)
    record("errors", *[path(host.paths.service_log(svc.name)) for svc in procs], *error_words())
    return words


@functools.lru_cache(maxsize=None)
def _facts_source(ports: bool, checks: bool) -> str:
    """The one python3's source: host/monitorfacts.py, then listeners.py
    (with ports), then httpcheck.py (with checks), each file in a namespace
    of its own, as it would run alone (all define `main`); one that fails
    prints its traceback on stderr and the others still run. argv: the
    count of monitorfacts' words, its words, then $OA."""
    from .checks import http_check_source
    from .host import monitorfacts  # read as text, never run on the laptop

    out = ("import sys\n"
           "def _load(source, name):\n"
           "    space = {'__name__': 'fabops_' + name[:-3]}\n"
           "    exec(compile(source, name, 'exec'), space)\n"
           "    return space\n"
           "def _run(step):\n"
           "    try:\n"
           "        return step()\n"
           "    except Exception:  # as its own python3 would: the traceback on stderr, the rest still runs\n"
           "        import traceback\n"
           "        traceback.print_exc()\n"
           "_n = int(sys.argv[1])\n"
           "_facts, _oa = sys.argv[2:2 + _n], sys.argv[2 + _n:]\n"
           f"F = _load({Path(monitorfacts.__file__).read_text(encoding='utf-8')!r}, 'monitorfacts.py')\n"
           "_pids = _run(lambda: F['main'](_facts)) or {}\n")
    owners, http = "\n" + MARK + "owners", "\n" + MARK + "http"
    if ports:
        out += (f"print({owners!r})\n"
                f"_run(lambda: _load({listeners_source()!r}, 'listeners.py')['main'](F['owners_argv'](_oa, _pids)))\n")
    if checks:
        out += (f"print({http!r})\n"
                f"_run(lambda: _load({http_check_source()!r}, 'httpcheck.py')['main']())\n")
    return out + "_run(lambda: F['write'](F['errors'](_facts)))\n"


def _home_parts(host: Host) -> List[Cmd]:
    """What fabops keeps in the host's home (the state; the last run and
    the rest are the facts' python3's: _facts_part) and the checkout's
    commit."""
    from .host.git import rev_parse_cmd, rev_parse_each_cmd, tracking_ref

    app, origin = path(host.app.path), tracking_ref(host.app.remote, host.app.branch)
    return [
        # kept in $S too: the bad targets origin moved past are read from it (behind)
        _section("state", sh("S=$(cat {f} 2>/dev/null); printf '%s\\n' \"$S\"", f=quote_path(host.paths.state))),
        # the checkout's commit: a reset or rollback that did not come up can leave it off the
        # deployed one, which the panel says as status does (#24: status said it, monitor did not);
        # and the branch's head as the checkout last fetched it (no fetch: a look
        # changes nothing): a known-bad one is what cron will hold back
        # (host/state.held_back; #24's trial: OK after a rollback and an unpin).
        # One git for both; when one does not resolve (fewer lines), each alone.
        sh('R=$({both} 2>/dev/null); case $R in *"$NL"*) ;; *) R="$({head} 2>/dev/null)$NL$({origin} 2>/dev/null)";; esac',
           both=rev_parse_each_cmd(app, ["HEAD", origin]), head=rev_parse_cmd(app, "HEAD"),
           origin=rev_parse_cmd(app, origin)),
        _section("head", raw('L=${R%%"$NL"*}; [ -z "$L" ] || printf \'%s\\n\' "$L"')),
        _section("origin", raw('L=${R#*"$NL"}; [ -z "$L" ] || printf \'%s\\n\' "$L"')),
        # the remembered bad targets origin has moved past (bad_ahead): each key of
        # state.json ($S) that is an ancestor of the checkout's commit or of the
        # branch's head as last fetched; `ok` says the loop ran
        _section("behind", behind_cmd(host)),
    ]


def _shell_home_parts(host: Host) -> List[Cmd]:
    """The home's files as the shell reads them: a host without python3 (_shell_facts)."""
    return [
        # the zone in force at the last update check is read from state.json (_TZ_LAST)
        sh("S=$(cat {f} 2>/dev/null); NL='\n'", f=quote_path(host.paths.state)),
        _section("tzlast", _TZ_LAST),
        # the last run that is not a backup: a daily backup's record is no
        # verdict on the deploys ("the last reset ended BROKEN" stays a reset's)
        _section("last", sh("tac {f} 2>/dev/null | grep -m 1 -v -F {backup}", f=quote_path(host.paths.history),
                            backup='"trigger": "backup"')),
        # the newest backup record, then the newest good one (printed twice
        # when it is the same): the backup row and its age rule (backup_facts)
        _section("backup", sh("tac {f} 2>/dev/null | grep -F {backup} | sed -n {prog}",
                              f=quote_path(host.paths.history), backup='"trigger": "backup"',
                              prog='1p; /"result": "backed_up"/{p;q;}')),
        # the history's first record: since when a backup.schedule could
        # have made one (a builtin's read: no fork). printf, not echo: dash's
        # echo turns a record's `\n` or `\\` into a newline or one backslash
        _section("first", sh("read -r L 2>/dev/null < {f} && printf '%s\\n' \"$L\"; true",
                             f=quote_path(host.paths.history))),
        # a corrupt state.json that a merge moved aside (host/state.py): its name
        # says when, and its being there says that the deploy state was lost
        _section("aside", sh('for f in {p}*; do [ -e "$f" ] && printf \'%s\\n\' "${{f##*/}}"; done; true',
                             p=path(host.paths.state_aside_prefix))),
    ]


def _log_parts(host: Host) -> List[Cmd]:
    """The journal's part, beside the rest (monitor_script): its error
    counts of the last hour first, no marker (_journal_errors: printed
    right after the facts' python3's `errors` section, they end it), then
    the journal's size; the log files' errors and the cleanup paths are
    the facts' python3's. None without a unit: the journal holds a unit's
    log; a process-managed service's is its file (#24: `journal: 0B`)."""
    if not _units(host):
        return []
    # "Archived and active journals take up 8.0M in the file system.": the
    # word after the last " take up " that a space follows, cut with the
    # shell's own expansions (sed's `s/.* take up \([^ ]*\) .*/\1/p`, no fork)
    return [lines([_journal_errors(host), _section("journal", raw(
        'J=$(journalctl --disk-usage 2>/dev/null); R=${J##*" take up "}; '
        '[ "$R" = "$J" ] || case $R in *" "*) printf \'%s\\n\' "${R%%" "*}";; esac; true'))])]


def _journal_errors(host: Host) -> Cmd:
    """Each unit's journal lines of the last hour that `logs --errors` keeps
    (logs.ERROR_WORDS: a crash that never says "error" counts too), a count
    a line: printed after the facts' python3's `errors` section, whose
    lines are the process services' log files' (_facts_part)."""
    words = join(error_words())
    return lines([sh("{{ journalctl -u {u} --since '-1h' --no-pager -q -o cat 2>/dev/null | grep -ci {w} || echo 0; }}",
                     u=u, w=words) for u in _units(host)], "; ")


def _shell_facts(host: Host, checks: int) -> List[Cmd]:
    """What the facts' python3 prints, read by the shell's programs: a host
    without python3 (no owner line, read as none; `no answer` a check)."""
    procs = _procs(host)
    parts: List[Cmd] = [_section("disk", raw("df -Pk / 2>/dev/null | tail -n 1")),
                        # the zone the host's cron reads schedule.update in (evaluate's cron-stalled rule: stall_span)
                        _section("tz", raw("date +%z"))]
    if procs:
        parts.append(sh("{marker}\n{status}", marker=_section("process"), status=process_status_cmd(host.paths.home, procs)))
    parts += _port_parts(host) + _shell_home_parts(host)
    # the update log's apart: the panel says where the errors are (#24's trial: `2` beside a
    # `logs --errors` of 1 line, the other in the update log; docs/monitor.md)
    parts.append(_section("errors_update", sh("{{ {c} || echo 0; }}", c=_update_log_errors_cmd(host))))
    if procs:
        # a death no stop has written to the log yet (services.unlogged_deaths)
        parts.append(_section("gone", process_gone_notes_cmd(host.paths.home, procs)))
    for i, rule in enumerate(host.cleanup):
        parts.append(_section(f"cleanup:{i}", sh(
            "if [ -d {p} ]; then du -sk {p} 2>/dev/null | cut -f1; "
            "find {p} -maxdepth 1 -type f -name {glob} 2>/dev/null | wc -l; "
            "find {p} -maxdepth 1 -type f -name {glob} -mtime -1 2>/dev/null | wc -l; else echo missing; fi",
            p=path(rule.path), glob=rule.glob)))
    if any(svc.port for svc in host.services):
        parts.append(_section("owners"))
    if checks:  # as checks.http_check_cmd says it; the specs on stdin are read to their end, unused
        missing = result_line((None, "no answer (no python3 on the host for the HTTP check)", 0.0))
        parts.append(_section("http", lines([raw("while read -r L; do :; done")] + [sh("echo {m}", m=missing)] * checks,
                                            "; ")))
    # the service log files (written in the last hour): the journal's follow
    # (`true`: a host with no service still gets its section, so the count is 0, not unread)
    words = join(error_words())
    counts = [sh("{{ find {log} -mmin -60 2>/dev/null | grep -q . && tail -n 2000 {log} | grep -ci {w} || echo 0; }}",
                 log=path(host.paths.service_log(svc.name)), w=words) for svc in procs]
    return parts + [_section("errors", lines(counts or [raw("true")], "; "))]


# An update-log line's time (host/record.log_line: `%Y-%m-%dT%H:%M:%S%z`,
# the writer's offset) as epoch seconds, in POSIX awk's arithmetic alone
# (mawk and busybox awk have no mktime): the days since 1970 of a year
# that starts in March, less the offset. Lines with no such time (a
# command's output) are not counted: no one can tell their hour.
_LOG_TIME_AWK = (
    '$1 ~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9][-+][0-9][0-9][0-9][0-9]$/ { '
    'y = substr($1, 1, 4) + 0; m = substr($1, 6, 2) + 0; if (m <= 2) { y--; m += 12 } '
    'd = 365 * y + int(y / 4) - int(y / 100) + int(y / 400) + int((153 * (m - 3) + 2) / 5) '
    '+ substr($1, 9, 2) - 719469; '
    't = d * 86400 + substr($1, 12, 2) * 3600 + substr($1, 15, 2) * 60 + substr($1, 18, 2); '
    'o = substr($1, 21, 2) * 3600 + substr($1, 23, 2) * 60; t -= substr($1, 20, 1) == "-" ? -o : o; '
    'if (t >= c) n++ } END { print n + 0 }')


def _update_log_errors_cmd(host: Host) -> Cmd:
    """The update log's lines of the last hour that `logs --source update
    --errors` keeps (logs.error_filter: the error words, and every failed
    or rolled-back run's line), by the time each line starts with; read
    only when the log was written in the last hour (docs/monitor.md)."""
    from .logs import error_filter

    log = path(host.logs.get("update") or host.paths.log("update"))
    return sh("find {log} -mmin -60 2>/dev/null | grep -q . && tail -n 2000 {log}{grep} | "
              "awk -v c=\"$(( $(date +%s) - 3600 ))\" {prog}", log=log, grep=error_filter("update", False),
              prog=_LOG_TIME_AWK)


def _closing_parts(window: float) -> List[Cmd]:
    """The rest of the CPU window, then the closing CPU samples."""
    parts: List[Cmd] = []
    # Wait out the rest of the window (centiseconds from /proc/uptime, since
    # T0: the young sample or the script's start), so a fast host still
    # samples CPU_WINDOW; a slow script, or a sample older than the window,
    # adds nothing. W: the centiseconds slept, printed in `cpuwin`.
    window_cs = int(window * 100)
    if window_cs > 0:
        parts.append(sh(
            'read -r U1 R < /proc/uptime; E=$(( ${{U1%.*}}${{U1#*.}} - $T0 )); '
            'if [ "$E" -lt {w} ]; then W=$(( {w} - E )); sleep "$(( W / 100 )).$(printf %02d $(( W % 100 )))"; fi',
            w=window_cs))
    return parts + [_section("cpuwin", raw('echo "$SRC $W $BOOT"')), _section("pstat1", PROC_STAT),
                    _section("cpu1", _CPU), _section("end")]


def _units(host: Host) -> List[str]:
    return [s.name for s in host.services if s.manager == "systemd"]


def _procs(host: Host) -> list:
    return [s for s in host.services if s.manager == "process"]


# ---------------------------------------------------------------- parsing


def _ints(text: str) -> List[int]:
    out = []
    for word in text.split():
        try:
            out.append(int(word))
        except ValueError:
            pass
    return out


def cpu_percent(first: str, second: str) -> Optional[float]:
    """System CPU use between two `cpu ...` lines of /proc/stat."""
    return _cpu_rate(_ints(first), _ints(second))


def _cpu_rate(a: List[int], b: List[int]) -> Optional[float]:
    """System CPU use between two /proc/stat cpu counter lists; None when a
    counter went back (a reboot between them) or they do not match."""
    if len(a) < 4 or len(a) != len(b) or any(y < x for x, y in zip(a, b)):
        return None
    idle_a = a[3] + (a[4] if len(a) > 4 else 0)
    idle_b = b[3] + (b[4] if len(b) > 4 else 0)
    total = sum(b) - sum(a)
    if total <= 0:
        return 0.0
    return round(100.0 * (total - (idle_b - idle_a)) / total, 1)


def _point(s: Dict[str, str], which: str, host: Host, statuses) -> Optional[Dict[str, Any]]:
    """The counters at one end of the script's output (which: "0", its
    start, or "1", its end), shaped as a cron sample (host/metrics.py):
    boot, clock (s since boot), hz, cpu and per service its counters."""
    from .host.metrics import unit_name

    uptime, hz, procs, cgroups = parse_end(s.get("pstat" + which, ""))
    if uptime is None:
        return None
    units = _show_blocks(s.get("cgroups", ""))
    svc = {}
    for service in host.services:
        c: Dict[str, Any] = {}
        if service.manager == "systemd":
            ids = units.get(unit_name(service.name), {})
            cg, inv = ids.get("ControlGroup", ""), ids.get("InvocationID", "")
            if inv and cg in cgroups:
                c.update(inv=inv, cg=cg, usec=cgroups[cg])
        st = statuses.get(service.name)
        if st and st.pid and st.pid in procs:
            c.update(pid=st.pid, ticks=procs[st.pid][0], start=procs[st.pid][1])
        if c:
            svc[service.name] = c
    win = (s.get("cpuwin") or "").split()
    return {"boot": win[2] if len(win) > 2 else None, "clock": uptime, "hz": hz,
            "cpu": _ints(s.get("cpu" + which, "").replace("cpu", "", 1)), "svc": svc}


def _show_blocks(text: str) -> Dict[str, Dict[str, str]]:
    """`systemctl show` blocks (KEY=VALUE lines, a blank line between
    units) keyed by their Id."""
    found = {}
    for block in text.split("\n\n"):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            found[props["Id"].strip()] = {k.strip(): v.strip() for k, v in props.items()}
    return found


def sample_point(line: str) -> Optional[Dict[str, Any]]:
    """A metrics.jsonl line (host/metrics.py) as a window's start, or None."""
    rec = _json_object(line)
    if not rec or not isinstance(rec.get("up_cs"), int) or not isinstance(rec.get("cpu"), list):
        return None
    hz = rec.get("hz")
    return {"boot": rec.get("boot") or None, "clock": rec["up_cs"] / 100.0,
            "hz": hz if isinstance(hz, int) and hz > 0 else 100, "cpu": rec["cpu"],
            "svc": rec["svc"] if isinstance(rec.get("svc"), dict) else {}}


def service_rate(a: Optional[dict], b: Optional[dict], hz: int, window: float) -> Optional[float]:
    """A service's CPU % of one core between two counter sets (a cron
    sample's or the script's), or None when it cannot be trusted: the
    cgroup's usage within one invocation of the unit (a restart makes a new
    invocation ID), else the same main process's utime+stime (same PID and
    start time). A counter that went back gives no figure either."""
    if not a or not b or window <= 0:
        return None
    if a.get("usec") is not None and b.get("usec") is not None:
        if not a.get("inv") or a.get("inv") != b.get("inv") or a.get("cg") != b.get("cg"):
            return None
        used = (b["usec"] - a["usec"]) / 1e6
    elif a.get("pid") and a.get("pid") == b.get("pid") and a.get("start") == b.get("start") \
            and a.get("ticks") is not None and b.get("ticks") is not None:
        used = (b["ticks"] - a["ticks"]) / hz
    else:
        return None
    return None if used < 0 else round(100.0 * used / window, 1)


def cpu_rates(start: Optional[dict], end: Optional[dict]) -> Tuple[Optional[float], Dict[str, float], Optional[float]]:
    """(system CPU %, {service: CPU %}, window in s) between two points (a
    sample's or the script's); nothing across a reboot or without time
    between them."""
    if not start or not end or start.get("clock") is None or end.get("clock") is None:
        return None, {}, None
    if start.get("boot") and end.get("boot") and start["boot"] != end["boot"]:
        return None, {}, None
    window = end["clock"] - start["clock"]
    if window <= 0:
        return None, {}, None
    services = {}
    for name, counters in end["svc"].items():
        rate = service_rate(start["svc"].get(name), counters, end["hz"], window)
        if rate is not None:
            services[name] = rate
    return _cpu_rate(start["cpu"], end["cpu"]), services, round(window, 2)


def _float(text) -> Optional[float]:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def parse(output: str, host: Host, now: Optional[float] = None, previous: Optional[str] = None) -> Dict[str, Any]:
    """Facts from the script's output. Junk or missing sections become None.

    CPU is measured to the script's closing samples from: the previous
    refresh's closing samples (`previous`, the last refresh's output from
    the same host: monitor --watch), else the newest cron sample when the
    script found it young enough (`cpuwin` says `sample`), else the
    script's own opening samples."""
    from .host.heartbeat import facts as heartbeat_facts
    from .host.metrics import series

    now = time.time() if now is None else now
    s = split_sections(output)
    statuses = _statuses(s, host)
    start, source = None, "window"
    if previous:
        prev = split_sections(previous)
        start = _point(prev, "1", host, _statuses(prev, host)) if prev.get("cpu1") else None
    elif (s.get("cpuwin") or "").startswith("sample"):
        start, source = sample_point(((s.get("metrics") or "").splitlines() or [""])[-1]), "sample"
    if start is None and not previous and source == "window":
        # the script's own opening samples only when it took its own
        # window: after a young sample (or in --watch) it waited for
        # nothing, and its run time alone is no window (a tick in a few
        # milliseconds read as tens of percent, judged against thresholds)
        start = _point(s, "0", host, statuses)
    cpu, service_cpu, window = cpu_rates(start, _point(s, "1", host, statuses))
    facts: Dict[str, Any] = {"schema": SCHEMA_VERSION, "host": host.name, "time": now, "cpu": cpu}
    facts.update(_machine(s))
    facts["utc_offset"] = utc_offset(s.get("tz"))
    facts["utc_offset_last_check"] = utc_offset(s.get("tzlast"))
    facts["cpu_window"], facts["cpu_source"] = window, source if window is not None else None
    facts["services"] = _services(s, host, statuses, service_cpu)
    facts["root_units"] = root_units(s.get("units"), host)
    facts["deploy"] = _deploy(s, now)
    facts["state_moved_aside"] = state_moved_aside(s.get("aside"), host)
    facts["backup"] = backup_facts(s.get("backup"), s.get("first"), _json_object(s.get("state")), host)
    facts["heartbeat"] = heartbeat_facts(_json_object(s.get("state")), host.heartbeat)  # its last ping: no URL
    counts, update = _ints(s.get("errors", "")), _ints(s.get("errors_update", ""))
    deaths = _unlogged(s, host, statuses)
    facts["errors_last_hour"] = sum(counts + update) if counts or update or s.get("errors") is not None else None
    # of them, the update log's (None: not read apart, as an older script's output)
    facts["errors_last_hour_update"] = sum(update) if update or s.get("errors_update") is not None else None
    facts["unlogged_deaths"] = deaths
    facts["journal_usage"] = (s.get("journal") or None) if _units(host) else None
    facts["cleanup"] = [_cleanup(rule, s.get(f"cleanup:{i}")) for i, rule in enumerate(host.cleanup)]
    facts["history"] = series((s.get("metrics") or "").splitlines())
    return facts


def _unlogged(s: Dict[str, str], host: Host, statuses) -> Optional[List[Dict[str, Any]]]:
    """[{service, pid}] of each process service's death that no stop has
    written to its log yet (host/services.unlogged_deaths). Kept apart
    from errors_last_hour: a look cannot tell when the process died (days
    ago, perhaps), so it is no error of the last hour until its next stop
    writes the line (docs/monitor.md). None when the notes were not read."""
    procs = [svc.name for svc in _procs(host)]
    if not procs:
        return []
    if s.get("gone") is None:
        return None
    found = unlogged_deaths({name: statuses[name] for name in procs if name in statuses}, s["gone"])
    return [{"service": name, "pid": pid} for name, pid in found]


def _machine(s: Dict[str, str]) -> Dict[str, Any]:
    """The host's own figures: memory, disk, load, uptime."""
    out: Dict[str, Any] = {}
    mem = {}
    for line in s.get("mem", "").splitlines():
        key, _, rest = line.partition(":")
        nums = _ints(rest)
        if nums:
            mem[key.strip()] = nums[0]
    if mem.get("MemTotal"):
        avail = mem.get("MemAvailable", 0)
        out["memory"] = round(100.0 * (mem["MemTotal"] - avail) / mem["MemTotal"], 1)
    else:
        out["memory"] = None
    disk = s.get("disk", "").split()
    out["disk"] = _float(disk[4].rstrip("%")) if len(disk) >= 5 else None
    load = s.get("load", "").split()
    out["load"] = _float(load[0]) if load else None
    out["uptime"] = _float(load[5]) if len(load) >= 6 else None
    return out


def utc_offset(text: Optional[str]) -> Optional[int]:
    """`date +%z` (`+0900`, `-0330`) as seconds east of UTC; None: not read."""
    text = (text or "").strip()
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    seconds = int(text[1:3]) * 3600 + int(text[3:]) * 60
    return -seconds if text[0] == "-" else seconds


def _statuses(s: Dict[str, str], host: Host) -> dict:
    """{service: ServiceStatus} from the script's systemd/process sections."""
    from .host.services import parse_process_status, parse_systemd_show

    units = [x.name for x in host.services if x.manager == "systemd"]
    procs = [x.name for x in host.services if x.manager == "process"]
    statuses = {}
    if units:
        statuses.update(parse_systemd_show(s.get("systemd", ""), units))
    if procs:
        statuses.update(parse_process_status(s.get("process", ""), procs))
    return statuses


def _services(s: Dict[str, str], host: Host, statuses, cpu: Dict[str, float]) -> List[Dict[str, Any]]:
    """One entry per configured service: state, pid, CPU (over the window),
    memory, uptime, port and HTTP check."""
    ps = _memory_and_age(s)
    checked = [svc.name for svc in host.services if svc.check is not None]
    results = dict(zip(checked, parse_http_results(s.get("http", ""), len(checked))))
    owners = _owners(s, host)
    services = []
    for svc in host.services:
        st = statuses.get(svc.name)
        proc = ps.get(st.pid) if st and st.pid else None
        entry: Dict[str, Any] = {
            "name": svc.name,
            "manager": svc.manager,
            "state": st.state if st else "unknown",
            "active": bool(st and st.active),
            "pid": st.pid if st else None,
            # None when it did not run through the whole window (started or
            # restarted since its start): not judged
            "cpu": cpu.get(svc.name) if st and st.pid else None,
            "memory": proc["memory"] if proc else None,
            "uptime": proc["uptime"] if proc else None,
            "port": svc.port,
            "port_open": None,
            "http_status": None,
            "http_latency": None,
            "http_expect": svc.check.expect if svc.check else None,
        }
        if svc.port:
            entry["port_open"] = {"open": True, "closed": False}.get(s.get(f"port:{svc.name}", "").strip())
            owner = owners.get(svc.name)
            entry["port_owner"] = owner.state if owner else None
            entry["port_holder"] = owner.holder if owner and owner.state == OTHER else None
        else:
            entry["port_owner"] = entry["port_holder"] = None
        if svc.check is not None:
            status, _detail, latency = results[svc.name]
            entry["http_status"] = status
            # the time to an answer: none when there was none (#24: 0.0069 beside a null status)
            entry["http_latency"] = latency if status is not None else None
        services.append(own_figures(entry))
    return services


def _owners(s: Dict[str, str], host: Host) -> Dict[str, Any]:
    """{service: listeners.PortOwner} from the `owners` section (none when
    the host has no python3 or the section is missing)."""
    found = [line for line in (s.get("owners") or "").splitlines() if line.strip()]
    ported = [svc for svc in host.services if svc.port]
    return {svc.name: from_json(svc.port, line) for svc, line in zip(ported, found)}


def _memory_and_age(s: Dict[str, str]) -> Dict[int, Dict[str, Optional[float]]]:
    """{pid: {memory: % of MemTotal, uptime: seconds}} of each service
    process, from its VmRSS (the `rss` section) and the start time in its
    closing /proc/<pid>/stat read (the process's age at that uptime)."""
    total = next((n for line in s.get("mem", "").splitlines() if line.startswith("MemTotal:")
                  for n in _ints(line)), None)
    uptime, hz, procs, _ = parse_end(s.get("pstat1") or s.get("pstat0") or "")
    out: Dict[int, Dict[str, Optional[float]]] = {}
    for line in s.get("rss", "").splitlines():
        f = _ints(line)
        if len(f) == 2:
            out[f[0]] = {"memory": round(100.0 * f[1] / total, 1) if total else None, "uptime": None}
    for pid, age in process_ages(uptime, hz, procs).items():
        out.setdefault(pid, {"memory": None})["uptime"] = age
    return out


def _json_object(text: Optional[str]) -> Optional[dict]:
    try:
        value = json.loads(text or "null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _deploy(s: Dict[str, str], now: float) -> Optional[Dict[str, Any]]:
    """What state.json and the last history record say (None without a state)."""
    state = _json_object(s.get("state"))
    if state is None:
        return None
    # the run under way, or killed, and the step it recorded (#24: status
    # named it, monitor did not)
    run = state.get("in_progress") if isinstance(state.get("in_progress"), dict) else {}
    origin = (s.get("origin") or "").strip() or None
    return {
        "deployed": state.get("deployed"),
        "deployed_at": state.get("deployed_at"),
        "head": (s.get("head") or "").strip() or None,  # the checkout's commit (None: not read)
        "pin": state.get("pin"),
        "bad": sorted((state.get("bad") or {}).keys()),
        # of them, those origin has not moved past: the panel's (None: not read, all shown)
        "bad_ahead": bad_ahead(sorted((state.get("bad") or {}).keys()), (origin, (s.get("head") or "").strip()),
                                s.get("behind")),
        "last_check": state.get("last_check"),  # the last update check and its result
        "last_result": state.get("last_result"),
        # a restart's or health --fix's verdict since that check (no update check: #24)
        "verdict": verdict_of(state),
        "in_progress": bool(state.get("in_progress")),
        "in_progress_run": run.get("run_id"),
        "in_progress_step": run.get("step"),
        # the run id of a restore that mark says was cut off putting items back
        # (host/plan.UNSAFE_RESTORE_STEPS): evaluate's CRITICAL finding (None: none)
        "restore_cut_off": restore_cut_off(state.get("in_progress")),
        "last_run": _json_object(s.get("last")),
        "origin": origin,  # the branch's head as last fetched (None: not read)
        # while its cause stands, or origin's known-bad head cron will hold back (host/state.failing_of)
        "failing": failing_of(state, origin),
        "retry": state.get("retry") if isinstance(state.get("retry"), dict) else None,
        # the automatic restart budget spent: until when (trial 2 #9: only
        # health --fix said it had given up)
        "restart_backoff_until": budget_spent_until(state.get("restarts"), now),
    }


def backoff_shown(services) -> bool:
    """Whether monitor and status say the restart backoff (one rule,
    review3 #7): a service is down, not active; its port or check failing
    counts where the facts have them (monitor's; status reads no ports)."""
    def down(s):
        return (not s.get("active") or (bool(s.get("port")) and s.get("port_open") is False)
                or (s.get("http_expect") is not None and s.get("http_status") != s.get("http_expect")))
    return any(down(s) for s in services or ())


def restart_backoff_text(until: float, host: str, inventory: Optional[str] = None,
                         deployed: Optional[str] = None, head: Optional[str] = None, in_progress=None,
                         bad=()) -> str:
    """monitor's and status's words for a host whose service is down after
    the restart budget was spent: neither cron nor a person's `health --fix`
    restarts anything until `until`, when the oldest counted restart leaves
    the hour and the backoff lifts by itself (no command resets the budget),
    and a person's `restart` does it now; with the checkout off the
    deployed commit a restart would start that checkout again, so the way
    out is checkout_moved_text's (deploy or rollback)."""
    from .deploy import suggest

    moved = checkout_moved_text(deployed, head, host, inventory, in_progress, bad)
    return (f"restart backoff: {RESTART_LIMIT} automatic restarts in the last hour, so neither cron nor "
            f"`health --fix` restarts anything until {_when(until, '%H:%M %Z')}, when it lifts by itself; "
            + (moved or f"{suggest(inventory, 'restart', '-H', host)} restarts it now"))


def checkout_moved_text(deployed: Optional[str], head: Optional[str], host: str,
                        inventory: Optional[str] = None, in_progress=None, bad=()) -> Optional[str]:
    """The one wording for a host whose checkout is off the deployed commit
    (a reset or rollback whose services did not come up): a restart would
    start that checkout again, so the advice is a rollback to the deployed
    commit or a deploy; monitor's and status' restart backoff, and
    `restart`'s refusal and its dry run (maintenance/restart.py) say it.
    None when the checkout is on the deployed commit or either is unknown,
    and while a run is in progress (its checkout is its target: a restart
    ends its watch, and the next run finishes it). A checkout known to be
    bad (in `bad`: a reset onto a commit that crashed marks it) is often
    the branch's head itself: deploying that would break the host again,
    so the deploy named is of a fixed commit (#24's trial)."""
    if in_progress or not (deployed and head and head != deployed):
        return None
    from .deploy import suggest

    at, good = short_sha(head), short_sha(deployed)
    deploy = (f"{suggest(inventory, 'deploy', '-H', host, '--ref', 'COMMIT')} deploys a fixed one" if head in bad
              else f"{suggest(inventory, 'deploy', '-H', host)} deploys the branch's head")
    return (f"the checkout is at {at}, not the deployed {good}, so a restart would start {at} again"
            + (f"; {at} failed to start before" if head in bad else "") + "; "
            f"{suggest(inventory, 'rollback', '-H', host, '--to', good)} goes back to {good}, {deploy}")


def backup_facts(text: Optional[str], first: Optional[str], state: Optional[dict],
                 host: Host) -> Optional[Dict[str, Any]]:
    """The backup row's facts (docs/monitor.md, "Backups"): the host's
    backup.schedule and whether a repository is set, the newest backup
    run's record (`last`: when, ok or not, its message, and whether its
    snapshot is off the host: in state.json's backup_offsite, the run ids
    the repository held when a run last read it; null without a
    repository), the newest good run's time, and the history's first
    record's (`history_since`). None when the section was not read."""
    if text is None:
        return None
    recs = [r for r in map(_json_object, text.splitlines()) if r and r.get("trigger") == "backup"]
    good = next((r for r in recs if r.get("result") == "backed_up"), None)
    repo = host.backup.repository is not None
    has = (state or {}).get("backup_offsite")
    last = None
    if recs:
        rec = recs[0]
        last = {"snapshot": rec.get("snapshot"), "at": _number(rec.get("ts")),
                "ok": rec.get("result") == "backed_up", "message": rec.get("message"),
                "offsite": (rec.get("snapshot") in has if isinstance(has, list) else False) if repo else None}
    return {"schedule": host.backup.schedule, "repository": repo, "last": last,
            "last_ok_at": _number(good.get("ts")) if good else None,
            "history_since": _number((_json_object((first or "").strip()) or {}).get("ts"))}


def _number(value) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def state_moved_aside(text: Optional[str], host: Host) -> Optional[List[Dict[str, Any]]]:
    """[{file, moved_at}] of the corrupt state.json copies in the host's home,
    oldest first (one whose name holds no time first of all): each is
    `<state.json>.corrupt-<ns>`, moved there by the merge that found the
    file unreadable and started over (None: not read)."""
    if text is None:
        return None
    prefix = posixpath.basename(host.paths.state_aside_prefix)
    found = []
    for name in text.splitlines():
        name = name.strip()
        if not name.startswith(prefix):
            continue
        ns = name[len(prefix):]
        found.append({"file": host.paths.file(name), "moved_at": int(ns) / 1e9 if ns.isdigit() else None})
    return sorted(found, key=lambda x: (x["moved_at"] is not None, x["moved_at"] or 0, x["file"]))


def _cleanup(rule, text: Optional[str]) -> Dict[str, Any]:
    """One cleanup rule's directory: its size, files and the last day's."""
    nums = _ints(text or "")
    if text is None or text.strip() == "missing" or len(nums) < 3:
        return {"path": rule.path, "glob": rule.glob, "exists": False if text and "missing" in text else None,
                "kib": None, "files": None, "last_24h": None}
    return {"path": rule.path, "glob": rule.glob, "exists": True, "kib": nums[0], "files": nums[1],
            "last_24h": nums[2]}


def root_units(text: Optional[str], host: Host) -> List[Dict[str, str]]:
    """[{unit, problem}] for units that run as root from the checkout or
    the deploy user's home (fabops/unit_audit.py). A unit the read did not
    reach is not judged here (setup refuses it)."""
    if not text:
        return []
    from .unit_audit import absolute, parse_unit_facts, root_unit_problem

    units = [svc.name for svc in host.services if svc.manager == "systemd"]
    facts = parse_unit_facts(text, order=units)
    home = (facts.get("", {}).get("Home") or [""])[0]
    if not home.startswith("/") or (host.user or "") == "root":
        return []
    app = absolute(host.app.path, home)
    found = []
    for unit in units:
        if "LoadState" not in facts.get(unit, {}):
            continue
        problem = root_unit_problem(facts[unit], [app, home])
        if problem:
            found.append({"unit": unit, "problem": problem})
    return found


# ---------------------------------------------------------------- evaluation


def update_interval(expr: Optional[str]) -> Optional[float]:
    """The typical gap between runs of a cron expression (schedule.update:
    how old a CPU sample may be, and the cron-stalled warning's 3x for a
    schedule stall_span cannot step), for the common shapes; a day, month
    or weekday field is not stretched to its longest gap (`*/5 * * * 1-5`
    is 5 min). The backup rule's longest gap is longest_gap's; the
    cron-stalled rule steps the calendar itself (stall_span)."""
    if not expr:
        return None
    nick = {"@hourly": 3600, "@daily": 86400, "@midnight": 86400, "@weekly": 604800}
    if expr in nick:
        return float(nick[expr])
    fields = expr.split()
    if len(fields) != 5:
        return None
    minute, hour = fields[0], fields[1]
    if minute == "*" and hour == "*":
        return 60.0
    if minute.startswith("*/") and minute[2:].isdigit() and hour == "*":
        return 60.0 * int(minute[2:])
    if "," in minute and hour == "*":
        return 3600.0 / len(minute.split(","))
    if hour == "*":
        return 3600.0
    if hour.startswith("*/") and hour[2:].isdigit():
        return 3600.0 * int(hour[2:])
    return 86400.0


# The nicknames as the five fields cron(8) reads them as.
_CRON_NICK = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
              "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
# The calendar a schedule is stepped over: 8 years, so every month length,
# leap years and a weekday on every date are in it.
_CRON_FROM, _CRON_DAYS = datetime.date(2024, 1, 1), 8 * 366




@functools.lru_cache(maxsize=64)
def _cron_calendar(expr: Optional[str]):
    """(the day's run times in seconds since midnight, from the minute and
    hour fields; whether it runs on a date) of a cron expression, or None
    for @reboot or a field not read. cron(8)'s rule for the day: with both
    the day-of-month and the weekday field restricted (not starting with
    `*`), either one matching; else both. Cached: a pure function of the
    schedule, and monitor --watch evaluates every host on every refresh."""
    fields = _CRON_NICK.get(expr or "", expr or "").split()
    if len(fields) != 5:
        return None
    minutes, hours, doms, months, dows = [cron_values(f, i) for i, f in enumerate(fields)]
    if None in (minutes, hours, doms, months, dows):
        return None
    times = sorted(h * 3600 + m * 60 for h in hours for m in minutes)
    either = not fields[2].startswith("*") and not fields[4].startswith("*")

    def runs_on(d: datetime.date) -> bool:
        dom, dow = d.day in doms, d.isoweekday() % 7 in dows
        return d.month in months and ((dom or dow) if either else (dom and dow))

    return times, runs_on


@functools.lru_cache(maxsize=64)
def cron_gaps(expr: Optional[str]) -> Optional[frozenset]:
    """The gaps, in seconds, between consecutive runs of a cron expression,
    found by stepping it over the days of _CRON_DAYS (_cron_calendar: the
    day's times from the minute and hour fields, so a day costs one test):
    `0 3 * * 1-5` {1d, 3d}, `0 3 */2 * *` {1d, 2d} (the 31st to the 1st;
    February's 27th to March's 1st). Local-time days (a DST change's hour
    is not counted). None for @reboot, a field not read, or under two runs.
    Cached (frozen: callers share it): stepping the 2928 days took 15 ms a
    call, and the cron-stalled rule runs for every host on every refresh
    of monitor --watch."""
    calendar = _cron_calendar(expr)
    if calendar is None:
        return None
    times, runs_on = calendar
    days = [n for n in range(_CRON_DAYS) if runs_on(_CRON_FROM + datetime.timedelta(days=n))]
    if len(times) * len(days) < 2:
        return None
    gaps = {b - a for a, b in zip(times, times[1:])}
    return frozenset(gaps | {(b - a) * 86400 - (times[-1] - times[0]) for a, b in zip(days, days[1:])})


def longest_gap(expr: Optional[str]) -> Optional[float]:
    """The longest gap between two runs of a cron expression (cron_gaps):
    the backup rule's (backup_findings) 2x must allow a weekend's gap
    (`0 3 * * 1-5`: 3 days), a long month's (`@monthly`: 31 days), and no
    more (`0 3 */2 * *`: 2 days, not a month)."""
    gaps = cron_gaps(expr)
    return float(max(gaps)) if gaps else None


# cron stalled: no update check for this many of schedule.update's runs
# after the one the last check belongs to (docs/monitor.md)
STALL_RUNS = 3
_EPOCH = datetime.date(1970, 1, 1)


def stall_span(expr: Optional[str], last: float, offset: int, offset_now: Optional[int] = None) -> Optional[float]:
    """How long after an update check at `last` no other is normal: until
    the STALL_RUNS-th run of the schedule after it, plus the time the check
    came after its own run (the schedule's latest run before it: cron's
    start and the run's length; at most the shortest gap, for a check a
    person's deploy made), on the host's calendar (`offset`: its UTC
    offset, the zone its cron reads the schedule in). So `*/5 * * * *` is
    3x its gap, as before; `*/5 * * * 1-5` 15 min on a weekday, but 2d 15m
    after Friday's 23:55 (#24: a Saturday with no checks is no stall).
    `offset` is the one in force at `last` (a check before a DST change was
    made on that side of it); `offset_now`, when it differs, says the clock
    changed since, and the span is stepped in wall-clock time, then lengthened
    by an hour the clock went back (a fall-back weekend: Friday 23:55 CEST to
    Monday 00:10 CET is 2d 1h 15m), never shortened: the change's time is
    not known, so a stall across a spring-forward is said at most an hour
    late rather than ever early. None: not stepped (cron_gaps)."""
    gaps, calendar = cron_gaps(expr), _cron_calendar(expr)
    if not gaps or calendar is None:
        return None
    times, runs_on = calendar
    local = last + offset
    first = int(local // 86400) - int(max(gaps) // 86400) - 1  # a longest gap back: the check's own run is in it
    runs: List[float] = []
    for n in range(first, int(local // 86400) + 2 + int((STALL_RUNS + 1) * max(gaps) // 86400)):
        if runs_on(_EPOCH + datetime.timedelta(days=n)):
            runs += [n * 86400.0 + t for t in times]
    before = [r for r in runs if r <= local]
    after = [r for r in runs if r > local]
    if not before or len(after) < STALL_RUNS:
        return None
    span = after[STALL_RUNS - 1] + min(local - before[-1], min(gaps)) - local
    return span + max(0, offset - (offset if offset_now is None else offset_now))


def _stalled(dep: Optional[Dict[str, Any]], expr: Optional[str], offset: Optional[int],
             offset_last: Optional[int], now: float) -> Optional[str]:
    """The cron-stalled finding (docs/monitor.md), else None: no update
    check for STALL_RUNS of schedule.update's runs (stall_span), or for 3x
    its typical gap (update_interval) when the calendar cannot be stepped.
    `offset`: the host's now, `offset_last`: at the last check (the script's
    tz and tzlast sections). Without the latter (a date with no -d @) the
    former stands in; without both (an older record, not read) the
    laptop's own at those times."""
    interval = update_interval(expr)
    if not (dep and dep.get("last_check") and expr):
        return None
    last = float(dep["last_check"])
    age = now - last
    if offset is None:
        offset = time.localtime(now).tm_gmtoff
        offset_last = time.localtime(last).tm_gmtoff if offset_last is None else offset_last
    span = stall_span(expr, last, offset if offset_last is None else offset_last, offset)
    if span is None and not interval:
        return None
    if age <= (3 * interval if span is None else span):
        return None
    steady = len(cron_gaps(expr) or ()) <= 1
    expected = (f"expected every {int(interval // 60) or 1} min" if steady and interval
                else f"{STALL_RUNS} runs of schedule.update {expr} since")
    return f"cron stalled: last update check {int(age // 60)} min ago ({expected})"


def evaluate(facts: Dict[str, Any], host: Host, now: Optional[float] = None,
             inventory: Optional[str] = None) -> Tuple[int, List[Tuple[int, str]]]:
    """(Nagios code, [(code, finding)]) against the host's thresholds.
    `inventory`: the run's `-i` (tasks/deploy.inventory_flag), for the
    commands a finding names."""
    now = time.time() if now is None else now
    th = host.thresholds
    found: List[Tuple[int, str]] = [f for svc in facts["services"] for f in _service_findings(svc, th)]
    for unit in facts.get("root_units") or ():
        found.append((errors.WARNING, f"{unit['unit']} {unit['problem']}: restarting it runs that user's code as "
                                      "root (setup grants it no rule; docs/security.md)"))
    if facts.get("disk") is not None and facts["disk"] >= th["disk"]:
        found.append((errors.WARNING, f"root disk {facts['disk']:g}% ≥ {th['disk']:g}%"))
    dep = facts.get("deploy")
    stalled = _stalled(dep, host.schedule.get("update"), facts.get("utc_offset"), facts.get("utc_offset_last_check"),
                       now)
    if stalled:
        found.append((errors.WARNING, stalled))
    cut_off = dep.get("restore_cut_off") if dep else None
    if cut_off:  # services down on purpose, data half put back: no restart is the way out, so no backoff's
        found.append((errors.FAILED, cut_off_finding(str(cut_off), host.name, inventory)))
    elif dep and backoff_shown(facts["services"]) and isinstance(dep.get("restart_backoff_until"), (int, float)):
        found.append((errors.FAILED, restart_backoff_text(dep["restart_backoff_until"], host.name, inventory,
                                                          dep.get("deployed"), dep.get("head"),
                                                          dep.get("in_progress"), dep.get("bad") or ())))
    if dep and host_result(dep) == "broken":
        found.append((errors.FAILED, broken_text(dep, host.name, inventory,
                                                 said_moved=any("the checkout is at" in m for _, m in found))))
    failing = failing_of(dep) if dep else None
    if failing:
        from .host.record import counted

        when = _when(failing.get("since"), "%m-%d %H:%M %Z")
        target = short_sha(failing.get("target"), "origin")
        verb, last, why = failing_words(failing, dep.get("retry"), dep.get("last_result"), dep.get("bad"))
        ahead = behind_head(failing)
        text = f"{ahead}: {why}" if ahead else (
            f"behind {target}: updates {verb} since {when} ({counted(failing.get('count', 1), 'run')}{last}): {why}")
        found.append((errors.WARNING, text))
    aside = facts.get("state_moved_aside")
    if aside:
        found.append((errors.WARNING, _aside_finding(aside)))
    found += [(errors.WARNING, text) for text in backup_findings(facts.get("backup"), now, host.name, inventory)]
    found += [(errors.WARNING, text) for text in heartbeat_findings(facts.get("heartbeat"))]
    code = errors.worst(c for c, _ in found)
    return code, found


def heartbeat_findings(fact: Optional[Dict[str, Any]]) -> List[str]:
    """A set heartbeat whose last ping failed (host/heartbeat.findings)."""
    from .host.heartbeat import findings

    return findings(fact)


def cut_off_finding(run_id: str, host: str, inventory: Optional[str] = None) -> str:
    """The finding of a restore cut off while putting items back: the
    planner's words (host/plan.restore_cut_off_text; deploys, health --fix
    and restart refuse, docs/backups.md), after an "if": the mark alone
    cannot tell a restore still putting items back from one cut off there
    (monitor reads no lock, as status' interrupted line says "if")."""
    return f"if no restore is running now: {restore_cut_off_text(run_id, host, inventory)}"


def broken_text(dep: Dict[str, Any], host: str, inventory: Optional[str] = None, said_moved: bool = False) -> str:
    """The finding of a host whose last run ended broken, named as what it
    was (a reset, a rollback: trial 2 #7), with the way out in the tool's
    own commands (#24: it said only that a person is needed): with the
    checkout off the deployed commit, checkout_moved_text's (or "the way
    out above" when the restart backoff's finding already says it, or a
    restore cut off putting items back, whose finding names its own); else
    a rollback to the last good commit before the deployed one, or a
    deploy of a fixed commit (docs/pipeline.md)."""
    from .deploy import suggest

    kind = {"reset": "reset", "rollback": "rollback"}.get((dep.get("last_run") or {}).get("trigger"), "update")
    head = f"the last {kind} ended BROKEN: a person is needed"
    if dep.get("restore_cut_off"):  # a rollback or deploy refuses it too; the finding just before names the way out
        return f"{head}: the way out is above"
    moved = checkout_moved_text(dep.get("deployed"), dep.get("head"), host, inventory, dep.get("in_progress"),
                                dep.get("bad") or ())
    if moved:
        return f"{head}: {'the way out is above' if said_moved else moved}"
    return (f"{head}: {suggest(inventory, 'rollback', '-H', host)} goes back to the last good commit before "
            f"{short_sha(dep.get('deployed'), 'this one')}, {suggest(inventory, 'deploy', '-H', host, '--ref', 'COMMIT')} "
            "deploys a fixed one")


# A scheduled backup is late past this many of its schedule's intervals
# (issue #26: 2x; one late or splayed run is no warning).
BACKUP_LATE = 2


def backup_findings(backup: Optional[Dict[str, Any]], now: float, host: str,
                    inventory: Optional[str] = None) -> List[str]:
    """The backup row's warnings (docs/monitor.md, "Backups"): the last
    good backup older than BACKUP_LATE intervals of backup.schedule (none
    ever while the history is that old: the schedule should have made
    one), a last run that failed (until a good one), and a snapshot kept
    on the host's own disk alone (no
    repository; host/backup.NO_OFF_HOST, setup --check's words). With
    backup.schedule off and no backup: nothing (None: not read)."""
    from .deploy import suggest

    if not backup:
        return []
    found, last = [], backup["last"]
    interval = longest_gap(backup["schedule"])
    since = backup["last_ok_at"] or backup["history_since"]
    if interval and since is not None and now - since > BACKUP_LATE * interval:
        # "every 1d" only when all its gaps are that one: a weekday schedule's 3d is its longest
        steady = len(cron_gaps(backup["schedule"]) or ()) == 1
        spacing = f"every {_span(interval)}" if steady else f"at most {_span(interval)} apart"
        every = f"backup.schedule {backup['schedule']}, {spacing}"
        failed = f"; the last one failed {_age(now, last['at'])} ago: {reason_head(last['message'], None)}" \
            if last and not last["ok"] and last["at"] is not None else ""
        if backup["last_ok_at"]:
            found.append(f"backup late: the last good backup is {_age(now, since)} old, more than {BACKUP_LATE}x "
                         f"its schedule ({every}){failed}")
        else:
            found.append(f"no good backup yet: none in the {_age(now, since)} since the host's first run ({every})"
                         f"{failed}; {suggest(inventory, 'backup', '-H', host)} makes one now")
    elif last and not last["ok"] and last["at"] is not None:
        # a failed run is news until the next good one, within the window
        # too: the schedule's next try may fail the same way (notified once)
        good = f"; the last good one is {_age(now, backup['last_ok_at'])} old" if backup["last_ok_at"] else ""
        found.append(f"backup failed: the last one, {_age(now, last['at'])} ago: {reason_head(last['message'], None)}{good}")
    if last and not backup["repository"]:
        from .host.backup import NO_OFF_HOST  # only here: the module is the whole backup run

        found.append(NO_OFF_HOST)
    return found


def reason_head(message: Optional[str], width: Optional[int] = 100) -> str:
    """A failed backup's reason, its first clause (host/backup.failure
    joins them with `; `), cut to `width` characters: the panel's row cuts
    it; a finding keeps it whole (width None), since --json gives every
    finding whole and the panel's list wraps it (docs/monitor.md)."""
    head = (message or "?").split("; ")[0]
    return head if width is None or len(head) <= width else head[:width - 1] + "…"


def _age(now: float, then: float) -> str:
    """An age in the panel's words (host/report.duration_text, as its
    `last backup 501 ms ago` row), so a finding and the row agree: _span's
    whole minutes said `1 min` for 501 ms (issue #26)."""
    from .host.report import duration_text

    return duration_text(max(0.0, now - then))


def _span(seconds: float) -> str:
    """A schedule's interval in whole units (`3d 4h`, `5h 10m`, `12 min`);
    an age is _age's."""
    minutes = int(max(0.0, seconds) // 60)
    days, rest = divmod(minutes, 1440)
    if days:
        return f"{days}d {rest // 60}h" if rest // 60 else f"{days}d"
    if minutes >= 60:
        return f"{minutes // 60}h {minutes % 60}m" if minutes % 60 else f"{minutes // 60}h"
    return f"{minutes or 1} min"


def behind_head(failing: Dict[str, Any]) -> Optional[str]:
    """`behind B (origin's head as last fetched)` for a hold no run has
    made yet (host/state.held_back: count 0), where a recorded one says
    since when and how many runs: monitor's finding and status' line
    begin with it. None for a record a run wrote."""
    if failing.get("count", 1) != 0:
        return None
    return f"behind {short_sha(failing.get('target'), 'origin')} (origin's head as last fetched)"


def failing_words(failing: Dict[str, Any], retry: Optional[Dict[str, Any]],
                  last_result: Optional[str] = None, bad=()) -> Tuple[str, str, str]:
    """(verb, `, last RESULT` or '', why) of a `failing` record that stands
    (host/state.failing_of): monitor's "behind T: updates VERB since ..."
    and status' "updates VERB since ... for T: WHY" say the same thing. A
    hold says what cron skips and why (`B failed its gate before (...), so
    cron skips it until origin moves`: host/plan.failed_before's words), a
    deferred retry when it tries again; a failure its last result and reason.
    `last_result`: the host's last run's; once a later run left it broken
    (a reset onto a commit that crashes), the reason's `rolled back to X,
    healthy` is no longer true, and loses its `healthy` (#24's trial).
    `bad`: the host's bad commits (state.json's keys)."""
    from .host.plan import deferred_words, failed_before

    target, result = failing.get("target"), failing.get("result")
    reason = respelled(failing.get("reason") or "?", target)
    if last_result == "broken" and reason.endswith(", healthy"):
        reason = reason[: -len(", healthy")]
    # a bad target is never retried: no `next try` from an older retry record (trial)
    held = isinstance(retry, dict) and retry.get("target") == target and target not in (bad or ())
    retry = retry if held else {}
    next_try = (f"; next try {_when(retry['next_at'], '%H:%M %Z')}"
                if isinstance(retry.get("next_at"), (int, float)) else "")
    if result == "skipped_bad":
        return "skipped", "", f"{failed_before(target, reason)}, so cron skips it until origin moves"
    if result == "deferred":
        return "deferred", "", f"its {deferred_words(reason)}{next_try}"
    return "failing", f", last {result}", reason + next_try


def _service_findings(svc: Dict[str, Any], th: Dict[str, float]) -> List[Tuple[int, str]]:
    """One service's findings: down (and what answers in its place), its
    port or check failing, its CPU or memory over the threshold."""
    name, found = svc["name"], []
    if not svc["active"]:
        found.append((errors.FAILED, f"{name} is {state_phrase(svc['state'])}"))
        answered, whose = answering(svc), answer_owner(svc)
        holder = svc.get("port_holder") or ""
        if answered and whose == "other" and holder.startswith("pid "):
            # named as health and the deploy's gate name it (listeners.PortOwner.holder: the pid and
            # its command, cut to COMMAND_WIDTH; the panel cuts it to its line: tasks/observe._Held)
            found.append((errors.WARNING, f"{name}: {answered} answered by another process ({holder}); "
                                          f"{name} is not running"))
        elif answered and whose == "other":  # no holder read (no python3, another user's process)
            found.append((errors.WARNING, f"{name}: {answered} answered by another process ({name} is not "
                                          "running)"))
        elif answered:  # starting, reloading, stopping: it may well be its own (review3 #4)
            state = "active with no main process" if svc["state"] == "active" else svc["state"]
            found.append((errors.WARNING, f"{name}: {answered} answered while {name} is {state}"))
        return found
    if svc["port"] and svc["port_open"] is False:
        found.append((errors.FAILED, f"{name}: port {svc['port']} is not listening"))
    elif svc.get("port_owner") == OTHER:  # it runs, but what listens on its port is not it
        found.append((errors.FAILED, f"port {svc['port']} is held by another process ({svc['port_holder']}), "
                                     f"not {name}"))
    if svc["http_expect"] is not None and svc["http_status"] != svc["http_expect"]:
        got = f"HTTP {svc['http_status']}" if svc["http_status"] else "no answer"
        found.append((errors.FAILED, f"{name}: check gave {got}, expected {svc['http_expect']}"))
    if svc["cpu"] is not None and svc["cpu"] >= th["cpu"]:
        found.append((errors.WARNING, f"{name}: CPU {svc['cpu']:g}% ≥ {th['cpu']:g}%"))
    if svc["memory"] is not None and svc["memory"] >= th["memory"]:
        found.append((errors.WARNING, f"{name}: memory {svc['memory']:g}% ≥ {th['memory']:g}%"))
    return found


# the states in which a service holds no port: what answers is another
# process's. In the others (activating, reloading, deactivating, unknown,
# active with no main PID) it may be the service's own.
NOT_RUNNING = frozenset({"inactive", "failed", "dead", "stale"})


def answer_owner(svc: Dict[str, Any]) -> str:
    """Whose a listening port or a passing check of the service is: "own"
    while it runs, "other" while it is in a NOT_RUNNING state (trial 2 #5:
    after `demo --stop`, another app on the port read `✅ 3013 ✅ 200`),
    "unsure" in between (reloading, ...): neither its ✅ nor another's."""
    if svc.get("port_owner") in (OWN, OTHER):  # the gate's fact (host/listeners.py), where it was read
        return svc["port_owner"]
    if svc["active"]:
        return "own"
    return "other" if svc["state"] in NOT_RUNNING else "unsure"


def own_figures(svc: Dict[str, Any]) -> Dict[str, Any]:
    """`svc` with only the service's own figures: while it is in a
    NOT_RUNNING state (answer_owner "other") the PID its stale pid file
    names may be another process by now, so its CPU, MEM and up are None
    (JSON null, the panel's `-`), never that process's (#24)."""
    # (a running service whose port another process holds keeps its own figures)
    return dict(svc, cpu=None, memory=None, uptime=None) if not svc["active"] and answer_owner(svc) == "other" \
        else svc


def answering(svc: Dict[str, Any]) -> str:
    """What answers for a service that is not running (`port 3013 and its
    check (HTTP 200)`), which a panel must not show as the service's ✅ (see
    answer_owner for whose it is). "" when nothing does."""
    if svc["active"]:
        return ""
    said = [f"port {svc['port']}"] if svc["port"] and svc["port_open"] else []
    if svc["http_expect"] is not None and svc["http_status"] == svc["http_expect"]:
        said.append(f"its check (HTTP {svc['http_status']})")
    return " and ".join(said)


def _aside_finding(aside: List[Dict[str, Any]]) -> str:
    """The newest moved-aside state.json, by name and time: the state before
    it (deployed, pin, bad targets) is lost until a person reads the copy."""
    last = aside[-1]
    when = _when(last["moved_at"], "%m-%d %H:%M %Z")
    more = f" (and {len(aside) - 1} earlier)" if len(aside) > 1 else ""
    return (f"state lost: a corrupt state.json was moved aside on {when} to {last['file']}{more}; "
            "read it, then delete it to clear this warning")


def _when(ts, fmt: str) -> str:
    return time.strftime(fmt, time.localtime(ts)) if isinstance(ts, (int, float)) else "?"


# ---------------------------------------------------------------- one refresh


def gather(cxn, host):
    """One exec: the whole fact script. Returns the facts, judged."""
    return sample(cxn, host)[0]


def sample(cxn, host, previous=None, inventory=None, marker=False):
    """(facts, raw output). With the previous refresh's raw output, the CPU
    window runs from that refresh to this one and the script waits for
    nothing (monitor --watch). `inventory`: evaluate's; `marker`:
    monitor_script's (--prometheus)."""
    script = (monitor_script(host, window=0, sample_age=0, marker=marker) if previous
              else monitor_script(host, marker=marker))
    result = Target.of(cxn, host).run(script, check=False, stdin=monitor_input(host) or None)
    out = result.stdout
    if MARK + "end" not in out.splitlines():
        # the script was cut short (a Ctrl-C sent to the whole process group
        # ends a local one mid-read, a lost link ends a remote one): what it
        # printed is part of the facts, and its missing sections would read
        # as a stopped service and no deploy state. No facts, an error.
        raise errors.UnreachableError(f"the monitor script ended before its last section (exit {result.exited}): "
                                      "no facts from a cut-short read", host=host.name)
    return judged(parse(out, host, previous=previous), host, inventory=inventory), out


def judged(facts: Dict[str, Any], host: Host, now: Optional[float] = None,
           inventory: Optional[str] = None) -> Dict[str, Any]:
    """`facts` with evaluate's verdict: `status`, `code` and `findings`."""
    code, findings = evaluate(facts, host, now, inventory=inventory)
    facts["status"] = errors.NAMES.get(code, str(code))
    facts["code"] = code
    facts["findings"] = [{"level": errors.NAMES.get(c, str(c)), "message": m} for c, m in findings]
    return facts


class Refresher:
    """`monitor`'s hosts, sampled again and again over one kept-open
    connection per host (opened at its first refresh, in parallel). A host
    whose refresh fails gets a new connection on the next one. With `watch`,
    each refresh's CPU window starts at the host's previous refresh (see
    `sample`). A context manager: every connection is closed on the way out.
    `flag`: the run's `-i` for the commands findings name (evaluate);
    `marker`: each script reads the install marker too (--prometheus:
    `last` then holds what prometheus.monitor_exposition reads)."""

    def __init__(self, inv, hosts, *, parallel: int, accept_new: bool = False,
                 connect_timeout: Optional[float] = None, watch: bool = False, flag: Optional[str] = None,
                 marker: bool = False):
        import threading

        self.inv, self.hosts, self.parallel, self.watch, self.flag = inv, hosts, parallel, watch, flag
        self.marker = marker
        self.accept_new, self.connect_timeout = accept_new, connect_timeout
        self.conns: Dict[str, Any] = {}
        self.last: Dict[str, str] = {}  # host -> the previous refresh's raw output (the CPU window's start)
        self.lock = threading.Lock()

    def refresh(self) -> list:
        """Every host's HostResult, its value the facts, in the hosts' order."""
        from .fanout import run_hosts

        return run_hosts(self.hosts, self._one, parallel=self.parallel).results

    def _one(self, host: Host) -> Dict[str, Any]:
        from .connection import close_quietly, connect

        if not self.watch:  # one look: `ssh` when it behaves as paramiko would (openssh.py)
            facts = self._through_openssh(host)
            if facts is not None:
                return facts
        cxn = self.conns.get(host.name)
        if cxn is None:
            cxn = connect(host, self.inv, accept_new=self.accept_new, connect_timeout=self.connect_timeout)
            with self.lock:
                self.conns[host.name] = cxn
        try:
            facts, self.last[host.name] = sample(cxn, host, self.last.get(host.name) if self.watch else None,
                                                   self.flag, self.marker)
            return facts
        except Exception:
            # a dead connection is re-opened on the next refresh
            with self.lock:
                self.conns.pop(host.name, None)
                self.last.pop(host.name, None)
            close_quietly(cxn)
            raise

    def _through_openssh(self, host: Host) -> Optional[Dict[str, Any]]:
        """A one-shot sample through OpenSSH's client, without paramiko's
        import and handshake (docs/architecture.md, "The OpenSSH path");
        None when that path does not apply, or ssh failed in a way only
        paramiko words exactly (openssh.Redo): the caller connects then."""
        from . import openssh

        cxn = openssh.plan(host, self.inv, accept_new=self.accept_new, connect_timeout=self.connect_timeout)
        if cxn is None:
            return None
        try:
            facts, self.last[host.name] = sample(cxn, host, None, self.flag, self.marker)
        except openssh.Redo:
            return None
        return facts

    def close(self) -> None:
        from .connection import close_quietly

        for cxn in self.conns.values():
            close_quietly(cxn)

    def __enter__(self) -> "Refresher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

