"""The monitor's host script of two revisions against the legacy script,
each over one already open OpenSSH connection (ControlMaster: no handshake
in any), as docs/benchmarks.md measured a warm monitor's wait (#25).

The host is `python -m bench monitor`'s (a loopback sshd; one process
service with a port, an HTTP check and a cleanup rule, deployed, with a
cron sample); each revision's script is `monitor_script(host, window=0,
sample_age=0)`, generated from a `git archive` of it (bench/trees.py), so
neither waits for a CPU window. Before the rounds, the two scripts' facts
are compared, and each script is run once traced (`PS4` with
`$EPOCHREALTIME`, set inside it) to count the programs it starts. Rounds
go in rotated order; the table gives medians, each row's median ratio to
the legacy script in the same round and the revisions' paired
difference. Run: `python -m bench hostscript BEFORE [AFTER]` (AFTER
defaults to HEAD; BENCH_ROUNDS=N, 31 by default; needs root and sshd).
"""
from __future__ import annotations

import collections
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.monitor import FABOPS, ROOT, record_sample
from bench.trees import tree

# Print one revision's monitor script and its stdin for the bench's host.
SCRIPT = """import json, sys
sys.path.insert(0, sys.argv[1])
from fabops import inventory, monitor
host = inventory.load(sys.argv[2]).hosts["h1"]
json.dump({"script": monitor.monitor_script(host, window=0, sample_age=0), "input": monitor.monitor_input(host)},
          sys.stdout)
"""
# Sections whose text moves between two runs (clocks, counters, the disk's use).
MOVING = {"cpu0", "cpu1", "pstat0", "pstat1", "load", "mem", "rss", "cpuwin", "metrics", "http", "disk"}


