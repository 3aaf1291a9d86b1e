"""An in-place restore cut off in the middle (issue #26, docs/backups.md
"Restore"): it marks itself in state.json's in_progress before it stops
anything (host/restore.Underway), moves the step on, and clears it once
the services are started again; one killed leaves the mark, which status
and monitor show, and the next run proceeds and finishes it. Unit tier,
then the sandbox host with a restore really killed mid-save."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fabops.host import restore
from fabops.host.files import read_object
from fabops.host.plan import restore_cut_off_text
from fabops.host.state import merge_state_file
from tests.conftest import one, run_cli
from tests.test_backup_partials import killed_in_dump
from tests.test_backup_restore_unit import _saving, _snapshot, host_with_service  # noqa: F401 (a fixture)
from tests.test_golden import frozen  # noqa: F401 (a fixture: the clock and TZ the golden files are at)


class Watched:
    """A service manager that notes state.json's in_progress at each call."""

    def __init__(self, paths, log):
        self.paths, self.log = paths, log

    def _seen(self, what, svc):
        ip = read_object(self.paths.state).get("in_progress") or {}
        self.log.append((what, svc.name, ip.get("trigger"), ip.get("step")))

    def stop(self, svc):
        self._seen("stop", svc)

    def start(self, svc):
        self._seen("start", svc)


@pytest.fixture
def watched(host_with_service, monkeypatch):  # noqa: F811 (the fixture, imported)
    host, paths, log = host_with_service
    monkeypatch.setattr(restore, "service_manager", lambda host: Watched(paths, log))
    return host, paths, log


@pytest.mark.unit
def test_each_step_is_marked_and_the_mark_goes_when_the_services_are_back(watched):
    host, paths, log = watched
    merge_state_file(paths.state, {"deployed": "a" * 40})
    old = _snapshot(host, paths, "old\n")
    steps = []

    def save():
        steps.append((read_object(paths.state).get("in_progress") or {}).get("step"))
        return {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}

    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert done["restore"]["ok"] and done["warnings"] == []
    assert log == [("stop", "web", "restore", "restore: stop"), ("start", "web", "restore", "restore: start")]
    assert steps == ["restore: save"]
    assert read_object(paths.state).get("in_progress") is None
    assert read_object(paths.state)["deployed"] == "a" * 40  # nothing else of the state touched


@pytest.mark.unit
def test_a_failed_save_starts_the_services_and_clears_the_mark(watched):
    host, paths, log = watched
    old = _snapshot(host, paths, "old\n")

    def save():
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert log[-1] == ("start", "web", "restore", "restore: start")
    assert read_object(paths.state).get("in_progress") is None


@pytest.mark.unit
def test_a_cut_off_restore_is_taken_over_and_a_cut_off_deploy_kept(watched):
    """Under the host lock an in_progress is no live run's: a restore's is
    taken over (said); a deploy's is kept for the run that finishes it."""
    host, paths, log = watched
    old = _snapshot(host, paths, "old\n")
    save = lambda: {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}  # noqa: E731
    stale = {"run_id": "20261201T000000-000001", "trigger": "restore", "step": "restore: put back"}
    merge_state_file(paths.state, {"in_progress": stale})
    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert done["warnings"] == ["taking over from an interrupted run 20261201T000000-000001 (restore, step "
                                "restore: put back): this restore starts the services again"]
    assert read_object(paths.state).get("in_progress") is None
    deploy = {"run_id": "20261201T000000-000002", "trigger": "deploy", "from": "a", "to": "b", "step": "deps"}
    merge_state_file(paths.state, {"in_progress": deploy})
    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert "still to be finished" in done["warnings"][0] and read_object(paths.state)["in_progress"] == deploy
    # a restore cut off meanwhile carries the deploy's along: the one after still puts it back
    merge_state_file(paths.state, {"in_progress": {**stale, "kept": deploy}})
    restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert read_object(paths.state)["in_progress"] == deploy


