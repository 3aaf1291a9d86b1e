"""The agent (fabops/agent/, docs/architecture.md "The agent"): real agent
processes on a real Unix socket; the ssh-tier tests go through a real sshd.

Each test has its own XDG_RUNTIME_DIR (tests/conftest.py), so its own
agent, stopped by its pid at the end (`agent` fixture)."""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
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
    # the everyday commands find every module they need held (server.WARM):
    # a run that imports one itself says so in agent.log, as this one does
    for args in (["monitor"], ["logs", "-n", "3"], ["health"], ["deploy", "--dry-run"]):
        r = run_cli(*args, "-i", str(remote))
        assert r.returncode != 70 and "Traceback" not in r.stderr, (args, r.stderr)
    assert "imported what the agent does not hold" not in log_of(agent), log_of(agent)
    assert run_cli("backup", "--dry-run", "-i", str(remote)).returncode != 70
    assert "imported what the agent does not hold: fabops.host.backup" in log_of(agent), log_of(agent)


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
    assert log.count("connected to h1") == 2 and "another login asks for this host" in log


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
    # `inv` runs find Invoke's program and the client held too (server.WARM): a new user's trial saw
    # `imported what the agent does not hold: fabops.agent.client, invoke.main` for every inv command
    assert "imported what the agent does not hold" not in log_of(agent), log_of(agent)


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


def test_inv_never_runs_a_task_twice(agent, tmp_path):
    """`inv mark hosts`: the user's own task ran before fabops' first body;
    the command line is not handed to the agent (mark would run again)."""
    inv = write_local_inventory(tmp_path)
    marks = tmp_path / "marks"
    (tmp_path / "tasks.py").write_text(
        "from invoke import task\nfrom fabops.tasks import ns\n\n"
        f"@task\ndef mark(c):\n    open({str(marks)!r}, 'a').write('x')\n\nns.add_task(mark)\n")
    binary = str(Path(sys.executable).parent / "inv")
    r = subprocess.run([binary, "mark", "hosts", "-i", str(inv)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120, env=dict(os.environ, COLUMNS="200"))
    assert r.returncode == 0, r.stderr
    assert marks.read_text() == "x"


def test_a_dead_forker_hands_the_command_back(agent, tmp_path):
    """The forker killed (out of memory, by hand): the next command still
    runs (here, or in a new agent), never exit 70 for nothing done."""
    inv = write_local_inventory(tmp_path)
    assert run_cli("hosts", "-i", str(inv)).returncode == 0
    old = agent_pid(agent)
    forker = children_of(old)
    assert len(forker) == 1
    os.kill(forker[0], signal.SIGKILL)
    assert wait_gone(forker[0])
    for _ in range(2):
        r = run_cli("hosts", "-i", str(inv))
        assert r.returncode == 0, r.stderr
    assert wait_gone(old), "the agent without a forker did not step aside"


def test_a_command_during_a_stop_runs(agent, tmp_path):
    """`agent stop` while a run is in flight: the socket goes at once, so a
    new command never waits on the stopping agent."""
    inv = write_local_inventory(tmp_path)
    logfile = tmp_path / "app.log"
    logfile.write_text("first\n")
    slow = tmp_path / "slow.yml"
    slow.write_text(inv.read_text() + f"    logs: {{app: {logfile}}}\n")
    follow = subprocess.Popen([sys.executable, "-m", "fabops.cli", "logs", "-i", str(slow), "--source", "app", "-f"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, COLUMNS="200"))
    try:
        assert follow.stdout.readline().strip().endswith("first")
        old = agent_pid(agent)
        r = run_cli("agent", "stop")
        assert r.returncode == 0 and "1 run" in r.stdout, r.stdout
        r = run_cli("hosts", "-i", str(inv), timeout=60)
        assert r.returncode == 0, r.stderr
        assert agent_pid(agent) not in (None, old), "the command did not get a new agent"
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=30) == 0
        assert wait_gone(old, 30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()


def test_sigterm_ends_the_command_as_it_would_without_the_agent(agent, tmp_path):
    inv = write_local_inventory(tmp_path)
    logfile = tmp_path / "app.log"
    logfile.write_text("first\n")
    slow = tmp_path / "slow.yml"
    slow.write_text(inv.read_text() + f"    logs: {{app: {logfile}}}\n")
    codes = {}
    for mode in ("0", "1"):
        proc = subprocess.Popen([sys.executable, "-m", "fabops.cli", "logs", "-i", str(slow), "--source", "app", "-f"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env=dict(os.environ, FABOPS_AGENT=mode, COLUMNS="200"))
        try:
            assert proc.stdout.readline().strip().endswith("first")
            proc.send_signal(signal.SIGTERM)
            codes[mode] = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert codes["1"] == codes["0"], codes


def test_another_checkout_gets_an_agent_of_its_own_code_once(agent, tmp_path):
    """A second checkout of fabops (another stamp): its command starts an
    agent that imports that checkout, and never loops on stale agents."""
    inv = write_local_inventory(tmp_path)
    assert run_cli("hosts", "-i", str(inv)).returncode == 0
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "fabops", copy / "fabops", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "fabops.cli", "hosts", "-i", str(inv)], capture_output=True, text=True,
                       cwd=copy, timeout=120, env=dict(os.environ, COLUMNS="200"))
    assert r.returncode == 0, r.stderr
    assert log_of(agent).count("fabops changed since this agent started") == 1, log_of(agent)


