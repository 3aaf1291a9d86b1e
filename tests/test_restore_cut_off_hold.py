"""A restore cut off while putting items back holds its services down
(issue #26, docs/backups.md "A restore cut off in the middle"): the hold
file (HostPaths.restore_hold) is written before the first item is put
back and removed once every item is back; while it stands the units'
launcher (host/launch.py, the unit's ExecStartPre=) and the process
manager's start refuse, a backup run refuses (exit 5, recorded and
notified), retention keeps what the restore needs, and restore-env
refuses (exit 5). Unit tier, then the sandbox host with a restore really
killed in its put back. The booted unit: tests/test_restore_reboot_systemd.py."""
import json
import os
import re
import subprocess

import pytest

from fabops.host import backup, launch, restore
from fabops.host.files import read_object
from fabops.host.plan import restore_cut_off_text
from fabops.host.state import merge_state_file
from tests.conftest import one, run_cli
from tests.test_backup_restore_unit import _saving, _snapshot, host_with_service  # noqa: F401 (a fixture)
from tests.test_backup_unit import local, repo_host
from tests.test_restore_cut_off import _backed_up_then_changed, _killed_in_put_back, watched  # noqa: F401

CUT = "20261201T000000-000001"
MARK = {"run_id": CUT, "trigger": "restore", "step": "restore: put back", "protect": ["20261201T000000-5a7e00"]}


@pytest.mark.unit
def test_the_hold_stands_from_before_the_first_item_until_every_item_is_back(host_with_service,  # noqa: F811
                                                                             monkeypatch):
    host, paths, log = host_with_service
    old = _snapshot(host, paths, "old\n")
    seen, put_item = [], restore.put_item

    def watched(*args, **kwargs):
        mark = read_object(paths.state).get("in_progress") or {}
        with open(paths.restore_hold, encoding="utf-8") as fh:
            seen.append((mark.get("step"), mark.get("protect"), fh.read()))
        return put_item(*args, **kwargs)

    monkeypatch.setattr(restore, "put_item", watched)
    save = lambda: {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}  # noqa: E731
    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert done["restore"]["ok"] and seen, done
    words = restore_cut_off_text(old["run_id"], host.name)
    assert seen[0] == ("restore: put back", ["20261206T000000-abcdef"], words + "\n")
    assert "takes it over" in words and not os.path.lexists(paths.restore_hold)
    assert log == [("stop", "web"), ("start", "web")]


@pytest.mark.unit
def test_a_take_over_whose_save_is_refused_leaves_the_cut_off_restore_down(host_with_service):  # noqa: F811
    """Nothing of its own put back, the data is still half the cut-off
    restore's: its mark goes back, the hold stays, nothing is started."""
    host, paths, log = host_with_service
    old = _snapshot(host, paths, "old\n")
    merge_state_file(paths.state, {"in_progress": MARK})
    restore.write_hold(paths, restore_cut_off_text(CUT, host.name))
    bad = lambda: {"run_id": "20261206T000000-abcdef", "ok": False,  # noqa: E731
                   "items": [{"name": "files", "ok": False, "error": "OSError: No space left on device"}]}
    done = restore.restore(host, paths, old["run_id"], None, None, bad, 5, _saving(host, paths))
    assert not done["restore"]["ok"] and "the services stay down" in done["restore"]["refused"], done
    assert log == [("stop", "web")]
    assert read_object(paths.state)["in_progress"] == MARK and os.path.lexists(paths.restore_hold)


@pytest.mark.unit
def test_a_take_over_is_cut_off_until_its_own_put_back_is_done(watched):  # noqa: F811
    """Killed while it stops or saves, the take-over's mark still says the
    data is half put back (the planner refuses it, never restarts it)."""
    host, paths, log = watched
    old = _snapshot(host, paths, "old\n")
    merge_state_file(paths.state, {"in_progress": MARK})
    restore.write_hold(paths, restore_cut_off_text(CUT, host.name))
    steps = []

    def save():
        steps.append(read_object(paths.state)["in_progress"]["step"])
        return {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}

    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert done["restore"]["ok"] and steps == ["restore: put back"], done
    assert log == [("stop", "web", "restore", "restore: put back"), ("start", "web", "restore", "restore: start")]
    assert read_object(paths.state).get("in_progress") is None and not os.path.lexists(paths.restore_hold)


@pytest.mark.unit
def test_the_take_over_command_names_the_inventory_it_needs():
    from fabops.shell import program

    assert f"`{program()} backup -i 'ops/prod hosts.yml' -H web1 --restore {CUT} --yes` takes it over" in \
        restore_cut_off_text(CUT, "web1", "ops/prod hosts.yml")
    assert f"`{program()} backup -H web1 --restore {CUT} --yes`" in restore_cut_off_text(CUT, "web1")