@pytest.mark.unit
def test_a_hangup_does_not_end_the_restore(watched):
    """The ssh link of a terminal session dropping (SIGHUP) mid-restore:
    it goes on and starts the services."""
    host, paths, log = watched
    old = _snapshot(host, paths, "old\n")

    def save():
        os.kill(os.getpid(), signal.SIGHUP)
        return {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}

    before = signal.getsignal(signal.SIGHUP)
    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert done["restore"]["ok"] and log[-1][0] == "start"
    assert signal.getsignal(signal.SIGHUP) == before  # its own handler only while it runs


# ------------------------------------------------------------------ what the next runs decide (unit)

CUT = "20261201T000000-000001"


def _marked(step: str) -> dict:
    return {"run_id": CUT, "trigger": "restore", "from": "A", "to": "A", "pin": False, "step": f"restore: {step}"}


@pytest.mark.unit
@pytest.mark.parametrize("trigger", ("cron", "manual", "deploy", "rollback", "reset"))
@pytest.mark.parametrize("step", ("stop", "save", "put back", "start"))
def test_only_a_restore_cut_off_putting_items_back_stops_the_next_run(trigger, step):
    """host/plan.UNSAFE_RESTORE_STEPS: at stop, save and start the data is
    whole (the old, or all of the snapshot's), so the next run finishes it
    as any interrupted run; at put back no run may start the services or
    deploy over it and clear the mark: it aborts as broken (exit 5, one
    record), saying the restore that takes it over, and its dry run says
    the same decision."""
    from fabops.host.dry_run import actions, dry_result
    from fabops.host.dry_run import said as dry_said
    from fabops.host.plan import Plan, plan
    from tests.test_plan import HOST, parse_row

    st, facts, opts, _ = parse_row(f"{trigger} | dep=A | o=B h=A sick=bot old=C | -")
    st.in_progress = _marked(step)
    got = plan(HOST, st, facts, opts)
    assert isinstance(got, Plan), got
    if step != "put back":
        assert got.finishing == st.in_progress and got.kind != "abort", got
        return
    assert (got.kind, got.result, got.record, got.finishing) == ("abort", "broken", True, None), got
    assert got.message == (f"a restore of {CUT} was cut off while putting items back (its services stopped, part "
                           f"of the data put back): not starting them on half-restored data; `fabops backup -H h "
                           f"--restore {CUT} --yes` takes it over")
    assert (dry_result(got), dry_said(got)) == ("would_break", f"would record broken: {got.message}")
    assert [(w.action, w.target) for w in actions(HOST, got, trigger)] == [("record", "state.json"),
                                                                           ("record", "history")]
    st.last_result, st.broken_said = "broken", got.message  # cron's next poll: no second record
    assert not plan(HOST, st, facts, opts).record


@pytest.mark.unit
@pytest.mark.parametrize("step", ("stop", "save", "put back", "start"))
def test_health_fix_leaves_a_restore_cut_off_putting_items_back_down(step):
    """health --fix (cron's, every few minutes) restarts nothing while the
    mark says put back, and says why and the way out; its dry run says the
    same. At the other steps it restarts as before."""
    from fabops.host.health import HealthFacts, _stated, actions, plan_health
    from tests.test_health_plan import HOST, NOW

    stated = _stated({"deployed": "d" * 40, "in_progress": _marked(step)})
    facts = HealthFacts(sick=(("bot", "bot is stopped"),), now=NOW, lock="", head="d" * 40, **stated)
    got = plan_health(HOST, facts, True)
    if step != "put back":
        assert (got.kind, got.services) == ("restart", ("bot",)), got
        return
    assert (got.kind, got.status, got.services, got.restarts) == ("nothing", "down", (), None), got
    assert got.message == (f"bot is stopped; not restarting: a restore of {CUT} was cut off while putting items "
                           f"back (its services stopped, part of the data put back): not starting them on "
                           f"half-restored data; `fabops backup -H h --restore {CUT} --yes` takes it over")
    assert got.notify == ("health_down", got.message)
    assert "restart" not in [w.action for w in actions(got)]


