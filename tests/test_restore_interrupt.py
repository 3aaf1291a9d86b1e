"""Ctrl-C and SIGTERM during an in-place restore (issue #26, docs/backups.md
"Ctrl-C during a restore"): before its first stop the restore ends with
nothing changed (exit 130); once the services are stopped the signal is
deferred: the restore puts the items back, starts the services, runs their
gate, records itself once and then says it was interrupted. The laptop
says what is happening on the first Ctrl-C and stops waiting on the
second, never stopping the host's restore. Unit tier, then the sandbox
host with a real `fabops backup --restore ... --yes` interrupted."""
import io
import os
import signal
import subprocess
import sys
import time

import pytest

from fabops.host import restore
from fabops.host.files import read_object
from tests.conftest import one, run_cli
from tests.test_backup_restore_unit import _saving, _snapshot, host_with_service  # noqa: F401 (a fixture)
from tests.test_restore_cut_off import watched  # noqa: F401 (a fixture)


def _restore_records(paths):
    import json

    if not os.path.exists(paths.history):
        return []
    with open(paths.history) as fh:
        return [r for r in map(json.loads, fh) if r.get("trigger") == "restore"]


@pytest.mark.unit
def test_before_the_first_stop_a_signal_ends_it_and_after_it_is_deferred(capsys):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with restore.Deferred() as guard:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next instruction: never gets here
        os.kill(os.getpid(), signal.SIGINT)  # while it ends (its locks released): ignored
        guard.ending = False
        guard.defer()
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # a second one: noted once, said once
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert capsys.readouterr().err == restore.Deferred.LINE + "\n"
    assert guard.got == "SIGINT"
    assert guard.said() == ["interrupted (Ctrl-C) while the services were stopped: the restore was finished first "
                            "(items put back, services started, their gate run), then ended"]


@pytest.mark.unit
def test_a_ctrl_c_while_putting_back_finishes_the_restore(watched, monkeypatch, capsys):  # noqa: F811
    """Ctrl-C lands while the items are put back (services stopped): the
    restore goes on, starts the services, records itself once (with the
    interruption as its warning), clears the mark, then says it."""
    host, paths, log = watched
    old = _snapshot(host, paths, "old\n")
    data = os.path.join(os.path.expanduser(host.app.path), "data", "notes.txt")
    with open(data, "w") as fh:
        fh.write("new\n")
    real_put_back = restore.put_back

    def put_back(*args):
        os.kill(os.getpid(), signal.SIGINT)  # as the terminal delivers it, mid put-back
        return real_put_back(*args)

    monkeypatch.setattr(restore, "put_back", put_back)
    save = lambda: {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}  # noqa: E731
    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert done["restore"]["ok"], done
    assert [w for w in done["warnings"] if w.startswith("interrupted (Ctrl-C) while the services were stopped")]
    assert log[-1][0] == "start" and read_object(paths.state).get("in_progress") is None
    assert open(data).read() == "old\n"
    (rec,) = _restore_records(paths)
    assert rec["result"] == "restored" and rec["warnings"] == done["warnings"], rec
    assert restore.Deferred.LINE in capsys.readouterr().err


