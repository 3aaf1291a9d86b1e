"""A backup under load (#26, "Measure"), side by side with a plain
`tar -cf - DATA DB | gzip -1 > out.tar.gz` of the same data, in the same run.

The host is this machine (`connection: local`) in a temp dir: a data
directory of files (many small, some large; part word text, part random
bytes; generated once per run with a fixed seed), a SQLite database (WAL)
that a writer process keeps inserting rows into while each command runs,
and a restic repository in the temp dir with a 0600 password file. fabops'
backup runs as the task runs it on a host (docs/backups.md, "The task"):
`python -I -m fabops.host.backup run` with the host's host.yml on stdin
(fabops.deploy.host_yml): the local snapshot (files.tar, the SQLite online
backup, a sha256 of each) and then `restic backup` and `forget --prune`.

Runs, alternated: fabops, tar | gzip, fabops again (nothing changed but the
writer's rows: restic's deduplication), tar | gzip again. Each is one child
process tree, measured with os.wait4: wall time, CPU (user + system of it
and every child it waited for), peak RSS (the largest single process of
the tree, not a sum, as GNU time's %M reports it: see measure). fabops
lowers its own priority (nice 19, ionice best-effort 7: docs/backups.md,
"Lock, priority"), so tar | gzip runs at that same priority: the machine is shared, and otherwise the comparison
would measure the scheduler. Both read a warm page cache (the data was
just written).

Prints Markdown; nothing here is asserted by the tests. Run:
`python -m bench backup [--files-mib 1024] [--sqlite-mib 100] [--writes-per-s 200]`.
Everything it makes is in one temp dir, removed at the end, and every
process it starts is ended by its PID, even when it fails.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1 << 20
SEED = 26  # the data is the same every run (the number)
RESTIC = "/usr/bin/restic"
TIME = "/usr/bin/time"  # GNU time, for the peak RSS (measure)
LETTERS = b"etaoinshrdlcumwfgypbvkjxqz"

# The app: one row per transaction (autocommit), WAL, as a bot logging
# messages would, at a fixed rate; ended by its PID when a measurement ends.
WRITER = r"""
import random, sqlite3, sys, time
db, rate = sys.argv[1], float(sys.argv[2])
rng = random.Random(int(sys.argv[3]))
words = ["deploy", "message", "channel", "user", "voice", "meeting", "joined", "left", "the", "a", "of", "to",
         "error", "ok", "retry", "upload", "transcript", "minutes", "summary", "agenda"]
con = sqlite3.connect(db, timeout=30, isolation_level=None)
con.execute("PRAGMA synchronous=NORMAL")
start, n = time.monotonic(), 0
while True:
    con.execute("INSERT INTO messages (ts, channel, body, attachment) VALUES (?, ?, ?, NULL)",
                (time.time(), rng.randrange(100), " ".join(rng.choices(words, k=rng.randrange(20, 120)))))
    n += 1
    delay = start + n / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""


# ------------------------------------------------------------------ data (generated once per run)


def vocabulary(rng: random.Random) -> List[bytes]:
    """256 words (one per byte value), a few of them line ends: text that
    gzip -1 takes to about a third, unique in every file (no chunk of it
    repeats, so restic cannot deduplicate it within a run)."""
    words = [bytes(rng.choices(LETTERS, k=min(2 + int(rng.expovariate(0.25)), 14))) for _ in range(248)]
    return words + [b"\n"] * 8