@pytest.mark.unit
def test_the_launcher_refuses_while_the_hold_stands_and_says_why(tmp_path, capsys):
    hold = str(tmp_path / "restore-cut-off")
    assert launch.main(["--hold", hold]) == 0  # the unit's check alone: no hold, it may start
    words = restore_cut_off_text(CUT, "web1")
    with open(hold, "w") as fh:
        fh.write(words + "\n\x1b[2J")
    capsys.readouterr()
    assert launch.main(["--hold", hold]) == launch.EX_TEMPFAIL
    assert launch.main(["--hold", hold, str(tmp_path / ".env"), "touch started"]) == launch.EX_TEMPFAIL
    err = capsys.readouterr().err.splitlines()
    assert err == [f"fabops: not starting: {words} (the hold {hold} goes when the restore is finished)"] * 2
    assert "\x1b" not in err[0] and not (tmp_path / "started").exists()
    assert launch.main(["--hold"]) == 64


@pytest.mark.unit
def test_setup_writes_the_check_into_the_unit_and_the_launcher():
    from fabops.setup import launcher_path, launcher_text, unit_text
    from tests.test_commands import _hostile_host

    host = _hostile_host("x")
    svc = host.services[0]
    unit = unit_text(host, svc, "/home/deploy")
    assert f"\nExecStartPre={launcher_path(host, svc)} --check\n" in unit
    assert "\nRestartPreventExitStatus=75\n" in unit  # the refusal is no crash to restart from
    text = launcher_text(host, svc, "/home/deploy")
    assert text.count("-m fabops.host.launch --hold ") == 2 and '[ "$1" = --check ] && exec ' in text


@pytest.mark.unit
def test_a_process_service_refuses_to_start_while_the_hold_stands(tmp_path):
    from fabops.host.services import process_start_cmd
    from fabops.paths import HostPaths
    from tests.test_commands import _hostile_host

    svc = _hostile_host("x").services[0]
    paths = HostPaths(str(tmp_path / "home"))
    os.makedirs(paths.home)
    (tmp_path / "app" / svc.workdir).mkdir(parents=True)
    restore.write_hold(paths, restore_cut_off_text(CUT, "web1"))
    r = subprocess.run(["sh", "-c", str(process_start_cmd(paths.home, str(tmp_path / "app"), svc))],
                       capture_output=True, text=True)
    line = f"fabops: not starting: {restore_cut_off_text(CUT, 'web1')} (the hold {paths.restore_hold} goes when " \
           "the restore is finished)\n"
    assert (r.returncode, r.stderr, r.stdout) == (75, line, "")
    assert open(paths.service_log(svc.name)).read() == line and not os.path.exists(paths.service_pid(svc.name))


@pytest.mark.unit
@pytest.mark.parametrize("how", ("mark", "hold"))
def test_a_backup_run_refuses_while_a_restore_is_cut_off(tmp_path, monkeypatch, how):
    """A failed run, recorded and notified as the others, exit 5; no
    snapshot and no retention."""
    host, paths = local(tmp_path, {"files": ["data"]})
    (tmp_path / "app" / "data").mkdir()
    sent = []
    monkeypatch.setattr("fabops.notify.notify", lambda name, event, message, home=None: sent.append(message) or [])
    words = restore_cut_off_text(CUT, host.name)
    if how == "mark":
        merge_state_file(paths.state, {"in_progress": MARK})
    else:  # a take-over that saved nothing put the mark back; a hold alone refuses too
        os.makedirs(paths.home, exist_ok=True)
        restore.write_hold(paths, words)
    done = backup.locked_run(host, paths)
    assert (done["ok"], done["cut_off"], done["error"]) == (False, True, f"not backing up: {words}")
    assert backup.exit_code("run", done) == 5 and sent == [f"not backing up: {words}"]
    assert backup.snapshots(paths) == []
    rec = [json.loads(ln) for ln in open(paths.history)][-1]
    assert (rec["result"], rec["exit_code"], rec["message"]) == ("backup_failed", 5, f"not backing up: {words}")


