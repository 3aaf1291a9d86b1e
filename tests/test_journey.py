"""The user's path as a test tier (docs/architecture.md, "The user's path").

A new user does not run fabops from this checkout. They install a wheel
into a clean venv (runtime dependencies only: no source tree, no setuptools,
no `wheel` package), write a hosts.yml and the one-line tasks.py of the
README into an otherwise empty directory, and run `inv` there against their
host. Then CI runs the `run:` steps of .github/workflows/deploy.yml. This
tier does exactly that against a booted systemd container playing
find-to-do, on two images: Debian bookworm (Python 3.11) and Debian
bullseye (Python 3.9, systemd 247).

A new user setting up a first host follows docs/setup-a-host.md: its
commands run here as written, on the bookworm container (the same boot).
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
from tests.harness.sandbox import Origin, git

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


def _installed_from_its_pins(user, minor: str, marker: dict) -> None:
    """The host's venv holds exactly its target's pins (bullseye's 3.9:
    host-cp39-x86_64.txt, markdown-it-py 3), and the marker names the file."""
    from fabops import install
    from tests.test_constraints import parse_pins

    pins = install.pins_for(install.HostPython((3, int(minor)), on_host(user, "uname -m").stdout.strip(), None))
    assert pins and marker["pins"] == pins.sha256, marker
    out = on_host(user, "~/.fabops/voice-meeting-bot/venv/bin/python -m pip list --format=json "
                        "--disable-pip-version-check").stdout
    have = {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(out)}
    want = {name: version for name, (version, _) in parse_pins(Path(pins.path).read_text()).items()}
    assert {name: have.get(name) for name in want} == want


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
    _installed_from_its_pins(user, host_python, marker)
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
    cron_lines_take_the_fast_path(user)

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

    # CI after a push: the deploy workflow's run: steps, as written, with
    # the deploy key as ed25519 (ssh-keygen's default) and as an EC2 RSA key
    # (PEM), each on a runner of its own
    for i, key in enumerate((client_key, rsa_key(tmp_path / "ec2-rsa", box))):
        pushed = origin.good(str(3 + i))
        run_deploy_workflow(box, key, tmp_path / f"runner-{i}", work, fabops_wheel)
        assert on_host(user, f"git -C {APP} rev-parse HEAD").stdout.strip() == pushed
        records = [json.loads(x) for x in
                   on_host(user, "cat ~/.fabops/voice-meeting-bot/history.jsonl").stdout.splitlines()]
        shipped = [r for r in records if r.get("to") == pushed and r["result"] == "deployed"]
        # the host's real cron may converge to the pushed commit first (the CI
        # deploy then waits for it or finds it done): either shipped it, once
        assert len(shipped) == 1, records[-3:]
        assert shipped[0]["actor"].startswith("journey-bot") or shipped[0]["trigger"] == "cron", shipped


def rsa_key(directory: Path, box) -> Path:
    """An RSA key in the PEM form EC2 hands out, authorized for ec2-user."""
    directory.mkdir()
    key = directory / "ec2.pem"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-m", "PEM", "-N", "", "-C", "ec2", "-f", str(key)],
                   check=True)
    assert key.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----"), "not EC2's PEM form"
    pub = Path(f"{key}.pub").read_text().strip()
    box.as_root(f"echo '{pub}' >> /home/ec2-user/.ssh/authorized_keys")
    return key


def cron_lines_take_the_fast_path(user: User) -> None:
    """Cron's local-update and health lines from the crontab setup wrote,
    run as cron runs them (`env -i`, its sh, the host's own Python: 3.9 on
    bullseye) with splay 0, through tests/test_fastpath.py's driver in
    place of the console script: exit 0, nothing in cron.log, and only the
    fast path's allow-list imported (host/fastpath.py)."""
    import shlex

    from tests.test_fastpath import DRIVER, beyond_the_list

    on_host(user, f"cat > /tmp/fabops-driver.py <<'EOF'\n{DRIVER}\nEOF")
    log = "~/.fabops/voice-meeting-bot/cron.log"
    tab = on_host(user, "crontab -l").stdout
    for task, mark in (("local-update", " local-update --trigger cron "), ("health", " health --fix --quiet ")):
        line = next(ln for ln in tab.splitlines() if mark in ln and not ln.startswith("#"))
        command = line.split(" ", 5)[5].replace("--splay 30", "--splay 0")
        assert "/bin/fabops " in command, line
        command = command.replace("/bin/fabops ", f"/bin/python /tmp/fabops-driver.py /tmp/fabops-{task}.json ", 1)
        before = on_host(user, f"cat {log} 2>/dev/null | wc -c").stdout
        r = on_host(user, f"env -i HOME=/home/ec2-user LOGNAME=ec2-user PATH=/usr/bin:/bin sh -c {shlex.quote(command)}",
                    check=False)
        said = on_host(user, f"tail -c +{int(before) + 1} {log} 2>/dev/null", check=False).stdout
        assert (r.returncode, said) == (0, ""), (task, r.returncode, r.stderr, said)
        seen = json.loads(on_host(user, f"cat /tmp/fabops-{task}.json").stdout)
        assert not beyond_the_list(task, set(seen["after"]) - set(seen["before"])), task


