"""backup --restore, unit tier (issue #26, docs/backups.md "Restore"): the
order in place (stop, save, put back only when the save is ok), the files it
writes (modes, no predictable temp), what a snapshot's tar may write, the
RUN_ID it accepts."""
import json
import os
from dataclasses import replace

import pytest

from fabops.host import restore
from fabops.host.backup import plan, run
from tests.test_backup_unit import local

pytestmark = pytest.mark.unit


class FakeManager:
    def __init__(self, log):
        self.log = log

    def stop(self, svc):
        self.log.append(("stop", svc.name))

    def start(self, svc):
        self.log.append(("start", svc.name))


@pytest.fixture
def host_with_service(tmp_path, monkeypatch):
    from fabops import inventory
    from fabops.paths import HostPaths

    (tmp_path / "app").mkdir()
    data = {"hosts": {"h": {"connection": "local", "app": {"path": str(tmp_path / "app")},
                            "home": str(tmp_path / "home"), "backup": {"files": ["data"]},
                            "services": [{"name": "web", "command": "true"}]}}}
    host = inventory.from_data(data).hosts["h"]
    log = []
    monkeypatch.setattr(restore, "service_manager", lambda host: FakeManager(log))
    monkeypatch.setattr("fabops.host.readiness.wait_ready",
                        lambda manager, svc: type("R", (), {"ok": True, "message": "ready"})())
    return host, HostPaths.for_home(host.home), log


def _saving(host, paths):
    """What backup.restored gives a restore: the save's items, from the settings now."""
    from fabops.host.backup import items

    return restore.Saving.of("the-save", items(host, paths))


def _snapshot(host, paths, text):
    data = os.path.join(os.path.expanduser(host.app.path), "data")
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "notes.txt"), "w") as fh:
        fh.write(text)
    return run(replace(plan(host, paths), delete=()), paths)  # retention would delete the earlier one


def test_in_place_stops_then_saves_and_refuses_when_the_save_failed(host_with_service):
    """A save with a failed item (disk full, a failing dump) would not undo
    the restore: nothing is put back, the services start again, and the
    answer names the failed item (before: the live data was replaced)."""
    host, paths, log = host_with_service
    old = _snapshot(host, paths, "old\n")
    _snapshot(host, paths, "live\n")

    def save():
        log.append(("save",))
        return {"run_id": "20261206T000000-abcdef", "ok": False,
                "items": [{"name": "files", "ok": False, "error": "OSError: No space left on device"}]}

    out = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))["restore"]
    assert log[:2] == [("stop", "web"), ("save",)] and log[-1] == ("start", "web"), log
    assert not out["ok"] and out["items"] == [] and "files (OSError: No space left on device)" in out["refused"]
    live = os.path.join(os.path.expanduser(host.app.path), "data", "notes.txt")
    assert open(live).read() == "live\n"


def test_a_save_failed_only_for_what_is_not_there_does_not_refuse():
    """The data directory deleted is what a restore is for: its `not found`
    refuses nothing; a dump's failure (never overwritten in place) neither."""
    items = [{"name": "files", "kind": "files"}, {"name": "env", "kind": "env"}]
    gone = {"run_id": "r", "ok": False, "items": [{"name": "files", "ok": False, "error": "not found: /a/data"},
                                                  {"name": "dump-pg", "ok": False, "error": "exited 1"}]}
    assert restore.save_refused(gone, items) is None
    full = {**gone, "items": [{"name": "files", "ok": False, "error": "OSError: No space left on device"}]}
    assert "files (OSError: No space left on device)" in restore.save_refused(full, items)


