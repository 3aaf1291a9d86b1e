"""FABOPS_SSH_CONFIG over a real sshd (#30): the deploy workflow's SSH
config under $RUNNER_TEMP names the host, the key and the pinned
known_hosts, and ~/.ssh has none of them. Without the agent and through
it, the same answer; a run naming another config file is another login to
the agent (docs/agent.md)."""
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_inventory
from tests.harness.agent import stop_agent

pytestmark = pytest.mark.ssh


@pytest.fixture
def agent(monkeypatch):
    """The agent on for every `fabops` this test starts (its own
    XDG_RUNTIME_DIR, tests/conftest.py), stopped after, as test_agent.py's."""
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    monkeypatch.setenv("FABOPS_AGENT", "1")
    yield runtime
    stop_agent(runtime)


def log_of(runtime: Path) -> str:
    return (runtime / "fabops" / "agent.log").read_text()


def _no_user_known_hosts() -> None:
    """The runner's ~/.ssh/known_hosts does not know the host (the ssh_host
    fixture pinned it there): only the config's UserKnownHostsFile does."""
    Path(os.path.expanduser("~/.ssh/known_hosts")).write_text("")


def _ci_config(directory: Path, ssh_host) -> Path:
    """What deploy.yml's key step writes: the alias, the key, the pinned
    host key in a known_hosts of its own."""
    directory.mkdir()
    (directory / "known_hosts").write_text(ssh_host.known_hosts_line)
    config = directory / "config"
    config.write_text(f"Host ci-alias\n  HostName {ssh_host.address}\n  Port {ssh_host.port}\n  User {ssh_host.user}\n"
                      f"  IdentityFile {ssh_host.client_key}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {directory / 'known_hosts'}\n")
    return config


def test_the_ci_config_alone_reaches_the_host(ssh_host, tmp_path):
    _no_user_known_hosts()
    config = _ci_config(tmp_path / "ci", ssh_host)
    inv = write_inventory(tmp_path / "hosts.yml", {"h1": {"address": "ci-alias"}})
    env = {"FABOPS_AGENT": "0"}
    r = run_cli("ping", "-i", str(inv), env={**env, "FABOPS_SSH_CONFIG": str(config)})
    assert r.returncode == 0, r.stdout + r.stderr
    without = run_cli("ping", "-i", str(inv), env=env)
    assert without.returncode == 3, "ci-alias means nothing without the config: " + without.stderr
    (tmp_path / "ci/known_hosts").write_text("")
    unpinned = run_cli("ping", "-i", str(inv), env={**env, "FABOPS_SSH_CONFIG": str(config)})
    assert unpinned.returncode == 3 and "unknown host key" in unpinned.stderr, unpinned.stderr
    gone = run_cli("ping", "-i", str(inv), env={**env, "FABOPS_SSH_CONFIG": str(tmp_path / "nothing")})
    assert gone.returncode == 64 and "FABOPS_SSH_CONFIG=" in gone.stderr, gone.stderr


def test_through_the_agent_another_config_is_another_login(agent, ssh_host, tmp_path):
    _no_user_known_hosts()
    one, two = _ci_config(tmp_path / "one", ssh_host), _ci_config(tmp_path / "two", ssh_host)
    inv = write_inventory(tmp_path / "hosts.yml", {"h1": {"address": "ci-alias"}})
    direct = run_cli("ping", "-i", str(inv), env={"FABOPS_AGENT": "0", "FABOPS_SSH_CONFIG": str(one)})
    through = run_cli("ping", "-i", str(inv), env={"FABOPS_SSH_CONFIG": str(one)})
    assert (through.returncode, through.stderr) == (direct.returncode, direct.stderr) == (0, ""), through.stderr
    assert run_cli("ping", "-i", str(inv), env={"FABOPS_SSH_CONFIG": str(one)}).returncode == 0
    assert log_of(agent).count("connected to h1") == 1, log_of(agent)
    assert run_cli("ping", "-i", str(inv), env={"FABOPS_SSH_CONFIG": str(two)}).returncode == 0
    log = log_of(agent)
    assert log.count("connected to h1") == 2 and "another login asks for this host" in log, log


def test_the_workflows_key_step_reaches_a_host_behind_a_proxyjump(tmp_path, client_key, isolated_home):
    """deploy.yml's key step, run as written, with a ProxyJump in
    DEPLOY_SSH_CONFIG: the jump host takes the same key and is checked
    against the same pinned file; without its line there, exit 3 naming it."""
    from tests.conftest import _need_sshd
    from tests.harness.sshd import start_sshd
    from tests.test_deploy_workflow import _step, run_step

    _need_sshd()
    target = start_sshd(tmp_path / "sshd-target", client_key, address="127.0.0.1")
    try:
        jump = start_sshd(tmp_path / "sshd-jump", client_key, address="127.0.0.1",
                          extra_config=[f"PermitOpen {target.address}:{target.port}"])
        try:
            _no_user_known_hosts()
            temp = tmp_path / "runner-temp"
            temp.mkdir()
            secrets = {
                "DEPLOY_SSH_KEY": Path(client_key).read_text(),
                "DEPLOY_KNOWN_HOSTS": target.known_hosts_line + jump.known_hosts_line,
                "DEPLOY_SSH_CONFIG": (f"HostName {target.address}\n  Port {target.port}\n"
                                      f"  User {target.user}\n  ProxyJump {jump.user}@{jump.address}:{jump.port}"),
            }
            r = run_step(_step("SSH key and pinned host key"), tmp_path, RUNNER_TEMP=str(temp), **secrets)
            assert r.returncode == 0, r.stderr
            inv = write_inventory(tmp_path / "hosts.yml", {"find-to-do": {}})
            env = {"FABOPS_AGENT": "0", "FABOPS_SSH_CONFIG": str(temp / "fabops-ssh/config")}
            through = run_cli("ping", "-H", "find-to-do", "-i", str(inv), env=env)
            assert through.returncode == 0, through.stdout + through.stderr
            (temp / "fabops-ssh/known_hosts").write_text(target.known_hosts_line)
            unpinned = run_cli("ping", "-H", "find-to-do", "-i", str(inv), env=env)
            assert unpinned.returncode == 3 and "jump host" in unpinned.stderr, unpinned.stderr
        finally:
            jump.stop()
    finally:
        target.stop()
