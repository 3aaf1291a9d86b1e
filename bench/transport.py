"""Transport and fan-out benchmarks, every figure next to its baseline from the
same run (docs/architecture.md, "Performance rules"). Needs root (test hosts in private mount
namespaces) and sshd; ansible-core and pyinfra rows appear when the `bench`
extra is installed (`pip install -e '.[bench]'`).

Run: `python -m bench transport`.
"""
from __future__ import annotations

import os
import re
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

from tests.harness.sshd import keygen, start_sshd  # noqa: E402

FABOPS = str(Path(sys.executable).parent / "fabops")


def med(values):
    return statistics.median(values)


def timeit(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return med(out)


def stock_runner():
    """Invoke's stock 10 ms input poll (fabops lowers it in-process)."""
    from invoke.runners import Runner

    Runner.input_sleep = 0.01


def fast_runner():
    from invoke.runners import Runner

    Runner.input_sleep = 0.002


def main(runs: int = 30) -> None:
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        print("### transport\n\nskipped: needs root and /usr/sbin/sshd\n")
        return
    import yaml
    from fabric import Connection, ThreadingGroup

    from fabops import inventory
    from fabops.connection import connect
    from fabops.fanout import run_hosts

    base = Path(tempfile.mkdtemp(prefix="fabops-bench-"))
    home = base / "laptop-home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    env = dict(os.environ, COLUMNS="200")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    key = keygen(base / "id_ed25519")
    hosts = []
    try:
        for i in range(20):
            h = start_sshd(base / f"sshd{i}", key, f"127.0.0.{i + 2}")
            h.trust()
            hosts.append(h)
        inv_path = base / "hosts.yml"
        inv_path.write_text(yaml.safe_dump({
            "defaults": {"app": {"path": "~/app"}},
            "hosts": {f"h{i}": h.inventory_entry() for i, h in enumerate(hosts)},
            "groups": {"one": ["h0"], "five": [f"h{i}" for i in range(5)], "twenty": [f"h{i}" for i in range(20)]},
        }))
        inv = inventory.load(str(inv_path))
        h0 = hosts[0]
        lines = ["### Transport and fan-out over loopback sshd", "",
                 f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; medians", ""]

        # 1. per-command latency on an open connection
        fast_runner()
        cx = connect(inv.hosts["h0"], inv)
        cx.run("true", hide=True)
        t_fab = timeit(lambda: cx.run("true", hide=True), runs)
        stock_runner()
        stock = Connection(h0.address, user="root", port=h0.port, connect_kwargs={"key_filename": str(key)})
        stock.run("true", hide=True, in_stream=False)
        t_stock = timeit(lambda: stock.run("true", hide=True, in_stream=False), runs)
        fast_runner()
        import paramiko
        import socket

        raw = paramiko.SSHClient()
        raw.load_system_host_keys()
        raw.connect(h0.address, port=h0.port, username="root", key_filename=str(key))
        raw.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def raw_run():
            _, out, _ = raw.exec_command("true")
            out.channel.recv_exit_status()

        raw_run()
        t_raw = timeit(raw_run, runs)
        ctl = base / "ctl"
        ssh_base = ["ssh", "-q", "-i", str(key), "-p", str(h0.port), "-o", "BatchMode=yes",
                    "-o", f"UserKnownHostsFile={home}/.ssh/known_hosts", "-o", f"ControlPath={ctl}"]
        subprocess.run(ssh_base + ["-o", "ControlMaster=yes", "-o", "ControlPersist=60", "-N", "-f", f"root@{h0.address}"],
                       check=True)
        t_cm = timeit(lambda: subprocess.run(ssh_base + [f"root@{h0.address}", "true"], check=True), runs)
        lines += ["| per-command latency, open connection | wall | vs stock Fabric |", "|---|---:|---:|",
                  f"| stock Fabric (`c.run`) | {t_stock * 1000:.1f} ms | 1.00× |",
                  f"| **fabops** (TCP_NODELAY, 2 ms poll) | {t_fab * 1000:.1f} ms | **{t_fab / t_stock:.2f}×** (goal ≤ 0.15×) |",
                  f"| raw paramiko + TCP_NODELAY | {t_raw * 1000:.1f} ms | {t_raw / t_stock:.2f}× |",
                  f"| OpenSSH ControlMaster (`ssh -S … true`, a process per command) | {t_cm * 1000:.1f} ms | {t_cm / t_stock:.2f}× |", ""]

        # 2. connect plus first command (in process, after imports)
        def fab_connect():
            c = connect(inv.hosts["h1"], inv)
            c.run("true", hide=True)
            c.close()

        def stock_connect():
            stock_runner()
            c = Connection(hosts[1].address, user="root", port=hosts[1].port, connect_kwargs={"key_filename": str(key)})
            c.run("true", hide=True, in_stream=False)
            c.close()
            fast_runner()

        t_fc = timeit(fab_connect, 10)
        t_sc = timeit(stock_connect, 10)
        ssh_h1 = ["ssh", "-q", "-i", str(key), "-p", str(hosts[1].port), "-o", "BatchMode=yes",
                  "-o", f"UserKnownHostsFile={home}/.ssh/known_hosts", f"root@{hosts[1].address}", "true"]
        t_ssh = timeit(lambda: subprocess.run(ssh_h1, check=True), 10)
        t_ping = timeit(lambda: subprocess.run([FABOPS, "ping", "-H", "h1", "-i", str(inv_path)], env=env,
                                               capture_output=True, check=True), 5)
        lines += ["| connect + first command | wall | ratio |", "|---|---:|---:|",
                  f"| stock Fabric, in process | {t_sc * 1000:.0f} ms | 1.00× |",
                  f"| **fabops**, in process | {t_fc * 1000:.0f} ms | **{t_fc / t_sc:.2f}×** (goal ≤ 0.5×) |",
                  f"| `ssh host true` (whole OpenSSH process) | {t_ssh * 1000:.0f} ms | |",
                  f"| `fabops ping -H h1` (whole process: imports, connect, probe, table) | {t_ping * 1000:.0f} ms | {t_ping / t_ssh:.2f}× ssh |", ""]

        # 4. fan-out of one command
        lines += ["| fan-out of `uptime` (connect + run, in process) | 1 host | 5 hosts | 20 hosts |", "|---|---:|---:|---:|"]
        rows = {"fabops run_hosts (10 threads)": [], "stock ThreadingGroup": [], "serial loop (fabops connect)": []}
        for n in (1, 5, 20):
            chosen = [inv.hosts[f"h{i}"] for i in range(n)]

            def fab_fan():
                def one(h):
                    c = connect(h, inv)
                    try:
                        return c.run("uptime", hide=True).stdout
                    finally:
                        c.close()

                out = run_hosts(chosen, one, parallel=10)
                assert out.code == 0

            def stock_fan():
                stock_runner()
                g = ThreadingGroup(*[f"root@{hosts[i].address}:{hosts[i].port}" for i in range(n)],
                                   connect_kwargs={"key_filename": str(key)})
                g.run("uptime", hide=True, in_stream=False)
                g.close()
                fast_runner()

            def serial():
                for h in chosen:
                    c = connect(h, inv)
                    c.run("uptime", hide=True)
                    c.close()

            rows["fabops run_hosts (10 threads)"].append(timeit(fab_fan, 3))
            rows["stock ThreadingGroup"].append(timeit(stock_fan, 3))
            rows["serial loop (fabops connect)"].append(timeit(serial, 3))
        whole = [timeit(lambda g=g: subprocess.run([FABOPS, "ping", "-H", g, "-i", str(inv_path)], env=env,
                                                    capture_output=True, check=True), 3)
                 for g in ("one", "five", "twenty")]
        lines.append("| **fabops ping** (whole process, `--parallel 10`) | " + " | ".join(f"{v * 1000:.0f} ms" for v in whole) + " |")
        vals_by = {}
        venv_bin = Path(sys.executable).parent
        ansible = shutil.which("ansible") or (str(venv_bin / "ansible") if (venv_bin / "ansible").exists() else None)
        pyinfra = shutil.which("pyinfra") or (str(venv_bin / "pyinfra") if (venv_bin / "pyinfra").exists() else None)
        for label, vals in rows.items():
            lines.append(f"| {label} | " + " | ".join(f"{v * 1000:.0f} ms" for v in vals) + " |")
        if ansible:
            invf = base / "ansible.ini"
            invf.write_text("[all]\n" + "".join(
                f"h{i} ansible_host={h.address} ansible_port={h.port} ansible_user=root\n" for i, h in enumerate(hosts)))
            aenv = dict(env, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="True",
                        ANSIBLE_PRIVATE_KEY_FILE=str(key), ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3")
            vals = []
            for n in (1, 5, 20):
                pattern = ":".join(f"h{i}" for i in range(n))
                def ansible_run():
                    r = subprocess.run([ansible, pattern, "-i", str(invf), "-f", "20", "-m", "command", "-a", "uptime"],
                                       env=aenv, capture_output=True, text=True)
                    assert r.returncode == 0 and r.stdout.count("CHANGED") == n, r.stdout[-500:] + r.stderr[-500:]

                vals.append(timeit(ansible_run, 2))
            vals_by["ansible"] = vals
            lines.append("| ansible-core ad-hoc (`-f 20`, pipelining; whole process) | " + " | ".join(f"{v * 1000:.0f} ms" for v in vals) + " |")
        else:
            lines.append("| ansible-core | not installed (`pip install -e '.[bench]'`) | | |")
        if pyinfra:
            pinv = base / "pyinfra_inventory.py"
            pinv.write_text("hosts = [\n" + "".join(
                f"    ({h.address!r}, {{'ssh_port': {h.port}, 'ssh_user': 'root', 'ssh_key': {str(key)!r}, "
                f"'ssh_known_hosts_file': {str(home / '.ssh' / 'known_hosts')!r}}}),\n" for h in hosts) + "]\n")
            vals = []
            for n in (1, 5, 20):
                limits = [x for h in hosts[:n] for x in ("--limit", h.address)]

                def pyinfra_run():
                    r = subprocess.run([pyinfra, "-y", "--parallel", "20", *limits, str(pinv), "exec", "--", "uptime"],
                                       env=env, capture_output=True, text=True, cwd=base)
                    out = r.stdout + r.stderr
                    assert r.returncode == 0 and len(re.findall(r"\]\s+Success", out)) == n, out[-500:]

                vals.append(timeit(pyinfra_run, 2))
            vals_by["pyinfra"] = vals
            lines.append("| pyinfra `exec` (`--parallel 20`; whole process) | " + " | ".join(f"{v * 1000:.0f} ms" for v in vals) + " |")
        else:
            lines.append("| pyinfra | not installed (`pip install -e '.[bench]'`) | | |")
        f20, s20 = rows["fabops run_hosts (10 threads)"][2], rows["stock ThreadingGroup"][2]
        extra = []
        if ansible:
            extra.append(f"whole-process fabops / ansible-core at 20 = **{whole[2] / vals_by['ansible'][2]:.2f}×** (goal ≤ 0.1×)")
        if pyinfra:
            extra.append(f"whole-process fabops / pyinfra at 20 = **{whole[2] / vals_by['pyinfra'][2]:.2f}×** (goal ≤ 0.5×)")
        lines += ["", "; ".join(extra)]
        lines += ["", f"fan-out to 20: fabops / ThreadingGroup = **{f20 / s20:.2f}×** (goal ≤ 1.0×); scaling 1 → 5 → 20 hosts: "
                  + " → ".join(f"{v / rows['fabops run_hosts (10 threads)'][0]:.1f}×" for v in rows["fabops run_hosts (10 threads)"]), ""]

        # 6. peak RSS of the whole process
        def rss(group):
            proc = subprocess.Popen([FABOPS, "ping", "-H", group, "-i", str(inv_path)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, _, usage = os.wait4(proc.pid, 0)
            return usage.ru_maxrss / 1024

        lines += ["| peak RSS, `fabops ping` | 1 host | 20 hosts |", "|---|---:|---:|",
                  f"| fabops | {rss('one'):.1f} MiB | {rss('twenty'):.1f} MiB |", ""]
        for c in (cx, stock):
            c.close()
        raw.close()
        subprocess.run(ssh_base + ["-O", "exit", f"root@{h0.address}"], capture_output=True)
        print("\n".join(lines))
    finally:
        for h in hosts:
            h.stop()
        if old_home is not None:
            os.environ["HOME"] = old_home
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
