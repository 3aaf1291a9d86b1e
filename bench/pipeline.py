"""Pipeline benchmarks, each against a baseline measured side by side:

1. no-op `fabops local-update` (what cron runs every few minutes) vs the legacy
   bash no-op path (`git fetch` + `rev-parse` compare) on the same local origin:
   wall, CPU and peak RSS;
2. a code-only `fabops deploy` over loopback sshd vs the legacy flow
   (fetch, pull, restart, `sleep 5`, is-active), with fabops' overhead split.

Prints Markdown. Run: `python -m bench pipeline` (deploy part needs root and sshd).
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
sys.path.insert(0, str(ROOT))

from tests.harness.sandbox import Origin, clone, kill_pidfile, local_inventory  # noqa: E402
from tests.harness.sshd import free_port, keygen, start_sshd  # noqa: E402

FABOPS = str(Path(sys.executable).parent / "fabops")

LEGACY_NOOP = """
cd "$1" || exit 1
git fetch origin main --quiet
LOCAL=$(git rev-parse HEAD)
REMOTE=$(git rev-parse origin/main)
[ "$LOCAL" = "$REMOTE" ] && exit 0
exit 1
"""


def measure(argv, env=None, cwd=None):
    """(wall s, cpu s, peak rss KiB, exit code) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def med(values):
    return statistics.median(values)


def host_venv(base: Path) -> str:
    """fabops installed as the host has it: a venv holding the wheel (pip
    byte-compiles at install), not this editable checkout."""
    from fabops.install import local_wheel

    cache = Path(os.environ.get("FABOPS_TEST_CACHE") or os.path.expanduser("~/.cache/fabops-tests"))
    venv = base / "venv"
    py = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    subprocess.run([py, "-m", "venv", str(venv)], check=True)
    tag = "cp%d%d" % tuple(int(x) for x in subprocess.check_output(
        [str(venv / "bin/python"), "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"], text=True).split())
    house = cache / f"wheelhouse-{tag}"
    args = ["--no-index", "--find-links", str(house)] if house.is_dir() else []
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args,
                    local_wheel().path], check=True)
    return str(venv / "bin/fabops")