@pytest.mark.unit
def test_retention_never_deletes_what_a_marked_restore_needs(tmp_path, monkeypatch):
    """Locally and in the repository: the snapshot it puts back, the one
    it took over and the saves of what was there before."""
    from dataclasses import replace

    host, paths = repo_host(tmp_path, files=["data"], keep={"daily": 1, "weekly": 0, "monthly": 0})
    (tmp_path / "app" / "data").mkdir()
    first = backup.run(replace(backup.plan(host, paths), delete=()), paths)
    second = backup.run(replace(backup.plan(host, paths), delete=()), paths)
    assert backup.plan(host, paths).delete == tuple(sorted([first["run_id"], second["run_id"]]))
    mark = {"run_id": second["run_id"], "trigger": "restore", "step": "restore: start", "protect": [first["run_id"]]}
    merge_state_file(paths.state, {"in_progress": mark})
    assert backup.protected(paths) == {first["run_id"], second["run_id"]}
    assert backup.plan(host, paths).delete == ()
    kept = {}

    def offsite(host, local, retention):
        kept["forgotten"] = retention(local)
        return {"ok": True, "uploaded": [], "pruned": True, "has": [s.run_id for s in local]}

    monkeypatch.setattr("fabops.host.restic.offsite", offsite)
    backup.run_rest(host, paths, backup.plan(host, paths), {**first, "ok": True, "warnings": []})
    assert kept["forgotten"] == []


# ------------------------------------------------------------------ the sandbox host, a restore killed


def test_a_restore_killed_putting_items_back_holds_its_data_until_taken_over(sandbox, tmp_path):
    """Killed with one item back: the hold stands, the process service
    refuses to start, a backup run and restore-env refuse (exit 5), and the
    take-over removes the hold and starts the service."""
    from fabops import inventory
    from fabops.errors import CommandFailed
    from fabops.paths import HostPaths

    inv, run_id = _backed_up_then_changed(sandbox, tmp_path)
    name = one(run_cli("backup-env", "-i", inv, "--json").stdout)["name"]
    _killed_in_put_back(inv, run_id, tmp_path / "put.pid")
    hold = HostPaths(str(sandbox.home)).restore_hold
    take = f"`fabops backup -H local --restore {run_id} --yes` takes it over"
    assert take in open(hold).read()
    # the laptop's words name this run's inventory (not the default one), so its command is copyable
    took = f"`fabops backup -i {inv} -H local --restore {run_id} --yes` takes it over"
    r = run_cli("backup", "-i", inv, "--dry-run", env={"COLUMNS": "400"})  # its dry run says the same
    said = " ".join(r.stdout.split())
    assert r.returncode == 5 and said.startswith("[local] would stop: not backing up: ") and take in said, r.stdout
    r = run_cli("backup", "-i", inv, "--json")
    assert r.returncode == 5 and take in one(r.stdout)["error"], r.stdout + r.stderr
    assert [h["exit_code"] for h in sandbox.history() if h.get("trigger") == "backup"][-1] == 5
    for args in (("--dry-run",), ("--yes",)):
        r = run_cli("restore-env", "-i", inv, "-b", name, *args, env={"COLUMNS": "400"})
        assert r.returncode == 5 and took in " ".join((r.stdout + r.stderr).split()), r.stdout + r.stderr
    for task in (("restart", "--dry-run"), ("reset", "--dry-run")):  # their codes: tests/test_restore_cut_off.py
        r = run_cli(*task, "-i", inv, env={"COLUMNS": "400"})
        assert r.returncode != 0 and took in " ".join((r.stdout + r.stderr).split()), r.stdout + r.stderr
    m = one(run_cli("monitor", "-i", inv, "--json").stdout)
    assert [f for f in m["findings"] if took in f["message"]], m["findings"]
    with pytest.raises(CommandFailed, match="not starting: .*" + re.escape(take)):  # the process manager's own start
        host = inventory.load(inv).hosts["local"]
        restore.service_manager(host).start(host.services[0])
    assert not list(sandbox.home.glob("services/*.pid")), "a service was started"
    r = run_cli("backup", "-i", inv, "--restore", run_id, "--yes", "--json")
    assert r.returncode == 0 and one(r.stdout)["restore"]["ok"], r.stdout + r.stderr
    assert not os.path.lexists(hold) and sandbox.health()


@pytest.mark.unit
@pytest.mark.parametrize("width", (80, 200))
def test_a_refused_backup_run_says_why_at_both_widths(width, capsys, monkeypatch):
    """As `inv backup` prints it (tasks/backup.py: its lines, then each warning)."""
    from fabops.host.report import backup_run_lines
    from fabops.host.would import lines
    from fabops.tasks._base import print_text
    from tests.test_golden import check, render

    value = {"run_id": "20261203T091500-0a1b2c", "ok": False, "items": [], "cut_off": True, "commit": None,
             "error": f"not backing up: {restore_cut_off_text('20261201T030000-a1b2c3', 'web1')}", "warnings": []}
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in backup_run_lines(value)])
    check("backup-refused-cut-off", width, text)
    dry = [{"action": "stop", "target": "-", "why": value["error"]}]  # its dry run's (host/backup.result)
    text = render(capsys, monkeypatch, width, lambda: [print_text(ln) for ln in lines(dry, "[web1] ")])
    check("backup-dry-run-refused-cut-off", width, text)
