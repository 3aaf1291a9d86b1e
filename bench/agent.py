"""The agent (#25), side by side in one run: each figure against its
baseline, cold (no agent: `FABOPS_AGENT=0`) and warm (through an agent that
already holds the imports and the transport).

- `fabops monitor`, whole process, against the legacy
  `ssh host 'bash -s' < bench/legacy/monitor-bot.sh` (goal: cold ≤ 1.2×,
  warm ≤ 0.5×), alternated round by round;
- `fabops ping` to 20 hosts, against a cold stock ThreadingGroup running
  the same probe (goal: warm ≤ 0.3×).

The cold monitor is timed twice: through OpenSSH's `ssh` (fabops/openssh.py,
the default) and through paramiko (`FABOPS_OPENSSH=0`).

Run: `python -m bench agent [monitor] [deploy] [ping]` (those parts
alone; all three by default; needs root and sshd). The agent runs in a
runtime directory of its own and is stopped at the end, by its pid.

fabops runs as the README's quick start installs it (editable, in
`.venv`) by default; `BENCH_INSTALL=wheel` installs the checkout's wheel
in a venv of its own first, with its dependencies from the test
wheelhouse, as a laptop's pipx or pip install has it (byte-compiled by
pip, no editable import hook).
"""
from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.monitor import alternated  # noqa: E402  (the one round-by-round timer)
from tests.harness.agent import agent_pid, wait_gone  # noqa: E402
from tests.harness.sandbox import Origin  # noqa: E402
from tests.harness.sshd import free_port, keygen, start_sshd  # noqa: E402

FABOPS = str(Path(sys.executable).parent / "fabops")
DEPS = [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}]  # the sample app's, as bench/monitor.py


def cpu_of(fn, runs):
    """Median CPU seconds (user + system) of the child processes `fn` runs."""
    out = []
    for _ in range(runs):
        before = os.times()
        fn()
        after = os.times()
        out.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    return statistics.median(out)


