"""The agent (fabops/agent/, docs/architecture.md "The agent"): real agent
processes on a real Unix socket; the ssh-tier tests go through a real sshd.

Each test has its own XDG_RUNTIME_DIR (tests/conftest.py), so its own
agent, stopped by its pid at the end (`agent` fixture)."""
import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.harness.agent import agent_pid, stop_agent, wait_gone
from tests.harness.sshd import keygen


@pytest.fixture
def runtime(monkeypatch):
    return Path(os.environ["XDG_RUNTIME_DIR"])


@pytest.fixture
def agent(runtime, monkeypatch):
    """The agent on, for every `fabops` this test starts; stopped after."""
    monkeypatch.setenv("FABOPS_AGENT", "1")
    yield runtime
    stop_agent(runtime)


def log_of(runtime: Path) -> str:
    return (runtime / "fabops" / "agent.log").read_text()


def children_of(pid: int) -> list:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


# ---------------------------------------------------------------- when it is on
@pytest.mark.parametrize("env, argv, why", [
    ({"FABOPS_AGENT": "0"}, ["fabops", "status"], "FABOPS_AGENT=0"),
    ({"CI": "true"}, ["fabops", "status"], "CI"),
    ({}, ["fabops", "status"], "no controlling terminal (cron, CI, a service)"),  # pytest has none
    ({"FABOPS_AGENT": "1", "FABOPS_AGENT_RUN": "1"}, ["fabops", "status"], "inside the agent"),
    ({"FABOPS_AGENT": "1"}, ["fabops", "-H", "x", "local-update"], "`local-update` runs directly"),
    ({"FABOPS_AGENT": "1"}, ["fabops", "agent", "stop"], "`agent` runs directly"),
    ({"FABOPS_AGENT": "1", "CI": "true"}, ["fabops", "-i", "h.yml", "status"], None),
])
def test_off_where_it_should_be(monkeypatch, env, argv, why):
    from fabops.agent.where import why_off

    for var in ("FABOPS_AGENT", "CI", "FABOPS_AGENT_RUN"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert why_off(argv) == why


def test_the_client_imports_nothing_heavy():
    code = ("import sys, fabops.agent.client; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('fabric', 'paramiko', 'invoke', 'rich', 'yaml', 'cryptography')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- the process
def test_first_use_starts_it_private_and_the_same_answer(agent, tmp_path):
    direct = run_cli("hosts", "-i", str(write_local_inventory(tmp_path)), env={"FABOPS_AGENT": "0"})
    assert agent_pid(agent) is None
    through = run_cli("hosts", "-i", str(write_local_inventory(tmp_path)))
    assert (through.returncode, through.stdout, through.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    pid = agent_pid(agent)
    assert pid is not None, "the command did not start an agent"
    d = agent / "fabops"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "agent.sock").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "agent.log").stat().st_mode) == 0o600
    run_cli("hosts", "-i", str(write_local_inventory(tmp_path)))
    assert agent_pid(agent) == pid, "a second command started a second agent"


def write_local_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "local.yml"
    if not path.exists():
        (tmp_path / "app").mkdir(exist_ok=True)
        path.write_text(f"hosts:\n  local:\n    connection: local\n    app: {{path: {tmp_path / 'app'}}}\n"
                        f"    home: {tmp_path / 'home'}\n")
    return path


