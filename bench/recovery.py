"""Bad deploys and code-only deploys on the booted find-to-do container
(real systemd with Restart=on-failure), measured side by side in one run:

1. time from a bad deploy starting to the host serving the previous commit
   again (the `deploy` command returns after the rollback's gate), for a
   crash at boot, a death 3 s after start, and a webhook that answers HTTP
   500 every time; with the number of HTTP checks the gate fired;
2. a code-only deploy end to end: fabops with its watch window, fabops with
   `--no-watch` (it returns at the gate; the host goes on watching), and the
   legacy flow (`git pull`, `sudo systemctl restart`, `sleep 5`,
   `systemctl is-active`) on the same host.

Prints Markdown. Run: `python -m bench recovery` (needs root, systemd-nspawn,
debootstrap and the test wheelhouses: `bash .ci/run` prepares them).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import container  # noqa: E402
from tests.harness.sandbox import Origin  # noqa: E402
from tests.harness.sshd import keygen  # noqa: E402

UNIT = "voice-meeting-discord-bot.service"
WATCH = "10s"
LEGACY = ("set -e; cd ~/voice-meeting-bot; git pull --quiet /srv/origin.git main; "
          f"sudo -n systemctl restart {UNIT}; sleep 5; systemctl is-active --quiet {UNIT}")


class Host:
    def __init__(self, base: Path):
        self.base = base
        self.home = base / "laptop"
        (self.home / ".ssh").mkdir(parents=True, mode=0o700)
        key = keygen(base / "id_ed25519")
        cache = Path(os.environ.get("FABOPS_TEST_CACHE") or os.path.expanduser("~/.cache/fabops-tests"))
        rootfs = base / "rootfs"
        container.prepare(container.cached_rootfs(cache), rootfs, Path(str(key) + ".pub").read_text())
        self.origin = Origin(base / "origin")
        self.box = container.boot(rootfs, {str(self.origin.bare): "/srv/origin.git"}, base)
        try:
            self._first_deploy(key, cache)
        except BaseException:  # the caller gets no Host to stop: stop the container here
            self.box.stop()
            raise

    def _first_deploy(self, key: Path, cache: Path) -> None:
        """The laptop's ssh config, the inventory, setup and a first deploy."""
        import yaml

        ssh = self.home / ".ssh"
        (ssh / "config").write_text(f"Host find-to-do\n  HostName {self.box.address}\n  User ec2-user\n"
                                    f"  IdentityFile {key}\n")
        (ssh / "known_hosts").write_text(f"{self.box.address} {self.box.host_key}\n")
        self.inv = self.base / "hosts.yml"
        self.inv.write_text(yaml.safe_dump({"default": "find-to-do", "hosts": {"find-to-do": {
            "user": "ec2-user", "app": {"path": "/home/ec2-user/voice-meeting-bot"},
            "services": [{"name": UNIT, "unit": True, "command": "python3 app.py", "port": 3003, "timeout": "60s",
                          "settle": "500ms", "watch": WATCH,
                          "check": {"url": "http://127.0.0.1:3003/webhook/meeting-completed", "method": "POST",
                                    "json": {"test": "health"}}}],
            "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
        }}}, sort_keys=False))
        self.env = dict(os.environ, HOME=str(self.home), FABOPS_WHEELHOUSE=str(cache), COLUMNS="200")
        self.ssh("git clone --quiet /srv/origin.git ~/voice-meeting-bot && "
                 "printf 'DISCORD_TOKEN=x\\nPORT=3003\\n' > ~/voice-meeting-bot/.env")
        self.fab("setup", "--yes", "--offline", ok=(0, 1))
        self.fab("deploy", "--offline")

    def ssh(self, command: str) -> str:
        ssh = self.home / ".ssh"
        return subprocess.run(["ssh", "-F", str(ssh / "config"), "-o", "BatchMode=yes", "-o",
                               f"UserKnownHostsFile={ssh / 'known_hosts'}", "find-to-do", command],
                              capture_output=True, text=True, check=True, timeout=300).stdout

    def fab(self, *args, ok=(0,)):
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "fabops.cli", *args, "-i", str(self.inv)], capture_output=True,
                           text=True, env=self.env, cwd=ROOT, timeout=600)
        seconds = time.perf_counter() - start
        if r.returncode not in ok:
            raise RuntimeError(f"fabops {' '.join(args)} exited {r.returncode}: {r.stdout[-800:]} {r.stderr[-800:]}")
        return seconds, r

    def version(self) -> str:
        out = self.ssh("curl -s -X POST http://127.0.0.1:3003/webhook/meeting-completed")
        return json.loads(out)["version"]


def bench(runs: int = 3) -> str:
    if container.usable() is not None:
        return f"### Recovery on the booted host\n\nskipped: {container.usable()}\n"
    container.sweep_stale()
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-recovery-"))
    host = Host(base)
    try:
        n = [1]

        def push(behaviour: str) -> str:
            n[0] += 1
            host.origin.push(f"v{n[0]} {behaviour}", {"VERSION": f"{n[0]}\n", "BEHAVIOUR": behaviour + "\n"})
            return str(n[0])

        rows = []
        for label, behaviour in (("crash at boot", "crash"), ("death 3 s after start", "crash-after 3"),
                                 ("HTTP 500 on every request", "error")):
            times, checks = [], []
            for _ in range(runs):
                good = host.version()
                push(behaviour)
                seconds, r = host.fab("deploy", "--json", ok=(2,))
                res = json.loads(r.stdout)["find-to-do"]
                assert res["result"] == "rolled_back" and host.version() == good, res
                times.append(seconds)
                checks.append(sum(s.get("requests") or 0 for s in res["steps"] if s["name"].startswith("restart")))
                push("ok")
                host.fab("deploy")
            rows.append(f"| {label} | {statistics.median(times):.1f} s | {statistics.median(checks):.0f} |")
        watched, unwatched, legacy = [], [], []
        for _ in range(runs):  # interleaved: the three see the same machine
            push("ok")
            watched.append(host.fab("deploy")[0])
            push("ok")
            unwatched.append(host.fab("deploy", "--no-watch")[0])
            host.fab("deploy")  # let that watch end (the lock) before the legacy run
            push("ok")
            start = time.perf_counter()
            host.ssh(LEGACY)
            legacy.append(time.perf_counter() - start)
            host.fab("deploy")  # fabops adopts what the legacy flow left
        w, u, lg = (statistics.median(x) for x in (watched, unwatched, legacy))
        return "\n".join([
            f"### Bad deploys on the booted host (median of {runs}; watch {WATCH})",
            "",
            "| bad commit | deploy start → previous commit serving again | gate HTTP checks |",
            "|---|---:|---:|",
            *rows,
            "",
            f"### Code-only deploy on the booted host (median of {runs}, side by side)",
            "",
            "| | wall | vs legacy |",
            "|---|---:|---:|",
            f"| legacy: pull, restart, `sleep 5`, is-active | {lg:.2f} s | 1.00× |",
            f"| fabops deploy --no-watch (returns at the gate) | {u:.2f} s | {u / lg:.2f}× |",
            f"| fabops deploy, watch {WATCH} included | {w:.2f} s | {w / lg:.2f}× |",
            "",
        ])
    finally:
        host.box.stop()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    print(bench())


if __name__ == "__main__":
    main()
