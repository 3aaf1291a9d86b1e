"""A bare git origin holding the sample app, a host checkout of it, and
helpers to push new versions (good, crash-on-boot, unhealthy, failing deps).

Used by the pipeline tests (with `connection: local`, i.e. exactly what cron
runs on a host) and, through SSH, by the deploy tests.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Dict, Optional

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP = ROOT / "examples" / "sample-app"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "fabops tests",
    "GIT_AUTHOR_EMAIL": "tests@fabops.invalid",
    "GIT_COMMITTER_NAME": "fabops tests",
    "GIT_COMMITTER_EMAIL": "tests@fabops.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args, cwd=None, check=True) -> str:
    env = dict(os.environ)
    env.update(GIT_ENV)
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {r.stderr}")
    return r.stdout.strip()


class Origin:
    """A bare repo plus a work clone used to author commits."""

    def __init__(self, base: Path, branch: str = "main"):
        self.bare = base / "origin.git"
        self.work = base / "author"
        self.branch = branch
        git("init", "--quiet", "--bare", "--initial-branch", branch, str(self.bare))
        shutil.copytree(SAMPLE_APP, self.work, ignore=shutil.ignore_patterns("vendor", ".env", "__pycache__"))
        git("init", "--quiet", "--initial-branch", branch, cwd=self.work)
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "-m", "v1", cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        git("push", "--quiet", "origin", branch, cwd=self.work)

    @property
    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, message: str, files: Optional[Dict[str, Optional[str]]] = None) -> str:
        """Commit `files` ({path: content or None to delete}) and push; returns the sha."""
        for rel, content in (files or {}).items():
            path = self.work / rel
            if content is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "--quiet", "origin", self.branch, cwd=self.work)
        return self.head

    def good(self, version: str) -> str:
        return self.push(f"v{version}", {"VERSION": version + "\n", "BEHAVIOUR": "ok\n"})

    def crash(self, version: str) -> str:
        return self.push(f"v{version} crashes on boot", {"VERSION": version + "\n", "BEHAVIOUR": "crash\n"})

    def unhealthy(self, version: str) -> str:
        return self.push(f"v{version} unhealthy", {"VERSION": version + "\n", "BEHAVIOUR": "unhealthy\n"})


def clone(origin: Origin, dest: Path) -> None:
    git("clone", "--quiet", "--branch", origin.branch, str(origin.bare), str(dest))


def local_inventory(path: Path, app: Path, home: Path, port: int, timeout: str = "20s", **extra) -> Path:
    host = {
        "connection": "local",
        "sandbox": True,  # as the demo's host: setup and cron keep inside home (extra may say False)
        "app": {"path": str(app)},
        "home": str(home),
        "backup_dir": str(home.parent / "backup"),
        "logs": {"update": str(home.parent / "log" / "update.log")},
        "services": [
            {
                "name": "bot",
                "manager": "process",
                "command": "python3 app.py",
                "port": port,
                "check": {"url": f"http://127.0.0.1:{port}/health"},
                "timeout": timeout,
                "settle": "300ms",
                # the watch runs, briefly: every good deploy of the suite waits it
                # out (hundreds of them), so half a second, not 30 s or 1 s
                "watch": "500ms",
            }
        ],
        "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
    }
    host.update(extra)
    path.write_text(yaml.safe_dump({"hosts": {"local": host}}, sort_keys=False))
    return path


def kill_pidfile(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    for target in (-pid, pid):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
