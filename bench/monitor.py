"""`inv monitor` against the legacy way and against stock Fabric, side by side.

- legacy: `ssh host 'bash -s' < bench/legacy/monitor-bot.sh` (OpenSSH client);
- stock Fabric: one `c.run` per fact on an open connection;
- fabops: `fabops monitor` as a whole process, one-shot: with a young cron
  sample on the host (CPU since that sample: nothing waits) and without one
  (its own 0.5 s window, `schedule.update: off`), and one `--watch` refresh
  (one exec on a kept-open connection).

The one-shot rows and the legacy script are timed alternately, round by
round, so a busy moment of the machine falls on all of them alike.

Prints Markdown; run `python -m bench monitor` (needs root and sshd).
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.sandbox import Origin  # noqa: E402
from tests.harness.sshd import free_port, keygen, start_sshd  # noqa: E402

FABOPS = str(Path(sys.executable).parent / "fabops")

# The same facts the legacy dashboard shows, one command each (stock Fabric style).
PER_FACT = [
    "pgrep -f 'python3 app.py' | head -n 1",
    "ps -p $(pgrep -f 'python3 app.py' | head -n 1) -o %cpu=,%mem=",
    "ss -tln | grep -q ':{port} ' && echo open || echo closed",
    "curl -s -o /dev/null -w '%{{http_code}}' -X POST -d '{{}}' http://127.0.0.1:{port}/webhook/meeting-completed",
    "grep '^PYTHON_API_URL=' ~/app/.env | cut -d= -f2",
    "du -sh /tmp/voice-meeting-bot/temp 2>/dev/null; true",
    "find /tmp/voice-meeting-bot/temp -name '*.pcm' 2>/dev/null | wc -l",
    "journalctl --disk-usage 2>/dev/null; true",
    "df / | awk 'NR==2 {{print $5}}'",
    "journalctl --since '1 hour ago' 2>/dev/null | grep -ci error; true",
    "tail -n 1 ~/.fabops/app/update.log 2>/dev/null; true",
    "free | awk '/Mem:/ {{print $3/$2}}'",
]


def timed(fn, runs):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def alternated(fns, runs):
    """Medians of `fns`, timed one after another in each of `runs` rounds."""
    times = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, times):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def record_sample(ssh_base, host) -> None:
    """What cron's local-update line does at the end of every run: one
    sample with the services' counters (host/metrics.py), run on the host
    by its own fabops (a no-op update, trigger cron, no splay)."""
    from fabops.deploy import host_yml

    config = f"{host.paths.home}/bench-host.yml"
    subprocess.run(ssh_base + [f"cat > {config} && cd && {host.paths.venv_bin('fabops')} local-update --trigger cron "
                               f"--splay 0 -i {config} >/dev/null"], input=host_yml(host), text=True, check=True)
    last = subprocess.run(ssh_base + [f"tail -n 1 {host.paths.metrics}"], capture_output=True, text=True).stdout
    assert '"svc":{"bot":{"pid"' in last, last


def main(runs: int = 7) -> None:
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        print("### monitor\n\nskipped: needs root and /usr/sbin/sshd\n")
        return
    import yaml

    cache = Path(os.environ.get("FABOPS_TEST_CACHE") or os.path.expanduser("~/.cache/fabops-tests"))
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-"))
    home = base / "laptop-home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    env = dict(os.environ, FABOPS_WHEELHOUSE=str(cache), COLUMNS="200")
    # A user's install has byte-compiled modules; this workplace sets
    # PYTHONDONTWRITEBYTECODE, which would make every run recompile fabops.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    key = keygen(base / "id_ed25519")
    host = start_sshd(base / "sshd", key)
    host.trust()
    try:
        origin = Origin(base)
        port = free_port()
        host.ssh(f"git clone --quiet {origin.bare} ~/app && printf 'DISCORD_TOKEN=x\\nPORT={port}\\n' > ~/app/.env")
        svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": port,
               "check": {"url": f"http://127.0.0.1:{port}/webhook/meeting-completed", "method": "POST", "json": {"test": "health"}},
               "settle": "200ms", "watch": "1s"}
        inv = base / "hosts.yml"
        entry = host.inventory_entry(
            app={"path": "~/app"}, services=[svc], deps=[{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
            cleanup=[{"path": "/tmp/voice-meeting-bot/temp", "glob": "*.pcm", "older_than": "1d"}])
        inv.write_text(yaml.safe_dump({"hosts": {"h1": entry}}))
        # the same host without an update schedule: no sample is young enough
        no_sample = base / "hosts-no-sample.yml"
        no_sample.write_text(yaml.safe_dump({"hosts": {"h1": dict(entry, schedule={"update": "off"})}}))
        r = subprocess.run([FABOPS, "deploy", "-i", str(inv), "--offline"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        legacy_script = (ROOT / "bench" / "legacy" / "monitor-bot.sh").read_text()
        ssh_base = ["ssh", "-q", "-i", str(key), "-p", str(host.port), "-o", "BatchMode=yes",
                    "-o", f"UserKnownHostsFile={home}/.ssh/known_hosts", f"root@{host.address}"]
        ssh = ssh_base + [f"PORT={port} APP=~/app UPDATE_LOG=~/.fabops/app/update.log bash -s"]

        def legacy():
            subprocess.run(ssh, input=legacy_script, capture_output=True, text=True, check=True)

        def one_shot(path):
            def run():
                subprocess.run([FABOPS, "monitor", "-i", str(path)], env=env, capture_output=True, text=True)
            return run

        fabops_sample, fabops_window = one_shot(inv), one_shot(no_sample)

        from fabric import Connection

        stock = Connection(host.address, user="root", port=host.port, connect_kwargs={"key_filename": str(key)})
        stock.open()

        def per_fact():
            for cmd in PER_FACT:
                stock.run(cmd.format(port=port), hide=True, warn=True, in_stream=False)

        from fabops import inventory
        from fabops.connection import connect
        from fabops.monitor import sample

        I = inventory.load(str(inv))
        record_sample(ssh_base, I.hosts["h1"])
        cxn = connect(I.hosts["h1"], I)
        last = [sample(cxn, I.hosts["h1"])[1]]

        def refresh():
            # as `--watch` does after its first refresh: the previous output
            # opens the CPU window, so the script waits for nothing
            last[0] = sample(cxn, I.hosts["h1"], last[0])[1]

        for fn in (legacy, fabops_sample, fabops_window, per_fact, refresh):  # warm caches once
            fn()
        record_sample(ssh_base, I.hosts["h1"])  # young for the whole run (10 min under */5)
        t_legacy, t_sample, t_window = alternated((legacy, fabops_sample, fabops_window), runs)
        t_fact = timed(per_fact, runs)
        t_refresh = timed(refresh, runs)
        stock.close()
        cxn.close()
        print(f"### monitor over loopback sshd, median of {runs}\n")
        print("| | wall | ratio | goal |")
        print("|---|---:|---:|---|")
        print(f"| legacy: `ssh host bash monitor-bot.sh` | {t_legacy * 1000:.0f} ms | 1.00× | baseline |")
        print(f"| stock Fabric, one `c.run` per fact ({len(PER_FACT)} facts, open connection) | {t_fact * 1000:.0f} ms | {t_fact / t_legacy:.2f}× | |")
        print(f"| `fabops monitor`, whole process, young cron sample (CPU since it, no wait) | {t_sample * 1000:.0f} ms | {t_sample / t_legacy:.2f}× | ≤ 1.2× legacy; ≤ 0.2× per-fact: **{t_sample / t_fact:.2f}×** |")
        print(f"| `fabops monitor`, whole process, no young sample (own 0.5 s window) | {t_window * 1000:.0f} ms | {t_window / t_legacy:.2f}× | |")
        print(f"| `fabops monitor --watch` refresh (one exec, open connection) | {t_refresh * 1000:.0f} ms | {t_refresh / t_legacy:.2f}× | ≤ 0.25× legacy |")
        print()
    finally:
        host.stop()
        if old_home is not None:
            os.environ["HOME"] = old_home
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