def text(rng: random.Random, vocab: List[bytes], size: int) -> bytes:
    out = b" ".join(map(vocab.__getitem__, rng.randbytes(size // 5 + 16)))
    while len(out) < size:  # short words: rarely one more round
        out += b" " + b" ".join(map(vocab.__getitem__, rng.randbytes(size // 5 + 16)))
    return out[:size]


def write_file(path: Path, size: int, is_text: bool, rng: random.Random, vocab: List[bytes]) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, MiB)
            fh.write(text(rng, vocab, n) if is_text else rng.randbytes(n))
            left -= n


def make_files(top: Path, total: int, rng: random.Random, vocab: List[bytes]) -> dict:
    """`total` bytes of files: 30 % small (512 B to 256 KiB), 40 % medium
    (256 KiB to 8 MiB), 30 % large (16 to 64 MiB); sizes log-uniform within
    a class; each file word text or random bytes, half and half."""
    classes = [("small", 0.3, 512, 256 << 10), ("medium", 0.4, 256 << 10, 8 * MiB), ("large", 0.3, 16 * MiB, 64 * MiB)]
    done = {"files": 0, "text": 0, "random": 0, "small": 0, "medium": 0, "large": 0}
    left_total = total
    for name, share, lo, hi in classes:
        budget = left_total if name == "large" else int(total * share)
        left_total -= budget
        while budget > 0:
            size = min(budget, int(lo * (hi / lo) ** rng.random()))
            i = done["files"]
            is_text = rng.random() < 0.5
            d = top / f"d{i // 200:03d}"
            d.mkdir(parents=True, exist_ok=True)
            write_file(d / f"f{i:05d}.{'txt' if is_text else 'bin'}", size, is_text, rng, vocab)
            budget -= size
            done["files"] += 1
            done[name] += 1
            done["text" if is_text else "random"] += size
    return done


def make_db(path: Path, size: int, rng: random.Random, vocab: List[bytes]) -> int:
    """A WAL database of about `size` bytes: messages of 300 to 800 bytes
    of text, a third with a random attachment; its row count."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, ts REAL, channel INTEGER, body TEXT, "
                    "attachment BLOB)")
        rows, ts = 0, 1.79e9
        while con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0] < size:
            batch = [(ts + rows + j, rng.randrange(100), text(rng, vocab, 300 + rng.randrange(500)).decode(),
                      rng.randbytes(rng.randrange(64, 1024)) if rng.random() < 1 / 3 else None) for j in range(2000)]
            con.executemany("INSERT INTO messages (ts, channel, body, attachment) VALUES (?, ?, ?, ?)", batch)
            con.commit()
            rows += len(batch)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return rows
    finally:
        con.close()


def max_id(db: Path) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT max(id) FROM messages").fetchone()[0] or 0
    finally:
        con.close()


# ------------------------------------------------------------------ processes (each ended by its PID)


def descendants(pid: int) -> List[int]:
    """Every live process under `pid` (restic runs in a session of its own,
    so a process group would miss it)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def subreaper() -> None:
    """This process adopts what its children leave behind (prctl
    PR_SET_CHILD_SUBREAPER), so that end() can reap a restic whose parent
    it killed; without it, that restic would wait for init to reap it."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def end(proc: subprocess.Popen) -> None:
    """Ends `proc` and everything under it, by PID, and reaps them."""
    if proc.returncode is not None:
        return
    under = descendants(proc.pid)
    for pid in [proc.pid] + under:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait()
    for pid in under:  # ours once their parent is gone (subreaper)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


class Writer:
    """The app writing to the database while a command runs: started before
    it (once its first row is in), ended by its PID after it."""

    def __init__(self, db: Path, rate: float, seed: int, log: Path):
        self.db, self.rate, self.seed, self.log = db, rate, seed, log
        self.proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> "Writer":
        self.first = max_id(self.db)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(self.db), str(self.rate), str(self.seed)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.started = time.monotonic()
        deadline = self.started + 10
        while max_id(self.db) == self.first and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        self.died = self.proc.poll()  # not None: it stopped before the command ended
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            end(self.proc)
        self.seconds = time.monotonic() - self.started
        self.rows = max_id(self.db) - self.first


def measure(argv: List[str], log: Path, stdin: Optional[str] = None, env=None, cwd=None, out=None) -> dict:
    """One child process tree: wall s, CPU s (os.wait4: user + system, its
    waited-for children included), peak RSS (KiB, its largest process) and
    exit code; its stdout into `out`. The RSS is /usr/bin/time's (%M): a
    child of this process reports this process's own high-water mark as
    its ru_maxrss (exec records the mm it leaves, vfork's being ours), which
    here is larger than tar's or gzip's."""
    rss_file = Path(str(log) + ".rss")
    timed = [TIME, "-f", "%M", "-o", str(rss_file)] if os.access(TIME, os.X_OK) else []
    with open(out or os.devnull, "wb") as so, open(log, "ab") as se:
        start = time.perf_counter()
        proc = subprocess.Popen(timed + argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=so, stderr=se, env=env, cwd=cwd)
        try:
            if stdin is not None:
                proc.stdin.write(stdin.encode())  # host.yml: far less than a pipe's buffer
                proc.stdin.close()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            end(proc)
    wall = time.perf_counter() - start
    try:
        rss = int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        rss = usage.ru_maxrss
    said = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": rss, "exit": proc.returncode,
            "said": said[-1] if said else ""}


def tree_files(top: Path) -> Dict[str, int]:
    """Each file under `top` and its size (apparent bytes, as du -b)."""
    out = {}
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            try:
                out[os.path.relpath(p, top)] = os.lstat(p).st_size
            except OSError:
                pass
    return out


# ------------------------------------------------------------------ the bench


def mib(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


def ratio(a: float, b: float) -> str:
    if not b:
        return "–"
    return f"{a / b:.2f}×" if a / b >= 0.1 else f"{a / b:.3f}×"


def low_priority() -> List[str]:
    """The priority fabops' run gives itself (host/backup.lower_priority), for tar | gzip."""
    argv = ["nice", "-n", "19"]
    ionice = shutil.which("ionice")
    if ionice and subprocess.run([ionice, "-c", "2", "-n", "7", "true"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL).returncode == 0:
        argv += [ionice, "-c", "2", "-n", "7"]
    return argv


def skipped(files_mib: int, sqlite_mib: int) -> Optional[str]:
    """Why the bench cannot run here (no restic, too little room), or None."""
    if not os.access(RESTIC, os.X_OK):
        return f"### Backup\n\nskipped: no {RESTIC}\n"
    tmp = tempfile.gettempdir()
    need = (files_mib + sqlite_mib) * MiB * 6  # data, two local snapshots, the repository, two archives
    if shutil.disk_usage(tmp).free < need:
        return f"### Backup\n\nskipped: {tmp} has less than {mib(need)} free\n"
    return None


class Bench:
    """The bench's host in `base` (connection: local): the app directory,
    fabops' home, the restic repository and its 0600 password file, the
    tar archives' directory; `stdin` is the host.yml a run reads, `env`
    keeps restic's cache and temp files in `base` (nothing outlives the
    bench)."""

    def __init__(self, base: Path):
        import yaml

        from fabops.deploy import host_yml
        from fabops.inventory import load

        self.base = base
        self.app, self.home, self.repo, self.out = base / "app", base / "home", base / "repo", base / "out"
        for d in (self.app, self.home, self.out, base / "tmp"):
            d.mkdir()
        (self.app / ".env").write_text("DISCORD_TOKEN=x\n")
        password = base / "restic-password"
        password.write_text("bench-only-password\n")
        password.chmod(0o600)
        (base / "hosts.yml").write_text(yaml.safe_dump({"hosts": {"bench": {
            "connection": "local", "app": {"path": str(self.app)}, "home": str(self.home),
            "backup_dir": str(base / "env-backup"), "logs": {"update": str(base / "log" / "update.log")},
            "backup": {"files": ["uploads"], "sqlite": ["app.db"], "schedule": None,
                       "repository": {"url": str(self.repo), "password_file": str(password)}}}}}))
        (host,) = load(str(base / "hosts.yml")).select(None)
        self.stdin = host_yml(host)
        self.env = dict(os.environ, RESTIC_CACHE_DIR=str(base / "restic-cache"), TMPDIR=str(base / "tmp"))

    def make_data(self, files_mib: int, sqlite_mib: int) -> dict:
        """The data directory and the database, from the fixed seed: the
        file mix, the rows, how long it took and the database's size."""
        rng = random.Random(SEED)
        vocab = vocabulary(rng)
        t = time.monotonic()
        mix = make_files(self.app / "uploads", files_mib * MiB, rng, vocab)
        rows = make_db(self.app / "app.db", sqlite_mib * MiB, rng, vocab)
        return {"mix": mix, "rows": rows, "made": time.monotonic() - t,
                "db_size": (self.app / "app.db").stat().st_size}

    def run(self, i: int, name: str, rate: float, nice: List[str]) -> dict:
        """One measured run (`fabops N` or `tar N`) while the writer writes."""
        from fabops.host.backup import exit_code

        fabops = [sys.executable, "-I", "-m", "fabops.host.backup", "run"]  # a local host's (maintenance/backup.py)
        log, busy = self.base / f"stderr-{i}.log", os.getloadavg()[0]
        archive = self.out / f"run{name[-1]}.tar.gz"
        with Writer(self.app / "app.db", rate, SEED + i, self.base / "writer.log") as w:
            if name.startswith("fabops"):
                m = measure(fabops, log, stdin=self.stdin, env=self.env, cwd=str(self.base),
                            out=self.base / "answer.json")
            else:
                m = measure(nice + ["bash", "-c", f"set -o pipefail; tar -cf - uploads app.db | gzip -1 > "
                                    f"{shlex.quote(str(archive))}"], log, env=self.env, cwd=str(self.app))
        m.update(rows=w.rows, writer_s=w.seconds, writer_died=w.died, load=busy)
        if not name.startswith("fabops"):
            m.update(size=archive.stat().st_size, code=m["exit"])
            return m
        try:
            answer = json.loads((self.base / "answer.json").read_text())
        except ValueError:
            answer = {}
        m.update(answer=answer, code=exit_code("run", answer) if answer else m["exit"],
                 repo=sum(tree_files(self.repo).values()), local=sum(tree_files(self.home / "backups").values()))
        return m

    def runs(self, rate: float, nice: List[str]) -> tuple:
        """fabops, tar | gzip, fabops again, tar | gzip again: each run's
        measures, and the repository's bytes the second fabops run added
        and removed (restic's deduplication)."""
        got: Dict[str, dict] = {}
        before2: Dict[str, int] = {}
        for i, name in enumerate(("fabops 1", "tar 1", "fabops 2", "tar 2")):
            if name == "fabops 2":
                before2 = tree_files(self.repo)
            got[name] = self.run(i, name, rate, nice)
        after2 = tree_files(self.repo)
        added = sum(s for f, s in after2.items() if f not in before2)
        removed = sum(s for f, s in before2.items() if f not in after2)
        return got, added, removed


def bench_backup(files_mib: int, sqlite_mib: int, rate: float) -> str:
    """The bench: skipped where it cannot run, else the data made, the
    four runs measured and the report; the temp dir removed whatever
    happens."""
    why = skipped(files_mib, sqlite_mib)
    if why:
        return why
    load_start, started = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    subreaper()
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-backup-"))
    try:
        bench = Bench(base)
        data = bench.make_data(files_mib, sqlite_mib)
        nice = low_priority()
        got, added, removed = bench.runs(rate, nice)
        return report(files_mib, sqlite_mib, rate, data["mix"], data["rows"], data["db_size"], data["made"], got,
                      added, removed, nice, load_start, started)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(files_mib, sqlite_mib, rate, mix, rows, db_size, made, got, added, removed, nice, load_start,
           started) -> str:
    f1, t1, f2, t2 = got["fabops 1"], got["tar 1"], got["fabops 2"], got["tar 2"]
    restic = subprocess.run([RESTIC, "version"], capture_output=True, text=True).stdout.split()[1:2] or ["?"]
    load_end = os.getloadavg()
    lines = [f"### Backup of {files_mib} MiB of files and a {sqlite_mib} MiB SQLite database under load",
             "",
             f"{started}; load average (1 min) {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end "
             f"({os.cpu_count()} cores); Python {platform.python_version()}, restic {restic[0]}. "
             f"Data: {mix['files']:,} files ({mix['small']:,} of 512 B to 256 KiB, "
             f"{mix['medium']:,} of 256 KiB to 8 MiB, {mix['large']:,} of 16 to 64 MiB; "
             f"{mib(mix['text'])} word text, {mib(mix['random'])} random bytes) and a WAL SQLite database of "
             f"{mib(db_size)} ({rows:,} rows), made in {made:.0f} s (seed {SEED}). While each command ran, a "
             f"writer inserted rows into the database at {rate:g}/s, one per transaction. "
             f"tar | gzip ran at fabops' own priority (`{' '.join(nice)}`); page cache warm.",
             "",
             "| run | load | wall | ×tar | CPU | ×tar | peak RSS | ×tar | written | ×tar | writer rows | exit |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]

    def row(label, m, base, written, size, base_size):
        died = " (writer died)" if m["writer_died"] is not None else ""
        lines.append(f"| {label} | {m['load']:.2f} | {m['wall']:.1f} s | {ratio(m['wall'], base['wall'])} | "
                     f"{m['cpu']:.1f} s | {ratio(m['cpu'], base['cpu'])} | {m['rss'] / 1024:.0f} MiB | "
                     f"{ratio(m['rss'], base['rss'])} | {written} | {ratio(size, base_size)} | "
                     f"{m['rows']:,} in {m['writer_s']:.0f} s{died} | {m['code']} |")

    row("tar \\| gzip -1, first", t1, t1, f"archive {mib(t1['size'])}", t1["size"], t1["size"])
    row("**fabops backup, first**", f1, t1, f"repository {mib(f1['repo'])} (local snapshot {mib(f1['local'])})",
        f1["repo"], t1["size"])
    row("tar \\| gzip -1, second", t2, t2, f"another archive {mib(t2['size'])}", t2["size"], t2["size"])
    row("**fabops backup, second**", f2, t2, f"repository {'+' if f2['repo'] >= f1['repo'] else '−'}"
        f"{mib(abs(f2['repo'] - f1['repo']))} (files added {mib(added)}, removed {mib(removed)})",
        added, t2["size"])
    lines.append("")
    for name, m in (("first", t1), ("second", t2)):
        if m["exit"]:  # GNU tar's 1: a file changed while it was read (the database the writer writes)
            lines += [f"tar | gzip's {name} run exited {m['exit']}: {m['said']}", ""]
    for name, m in (("first", f1), ("second", f2)):
        a = m["answer"]
        items = {i["name"]: i for i in a.get("items") or []}
        off = a.get("offsite") or {}
        parts = [f"{n} {i.get('duration', 0):.1f} s" for n, i in items.items() if not i.get("skipped")]
        lines.append(f"fabops' {name} run, by its manifest: {', '.join(parts) or 'no items'} (each copy with its "
                     f"sha256); restic (snapshots, backup, forget --prune) {off.get('duration') or 0:.1f} s; "
                     f"uploaded {', '.join(u['run_id'] for u in off.get('uploaded') or []) or 'nothing'}, "
                     f"forgot {', '.join(off.get('forgotten') or []) or 'nothing'}"
                     + (f"; FAILED: {a.get('error') or off.get('error') or 'an item'}" if m["code"] else "")
                     + (f"; priority {a['priority']}" if a.get("priority") else "") + ".")
        lines.append("")
    lines.append(f"The second fabops run added {mib(added)} of files to the repository, "
                 f"{100 * added / max(f2['local'], 1):.2f} % of the snapshot it uploaded ({mib(f2['local'])}); "
                 f"tar | gzip wrote a whole new archive ({mib(t2['size'])}).")
    lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files-mib", type=int, default=1024, help="size of the data directory (the issue's: 1024)")
    parser.add_argument("--sqlite-mib", type=int, default=100, help="size of the SQLite database (the issue's: 100)")
    parser.add_argument("--writes-per-s", type=float, default=200.0, help="the writer's rows per second")
    args = parser.parse_args(argv or [])
    print(bench_backup(args.files_mib, args.sqlite_mib, args.writes_per_s))