def test_in_place_puts_back_after_an_ok_save(host_with_service):
    host, paths, log = host_with_service
    old = _snapshot(host, paths, "old\n")
    _snapshot(host, paths, "live\n")
    saved = []

    def save():
        log.append(("save",))
        saved.append(run(replace(plan(host, paths), delete=()), paths))
        return saved[-1]

    out = restore.restore(host, paths, old["run_id"], None, None, save, 5, _saving(host, paths))["restore"]
    assert out["ok"] and out["saved"] == saved[0]["run_id"] and not out["refused"], out
    assert log[:2] == [("stop", "web"), ("save",)]
    live = os.path.join(os.path.expanduser(host.app.path), "data", "notes.txt")
    assert open(live).read() == "old\n"
    with open(paths.backup_manifest(paths.backup_snapshot(saved[0]["run_id"]))) as fh:
        assert json.load(fh)["ok"]


@pytest.mark.parametrize("run_id", ["../x", "a/../../etc", "..", "/etc"])
def test_a_restore_run_id_is_a_file_name_under_backups(tmp_path, monkeypatch, capsys, run_id):
    """`--restore ../x` is refused before anything connects, and on the host
    as one USAGE line (before: a traceback from the host, exit 1)."""
    import io
    import sys

    from fabops.deploy import host_yml
    from fabops.errors import UsageError
    from fabops.host import backup as hb
    from fabops.tasks.backup import _action

    with pytest.raises(UsageError, match="not a run id"):
        _action(False, False, False, run_id, None, str(tmp_path / "to"), False)
    host, paths = local(tmp_path, {})
    monkeypatch.setattr(sys, "stdin", io.StringIO(host_yml(host)))
    assert hb.main(["restore", run_id, "", str(tmp_path / "to")]) == 64
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("fabops: backup --restore: ") and "not a run id" in err
    assert err.count("\n") == 1 and not os.path.exists(tmp_path / "to")


def test_put_keeps_the_destinations_mode_and_never_writes_through_a_planted_link(tmp_path):
    """A database restored in place keeps its mode (before: the umask's
    0644); the temporary is a new file of a random name (before: the fixed
    <dest>.fabops-restore, a link planted there was written through)."""
    src, dest, outside = tmp_path / "src", tmp_path / "app.db", tmp_path / "outside"
    src.write_bytes(b"restored")
    dest.write_bytes(b"live")
    dest.chmod(0o640)
    outside.write_bytes(b"untouched")
    (tmp_path / "app.db.fabops-restore").symlink_to(outside)
    old = os.umask(0o022)
    try:
        restore.put(str(src), str(dest))
        restore.put(str(src), str(tmp_path / "new.env"), 0o600)
    finally:
        os.umask(old)
    assert dest.read_bytes() == b"restored" and oct(dest.stat().st_mode & 0o777) == "0o640"
    assert outside.read_bytes() == b"untouched"
    assert oct((tmp_path / "new.env").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "app.db.fabops-restore", "new.env", "outside",
                                                          "src"]


def _tar(path, members):
    import io
    import tarfile

    with tarfile.open(path, "w") as tar:
        for name, link in members:
            info = tarfile.TarInfo(name)
            if link is None:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
            else:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)


