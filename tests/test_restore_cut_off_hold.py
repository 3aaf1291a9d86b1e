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
def test_a_cut_off_mark_without_its_hold_is_held_all_the_same(watched):  # noqa: F811
    """state.json alone says so (a restore cut off under a fabops before the
    hold, or killed between hold()'s two writes): the take-over's mark says
    put back from the first and the hold is written, so neither a kill
    while it saves nor a reboot starts the services."""
    host, paths, log = watched
    old = _snapshot(host, paths, "old\n")
    merge_state_file(paths.state, {"in_progress": MARK})
    seen = []

    def save():
        seen.append((read_object(paths.state)["in_progress"]["step"], os.path.lexists(paths.restore_hold)))
        return {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}

    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert done["restore"]["ok"] and seen == [("restore: put back", True)], done
    assert read_object(paths.state).get("in_progress") is None and not os.path.lexists(paths.restore_hold)


@pytest.mark.unit
def test_a_take_over_of_a_mark_alone_whose_save_is_refused_starts_nothing(host_with_service):  # noqa: F811
    host, paths, log = host_with_service
    old = _snapshot(host, paths, "old\n")
    merge_state_file(paths.state, {"in_progress": MARK})
    bad = lambda: {"run_id": "20261206T000000-abcdef", "ok": False,  # noqa: E731
                   "items": [{"name": "files", "ok": False, "error": "OSError: No space left on device"}]}
    done = restore.restore(host, paths, old["run_id"], None, None, bad, 5, _saving(host, paths))
    assert not done["restore"]["ok"] and "the services stay down" in done["restore"]["refused"], done
    assert log == [("stop", "web")]
    assert read_object(paths.state)["in_progress"] == MARK
    assert open(paths.restore_hold).read() == restore_cut_off_text(CUT, host.name) + "\n"


@pytest.mark.unit
def test_an_item_not_put_back_keeps_the_hold_and_starts_nothing(host_with_service, monkeypatch):  # noqa: F811
    """The data is half the snapshot's: the hold and the mark at put back
    stay, nothing starts, exit 5 with the way out; a restore again that
    puts every item back starts them."""
    host, paths, log = host_with_service
    old = _snapshot(host, paths, "old\n")
    put_item = restore.put_item

    def failing(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(restore, "put_item", failing)
    save = lambda: {"run_id": "20261206T000000-abcdef", "ok": True, "items": []}  # noqa: E731
    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    r = done["restore"]
    assert not r["ok"] and r["services"] == [] and log == [("stop", "web")], done
    take = f"`fabops backup -H {host.name} --restore {old['run_id']} --yes` puts every item back and starts them"
    assert r["held"].startswith("not every item was put back (") and r["held"].endswith(take), r["held"]
    assert backup.exit_code("restore", done) == 5
    mark = read_object(paths.state)["in_progress"]
    assert (mark["run_id"], mark["step"]) == (old["run_id"], "restore: put back")
    assert open(paths.restore_hold).read() == restore_cut_off_text(old["run_id"], host.name) + "\n"
    rec = [json.loads(ln) for ln in open(paths.history)][-1]
    assert (rec["result"], rec["exit_code"]) == ("restore_failed", 5) and r["held"] in rec["message"], rec
    monkeypatch.setattr(restore, "put_item", put_item)
    done = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))
    assert done["restore"]["ok"] and log == [("stop", "web"), ("stop", "web"), ("start", "web")], done
    assert read_object(paths.state).get("in_progress") is None and not os.path.lexists(paths.restore_hold)


@pytest.mark.unit
@pytest.mark.parametrize("width", (80, 200))
def test_a_held_restore_says_why_at_both_widths(width, capsys, monkeypatch):
    """As `inv backup --restore` prints it (tasks/backup.restore_lines)."""
    from fabops.host.restore import kept_down
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import restore_lines
    from tests.test_golden import check, render

    items = [{"name": "files", "file": "files.tar", "ok": False, "skipped": None, "put": [],
              "error": "OSError: [Errno 28] No space left on device"}]
    value = {"restore": {"run_id": "20261201T030000-a1b2c3", "from": "local", "to": None, "ok": False,
                         "saved": "20261203T091500-0a1b2c", "refused": None, "items": items, "services": [],
                         "held": kept_down(items, "20261201T030000-a1b2c3", "web1")}}
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in restore_lines(value)])
    check("restore-held", width, text)


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


# what a venv's fabops.host.launch did before the hold (any fabops a deploy's install may put back): exactly
# ENV_FILE COMMAND, else usage (64); here a stand-in python that runs the command as that module would
OLD_LAUNCH = """#!/bin/sh
[ "$1 $2 $3" = "-I -m fabops.host.launch" ] && [ $# -eq 5 ] || { echo "usage: ENV_FILE COMMAND" >&2; exit 64; }
exec /bin/sh -c "exec $5"
"""


