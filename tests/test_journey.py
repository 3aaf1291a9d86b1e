"""The user's path as a test tier (docs/architecture.md, "The user's path").

A new user does not run fabops from this checkout. They install a wheel
into a clean venv (runtime dependencies only: no source tree, no setuptools,
no `wheel` package), write a hosts.yml and the one-line tasks.py of the
README into an otherwise empty directory, and run `inv` there against their
host. Then CI runs the `run:` steps of .github/workflows/deploy.yml. This
tier does exactly that against a booted systemd container playing
find-to-do, on two images: Debian bookworm (Python 3.11) and Debian
bullseye (Python 3.9, systemd 247).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TEST_CACHE, check_json_output, require
from tests.harness import container
from tests.harness.sandbox import Origin

pytestmark = pytest.mark.systemd
UNIT = "voice-meeting-discord-bot.service"
APP = "/home/ec2-user/voice-meeting-bot"
TASKS_PY = "from fabops.tasks import ns  # noqa: F401\n"  # the README's one line
LAPTOP_TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"  # the laptop's (and runner's) Python


def _wheelhouse(tag: str) -> Path:
    house = TEST_CACHE / f"wheelhouse-{tag}"
    require(house.is_dir(), f"no wheelhouse in {house}: run .ci/prebuild-wheelhouses (bash .ci/run does)")
    return house


def clean_venv(dest: Path, wheel: Path) -> Path:
    """A venv holding only the wheel and its runtime dependencies, from the
    local wheelhouse (never the network), without setuptools or wheel."""
    subprocess.run([sys.executable, "-m", "venv", str(dest)], check=True)
    pip = [str(dest / "bin/python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["uninstall", "-y", "setuptools", "wheel"], check=True, capture_output=True)
    r = subprocess.run(pip + ["install", "--no-index", "--find-links", str(_wheelhouse(LAPTOP_TAG)), str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    probe = subprocess.run([str(dest / "bin/python"), "-c",
                            "import importlib.util as u; print(u.find_spec('setuptools'), u.find_spec('wheel'))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["None", "None"], probe.stdout
    return dest


@pytest.fixture(scope="module", params=container.SUITES)
def image(request, tmp_path_factory, client_key):
    why = container.usable()
    require(why is None, why or "")
    origin = Origin(tmp_path_factory.mktemp(f"journey-origin-{request.param}"))
    with container.booted(request.param, tmp_path_factory, client_key, {str(origin.bare): "/srv/origin.git"}) as box:
        yield request.param, box, origin


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory, fabops_wheel):
    return clean_venv(tmp_path_factory.mktemp("user") / "venv", fabops_wheel)


class User:
    """A person at a terminal: an empty directory, a venv on PATH, ~/.ssh."""

    def __init__(self, workdir: Path, venv: Path, home: Path):
        self.workdir, self.venv, self.home = workdir, venv, home

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FABOPS_", "PYTHON", "VIRTUAL_ENV", "CI"))}
        env.update(HOME=str(self.home), PATH=f"{self.venv}/bin:/usr/bin:/bin", COLUMNS="100",
                   XDG_CACHE_HOME=str(self.home / ".cache"))
        # the one test-only setting: dependency wheels for the host's Python
        # come from the pre-built wheelhouses, as the tests never reach the network
        env["FABOPS_WHEELHOUSE"] = str(TEST_CACHE)
        env.update(extra)
        return env

    def inv(self, *args, timeout=600, **env) -> subprocess.CompletedProcess:
        r = subprocess.run(["inv", *args], cwd=self.workdir, env=self.env(**env), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        check_json_output(args, r)
        return r


def on_host(user: User, command: str, check: bool = True) -> subprocess.CompletedProcess:
    ssh = user.home / ".ssh"
    return subprocess.run(["ssh", "-F", str(ssh / "config"), "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={ssh / 'known_hosts'}", "find-to-do", command],
                          capture_output=True, text=True, check=check, timeout=120)


def _inventory() -> dict:
    return {"default": "find-to-do", "hosts": {"find-to-do": {
        "user": "ec2-user",
        "app": {"path": APP},
        "services": [{"name": UNIT, "unit": True, "command": "python3 app.py", "port": 3003, "timeout": "60s",
                      "settle": "500ms", "watch": "2s", "check": {"url": "http://127.0.0.1:3003/webhook/meeting-completed",
                                                   "method": "POST", "json": {"test": "health"}}}],
        "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
        "env_file": ".env",
        "logs": {"update": "/var/log/voice-meeting-bot-update.log", "health": "/var/log/voice-meeting-bot-health.log"},
    }}}


@pytest.mark.timeout(1200)  # a whole journey, and a cold rootfs build on a busy machine
def test_the_users_path_from_a_wheel(image, user_venv, fabops_wheel, client_key, tmp_path):
    suite, box, origin = image
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh/config").write_text(f"Host find-to-do\n  HostName {box.address}\n  User ec2-user\n"
                                      f"  IdentityFile {client_key}\n")
    (home / ".ssh/known_hosts").write_text(f"{box.address} {box.host_key}\n")
    work = tmp_path / "ops"
    work.mkdir()
    (work / "hosts.yml").write_text(yaml.safe_dump(_inventory(), sort_keys=False))
    (work / "tasks.py").write_text(TASKS_PY)
    user = User(work, user_venv, home)
    on_host(user, f"git clone --quiet /srv/origin.git {APP} && printf 'DISCORD_TOKEN=x\\nPORT=3003\\n' > {APP}/.env")
    host_python = on_host(user, "python3 -c 'import sys; print(sys.version_info[1])'").stdout.strip()
    assert host_python == {"bookworm": "11", "bullseye": "9"}[suite]

    r = user.inv("setup", "--check")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert "would" in r.stdout and "fabops" in r.stdout, r.stdout
    assert on_host(user, "test -e ~/.fabops", check=False).returncode != 0, "--check changed nothing"

    r = user.inv("setup", "--yes", "--offline")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    marker = json.loads(on_host(user, "cat ~/.fabops/voice-meeting-bot/venv/fabops-install.json").stdout)
    assert marker["python"] == f"3.{host_python}"
    r = user.inv("setup", "--json")
    items = json.loads(r.stdout)["hosts"]["find-to-do"]["items"]
    assert not [i for i in items if i["status"] in ("changed", "would change")], items

    r = user.inv("deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert on_host(user, f"systemctl is-active {UNIT}").stdout.strip() == "active"
    first = on_host(user, f"git -C {APP} rev-parse HEAD").stdout.strip()

    r = user.inv("monitor", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    svc = json.loads(r.stdout)["hosts"]["find-to-do"]["services"][0]
    assert svc["active"] and svc["http_status"] == 200

    r = user.inv("logs", "-n", "20")
    assert r.returncode == 0 and "listening on 3003" in r.stdout, r.stdout + r.stderr
    r = user.inv("health")
    assert r.returncode == 0, r.stdout + r.stderr

    second = origin.good("2")
    r = user.inv("deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert on_host(user, f"git -C {APP} rev-parse HEAD").stdout.strip() == second

    r = user.inv("rollback")
    assert r.returncode == 0, r.stdout + r.stderr
    assert on_host(user, f"git -C {APP} rev-parse HEAD").stdout.strip() == first
    st = json.loads(user.inv("status", "--json").stdout)["hosts"]["find-to-do"]
    assert st["pin"], st
    r = user.inv("unpin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not json.loads(user.inv("status", "--json").stdout)["hosts"]["find-to-do"]["pin"]

    # CI after a push: the deploy workflow's run: steps, as written
    third = origin.good("3")
    run_deploy_workflow(box, client_key, tmp_path / "runner", work, fabops_wheel)
    assert on_host(user, f"git -C {APP} rev-parse HEAD").stdout.strip() == third
    records = [json.loads(x) for x in on_host(user, "cat ~/.fabops/voice-meeting-bot/history.jsonl").stdout.splitlines()]
    shipped = [r for r in records if r.get("to") == third and r["result"] == "deployed"]
    # the host's real cron may converge to the pushed commit first (the CI
    # deploy then waits for it or finds it done): either shipped it, once
    assert len(shipped) == 1, records[-3:]
    assert shipped[0]["actor"].startswith("journey-bot") or shipped[0]["trigger"] == "cron", shipped


def _expand(value: str, secrets: dict) -> str:
    """GitHub's `${{ secrets.NAME }}` expressions (the only ones the workflow uses)."""
    def sub(m):
        expr = m.group(1).strip()
        assert expr.startswith("secrets."), f"the test knows only secrets.*, not {expr!r}"
        return secrets.get(expr[len("secrets."):], "")
    return re.sub(r"\$\{\{(.*?)\}\}", sub, str(value))