def test_exit_codes_and_stderr_are_the_runs(agent, tmp_path):
    inv = write_local_inventory(tmp_path)
    for args in (["hosts", "-i", str(inv), "-H", "nosuch"], ["nosuchtask"], ["hosts", "-i", str(tmp_path / "none.yml")]):
        direct = run_cli(*args, env={"FABOPS_AGENT": "0"})
        through = run_cli(*args)
        assert direct.returncode != 0
        assert (through.returncode, through.stdout, through.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert agent_pid(agent) is not None


def test_a_killed_agent_is_replaced(agent, tmp_path):
    inv = write_local_inventory(tmp_path)
    assert run_cli("hosts", "-i", str(inv)).returncode == 0
    old = agent_pid(agent)
    forkers = children_of(old)
    os.kill(old, signal.SIGKILL)
    assert wait_gone(old)
    assert (agent / "fabops" / "agent.sock").exists(), "the test needs the stale socket a killed agent leaves"
    r = run_cli("hosts", "-i", str(inv))
    assert r.returncode == 0, r.stderr
    new = agent_pid(agent)
    assert new not in (None, old)
    for pid in forkers:  # the old forker ended with its listener
        assert wait_gone(pid), f"the killed agent's forker {pid} is still running"


def test_it_ends_after_its_idle_time(agent, tmp_path, monkeypatch):
    monkeypatch.setenv("FABOPS_AGENT_IDLE", "1")
    assert run_cli("hosts", "-i", str(write_local_inventory(tmp_path))).returncode == 0
    pid = agent_pid(agent)
    assert pid is not None
    assert wait_gone(pid, 20), "the agent outlived its idle time"
    assert not (agent / "fabops" / "agent.sock").exists()
    assert "idle: stopping" in log_of(agent)


def test_a_directory_that_is_not_private_is_never_used(agent, tmp_path):
    d = agent / "fabops"
    d.mkdir()
    d.chmod(0o777)  # as if someone else had made it for us
    r = run_cli("hosts", "-i", str(write_local_inventory(tmp_path)), env={"FABOPS_DEBUG": "1"})
    assert r.returncode == 0, r.stderr
    assert "running without the agent" in r.stderr and "not a private directory" in r.stderr
    assert not (d / "agent.sock").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
def test_a_peer_with_another_uid_is_refused(agent, tmp_path):
    assert run_cli("hosts", "-i", str(write_local_inventory(tmp_path))).returncode == 0
    d = agent / "fabops"
    # open the way in, so the agent's own check is what refuses
    d.chmod(0o755)
    (d / "agent.sock").chmod(0o666)
    # in the socket's directory first: a relative path needs no way through
    # the test's private parents
    code = ("import os, socket, sys; sys.path.insert(0, %r); from fabops.agent import wire; os.chdir(%r); "
            "os.setgid(65534); os.setuid(65534); s = socket.socket(socket.AF_UNIX); s.connect('agent.sock'); "
            "\ntry:\n    wire.send(s, {'op': 'status'}); h, _, _ = wire.recv(s)\nexcept OSError:\n    h = None\n"
            "print('answer' if h else 'refused')"
            % (str(ROOT), str(d)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "refused", out.stdout + out.stderr
    assert "refused a connection from uid 65534" in log_of(agent)


def test_agent_task_status_forget_stop(agent, tmp_path):
    r = run_cli("agent", "status")
    assert r.returncode == 0 and "agent: not running" in r.stdout
    assert run_cli("hosts", "-i", str(write_local_inventory(tmp_path))).returncode == 0
    pid = agent_pid(agent)
    r = run_cli("agent", "status")
    assert r.returncode == 0 and f"agent: pid {pid}" in r.stdout and "no open transports" in r.stdout
    r = run_cli("agent", "forget", "-H", "h1")
    assert r.returncode == 0 and "agent: no transport to h1" in r.stdout
    assert run_cli("agent", "forget").returncode == 64
    assert run_cli("agent", "bogus").returncode == 64
    r = run_cli("agent", "stop")
    assert r.returncode == 0 and f"agent: stopped (pid {pid})" in r.stdout
    assert wait_gone(pid)


def test_the_run_gets_the_clients_signals(agent, tmp_path):
    """SIGINT to the client is SIGINT in the run: the same ending (one line,
    130) as a run without the agent."""
    inv = write_local_inventory(tmp_path)
    assert run_cli("hosts", "-i", str(inv)).returncode == 0  # warm
    results = {}
    for mode in ("0", "1"):
        script = tmp_path / "slow.yml"
        # `logs -f` on a local file follows until interrupted
        logfile = tmp_path / "app.log"
        logfile.write_text("first\n")
        script.write_text(inv.read_text() + f"    logs: {{app: {logfile}}}\n")
        proc = subprocess.Popen([sys.executable, "-m", "fabops.cli", "logs", "-i", str(script), "--source", "app",
                                 "-f", "-n", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, env=dict(os.environ, FABOPS_AGENT=mode, COLUMNS="200"))
        try:
            assert proc.stdout.readline().strip().endswith("first")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        results[mode] = (proc.returncode, err)
    assert results["1"] == results["0"], results
    assert results["0"][0] in (0, 130) and "Traceback" not in results["0"][1], results


# ---------------------------------------------------------------- over SSH


@pytest.fixture
def remote(ssh_host, tmp_path, inventory_for):
    ssh_host.trust()
    return inventory_for(h1=ssh_host)


@pytest.mark.ssh
def test_over_ssh_the_same_outputs_and_one_warm_transport(agent, ssh_host, remote):
    for args in (["ping", "--json"], ["hosts"], ["status", "--json"], ["monitor", "--json"]):
        direct = run_cli(*args, "-i", str(remote), env={"FABOPS_AGENT": "0"})
        through = run_cli(*args, "-i", str(remote))
        assert through.returncode == direct.returncode, (args, direct.stderr, through.stderr)
        assert through.stderr == direct.stderr
        if "--json" in args:
            assert _shape(json.loads(through.stdout)) == _shape(json.loads(direct.stdout)), args
        else:
            assert through.stdout == direct.stdout
    assert log_of(agent).count("connected to h1") == 1, log_of(agent)
    r = run_cli("agent", "status")
    assert re.search(r"h1  open .* (\d+) channels", r.stdout), r.stdout


def _shape(doc):
    """The JSON without its measurements: keys, and values that are not numbers."""
    if isinstance(doc, dict):
        return {k: _shape(v) for k, v in doc.items() if k not in ("generated_at", "at", "time")}
    if isinstance(doc, list):
        return [_shape(v) for v in doc]
    return type(doc).__name__ if isinstance(doc, (int, float)) and not isinstance(doc, bool) else doc


@pytest.mark.ssh
def test_a_changed_host_key_is_refused_through_the_agent(agent, ssh_host, remote, tmp_path):
    assert run_cli("ping", "-i", str(remote)).returncode == 0  # the transport is warm
    other = keygen(tmp_path / "other_host_key", comment="not-the-host")
    known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    name = f"[{ssh_host.address}]:{ssh_host.port}"
    known.write_text(f"{name} {' '.join(Path(str(other) + '.pub').read_text().split()[:2])}\n")
    direct = run_cli("ping", "-i", str(remote), env={"FABOPS_AGENT": "0"})
    through = run_cli("ping", "-i", str(remote))
    assert direct.returncode == 3 and "HOST KEY CHANGED" in direct.stderr
    assert (through.returncode, through.stderr) == (direct.returncode, direct.stderr)
    assert "closed the transport to h1" in log_of(agent)


@pytest.mark.ssh
def test_a_cut_link_is_reconnected(agent, ssh_host, remote):
    assert run_cli("ping", "-i", str(remote)).returncode == 0
    sessions = children_of(ssh_host.pid)
    assert sessions, "no sshd session for the agent's transport"
    for pid in sessions:
        os.kill(pid, signal.SIGKILL)  # the link is gone; the agent does not know yet
    r = run_cli("ping", "-i", str(remote))
    assert r.returncode == 0, r.stderr
    assert log_of(agent).count("connected to h1") == 2, log_of(agent)


@pytest.mark.ssh
def test_a_frozen_link_is_reconnected_not_waited_on(agent, ssh_host, remote):
    assert run_cli("ping", "-i", str(remote)).returncode == 0
    sessions = children_of(ssh_host.pid)
    for pid in sessions:
        os.kill(pid, signal.SIGSTOP)  # a laptop that slept: the peer says nothing
    try:
        r = run_cli("ping", "-i", str(remote), timeout=60)
        assert r.returncode == 0, r.stderr
        assert "a channel would not open" in log_of(agent)
    finally:
        for pid in sessions:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.mark.ssh
def test_a_changed_inventory_closes_the_transport(agent, ssh_host, remote, tmp_path):
    assert run_cli("ping", "-i", str(remote)).returncode == 0
    text = remote.read_text()
    key = re.search(r"identity_file: (\S+)", text).group(1)
    copy = tmp_path / "copy_of_key"
    copy.write_bytes(Path(key).read_bytes())
    copy.chmod(0o600)
    remote.write_text(text.replace(key, str(copy)))
    assert run_cli("ping", "-i", str(remote)).returncode == 0
    log = log_of(agent)
    assert log.count("connected to h1") == 2 and "its login, known_hosts or ~/.ssh/config changed" in log


def test_an_agent_running_older_code_steps_aside(agent, tmp_path):
    """After an upgrade (or an edit in a checkout) the running agent has the
    old modules loaded: the next command gets a new agent."""
    inv = write_local_inventory(tmp_path)
    assert run_cli("hosts", "-i", str(inv)).returncode == 0
    old = agent_pid(agent)
    module = ROOT / "fabops" / "agent" / "__init__.py"
    st = module.stat()
    newest = max(p.stat().st_mtime_ns for p in (ROOT / "fabops").rglob("*.py"))
    os.utime(module, ns=(st.st_atime_ns, newest + 10**9))  # as an edit would
    try:
        direct = run_cli("hosts", "-i", str(inv), env={"FABOPS_AGENT": "0"})
        through = run_cli("hosts", "-i", str(inv))
    finally:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (through.returncode, through.stdout, through.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    new = agent_pid(agent)
    assert new not in (None, old)
    assert wait_gone(old)
    assert "fabops changed since this agent started" in log_of(agent)


def test_inv_goes_through_the_agent_too(agent, tmp_path):
    """`inv TASK`: the first task body hands the command line to the agent,
    which runs Invoke's program with fabops' parse contract."""
    inv = write_local_inventory(tmp_path)
    (tmp_path / "tasks.py").write_text((ROOT / "tasks.py").read_text())
    binary = str(Path(sys.executable).parent / "inv")
    results = {}
    for mode in ("0", "1"):
        for args in (["hosts", "-i", str(inv)], ["hosts", "-i", str(inv), "-H", "nope"], ["nosuch"]):
            r = subprocess.run([binary, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                               env=dict(os.environ, FABOPS_AGENT=mode, COLUMNS="200"))
            results.setdefault(mode, []).append((r.returncode, r.stdout, r.stderr))
    assert results["1"] == results["0"]
    assert [code for code, _, _ in results["0"]] == [0, 64, 64]
    assert agent_pid(agent) is not None, "inv did not use the agent"


@pytest.mark.ssh
def test_more_runs_than_sshd_allows_sessions_get_more_transports(agent, ssh_host, inventory_for, tmp_path):
    """sshd's MaxSessions (10) per connection: twelve `logs -f` at once
    through one agent each hold a channel; none is refused."""
    ssh_host.trust()
    ssh_host.ssh("echo first > /tmp/agent-follow.log")
    inv = inventory_for(h1=dict(ssh_host.inventory_entry(), app={"path": "~/app"},
                                logs={"app": "/tmp/agent-follow.log"}))
    procs = [subprocess.Popen([sys.executable, "-m", "fabops.cli", "logs", "-i", str(inv), "--source", "app", "-f",
                               "-n", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, COLUMNS="200")) for _ in range(12)]
    try:
        for p in procs:
            assert p.stdout.readline().strip().endswith("first"), p.stderr.read() if p.poll() is not None else ""
        for p in procs:
            p.send_signal(signal.SIGINT)
        codes = [p.wait(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0] * 12, [p.stderr.read() for p in procs]
    assert "opened transport 2 to h1" in log_of(agent)
