"""A backup run cut off before its manifest leaves `.RUN_ID.partial` behind
(issue #26, docs/backups.md "Local snapshot layout"): the next run removes
it once it holds the host lock, and says so; a partial is never a
snapshot; a partial a live run writes (the host lock held) is never
touched. Unit tier, then the sandbox host with a run really killed."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fabops import inventory
from fabops.host import backup
from fabops.host.lock import HostLock
from fabops.paths import HostPaths
from tests.conftest import json_schema, one, run_cli

STALE = "20261201T030000-a1b2c3"


def local(tmp_path, **settings):
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / ".env").write_text("A=1\n")
    data = {"hosts": {"h": {"connection": "local", "app": {"path": str(tmp_path / "app")},
                            "home": str(tmp_path / "home"), "backup": settings}}}
    host = inventory.from_data(data).hosts["h"]
    return host, HostPaths.for_home(host.home)


def left_behind(paths: HostPaths, run_id: str = STALE, size: int = 1000) -> str:
    """A partial directory as a killed run leaves it: some items, no manifest."""
    partial = paths.backup_partial(run_id)
    os.makedirs(partial, mode=0o700)
    with open(os.path.join(partial, "files.tar"), "wb") as fh:
        fh.write(b"x" * size)
    return partial


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setattr(backup, "notify_once", lambda host, paths, done: [])


@pytest.mark.unit
def test_a_partial_is_never_a_snapshot_and_the_plan_names_it(tmp_path):
    host, paths = local(tmp_path)
    left_behind(paths, size=1500)
    os.makedirs(os.path.join(paths.backups, ".restore-abc"))  # a restore's fetch: not a run's partial
    os.makedirs(os.path.join(paths.backups, ".partial"))  # no run id: not named as a run's partial is
    assert backup.snapshots(paths) == []  # --list and retention never read it
    p = backup.plan(host, paths, run_id=backup.DRY_RUN_ID)
    assert p.partials == ((f".{STALE}.partial", 1500),)
    assert p.fetches == ((".restore-abc", 0),)  # a restore's fetch: listed apart (sweep_fetches)
    (first, second, *_) = p.would()
    assert (first.action, first.target) == ("delete", f".{STALE}.partial")
    assert "1.5 KiB" in first.why and "host lock" in first.why
    assert (second.action, second.target) == ("delete", ".restore-abc") and "backup lock" in second.why


# ------------------------------------------------------------------ a restore's fetch a cut-off restore left


def fetched(paths: HostPaths, name: str = ".restore-k1ll3d") -> str:
    """A `.restore-*` directory as a restore killed during its fetch leaves it: a decrypted copy, .env included."""
    inner = os.path.join(paths.backups, name, "home", "backups", STALE)
    os.makedirs(inner, mode=0o700)
    with open(os.path.join(inner, "env"), "w", encoding="utf-8") as fh:
        fh.write("TOKEN=secret\n")
    return os.path.join(paths.backups, name)


@pytest.mark.unit
def test_the_next_run_removes_a_cut_off_restores_fetch(tmp_path, quiet):
    host, paths = local(tmp_path)
    said = swept_once(host, paths, fetched(paths), 13, "restore fetch")
    assert said.startswith("removed 1 restore fetch directory (13 B) that restores cut off while fetching") \
        and said.endswith(": .restore-k1ll3d")


@pytest.mark.unit
def test_a_live_restores_fetch_is_never_touched(tmp_path, quiet, monkeypatch):
    """A restore holds the backup lock while its `.restore-*` directory
    exists: a run meanwhile (the host lock free) leaves it, and does not
    wait for the backup lock under the host lock (the restore takes the
    host lock next)."""
    host, paths = local(tmp_path)
    monkeypatch.setattr(backup, "LOCK_WAIT", 0.5)  # the off-host section's wait: the restore goes on holding it
    live = fetched(paths, ".restore-l1ve")
    lock = HostLock(paths.backup_lock, {"trigger": "restore", "actor": "other"})
    assert lock.try_acquire()
    try:
        assert backup.result("plan", host, paths)["would"][0]["target"] != ".restore-l1ve"  # not listed either
        done = backup.locked_run(host, paths)
    finally:
        lock.release()
    assert os.path.isfile(os.path.join(live, "home", "backups", STALE, "env")) and "swept" not in done
    assert not [w for w in done["warnings"] if "restore fetch" in w]


@pytest.mark.unit
def test_the_dry_run_lists_no_partial_while_a_run_holds_the_host_lock(tmp_path):
    """A live run's partial is there while it holds the host lock; the real
    run waits for the lock and finds it finished: the dry run says the wait,
    naming the holder, and lists no partial (#26)."""
    host, paths = local(tmp_path)
    left_behind(paths)
    fetched(paths)
    lock = HostLock(paths.lock, {"trigger": "deploy", "actor": "alice", "run_id": STALE})
    assert lock.try_acquire()
    try:
        held = backup.result("plan", host, paths)
    finally:
        lock.release()
    first, *rest = held["would"]
    assert (first["action"], first["target"]) == ("wait for", "the host lock")
    assert first["why"].startswith("held by deploy by alice (") and f"run {STALE}" in first["why"]
    assert "removes the partial snapshots and restore fetch directories" in first["why"]
    assert not [w for w in rest if w["action"] == "delete"]
    free = backup.result("plan", host, paths)["would"]  # the lock free: both listed, as before
    assert [w["target"] for w in free if w["action"] == "delete"] == [f".{STALE}.partial", ".restore-k1ll3d"]
    import jsonschema

    jsonschema.validate(held["would"], json_schema("would"))


def swept_once(host, paths: HostPaths, left: str, size: int, word: str) -> str:
    """A run that removes `left` (`size` bytes): its one warning with
    `word`, which its manifest (with its swept) and its history record say
    too, and the run after it, which has nothing to remove and says nothing
    of it. That warning."""
    import jsonschema

    done = backup.locked_run(host, paths)
    assert done["ok"] and not os.path.exists(left)
    assert done["swept"] == [{"name": os.path.basename(left), "size": size}]
    (said,) = [w for w in done["warnings"] if word in w]
    with open(paths.backup_manifest(paths.backup_snapshot(done["run_id"])), encoding="utf-8") as fh:
        manifest = json.load(fh)
    assert manifest["swept"] == done["swept"] and said in manifest["warnings"]
    with open(paths.history, encoding="utf-8") as fh:
        (rec,) = [json.loads(line) for line in fh]
    assert said in rec["warnings"] and rec["result"] == "backed_up"
    jsonschema.validate(done, json_schema("backup"))
    again = backup.locked_run(host, paths)
    assert "swept" not in again and not [w for w in again["warnings"] if word in w]
    return said


@pytest.mark.unit
def test_the_next_run_removes_it_and_says_so(tmp_path, quiet):
    host, paths = local(tmp_path)
    said = swept_once(host, paths, left_behind(paths), 1000, "partial")
    assert said.startswith("removed 1 partial snapshot (1000 B) that runs cut off") and STALE in said


@pytest.mark.unit
def test_one_that_cannot_be_removed_is_a_warning_and_the_run_goes_on(tmp_path, quiet, monkeypatch):
    host, paths = local(tmp_path)
    partial = left_behind(paths)

    def refuse(path, *a, **k):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(backup.shutil, "rmtree", refuse)
    done = backup.locked_run(host, paths)
    assert done["ok"] and os.path.isdir(partial) and "swept" not in done
    assert [w for w in done["warnings"] if w.startswith(f"could not remove {partial}")] == \
        [f"could not remove {partial}, a partial snapshot a cut-off run left: {partial}: Permission denied"]


@pytest.mark.unit
def test_a_live_runs_partial_is_never_touched(tmp_path, quiet, monkeypatch):
    """A run writing its partial holds the host lock (a backup's snapshot, a
    restore's save): the next run waits for the lock, and by then the
    partial is a finished snapshot, which it keeps."""
    host, paths = local(tmp_path)
    monkeypatch.setattr(backup, "retain", lambda *a, **k: [])  # two runs in a day: retention is not this test's
    lock = HostLock(paths.lock, {"trigger": "backup", "actor": "other"})
    assert lock.try_acquire()
    try:
        live = backup.plan(host, paths)
        os.makedirs(paths.backups, mode=0o700, exist_ok=True)
        os.mkdir(paths.backup_partial(live.run_id), 0o700)  # the live run, mid-way
        out = {}
        t = threading.Thread(target=lambda: out.update(backup.locked_run(host, paths)))
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "the second run must wait for the host lock"
        assert os.path.isdir(paths.backup_partial(live.run_id))
        # the live run finishes its snapshot (its manifest in, renamed) while it holds the lock
        os.rmdir(paths.backup_partial(live.run_id))
        backup.write_snapshot(live, paths)
    finally:
        lock.release()
    t.join(30)
    assert out["ok"] and "swept" not in out
    assert {s.run_id for s in backup.snapshots(paths)} == {live.run_id, out["run_id"]}


# ------------------------------------------------------------------ the sandbox host, a run killed

BLOCK = "echo $$ > {pid}; exec sleep 120"


def _inventory(sandbox, settings: dict) -> str:
    import yaml

    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["backup"] = settings
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(sandbox.inventory)


def killed_in_dump(argv, pidfile, env=None) -> None:
    """`fabops ARGV` killed (SIGKILL, its whole process group) once its
    dump blocks (the dump wrote its pid to `pidfile`), and that dump too:
    it runs in a session of its own (copy_dump), so it is ended here, not
    left to sleep. `env`: added to this one's (a fake restic first on PATH)."""
    proc = subprocess.Popen([sys.executable, "-m", "fabops.cli", *argv], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env={**os.environ, **env} if env else None)
    try:
        deadline = time.monotonic() + 90
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, f"{argv[0]} did not reach its dump"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if pidfile.exists() and pidfile.read_text().strip():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _kill_mid_run(sandbox, inv: str, pidfile) -> str:
    """`fabops backup` killed while its dump blocks: the partial it was writing, left behind."""
    killed_in_dump(["backup", "-i", inv], pidfile)
    (partial,) = [n for n in os.listdir(sandbox.home / "backups") if n.endswith(".partial")]
    return partial


def test_a_killed_runs_partial_is_removed_by_the_next_run(sandbox, tmp_path):
    pidfile = tmp_path / "dump.pid"
    inv = _inventory(sandbox, {"files": [".env"], "dump": [{"name": "slow", "command": BLOCK.format(pid=pidfile)}]})
    partial = _kill_mid_run(sandbox, inv, pidfile)
    assert (sandbox.home / "backups" / partial / "files.tar").exists()  # half a run: items, no manifest
    inv = _inventory(sandbox, {"files": [".env"]})
    listed = one(run_cli("backup", "-i", inv, "--list", "--json").stdout)
    assert listed["snapshots"] == []  # never counted as a snapshot
    r = run_cli("backup", "-i", inv, "--dry-run")
    assert r.returncode == 0 and f"would delete {partial}: a partial snapshot (" in r.stdout, r.stdout
    assert (sandbox.home / "backups" / partial).exists()  # the dry run removes nothing
    r = run_cli("backup", "-i", inv)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"warning: removed 1 partial snapshot (" in r.stdout and partial in r.stdout, r.stdout
    assert not (sandbox.home / "backups" / partial).exists()
    (snap,) = os.listdir(sandbox.home / "backups")
    manifest = json.loads((sandbox.home / "backups" / snap / "manifest.json").read_text())
    assert [s["name"] for s in manifest["swept"]] == [partial] and manifest["swept"][0]["size"] > 0


# a restic that has one snapshot of run STALE and blocks in its restore once it has written part of it
# (a decrypted .env), as a long fetch does: its pid in the pid file, then it sleeps
FAKE_RESTIC = """#!/bin/sh
case "$3" in
snapshots) echo '[{{"id": "0123456789abcdef", "short_id": "01234567", "paths": ["/srv/backups/{run}"],
  "tags": ["run={run}"]}}]' ;;
restore) mkdir -p "$6/srv/backups/{run}" && echo TOKEN=fetched > "$6/srv/backups/{run}/env"
  echo $$ > {pid}; exec sleep 120 ;;
*) exit 1 ;;
esac
"""


def test_a_restore_killed_in_its_fetch_leaves_a_directory_the_next_run_removes(sandbox, tmp_path):
    """SIGKILL during a restore's restic restore (no handler runs) leaves
    its `.restore-*` directory, a decrypted copy: the next backup run
    removes it under the backup lock and says so (docs/backups.md)."""
    pidfile, fake = tmp_path / "restic.pid", tmp_path / "bin"
    fake.mkdir()
    (fake / "restic").write_text(FAKE_RESTIC.format(run=STALE, pid=pidfile))
    (fake / "restic").chmod(0o755)
    pw = tmp_path / "restic-password"
    pw.write_text("pw\n")
    pw.chmod(0o600)
    inv = _inventory(sandbox, {"files": [".env"], "repository": {"url": "sftp:nowhere:/r", "password_file": str(pw)}})
    killed_in_dump(["backup", "-i", inv, "--restore", STALE, "--to", str(tmp_path / "look")], pidfile,
                   env={"PATH": f"{fake}:{os.environ['PATH']}"})
    (left,) = [n for n in os.listdir(sandbox.home / "backups") if n.startswith(".restore-")]
    assert (sandbox.home / "backups" / left / "srv" / "backups" / STALE / "env").exists()
    inv = _inventory(sandbox, {"files": [".env"]})
    assert one(run_cli("backup", "-i", inv, "--list", "--json").stdout)["snapshots"] == []
    r = run_cli("backup", "-i", inv, "--dry-run")
    assert r.returncode == 0 and f"would delete {left}: a restore's fetch from the repository (" in r.stdout, r.stdout
    r = run_cli("backup", "-i", inv)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "warning: removed 1 restore fetch directory (" in r.stdout and left in r.stdout, r.stdout
    assert not (sandbox.home / "backups" / left).exists()
    (snap,) = os.listdir(sandbox.home / "backups")
    manifest = json.loads((sandbox.home / "backups" / snap / "manifest.json").read_text())
    assert [s["name"] for s in manifest["swept"]] == [left] and manifest["swept"][0]["size"] > 0


# ------------------------------------------------------------------ the lines, at 80 and 200 columns

@pytest.mark.parametrize("width", (80, 200))
def test_the_run_says_what_it_removed_at_both_widths(width, capsys, monkeypatch):
    """A run that removed a cut-off run's partial, as `inv backup` prints
    it (tasks/backup.py: the run's lines, then each warning)."""
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import run_lines
    from tests.test_golden import check, render

    swept = [{"name": f".{STALE}.partial", "size": 734003}, {"name": ".20261202T030000-d4e5f6.partial", "size": 0}]
    _, said = backup.sweep(backup.BackupPlan(
        "web1", "20261203T030000-0a1b2c", "/srv/app", "/home/deploy/.fabops/app/backups/20261203T030000-0a1b2c",
        (), (), inventory.Keep(), (), (), {}, partials=tuple((s["name"], s["size"]) for s in swept)),
        HostPaths.for_home("/nonexistent-home"))
    value = {"run_id": "20261203T030000-0a1b2c", "snapshot": "/home/deploy/.fabops/app/backups/20261203T030000-0a1b2c",
             "ok": True, "items": [{"name": "env", "file": "env", "ok": True, "size": 35, "duration": 0.001}],
             "deleted": [], "swept": swept, "warnings": said}
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in run_lines(value) + [
        f"warning: {w}" for w in value["warnings"]]])
    assert "removed 2 partial snapshots (716.8 KiB) that runs cut off" in " ".join(text.split()), text
    check("backup-swept", width, text)


