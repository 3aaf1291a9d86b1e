"""Two revisions of fabops side by side, for a cut on the host side (#25):
CPU, paired round by round, on a machine that other work may load.

- the monitor's host script (monitor_script for one process service with a
  port and an HTTP check, `window=0`), run with `sh -c` against a local
  HTTP server whose pid is the service's: CPU of the script's processes;
- cron's no-op poll (bench/cron.py's scenario: a local origin with nothing
  new, the sandbox bot up), each revision's package run by the host venv's
  python: CPU of the whole process tree and of the Python process alone,
  with the legacy poll alternated in.

Each revision is `git archive`d into a temporary directory and
byte-compiled; rounds go in rotated order, and the table gives medians and
the median of each round's paired difference. Run:
`python -m bench trees BEFORE [AFTER]` (AFTER defaults to HEAD;
BENCH_ROUNDS=N, 31 by default).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run one revision's `fabops ARGS` with its own package first on the path,
# saying the Python process's own CPU and its children's on stderr.
RUN = """import atexit, resource, sys
def said():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stderr.write("USAGE %f %f\\n" % (s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime))
atexit.register(said)
sys.path.insert(0, sys.argv[1])
sys.argv = ["fabops"] + sys.argv[2:]
from fabops.cli import main
main()
"""

# Print one revision's monitor script and its stdin for the host below.
SCRIPT = """import json, sys
sys.path.insert(0, sys.argv[1])
import yaml
from fabops import inventory, monitor
port = int(sys.argv[3])
entry = {"connection": "local", "app": {"path": sys.argv[2] + "/app"}, "home": sys.argv[2] + "/home",
         "services": [{"name": "bot", "manager": "process", "command": "true", "port": port,
                       "check": {"url": "http://127.0.0.1:%d/health" % port}}]}
host = inventory.loads(yaml.safe_dump({"hosts": {"h": entry}}), "x.yml").hosts["h"]
json.dump({"script": monitor.monitor_script(host, window=0, sample_age=0), "input": monitor.monitor_input(host)},
          sys.stdout)
"""


def tree(rev: str, base: Path) -> str:
    """`rev`'s fabops package, byte-compiled, in a directory of its own."""
    out = base / rev.replace("/", "_")
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "fabops"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(out)], check=True, stdout=subprocess.DEVNULL)
    return str(out)


def rounds(cases: dict, n: int) -> dict:
    """{name: [(wall, CPU, Python's own CPU, its children's CPU)]} of
    `cases` ({name: (argv, stdin, env)}), `n` rounds in rotated order."""
    names, got = list(cases), {name: [] for name in cases}
    for i in range(n):
        for name in names[i % len(names):] + names[:i % len(names)]:
            argv, stdin, env = cases[name]
            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            r = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
            wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
            if r.returncode != 0:
                raise RuntimeError(f"{name} exited {r.returncode}: {r.stderr[-500:]}")
            own = [float(x) for line in r.stderr.splitlines() if line.startswith("USAGE") for x in line.split()[1:]]
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            got[name].append((wall, cpu, *(own or [0.0, 0.0])))
    return got


def table(title: str, got: dict, pair: tuple) -> str:
    ms = lambda values: f"{statistics.median(values) * 1000:.1f} ms"  # noqa: E731
    lines = [f"### {title}", "", "| | wall | CPU | Python's own CPU |", "|---|---:|---:|---:|"]
    for name, runs in got.items():
        own = ms([r[2] for r in runs]) if any(r[2] for r in runs) else ""
        lines.append(f"| {name} | {ms([r[0] for r in runs])} | {ms([r[1] for r in runs])} | {own} |")
    a, b = got[pair[0]], got[pair[1]]
    lines += ["", f"{pair[1]} − {pair[0]}, paired: CPU {ms([y[1] - x[1] for x, y in zip(a, b)])}, "
              f"wall {ms([y[0] - x[0] for x, y in zip(a, b)])}", ""]
    return "\n".join(lines)


def host_script(trees: dict, base: Path, n: int) -> str:
    from tests.harness.sshd import free_port

    port, where = free_port(), base / "host"
    (where / "home" / "services").mkdir(parents=True)
    (where / "app").mkdir()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(1)  # listening
        (where / "home" / "services" / "bot.pid").write_text(f"{server.pid}\n")
        env = dict(os.environ, PATH="/usr/bin:/bin")  # the host's python3
        cases = {}
        for name, path in trees.items():
            made = json.loads(subprocess.run([sys.executable, "-c", SCRIPT, path, str(where), str(port)],
                                             capture_output=True, text=True, check=True).stdout)
            cases[name] = (["/bin/sh", "-c", made["script"]], made["input"], env)
        return table(f"The monitor's host script, {n} rounds", rounds(cases, n), tuple(trees))
    finally:
        server.kill()
        server.wait()


def cron_noop(trees: dict, base: Path, n: int) -> str:
    from bench.pipeline import LEGACY_NOOP, host_venv
    from tests.harness.sandbox import Origin, clone, kill_pidfile, local_inventory
    from tests.harness.sshd import free_port

    home, app = base / "cron" / "home", base / "cron" / "app"
    try:
        fabops = host_venv(base / "cron")
        python = str(Path(fabops).parent / "python")
        clone(Origin(base / "cron"), app)
        port = free_port()
        (app / ".env").write_text(f"DISCORD_TOKEN=x\nPORT={port}\n")
        home.mkdir(parents=True)
        inv = local_inventory(home / "host.yml", app, home, port)
        (base / "legacy.sh").write_text(LEGACY_NOOP)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "FABOPS_FASTPATH")}
        line = ["local-update", "--trigger", "cron", "--splay", "0", "-i", str(inv)]
        subprocess.run([fabops, *line], env=env, check=True, capture_output=True)  # the first deploy
        cases = {"legacy bash (fetch + rev-parse)": (["bash", str(base / "legacy.sh"), str(app)], None, env)}
        cases.update({name: ([python, "-c", RUN, path, *line], None, env) for name, path in trees.items()})
        return table(f"Cron's no-op poll, {n} rounds", rounds(cases, n), tuple(trees))
    finally:
        kill_pidfile(home / "services" / "bot.pid")


def main(argv) -> None:
    if not argv or len(argv) > 2:
        sys.exit("usage: python -m bench trees BEFORE [AFTER]")
    n = int(os.environ.get("BENCH_ROUNDS") or 31)
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-trees-"))
    try:
        revs = [argv[0], argv[1] if len(argv) > 1 else "HEAD"]
        trees = {f"{rev} ({kind})": tree(rev, base) for rev, kind in zip(revs, ("before", "after"))}
        print(f"load average {os.getloadavg()[0]:.1f} at the start\n")
        print(host_script(trees, base, n), flush=True)
        print(cron_noop(trees, base, n))
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        shutil.rmtree(base, ignore_errors=True)