def _deploy(host, base: Path, env: dict) -> Path:
    """bench/monitor.py's host: the sample bot deployed, its inventory's path."""
    import yaml
    from tests.harness.sandbox import Origin
    from tests.harness.sshd import free_port

    origin, port = Origin(base), free_port()
    host.ssh(f"git clone --quiet {origin.bare} ~/app && printf 'DISCORD_TOKEN=x\\nPORT={port}\\n' > ~/app/.env")
    svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": port,
           "check": {"url": f"http://127.0.0.1:{port}/webhook/meeting-completed", "method": "POST",
                     "json": {"test": "health"}}, "settle": "200ms", "watch": "1s"}
    inv = base / "hosts.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"h1": host.inventory_entry(
        app={"path": "~/app"}, services=[svc], deps=[{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
        cleanup=[{"path": "/tmp/voice-meeting-bot/temp", "glob": "*.pcm", "older_than": "1d"}])}}))
    r = subprocess.run([FABOPS, "deploy", "-i", str(inv), "--offline"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return inv


def _programs(via: list, script: dict) -> collections.Counter:
    """The programs (not builtins) a traced run of `script` starts."""
    traced = "PS4='+${EPOCHREALTIME} '; set -x\n" + script["script"]
    err = subprocess.run(via + ["bash -c " + shlex.quote(traced)], input=script["input"], capture_output=True,
                         text=True).stderr
    words = [line.split(" ", 2)[1] for line in err.splitlines() if line.startswith("+") and " " in line]
    files = {w for w in set(words)
             if subprocess.run(["bash", "-c", '[ "$(type -t -- "$1")" = file ]', "_", w]).returncode == 0}
    return collections.Counter(w for w in words if w in files)


def _rounds(fns: dict, n: int) -> dict:
    """{name: [wall]} of `fns`, `n` rounds in rotated order."""
    names, got = list(fns), {name: [] for name in fns}
    for i in range(n):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            fns[name]()
            got[name].append(time.perf_counter() - start)
    return got


def _table(got: dict, pair: tuple, n: int) -> str:
    legacy = got["legacy"]
    out = [f"### The monitor's host script over an open connection, {n} rounds", "",
           "| host script | wall | vs legacy, paired |", "|---|---:|---:|"]
    for name, walls in got.items():
        ratio = statistics.median(w / x for w, x in zip(walls, legacy))
        out.append(f"| {name} | {statistics.median(walls) * 1000:.0f} ms | {ratio:.2f}× |")
    diff = statistics.median(y - x for x, y in zip(got[pair[0]], got[pair[1]]))
    return "\n".join(out + ["", f"{pair[1]} − {pair[0]}, paired: {diff * 1000:.1f} ms", ""])


def _measure(via: list, scripts: dict, port: int, n: int) -> None:
    from fabops.probe import split_sections

    legacy_script = (ROOT / "bench" / "legacy" / "monitor-bot.sh").read_text()

    def run(name):
        def one():
            out = subprocess.run(via + [scripts[name]["script"]], input=scripts[name]["input"], capture_output=True,
                                 text=True)
            assert "@@fabops:end" in out.stdout, out.stderr
            return out.stdout
        return one

    fns = {"legacy": lambda: subprocess.run(via + [f"PORT={port} APP=~/app UPDATE_LOG=~/.fabops/app/update.log bash -s"],
                                            input=legacy_script, capture_output=True, text=True, check=True)}
    fns.update({name: run(name) for name in scripts})
    facts = [split_sections(fn()) for name, fn in fns.items() if name != "legacy"]
    differ = sorted(k for k in set(facts[0]) | set(facts[1]) if k not in MOVING and facts[0].get(k) != facts[1].get(k))
    print(f"sections that differ between the two: {differ or 'none'}\n")
    for name, script in scripts.items():
        counted = _programs(via, script)
        print(f"- {name}: {sum(counted.values())} programs ({', '.join(f'{k} {v}' for k, v in counted.most_common())})")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the start\n")
    print(_table(_rounds(fns, n), tuple(scripts), n))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main(argv) -> None:
    if not argv or len(argv) > 2 or os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        sys.exit("usage: python -m bench hostscript BEFORE [AFTER] (as root, with /usr/sbin/sshd)")
    from fabops import inventory
    from tests.harness.sshd import keygen, start_sshd

    n, base = int(os.environ.get("BENCH_ROUNDS") or 31), Path(tempfile.mkdtemp(prefix="fabops-bench-hostscript-"))
    cache = os.environ.get("FABOPS_TEST_CACHE") or os.path.expanduser("~/.cache/fabops-tests")  # before HOME moves
    home = base / "laptop-home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    os.environ["HOME"] = str(home)
    env = dict(os.environ, FABOPS_WHEELHOUSE=cache, COLUMNS="200")
    key = keygen(base / "id_ed25519")
    host, master = start_sshd(base / "sshd", key), None
    host.trust()
    try:
        inv = _deploy(host, base, env)
        port = inventory.load(str(inv)).hosts["h1"].services[0].port
        ssh = ["ssh", "-q", "-i", str(key), "-p", str(host.port), "-o", "BatchMode=yes",
               "-o", f"UserKnownHostsFile={home}/.ssh/known_hosts"]
        dest, sock = f"root@{host.address}", str(base / "control.sock")
        record_sample(ssh + [dest], inventory.load(str(inv)).hosts["h1"])
        master = subprocess.Popen(ssh + ["-M", "-S", sock, "-N", dest])
        for _ in range(100):  # the master is up when `-O check` answers (10 s at most)
            if subprocess.run(ssh + ["-S", sock, "-O", "check", dest], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        revs = [argv[0], argv[1] if len(argv) > 1 else "HEAD"]
        scripts = {f"{rev} ({kind})": json.loads(subprocess.run(
            [sys.executable, "-c", SCRIPT, tree(rev, base), str(inv)], capture_output=True, text=True, check=True).stdout)
            for rev, kind in zip(revs, ("before", "after"))}
        _measure(ssh + ["-S", sock, dest], scripts, port, n)
    finally:
        if master is not None:
            master.terminate()
            master.wait()
        host.stop()
        shutil.rmtree(base, ignore_errors=True)