@pytest.mark.unit
@pytest.mark.parametrize("step", ("stop", "save", "put back", "start"))
def test_a_persons_restart_refuses_a_restore_cut_off_putting_items_back(step):
    """`restart` (and its dry run) reads state.json's mark with its other
    facts: at put back it restarts nothing (exit 5, as reset: docs/errors.md,
    tests/test_cut_off_codes.py) in the planner's words; a live lock still
    says locked first. At the other steps it restarts as before."""
    from fabops.maintenance.restart import RestartDecision, parse_restart_facts, refused_error, restart_would
    from fabops.probe import MARK
    from fabops.remote import restart_plan
    from tests.test_commands import _hostile_host

    host = _hostile_host("x")
    state = json.dumps({"deployed": "a" * 40, "in_progress": _marked(step)})
    _, _, moved, cut_off = parse_restart_facts(f"{MARK}head\n{'a' * 40}\n{MARK}state\n{state}\n{MARK}end\n", host, [])
    d = RestartDecision(restart_plan(host, None, {}), (), moved, cut_off)
    if step != "put back":
        assert (moved, cut_off, d.refusal()) == (None, None, None)
        return
    assert cut_off == restore_cut_off_text(CUT, host.name) and "takes it over" in cut_off
    assert d.refusal() == (5, [cut_off])
    assert [(w.action, w.why) for w in restart_would(host, d)] == [("stop", cut_off)]
    error = refused_error(host, d)
    assert error.exit_code == 5 and cut_off in str(error)
    locked = RestartDecision(restart_plan(host, None, {"actor": "a@b", "trigger": "cron", "phase": "change"}),
                             (), None, cut_off)
    assert locked.refusal() == (4, ["locked: cron by a@b"])


@pytest.mark.unit
@pytest.mark.parametrize("step", ("stop", "save", "put back", "start"))
def test_a_persons_reset_refuses_a_restore_cut_off_putting_items_back(step):
    """`reset` (and its dry run) reads state.json's mark in its plan's one
    round trip: at put back it refuses before it asks or changes anything
    (exit 5, broken, as docs/backups.md says of the planner's abort) in
    the planner's words, even with --force; a live lock still says locked
    first. At the other steps it resets as before."""
    from fabops.maintenance.reset import parse_reset_plan, reset_would
    from fabops.probe import MARK
    from tests.test_commands import _hostile_host

    host = _hostile_host("x")
    state = json.dumps({"deployed": "a" * 40, "in_progress": _marked(step)})
    p = parse_reset_plan(f"{MARK}head\n{'a' * 40}\n{MARK}state\n{state}\n{MARK}target\n{'b' * 40}\n{MARK}end\n", host)
    if step != "put back":
        assert (p.cut_off, p.refusal(False)) == (None, None)
        return
    assert p.cut_off == restore_cut_off_text(CUT, host.name) and "takes it over" in p.cut_off
    assert p.refusal(False) == p.refusal(True) == (5, [p.cut_off])
    assert [(w.action, w.why) for w in reset_would(host, p)] == [("stop", p.cut_off)]
    assert p.to_dict()["cut_off"] == p.cut_off
    p.lock, p.holder = "locked", "restore by a@b"
    assert p.refusal(False)[0] == 4


# ------------------------------------------------------------------ the sandbox host, a restore killed

BLOCK = 'if [ -e {flag} ]; then echo $$ > {pid}; exec sleep 120; fi; echo dumped'


def _settings(sandbox, flag, pid) -> str:
    import yaml

    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["backup"] = {"files": ["data"],
                                        "dump": [{"name": "db", "command": BLOCK.format(flag=flag, pid=pid)}]}
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(sandbox.inventory)