def _launcher(tmp_path):
    """setup's launcher for a service whose command touches `started`, its
    venv's python the stand-in for an older fabops (OLD_LAUNCH)."""
    from dataclasses import replace

    from fabops import inventory
    from fabops.setup import launcher_text

    data = {"hosts": {"h": {"address": "h", "app": {"path": str(tmp_path / "app")}, "home": str(tmp_path / "home"),
                            "services": [{"name": "web.service", "command": f"touch {tmp_path / 'started'}"}]}}}
    host = inventory.from_data(data).hosts["h"]
    python = host.paths.venv_bin("python")
    os.makedirs(os.path.dirname(python))
    with open(python, "w") as fh:
        fh.write(OLD_LAUNCH)
    os.chmod(python, 0o755)
    script = tmp_path / "launcher"
    script.write_text(launcher_text(host, replace(host.services[0]), str(tmp_path)))
    return host, ["sh", str(script)]


@pytest.mark.unit
def test_setup_writes_the_check_into_the_unit_and_the_launcher():
    """ExecCondition=: a held start is skipped, not failed and retried; no
    RestartPreventExitStatus=, so an app's own exit 75 is restarted as before."""
    from fabops.setup import launcher_path, unit_text
    from tests.test_commands import _hostile_host

    host = _hostile_host("x")
    svc = host.services[0]
    unit = unit_text(host, svc, "/home/deploy")
    assert f"\nExecCondition={launcher_path(host, svc)} --check\nExecStart={launcher_path(host, svc)}\n" in unit
    assert "ExecStartPre=" not in unit and "RestartPreventExitStatus" not in unit


@pytest.mark.unit
def test_the_launcher_holds_whatever_fabops_the_venv_has(tmp_path):
    """The check is the launcher's own sh: with an older fabops in the venv
    (two arguments, no --hold) the unit still starts, its check passes, and
    a hold still refuses without running the venv's python at all."""
    host, launcher = _launcher(tmp_path)
    assert subprocess.run([*launcher, "--check"], capture_output=True, text=True).returncode == 0
    assert not (tmp_path / "started").exists()  # the check alone starts nothing
    r = subprocess.run(launcher, capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "started").exists(), r.stderr
    (tmp_path / "started").unlink()
    os.makedirs(host.paths.home, exist_ok=True)
    restore.write_hold(host.paths, restore_cut_off_text(CUT, "h"))
    line = f"fabops: not starting: {restore_cut_off_text(CUT, 'h')} (the hold {host.paths.restore_hold} goes when " \
           "the restore is finished)\n"
    for args in (["--check"], []):
        r = subprocess.run([*launcher, *args], capture_output=True, text=True)
        assert (r.returncode, r.stderr) == (75, line)
    assert not (tmp_path / "started").exists()


HOLDS = {  # a hold's first line as written, by whatever wrote it
    "words": restore_cut_off_text(CUT, "web1").encode() + b"\n",
    "escapes": b"a  restore \x1b[2J\x1b]0;pwned\x07 of  X\t\x9b31m\xc2\x9b bad \xff\xfe\n\x1b[1msecond line\n",
    "long": b"x" * 5000 + b"\n",
    "empty": b"",
    "blank": b" \x01 \n words on the second line\n",
}


@pytest.mark.unit
@pytest.mark.parametrize("kind", [*HOLDS, "dangling link", "a directory"])
def test_the_hold_is_read_one_way_everywhere(tmp_path, kind):
    """host/hold.py's rule, in Python (backup runs, restores, the launcher's
    --hold) and in sh (the units' launcher, process and systemd starts):
    the same words, control characters and other bytes dropped, and a
    dangling link or anything else at the path holds."""
    from fabops.host.hold import hold_check, read_hold, refusal

    hold = str(tmp_path / "restore-cut-off")
    if kind == "dangling link":
        os.symlink(str(tmp_path / "gone"), hold)
    elif kind == "a directory":
        os.mkdir(hold)
    else:
        with open(hold, "wb") as fh:
            fh.write(HOLDS[kind])
    words = read_hold(hold)
    assert words and all(32 <= ord(ch) <= 126 for ch in words) and len(words) <= 4000
    r = subprocess.run(["sh", "-c", str(hold_check(hold)) + "echo started"], capture_output=True)
    assert (r.returncode, r.stdout, r.stderr.decode()) == (75, b"", refusal(words, hold) + "\n")
    if kind == "escapes":
        assert words == "a restore [2J]0;pwned of X31m bad"  # a tab is no printable ASCII either
    if kind in ("empty", "blank", "dangling link", "a directory"):
        assert words == f"a restore's hold {hold} is there"
    os.rmdir(hold) if kind == "a directory" else os.unlink(hold)
    assert read_hold(hold) is None
    r = subprocess.run(["sh", "-c", str(hold_check(hold)) + "echo started"], capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (0, "started\n")


@pytest.mark.unit
def test_a_backup_run_refuses_on_a_dangling_hold_in_its_words(tmp_path):
    """Its text goes to history, the update log and chat: read_hold's."""
    host, paths = local(tmp_path, {"files": ["data"]})
    os.makedirs(paths.home, exist_ok=True)
    with open(paths.restore_hold, "wb") as fh:
        fh.write(b"held \x1b[31mred\x1b[0m\n")
    assert backup.cut_off(host, paths) == "not backing up: held [31mred[0m"
    os.unlink(paths.restore_hold)
    os.symlink(str(tmp_path / "gone"), paths.restore_hold)
    assert backup.cut_off(host, paths) == f"not backing up: a restore's hold {paths.restore_hold} is there"


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
    monkeypatch.setattr("fabops.notify.notify", lambda name, event, message, home=None, environment=None: sent.append(message) or [])
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
