"""Service back ends: exact command strings, parsers against recorded output,
and the process supervisor against real processes."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from invoke import Context

from fabops.host import services as S
from fabops.inventory import Host, App, Service

FIX = Path(__file__).parent / "fixtures" / "parse_systemd_show"
CASES = sorted(FIX.glob("*.json"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_parse_systemd_show(case):
    data = json.loads(case.read_text())
    got = {k: v.to_dict() for k, v in S.parse_systemd_show(data["output"], data["units"]).items()}
    assert got == data["expected"]


def test_systemd_status_asks_systemctl_once_and_falls_back_without_unix_timestamps(tmp_path):
    """What the shell does with the status command: one `systemctl show`
    with the properties and the units as whole words; on systemd 247
    (bullseye), which refuses --timestamp=unix, the same query again
    without it."""
    from tests.harness.stubs import run_with_stubs

    units = ["bot.service", "odd name's.service"]
    old = 'case "$*" in *--timestamp=unix*) exit 1;; esac; echo "Id=$3"'
    r, calls = run_with_stubs(S.systemd_status_cmd(units), tmp_path, {"systemctl": old})
    props = ["-p", "Id,ActiveState,SubState,MainPID,ExecMainStartTimestamp"]
    assert calls == [["systemctl", "show", "--timestamp=unix", *props, *units], ["systemctl", "show", *props, *units]]
    r, calls = run_with_stubs(S.systemd_status_cmd(units), tmp_path, {"systemctl": "true"})
    assert len(calls) == 1 and r.returncode == 0


def test_systemd_actions_use_sudo_n_and_keep_a_unit_name_one_word(tmp_path):
    from tests.harness.stubs import run_with_stubs

    r, calls = run_with_stubs(S.systemd_action_cmd("restart", ["bot's unit.service"]), tmp_path, {"sudo": "true"})
    assert calls == [["sudo", "-n", "systemctl", "restart", "bot's unit.service"]]


def test_parse_process_status_ignores_junk():
    out = "bot active 123 1764340000\nnoise line\nworker stale 99 -\n"
    got = S.parse_process_status(out, ["bot", "worker", "missing"])
    assert got["bot"].active and got["bot"].pid == 123 and got["bot"].since == 1764340000
    assert not got["worker"].active and got["worker"].state == "stale"
    assert got["missing"].state == "unknown"


def _host(tmp_path, command):
    svc = Service(name="svc", manager="process", command=command)
    return Host(name="t", address="t", app=App(path=str(tmp_path)), services=(svc,), home=str(tmp_path / "home")), svc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process back end needs Linux")
def test_process_supervisor_start_status_stop(tmp_path):
    host, svc = _host(tmp_path, "sleep 300")
    m = S.ServiceManager(Context(), host)
    m.start(svc)
    st = m.status()["svc"]
    assert st.active and st.pid
    pid = st.pid
    assert Path(f"/proc/{pid}").exists()
    m.restart(svc)
    st2 = m.status()["svc"]
    assert st2.active and st2.pid != pid
    m.stop(svc)
    assert not m.status()["svc"].active
    assert not (tmp_path / "home" / "services" / "svc.pid").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process back end needs Linux")
def test_status_on_this_machine_reads_what_the_shell_look_prints(tmp_path):
    """On this machine ServiceManager.status reads the pidfiles and /proc
    itself (host/monitorfacts.process, no bash, sed or stat per poll): the
    same lines as process_status_cmd's shell, for a live process (its
    start time given or not), a recycled PID, a dead one, junk, an empty
    pidfile and none."""
    live = subprocess.Popen(["sleep", "60"])
    try:
        start = open(f"/proc/{live.pid}/stat").read().rpartition(") ")[2].split()[19]
        piddir = tmp_path / "home" / "services"
        piddir.mkdir(parents=True)
        names = ["live", "nostart", "recycled", "dead", "junk", "empty", "none"]
        for name, text in zip(names, [f"{live.pid} {start}\n", f"{live.pid}\n", f"{live.pid} 1\n",
                                      "999999999 5\n", "x y\n", ""]):
            (piddir / f"{name}.pid").write_text(text)
        svcs = [Service(name=n, manager="process", command="true") for n in names]
        host = Host(name="t", address="t", app=App(path=str(tmp_path)), services=tuple(svcs),
                    home=str(tmp_path / "home"))
        m = S.ServiceManager(Context(), host)
        shell = m.t.output(S.process_status_cmd(m.home, svcs))
        # line for line, but an empty pidfile's: the shell's `alive ""` reads
        # /proc/stat and says `active` with no PID; both lines are unreadable
        # (three words) and read as unknown
        ours = m._process_status(svcs)
        assert [x for x in ours.splitlines() if not x.startswith("empty ")] == \
            [x for x in shell.splitlines() if not x.startswith("empty ")]
        got = m.status()
        assert got == S.parse_process_status(shell, names)
        assert [got[n].state for n in names] == ["active", "active", "stale", "stale", "stale", "unknown", "inactive"]
    finally:
        live.kill()
        live.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process back end needs Linux")
def test_stale_pidfile_with_recycled_pid_is_never_signalled(tmp_path):
    host, svc = _host(tmp_path, "sleep 300")
    # A pidfile that names a live process we did not start (our own test
    # process) with a different start time: it must be reported stale and
    # stop must not kill it.
    piddir = tmp_path / "home" / "services"
    piddir.mkdir(parents=True)
    (piddir / "svc.pid").write_text(f"{os.getpid()} 1\n")
    m = S.ServiceManager(Context(), host)
    assert m.status()["svc"].state == "stale"
    m.stop(svc)  # would kill pytest itself if it trusted the pid
    assert not (piddir / "svc.pid").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process back end needs Linux")
def test_stop_escalates_to_sigkill(tmp_path):
    host, svc = _host(tmp_path, "trap '' TERM; while :; do sleep 0.1; done")
    m = S.ServiceManager(Context(), host)
    m.start(svc)
    pid = m.status()["svc"].pid
    result = Context().run(S.process_stop_cmd(host.home, svc, grace=0.3), hide=True, in_stream=False)
    assert "killed" in result.stdout
    assert not m.status()["svc"].active


@pytest.mark.parametrize(
    "cmd, expected",
    [("python3 app.py", "exec python3 app.py"), ("node index.js --port 3", "exec node index.js --port 3"),
     ("trap '' TERM; sleep 1", "trap '' TERM; sleep 1"), ("PORT=1 node x", "PORT=1 node x"),
     ("a && b", "a && b"), ("cd x; ./run", "cd x; ./run")],
)
def test_exec_form(cmd, expected):
    assert S.exec_form(cmd) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process back end needs Linux")
def test_a_death_is_written_to_the_log_once_so_errors_count_it(tmp_path):
    """Trial #24: the sample app crashed (`crashing on boot`) and monitor
    said `errors in the last hour: 0` beside `bot is down`; journald says
    "Main process exited ... status=1/FAILURE" under systemd. The process
    back end's stop (before every restart) that finds the process gone
    writes one line that logs.ERROR_WORDS count, once per PID; a status look
    writes nothing, and a stop of a live process no line."""
    from fabops.logs import ERROR_WORDS

    host, svc = _host(tmp_path, "echo crashing on boot; exit 1")
    log = Path(S.process_log_path(host.home, svc))
    m = S.ServiceManager(Context(), host)
    deadline = time.monotonic() + 30

    def crashed():
        while m.status()["svc"].state != "stale" and time.monotonic() < deadline:
            time.sleep(0.05)
        return m.status()["svc"].pid

    m.start(svc)
    pid = crashed()
    assert "fabops:" not in log.read_text()  # a look is a read
    m.restart(svc)
    said = [ln for ln in log.read_text().splitlines() if ln.startswith("fabops:")]
    assert len(said) == 1 and f"svc's process {pid} exited" in said[0], log.read_text()
    assert any(w in said[0].lower() for w in ERROR_WORDS), said
    second = crashed()
    assert second != pid
    m.stop(svc)
    said = [ln for ln in log.read_text().splitlines() if ln.startswith("fabops:")]
    assert len(said) == 2 and f"svc's process {second} exited" in said[1], said
    live, _ = _host(tmp_path / "live", "sleep 300")
    m2 = S.ServiceManager(Context(), live)
    m2.start(live.services[0])
    m2.stop(live.services[0])
    assert "fabops:" not in Path(S.process_log_path(live.home, live.services[0])).read_text()