@pytest.mark.parametrize("width", (80, 200))
def test_a_removed_fetch_and_the_locked_dry_run_at_both_widths(width, capsys, monkeypatch):
    """A run that removed a cut-off restore's fetch (its warning), and a
    dry run while a deploy holds the host lock (its wait line, no partial
    listed), as `inv backup` prints them."""
    from fabops.host.would import lines
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import run_lines
    from tests.test_golden import check, render

    snapshot = "/home/deploy/.fabops/app/backups/20261203T030000-0a1b2c"
    p = backup.BackupPlan("web1", "20261203T030000-0a1b2c", "/srv/app", snapshot, (), (), inventory.Keep(), (), (),
                          {}, partials=((f".{STALE}.partial", 734003),), fetches=((".restore-q8z1x0ab", 52480),))
    _, said = backup._remove(HostPaths.for_home("/nonexistent-home"), p.fetches, backup.FETCH_WORDS)
    value = {"run_id": p.run_id, "snapshot": snapshot, "ok": True, "deleted": [], "swept": [],
             "items": [{"name": "env", "file": "env", "ok": True, "size": 35, "duration": 0.001}], "warnings": said}
    holder = {"trigger": "deploy", "actor": "alice@laptop", "pid": 4242, "run_id": "20261203T025958-9f8e7d"}
    would = [w.to_dict() for w in p.would(False, {"the host lock": holder})]
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in run_lines(value) + [
        f"warning: {w}" for w in value["warnings"]] + ["--- --dry-run, the host lock held:"] + lines(would)])
    flat = " ".join(text.split())
    assert "removed 1 restore fetch directory (51.2 KiB) that restores cut off while fetching" in flat, text
    assert "would wait for the host lock: held by deploy by alice@laptop (pid 4242" in flat and ".partial" not in flat
    check("backup-swept-fetch", width, text)