@pytest.mark.ssh
def test_a_quiet_follow_is_not_a_lost_link(agent, ssh_host, inventory_for):
    """`logs -f` probes a quiet channel every 10 s; OpenSSH answers the
    keepalive with a refusal, which is an answer: no 'connection lost'."""
    ssh_host.trust()
    ssh_host.ssh("echo first > /tmp/agent-quiet.log")
    inv = inventory_for(h1=dict(ssh_host.inventory_entry(), app={"path": "~/app"},
                                logs={"app": "/tmp/agent-quiet.log"}))
    proc = subprocess.Popen([sys.executable, "-m", "fabops.cli", "logs", "-i", str(inv), "--source", "app", "-f",
                             "-n", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, COLUMNS="200"))
    try:
        assert proc.stdout.readline().strip().endswith("first")
        # an ordinary run on the same host meanwhile, with another login (--accept-new): the follow keeps its channel
        assert run_cli("ping", "-i", str(inv), "--accept-new").returncode == 0
        deadline = time.monotonic() + 25  # past two probes
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        ssh_host.ssh("echo second >> /tmp/agent-quiet.log")
        assert proc.stdout.readline().strip().endswith("second")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "connection lost" not in err and proc.returncode == 0, err


def test_a_host_that_refuses_sessions_is_an_error_not_a_spin(mocker):
    """A server that refuses the first session of a transport (a bastion,
    MaxSessions 0 for exec on some servers) refuses them all: an error for
    the run, never a retry loop."""
    import paramiko

    from fabops.agent.relay import Entry, Transports
    from fabops.errors import UnreachableError

    transport = mocker.Mock()
    transport.is_active.return_value = True
    transport.open_session.side_effect = paramiko.ChannelException(1, "administratively prohibited")
    cxn = mocker.Mock()
    cxn.client.get_transport.return_value = transport
    request = {"login": ["h1", "127.0.0.1", "root", 22, None]}
    cache = Transports(log=lambda line: None)
    mocker.patch.object(cache, "attach", return_value=Entry("k", request, cxn))
    with pytest.raises(UnreachableError, match="refused a session"):
        cache.open_channel(request, 5)
    assert transport.open_session.call_count == 1


@pytest.mark.ssh
def test_a_relative_identity_file_is_the_runs(agent, ssh_host, tmp_path):
    """identity_file: keys/id, read from the command's directory, as
    without the agent (the agent's own directory is /)."""
    ssh_host.trust()
    (tmp_path / "keys").mkdir()
    shutil.copy(ssh_host.client_key, tmp_path / "keys" / "id")
    (tmp_path / "keys" / "id").chmod(0o600)
    inv = tmp_path / "rel.yml"
    inv.write_text(f"hosts:\n  h1:\n    address: {ssh_host.address}\n    port: {ssh_host.port}\n    user: {ssh_host.user}\n"
                   "    identity_file: keys/id\n    app: {path: ~/app}\n")
    direct = run_cli("ping", "-i", str(inv), env={"FABOPS_AGENT": "0"}, cwd=tmp_path)
    through = run_cli("ping", "-i", str(inv), cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr
    assert through.returncode == 0, through.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_agent_help_is_help(flag):
    """`fabops agent --help` (a trial got 'unknown action --help', 64)."""
    r = run_cli("agent", flag)
    assert r.returncode == 0 and "Usage: fabops agent ACTION" in r.stdout and "forget -H HOSTS" in r.stdout
