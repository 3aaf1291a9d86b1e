"""The monitor's facts that are files, gathered by the one python3 its host
script already starts (docs/benchmarks.md, "The monitor's host script: one
python3"; docs/monitor.md).

The script used to start about thirty programs for these (df, date, tac,
grep, sed, find, tail, awk, stat, ss ...), each a fork and an exec that a
loaded host makes cost 5-25 ms. This file reads the same files and prints
the same `@@fabops:` sections the shell printed, byte for byte in the usual
case, so monitor.parse does not change: only what needs a program
(`systemctl`, `journalctl`, `git`) stays in the shell.

Self-contained and standard library only: it runs on the host's Python 3.9
as `python3 -c` source (monitor.facts_source), beside host/listeners.py and
host/httpcheck.py in one interpreter. Host data is written as the bytes the
files hold, as cat and tac wrote them.

`main(argv)` reads records `KIND COUNT ARG...` (monitor._fact_words):

- `disk 0`: df -Pk /'s line (its fifth column, the use %, is what is read);
- `tz 0`: the UTC offset now, as `date +%z`;
- `port:NAME 1 PORT`: `open` or `closed` (a LISTEN socket on PORT in
  /proc/net/tcp or tcp6, as host/listeners.py reads them);
- `process 2N NAME PIDFILE ...`: each process service's `NAME STATE PID
  SINCE` line, as host/services.process_status_cmd prints it;
- `tzlast 1 STATE`: the UTC offset at state.json's `last_check`;
- `history 1 FILE`: the `last`, `backup` and `first` sections;
- `aside 1 PREFIX`: the names of the state files a merge moved aside;
- `errors_update N LOG -e WORD ...`: the update log's error lines of the
  last hour (their own time, the writer's offset);
- `gone 2N NAME NOTE ...`: each process service's `.gone` note;
- `cleanup:I 2 DIR GLOB`: KiB under DIR, its GLOB files, those of the last day;
- `errors N LOG ... -e WORD ...`: printed last, by `errors(argv)`: the
  script adds the journal's counts after it (monitor._errors_parts).
"""
from __future__ import annotations

import os
import sys
import time

MARK = b"@@fabops:"
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column
BACKUP = b'"trigger": "backup"'
BACKED_UP = b'"result": "backed_up"'
CHUNK = 65536
LAST_CHECK = b'\n  "last_check": '  # json.dumps' indent of 2: a top-level key (monitor._TZ_LAST)
LOG_LINES = 2000  # the lines of a log that are read (`tail -n 2000`)
HOUR = 3600


def records(argv: list) -> list:
    """[(kind, args)] of `KIND COUNT ARG...` words; a malformed tail is dropped."""
    out, i = [], 0
    while i + 1 < len(argv):
        try:
            n = int(argv[i + 1])
        except ValueError:
            break
        out.append((argv[i], argv[i + 2:i + 2 + n]))
        i += 2 + n
    return out


def _bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _lines(items) -> bytes:
    return b"".join(x + b"\n" for x in items)


def _text(value) -> bytes:
    return str(value).encode("utf-8", "surrogateescape")