@pytest.mark.parametrize("members", [
    [("data/link", "OUTSIDE"), ("data/link/evil", None)],  # written through a symlink member
    [("data/../../evil", None)],
    [("/evil", None)],
])
def test_a_tar_member_that_would_write_outside_its_tree_fails_the_item_and_writes_nothing(tmp_path, members):
    """A snapshot from a repository is not trusted (before: a member beneath
    a symlink member was written through it, anywhere the user may write)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [(n, str(outside) if link == "OUTSIDE" else link) for n, link in members]
    snap = tmp_path / "snap"
    snap.mkdir()
    _tar(snap / "files.tar", members)
    into = tmp_path / "to"
    out = restore.put_back(str(snap), [{"name": "files", "kind": "files", "file": "files.tar",
                                        "sources": ["/data"]}], str(into))
    assert not out[0]["ok"] and "nothing of it was put back" in out[0]["error"], out
    assert list(outside.iterdir()) == [] and not (tmp_path / "evil").exists()
    assert not into.exists() or [p for p in into.rglob("*") if p.is_file()] == []


def test_an_absolute_symlink_in_the_data_is_put_back_as_it_was(tmp_path):
    snap, into = tmp_path / "snap", tmp_path / "to"
    snap.mkdir()
    _tar(snap / "files.tar", [("data/latest", "/srv/elsewhere/notes.txt"), ("data/notes.txt", None)])
    out = restore.put_back(str(snap), [{"name": "files", "kind": "files", "file": "files.tar",
                                        "sources": ["/data"]}], str(into))
    assert out[0]["ok"], out
    assert os.readlink(into / "data" / "latest") == "/srv/elsewhere/notes.txt"


def test_an_in_place_restore_is_recorded_in_history_and_a_failure_notified(host_with_service, monkeypatch):
    """As a run is (before: no history line, no notification)."""
    host, paths, log = host_with_service
    sent = []
    monkeypatch.setattr("fabops.notify.notify", lambda name, event, message, home=None, **_: sent.append(
        (event, message)) or [])  # **_: environment=, since #28
    old = _snapshot(host, paths, "old\n")
    saving = _saving(host, paths)
    ok = restore.restore(host, paths, old["run_id"], None, None, lambda: run(replace(plan(host, paths), delete=()),
                                                                             paths), 5, saving)["restore"]
    bad = restore.restore(host, paths, old["run_id"], None, None, lambda: {
        "run_id": "x", "ok": False, "items": [{"name": "files", "ok": False, "error": "OSError: full"}]}, 5, saving)
    with open(paths.history) as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    assert [(r["trigger"], r["result"], r["exit_code"], r["restored"]) for r in recs] == [
        ("restore", "restored", 0, old["run_id"]), ("restore", "restore_failed", 2, old["run_id"])]
    assert recs[0]["saved"] == ok["saved"] and "files (OSError: full)" in recs[1]["message"]
    assert sent == [("restore_failed", bad["restore"]["refused"])]



def test_an_in_place_restore_writes_the_hosts_metrics(host_with_service, monkeypatch, tmp_path):
    """#27's trial: a restore was a run in history but not in the textfile,
    so a restore_failed (services held) was invisible to Prometheus. Each
    counts as trigger="restore" with its exit code, as a backup counts."""
    host, paths, _log = host_with_service
    host = replace(host, metrics_dir=str(tmp_path / "textfile"))
    (tmp_path / "textfile").mkdir()
    monkeypatch.setattr("fabops.notify.notify", lambda *a, **k: [])
    old = _snapshot(host, paths, "old\n")
    restore.restore(host, paths, old["run_id"], None, None, lambda: run(replace(plan(host, paths), delete=()),
                                                                        paths), 5, _saving(host, paths))
    restore.restore(host, paths, old["run_id"], None, None, lambda: {
        "run_id": "x", "ok": False, "items": [{"name": "files", "ok": False, "error": "OSError: full"}]}, 5,
        _saving(host, paths))
    text = (tmp_path / "textfile" / "fabops-h.prom").read_text()
    assert 'fabops_runs_total{fabops_host="h",trigger="restore",result="restored"} 1' in text
    assert 'fabops_runs_total{fabops_host="h",trigger="restore",result="restore_failed"} 1' in text
    assert 'fabops_last_run_exit_code{fabops_host="h",trigger="restore"} 2' in text


# ------------------------------------------------------------------ the plan, and its dry run (#24)


def _evil(tar_path):
    """A member outside its tree appended to a snapshot's files.tar."""
    import io
    import tarfile

    with tarfile.open(tar_path, "a") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"evil\n"))


