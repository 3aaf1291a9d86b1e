"""The apps the tests deploy: the sample app in a local sandbox (exactly
what cron runs on a host, `connection: local`) and the same app on a test
host behind a real sshd. Both write a hosts.yml and drive the real `fabops`
console script."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import yaml

from tests.conftest import one, run_cli
from tests.harness.sandbox import Origin, clone, git, kill_pidfile, local_inventory
from tests.harness.sshd import free_port


class Sandbox:
    """The sample app checked out under `base`, deployed by `local-update`."""

    def __init__(self, base: Path, **service):
        self.base = base
        self.origin = Origin(base)
        self.app = base / "host" / "app"
        self.home = base / "host" / "home"
        clone(self.origin, self.app)
        self.port = free_port()
        (self.app / ".env").write_text(f"DISCORD_TOKEN=s3cr3t-token-value\nPORT={self.port}\n")
        self.inventory = local_inventory(base / "hosts.yml", self.app, self.home, self.port, **service)

    def update(self, *args, timeout=120, env=None):
        """A run as cron's line makes it (`--trigger cron`), unless `args` name another."""
        trigger = () if "--trigger" in args else ("--trigger", "cron")
        return run_cli("local-update", "-i", str(self.inventory), "--json", *trigger, *args, timeout=timeout, env=env)

    def result(self, *args):
        r = self.update(*args)
        try:
            data = one(r.stdout)
        except ValueError:
            raise AssertionError(f"no JSON: rc={r.returncode} out={r.stdout!r} err={r.stderr!r}")
        return r.returncode, data

    @property
    def state(self) -> dict:
        return json.loads((self.home / "state.json").read_text())

    def history(self):
        path = self.home / "history.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.app)

    def health(self):
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as resp:
            return json.loads(resp.read())

    def pid(self):
        return int((self.home / "services" / "bot.pid").read_text().split()[0])

    def stop(self):
        kill_pidfile(self.home / "services" / "bot.pid")


# fabops' venv as the first deploy of this session installed it on a test
# host (docs/testing.md, "A test host's fabops"): a tar of the venv tree,
# made once, unpacked into later hosts that ask for it.
_VENV_TAR: Optional[Path] = None
VENV = "~/.fabops/app/venv"


def _seed_venv(host) -> None:
    """Unpack the session's installed venv into this host's private home, so
    its first deploy finds fabops "already installed" (the same wheel and
    pins, checked by the marker as on any host) instead of spending most of
    its time in pip. A venv is not relocatable, but every test host's home
    is /root: its paths are the same on every host."""
    if _VENV_TAR is None:
        return
    parent = host.path(VENV).parent
    parent.mkdir(parents=True, exist_ok=True)
    parent.parent.chmod(0o700)
    subprocess.run(["tar", "-xf", str(_VENV_TAR), "-C", str(parent)], check=True)


def _keep_venv(host) -> None:
    """After a deploy that installed fabops: the tar later hosts unpack."""
    global _VENV_TAR
    venv = host.path(VENV)
    if _VENV_TAR is not None or not venv.is_dir():
        return
    out = Path(tempfile.mkdtemp(prefix="fabops-test-venv-")) / "venv.tar"
    subprocess.run(["tar", "-cf", str(out), "-C", str(venv.parent), "venv"], check=True)
    _VENV_TAR = out


def drop_seeded_venv() -> None:
    """The session's end: the tar goes (tests/conftest.py)."""
    global _VENV_TAR
    if _VENV_TAR is not None:
        shutil.rmtree(_VENV_TAR.parent, ignore_errors=True)
        _VENV_TAR = None


class RemoteApp:
    """The sample app on a test host (`h1`), deployed over SSH by `deploy`.
    `seed_venv=True`: a test that is not about fabops' own install starts
    from a host where this fabops is installed already (_seed_venv); the
    install itself is what test_install*, test_setup_ssh, test_journey and
    the unseeded ssh tests cover."""

    def __init__(self, host, base, seed_venv: bool = False, **service):
        self.host = host
        self.seed_venv = seed_venv
        if seed_venv:
            _seed_venv(host)
        self.base = base
        self.origin = Origin(base)
        self.port = free_port()
        host.ssh(f"git clone --quiet {self.origin.bare} ~/app && printf 'DISCORD_TOKEN=s3cr3t-token-value\\nPORT={self.port}\\n' > ~/app/.env")
        # a half-second watch, as the sandbox's (tests/harness/sandbox.py)
        svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": self.port,
               "check": {"url": f"http://127.0.0.1:{self.port}/health"}, "timeout": "20s", "settle": "300ms", "watch": "500ms"}
        svc.update(service)
        entry = host.inventory_entry(app={"path": "~/app"}, services=[svc],
                                     deps=[{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
                                     logs={"update": "/var/log/bot-update.log"})
        self.inventory = base / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"hosts": {"h1": entry}}, sort_keys=False))

    def deploy(self, *args, timeout=180):
        return run_cli("deploy", "-i", str(self.inventory), *args, timeout=timeout)

    def deploy_json(self, *args):
        r = self.deploy("--json", *args)
        if self.seed_venv and r.returncode == 0:
            _keep_venv(self.host)
        try:
            return r.returncode, json.loads(r.stdout)["hosts"]["h1"]
        except (ValueError, KeyError):
            raise AssertionError(f"rc={r.returncode} out={r.stdout!r} err={r.stderr!r}")

    @property
    def state(self):
        return json.loads(self.host.path("~/.fabops/app/state.json").read_text())

    def history(self):
        path = self.host.path("~/.fabops/app/history.jsonl")
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def version(self):
        r = self.host.ssh(f"curl -s http://127.0.0.1:{self.port}/health", check=False)
        return json.loads(r.stdout)["version"] if r.stdout.strip() else None


def process_name(pid) -> str:
    """/proc/PID/comm, or "" once the process is gone."""
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""
