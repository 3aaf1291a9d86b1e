"""The workflows as a team copies them (#30), checked without a host: what
they may do (permissions, environment, branch), what they run (actions
pinned by commit SHA, Dependabot), the deploy key's files under
$RUNNER_TEMP and their removal, and the deploy step's exit codes, each
`run:` script under GitHub's default shell with a stand-in `inv`.
FABOPS_SSH_CONFIG, which the workflow's config reaches fabops by, is
checked here too. tests/test_journey.py runs the same steps against a
booted host."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_journey import DEFAULT_SHELL

WORKFLOWS = ROOT / ".github/workflows"
DEPLOY = WORKFLOWS / "deploy.yml"
EVERY_CODE = (0, 1, 2, 3, 4, 5, 64, 70, 78)


def _job() -> dict:
    return yaml.safe_load(DEPLOY.read_text())["jobs"]["deploy"]


def _step(name: str) -> dict:
    return next(s for s in _job()["steps"] if s.get("name") == name)


def run_step(step: dict, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """One `run:` step as the runner runs it: a script file, `bash -e`."""
    script = tmp_path / f"step-{abs(hash(step['run']))}.sh"
    script.write_text(step["run"])
    base = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    return subprocess.run(DEFAULT_SHELL + [str(script)], env={**base, **env}, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)


@pytest.mark.parametrize("workflow", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_every_action_is_pinned_by_commit_sha_with_its_version(workflow):
    uses = [ln.strip() for ln in (WORKFLOWS / workflow).read_text().splitlines() if re.match(r"\s*-?\s*uses:", ln)]
    assert uses, workflow
    loose = [u for u in uses if not re.fullmatch(r"-?\s*uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", u)]
    assert not loose, f"{workflow}: not pinned by a full commit SHA with a `# vX.Y.Z` comment: {loose}"


def test_dependabot_updates_actions_and_pip_weekly():
    config = yaml.safe_load((ROOT / ".github/dependabot.yml").read_text())
    assert {(u["package-ecosystem"], u["schedule"]["interval"]) for u in config["updates"]} == {
        ("github-actions", "weekly"), ("pip", "weekly")}
    pip = next(u for u in config["updates"] if u["package-ecosystem"] == "pip")
    assert pip["versioning-strategy"] == "increase-if-necessary", "never a raised lower bound the pins satisfy"


def test_deploy_job_has_least_privilege():
    workflow = yaml.safe_load(DEPLOY.read_text())
    job = workflow["jobs"]["deploy"]
    assert workflow["permissions"] == {"contents": "read"}
    assert job["environment"] == "production", "the secrets live in the production environment"
    assert job["if"] == "github.ref == 'refs/heads/main'", "a dispatch from another branch never gets the key"
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    scripts = [s["run"] for s in job["steps"] if "run" in s]
    assert not [s for s in scripts if "~/.ssh" in s or "$HOME" in s], "the job writes nothing in the runner's ~/.ssh"


def test_the_install_is_hash_checked_from_the_constraints_the_tests_use():
    job = _job()
    assert re.fullmatch(r".*@[0-9a-f]{40}", job["env"]["FABOPS_PACKAGE"]), "the example pins a commit SHA"
    install = _step("Install fabops")["run"]
    assert ('--require-hashes --only-binary=:all: --no-deps -r "$FABOPS_CONSTRAINTS" -r "$FABOPS_BUILD_CONSTRAINTS"'
            in install), install
    assert '--no-deps --no-build-isolation "$FABOPS_PACKAGE"' in install, "the build uses the pinned backend only"
    pins = [ln for name in ("runtime.txt", "build.txt")
            for ln in (ROOT / "constraints" / name).read_text().splitlines() if not ln.startswith("#")]
    loose = [ln for ln in pins if not re.fullmatch(
        r"[a-z0-9-]+==[\w.]+( --hash=sha256:[0-9a-f]{64})+(  # requires-python \S+)?", ln)]
    assert pins and not loose, loose
    # the host's own install too: an unpinned host target stops the deploy (docs/ci.md)
    assert job["env"]["FABOPS_REQUIRE_PINNED"] == "1"


def test_a_git_url_is_built_with_the_pinned_backend_only(tmp_path):
    """The Install step as written, FABOPS_PACKAGE a git URL at a commit SHA
    (this checkout's HEAD): the runner's Python has no setuptools, the index
    is only the wheelhouses, so the build can use nothing but the hashed
    setuptools and wheel of constraints/build.txt; pip sets up no build
    environment of its own (without --no-build-isolation it does, here from
    the wheelhouse, on a runner from the index, unpinned and unhashed: this
    test fails then)."""
    from tests.conftest import TEST_CACHE, require

    require(sys.version_info[:2] == (3, 11) and os.uname().machine == "x86_64",
            "runtime.txt's hashes are CPython 3.11's on x86_64")
    houses = [TEST_CACHE / "wheelhouse-cp311", TEST_CACHE / "wheelhouse-build"]
    require(all(h.is_dir() for h in houses), "no wheelhouses: run .ci/prebuild-wheelhouses (bash .ci/run does)")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    venv = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "uninstall", "-q", "-y", "setuptools", "wheel"],
                   check=True, capture_output=True)
    job = _job()
    for var, source in (("FABOPS_CONSTRAINTS", "runtime.txt"), ("FABOPS_BUILD_CONSTRAINTS", "build.txt")):
        (tmp_path / job["env"][var]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / job["env"][var]).write_text((ROOT / "constraints" / source).read_text())
    env = {k: job["env"][k] for k in ("FABOPS_CONSTRAINTS", "FABOPS_BUILD_CONSTRAINTS")}
    r = run_step(_step("Install fabops"), tmp_path, **env, PATH=f"{venv}/bin:{os.environ['PATH']}",
                 # pip reads a git URL with no host part as a path: localhost is this machine to git
                 FABOPS_PACKAGE=f"fabops-ssh @ git+file://localhost{ROOT}@{head.stdout.strip()}", HOME=str(tmp_path),
                 PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=" ".join(map(str, houses)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Installing build dependencies" not in r.stdout, r.stdout
    listed = subprocess.run([str(venv / "bin/python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout.lower().split()
    built = [f"{n}=={v}" for n, v in re.findall(r"^([a-z-]+)==(\S+) ", (ROOT / "constraints/build.txt").read_text(), re.M)]
    assert set(built) <= set(listed) and "fabops-ssh==" in " ".join(listed), listed


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_key_files_live_in_runner_temp_and_are_removed(tmp_path, kind):
    home, temp = tmp_path / "home", tmp_path / "temp"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/config").write_text("the runner's\n")
    temp.mkdir()
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
    env = {"HOME": str(home), "RUNNER_TEMP": str(temp), "DEPLOY_SSH_KEY": key.read_text().replace("\n", "\r\n"),
           "DEPLOY_KNOWN_HOSTS": "10.9.9.9 ssh-ed25519 AAAA",
           "DEPLOY_SSH_CONFIG": "  HostName 10.9.9.9\r\n\n  User ec2-user"}
    r = run_step(_step("SSH key and pinned host key"), tmp_path, **env)
    assert r.returncode == 0, r.stderr
    made = temp / "fabops-ssh"
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in made.iterdir())
    assert (made / "key").read_text().strip() == key.read_text().strip(), "the key as written, a pasted secret's CRs dropped"
    import paramiko

    config = paramiko.SSHConfig.from_path(str(made / "config"))
    entry = config.lookup("find-to-do")
    assert entry["hostname"] == "10.9.9.9" and entry["user"] == "ec2-user"
    assert (made / "config").read_text().splitlines()[:3] == ["Host find-to-do", "  HostName 10.9.9.9", "  User ec2-user"]
    for one in (entry, config.lookup("a-proxyjump-host")):  # a jump host: the same key and pinned file
        assert one["identityfile"] == [str(made / "key")] and one["userknownhostsfile"] == str(made / "known_hosts")
    assert paramiko.PKey.from_path(entry["identityfile"][0]).algorithm_name in ("ED25519", "RSA", "ECDSA")
    assert _step("Deploy")["env"]["FABOPS_SSH_CONFIG"] == "${{ runner.temp }}/fabops-ssh/config"
    cleanup = _step("Remove the key")
    assert cleanup["if"] == "always()"
    (temp / "fabops-deploy.log").write_text("the deploy's log\n")
    assert run_step(cleanup, tmp_path, **env).returncode == 0
    assert not list(temp.iterdir())
    assert [p.name for p in (home / ".ssh").iterdir()] == ["config"]
    assert (home / ".ssh/config").read_text() == "the runner's\n"


@pytest.mark.parametrize("config", [
    "Host find-to-do\n  HostName 10.9.9.9", "HostName 10.9.9.9\nHost=bastion\n  User root", "host\tother",
    "  HostName 10.9.9.9\nMatch host 10.*\n  User root", 'MATCH=all', '"Host" x', "Include ~/.ssh/config"])
def test_key_step_refuses_a_config_with_a_block_of_its_own(tmp_path, config):
    """DEPLOY_SSH_CONFIG holds the options of find-to-do only: a Host, Match
    or Include keyword (any case, with `=` or blanks) would end that block, so
    its options would apply to another host or to all; the step refuses it
    before writing anything, rather than rewriting it."""
    temp = tmp_path / "temp"
    temp.mkdir()
    r = run_step(_step("SSH key and pinned host key"), tmp_path, RUNNER_TEMP=str(temp), DEPLOY_SSH_KEY="k",
                 DEPLOY_KNOWN_HOSTS="10.9.9.9 ssh-ed25519 AAAA", DEPLOY_SSH_CONFIG=config)
    assert r.returncode == 64, r.stdout + r.stderr
    assert r.stdout.startswith("::error title=DEPLOY_SSH_CONFIG::holds a Host, Match or Include line"), r.stdout
    assert not list(temp.iterdir()), "nothing written"


@pytest.mark.parametrize("code", EVERY_CODE)
def test_deploy_step_fails_the_job_on_all_but_0_and_1(tmp_path, code):
    """Exit 1 (deployed, with warnings) keeps the job green and shows each
    warning line as an annotation; every other code but 0 fails the job
    with that code and an error annotation (docs/ci.md, "Exit codes")."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    # `inv history --json` answers as fabops does: {"hosts": {name: [records]}}, oldest first
    history = json.dumps({"hosts": {"find-to-do": [{"result": "deployed", "warnings": [
        "unit files changed in the repo (setup installs them): app.service", "100% of\nuntracked files kept"]}]}})
    (bin_ / "inv").write_text(f"#!/bin/sh\nif [ \"$1\" = history ]; then printf '%s\\n' '{history}'; exit 0; fi\n"
                              f"echo 'find-to-do: deployed abc1234'\necho 'fabops: a line on stderr' >&2\nexit {code}\n")
    (bin_ / "inv").chmod(0o755)
    (bin_ / "python").symlink_to(sys.executable)  # actions/setup-python's
    temp = tmp_path / "temp"
    temp.mkdir()
    r = run_step(_step("Deploy"), tmp_path, RUNNER_TEMP=str(temp), PATH=f"{bin_}:{os.environ['PATH']}")
    assert r.returncode == (0 if code in (0, 1) else code), r.stdout + r.stderr
    assert "find-to-do: deployed abc1234" in r.stdout and "a line on stderr" in r.stdout, "the log has both"
    assert (temp / "fabops-deploy.log").read_text() == "find-to-do: deployed abc1234\nfabops: a line on stderr\n"
    warnings = [ln for ln in r.stdout.splitlines() if ln.startswith("::warning")]
    errors = [ln for ln in r.stdout.splitlines() if ln.startswith("::error")]
    if code == 1:
        assert warnings == [
            "::warning title=fabops deploy find-to-do::unit files changed in the repo (setup installs them): app.service",
            "::warning title=fabops deploy find-to-do::100%25 of%0Auntracked files kept",
            "::warning title=fabops deploy::deployed, with warnings (exit 1): see the log"], warnings
        assert not errors
    elif code == 0:
        assert not warnings and not errors
    else:
        assert errors == [f'::error title=fabops deploy::inv deploy exited {code} (docs/ci.md, "Exit codes")']


def test_every_code_a_job_can_see_is_in_docs_ci():
    text = (ROOT / "docs/ci.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    listed = {int(c) for c in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert set(EVERY_CODE) <= listed, set(EVERY_CODE) - listed


# ---------------------------------------------------------------- FABOPS_SSH_CONFIG

def _ssh_config(tmp_path, monkeypatch, with_env: bool):
    from fabric import Config

    from fabops.connection import fabops_config

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/config").write_text("Host find-to-do\n  HostName 10.1.1.1\n")
    other = tmp_path / "ci-config"
    other.write_text("Host find-to-do\n  HostName 10.2.2.2\n  UserKnownHostsFile ~/ci_known_hosts\n")
    monkeypatch.setenv("HOME", str(home))
    if with_env:
        monkeypatch.setenv("FABOPS_SSH_CONFIG", str(other))
    else:
        monkeypatch.delenv("FABOPS_SSH_CONFIG", raising=False)
    return fabops_config(Config, {}).base_ssh_config.lookup("find-to-do")


def test_fabops_ssh_config_takes_the_place_of_the_users(tmp_path, monkeypatch):
    assert _ssh_config(tmp_path, monkeypatch, False)["hostname"] == "10.1.1.1"
    assert _ssh_config(tmp_path / "2", monkeypatch, True)["hostname"] == "10.2.2.2", "read as `ssh -F FILE`"


def test_fabops_ssh_config_that_is_no_file_is_a_usage_error(tmp_path, monkeypatch):
    from fabric import Config

    from fabops.connection import fabops_config
    from fabops.errors import UsageError

    monkeypatch.setenv("FABOPS_SSH_CONFIG", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="FABOPS_SSH_CONFIG=.*missing: no such file"):
        fabops_config(Config, {})


def test_user_known_hosts_file_is_read_as_well(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fabops.connection import known_hosts_files

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh/known_hosts").write_text("")
    (tmp_path / "ci_known_hosts").write_text("")
    cxn = SimpleNamespace(ssh_config={"userknownhostsfile": "~/ci_known_hosts ~/absent"})
    assert known_hosts_files(cxn, None) == [str(tmp_path / ".ssh/known_hosts"), str(tmp_path / "ci_known_hosts")]
    assert known_hosts_files(SimpleNamespace(ssh_config={}), None) == [str(tmp_path / ".ssh/known_hosts")]


def test_the_agent_treats_another_ssh_config_as_another_login(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fabops.agent.relay import Transports, login_request

    host = SimpleNamespace(name="h", address="10.0.0.1", user="u", port=22, identity_file=None)
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text("Host h\n")
    two.write_text("Host h\n")
    keys = []
    for path in (None, one, two):
        if path:
            monkeypatch.setenv("FABOPS_SSH_CONFIG", str(path))
        else:
            monkeypatch.delenv("FABOPS_SSH_CONFIG", raising=False)
        request = login_request(host, None, False, None)
        assert request["ssh_config"] == (str(path) if path else None)
        keys.append(Transports.key_of(request))
    assert len(set(keys)) == 3, keys