def bench_noop(runs: int = 15) -> str:
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-"))
    try:
        fabops = host_venv(base)
        origin = Origin(base)
        app, home = base / "host" / "app", base / "host" / "home"
        clone(origin, app)
        port = free_port()
        (app / ".env").write_text(f"DISCORD_TOKEN=x\nPORT={port}\n")
        inv = local_inventory(base / "hosts.yml", app, home, port)
        r = subprocess.run([fabops, "local-update", "-i", str(inv)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        script = base / "legacy-noop.sh"
        script.write_text(LEGACY_NOOP)
        fab, leg = [], []
        for _ in range(runs):  # interleaved, so both see the same machine state
            leg.append(measure(["bash", str(script), str(app)]))
            fab.append(measure([fabops, "local-update", "-i", str(inv)]))
        assert all(m[3] == 0 for m in fab + leg), (fab, leg)
        fw, lw = med([m[0] for m in fab]), med([m[0] for m in leg])
        fc, lc = med([m[1] for m in fab]), med([m[1] for m in leg])
        frss = max(m[2] for m in fab) / 1024
        lines = [
            f"### No-op update, median of {runs} (local origin; fabops from its wheel in a venv, as on a host)",
            "",
            "| | wall | CPU | peak RSS |",
            "|---|---:|---:|---:|",
            f"| legacy bash (fetch + rev-parse) | {lw * 1000:.0f} ms | {lc * 1000:.0f} ms | {max(m[2] for m in leg) / 1024:.1f} MiB |",
            f"| fabops local-update | {fw * 1000:.0f} ms | {fc * 1000:.0f} ms | {frss:.1f} MiB |",
            f"| **fabops overhead** | **+{(fw - lw) * 1000:.0f} ms** (goal ≤ 120) | **+{(fc - lc) * 1000:.0f} ms** (goal ≤ 150) | goal ≤ 30 MiB |",
            f"| ratio fabops / legacy | {fw / lw:.1f}× | {fc / max(lc, 1e-6):.1f}× | |",
            "",
        ]
        kill_pidfile(home / "services" / "bot.pid")
        return "\n".join(lines)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def bench_deploy(runs: int = 3) -> str:
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        return "### Code-only deploy\n\nskipped: needs root and /usr/sbin/sshd\n"
    cache = Path(os.environ.get("FABOPS_TEST_CACHE") or os.path.expanduser("~/.cache/fabops-tests"))
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-"))
    home = base / "laptop-home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    env = dict(os.environ, HOME=str(home), FABOPS_WHEELHOUSE=str(cache), COLUMNS="200")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user's install: byte-compiled
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    key = keygen(base / "id_ed25519")
    host = start_sshd(base / "sshd", key)
    host.trust()
    try:
        import yaml

        origin = Origin(base)
        port = free_port()
        host.ssh(f"git clone --quiet {origin.bare} ~/app && printf 'DISCORD_TOKEN=x\\nPORT={port}\\n' > ~/app/.env")
        svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": port,
               "check": {"url": f"http://127.0.0.1:{port}/health"}, "settle": "300ms",
               "watch": "0s"}  # the legacy flow has no watch either: like for like
        inv = base / "hosts.yml"
        inv.write_text(yaml.safe_dump({"hosts": {"h1": host.inventory_entry(
            app={"path": "~/app"}, services=[svc], deps=[{"when": ["requirements.txt"], "run": "sh install-deps.sh"}])}}))
        r = subprocess.run([FABOPS, "deploy", "-i", str(inv), "--offline"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        pid = f"$(cut -d' ' -f1 ~/.fabops/app/services/bot.pid)"
        legacy = (
            "cd ~/app && git fetch origin main --quiet && git pull --quiet origin main && "
            f"kill {pid} && (setsid sh -c 'exec python3 app.py' >/dev/null 2>&1 </dev/null & echo $! > /tmp/legacy.pid) && "
            "sleep 5 && kill -0 $(cat /tmp/legacy.pid)"
        )
        fab, leg, splits = [], [], []
        version = 1
        for _ in range(runs):
            version += 1
            origin.good(str(version))
            t = time.perf_counter()
            r = subprocess.run([FABOPS, "deploy", "-i", str(inv), "--json"], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            res = json.loads(r.stdout)["h1"]
            assert res["result"] == "deployed", res
            fetch = sum(s["seconds"] for s in res["steps"] if s["name"] == "fetch")
            restart = sum(s["seconds"] for s in res["steps"] if s["name"].startswith("restart"))
            fab.append(wall)
            splits.append((wall, fetch, restart, res["duration"]))
            # the legacy flow on the same host and origin (then hand the app back to fabops)
            version += 1
            origin.good(str(version))
            t = time.perf_counter()
            host.ssh(legacy)
            leg.append(time.perf_counter() - t)
            host.ssh("kill $(cat /tmp/legacy.pid)", check=False)
            subprocess.run([FABOPS, "restart", "-i", str(inv)], env=env, capture_output=True)
        t = time.perf_counter()
        subprocess.run([FABOPS, "--version"], env=env, capture_output=True)
        startup = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([FABOPS, "ping", "-i", str(inv)], env=env, capture_output=True)
        ping = time.perf_counter() - t
        t = time.perf_counter()
        host.ssh("~/.fabops/app/venv/bin/fabops --version")
        host_interp = time.perf_counter() - t
        wall, fetch, restart, pipeline = (med([s[i] for s in splits]) for i in range(4))
        overhead = wall - (fetch + restart)
        lines = [
            f"### Code-only deploy over loopback sshd, median of {runs}",
            "",
            "| | wall |",
            "|---|---:|",
            f"| legacy flow (fetch, pull, restart, `sleep 5`, is-active) | {med(leg):.2f} s |",
            f"| fabops deploy (restart polled to ready + 0.3 s settle) | {wall:.2f} s |",
            f"| **speed-up** | **{med(leg) / wall:.1f}×** (goal ≥ 4×) |",
            "",
            "| fabops split | |",
            "|---|---:|",
            f"| fetch + restart-to-ready (the work) | {(fetch + restart) * 1000:.0f} ms |",
            f"| **tool overhead** = wall − work | **{overhead * 1000:.0f} ms** (goal ≤ 600) |",
            f"| of which: laptop interpreter + imports (`fabops --version`) | {startup * 1000:.0f} ms |",
            f"| of which: `fabops ping` (startup + connect + 1 command) | {ping * 1000:.0f} ms |",
            f"| of which: host interpreter (`venv/bin/fabops --version` via ssh) | {host_interp * 1000:.0f} ms |",
            f"| pipeline on the host, all steps | {pipeline * 1000:.0f} ms |",
            "",
        ]
        return "\n".join(lines)
    finally:
        host.stop()
        if old_home is not None:
            os.environ["HOME"] = old_home
        shutil.rmtree(base, ignore_errors=True)


def main(argv=None) -> None:
    print(bench_noop())
    print(bench_deploy())


if __name__ == "__main__":
    main()
