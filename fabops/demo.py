"""`inv demo`: the whole loop on this machine, narrated, in a throwaway sandbox.

A bare origin holding the sample app, a "host" checkout, and the `local`
host of hosts.yml (the process back end: no sshd, no systemd, no root). It
deploys v1, shows the dashboard, pushes v2 and lets the cron path pick it
up, pushes a crash-on-boot v3 which the gate rolls back, and ends with the
history, the status and the dashboard (the app healthy on v2, v3 held back). Returns the list of steps with
whether each behaved as narrated.
"""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import yaml

from .errors import UsageError
from .shell import program

GIT_ENV = {
    "GIT_AUTHOR_NAME": "fabops demo", "GIT_AUTHOR_EMAIL": "demo@fabops.invalid",
    "GIT_COMMITTER_NAME": "fabops demo", "GIT_COMMITTER_EMAIL": "demo@fabops.invalid",
}


@dataclass
class DemoStep:
    title: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class DemoResult:
    steps: List[DemoStep] = field(default_factory=list)
    seconds: float = 0.0
    sandbox: str = ""
    inventory: str = ""  # the sandbox's own hosts.yml
    port_moved: bool = False  # hosts.yml's port was taken: the app listens elsewhere
    kept: List[tuple] = field(default_factory=list)  # --keep: (service, pid, port) left running

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and bool(self.steps)