def disk(root: str = "/") -> bytes:
    """df -Pk's line for `root`: 1024-blocks, used, available and the use
    % as df works it out (used over used + available, rounded up; the
    blocks kept for root are in neither)."""
    try:
        st = os.statvfs(root)
    except OSError:
        return b""
    used, avail = (st.f_blocks - st.f_bfree), st.f_bavail
    total = used + avail
    pct = "%d%%" % (-(-used * 100 // total)) if total else "-"
    kib = st.f_frsize / 1024.0
    return _text("%s %d %d %d %s %s" % (_source(root), st.f_blocks * kib, used * kib, avail * kib, pct, root)) + b"\n"


def _source(root: str) -> str:
    """What is mounted on `root` (df's first column), `-` when not found."""
    found = "-"
    for line in _bytes("/proc/self/mounts").decode("utf-8", "replace").splitlines():
        words = line.split()
        if len(words) > 1 and words[1] == root:
            found = words[0]  # the last mount on it is the one seen
    return found


def offset(when=None) -> bytes:
    """`date +%z` (or `date -d @WHEN +%z`): the host's UTC offset, +HHMM."""
    return _text(time.strftime("%z", time.localtime(when))) + b"\n"


def listening(port: int, proc: str = "/proc") -> bool:
    """Whether a LISTEN socket is on `port`, any address (as `ss -Hltn
    'sport = :PORT'` said, or the awk read of the same two files)."""
    for name in ("tcp", "tcp6"):
        for line in _bytes("%s/net/%s" % (proc, name)).decode("ascii", "replace").splitlines()[1:]:
            parts = line.split()
            if len(parts) > 3 and parts[3] == LISTEN and parts[1].rpartition(":")[2] == "%04X" % port:
                return True
    return False


def alive(pid: str, start: str, proc: str = "/proc") -> bool:
    """host/services' `alive PID START`: the process runs (not a zombie)
    and, when START is given, is the one started then (its start time)."""
    if not pid.isdigit():
        return False
    fields = _bytes("%s/%s/stat" % (proc, pid)).rpartition(b") ")[2].split()
    if not fields or fields[0] in (b"Z", b"X"):
        return False
    return not start or (len(fields) > 19 and fields[19] == start.encode())


def process(args: list, proc: str = "/proc") -> tuple:
    """process_status_cmd's lines for NAME PIDFILE pairs, and {name: pid}
    of those alive (whose each port is: host/listeners.py)."""
    out, pids = [], {}
    for name, pidfile in zip(args[0::2], args[1::2]):
        try:
            with open(pidfile, "rb") as f:
                words = f.readline().decode("utf-8", "surrogateescape").split()
        except OSError:
            out.append(_text(name + " inactive - -"))
            continue
        pid, start = (words + ["", ""])[:2]
        if alive(pid, start, proc):
            try:
                since = int(os.stat("%s/%s" % (proc, pid)).st_mtime)
            except OSError:
                since = ""
            out.append(_text("%s active %s %s" % (name, pid, since)))
            pids[name] = pid
        else:
            out.append(_text("%s stale %s -" % (name, pid)))
    return _lines(out), pids


def tzlast(state: str) -> bytes:
    """The offset at state.json's top-level `last_check` (its first such
    key's leading digits; nothing without them, as the shell's read)."""
    text = _bytes(state)
    at = text.find(LAST_CHECK)
    rest = text[at + len(LAST_CHECK):] if at >= 0 else b""
    digits = rest[:len(rest) - len(rest.lstrip(b"0123456789"))]
    try:
        return offset(int(digits)) if digits else b""
    except (OverflowError, OSError, ValueError):  # a time date -d refuses too: nothing
        return b""


def newest_first(path: str):
    """The file's lines, newest first, as tac gives them (a last line
    without its newline too), read from the end a chunk at a time: most
    looks need a line or two of a long file."""
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        end = f.seek(0, 2)
        rest, first = b"", True
        while end > 0:
            start = max(0, end - CHUNK)
            f.seek(start)
            lines = (f.read(end - start) + rest).split(b"\n")
            end = start
            rest = lines.pop(0) if end > 0 else b""
            if first and lines and lines[-1] == b"":
                lines.pop()  # the file's closing newline ends the last line; no line follows it
            first = False
            yield from reversed(lines)
        if rest:
            yield rest


def history(path: str) -> list:
    """The `last` (the newest record that is not a backup's), `backup` (the
    newest backup record, then the newest good one: the same line twice
    when it is both) and `first` (the first record, when a newline ends
    it) sections."""
    last = newest = good = None
    for line in newest_first(path):
        if BACKUP not in line:
            last = line if last is None else last
        else:
            newest = line if newest is None else newest
            good = line if good is None and BACKED_UP in line else good
        if last is not None and good is not None:
            break
    return [(b"last", _lines([last] if last is not None else [])),
            (b"backup", _lines([x for x in (newest, good) if x is not None])), (b"first", first_line(path))]


def first_line(path: str) -> bytes:
    """The first line, its blanks trimmed, when a newline ends it (`read -r L`)."""
    try:
        with open(path, "rb") as f:
            line = f.readline()
    except OSError:
        return b""
    return line.strip(b" \t\n") + b"\n" if line.endswith(b"\n") else b""


def aside(prefix: str) -> bytes:
    """The names of the files `PREFIX*` in its directory, as a glob lists them."""
    where, _, start = prefix.rpartition("/")
    try:
        names = sorted(n for n in os.listdir(where or "/") if n.startswith(start) and not n.startswith("."))
    except OSError:
        return b""
    return _lines(_text(n) for n in names if os.path.exists(os.path.join(where or "/", n)))


def _split(args: list) -> tuple:
    """(paths, words) of `PATH ... -e WORD -e WORD ...`, the words in lower case."""
    at = args.index("-e") if "-e" in args else len(args)
    return args[:at], [w.lower().encode("utf-8") for w in args[at + 1::2]]


def recent(path: str, now: float) -> bool:
    """`find PATH -mmin -60`: written in the last hour."""
    try:
        return now - os.stat(path).st_mtime < HOUR
    except OSError:
        return False


def tail(path: str, n: int = LOG_LINES) -> list:
    """`tail -n N`'s lines, newest first."""
    out = []
    for line in newest_first(path):
        if len(out) == n:
            break
        out.append(line)
    return out


def matching(lines: list, words: list) -> list:
    """The lines `grep -i -e WORD ...` passes (the words are fixed strings:
    logs.ERROR_WORDS and the update log's result words hold no pattern)."""
    return [x for x in lines if any(w in x.lower() for w in words)]


def errors(argv: list, now=None) -> bytes:
    """The `errors` section: each process service log's error lines of the
    last 2000 when it was written in the last hour (`0` when it was not),
    as the shell printed them (`grep -c`'s 0, then `|| echo 0`'s)."""
    now = time.time() if now is None else now
    out = [b"\n" + MARK + b"errors\n"]
    for kind, args in records(argv):
        if kind == "errors":
            logs, words = _split(args)
            for log in logs:
                if not recent(log, now):
                    out.append(b"0\n")
                    continue
                count = len(matching(tail(log), words))
                out.append(b"%d\n" % count if count else b"0\n0\n")
    return b"".join(out)


def _trunc(a: int, b: int) -> int:
    """awk's int(a / b): toward zero."""
    return a // b if a >= 0 else -(-a // b)


def log_time(word: bytes):
    """An update log line's time (host/record.log_line) as monitor's awk
    reckons it (monitor._LOG_TIME_AWK), or None when it is no such time."""
    w = word.decode("ascii", "replace")
    if (len(w) != 24 or not all(w[i].isdigit() for i in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23))
            or w[4] != "-" or w[7] != "-" or w[10] != "T" or w[13] != ":" or w[16] != ":" or w[19] not in "+-"):
        return None
    y, m = int(w[0:4]), int(w[5:7])
    if m <= 2:
        y, m = y - 1, m + 12
    d = 365 * y + _trunc(y, 4) - _trunc(y, 100) + _trunc(y, 400) + _trunc(153 * (m - 3) + 2, 5) + int(w[8:10]) - 719469
    t = d * 86400 + int(w[11:13]) * 3600 + int(w[14:16]) * 60 + int(w[17:19])
    o = int(w[20:22]) * 3600 + int(w[22:24]) * 60
    return t + o if w[19] == "-" else t - o


def errors_update(args: list, now: float) -> bytes:
    """The update log's error lines of the last hour, by the time each starts with."""
    logs, words = _split(args)
    if not logs or not recent(logs[0], now):
        return b"0\n"
    since = int(now) - HOUR
    count = 0
    for line in matching(tail(logs[0]), words):
        fields = line.split()
        t = log_time(fields[0]) if fields else None
        count += t is not None and t >= since
    return b"%d\n" % count


def gone(args: list) -> bytes:
    """Each `.gone` note's PID, `NAME PID` (its first word, when a newline ends the line)."""
    out = []
    for name, note in zip(args[0::2], args[1::2]):
        line = first_line(note)
        if line:
            words = line.replace(b"\t", b" ").split(b" ")
            out.append(_text(name) + b" " + next((w for w in words if w.strip()), b"").strip())
    return _lines(out)


def cleanup(where: str, glob: str, now: float) -> bytes:
    """`du -sk`, then the GLOB files right in the directory (not below) and
    those written in the last day (`find -mtime -1`); `missing` without it."""
    if not os.path.isdir(where):
        return b"missing\n"
    from fnmatch import fnmatchcase

    blocks, seen = 0, set()
    for top, dirs, files in os.walk(where):
        for name in [""] + dirs + files if top == where else dirs + files:
            try:
                st = os.lstat(os.path.join(top, name) if name else top)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                blocks += st.st_blocks
    files = young = 0
    for entry in _entries(where):
        if entry.is_file(follow_symlinks=False) and fnmatchcase(entry.name, glob):
            files += 1
            young += now - entry.stat(follow_symlinks=False).st_mtime < 86400
    return b"%d\n%d\n%d\n" % (-(-blocks // 2), files, young)


def _entries(where: str) -> list:
    try:
        with os.scandir(where) as it:
            return list(it)
    except OSError:
        return []


def section(name, body: bytes) -> bytes:
    """A section as the shell's `echo; echo MARKER; ...` printed it."""
    return b"\n" + MARK + (name if isinstance(name, bytes) else _text(name)) + b"\n" + body


def gather(argv: list, now=None) -> tuple:
    """Every record's section but `errors` (errors: last), and {name: pid}
    of the process services that run."""
    now = time.time() if now is None else now
    out, pids = [], {}
    for kind, args in records(argv):
        if kind == "process":
            body, pids = process(args)
            out.append(section(kind, body))
        elif kind == "history":
            out += [section(name, body) for name, body in history(args[0])]
        elif kind != "errors":
            out.append(section(kind, _one(kind, args, now)))
    return b"".join(out), pids


def _one(kind: str, args: list, now: float) -> bytes:
    if kind == "disk":
        return disk()
    if kind == "tz":
        return offset()
    if kind.startswith("port:"):
        return b"open\n" if args[0].isdigit() and listening(int(args[0])) else b"closed\n"
    if kind == "tzlast":
        return tzlast(args[0])
    if kind == "aside":
        return aside(args[0])
    if kind == "errors_update":
        return errors_update(args, now)
    if kind == "gone":
        return gone(args)
    if kind.startswith("cleanup:"):
        return cleanup(args[0], args[1], now)
    return b""


def owners_argv(oa: list, pids: dict) -> list:
    """host/listeners.py's `PORT PID KIND` words, a process service's PID
    (`@NAME` in the script's) the one `process` found running, else `-`."""
    words = list(oa)
    for i in range(1, len(words), 3):
        if words[i].startswith("@"):
            words[i] = pids.get(words[i][1:], "-")
    return words


def write(data: bytes) -> None:
    """Bytes to stdout after whatever print() holds (the other files' lines)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def main(argv: list) -> dict:
    """Print every section but `errors`; {name: pid} of the running process services."""
    data, pids = gather(argv)
    write(data)
    return pids