@pytest.mark.unit
def test_a_sigterm_before_the_stop_changes_nothing(watched, monkeypatch):  # noqa: F811
    """SIGTERM (or Ctrl-C) while the snapshot is read: the restore ends,
    nothing stopped, marked or recorded, both locks free again."""
    from fabops.host.lock import HostLock

    host, paths, log = watched
    old = _snapshot(host, paths, "old\n")
    real_found_in = restore.found_in

    def found_in(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_found_in(*args)

    monkeypatch.setattr(restore, "found_in", found_in)
    save = lambda: pytest.fail("nothing is saved")  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert log == [] and read_object(paths.state).get("in_progress") is None and _restore_records(paths) == []
    for lock in (paths.lock, paths.backup_lock):
        with HostLock(lock, {"trigger": "test"}).acquire(wait=0):
            pass


@pytest.mark.unit
def test_the_laptop_says_it_then_stops_waiting(monkeypatch, capsys):
    """First Ctrl-C: over SSH it says the host's restore goes on (it does
    not reach it); on a local host the host's own line is relayed as it
    comes, nothing else of its stderr. Second: out, exit 130."""
    from fabops.maintenance import backup as laptop

    ssh = type("H", (), {"name": "web1", "is_local": False})()
    exits = []
    monkeypatch.setattr(laptop.os, "_exit", exits.append)
    with laptop.Waiting(ssh) as waiting:
        os.kill(os.getpid(), signal.SIGINT)
        assert exits == []
        os.kill(os.getpid(), signal.SIGINT)
    assert exits == [130]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("fabops: web1: a Ctrl-C does not reach the restore over SSH: it goes on"), err
    from fabops.deploy import suggest

    assert err[1] == ("fabops: interrupted: no longer waiting; the restore goes on on web1 to its end "
                      f"({suggest(None, 'history', '-H', 'web1')} says how it ended)")  # the program it runs as
    relay = waiting.relay()
    for chunk in ("Traceback (most", " recent call last)\n" + restore.Deferred.LINE[:20],
                  restore.Deferred.LINE[20:] + "\nfabops: other\n"):
        relay.write(chunk)
    assert capsys.readouterr().err == "fabops: web1: " + restore.Deferred.LINE.removeprefix("fabops: ") + "\n"


@pytest.mark.unit
def test_on_a_local_host_the_laptop_says_only_what_the_host_did(monkeypatch, capsys):
    """A local host's process gets the same Ctrl-C. Before it read its
    input the laptop withholds it (the process gets an empty host.yml and
    does nothing); once it runs, the laptop waits for its own end until the
    host says it defers; only then does a Ctrl-C stop the laptop waiting."""
    from fabops.maintenance import backup as laptop

    local = type("H", (), {"name": "local", "is_local": True})()
    exits = []
    monkeypatch.setattr(laptop.os, "_exit", exits.append)
    with laptop.Waiting(local) as early:
        os.kill(os.getpid(), signal.SIGINT)
    assert early.withheld and early.fed("hosts: {}\n").read() == "" and not early.started
    with laptop.Waiting(local) as waiting:
        feed = waiting.fed("hosts: {}\n")
        assert feed.read() == "hosts: {}\n" and waiting.started
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # timeout's way: to the process, then its group
        assert exits == [] and not waiting.withheld and capsys.readouterr().err == ""
        waiting.relay().write(restore.Deferred.LINE + "\n")
        os.kill(os.getpid(), signal.SIGINT)
    assert exits == [130]
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("fabops: interrupted: no longer waiting; the restore goes on on local"), err


# ------------------------------------------------------------------ the sandbox host, a restore interrupted

def _settings(sandbox, flag, pid) -> str:
    """A dump that blocks while `flag` exists (its pid in `pid`): the
    restore's save of what is there holds there, with the services stopped."""
    import yaml

    data = yaml.safe_load(sandbox.inventory.read_text())
    block = f"echo $$ > {pid}; while [ -e {flag} ]; do sleep 0.1; done; echo dumped"
    data["hosts"]["local"]["backup"] = {"files": ["data"], "dump": [{"name": "db", "command": block}]}
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(sandbox.inventory)


def _started(argv):
    """`fabops ARGV` in a session of its own: the test is its terminal,
    and sends its Ctrl-C to the whole group as a terminal does."""
    return subprocess.Popen([sys.executable, "-m", "fabops.cli", *argv], start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env={**os.environ, "FABOPS_AGENT": "0", "COLUMNS": "200"})


def _wait_for(pidfile, proc):
    deadline = time.monotonic() + 90
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert proc.poll() is None and time.monotonic() < deadline, "the restore did not reach its save's dump"
        time.sleep(0.05)


def _backed_up(sandbox, tmp_path, block: bool):
    """The deployed sandbox, its data `old` in a snapshot (the run id), then
    `new`; with `block` the restore's save will hold in its dump (the
    backup's own dump's pid file removed, to wait for the restore's)."""
    code, _ = sandbox.result()
    assert code == 0
    (sandbox.app / "data").mkdir()
    notes = sandbox.app / "data" / "notes.txt"
    notes.write_text("old\n")
    flag, pidfile = tmp_path / "block", tmp_path / "dump.pid"
    inv = _settings(sandbox, flag, pidfile)
    first = one(run_cli("backup", "-i", inv, "--json").stdout)
    assert first["ok"], first
    notes.write_text("new\n")
    if block:
        pidfile.unlink()
        flag.touch()
    return inv, first["run_id"], notes, flag, pidfile


def test_ctrl_c_while_the_services_are_stopped_finishes_the_restore(sandbox, tmp_path):
    inv, run_id, notes, flag, pidfile = _backed_up(sandbox, tmp_path, block=True)
    proc = _started(["backup", "-i", inv, "--restore", run_id, "--yes"])
    try:
        _wait_for(pidfile, proc)  # services stopped, the save blocked in its dump
        with pytest.raises(OSError):  # the service is stopped (connection refused)
            sandbox.health()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as the terminal sends it to its foreground group
        time.sleep(1)
        assert proc.poll() is None  # neither the laptop nor the host stopped
        flag.unlink()
        out, err = proc.communicate(timeout=120)
    finally:
        flag.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert "fabops: local: finishing the restore first: the services are stopped" in err, err
    assert "interrupted (Ctrl-C) while the services were stopped: the restore was finished first" in out, out
    assert notes.read_text() == "old\n"
    assert sandbox.health() and sandbox.state.get("in_progress") is None
    (rec,) = [r for r in sandbox.history() if r.get("trigger") == "restore"]
    assert rec["result"] == "restored" and rec["warnings"], rec


def test_ctrl_c_before_the_stop_changes_nothing(sandbox, tmp_path):
    """Ctrl-C while the restore waits for the host lock (a deploy holds
    it): it ends, exit 130, nothing stopped, recorded or marked."""
    code, out, err = _ctrl_c_while_locked(sandbox, tmp_path, 3)  # loaded, connected, waiting for the lock
    assert code == 130, (out, err)
    assert "interrupted before it stopped anything: nothing was changed" in err, err


def _ctrl_c_while_locked(sandbox, tmp_path, delay: float, to_process: bool = False):
    """A restore started while a deploy holds the host lock (so it never
    reaches its stop), Ctrl-C sent to its group `delay` s later (first to
    the process alone too with `to_process`: timeout's way). Its exit
    code, stdout and stderr, once checked that nothing was changed."""
    from fabops.host.lock import HostLock
    from fabops.paths import HostPaths

    inv, run_id, notes, _, _ = _backed_up(sandbox, tmp_path, block=False)
    with HostLock(HostPaths.for_home(str(sandbox.home)).lock, {"trigger": "deploy", "run_id": "x"}).acquire(wait=0):
        proc = _started(["backup", "-i", inv, "--restore", run_id, "--yes"])
        try:
            time.sleep(delay)
            if to_process:
                os.kill(proc.pid, signal.SIGINT)
            os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert notes.read_text() == "new\n", (out, err)
    assert sandbox.health() and sandbox.state.get("in_progress") is None
    assert [r for r in sandbox.history() if r.get("trigger") == "restore"] == []
    return proc.returncode, out, err


def test_a_second_ctrl_c_stops_the_laptop_waiting_not_the_restore(sandbox, tmp_path):
    """Two Ctrl-C while the services are stopped: the laptop stops waiting
    (`fabops: interrupted…`, exit 130, as a deploy's follower does), the
    host's restore goes on to its end: data put back, service up, one
    record, the mark cleared."""
    inv, run_id, notes, flag, pidfile = _backed_up(sandbox, tmp_path, block=True)
    proc = _started(["backup", "-i", inv, "--restore", run_id, "--yes"])
    try:
        _wait_for(pidfile, proc)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (out, err)
        assert "fabops: interrupted: no longer waiting; the restore goes on on local to its end" in err, err
        flag.unlink()  # the host's restore, still there, goes on
        deadline = time.monotonic() + 90
        while not [r for r in sandbox.history() if r.get("trigger") == "restore"]:
            assert time.monotonic() < deadline, "the host's restore did not end"
            time.sleep(0.2)
        while sandbox.state.get("in_progress") is not None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        flag.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    (rec,) = [r for r in sandbox.history() if r.get("trigger") == "restore"]
    assert rec["result"] == "restored" and rec["warnings"], rec
    assert notes.read_text() == "old\n"
    assert sandbox.health() and sandbox.state.get("in_progress") is None


@pytest.mark.parametrize("width", (80, 200))
def test_a_restore_says_it_was_interrupted_at_both_widths(width, capsys, monkeypatch):
    """An in-place restore that finished after a deferred Ctrl-C, as `inv
    backup --restore` prints it (tasks/backup.py: its lines, then each warning)."""
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import restore_lines
    from tests.test_golden import check, render

    value = {"restore": {"run_id": "20261201T030000-a1b2c3", "from": "local", "to": None, "ok": True,
                         "saved": "20261203T091500-0a1b2c", "refused": None,
                         "items": [{"name": "files", "file": "files.tar", "ok": True, "skipped": None, "error": None}],
                         "services": [{"service": "bot", "ok": True, "message": "ready"}]},
             "warnings": []}
    guard = restore.Deferred()
    guard.got = "SIGINT"  # the line the run says, from the code that says it
    value["warnings"] = guard.said()
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in restore_lines(value) + [
        f"warning: {w}" for w in value["warnings"]]])
    check("restore-interrupted", width, text)


