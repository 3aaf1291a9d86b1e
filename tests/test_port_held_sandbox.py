"""Another process on the service's port (issue #24): a trial ran `python3 -m
http.server 3013` on the demo's port, then a deploy; the gate said
"listening on 3013, HTTP 200, ready" on the other process's port, the
service died of EADDRINUSE, the rollback failed the same way and the good
commit was marked bad. The gate, the watch and the preflight trust a port
only when its LISTEN socket is the service's own (host/listeners.py): the
run stops at once, names the holder, and marks nothing bad; once the other
process is gone, a deploy goes through.

On the sandbox (`connection: local`, the process back end), with a real
`python3 -m http.server` started and stopped by PID here."""
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _until(what, seconds=30.0):
    done = threading.Event()
    for _ in range(int(seconds / 0.1)):
        if what():
            return True
        done.wait(0.1)
    return what()


@pytest.fixture
def other_process(tmp_path):
    """start(port): `python3 -m http.server PORT` in its own session, once
    the port is free; stop(): by its PID (and in the teardown, pass or fail)."""
    started = []

    def start(port: int) -> subprocess.Popen:
        assert _until(lambda: not _listening(port)), f"port {port} never came free"
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        started.append(proc)
        assert _until(lambda: _listening(port) or proc.poll() is not None) and proc.poll() is None, \
            "the other process did not start listening"
        return proc

    def stop():
        while started:
            proc = started.pop()
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(10)

    start.stop = stop
    try:
        yield start
    finally:
        stop()


# How the holder is named: its argv[0]'s base name, and the test's own
# interpreter starts it (`python` when pytest runs as `.venv/bin/python -m
# pytest`, as .ci/run does; `python3` through .venv/bin/pytest).
PROG = os.path.basename(sys.executable)


def _held_words(sandbox, proc) -> str:
    return f"port {sandbox.port} is held by another process (pid {proc.pid}: "


def test_a_deploy_onto_a_port_another_process_holds_is_refused_up_front(sandbox, other_process, monkeypatch):
    monkeypatch.delenv("CI", raising=False)  # a person's deploy
    code, first = sandbox.result()
    assert (code, first["result"]) == (0, "deployed"), first
    good = sandbox.head()
    sandbox.stop()
    other = other_process(sandbox.port)
    held = _held_words(sandbox, other)
    # the same commit, the service down: the restart it would need is refused
    code, res = sandbox.result()
    assert (code, res["result"]) == (2, "aborted"), res
    assert held in res["message"] and "http.server" in res["message"] and "not bot" in res["message"], res
    new = sandbox.origin.good("2")
    code, dry = sandbox.result("--trigger", "deploy", "--dry-run")
    code2, real = sandbox.result("--trigger", "deploy")
    assert (code, dry["result"]) == (2, "would_abort"), dry
    assert (code2, real["result"]) == (2, "aborted"), real
    assert held in real["message"] and "not bot" in real["message"], real
    assert dry["message"] == f"would stop: {real['message']}", (dry, real)  # one decision, said alike
    state = sandbox.state
    assert not state.get("bad"), state  # neither the new commit nor the good one
    assert state["deployed"] == good and sandbox.head() == good, state  # nothing switched
    assert other.poll() is None, "the other process was not touched"
    svc = _monitored(sandbox)  # the panel reads the gate's fact: the same holder
    assert (svc["port_owner"], svc["port_holder"]) == ("other", f"pid {other.pid}: {PROG} -m http.server "
                                                                f"{sandbox.port} --bind 127.0.0.1"), svc
    other_process.stop()
    code, res = sandbox.result("--trigger", "deploy")
    assert (code, res["result"]) == (0, "deployed"), res
    assert sandbox.health()["version"] == "2" and sandbox.state["deployed"] == new
    assert not sandbox.state.get("bad"), sandbox.state
    svc = _monitored(sandbox)
    assert (svc["active"], svc["port_owner"], svc["port_holder"]) == (True, "own", None), svc


def _monitored(sandbox, whole: bool = False) -> dict:
    """`monitor --json`'s service (or, `whole`, the host's facts)."""
    import json

    from tests.conftest import run_cli

    r = run_cli("monitor", "-i", str(sandbox.inventory), "-H", "local", "--json")
    facts = json.loads(r.stdout)["hosts"]["local"]
    return facts if whole else facts["services"][0]


def _pidfile_of(pid: int) -> str:
    """The process back end's pidfile line for `pid`: `PID STARTTIME`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return f"{pid} {fields[19]}\n"


def test_the_gate_fails_at_once_on_a_port_another_process_holds_and_marks_nothing_bad(sandbox, other_process,
                                                                                          monkeypatch):
    """The service looks running (its pidfile names a live process) while
    another process holds its port: the preflight lets the deploy start,
    the restart's new process cannot bind, and the gate (not the timeout,
    not a 404 from the other server) says whose the port is. Neither the
    new commit nor the one rolled back to is marked bad."""
    monkeypatch.delenv("CI", raising=False)
    code, first = sandbox.result()
    assert (code, first["result"]) == (0, "deployed"), first
    good = sandbox.head()
    sandbox.stop()
    other = other_process(sandbox.port)
    stand_in = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (sandbox.home / "services" / "bot.pid").write_text(_pidfile_of(stand_in.pid))
        facts = _monitored(sandbox, whole=True)  # it runs, but its port is not its own: the panel says so
        svc = facts["services"][0]
        assert (svc["active"], svc["port_owner"]) == (True, "other") and svc["uptime"] is not None, svc
        assert f"port {sandbox.port} is held by another process (pid {other.pid}: {PROG} -m http.server " \
            f"{sandbox.port} --bind 127.0.0.1), not bot" in [f["message"] for f in facts["findings"]], facts
        new = sandbox.origin.good("2")
        code, res = sandbox.result("--trigger", "deploy")
        gate = [s for s in res["steps"] if s["name"] == "restart bot"]
        assert gate and not gate[0]["ok"], res["steps"]
        assert _held_words(sandbox, other) in gate[0]["message"] and "not bot" in gate[0]["message"], gate
        assert "not marked bad" in res["message"], res
        assert not sandbox.state.get("bad"), sandbox.state
        # the rollback checks the good commit out again but does not restart into the held port: it says so
        assert (code, res["result"]) == (2, "aborted"), (res["message"], res["steps"])
        assert f"; back on {good[:10]}, not restarted: {_held_words(sandbox, other)}" in res["message"], res
        assert "stop that process or give bot another port, then run again" in res["message"], res
        assert "rollback bot" not in [s["name"] for s in res["steps"]] and sandbox.head() == good, res["steps"]
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
        stand_in.wait(10)
    other_process.stop()
    code, res = sandbox.result("--trigger", "deploy")
    assert (code, res["result"]) == (0, "deployed"), res
    assert sandbox.health()["version"] == "2" and sandbox.state["deployed"] == new != good