def test_the_dry_run_and_the_restore_act_on_one_plan(host_with_service):
    """The real restore's items are the plan's: what the dry run says it
    puts back is put back, what it refuses is refused with the same words,
    and the services it would stop are the ones stopped."""
    host, paths, log = host_with_service
    snap = _snapshot(host, paths, "old\n")
    _evil(os.path.join(paths.backup_snapshot(snap["run_id"]), "files.tar"))
    saving = _saving(host, paths)
    dry = restore.planned(host, paths, snap["run_id"], None, None, saving, 5)
    p = dry["restore_plan"]
    assert [(w["action"], w["target"]) for w in dry["would"]] == [
        ("restore", f"snapshot {snap['run_id']}"), ("record", "state.json"), ("stop", "web"), ("save", "the-save"),
        ("refuse", "files (files.tar)"), ("start", "web"), ("record", "history.jsonl"), ("log", "update log")], dry["would"]
    assert log == [] and p["items"][0]["refused"] == "member '../evil.txt' is a path outside its tree"
    res = restore.restore(host, paths, snap["run_id"], None, None,
                          lambda: run(replace(plan(host, paths), delete=()), paths), 5, saving)["restore"]
    assert [x for x in log if x[0] == "stop"] == [("stop", name) for name in p["stop"]]
    assert not res["ok"] and res["items"][0]["error"] == (
        "files.tar member '../evil.txt' is a path outside its tree: nothing of it was put back")


def test_the_dry_run_names_the_locks_it_would_wait_for(host_with_service):
    from fabops.host.lock import HostLock

    host, paths, _ = host_with_service
    snap = _snapshot(host, paths, "old\n")
    with HostLock(paths.backup_lock, {"actor": "ops@cron", "trigger": "backup", "run_id": "r1"}).acquire(wait=0):
        dry = restore.planned(host, paths, snap["run_id"], "files", None, _saving(host, paths), 5)
    waits = [w for w in dry["would"] if w["action"] == "wait for"]
    assert [w["target"] for w in waits] == ["the backup lock"], dry["would"]
    assert "backup by ops@cron" in waits[0]["why"] and "up to 5 s for it, then stops (exit 4)" in waits[0]["why"]


def test_the_dry_run_of_a_snapshot_only_in_the_repository_writes_nothing(tmp_path):
    """A snapshot that retention removed from the host: the dry run reads
    its manifest and its tar with `restic dump` (a real restic, a local
    repository) and fetches nothing; the real restore fetches it and does
    what the dry run said."""
    import shutil as sh

    from fabops.host import restic
    from tests.conftest import require

    require(sh.which("restic") is not None, "restic is not installed")
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(0o600)
    host, paths = local(tmp_path, {"files": ["data"], "repository": {"url": str(tmp_path / "repo"),
                                                                      "password_file": str(pw)}})
    os.makedirs(tmp_path / "app" / "data")
    (tmp_path / "app" / "data" / "notes.txt").write_text("kept\n")
    (tmp_path / "app" / ".env").write_text("A=1\n")
    snap = run(replace(plan(host, paths), delete=()), paths)
    _evil(os.path.join(paths.backup_snapshot(snap["run_id"]), "files.tar"))
    restic.call(host.backup.repository, "init", timeout=120)
    from fabops.host.backup import snapshots

    restic.upload(host.backup.repository, host.name, snapshots(paths)[0])
    sh.rmtree(paths.backup_snapshot(snap["run_id"]))
    into = tmp_path / "look"
    dry = restore.planned(host, paths, snap["run_id"], None, str(into), None, 600)
    p = dry["restore_plan"]
    assert p["from"].startswith("off-host ") and p["stop"] == [] and p["save"] is None, p
    assert ("fetch", f"snapshot {snap['run_id']}") in [(w["action"], w["target"]) for w in dry["would"]]
    refused = {i["file"]: i["refused"] for i in p["items"]}
    assert refused == {"files.tar": "member '../evil.txt' is a path outside its tree", "env": None}, refused
    assert os.listdir(paths.backups) == [] and not into.exists()  # no .restore-* fetch, nothing written
    res = restore.restore(host, paths, snap["run_id"], None, str(into), lambda: {}, 600, None)["restore"]
    assert res["from"] == p["from"] and os.listdir(into) == ["env"], res
    assert [i["ok"] for i in res["items"]] == [False, True] and "'../evil.txt'" in res["items"][0]["error"]