def test_a_killed_restore_is_shown_and_the_next_run_finishes_it(sandbox, tmp_path):
    code, _ = sandbox.result()
    assert code == 0
    (sandbox.app / "data").mkdir()
    (sandbox.app / "data" / "notes.txt").write_text("old\n")
    flag, pidfile = tmp_path / "block", tmp_path / "dump.pid"
    inv = _settings(sandbox, flag, pidfile)
    first = one(run_cli("backup", "-i", inv, "--json").stdout)
    assert first["ok"], first
    flag.touch()  # the restore's save of what is there now blocks in its dump: killed there
    killed_in_dump(["backup", "-i", inv, "--restore", first["run_id"], "--yes"], pidfile)
    mark = sandbox.state["in_progress"]
    assert (mark["trigger"], mark["run_id"], mark["step"]) == ("restore", first["run_id"], "restore: save"), mark
    r = run_cli("status", "-i", inv)
    assert f"run {first['run_id']} in progress or interrupted at step restore: save" in " ".join(r.stdout.split())
    dep = one(run_cli("monitor", "-i", inv, "--json").stdout)
    facts = dep.get("deploy") or dep
    assert facts.get("in_progress_step") == "restore: save", dep
    # the next run is not refused: cron's local-update finishes it, and the service is back
    flag.unlink()
    code, data = sandbox.result()
    # WARNING (1, docs/errors.md): deployed, with the interrupted restore it finished said
    assert (code, data["result"]) == (1, "deployed"), json.dumps(data, indent=1)
    assert any(f"interrupted run {first['run_id']} (restore, step restore: save)" in w
               for w in data.get("warnings") or []), data
    assert sandbox.state.get("in_progress") is None
    assert sandbox.health()
    # the killed save's partial snapshot goes with the next backup
    after = one(run_cli("backup", "-i", inv, "--json").stdout)
    assert after["ok"] and len(after.get("swept") or []) == 1, after


def _backed_up_then_changed(sandbox, tmp_path):
    """The sandbox deployed, data/notes.txt `old` backed up (a files item and
    a dump that does not block), then changed to `new`: (inventory, run id)."""
    code, _ = sandbox.result()
    assert code == 0
    (sandbox.app / "data").mkdir()
    (sandbox.app / "data" / "notes.txt").write_text("old\n")
    inv = _settings(sandbox, tmp_path / "never", tmp_path / "dump.pid")
    first = one(run_cli("backup", "-i", inv, "--json").stdout)
    assert first["ok"], first
    (sandbox.app / "data" / "notes.txt").write_text("new\n")
    return inv, first["run_id"]


def test_a_dropped_link_does_not_stop_the_restore(sandbox, tmp_path):
    """The laptop runs the host's restore without a terminal: the link
    dropping closes its stdout and nothing else, so the restore goes on to
    start the services, records itself and clears its mark."""
    from fabops import inventory
    from fabops.deploy import host_yml

    inv, run = _backed_up_then_changed(sandbox, tmp_path)
    host = inventory.load(inv).hosts["local"]
    proc = subprocess.Popen([sys.executable, "-I", "-m", "fabops.host.backup", "restore", run, "", ""],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/")
    proc.stdin.write(host_yml(host).encode())
    proc.stdin.close()
    proc.stdout.close()  # the link is gone: nobody reads the answer
    proc.wait(120)
    (rec,) = [r for r in sandbox.history() if r.get("trigger") == "restore"]
    assert rec["result"] == "restored", rec
    assert (sandbox.app / "data" / "notes.txt").read_text() == "old\n"
    assert sandbox.state.get("in_progress") is None and sandbox.health()


@pytest.mark.parametrize("width", (80, 200))
def test_a_restore_says_what_it_took_over_at_both_widths(width, capsys, monkeypatch):
    """An in-place restore that took over a cut-off one, as `inv backup
    --restore` prints it (tasks/backup.py: its lines, then each warning)."""
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import restore_lines
    from tests.test_golden import check, render

    value = {"restore": {"run_id": "20261201T030000-a1b2c3", "from": "local", "to": None, "ok": True,
                         "saved": "20261203T091500-0a1b2c", "refused": None,
                         "items": [{"name": "files", "file": "files.tar", "ok": True, "skipped": None, "error": None},
                                   {"name": "env", "file": "env", "ok": True, "skipped": None, "error": None}],
                         "services": [{"service": "bot", "ok": True, "message": "ready"}]},
             "warnings": ["taking over from an interrupted run 20261201T030000-a1b2c3 (restore, step restore: "
                          "put back): this restore starts the services again"]}
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in restore_lines(value) + [
        f"warning: {w}" for w in value["warnings"]]])
    check("restore-taken-over", width, text)


# The host's side of `backup --restore RUN --yes` (what the laptop runs,
# fabops.host.backup), with its put back held after the first item: the
# real restore, killed there as a host going down would cut it off.
HELD_IN_PUT_BACK = """
import os, runpy, sys, time
from fabops.host import restore
PID, put_item = sys.argv[1], restore.put_item
def held(*args, **kwargs):
    done = put_item(*args, **kwargs)
    with open(PID, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(120)
    return done
restore.put_item = held
sys.argv = ["fabops.host.backup", *sys.argv[2:]]
runpy.run_module("fabops.host.backup", run_name="__main__")
"""