@pytest.mark.unit
@pytest.mark.parametrize("into, said", (("", ""), ("/tmp/look", " in place (/tmp/look may hold part of the items)")))
def test_the_host_says_what_an_early_interrupt_left(into, said, host_with_service, monkeypatch, capsys):  # noqa: F811
    """The host's one line and exit 130 for a restore ended before its
    first stop; with --to DIR what it wrote there so far stays, and it says so."""
    import yaml

    from fabops.host import backup

    host, paths, _ = host_with_service
    data = {"hosts": {"h": {"connection": "local", "app": {"path": host.app.path}, "home": host.home}}}
    monkeypatch.setattr(sys, "stdin", io.StringIO(yaml.safe_dump(data)))

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(backup, "restored", interrupted)
    assert backup.main(["restore", "20261201T030000-a1b2c3", "", into]) == 130
    assert capsys.readouterr().err == backup.INTERRUPTED_BEFORE + said + "\n"


@pytest.mark.unit
def test_an_interrupt_while_fetching_leaves_no_temp_dir(host_with_service, monkeypatch):  # noqa: F811
    """Ctrl-C while restic fetches a snapshot no longer on the host: the
    restore ends (before any stop) and its temporary directory goes."""
    from fabops.host import restic

    host, paths, _ = host_with_service
    monkeypatch.setattr(restore, "in_repository", lambda host, run_id: {"id": "abc", "paths": ["/x"]})

    def fetch(*_args, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(restic, "call", fetch)
    with pytest.raises(KeyboardInterrupt):
        restore.source_dir(host, paths, "20261201T030000-a1b2c3")
    assert [n for n in os.listdir(paths.backups) if n.startswith(".restore-")] == []


@pytest.mark.parametrize("delay", (0.3, 0.35, 0.4, 0.5, 0.6, 0.8))
def test_an_early_ctrl_c_says_only_what_is_true(delay, sandbox, tmp_path):
    """A Ctrl-C as the restore starts (new-user trial: `timeout -s INT 0.3
    fabops backup --restore RUN --yes`): the host's process may not exist
    yet, or not have its handler (the SIGINT kills it), or be waiting for
    its lock. Every outcome is a documented one and true: `… before it
    started` or `… before it stopped anything: nothing was changed`, exit
    130, with nothing stopped, recorded or marked; never `the restore goes
    on` (no host restore runs), never `backup failed: KeyboardInterrupt`.
    A deploy holds the host lock so that the restore never reaches its
    stop however late the Ctrl-C lands; timeout's way (the signal to the
    process, then to its group) is what is sent."""
    code, out, err = _ctrl_c_while_locked(sandbox, tmp_path, delay, to_process=True)
    assert code == 130, (out, err)
    said = [ln for ln in err.splitlines() if ln.strip()]
    assert said in (["fabops: interrupted"],  # the CLI's own, before the task reached the host (docs/errors.md)
                    ["fabops: local: backup --restore interrupted before it started: nothing was changed"],
                    ["fabops: local: backup --restore interrupted before it stopped anything: nothing was changed"]), err