# ------------------------------------------------------------------ when it decides, what it reads, what it trusts


def test_in_place_the_host_lock_is_held_before_the_snapshot_is_read_and_the_save_planned(host_with_service,
                                                                                       monkeypatch):
    """The plan is decided under the host lock (before: a listed link's
    target and the save's plan were worked out before the wait for it), and
    the save's run id is made when it runs, after the stop."""
    from fabops.host import backup as hb
    from fabops.host.lock import peek_holder

    host, paths, log = host_with_service
    old = _snapshot(host, paths, "old\n")
    real_found, real_plan = restore.found_in, hb.plan
    monkeypatch.setattr(restore, "found_in", lambda *a: log.append(("read", bool(peek_holder(paths.lock))))
                        or real_found(*a))
    monkeypatch.setattr(hb, "plan", lambda *a, **k: log.append(("plan",)) or real_plan(*a, **k))
    out = hb.restored(host, paths, "restore", [old["run_id"], "", ""])["restore"]
    assert out["ok"], out
    assert log[:3] == [("read", True), ("stop", "web"), ("plan",)], log


def _fake_restic(tmp_path, monkeypatch, body):
    from types import SimpleNamespace

    from fabops.host import restic

    script = tmp_path / "restic"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    monkeypatch.setattr(restic, "RESTIC", str(script))
    return SimpleNamespace(url=str(tmp_path / "repo"), password_file=str(tmp_path / "pw"))


def test_restic_dump_is_ended_after_its_deadline_with_one_clear_error(tmp_path, monkeypatch):
    """Before: no timeout, a stuck `restic dump` held the dry run forever."""
    import time

    repo = _fake_restic(tmp_path, monkeypatch, "exec sleep 30")
    t0 = time.monotonic()
    with pytest.raises(restore.RestoreError, match=r"^restic dump of snap/files.tar of the repository's snapshot "
                                                   r"abcdef12 still running after 0.5 s: ended"):
        restore._dumped(repo, "abcdef1234", "snap/files.tar", lambda fh: restore.read_tar(fh, "r|"), timeout=0.5)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("error, code", [("RestoreFailed", 2), ("RestoreError", 64)])
def test_a_restore_that_could_not_read_is_failed_not_a_usage_error(tmp_path, monkeypatch, capsys, error, code):
    """A dump past its deadline (or a repository out of reach) is the
    host's failure, exit 2; no such snapshot or item is the person's words,
    64 (before: both 64). The laptop shows the host's one line as it is."""
    import io
    import sys

    from types import SimpleNamespace

    from fabops.deploy import host_yml
    from fabops.host import backup as hb
    from fabops.maintenance import backup as laptop

    host, _ = local(tmp_path, {})
    monkeypatch.setattr(sys, "stdin", io.StringIO(host_yml(host)))

    def fails(*args):
        raise getattr(restore, error)("restic dump of x still running after 1 s: ended, nothing was touched")

    monkeypatch.setattr(hb, "restored", fails)
    assert hb.main(["restore-plan", "20261201T030000-aaaaaa", "", ""]) == code
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.endswith("still running after 1 s: ended, nothing was "
                                                                 "touched\n"), err
    r = SimpleNamespace(exited=code, stdout="", stderr=err)
    monkeypatch.setattr(laptop.Target, "of", lambda c, h: SimpleNamespace(run=lambda *a, **kw: r))
    with pytest.raises(laptop.FabopsError) as got:
        laptop.backup(None, host, "restore-plan", ["20261201T030000-aaaaaa", "", ""])
    assert got.value.exit_code == code and str(got.value).startswith("h: backup --restore"), str(got.value)