def _expand(value: str, secrets: dict, runner_temp: Path) -> str:
    """GitHub's `${{ secrets.NAME }}` and `${{ runner.temp }}` expressions
    (the only ones the workflow's env uses)."""
    def sub(m):
        expr = m.group(1).strip()
        if expr == "runner.temp":
            return str(runner_temp)
        assert expr.startswith("secrets."), f"the test knows only secrets.* and runner.temp, not {expr!r}"
        return secrets.get(expr[len("secrets."):], "")
    return re.sub(r"\$\{\{(.*?)\}\}", sub, str(value))


# GitHub's command for a `run:` step without `shell:` on Linux ({0} is the
# step's script file); `shell: bash` would be `bash --noprofile --norc -eo
# pipefail {0}`, and no step of the workflow names a shell.
DEFAULT_SHELL = ["bash", "-e"]
# what the runner's own ~/.ssh holds (a self-hosted runner's, say): the
# workflow must neither read it nor write it
RUNNERS_SSH = {"config": "Host find-to-do\n  HostName 127.0.0.1\n  Port 9\n",
               "known_hosts": "# the runner's own, left alone\n"}


def run_deploy_workflow(box, key: Path, runner: Path, checkout: Path, wheel: Path) -> None:
    """Run every `run:` step of .github/workflows/deploy.yml's deploy job as
    Actions would (run_workflow_job), on a push to main, its secrets naming
    the booted find-to-do; its job summary has the run's row."""
    path = ROOT / ".github/workflows/deploy.yml"
    workflow = yaml.safe_load(path.read_text())
    job = workflow["jobs"]["deploy"]
    assert workflow["permissions"] == {"contents": "read"} and job["environment"] == "production", workflow
    assert job["if"] == "github.ref == 'refs/heads/main'", job.get("if")
    secrets = {
        "DEPLOY_SSH_KEY": key.read_text(),
        "DEPLOY_KNOWN_HOSTS": f"{box.address} {box.host_key}",
        "DEPLOY_SSH_CONFIG": f"HostName {box.address}\nUser ec2-user",
    }
    summary = run_workflow_job(path, "deploy", secrets, runner, checkout, wheel, "refs/heads/main", "push")
    # the run's row: deployed, or noop when the host's real cron had already
    # shipped the commit (checked by the caller)
    assert "| find-to-do | deployed |" in summary or "| find-to-do | noop |" in summary, summary