def _killed_in_put_back(inv: str, run_id: str, pidfile) -> None:
    from fabops import inventory
    from fabops.deploy import host_yml

    host = inventory.load(inv).hosts["local"]
    proc = subprocess.Popen([sys.executable, "-c", HELD_IN_PUT_BACK, str(pidfile), "restore", run_id, "", ""],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd="/")
    try:
        proc.stdin.write(host_yml(host).encode())
        proc.stdin.close()
        deadline = time.monotonic() + 90
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, "the restore did not reach its put back"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_a_restore_killed_putting_items_back_is_left_down_until_a_restore_takes_it_over(sandbox, tmp_path):
    """Killed with one item back and the other not: cron's local-update and
    health --fix (and their dry runs) refuse and say the way out, the
    service stays down and the mark stays; `backup --restore RUN --yes`
    takes it over and starts the service on the whole snapshot."""
    inv, run = _backed_up_then_changed(sandbox, tmp_path)
    _killed_in_put_back(inv, run, tmp_path / "put.pid")
    mark = sandbox.state["in_progress"]
    assert (mark["trigger"], mark["run_id"], mark["step"]) == ("restore", run, "restore: put back"), mark
    # the host's words (the planner's, health --fix's) name no inventory; the laptop's (restart, reset,
    # monitor) add this run's `-i INV` (tests/test_restore_cut_off_hold.py checks both forms)
    take = f"--restore {run} --yes` takes it over"
    dry = sandbox.update("--dry-run")
    assert dry.returncode == 5 and take in dry.stdout, dry.stdout
    code, data = sandbox.result()
    assert (code, data["result"]) == (5, "broken") and take in data["message"], json.dumps(data, indent=1)
    for args in (("--dry-run",), ()):
        r = run_cli("health", "-i", inv, "--fix", *args)
        assert r.returncode == 2 and take in " ".join(r.stdout.split()), r.stdout + r.stderr
    for args in (("--dry-run",), ()):  # a person's restart refuses as reset does (exit 5, nothing restarted)
        r = run_cli("restart", "-i", inv, *args, env={"COLUMNS": "400"})
        assert r.returncode == 5 and take in " ".join((r.stdout + r.stderr).split()), r.stdout + r.stderr
    assert not [h for h in sandbox.history() if h.get("trigger") == "restart"]
    for args in (("--dry-run",), ("--yes",)):  # a person's reset refuses as the planner does (exit 5, nothing reset)
        r = run_cli("reset", "-i", inv, *args, env={"COLUMNS": "400"})
        assert r.returncode == 5 and take in " ".join((r.stdout + r.stderr).split()), r.stdout + r.stderr
    assert not [h for h in sandbox.history() if h.get("trigger") == "reset"]
    r = run_cli("status", "-i", inv)
    assert "takes it over" in " ".join(r.stdout.split()), r.stdout
    m = run_cli("monitor", "-i", inv, "--json")  # CRITICAL, in the same words (docs/monitor.md)
    facts = one(m.stdout)
    assert m.returncode == 2 and facts["deploy"]["restore_cut_off"] == run, m.stdout
    assert [f for f in facts["findings"] if take in f["message"] and f["level"] == "FAILED"], facts["findings"]
    assert sandbox.state["in_progress"] == mark
    with pytest.raises(OSError):  # still down: nothing started it
        sandbox.health()
    r = run_cli("backup", "-i", inv, "--restore", run, "--yes", "--json")
    done = one(r.stdout)
    assert r.returncode == 0 and done["restore"]["ok"], r.stdout + r.stderr
    assert any("taking over from an interrupted run" in w for w in done["warnings"]), done
    assert sandbox.state.get("in_progress") is None and sandbox.health()
    assert (sandbox.app / "data" / "notes.txt").read_text() == "old\n"