def main(argv=None, runs: int = 11) -> None:
    """`python -m bench agent [monitor|deploy|ping ...]`: those parts alone (all by default)."""
    parts = list(argv or ("monitor", "deploy", "ping"))
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        print("### agent\n\nskipped: needs root and /usr/sbin/sshd\n")
        return
    cache = Path(os.environ.get("FABOPS_TEST_CACHE") or os.path.expanduser("~/.cache/fabops-tests"))
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-agent-"))
    global FABOPS
    install = "editable (.venv)"
    if os.environ.get("BENCH_INSTALL") == "wheel":  # before HOME moves: the test wheelhouse is under the real one
        FABOPS, install = _wheel_install(base), "the wheel, in a venv of its own"
    home = base / "laptop-home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    runtime = base / "xdg"
    runtime.mkdir(mode=0o700)
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    env = dict(os.environ, COLUMNS="200", XDG_RUNTIME_DIR=str(runtime), FABOPS_WHEELHOUSE=str(cache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install has byte-compiled modules
    cold_env = dict(env, FABOPS_AGENT="0")
    warm_env = dict(env, FABOPS_AGENT="1")
    key = keygen(base / "id_ed25519")
    hosts = []
    try:
        for i in range(20 if "ping" in parts else 2):
            h = start_sshd(base / f"sshd{i}", key, f"127.0.0.{i + 2}")
            h.trust()
            hosts.append(h)
        lines = [f"### The agent (#25): cold and warm, median of {runs}", "",
                 f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
                 f"load {os.getloadavg()[0]:.1f}; fabops installed: {install}", "",
                 "| | wall | ratio | CPU | goal |", "|---|---:|---:|---:|---|"]
        print("\n".join(lines), flush=True)
        rows_of = {"monitor": lambda: monitor_rows(base, hosts[0], key, home, cold_env, warm_env, runs),
                   "deploy": lambda: deploy_rows(base, hosts[1], cold_env, warm_env, max(3, runs // 2)),
                   "ping": lambda: ping_rows(base, hosts, key, cold_env, warm_env, max(3, runs // 2))}
        for part in parts:
            print("\n".join(rows_of[part]()), flush=True)  # each part as it is measured
        print()
    finally:
        pid = agent_pid(runtime)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid)
        for h in hosts:
            h.stop()
        if old_home is not None:
            os.environ["HOME"] = old_home
        shutil.rmtree(base, ignore_errors=True)


def _wheel_install(base: Path) -> str:
    """The checkout's wheel in a venv of its own (tests/test_journey.clean_venv:
    the wheel and its runtime dependencies alone, from the test wheelhouse)."""
    from tests.test_journey import clean_venv

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # pip byte-compiles the install, as on a laptop
    out = base / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    venv = clean_venv(base / "laptop-venv", next(out.glob("fabops_ssh-*.whl")))
    return str(venv / "bin" / "fabops")


def monitor_rows(base, host, key, home, cold_env, warm_env, runs):
    import yaml

    from bench.monitor import record_sample
    from fabops import inventory

    origin = Origin(base)
    port = free_port()
    host.ssh(f"git clone --quiet {origin.bare} ~/app && printf 'DISCORD_TOKEN=x\\nPORT={port}\\n' > ~/app/.env")
    svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": port,
           "check": {"url": f"http://127.0.0.1:{port}/webhook/meeting-completed", "method": "POST",
                     "json": {"test": "health"}}, "settle": "200ms", "watch": "1s"}
    inv = base / "hosts.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"h1": host.inventory_entry(app={"path": "~/app"}, services=[svc],
                                                                         deps=DEPS)}}))
    r = subprocess.run([FABOPS, "deploy", "-i", str(inv), "--offline"], env=cold_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    ssh_base = ["ssh", "-q", "-i", str(key), "-p", str(host.port), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={home}/.ssh/known_hosts", f"root@{host.address}"]
    legacy_script = (ROOT / "bench" / "legacy" / "monitor-bot.sh").read_text()
    ssh = ssh_base + [f"PORT={port} APP=~/app UPDATE_LOG=~/.fabops/app/update.log bash -s"]

    def legacy():
        subprocess.run(ssh, input=legacy_script, capture_output=True, text=True, check=True)

    def monitor(env):
        def run():
            r = subprocess.run([FABOPS, "monitor", "-i", str(inv)], env=env, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
        return run

    # cold: the OpenSSH path (fabops/openssh.py); cold paramiko: the same with FABOPS_OPENSSH=0
    cold, warm, paramiko = monitor(cold_env), monitor(warm_env), monitor(dict(cold_env, FABOPS_OPENSSH="0"))
    record_sample(ssh_base, inventory.load(str(inv)).hosts["h1"])  # young for the whole run
    for fn in (legacy, cold, warm, paramiko):  # caches once; the agent starts here
        fn()
    t_legacy, t_cold, t_warm, t_para = alternated((legacy, cold, warm, paramiko), runs)
    c_legacy, c_cold, c_warm, c_para = (cpu_of(fn, max(3, runs // 2)) for fn in (legacy, cold, warm, paramiko))
    return [
        f"| monitor, legacy: `ssh host bash monitor-bot.sh` | {t_legacy * 1000:.0f} ms | 1.00× | "
        f"{c_legacy * 1000:.0f} ms | baseline |",
        f"| `fabops monitor`, whole process, cold (no agent), through `ssh` | {t_cold * 1000:.0f} ms | "
        f"{t_cold / t_legacy:.2f}× | {c_cold * 1000:.0f} ms | ≤ 1.2× |",
        f"| `fabops monitor`, cold, through paramiko (`FABOPS_OPENSSH=0`) | {t_para * 1000:.0f} ms | "
        f"{t_para / t_legacy:.2f}× | {c_para * 1000:.0f} ms | |",
        f"| `fabops monitor`, whole process, agent warm | {t_warm * 1000:.0f} ms | {t_warm / t_legacy:.2f}× | "
        f"{c_warm * 1000:.0f} ms | ≤ 0.5× |",
    ]


def deploy_rows(base, host, cold_env, warm_env, runs):
    """A code-only deploy to the gate's verdict (`--no-watch`: the host
    watches on, the laptop does not wait) against the legacy flow (fetch,
    pull, restart, `sleep 5`, is-active), each round on the same host and
    origin: cold, legacy, warm, legacy."""
    import json

    import yaml

    origin = Origin(base / "deploy-origin")
    port = free_port()
    host.ssh(f"git clone --quiet {origin.bare} ~/app && printf 'DISCORD_TOKEN=x\\nPORT={port}\\n' > ~/app/.env")
    svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": port,
           "check": {"url": f"http://127.0.0.1:{port}/health"}, "watch": "1s"}  # settle: the default
    inv = base / "deploy.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"h1": host.inventory_entry(app={"path": "~/app"}, services=[svc],
                                                                         deps=DEPS)}}))
    r = subprocess.run([FABOPS, "deploy", "-i", str(inv), "--offline"], env=cold_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    pid = "$(cut -d' ' -f1 ~/.fabops/app/services/bot.pid)"
    legacy_flow = ("cd ~/app && git fetch origin main --quiet && git pull --quiet origin main && "
                   f"kill {pid} && (setsid sh -c 'exec python3 app.py' >/dev/null 2>&1 </dev/null & "
                   "echo $! > /tmp/legacy.pid) && sleep 5 && kill -0 $(cat /tmp/legacy.pid)")
    version = [1]

    def watch_over():
        """Poll until the host's watch after a --no-watch deploy has ended."""
        state = host.path("~/.fabops/app/state.json")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if not json.loads(state.read_text()).get("in_progress"):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("the host's watch did not end")

    def fabops(env):
        def run():
            version[0] += 1
            origin.good(str(version[0]))
            r = subprocess.run([FABOPS, "deploy", "-i", str(inv), "--no-watch"], env=env, capture_output=True,
                               text=True)
            assert r.returncode == 0, r.stdout + r.stderr
        return run

    def legacy():
        watch_over()
        version[0] += 1
        origin.good(str(version[0]))
        t = time.perf_counter()
        host.ssh(legacy_flow)
        took = time.perf_counter() - t
        host.ssh("kill $(cat /tmp/legacy.pid)", check=False)
        subprocess.run([FABOPS, "restart", "-i", str(inv)], env=cold_env, capture_output=True)
        return took

    times = {"cold": [], "warm": [], "legacy": []}
    fabops(warm_env)()  # the agent holds this host's transport from here
    for _ in range(runs):
        for mode, env in (("cold", cold_env), ("warm", warm_env)):
            watch_over()
            t = time.perf_counter()
            fabops(env)()
            times[mode].append(time.perf_counter() - t)
            times["legacy"].append(legacy())
    leg, cold, warm = (statistics.median(times[k]) for k in ("legacy", "cold", "warm"))
    return [
        f"| code-only deploy, legacy: fetch, pull, restart, `sleep 5`, is-active | {leg * 1000:.0f} ms | 1.00× "
        "| | baseline |",
        f"| `fabops deploy --no-watch` to the gate's verdict, cold | {cold * 1000:.0f} ms | {cold / leg:.2f}× "
        f"({leg / cold:.1f}× faster) | | |",
        f"| `fabops deploy --no-watch` to the gate's verdict, agent warm | {warm * 1000:.0f} ms | {warm / leg:.2f}× "
        f"({leg / warm:.1f}× faster) | | ≥ 4× faster |",
    ]


def ping_rows(base, hosts, key, cold_env, warm_env, runs):
    import yaml

    inv = base / "twenty.yml"
    inv.write_text(yaml.safe_dump({"defaults": {"app": {"path": "~/app"}},
                                   "hosts": {f"h{i}": h.inventory_entry() for i, h in enumerate(hosts)}}))
    names = ",".join(f"h{i}" for i in range(len(hosts)))
    probe = "cat /proc/uptime; python3 -V; id -un; uname -srm"  # what fabops ping asks, in one command
    stock = [sys.executable, "-c",
             "import sys; from fabric import ThreadingGroup; "
             "g = ThreadingGroup(*sys.argv[2:], connect_kwargs={'key_filename': sys.argv[1]}); "
             f"g.run({probe!r}, hide=True, in_stream=False); g.close()",
             str(key)] + [f"root@{h.address}:{h.port}" for h in hosts]

    def stock_group():
        subprocess.run(stock, env=cold_env, capture_output=True, check=True)

    def ping(env):
        def run():
            r = subprocess.run([FABOPS, "ping", "-H", names, "-i", str(inv)], env=env, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
        return run

    cold, warm = ping(cold_env), ping(warm_env)
    for fn in (stock_group, cold, warm):
        fn()
    t_stock, t_cold, t_warm = alternated((stock_group, cold, warm), runs)
    return [
        f"| ping 20 hosts, stock ThreadingGroup (cold process) | {t_stock * 1000:.0f} ms | 1.00× | | baseline |",
        f"| `fabops ping` 20 hosts, cold (no agent) | {t_cold * 1000:.0f} ms | {t_cold / t_stock:.2f}× | | |",
        f"| `fabops ping` 20 hosts, agent warm | {t_warm * 1000:.0f} ms | {t_warm / t_stock:.2f}× | | ≤ 0.3× |",
    ]


if __name__ == "__main__":
    main()