def run_workflow_job(path: Path, name: str, secrets: dict, runner: Path, checkout: Path, wheel: Path,
                     ref: str, event: str) -> str:
    """Run every `run:` step of the workflow file `path`'s job `name` as
    Actions would: each step's script file under GitHub's default shell
    (`bash -e`), with the job's and the step's env, CI=true and the GITHUB_*
    variables (GITHUB_REF `ref`, GITHUB_EVENT_NAME `event`), a step after a
    failed one skipped unless it is `if: always()`, in a fresh runner home
    whose ~/.ssh is the runner's own; returns the job summary's text. What
    differs from GitHub, and why (docs/ci.md, "What the test runs"):
    actions/checkout is the directory holding hosts.yml and tasks.py, with
    fabops' constraints/runtime.txt and build.txt copied in as the app's
    repository holds them; actions/setup-python is a venv of the test's
    interpreter on PATH; the package index is the local wheelhouses (the
    hashes are still checked) and FABOPS_PACKAGE is the built wheel (the git
    URL's build: tests/test_deploy_workflow.py). Used for deploy.yml here and
    for examples/workflows/two-stage.yml (tests/test_promote_systemd.py)."""
    text = path.read_text()
    job = yaml.safe_load(text)["jobs"][name]
    home, temp = runner / "home", runner / "temp"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    for file, content in RUNNERS_SSH.items():
        (home / ".ssh" / file).write_text(content)
    temp.mkdir()
    python = runner / "python"
    subprocess.run([sys.executable, "-m", "venv", str(python)], check=True)
    subprocess.run([str(python / "bin/python"), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True,
                   capture_output=True)
    summary = runner / "step-summary.md"
    summary.touch()
    base_env = {
        "HOME": str(home), "PATH": f"{python}/bin:/usr/bin:/bin", "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": "journey-bot", "GITHUB_WORKSPACE": str(checkout), "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_REF": ref, "GITHUB_EVENT_NAME": event, "RUNNER_TEMP": str(temp), "LANG": "C.UTF-8",
        # the index is replaced by the wheel and the local wheelhouse
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": f"{_wheelhouse(LAPTOP_TAG)} {_wheelhouse('build')}",
        "FABOPS_WHEELHOUSE": str(TEST_CACHE),
        "XDG_CACHE_HOME": str(runner / "cache"),
    }
    base_env.update({k: _expand(v, secrets, temp) for k, v in (job.get("env") or {}).items()})
    assert "FABOPS_PACKAGE" in base_env, "the workflow names what it installs in its job env"
    base_env["FABOPS_PACKAGE"] = str(wheel)  # in place of the git URL or index name
    for var, source in (("FABOPS_CONSTRAINTS", "runtime.txt"), ("FABOPS_BUILD_CONSTRAINTS", "build.txt")):
        copy = checkout / base_env[var]  # as the app's repository holds them
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text((ROOT / "constraints" / source).read_text())
    _run_steps(job["steps"], text, base_env, secrets, runner / "scripts", checkout)
    assert not list(temp.iterdir()), f"left in $RUNNER_TEMP: {sorted(p.name for p in temp.iterdir())}"
    assert {p.name: p.read_text() for p in (home / ".ssh").iterdir()} == RUNNERS_SSH, "the runner's ~/.ssh changed"
    return summary.read_text()


def _run_steps(steps: list, text: str, base_env: dict, secrets: dict, scripts: Path, checkout: Path) -> None:
    """A job's steps in order (run_workflow_job): each `uses:` checked to be
    pinned, each `run:` run; the first failure fails the test once the
    `if: always()` steps after it have run."""
    temp = Path(base_env["RUNNER_TEMP"])
    scripts.mkdir()
    failed, ran = None, 0
    for n, step in enumerate(steps):
        if "run" not in step:
            assert re.search(rf"uses: {re.escape(step['uses'])} # v\d+\.\d+\.\d+\n", text), step
            assert re.fullmatch(r"actions/(checkout|setup-python)@[0-9a-f]{40}", step["uses"]), step
            continue
        assert "shell" not in step, "the test runs GitHub's default shell only"
        if failed and step.get("if") != "always()":
            continue
        env = dict(base_env)
        env.update({k: _expand(v, secrets, temp) for k, v in (step.get("env") or {}).items()})
        script = scripts / f"step-{n}.sh"
        script.write_text(step["run"])
        r = subprocess.run(DEFAULT_SHELL + [str(script)], cwd=checkout, env=env, capture_output=True, text=True,
                           timeout=900, stdin=subprocess.DEVNULL)
        if r.returncode != 0 and not failed:
            failed = f"step {step.get('name')!r} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        ran += 1
    assert not failed, failed
    assert ran >= 4


# ---------------------------------------------------------------- docs/setup-a-host.md, as written
#
# Its fenced blocks carry an HTML comment (invisible on GitHub) that says
# where they run: `<!-- journey: on the laptop -->` (bash, in the directory
# holding hosts.yml and tasks.py), `<!-- journey: on the host, as admin -->`
# (over SSH as the setup user) or `<!-- journey: hosts.yml -->` (the file
# itself). Every block is marked, and each line runs as it is written, in
# the doc's order, on the booted bookworm host, each in a shell of its own
# (a line may not lean on an earlier line's `cd`). `web1` is what the doc says
# it is, an ~/.ssh/config alias (HostName and IdentityFile, written here as
# the doc tells the user to); `admin` is the setup user a Debian cloud image
# has (made here as cloud-init would). The one text substitution:
SETUP_DOC = ROOT / "docs" / "setup-a-host.md"
DOC_PLACEHOLDERS = {
    # the container has no network: the app's repository is a bare repo on the host
    "https://github.com/YOUR-ORG/myapp": "/srv/myapp.git",
}
DOC_MARK = re.compile(r"<!-- journey: (?P<where>[^>]*?) -->\n```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
DOC_PLACES = {"on the laptop": "sh", "on the host, as admin": "sh", "hosts.yml": "yaml"}  # where: the block's language
# The doc's example app (its first paragraph): `python3 app.py`, answering
# GET /health on port 8080.
DOC_APP = '''\
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


HTTPServer(("127.0.0.1", 8080), Handler).serve_forever()
'''


def doc_steps(text: str) -> list:
    """(line number, where, text) for each line of every marked block, in
    the doc's order; a block without a mark fails (no untested command)."""
    fences = text.count("\n```") // 2
    marked = list(DOC_MARK.finditer(text))
    assert len(marked) == fences, f"{SETUP_DOC.name}: {fences} fenced blocks, {len(marked)} marked <!-- journey: ... -->"
    steps = []
    for m in marked:
        where = m.group("where")
        assert DOC_PLACES.get(where) == m.group("lang"), \
            f"{SETUP_DOC.name}:{text[:m.start()].count(chr(10)) + 1}: a ```{m.group('lang')} block marked {where!r}"
        first = text[:m.start("body")].count("\n") + 1
        if where == "hosts.yml":
            steps.append((first, where, m.group("body")))
            continue
        for i, line in enumerate(m.group("body").splitlines()):
            if line.strip() and not line.lstrip().startswith("#"):
                steps.append((first + i, where, line))
    return steps


class DocHost:
    """The booted host as the doc's reader has it, and a console on it for
    the test's own checks (its own known_hosts: the user's stays empty until
    the doc's `inv ping --accept-new`)."""

    def __init__(self, box, user: User, console_known_hosts: Path):
        self.box, self.user, self.kh = box, user, console_known_hosts

    def ssh(self, login: str, command: str) -> subprocess.CompletedProcess:
        """A line typed in a shell on the host, logged in as `login`."""
        return subprocess.run(["ssh", "-F", str(self.user.home / ".ssh/config"), "-o", "BatchMode=yes",
                               "-o", f"UserKnownHostsFile={self.kh}", "-l", login, "web1", command],
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)

    def root(self, command: str) -> str:
        """What the host looks like, seen by root (the test's eyes, not a step)."""
        return self.box.as_root(command, check=False).stdout

    def exists(self, path: str) -> bool:
        return self.box.as_root(f"test -e {path}", check=False).returncode == 0

    def crontab(self) -> str:
        return self.root("crontab -u deploy -l 2>/dev/null")


def _prepare_doc_host(box, client_key: Path, tmp_path: Path, venv: Path) -> tuple:
    """A fresh Debian cloud host and a laptop, before the doc's first step.
    The host has `admin` (NOPASSWD: ALL and the client key, as cloud-init
    makes it), the app's repository (the stand-in for GitHub) and, for the
    package index, a local wheelhouse in /etc/pip.conf. The laptop has the
    wheel's venv, ~/.ssh/config for web1, no known_hosts, and an empty
    directory holding tasks.py. Returns the host and the app's commit."""
    pub = Path(str(client_key) + ".pub").read_text().strip()
    box.as_root("useradd -m -s /bin/bash admin && install -d -m 700 -o admin -g admin /home/admin/.ssh"
                f" && echo '{pub}' > /home/admin/.ssh/authorized_keys && chown admin: /home/admin/.ssh/authorized_keys"
                " && echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-admin"
                " && chmod 440 /etc/sudoers.d/90-cloud-init-admin"
                " && git config --system --add safe.directory /srv/myapp.git")  # root's repo, fetched by deploy
    author = tmp_path / "myapp"
    author.mkdir()
    (author / "app.py").write_text(DOC_APP)
    git("init", "--quiet", "--initial-branch", "main", cwd=author)
    git("add", "-A", cwd=author)
    git("commit", "--quiet", "-m", "myapp v1", cwd=author)
    _copy_in(box, author, "/root/myapp")
    box.as_root("git clone --quiet --bare /root/myapp /srv/myapp.git && rm -rf /root/myapp")
    _copy_in(box, _wheelhouse("cp311"), "/srv/wheelhouse")  # bookworm's python3 is 3.11
    box.as_root("printf '[global]\\nno-index = true\\nfind-links = /srv/wheelhouse\\n' > /etc/pip.conf")

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh/config").write_text(f"Host web1\n  HostName {box.address}\n  IdentityFile {client_key}\n")
    console = tmp_path / "console_known_hosts"
    console.write_text(f"{box.address} {box.host_key}\n")
    work = tmp_path / "ops"
    work.mkdir()
    (work / "tasks.py").write_text(TASKS_PY)
    return DocHost(box, User(work, venv, home), console), git("rev-parse", "HEAD", cwd=author)


def _copy_in(box, src: Path, dest: str) -> None:
    """Copy a directory into the container (tar through its mount namespace)."""
    pack = subprocess.Popen(["tar", "-C", str(src), "-cf", "-", "."], stdout=subprocess.PIPE)
    r = subprocess.run(["nsenter", "-t", str(box.init_pid()), "-m", "--", "sh", "-c", 'mkdir -p "$1" && tar -xf - -C "$1"',
                        "sh", dest], stdin=pack.stdout, capture_output=True, text=True, timeout=120)
    pack.stdout.close()
    assert pack.wait() == 0 and r.returncode == 0, f"copying {src} into the host: {r.stderr}"


def _laptop(host: DocHost, command: str) -> subprocess.CompletedProcess:
    """A line typed at the laptop: bash in the directory holding hosts.yml,
    the user's environment (without the journey's test-only wheelhouse: the
    doc's setup has no --offline)."""
    env = host.user.env()
    env.pop("FABOPS_WHEELHOUSE")
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command], cwd=host.user.workdir,
                          env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)