@pytest.mark.parametrize("width", (80, 200))
def test_status_names_the_way_out_of_a_restore_cut_off_putting_items_back(width, frozen, capsys, monkeypatch):
    """status' interrupted line, for a restore at put back: the command
    that takes it over, with the host (docs/backups.md)."""
    from fabops.tasks.render import status_panel
    from tests.test_golden import NOW, check, render
    data = {"services": [{"name": "bot", "active": False, "state": "inactive", "pid": None}],
            "deployed": "9b8c7d6e5f4a3b2c1d0e", "deployed_at": NOW - 7200, "head": "9b8c7d6e5f4a3b2c1d0e",
            "last_check": NOW - 120, "last_result": "broken",
            "in_progress": {**_marked("put back"), "run_id": "20261201T030000-a1b2c3"}}
    text = render(capsys, monkeypatch, width, status_panel, "web1", data)
    check("status-restore-cut-off", width, text)


@pytest.mark.unit
def test_the_dry_run_names_the_mark_the_update_log_and_what_it_takes_over(watched):
    """restore's dry run lists every write of the real one: the mark in
    state.json before the stop, the update-log line after the history, and
    an interrupted run's mark taken over (a restore's) or kept (a
    deploy's); while the host lock is held the mark is its live holder's,
    so nothing is said of it. The real run's history record keeps the
    take-over warning."""
    from fabops.host.lock import HostLock

    host, paths, _ = watched
    old = _snapshot(host, paths, "old\n")

    def dry():
        got = restore.planned(host, paths, old["run_id"], None, None, _saving(host, paths), 5)["would"]
        return [(w["action"], w["target"]) for w in got if w["action"] not in ("save", "replace", "write", "skip")]

    plain = [("restore", f"snapshot {old['run_id']}"), ("record", "state.json"), ("stop", "web"), ("start", "web"),
             ("record", "history.jsonl"), ("log", "update log")]
    assert dry() == plain
    merge_state_file(paths.state, {"in_progress": _marked("put back")})
    assert dry() == plain[:1] + [("take over", f"run {CUT}")] + plain[1:]
    with HostLock(paths.lock, {"actor": "ops@laptop", "trigger": "restore", "run_id": CUT}).acquire(wait=0):
        assert [a for a, _ in dry()][:2] == ["restore", "wait for"] and ("take over", f"run {CUT}") not in dry()
    deploy = {"run_id": "20261201T000000-000002", "trigger": "deploy", "from": "a", "to": "b", "step": "deps"}
    merge_state_file(paths.state, {"in_progress": deploy})
    assert ("keep", "run 20261201T000000-000002") in dry()
    merge_state_file(paths.state, {"in_progress": _marked("put back")})
    save = lambda: {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}  # noqa: E731
    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    (rec,) = [json.loads(ln) for ln in open(paths.history) if json.loads(ln).get("trigger") == "restore"]
    assert rec["warnings"] == done["warnings"] and "taking over from an interrupted run" in rec["warnings"][0]

    def failed():  # a restore that raises after taking over: its failed record says so too
        raise OSError(28, "No space left on device")

    merge_state_file(paths.state, {"in_progress": _marked("put back")})
    with pytest.raises(OSError):
        restore.restore(host, paths, old["run_id"], None, None, failed, 5, _saving(host, paths))
    rec = [json.loads(ln) for ln in open(paths.history)][-1]
    assert rec["result"] == "restore_failed" and rec["warnings"] == rec["warnings"][:1] == done["warnings"], rec


@pytest.mark.parametrize("width", (80, 200))
def test_a_restores_dry_run_says_what_it_takes_over_at_both_widths(width, capsys, monkeypatch):
    """`backup --restore RUN --dry-run` on a host a restore was cut off
    on, as tasks/backup.py prints it (host/would.lines)."""
    from fabops.host.restore import RestorePlan
    from fabops.host.would import as_json, lines
    from fabops.tasks._base import print_text
    from tests.test_golden import check, render

    p = RestorePlan("20261201T030000-a1b2c3", "local", "/srv/home/backups/20261201T030000-a1b2c3", None, (),
                    ("bot",), None)
    found = {**_marked("put back"), "run_id": "20261201T030000-a1b2c3"}
    said = lines(as_json(p.would("/srv/home/backups", {}, 600, found)))
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in said])
    check("restore-dry-run-take-over", width, text)
