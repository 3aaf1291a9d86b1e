"""The #17 refactor (one Target, layers, the pipeline's phases) against the
code before it, side by side in one run: the same commands, on the same
sandbox, interleaved round by round, with the tree before the refactor
(`BEFORE`, exported with `git archive`) and this tree on PYTHONPATH.

Cases: the cron path (a no-op `local-update`, and importing the host-side
pipeline alone), and the agentless reads a person runs (`status`,
`history`, `health` on a healthy service) on a `connection: local` host,
so that the figures are fabops' own cost and not the network's; then, with
root and sshd, `status`, `history` and `monitor` over a loopback sshd
(every command through the Target, over SSH).
Prints Markdown: medians of wall and CPU time, and the ratio after/before
(the median of each round's paired ratio); a case more than 5 % worse
says so. Run: `python -m bench refactor`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from bench.pipeline import measure, med

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.sandbox import Origin, clone, kill_pidfile, local_inventory  # noqa: E402
from tests.harness.sshd import free_port, keygen, start_sshd  # noqa: E402

# The tree to compare against: the last commit before the #17 refactor
# began, or another (BENCH_BEFORE=d6ab3a5 is the last before #23's plans).
BEFORE = os.environ.get("BENCH_BEFORE", "ef476bd")
WORSE = 1.05  # the bound: no figure more than 5 % worse


def export(rev: str, dest: Path) -> Path:
    """The `fabops` package as it was at `rev`, in dest/."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "fabops"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def cases(inv: Path, ssh_inv: Optional[Path]):
    cli = [sys.executable, "-m", "fabops.cli"]
    out = {
        "cron: no-op local-update": cli + ["local-update", "-i", str(inv)],
        "cron: import the pipeline": [sys.executable, "-c", "import fabops.host.pipeline"],
        "status": cli + ["status", "-i", str(inv)],
        "history": cli + ["history", "-i", str(inv)],
        "health": cli + ["health", "-i", str(inv)],
    }
    if ssh_inv is not None:
        out.update({
            "ssh: status": cli + ["status", "-i", str(ssh_inv)],
            "ssh: history": cli + ["history", "-i", str(ssh_inv)],
            "ssh: monitor": cli + ["monitor", "-i", str(ssh_inv)],
        })
    return out


def ssh_host(base: Path, origin: Origin):
    """A loopback sshd with the app cloned (nothing installed: the cases
    are agentless). (sshd, inventory), or (None, None) without root."""
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        return None, None
    import yaml

    key = keygen(base / "id_ed25519")
    host = start_sshd(base / "sshd", key)
    host.trust()
    port = free_port()
    host.ssh(f"rm -rf ~/bench-app && git clone --quiet {origin.bare} ~/bench-app && "
             f"printf 'DISCORD_TOKEN=x\\nPORT={port}\\n' > ~/bench-app/.env")
    svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": port,
           "check": {"url": f"http://127.0.0.1:{port}/health"}}
    inv = base / "ssh-hosts.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"h1": host.inventory_entry(
        app={"path": "~/bench-app"}, home="~/.fabops-bench", services=[svc])}}))
    return host, inv


def bench_refactor(runs: int = 21) -> str:
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-refactor-"))
    home = base / "host" / "home"
    sshd = None
    old_home = os.environ.get("HOME")
    try:
        trees = {"before": export(BEFORE, base / "before"), "after": ROOT}
        origin = Origin(base)
        app = base / "host" / "app"
        clone(origin, app)
        port = free_port()
        (app / ".env").write_text(f"DISCORD_TOKEN=x\nPORT={port}\n")
        inv = local_inventory(base / "hosts.yml", app, home, port)
        laptop = base / "laptop-home"
        (laptop / ".ssh").mkdir(parents=True, mode=0o700)
        os.environ["HOME"] = str(laptop)  # the sshd harness trusts its host key here
        sshd, ssh_inv = ssh_host(base, origin)
        # Both trees byte-compile once (this workplace sets
        # PYTHONDONTWRITEBYTECODE, which would recompile one tree every run).
        envs = {k: dict(os.environ, PYTHONPATH=str(t), COLUMNS="100") for k, t in trees.items()}
        for env in envs.values():
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        all_cases = cases(inv, ssh_inv)
        first = subprocess.run(all_cases["cron: no-op local-update"], env=envs["after"], cwd=base,
                               capture_output=True, text=True)
        if first.returncode != 0:
            return f"### Refactor before/after\n\nthe first deploy failed: {first.stderr.strip()[-300:]}\n"
        got = {name: {"before": [], "after": []} for name in all_cases}
        for name, argv in all_cases.items():  # warm: byte-compile, page cache
            for which in envs:
                measure(argv, env=envs[which], cwd=base)
        for i in range(runs):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")  # neither always goes first
            for name, argv in all_cases.items():
                for which in order:
                    got[name][which].append(measure(argv, env=envs[which], cwd=base))
        lines = [f"### Refactor: {BEFORE} (before) vs this tree (after), median of {runs}, interleaved",
                 "", "| case | wall before | wall after | ratio | CPU before | CPU after | ratio | exit |",
                 "|---|---:|---:|---:|---:|---:|---:|---|"]
        worse = []
        for name, by in got.items():
            wb, wa = med([m[0] for m in by["before"]]), med([m[0] for m in by["after"]])
            cb, ca = med([m[1] for m in by["before"]]), med([m[1] for m in by["after"]])
            codes = sorted({m[3] for m in by["before"]}) + ["/"] + sorted({m[3] for m in by["after"]})
            # the ratio of each round's pair, then their median: a drift of
            # the machine during the run moves both sides of a pair alike
            rw = med([a[0] / b[0] for a, b in zip(by["after"], by["before"])])
            rc = med([a[1] / max(b[1], 1e-6) for a, b in zip(by["after"], by["before"])])
            if rw > WORSE or rc > WORSE:
                worse.append(name)
            lines.append(f"| {name} | {wb * 1000:.0f} ms | {wa * 1000:.0f} ms | {rw:.2f}× | {cb * 1000:.0f} ms | "
                         f"{ca * 1000:.0f} ms | {rc:.2f}× | {' '.join(map(str, codes))} |")
        lines += ["", ("more than 5 % worse: " + ", ".join(worse)) if worse else "no figure more than 5 % worse", ""]
        return "\n".join(lines)
    finally:
        kill_pidfile(home / "services" / "bot.pid")
        if sshd is not None:
            sshd.ssh("rm -rf ~/bench-app ~/.fabops-bench", check=False)
            sshd.stop()
        if old_home is not None:
            os.environ["HOME"] = old_home
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    print(bench_refactor())