# what setup writes for the doc's hosts.yml (no logs:, so no logrotate file)
UNIT_FILES = ("/etc/systemd/system/myapp.service", "/usr/local/libexec/fabops/myapp", "/etc/sudoers.d/fabops-myapp",
              "/home/deploy/.fabops/myapp", "/home/deploy/.local/bin/bot-status")
CRON_TASKS = ("local-update", "health --fix", "clean", "backup-env")


def _user_made(r, host, head):
    assert host.root("id -un deploy").strip() == "deploy", "no deploy user"


def _cloned(r, host, head):
    assert host.root("runuser -u deploy -- git -C /home/deploy/myapp rev-parse HEAD").strip() == head, \
        "no checkout of the app's commit in /home/deploy/myapp"
    assert host.root("stat -c %U /home/deploy/myapp/app.py").strip() == "deploy", "the checkout is not deploy's"


def _key_trusted(r, host, head):
    known = (host.user.home / ".ssh/known_hosts").read_text()
    assert host.box.host_key.split()[1] in known, f"--accept-new did not record the host key: {known!r}"
    assert host.ssh("deploy", "id -un").stdout.strip() == "deploy", "the key does not log in as deploy"


def _planned(r, host, head):
    assert "would" in r.stdout and "myapp.service" in r.stdout, r.stdout
    assert "no fabops state yet" in r.stdout, r.stdout
    left = [f for f in UNIT_FILES if host.exists(f)]
    assert not left and not host.crontab().strip(), f"--check changed the host: {left}"


