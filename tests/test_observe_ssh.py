"""monitor and logs against a real sshd and the process-managed sample app (ssh tier)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, json_schema, run_cli
from tests.harness.sshd import free_port
from tests.harness.apps import RemoteApp, process_name

# The observe tests run on a busy machine: what monitor calls healthy must
# not depend on how fast the machine is (docs/architecture.md, "Measuring CPU").
# The verdicts a person reads (healthy, red, unreachable, timed out) are
# checked with both cores busy (the cpu_hog fixture, set up after the
# deploy): none may depend on an idle machine. The log and follow tests run
# under whatever load the run has.
pytestmark = pytest.mark.ssh


@pytest.fixture
def deployed(ssh_host, tmp_path, deploy_env):
    app = RemoteApp(ssh_host, tmp_path, seed_venv=True)
    code, res = app.deploy_json()
    assert code == 0, res  # the run's result and steps: why, when it is not
    return app


def monitor_json(app, *args):
    r = run_cli("monitor", "-i", str(app.inventory), "--json", *args)
    return r.returncode, json.loads(r.stdout)


def test_dashboard_healthy_then_red_when_killed(deployed, cpu_hog):
    code, data = monitor_json(deployed)
    assert code == 0, data
    h = data["hosts"]["h1"]
    assert h["status"] == "OK" and h["services"][0]["active"] and h["services"][0]["http_status"] == 200
    assert h["services"][0]["port_open"] is True
    assert h["deploy"]["deployed"] == deployed.origin.head
    r = run_cli("monitor", "-i", str(deployed.inventory))
    assert r.returncode == 0 and "h1" in r.stdout and "✅" in r.stdout

    deployed.host.ssh("kill -9 $(cut -d' ' -f1 ~/.fabops/app/services/bot.pid)")
    code, data = monitor_json(deployed)
    assert code == 2
    assert data["hosts"]["h1"]["findings"][0]["message"].startswith("bot is")
    r = run_cli("monitor", "-i", str(deployed.inventory))
    assert r.returncode == 2 and "❌" in r.stdout


def test_unreachable_host_is_red_and_the_good_one_still_renders(deployed, tmp_path, cpu_hog):
    inv = yaml.safe_load(deployed.inventory.read_text())
    inv["hosts"]["gone"] = {"address": "127.0.0.1", "port": free_port(), "app": {"path": "~/app"}}
    path = tmp_path / "two.yml"
    path.write_text(yaml.safe_dump(inv))
    r = run_cli("monitor", "-i", str(path), "-H", "h1,gone", "--connect-timeout", "2")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "h1" in r.stdout and "gone" in r.stdout and "refused" in r.stdout.lower()
    r = run_cli("monitor", "-i", str(path), "-H", "h1,gone", "--json", "--connect-timeout", "2")
    data = json.loads(r.stdout)
    assert data["hosts"]["gone"]["code"] == 3 and data["hosts"]["h1"]["code"] == 0


def test_json_matches_the_documented_schema(deployed, cpu_hog):
    """A real host's facts against docs/json.schema.json, the one schema
    (#23: monitor kept a second copy in code): run_cli checks the envelope;
    here the host's value must be monitor's facts, every key typed."""
    import jsonschema

    code, data = monitor_json(deployed)
    jsonschema.validate(data["hosts"]["h1"], json_schema("facts"))
    assert data["hosts"]["h1"]["services"], "no service was checked"


def test_exactly_one_exec_per_host_per_refresh(deployed, mocker):
    import paramiko

    from fabops import inventory
    from fabops.connection import connect
    from fabops.monitor import gather

    inv = inventory.load(str(deployed.inventory))
    host = inv.hosts["h1"]
    cxn = connect(host, inv)
    try:
        spy = mocker.spy(paramiko.Channel, "exec_command")
        gather(cxn, host)
        assert spy.call_count == 1
        gather(cxn, host)  # a --watch refresh on the kept-open connection
        assert spy.call_count == 2
    finally:
        cxn.close()


def test_logs_tail_errors_and_update_log(deployed):
    log = "~/.fabops/app/services/bot.log"
    deployed.host.ssh(f"for i in 1 2 3 4 5 6; do echo line-$i >> {log}; done; echo 'ERROR: boom' >> {log}; echo 'all good' >> {log}")
    r = run_cli("logs", "-i", str(deployed.inventory), "-n", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["line-6", "ERROR: boom", "all good"]
    r = run_cli("logs", "-i", str(deployed.inventory), "--errors")
    assert r.stdout.splitlines() == ["ERROR: boom"]
    r = run_cli("logs", "-i", str(deployed.inventory), "--source", "update", "-n", "1")
    assert "DEPLOYED" in r.stdout
    r = run_cli("logs", "-i", str(deployed.inventory), "--source", "app")
    assert r.returncode == 64 and "logs.app" in r.stderr
    r = run_cli("logs", "-i", str(deployed.inventory), "-n", "2", "--json")  # JSON lines, schema-checked
    assert [json.loads(x) for x in r.stdout.splitlines()] == [
        {"host": "h1", "source": "journal", "line": "ERROR: boom"}, {"host": "h1", "source": "journal", "line": "all good"}]


def test_follow_then_ctrl_c_leaves_no_remote_process(deployed):
    log = "~/.fabops/app/services/bot.log"
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "fabops.cli", "logs", "-i", str(deployed.inventory), "-f", "-n", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, COLUMNS="200"),
    )
    deployed.host.ssh(f"echo follow-marker >> {log}")
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "follow-marker" in line:
            break
    assert any("follow-marker" in x for x in seen), seen
    tails = [p for p in deployed.host.namespace_pids() if process_name(p) == "tail"]
    assert tails, "the remote tail should be running while following"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(process_name(p) == "tail" for p in deployed.host.namespace_pids()):
        time.sleep(0.1)
    assert not [p for p in deployed.host.namespace_pids() if process_name(p) == "tail"]


class Follower:
    """`fabops logs -f` in a subprocess, its stdout and stderr read by threads."""

    def __init__(self, inventory, *args):
        import queue
        import threading

        self.lines = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "fabops.cli", "logs", "-i", str(inventory), "-f", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, COLUMNS="200"),
        )
        self.seen = []
        for stream, tag in ((self.proc.stdout, "out"), (self.proc.stderr, "err")):
            threading.Thread(target=self._read, args=(stream, tag), daemon=True).start()

    def _read(self, stream, tag):
        for line in iter(stream.readline, ""):
            self.lines.put((tag, line))

    def wait_for(self, text, tag=None, timeout=60):
        import queue

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(got)
            if text in got[1] and (tag is None or got[0] == tag):
                return got
        raise AssertionError(f"{text!r} never appeared: {self.seen}")

    def interrupt(self):
        """Ctrl-C; returns the exit code. A generous bound: a hang is a failure, no timing is asserted."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)


def _tails(host):
    return [p for p in host.namespace_pids() if process_name(p) == "tail"]


def _no_tail_left(host):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _tails(host):
        time.sleep(0.1)
    return not _tails(host)


def test_ctrl_c_while_connecting_ends_the_follow(deployed, tmp_path):
    """Ctrl-C before the first line: the host accepts TCP but never sends
    the SSH banner, so the follow is stuck in the handshake."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    inv = yaml.safe_load(deployed.inventory.read_text())
    inv["hosts"]["mute"] = dict(inv["hosts"]["h1"], port=silent.getsockname()[1])
    path = tmp_path / "mute.yml"
    path.write_text(yaml.safe_dump(inv))
    try:
        f = Follower(path, "-H", "mute", "--connect-timeout", "120")
        deadline = time.monotonic() + 30
        conn = None
        silent.settimeout(0.5)
        while conn is None and time.monotonic() < deadline:  # the follow is now in the handshake
            try:
                conn, _ = silent.accept()
            except socket.timeout:
                pass
        assert conn is not None, (f.proc.poll(), f.seen)
        assert f.interrupt() == 0
        conn.close()
    finally:
        silent.close()


def test_follow_reconnects_after_a_cut_and_ctrl_c_ends_it_while_reconnecting(deployed, tmp_path):
    from tests.harness.proxy import CuttableProxy

    proxy = CuttableProxy(deployed.host.address, deployed.host.port)
    inv = yaml.safe_load(deployed.inventory.read_text())
    inv["hosts"]["h1"]["port"] = proxy.port
    path = tmp_path / "proxied.yml"
    path.write_text(yaml.safe_dump(inv))
    # the proxy's port is another known_hosts entry for the same key
    known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    known.write_text(known.read_text() + deployed.host.known_hosts_line.replace(
        f"[{deployed.host.address}]:{deployed.host.port}", f"[{proxy.address}]:{proxy.port}"))
    log = "~/.fabops/app/services/bot.log"
    try:
        f = Follower(path, "-n", "1")
        deployed.host.ssh(f"echo before-cut >> {log}")
        f.wait_for("before-cut", "out")
        proxy.cut()
        f.wait_for("connection lost", "err")
        f.wait_for("reconnected", "err")
        # "reconnected" is said when the resumed command prints its marker,
        # right before it starts the tail: a line written in the moment the
        # tail takes to open the log is one of the "lines written meanwhile".
        # Written until one shows, within a minute, so a busy machine's
        # slower start is no failure; a follow that never resumes is.
        deadline = time.monotonic() + 60
        while True:
            deployed.host.ssh(f"echo after-cut >> {log}")
            try:
                f.wait_for("after-cut", "out", timeout=3)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        assert not any("before-cut" in line for _, line in f.seen[f.seen.index(next(x for x in f.seen if "reconnected" in x[1])):]), \
            "a resumed follow shows new lines only"
        proxy.refuse()
        proxy.cut()
        f.wait_for("connection lost", "err")
        assert f.interrupt() == 0
        assert not any("Traceback" in line for _, line in f.seen)
        assert _no_tail_left(deployed.host), "the cut sessions' tails end with their pty"
    finally:
        proxy.close()


def test_health_fix_over_ssh_brings_a_killed_service_back(deployed):
    r = run_cli("health", "-i", str(deployed.inventory))
    assert r.returncode == 0 and ": OK: all services healthy" in r.stdout  # the status word once (#24)
    deployed.host.ssh("kill -9 $(cut -d' ' -f1 ~/.fabops/app/services/bot.pid)")
    r = run_cli("health", "-i", str(deployed.inventory))
    assert r.returncode == 2, r.stdout + r.stderr
    r = run_cli("health", "-i", str(deployed.inventory), "--fix", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert json.loads(r.stdout)["hosts"]["h1"]["status"] == "recovered"
    assert deployed.version() == "1"
    state = json.loads(deployed.host.path("~/.fabops/app/state.json").read_text())
    assert state["health"]["status"] == "ok" and len(state["restarts"]) == 1
    assert "WARNING: restarted bot" in deployed.host.path("~/.fabops/app/health.log").read_text()


def test_a_hung_remote_command_is_exit_3_not_a_hang(deployed, cpu_hog):
    """Every remote command has a timeout: a fact script that never ends
    (a stub `tail` that hangs: one of the few programs the monitor
    script still starts besides its python3) gives exit 3 with a clear line."""
    stub = deployed.host.path("~/hang/tail")
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text("#!/bin/sh\nsleep 600\n")
    stub.chmod(0o755)
    inv = yaml.safe_load(deployed.inventory.read_text())
    inv["hosts"]["h1"]["env"] = {"PATH": "/root/hang:/usr/bin:/bin"}
    deployed.inventory.write_text(yaml.safe_dump(inv))
    # SSH commands take the env from the host's env.sh, as setup (or the
    # next host-side run) writes it
    from fabops.shell import env_file_text

    deployed.host.path("~/.fabops/app/env.sh").write_text(env_file_text(inv["hosts"]["h1"]["env"]))
    r = run_cli("monitor", "-i", str(deployed.inventory), env={"FABOPS_COMMAND_TIMEOUT": "3"})
    assert r.returncode == 3, r.stdout + r.stderr
    assert "timed out after 3" in r.stdout + r.stderr
    # the hung program gone, the host answers again (status runs `tail` too,
    # so it waits for the stub's removal): nothing of the timed-out run is left in the way
    stub.unlink()
    r = run_cli("status", "-i", str(deployed.inventory), env={"FABOPS_COMMAND_TIMEOUT": "3"})
    assert r.returncode == 0, r.stdout + r.stderr