def _git(*args: str, cwd: Optional[Path] = None) -> str:
    env = dict(os.environ, **GIT_ENV)
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise UsageError(f"git {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout.strip()


def _free_port(preferred: int) -> int:
    """`preferred` unless something listens there. SO_REUSEADDR as the
    sample app's server sets it: a port an earlier demo served a moment ago
    (TIME_WAIT) is free to it, so the port stays the one hosts.yml names."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def source_root() -> Optional[Path]:
    """The fabops checkout this code runs from, if any (the demo's sample app lives there)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


# Where `inv demo` builds its sandbox by default, next to hosts.yml; the
# `local` host's relative paths point into it.
DEFAULT_DIR = ".fabops-demo"
PATH_KEYS = (("app", "path"), ("home",), ("backup_dir",))  # the entry's paths: moved with the sandbox


def local_entry(raw: dict) -> dict:
    """hosts.yml's `local` host as the inventory reads it: its own keys over
    `defaults` (maps merge, lists replace), so the demo's hosts.yml, which
    has no `defaults`, still holds every value `-H local` gets."""
    from .inventory import deep_merge

    return deep_merge(raw.get("defaults") or {}, (raw.get("hosts") or {}).get("local") or {})


def sandbox_entry(local_entry: dict, inventory_dir: Path, port: int) -> dict:
    """The demo's `local` host: hosts.yml's own entry, so that the demo and
    `inv deploy -H local` (or `inv logs -H local`) afterwards use one host:
    the same watch, timeouts and logs, the same checkout and fabops home.
    Only three things change: each path inside the default sandbox is written
    relative to the sandbox (the demo's hosts.yml lives there, and `--dir`
    moves it), the port, if hosts.yml's was taken, and `user`, the local user. A path the entry does
    not give gets the sandbox's layout; one outside the sandbox is refused,
    since the demo deletes and rebuilds what it points at."""
    import copy

    from .inventory import local_user

    entry = copy.deepcopy(local_entry)
    entry["connection"] = "local"
    # a local host logs in as no one: it runs as whoever runs the demo (Host.runs_as, as `inv hosts` says), so
    # the file says that user, not the `user` hosts.yml's defaults lend an ssh host (#24's trial: `ec2-user`)
    entry["user"] = local_user()
    entry["sandbox"] = True  # whatever hosts.yml says: the demo deletes and rebuilds it
    default = os.path.normpath(inventory_dir / DEFAULT_DIR)

    def in_sandbox(key: str, given) -> str:
        where = os.path.normpath(inventory_dir / os.path.expanduser(str(given)))
        if os.path.commonpath([where, default]) != default:
            raise UsageError(f"hosts.yml: hosts.local.{key}: {given!r} is outside {DEFAULT_DIR}/, "
                             "where the demo builds (and deletes) its sandbox")
        return os.path.relpath(where, default)

    layout = {("app", "path"): "host/app", ("home",): "host/home", ("backup_dir",): "host/backup"}
    for keys in PATH_KEYS:
        parent = entry
        for k in keys[:-1]:
            parent = parent.setdefault(k, {})
        given = parent.get(keys[-1])
        parent[keys[-1]] = layout[keys] if given is None else in_sandbox(".".join(keys), given)
    for key, given in (entry.get("logs") or {}).items():
        entry["logs"][key] = in_sandbox(f"logs.{key}", given)
    services = entry.get("services") or [{}]
    svc = services[0]
    for key, value in (("name", "bot"), ("manager", "process"), ("command", "python3 app.py")):
        svc.setdefault(key, value)
    svc["port"] = port
    svc["check"] = {**(svc.get("check") or {}), "url": f"http://127.0.0.1:{port}/health"}
    entry["services"] = [svc] + services[1:]
    entry.setdefault("deps", [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}])
    return entry


def build_sandbox(base: Path, local_entry: dict, inventory_dir: Optional[Path] = None) -> Path:
    """origin.git + author clone + host checkout + the demo's hosts.yml (the
    `local` entry of `inventory_dir`'s hosts.yml: sandbox_entry); returns
    the inventory path."""
    root = source_root()
    app_src = root / "examples" / "sample-app" if root else None
    if app_src is None or not app_src.is_dir():
        raise UsageError("the demo needs the sample app from a fabops source checkout (examples/sample-app)")
    wanted = int(((local_entry.get("services") or [{}])[0]).get("port") or 3013)
    entry = sandbox_entry(local_entry, inventory_dir or base.parent, _free_port(wanted))  # checked before rmtree
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    origin, author, app = base / "origin.git", base / "author", base / entry["app"]["path"]
    _git("init", "--quiet", "--bare", "--initial-branch", "main", str(origin))
    shutil.copytree(app_src, author, ignore=shutil.ignore_patterns("vendor", ".env", "__pycache__"))
    _git("init", "--quiet", "--initial-branch", "main", cwd=author)
    _git("add", "-A", cwd=author)
    _git("commit", "--quiet", "-m", "v1", cwd=author)
    _git("remote", "add", "origin", str(origin), cwd=author)
    # -u: the README's next step is a plain `git push` in this clone
    _git("push", "--quiet", "-u", "origin", "main", cwd=author)
    _git("clone", "--quiet", str(origin), str(app))
    (app / ".env").write_text(f"DISCORD_TOKEN=demo-token\nPORT={entry['services'][0]['port']}\n")
    inv = base / "hosts.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"local": entry}}, sort_keys=False))
    return inv


def push(base: Path, message: str, files: dict) -> str:
    author = base / "author"
    for rel, content in files.items():
        (author / rel).write_text(content)
    _git("add", "-A", cwd=author)
    _git("commit", "--quiet", "-m", message, cwd=author)
    # -u: the README's next step is a plain `git push` in this clone
    _git("push", "--quiet", "-u", "origin", "main", cwd=author)
    return _git("rev-parse", "HEAD", cwd=author)


def stop_services(c, host) -> None:
    """The process back end's own stop: SIGTERM, wait, SIGKILL if needed."""
    from .remote import managers_for

    manager, _ = managers_for(c, host)
    for svc in reversed(host.services):
        try:
            manager.stop(svc)
        except Exception:  # noqa: BLE001 - best effort at the end of a demo
            pass


def stop_kept(base: Path) -> List[tuple]:
    """Stop the app an earlier `inv demo --keep` left running from `base`,
    before the sandbox (and with it the pidfile, the only record of that
    app) is deleted: otherwise it serves on from a deleted directory and
    holds the port. The process back end's own stop signals the recorded
    pid's process group, and only if that pid is still the process it
    started. Also `inv demo --stop`, which leaves the sandbox as it is.
    Returns (service, pid) for each service stopped, [] when nothing ran; an
    app that will not stop is an error, never left behind."""
    from . import inventory
    from .connection import local_context
    from .errors import FabopsError
    from .remote import managers_for

    need_linux()
    if not (base / "hosts.yml").is_file():
        return []
    try:
        host = inventory.load(str(base / "hosts.yml")).hosts["local"]
        manager, _ = managers_for(local_context(host), host)
        running = [(svc, st) for svc in reversed(host.services)
                   for st in [manager.status([svc])[svc.name]] if st.active and st.pid]
        for svc, _ in running:
            manager.stop(svc)
        left = [svc.name for svc, st in running if manager.status([svc])[svc.name].active]
    except (FabopsError, KeyError) as exc:
        raise UsageError(f"cannot stop the app an earlier `demo --keep` left in {base} ({exc}); "
                         "stop it by the pid in host/home/services/*.pid") from None
    if left:
        raise UsageError(f"the app an earlier `demo --keep` left in {base} did not stop ({', '.join(left)}); "
                         "stop it by the pid in host/home/services/*.pid")
    return [(svc.name, st.pid) for svc, st in running]


def need_linux() -> None:
    if not sys.platform.startswith("linux"):
        raise UsageError(f"the demo needs Linux (/proc, setsid, flock); this is {sys.platform}")


@dataclass
class DemoViews:
    """How the task layer shows what the demo gathers: the library returns
    data and never renders (docs/architecture.md, "Layers")."""

    dashboard: Callable[[dict, object], None]  # (monitor facts, host)
    history: Callable[[str, list], None]  # (host name, history records)
    status: Callable[[str, dict], None]  # (host name, status data)
    # a command a person may run as shown (its argv words, quoted for a
    # shell): printed on its own line(s), never split inside a line (#24)
    command: Callable[[List[str]], None]


def run_demo(base: Path, local_entry: dict, say: Callable[[str], None], views: DemoViews,
             keep: bool = False, inventory_dir: Optional[Path] = None, own: bool = False,
             usual: Optional[str] = None) -> DemoResult:
    """The narrated loop in a fresh sandbox under `base` (an earlier --keep's
    app stopped first); with `keep` the app stays up afterwards. The
    commands its headings name work as printed: with `-i` and the
    sandbox's own inventory when it has one (`own`: --dir) or the port
    moved, else `usual` (the run's own `-i`, None: the usual lookup)."""
    need_linux()
    started = time.monotonic()
    result = DemoResult(sandbox=str(base))
    for name, pid in stop_kept(base):
        say(f"stopped {name} (pid {pid}), kept running by an earlier `demo --keep`")
    demo = _Demo(base, local_entry, say, views, result, inventory_dir)
    demo.flag = str(demo.inv_path) if own or result.port_moved else usual
    try:
        demo.run()
    finally:
        demo.end(keep)
        result.seconds = time.monotonic() - started
    return result


class _Demo:
    """One demo run: the sandbox's `local` host, its steps and their result."""

    def __init__(self, base: Path, local_entry: dict, say: Callable[[str], None], views: DemoViews,
                 result: DemoResult, inventory_dir: Optional[Path]):
        from . import inventory
        from .connection import local_context

        self.base, self.say, self.views, self.result = base, say, views, result
        self.inv_path = build_sandbox(base, local_entry, inventory_dir)
        self.host = inventory.load(str(self.inv_path)).hosts["local"]
        result.inventory = str(self.inv_path)
        wanted = int(((local_entry.get("services") or [{}])[0]).get("port") or 3013)
        result.port_moved = self.host.services[0].port != wanted
        self.c = local_context(self.host)
        self.flag: Optional[str] = None  # the `-i` its commands need (run_demo)

    def command(self, task: str) -> str:
        """`inv TASK [-i INVENTORY] -H local`, as a person can run it after
        the demo (#24's fresh-clone trial: the headings said `-H local`
        alone where the closing lines rightly said `-i …`)."""
        from .shell import join

        return join([program(), task, *(["-i", self.flag] if self.flag else []), "-H", "local"])

    def run(self) -> None:
        if not self.step(f"1. Set up and deploy v1 of the sample app ({self.command('deploy')})",
                         lambda: self.deploy("deployed")):
            return
        self.step(f"2. The dashboard ({self.command('monitor')})", self.dashboard)
        self.step("3. Push v2; the cron path (local-update) picks it up", self.cron_path)
        self.step("4. Push a crash-on-boot v3 and deploy it: the health gate fails, it rolls back", self.bad_commit)
        self.step("5. History, status and the dashboard: healthy on v2, v3 held back", self.wrap_up)

    def step(self, title: str, fn) -> bool:
        self.say(f"\n[bold]▶ {title}[/bold]")
        t = time.monotonic()
        try:
            ok, detail = fn()
        except Exception as exc:  # noqa: BLE001 - a demo step failing is reported, not a traceback
            ok, detail = False, f"{exc.__class__.__name__}: {exc}"
        self.result.steps.append(DemoStep(title, ok, detail, time.monotonic() - t))
        self.say(("  [green]✓[/green] " if ok else "  [red]✗[/red] ") + detail)
        return ok

    def deploy(self, expect: str):
        from .deploy import DeployOptions, deploy_host

        out = deploy_host(self.c, self.host, DeployOptions(actor="demo@" + socket.gethostname()), lambda e: None)
        res = out.result
        return res.get("result") == expect, f"{res.get('result')}: {res.get('message')}"

    def dashboard(self):
        from .monitor import gather

        facts = gather(self.c, self.host)
        self.views.dashboard(facts, self.host)
        return _app_is_green(facts, self.host)

    def cron_path(self):
        push(self.base, "v2", {"VERSION": "2\n"})
        # cron's own line (fabops/cron.py): with --trigger cron the run
        # is recorded as cron's, as narrated; without it, a person's
        # manual local-update (the history said `manual root`)
        argv = ["local-update", "--trigger", "cron", "-i", str(self.inv_path)]
        self.say("  pushed v2 to the origin; now what cron runs every 5 minutes on the host:")
        self.views.command([shlex.quote(word) for word in ["fabops", *argv]])
        r = subprocess.run([sys.executable, "-m", "fabops.cli", *argv], capture_output=True, text=True)
        version = _version(self.host)
        return r.returncode == 0 and version == "2", (r.stdout or r.stderr).strip() + f" (serving version {version})"

    def bad_commit(self):
        push(self.base, "v3 crashes on boot", {"VERSION": "3\n", "BEHAVIOUR": "crash\n"})
        ok, detail = self.deploy("rolled_back")
        version = _version(self.host)
        return ok and version == "2", f"{detail} (still serving version {version})"

    def wrap_up(self):
        from .remote import gather_status, read_remote_history

        self.views.history(self.host.name, read_remote_history(self.c, self.host, 10))
        self.views.status(self.host.name, gather_status(self.c, self.host))
        return self.dashboard()

    def end(self, keep: bool) -> None:
        """Stop the app, or with `keep` note what is left running."""
        from .remote import managers_for

        if not keep:
            stop_services(self.c, self.host)
            return
        manager, _ = managers_for(self.c, self.host)
        self.result.kept = [(svc.name, st.pid, svc.port) for svc in self.host.services
                            for st in [manager.status([svc])[svc.name]] if st.active]


def _app_is_green(facts: dict, host) -> tuple:
    """The step narrates the sample app on the dashboard: it passes when every
    service is up, answers its check and is within its thresholds. Other
    warnings (this machine's disk or memory, a commit held back after a
    rollback) are shown, not judged: the demo must not fail because the
    machine running it is busy or full."""
    th = host.thresholds
    app_ok = all(
        s["active"] and s["port_open"] is not False
        and (s["http_expect"] is None or s["http_status"] == s["http_expect"])
        and (s["cpu"] is None or s["cpu"] < th["cpu"]) and (s["memory"] is None or s["memory"] < th["memory"])
        for s in facts["services"]
    )
    detail = f"monitor status {facts['status']}"
    if app_ok and facts["code"] != 0:
        detail += " (the finding above); the app itself is healthy"
    return app_ok and facts["code"] in (0, 1), detail


def _version(host) -> Optional[str]:
    import json
    import urllib.request

    url = host.services[0].check.url
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=3) as resp:
            return json.loads(resp.read()).get("version")
    except Exception:  # noqa: BLE001
        return None