def _set_up(r, host, head):
    left = [f for f in UNIT_FILES if not host.exists(f)]
    assert not left, f"setup did not write {left}:\n{r.stdout}"
    assert "2 warnings" in r.stdout and "no fabops state yet" in r.stdout, r.stdout
    assert "backups: no off-host copy" in " ".join(r.stdout.split()), r.stdout
    assert host.root("systemctl is-enabled myapp.service").strip() == "enabled", "myapp.service is not enabled"
    assert "systemd-journal" in host.root("id -Gn deploy"), "setup gives the deploy user the journal"
    assert "local-update --trigger cron" in host.crontab(), host.crontab()
    again = _laptop(host, "inv setup -H web1 --check --json")
    items = json.loads(again.stdout)["hosts"]["web1"]["items"]
    assert not [i for i in items if i["status"] in ("changed", "would change")], f"a second setup would change {items}"


def _deployed(r, host, head):
    assert host.root("systemctl is-active myapp.service").strip() == "active", f"myapp.service is not active:\n{r.stdout}"
    assert host.root("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/health") == "200", \
        "GET /health on port 8080 does not answer 200"
    history = _laptop(host, "inv history -H web1")
    assert history.returncode == 0 and head[:7] in history.stdout, history.stdout + history.stderr


def _monitored(r, host, head):
    assert "myapp" in r.stdout and "200" in r.stdout, r.stdout


def _status(r, host, head):
    assert head[:7] in r.stdout, r.stdout