def test_what_a_failed_tar_read_leaves_of_restic_dump_is_drained_not_held(tmp_path, monkeypatch):
    """A tar that fails on its first block: the rest of the stream (here
    64 MB) goes to nowhere in chunks (before: read() held all of it)."""
    import tracemalloc

    repo = _fake_restic(tmp_path, monkeypatch, "yes | head -c 67108864")
    tracemalloc.start()
    try:
        names, why = restore._dumped(repo, "abcdef1234", "snap/files.tar", lambda fh: restore.read_tar(fh, "r|"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert names == () and why.startswith("cannot be read as a tar"), why
    assert peak < 8 * 1024 * 1024, peak


def _with_env(host, paths):
    with open(os.path.join(os.path.expanduser(host.app.path), ".env"), "w") as fh:
        fh.write("A=1\n")
    return _snapshot(host, paths, "old\n")


def _edit_manifest(paths, run_id, edit):
    path = paths.backup_manifest(paths.backup_snapshot(run_id))
    with open(path) as fh:
        m = json.load(fh)
    edit(m)
    with open(path, "w") as fh:
        json.dump(m, fh)


def _both(host, paths, run_id):
    """The dry run's plan and the real in-place restore of `run_id`."""
    saving = _saving(host, paths)
    dry = restore.planned(host, paths, run_id, None, None, saving, 5)
    real = restore.restore(host, paths, run_id, None, None, lambda: run(replace(plan(host, paths), delete=()),
                                                                        paths), 5, saving)["restore"]
    return {i["file"]: i["refused"] for i in dry["restore_plan"]["items"]}, {i["file"]: i for i in real["items"]}


def test_an_item_whose_snapshot_paths_are_not_the_hosts_settings_now_is_refused_by_both(host_with_service, tmp_path):
    """A repository's snapshot is not trusted to choose where a restore
    writes (before: its manifest's env sources sent the .env anywhere the
    deploy user may write)."""
    host, paths, _ = host_with_service
    snap = _with_env(host, paths)
    elsewhere = tmp_path / "elsewhere" / "authorized_keys"

    def move(m):
        for i in m["items"]:
            if i["name"] == "env":
                i["sources"] = [str(elsewhere)]
    _edit_manifest(paths, snap["run_id"], move)
    refused, done = _both(host, paths, snap["run_id"])
    assert refused["files.tar"] is None and done["files.tar"]["ok"]
    why = refused["env"]
    assert why.startswith(f"its paths in the snapshot ({elsewhere}) are not what the host's backup settings list "
                          "for env now (") and why.endswith("a snapshot does not choose where a restore writes "
                                                            "(--to DIR gives its files)"), why
    assert done["env"]["error"] == f"env {why}: nothing of it was put back"
    assert not elsewhere.parent.exists()


@pytest.mark.parametrize("edit,why", [
    (lambda i: i.update(sources=[]), "its manifest entry lists no source"),
    (lambda i: i.pop("file"), "its manifest entry names no plain file (None)"),
    (lambda i: i.update(file="../../x"), "its manifest entry names no plain file ('../../x')"),
    (lambda i: i.update(name=["env"]), "its manifest entry has no name or kind"),
    (lambda i: i.update(sources="/a"), "its manifest entry's sources are not a list of paths ('/a')"),
])
def test_a_malformed_manifest_item_is_refused_by_both_never_a_traceback(host_with_service, edit, why):
    host, paths, _ = host_with_service
    snap = _with_env(host, paths)
    _edit_manifest(paths, snap["run_id"], lambda m: [edit(i) for i in m["items"] if i["name"] == "env"])
    refused, done = _both(host, paths, snap["run_id"])
    assert [w for f, w in refused.items() if w] == [why], refused
    assert [i["error"] for i in done.values() if not i["ok"]] == [f"{f} {why}: nothing of it was put back"
                                                                  for f, w in refused.items() if w]


@pytest.mark.parametrize("text", ["{not json", "[]", '{"items": {"a": 1}}', '{"items": [1]}'])
def test_a_manifest_that_is_not_one_is_failed_for_both_and_touches_nothing(tmp_path, monkeypatch, capsys, text):
    import io
    import sys

    from fabops.deploy import host_yml
    from fabops.host import backup as hb

    host, paths = local(tmp_path, {"files": ["data"]})
    os.makedirs(tmp_path / "app" / "data")
    snap = run(replace(plan(host, paths), delete=()), paths)
    with open(paths.backup_manifest(paths.backup_snapshot(snap["run_id"])), "w") as fh:
        fh.write(text)
    for action in ("restore-plan", "restore"):
        monkeypatch.setattr(sys, "stdin", io.StringIO(host_yml(host)))
        # a damaged snapshot is the host's failure (2), not the person's words (64)
        assert hb.main([action, snap["run_id"], "", str(tmp_path / "to")]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("fabops: backup --restore failed on the host: ") and \
            err.count("\n") == 1, err
        assert "manifest.json" in err and "nothing was touched" in err, err
    assert not (tmp_path / "to").exists()


def test_a_files_item_from_before_a_path_was_added_is_put_back_one_elsewhere_is_not(host_with_service, tmp_path):
    """Review 2: one path added to backup.files refused every older
    snapshot's files item in place. Fewer paths than the list now is fine
    (each is one the host names, and the save copies them all first); a
    path the list does not name is still refused by both runs."""
    from fabops import inventory

    host, paths, _ = host_with_service
    snap = _with_env(host, paths)
    wider = inventory.from_data({"hosts": {"h": {
        "connection": "local", "app": {"path": host.app.path}, "home": host.home,
        "backup": {"files": ["data", "more"]}, "services": [{"name": "web", "command": "true"}]}}}).hosts["h"]
    refused, done = _both(wider, paths, snap["run_id"])
    assert refused["files.tar"] is None and done["files.tar"]["ok"], (refused, done["files.tar"])

    def outside(m):
        for i in m["items"]:
            if i["name"] == "files":
                i["sources"] = i["sources"] + [str(tmp_path / "elsewhere")]
    snap = _with_env(host, paths)
    _edit_manifest(paths, snap["run_id"], outside)
    refused, done = _both(wider, paths, snap["run_id"])
    assert refused["files.tar"] and refused["files.tar"].startswith("its paths in the snapshot"), refused
    assert not done["files.tar"]["ok"]


def test_a_persons_restore_is_recorded_under_the_laptops_actor(host_with_service, monkeypatch, capsys):
    """#24: a restore recorded the host's deploy user for everyone; who
    runs it is the laptop's to say (DESIGN §8), as for a backup (`run
    ACTOR`). The task passes its actor (`restore RUN_ID ONLY DIR ACTOR`),
    the history records it; without one (run on the host) the process's
    own user."""
    import io
    import sys

    from fabops.deploy import host_yml
    from fabops.host import backup as hb
    from fabops.host.record import default_actor
    from fabops.tasks.backup import _action

    monkeypatch.setenv("USER", "alice")
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    action, extra = _action(False, False, False, "20261206T000000-abcdef", None, None, True)
    assert action == "restore" and len(extra) == 4 and extra[3].startswith("alice@"), extra
    host, paths, _ = host_with_service
    old = _snapshot(host, paths, "old\n")
    monkeypatch.setenv("USER", "deploy")  # the host's own user, which a person's restore must not record
    for argv, actor in (([old["run_id"], "", "", "alice@laptop"], "alice@laptop"), ([old["run_id"], "", ""],
                                                                                   default_actor())):
        monkeypatch.setattr(sys, "stdin", io.StringIO(host_yml(host)))
        assert hb.main(["restore", *argv]) == 0, capsys.readouterr()
        capsys.readouterr()
        last = [json.loads(x) for x in open(paths.history).read().splitlines()][-1]
        assert (last["trigger"], last["actor"], last["result"]) == ("restore", actor, "restored"), last