def run_deploy_workflow(box, client_key, runner: Path, checkout: Path, wheel: Path) -> None:
    """Run every `run:` step of .github/workflows/deploy.yml as Actions would:
    `bash -e` with the step's env, CI=true and the GITHUB_* variables, in a
    fresh runner home. actions/checkout is the directory holding hosts.yml and
    tasks.py; actions/setup-python is a fresh venv on PATH. The package index
    is replaced by the built wheel and the local wheelhouse."""
    workflow = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())
    job = workflow["jobs"]["deploy"]
    home = runner / "home"
    home.mkdir(parents=True)
    python = runner / "python"
    subprocess.run([sys.executable, "-m", "venv", str(python)], check=True)
    subprocess.run([str(python / "bin/python"), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True,
                   capture_output=True)
    secrets = {
        "DEPLOY_SSH_KEY": Path(client_key).read_text(),
        "DEPLOY_KNOWN_HOSTS": f"{box.address} {box.host_key}",
        "DEPLOY_SSH_CONFIG": f"Host find-to-do\n  HostName {box.address}\n  User ec2-user",
    }
    summary = runner / "step-summary.md"
    base_env = {
        "HOME": str(home), "PATH": f"{python}/bin:/usr/bin:/bin", "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": "journey-bot", "GITHUB_WORKSPACE": str(checkout), "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(runner), "LANG": "C.UTF-8",
        # the index is replaced by the wheel and the local wheelhouse
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(_wheelhouse(LAPTOP_TAG)), "FABOPS_WHEELHOUSE": str(TEST_CACHE),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    base_env.update({k: _expand(v, secrets) for k, v in (job.get("env") or {}).items()})
    assert "FABOPS_PACKAGE" in base_env, "the workflow names what it installs in its job env"
    base_env["FABOPS_PACKAGE"] = str(wheel)  # in place of the git URL or index name
    ran = 0
    for step in job["steps"]:
        if "run" not in step:
            assert step["uses"].split("@")[0] in ("actions/checkout", "actions/setup-python"), step
            continue
        env = dict(base_env)
        env.update({k: _expand(v, secrets) for k, v in (step.get("env") or {}).items()})
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=checkout,
                           env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"step {step.get('name')!r} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        ran += 1
    assert ran >= 3
    # the job summary has the run's row: deployed, or noop when the host's
    # real cron had already shipped the commit (checked by the caller)
    text = summary.read_text()
    assert "| find-to-do | deployed |" in text or "| find-to-do | noop |" in text, text