def _cron_shown(r, host, head):
    tab = host.crontab()
    for task in CRON_TASKS:
        assert task in r.stdout and task in tab, f"{task!r} not in inv cron's output and the crontab:\n{r.stdout}\n{tab}"
    # backup.schedule's line (the output may wrap it after `fabops backup`)
    shown = "/fabops backup\n" in r.stdout or "/fabops backup --splay" in r.stdout
    assert "/fabops backup --splay 30 -i " in tab and shown, f"no backup line:\n{r.stdout}\n{tab}"


def _cron_removed(r, host, head):
    assert "fabops" not in host.crontab(), host.crontab()
    assert host.exists("/home/deploy/.fabops/myapp/crontab.before-fabops"), "no crontab.before-fabops"


def _undone(r, host, head):
    left = [f for f in UNIT_FILES if host.exists(f)] + [
        f for f in host.root("ls /home/deploy/.local/bin 2>/dev/null").split()]
    assert not left, f"left on the host: {left}"
    assert host.root("systemctl is-active myapp.service").strip() != "active", "myapp.service still runs"
    groups = host.root("id -Gn deploy").split()
    assert "systemd-journal" not in groups, f"deploy is still in systemd-journal (setup added it): {groups}"
    assert host.root("runuser -u deploy -- git -C /home/deploy/myapp rev-parse HEAD").strip() == head, \
        "the checkout is the user's, to be left as it is"


# What each line promises (exit codes it may end with, and what it leaves):
# keyed by the line as the doc writes it. A line not listed must exit 0; a
# listed line the doc no longer has fails the test (its promise untested).
DOC_PROMISES = {
    "sudo useradd --create-home deploy": ((0,), _user_made),
    "sudo -u deploy git clone https://github.com/YOUR-ORG/myapp /home/deploy/myapp": ((0,), _cloned),
    "inv ping -H web1 --accept-new": ((0,), _key_trusted),
    "inv setup -H web1 --check": ((1,), _planned),  # two warnings: no state yet, no off-host copy
    "inv setup -H web1 --yes": ((1,), _set_up),
    "inv deploy -H web1": ((0,), _deployed),
    "inv monitor -H web1": ((0,), _monitored),
    "inv status -H web1": ((0,), _status),
    "inv cron -H web1": ((0,), _cron_shown),
    "inv cron -H web1 --remove": ((0,), _cron_removed),
    "sudo -u deploy rm -r /home/deploy/.fabops/myapp": ((0,), _undone),
}


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("image", ["bookworm"], indirect=True)  # the journey's bookworm host, shared
def test_setup_a_host_doc_runs_as_written(image, user_venv, client_key, tmp_path):
    """docs/setup-a-host.md (#24): every command in it, as written, in its
    order, on the booted bookworm host, each one's exit code and what the doc
    says it does checked; a failure names the doc's line."""
    _, box, _ = image
    host, head = _prepare_doc_host(box, client_key, tmp_path, user_venv)
    text = SETUP_DOC.read_text()
    for placeholder in DOC_PLACEHOLDERS:
        assert placeholder in text, f"{placeholder!r} is no longer in {SETUP_DOC.name}: update DOC_PLACEHOLDERS"
    checked = set()
    for line, where, body in doc_steps(text):
        at = f"docs/{SETUP_DOC.name}:{line}"
        if where == "hosts.yml":
            (host.user.workdir / "hosts.yml").write_text(body)
            continue
        command = body
        for placeholder, here in DOC_PLACEHOLDERS.items():
            command = command.replace(placeholder, here)
        r = _laptop(host, command) if where == "on the laptop" else host.ssh(where.split(" as ")[1], command)
        codes, check = DOC_PROMISES.get(body, ((0,), None))
        if r.returncode not in codes:
            pytest.fail(f"{at}: `{body}` ({where}) exited {r.returncode}, not {' or '.join(map(str, codes))}:\n"
                        f"{r.stdout}{r.stderr}", pytrace=False)
        if check:
            broken = None
            try:
                check(r, host, head)
            except AssertionError as exc:
                broken = str(exc)  # failed outside the handler: one message, not a chain
            if broken:
                pytest.fail(f"{at}: `{body}` ({where}) did not do what the doc says: {broken}", pytrace=False)
            checked.add(body)
    assert checked == set(DOC_PROMISES), f"lines no longer in the doc, their promises untested: {set(DOC_PROMISES) - checked}"
