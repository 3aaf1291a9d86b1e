"""Backups, unit tier (issue #26): the retention policy as a table of dates
-> kept, the `backup:` schema with hostile values, the manifest a run
writes and the listing that reads it back."""
import datetime
import io
import json
import os
import sys
import tarfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fabops import inventory
from fabops.errors import ConfigError
from fabops.deploy import host_yml
from fabops.host.backup import DUMP_TIMEOUT, Snapshot, excluded, items, kept, plan, run, to_delete
from fabops.inventory import Keep
from fabops.paths import HostPaths

pytestmark = pytest.mark.unit


def d(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M")


# (snapshot times, keep (daily, weekly, monthly), the times kept)
RETENTION = [
    # two a day: daily keeps the newest of each of the last 2 days, and the newest is always kept
    (["2026-12-01 01:00", "2026-12-01 13:00", "2026-12-02 01:00", "2026-12-02 13:00", "2026-12-03 01:00"],
     (2, 0, 0), ["2026-12-02 13:00", "2026-12-03 01:00"]),
    # nothing asked: only the newest
    (["2026-12-01 01:00", "2026-12-02 01:00"], (0, 0, 0), ["2026-12-02 01:00"]),
    # weekly: the newest of each ISO week (Mon 2026-11-30 starts week 49); 2 weeks
    (["2026-11-22 03:00", "2026-11-27 03:00", "2026-11-29 03:00", "2026-11-30 03:00", "2026-12-04 03:00"],
     (0, 2, 0), ["2026-11-29 03:00", "2026-12-04 03:00"]),
    # monthly: the newest of each month, 3 months; daily 1 adds nothing new
    (["2026-09-10 00:00", "2026-09-30 00:00", "2026-10-15 00:00", "2026-11-01 00:00", "2026-11-20 00:00",
      "2026-12-01 00:00"],
     (1, 0, 3), ["2026-10-15 00:00", "2026-11-20 00:00", "2026-12-01 00:00"]),
    # a year boundary: ISO week 53 of 2026 spans into January 2027
    (["2026-12-28 00:00", "2027-01-02 00:00", "2027-01-04 00:00"], (0, 2, 0), ["2027-01-02 00:00", "2027-01-04 00:00"]),
    # the union of the three: 7/4/6 over a daily November keeps the last 7 days, and the Sundays
    # ending the 3 ISO weeks before Monday the 30th's (4 weeks), whose newest is the month's too
    ([f"2026-11-{n:02d} 02:00" for n in range(1, 31)], (7, 4, 6),
     [f"2026-11-{n:02d} 02:00" for n in range(24, 31)] + ["2026-11-22 02:00", "2026-11-15 02:00"]),
    # more counted than there are snapshots: everything is kept
    (["2026-12-01 00:00", "2026-12-02 00:00"], (7, 4, 6), ["2026-12-01 00:00", "2026-12-02 00:00"]),
    ([], (7, 4, 6), []),
]


@pytest.mark.parametrize("times, keep, want", RETENTION)
def test_retention_keeps_what_the_policy_says(times, keep, want):
    assert kept([d(t) for t in times], Keep(*keep)) == {d(t) for t in want}


def _snap(run_id, when, ok=True):
    return Snapshot(run_id, "/x/" + run_id, d(when).timestamp(), d(when).timestamp() + 1, ok, 10, 3, 0 if ok else 1)


def test_to_delete_spares_what_is_kept_and_drops_failed_runs_once_superseded():
    snaps = [_snap("a", "2026-12-01 02:00"), _snap("b", "2026-12-02 02:00"), _snap("c", "2026-12-03 01:00", ok=False),
             _snap("d", "2026-12-03 02:00")]
    # keep one day: b goes, a goes; c failed and d (ok) is newer: superseded
    assert to_delete(snaps, Keep(1, 0, 0)) == ["a", "b", "c"]
    # a new run (the plan's view) counts as the newest: d is then not its day's newest
    new = d("2026-12-03 03:00").timestamp()
    assert to_delete(snaps, Keep(1, 0, 0), new=new) == ["a", "b", "c", "d"]
    # a failed run newer than every ok one is kept: it is the latest evidence of what happened
    assert "e" not in to_delete(snaps + [_snap("e", "2026-12-04 02:00", ok=False)], Keep(7, 0, 0))


@pytest.mark.parametrize("name, patterns, out", [
    ("srv/app/data/x.log", ("*.log",), True),
    ("srv/app/data/cache", ("cache",), True),
    ("srv/app/data/cache/a/b", ("cache/*",), True),
    ("srv/app/data/cached.txt", ("cache",), False),
    ("srv/app/data/a.txt", ("*.log", "cache"), False),
])
def test_excludes_match_a_name_or_a_trailing_part_of_the_path(name, patterns, out):
    assert excluded(name, patterns) is out


def load(backup: str, connection: str = "ssh"):
    text = textwrap.dedent("""\
        hosts:
          h:
            connection: {connection}
            app: {{path: /srv/app}}
            backup:
        """).format(connection=connection) + textwrap.indent(textwrap.dedent(backup), "      ")
    return inventory.loads(text, "x.yml").hosts["h"]


def test_defaults_and_a_full_section():
    host = inventory.loads("hosts:\n  h: {app: {path: /srv/app}}\n", "x.yml").hosts["h"]
    b = host.backup
    assert (b.files, b.sqlite, b.dump, b.schedule, b.repository) == ((), (), (), "@daily", None)
    assert (b.keep.daily, b.keep.weekly, b.keep.monthly) == (7, 4, 6)
    host = load("""\
        files: [uploads, /etc/app, ~/notes]
        exclude: ["*.tmp"]
        sqlite: [data/app.db]
        dump: [{name: pg, command: "pg_dump app"}]
        schedule: "30 3 * * *"
        keep: {daily: 3}
        repository: {url: "sftp:backup@10.0.0.9:/srv/restic", password_file: ~/.restic-password}
        """)
    b = host.backup
    assert b.files == ("uploads", "/etc/app", "~/notes") and b.dump[0].name == "pg"
    assert (b.keep.daily, b.keep.weekly) == (3, 4) and b.repository.password_file == "~/.restic-password"
    # host.yml carries it to the host unchanged
    again = inventory.from_data({"hosts": {"h": host.to_dict()}}).hosts["h"]
    assert again.backup == b
    assert load("schedule: off\n").backup.schedule is None


def test_defaults_merge_key_by_key_and_lists_replace():
    text = textwrap.dedent("""\
        defaults:
          backup: {keep: {daily: 2}, files: [a], sqlite: [x.db]}
        hosts:
          h:
            app: {path: /srv/app}
            backup: {keep: {monthly: 1}, files: [b]}
        """)
    b = inventory.loads(text, "x.yml").hosts["h"].backup
    assert (b.keep.daily, b.keep.weekly, b.keep.monthly) == (2, 4, 1) and b.files == ("b",) and b.sqlite == ("x.db",)


@pytest.mark.parametrize("backup, key, words", [
    ('files: ["$(touch /tmp/x)"]\n', "backup.files[0]", "may hold letters"),
    ("files: [../etc]\n", "backup.files[0]", ".."),
    ("sqlite: [-db]\n", "backup.sqlite[0]", "must not start with '-'"),
    ('exclude: ["-x"]\n', "backup.exclude[0]", "leading '-'"),
    ('exclude: [""]\n', "backup.exclude[0]", "not empty"),
    ('dump: [{name: "../x", command: "true"}]\n', "backup.dump[0].name", "names the item's file"),
    ('dump: [{name: "a b", command: "true"}]\n', "backup.dump[0].name", "names the item's file"),
    ('dump: [{name: "a", command: "true"}, {name: "a", command: "false"}]\n', "backup.dump[1].name", "duplicate dump"),
    ("dump: [{name: a}]\n", "backup.dump[0].command", "is required"),
    ("keep: {daily: -1}\n", "backup.keep.daily", "out of range"),
    ("keep: {hourly: 3}\n", "backup.keep.hourly", "unknown key"),
    ('schedule: "* * *"\n', "backup.schedule", "needs 5 fields"),
    ('repository: {url: "x;rm -rf /", password_file: /etc/pw}\n', "backup.repository.url", "refused"),
    ('repository: {url: "-o x", password_file: /etc/pw}\n', "backup.repository.url", "must not start"),
    ("repository: {url: /srv/restic}\n", "backup.repository.password_file", "is required"),
    ("repository: {url: /srv/restic, password_file: pw}\n", "backup.repository.password_file", "must be absolute"),
])
def test_hostile_values_are_refused_naming_the_key(backup, key, words):
    with pytest.raises(ConfigError) as info:
        load(backup)
    problems = dict(info.value.problems) if getattr(info.value, "problems", None) else {info.value.key: info.value.problem}
    assert f"hosts.h.{key}" in problems, problems
    assert words in problems[f"hosts.h.{key}"], problems


# ------------------------------------------------------------------ a run on this machine (review of #26)

def local(tmp_path, backup: dict):
    """A host in tmp_path (connection: local): app/ and home/."""
    (tmp_path / "app").mkdir(exist_ok=True)
    data = {"hosts": {"h": {"connection": "local", "app": {"path": str(tmp_path / "app")},
                            "home": str(tmp_path / "home"), "backup": backup}}}
    host = inventory.from_data(data).hosts["h"]
    return host, HostPaths.for_home(host.home)


def tar_names(path) -> list:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_the_laptop_waits_longer_than_the_host_lets_the_dumps_last(monkeypatch):
    from fabops.maintenance import backup as laptop

    seen = {}

    class FakeTarget:
        def run(self, cmd, what="", **kwargs):
            seen.update(kwargs)
            return SimpleNamespace(exited=0, stdout='{"ok": true}', stderr="")

    monkeypatch.setattr(laptop.Target, "of", staticmethod(lambda c, host: FakeTarget()))
    host = load('dump: [{name: a, command: "true"}, {name: b, command: "true"}]\n')
    assert laptop.backup(None, host, "run") == {"ok": True}
    # not the connection's default (300 s): both dumps may run their full hour, and the copies more
    assert seen.get("timeout", 0) > 2 * DUMP_TIMEOUT, seen
    seen.clear()  # a listing copies nothing: a host that hangs is given up on at the usual timeout
    laptop.backup(None, host, "list")
    assert seen.get("timeout") is None, seen


def test_sqlite_files_have_distinct_names_whatever_the_list(tmp_path):
    host, paths = local(tmp_path, {"sqlite": ["a.db", "x/a.db", "a.db-2", "y/a.db"]})
    files = [i.file for i in items(host, paths) if i.kind == "sqlite"]
    assert len(set(files)) == 4, files


def test_a_listed_symlink_is_followed_and_links_inside_stay_links(tmp_path):
    host, paths = local(tmp_path, {"files": ["uploads"]})
    shared = tmp_path / "shared" / "uploads"
    shared.mkdir(parents=True)
    (shared / "photo.jpg").write_bytes(b"jpeg")
    (shared / "latest").symlink_to("photo.jpg")
    (tmp_path / "app" / "uploads").symlink_to("../shared/uploads")
    done = run(plan(host, paths), paths)
    assert done["ok"], done["items"]
    tar = tarfile.open(os.path.join(done["snapshot"], "files.tar"))
    base = str(tmp_path / "app" / "uploads").lstrip("/")
    assert tar.getmember(base).isdir()
    assert tar.extractfile(f"{base}/photo.jpg").read() == b"jpeg"
    assert tar.getmember(f"{base}/latest").issym()
    # a listed link to nothing is a missing path: the item fails
    (tmp_path / "app" / "gone").symlink_to("nowhere")
    host, paths = local(tmp_path, {"files": ["gone"]})
    (entry,) = [i for i in run(plan(host, paths), paths)["items"] if i["kind"] == "files"]
    assert not entry["ok"] and entry["error"].startswith("not found:"), entry


def test_a_home_in_files_never_archives_the_snapshots_or_the_venv(tmp_path):
    host, paths = local(tmp_path, {"files": [str(tmp_path)]})
    os.makedirs(os.path.join(paths.venv, "bin"))
    Path(paths.venv, "bin", "python").write_text("x")
    first = run(plan(host, paths), paths)
    second = run(plan(host, paths), paths)
    assert first["ok"] and second["ok"]
    names = tar_names(os.path.join(second["snapshot"], "files.tar"))
    assert f"{str(tmp_path).lstrip('/')}/app" in names
    assert not [n for n in names if "/home/backups" in n or "/home/venv" in n], names


@pytest.mark.parametrize("change", ["vanish", "shrink"])
def test_a_file_that_vanishes_or_shrinks_mid_walk_is_a_warning_not_the_end_of_the_tar(tmp_path, monkeypatch,
                                                                                         change):
    host, paths = local(tmp_path, {"files": ["data"]})
    data = tmp_path / "app" / "data"
    data.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (data / name).write_text(name * 1000)
    real = tarfile.TarFile.gettarinfo

    def racing(self, name=None, arcname=None, fileobj=None):
        if name and name.endswith("b.txt") and change == "vanish":
            os.unlink(name)
        info = real(self, name, arcname, fileobj)
        if name and name.endswith("b.txt") and change == "shrink":
            Path(name).write_text("b")
        return info

    monkeypatch.setattr(tarfile.TarFile, "gettarinfo", racing)
    done = run(plan(host, paths), paths)
    (entry,) = [i for i in done["items"] if i["kind"] == "files"]
    assert entry["ok"], entry
    base = str(data).lstrip("/")
    tar = tarfile.open(os.path.join(done["snapshot"], "files.tar"))
    assert tar.extractfile(f"{base}/c.txt").read() == b"c.txt" * 1000  # the walk went on after b.txt
    assert [w for w in done["warnings"] if "b.txt" in w and ("vanished" if change == "vanish" else "shrank") in w]
    assert "b.txt" in json.dumps(json.loads(Path(done["snapshot"], "manifest.json").read_text())["warnings"])


def test_an_error_outside_the_items_removes_the_partial_and_is_one_line(tmp_path, monkeypatch, capsys):
    from fabops.host import backup as hb

    host, paths = local(tmp_path, {})

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hb.os, "rename", full)
    with pytest.raises(OSError):
        run(plan(host, paths), paths)
    assert os.listdir(paths.backups) == []  # no .partial left behind
    monkeypatch.setattr(sys, "stdin", io.StringIO(host_yml(host)))
    # main() lowers its process's priority: here that process is pytest
    monkeypatch.setattr(hb, "lower_priority", lambda: "nice 19")
    assert hb.main(["run"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "fabops: backup run failed on the host: [Errno 28] No space left on device\n"
    assert os.listdir(paths.backups) == []
    # a host.yml with two hosts: CONFIG, one line, no traceback
    two = {"hosts": {"a": host.to_dict(), "b": host.to_dict()}}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(two)))
    assert hb.main(["list"]) == 78
    err = capsys.readouterr().err
    assert err.startswith("fabops: host.yml: ") and err.count("\n") == 1, err


def test_a_run_never_removes_another_runs_partial(tmp_path):
    """os.mkdir of this run's .partial failing (another run's, of the same
    run id) raises, and the other run's directory and files stay: only a
    directory this run made is cleaned up."""
    host, paths = local(tmp_path, {})
    p = plan(host, paths)
    theirs = Path(paths.backup_partial(p.run_id))
    theirs.mkdir(parents=True)
    (theirs / "manifest.json").write_text("{}")
    with pytest.raises(FileExistsError):
        run(p, paths)
    assert (theirs / "manifest.json").read_text() == "{}"


def test_a_snapshot_retention_could_not_delete_is_a_warning_not_deleted(tmp_path, monkeypatch):
    from fabops.host import backup as hb

    host, paths = local(tmp_path, {"keep": {"daily": 1, "weekly": 0, "monthly": 0}})
    first = run(plan(host, paths), paths)
    p = plan(host, paths, now=time.time() + 3 * 86400)  # another day: the first is not kept
    assert p.delete == (first["run_id"],)
    monkeypatch.setattr(hb.shutil, "rmtree", lambda path, ignore_errors=False: None)  # it fails, quietly
    done = run(p, paths)
    assert done["deleted"] == [] and os.path.isdir(first["snapshot"])
    assert [w for w in done["warnings"] if "could not delete" in w and first["run_id"] in w], done["warnings"]


def test_a_dump_never_runs_outside_a_missing_app_directory(tmp_path):
    host, paths = local(tmp_path, {"dump": [{"name": "d", "command": "touch here"}]})
    os.rmdir(tmp_path / "app")
    done = run(plan(host, paths), paths)
    (entry,) = [i for i in done["items"] if i["kind"] == "dump"]
    assert not entry["ok"] and "app directory" in entry["error"], entry
    assert not os.path.exists("here") and not os.path.exists(tmp_path / "here")


def test_a_failed_dumps_last_words_are_masked(tmp_path):
    """Review 3: a dump's last stderr line now reaches the history and the
    update log; one that quotes its connection URL keeps the user, not the
    password."""
    cmd = "echo 'psql: error: connection to postgres://app:hunter2@db:5432/app failed' >&2; exit 2"
    host, paths = local(tmp_path, {"dump": [{"name": "pg", "command": cmd}]})
    done = run(plan(host, paths), paths)
    (entry,) = [i for i in done["items"] if i["kind"] == "dump"]
    assert entry["error"] == "exited 2: psql: error: connection to postgres://app:***@db:5432/app failed", entry


def test_plain_lines_name_a_dump_not_its_command(tmp_path):
    host, paths = local(tmp_path, {"dump": [{"name": "pg", "command": "PGPASSWORD=hunter2 pg_dump app"}]})
    shown = " ".join(w.why for w in plan(host, paths).would())
    assert "backup.dump pg" in shown and "hunter2" not in shown


def test_a_runs_item_rows_are_columns():
    """The trial read `env  ok  35 B` / `state.json  ok  1.2 KiB`: each
    field starts in the same column on every row."""
    from fabops.tasks.backup import run_lines

    rows = run_lines({"run_id": "r", "snapshot": "/s", "items": [
        {"file": "env", "ok": True, "size": 35, "duration": 0.01},
        {"file": "state.json", "ok": True, "size": 1234, "duration": 0.002},
        {"file": "dump-pg.out", "ok": False, "error": "exited 3"}]})[1:]
    assert len({r.index(w) for r, w in zip(rows, ("ok", "ok", "FAILED"))}) == 1, rows
    assert rows[0].index("B ") + 1 == rows[1].index("B ") + 1 and rows[0].endswith(" s"), rows


@pytest.mark.parametrize("width", (80, 200))
def test_a_runs_item_rows_use_the_manifests_names(width, capsys, monkeypatch):
    """#24's trial: the rows said `files.tar` and `state.json` where the
    manifest, history and monitor say `files` and `state`. The name leads,
    the file follows when it differs."""
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import run_lines
    from tests.test_golden import check, render

    rows = run_lines({"run_id": "r", "snapshot": "/s", "items": [
        {"name": "env", "file": "env", "ok": True, "size": 35, "duration": 0.01},
        {"name": "files", "file": "files.tar", "ok": False, "error": "not found: /srv/x"},
        {"name": "state", "file": "state.json", "ok": True, "size": 1234, "duration": 0.002}]})[1:]
    assert [r.strip().split("  ")[0] for r in rows] == ["env", "files (files.tar)", "state (state.json)"], rows
    assert " ".join(rows[1].split()) == "files (files.tar) FAILED not found: /srv/x", rows
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in rows])
    check("backup-item-names", width, text)


@pytest.mark.parametrize("width", (80, 200))
def test_the_dry_run_and_a_restore_name_items_as_the_run_does(width, capsys, monkeypatch):
    """#24's leftover: a run's rows said `files (files.tar)` (89556e4),
    while its --dry-run said `would copy files.tar` and a restore's rows
    and its dry run `files.tar ok`, `would skip state.json`. All of them
    name an item as the manifest does, then its file when that differs."""
    from fabops.host.backup import BackupPlan, Item
    from fabops.host.restore import _item_would
    from fabops.host.would import lines
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import restore_lines
    from tests.test_golden import check, render

    plan = BackupPlan(host="web1", run_id="r", app="/", snapshot="/s/r", exclude=(), keep=Keep(), existing=(),
                      delete=(), env={}, items=(
                          Item("files", "files", "files.tar", ("/nonexistent/fabops-test/data",)),
                          Item("dump-db", "dump", "dump-db.out", command="true"),
                          Item("env", "env", "env", ("/nonexistent/fabops-test/.env",), always=True)))
    dry = [w for w in plan.would() if w.action in ("copy", "fail")]
    assert [w.target for w in dry] == ["files (files.tar)", "dump-db (dump-db.out)", "env"], dry
    item = {"name": "state", "file": "state.json", "kind": "state", "put": [], "left": [],
            "skipped": "not put back in place", "refused": None}
    refused = dict(item, name="files", file="files.tar", kind="files", skipped=None,
                   refused="member '../x' is a path outside its tree")
    planned = _item_would(item, "snapshot r", None) + _item_would(refused, "snapshot r", None)
    assert [w.target for w in planned] == ["state (state.json)", "files (files.tar)"], planned
    value = {"restore": {"run_id": "r", "from": "local", "to": None, "ok": False, "saved": "s2", "services": [],
                         "items": [{"name": "files", "file": "files.tar", "ok": False, "skipped": None,
                                    "error": "files.tar member '../x' is a path outside its tree: nothing "
                                             "of it was put back"},
                                   {"name": "env", "file": "env", "ok": True, "skipped": None, "error": None},
                                   {"name": "state", "file": "state.json", "ok": True,
                                    "skipped": "not put back in place", "error": None}]}}
    rows = restore_lines(value)[2:]
    assert [r.strip().split("  ")[0] for r in rows] == ["files (files.tar)", "env", "state (state.json)"], rows
    said = lines(dry + planned) + rows
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[web1] {ln}") for ln in said])
    check("backup-item-names-dry-run", width, text)


# ------------------------------------------------------------------ the off-host copy (host/restic.py)


def repo_host(tmp_path, mode=0o600, **backup):
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(mode)
    return local(tmp_path, {"repository": {"url": "sftp:backup@b:/srv/r", "password_file": str(pw)}, **backup})


def test_the_password_reaches_restic_as_a_path(tmp_path):
    from fabops.host.restic import restic_argv

    host, _ = repo_host(tmp_path, keep={"daily": 3, "weekly": 0})
    argv = restic_argv(host.backup.repository, "snapshots")
    assert argv[:3] == ["restic", "--password-file", str(tmp_path / "pw")]
    assert "secret" not in " ".join(argv) and "sftp:" not in " ".join(argv)


@pytest.mark.parametrize("mode, said", [(0o600, None), (0o400, None), (0o640, "(mode 0640): chmod 600 it"),
                                        (0o604, "(mode 0604): chmod 600 it")])
def test_a_password_file_must_be_the_users_alone(tmp_path, mode, said):
    from fabops.host.restic import password_problem

    repo_host(tmp_path, mode)
    problem = password_problem(str(tmp_path / "pw"))
    assert problem is None if said is None else said in problem


def test_no_restic_on_path_fails_the_copy_with_how_to_get_it(tmp_path, monkeypatch):
    from fabops.host import restic

    host, paths = repo_host(tmp_path)
    monkeypatch.setattr(restic.shutil, "which", lambda name: None)
    off = restic.offsite(host, [], lambda there: [])
    assert not off["ok"] and off["uploaded"] == [] and "restic is not on the host's PATH: `apt install restic`" \
        in off["error"]


def test_a_failed_copy_keeps_the_snapshot_and_stops_retention(tmp_path, monkeypatch):
    """The local snapshot is written and no older one is deleted while the
    repository is out of reach: the next run copies them (catch-up)."""
    from fabops.host import backup, restic

    host, paths = repo_host(tmp_path)
    monkeypatch.setattr(restic.shutil, "which", lambda name: None)
    monkeypatch.setattr(backup, "lower_priority", lambda: "nice 19")
    monkeypatch.setattr(backup, "notify_once", lambda host, paths, done: [])
    first = backup.locked_run(host, paths)
    second = backup.locked_run(host, paths)  # retention would delete the first (same day) were the copy done
    assert first["ok"] and second["ok"] and second["offsite"]["error"] and second["deleted"] == []
    assert {s.run_id for s in backup.snapshots(paths)} == {first["run_id"], second["run_id"]}
    from fabops.maintenance.backup import exit_code

    assert exit_code("run", second) == 2 and exit_code("run", {**second, "offsite": None}) == 0


def test_a_failure_notifies_once_per_reason_and_an_ok_run_makes_it_news_again(tmp_path, monkeypatch):
    from fabops.host import backup

    host, paths = repo_host(tmp_path)
    sent = []
    monkeypatch.setattr("fabops.notify.notify", lambda name, event, message, home=None, environment=None: sent.append(message) or [])
    down = {"items": [], "offsite": {"error": "off-host copy: restic snapshots exited 1: port 40123 refused"}}
    backup.notify_once(host, paths, down)
    backup.notify_once(host, paths, {**down, "offsite": {"error": down["offsite"]["error"].replace("123", "9")}})
    assert len(sent) == 1 and "port 40123 refused" in sent[0]
    backup.notify_once(host, paths, {"items": [{"name": "dump-pg", "ok": False, "error": "exited 1"}]})
    assert len(sent) == 2 and sent[1] == "items FAILED: dump-pg (exited 1)"
    backup.notify_once(host, paths, {"items": [{"name": "env", "ok": True}]})
    backup.notify_once(host, paths, down)
    assert len(sent) == 3


def test_verify_local_compares_the_newest_snapshot_with_its_manifest(tmp_path, monkeypatch):
    from fabops.host import backup
    from fabops.maintenance.backup import exit_code

    host, paths = local(tmp_path, {"files": ["data"]})
    monkeypatch.setattr(backup, "lower_priority", lambda: "nice 19")
    assert backup.verified(host, paths)["verify"]["local"]["error"] == "no local snapshot to verify"
    (tmp_path / "app" / "data").mkdir()
    (tmp_path / "app" / "data" / "a").write_text("a")
    done = run(plan(host, paths), paths)
    good = backup.verified(host, paths)
    assert good["verify"]["local"] == {"ok": True, "run_id": done["run_id"], "items": 1, "bad": [], "error": None}
    assert exit_code("verify", good) == 0 and "offsite" not in good["verify"]
    with open(os.path.join(done["snapshot"], "files.tar"), "ab") as fh:
        fh.write(b"x")
    bad = backup.verified(host, paths)
    assert bad["verify"]["local"]["bad"] == ["files.tar: sha256 differs from the manifest's"]
    assert exit_code("verify", bad) == 2


def test_the_repository_url_is_never_in_restics_argv(tmp_path, monkeypatch):
    """A URL may hold a user or a token (rest:https://user:token@...): every
    restic command gets it as RESTIC_REPOSITORY in its environment, never
    in its argv, which every user's `ps` shows (fails before: --repo URL)."""
    from fabops.host import backup, restic

    token = "s3cr3t-token-value"
    repo_host(tmp_path)
    host, paths = local(tmp_path, {"repository": {"url": f"rest:https://u:{token}@127.0.0.1:1/r",
                                                  "password_file": str(tmp_path / "pw")}})
    bin_dir, seen = tmp_path / "bin", tmp_path / "seen"
    bin_dir.mkdir()
    (bin_dir / "restic").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" "env=$RESTIC_REPOSITORY" >> {seen}\n'
                                    'echo "Fatal: unable to open $RESTIC_REPOSITORY" >&2\nexit 1\n')
    (bin_dir / "restic").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(backup, "lower_priority", lambda: "nice 19")
    monkeypatch.setattr(backup, "notify_once", lambda host, paths, done: [])
    done = backup.locked_run(host, paths)
    answers = [done, restic.listing(host, time.time()), restic.verify(host, str(tmp_path))]
    lines = seen.read_text().splitlines()
    argvs = [ln for ln in lines if not ln.startswith("env=")]
    assert argvs and not [a for a in argvs if token in a], argvs
    assert {ln for ln in lines if ln.startswith("env=")} == {f"env=rest:https://u:{token}@127.0.0.1:1/r"}
    assert token not in json.dumps(answers) and "<repository>" in done["offsite"]["error"]


def test_the_upload_holds_the_backup_lock_not_the_host_lock(tmp_path, monkeypatch):
    """An upload may take hours: meanwhile health --fix and deploys take the
    host lock (before: the run held it through the upload and the prune).
    A second run meeting the backup lock still held fails only its copy."""
    from fabops.errors import LockedError
    from fabops.host import backup, restic
    from fabops.host.lock import HostLock

    host, paths = repo_host(tmp_path)
    monkeypatch.setattr(backup, "lower_priority", lambda: "nice 19")
    monkeypatch.setattr(backup, "notify_once", lambda host, paths, done: [])
    monkeypatch.setattr(backup, "LOCK_WAIT", 0.0)
    seen = {}

    def offsite(host, local, retention):
        with HostLock(paths.lock, {"trigger": "health"}).acquire(wait=0):
            seen["host lock"] = "free"
        with pytest.raises(LockedError):
            HostLock(paths.backup_lock, {"trigger": "test"}).acquire(wait=0)
        seen["backup lock"] = "held"
        return {"ok": True, "uploaded": [], "pruned": True, "error": None}

    monkeypatch.setattr(restic, "offsite", offsite)
    done = backup.locked_run(host, paths)
    assert seen == {"host lock": "free", "backup lock": "held"} and done["offsite"]["ok"], done
    with HostLock(paths.backup_lock, {"actor": "someone", "trigger": "backup", "run_id": "x"}).acquire(wait=0):
        second = backup.locked_run(host, paths)
    assert second["ok"] and second["deleted"] == [] and "the backup lock is locked" in second["offsite"]["error"]
    assert {s.run_id for s in backup.snapshots(paths)} == {done["run_id"], second["run_id"]}


def test_the_repository_forgets_by_the_local_retention_rule(tmp_path, monkeypatch):
    """keep daily 1, an ok snapshot yesterday and a failed one today: the
    local rule keeps both (the ok one is the newest ok), and so does the
    repository now (before: restic's --keep-daily 1 kept only today's
    failed one and forgot the ok one). A failed one goes once an ok one
    is newer, in both."""
    from fabops.host import backup, restic

    host, paths = repo_host(tmp_path, keep={"daily": 1, "weekly": 0, "monthly": 0})
    snaps = [{"id": "aaa", "tags": ["run=20261201T030000-aaaaaa", "ok=yes"]},
             {"id": "bbb", "tags": ["run=20261202T030000-bbbbbb", "ok=no"]}]
    calls = []
    monkeypatch.setattr(restic, "ready", lambda repo: None)
    monkeypatch.setattr(restic, "remote_runs", lambda repo, name: list(snaps))
    monkeypatch.setattr(restic, "call", lambda repo, *args, **kw: calls.append(args) or "")
    monkeypatch.setattr(restic, "upload", lambda *args: "ccc")
    monkeypatch.setattr(backup, "lower_priority", lambda: "nice 19")
    monkeypatch.setattr(backup, "notify_once", lambda host, paths, done: [])
    monkeypatch.setattr(backup, "snapshots", lambda paths: [])
    done = backup.locked_run(host, paths)
    assert done["offsite"]["ok"] and not [c for c in calls if c[0] == "forget"], calls
    snaps.append({"id": "ccc", "tags": ["run=20261203T030000-cccccc", "ok=yes"]})
    done = backup.locked_run(host, paths)
    assert [c for c in calls if c[0] == "forget"] == [("forget", "--prune", "aaa", "bbb")], calls
    assert done["offsite"]["forgotten"] == ["20261201T030000-aaaaaa", "20261202T030000-bbbbbb"]


def test_two_runs_in_one_second_are_told_apart_by_their_exact_start(tmp_path, monkeypatch):
    """A failed run and the ok one after it, in one second: restic's --time
    keeps whole seconds, so retention reads the started= tag (CI once kept
    the failed one beside the newer ok one, both at 05:33:27). One tagged
    before the tag existed still counts by its run id's time."""
    from fabops.host import backup, restic

    host, paths = repo_host(tmp_path, keep={"daily": 1, "weekly": 0, "monthly": 0})
    snaps = [{"id": "old", "tags": ["run=20261201T030000-aaaaaa", "ok=yes"]},
             {"id": "bad", "tags": ["run=20261207T053327-ffffff", "ok=no", "started=1796621607.25"]},
             {"id": "new", "tags": ["run=20261207T053327-000000", "ok=yes", "started=1796621607.75"]}]
    calls = []
    monkeypatch.setattr(restic, "ready", lambda repo: None)
    monkeypatch.setattr(restic, "remote_runs", lambda repo, name: list(snaps))
    monkeypatch.setattr(restic, "call", lambda repo, *args, **kw: calls.append(args) or "")
    assert [r.started for r in restic.remotes(snaps)] == [restic.run_started("20261201T030000"), 1796621607.25,
                                                          1796621607.75]
    done = restic.offsite(host, [], lambda now: backup.to_delete(now, host.backup.keep))
    assert done["ok"] and done["forgotten"] == ["20261201T030000-aaaaaa", "20261207T053327-ffffff"], done
    assert calls == [("forget", "--prune", "old", "bad")]


def test_an_upload_tags_the_runs_exact_start(tmp_path, monkeypatch):
    from fabops.host import backup, restic

    got = []
    monkeypatch.setattr(restic, "call", lambda repo, *args, **kw: got.append(args) or "")
    snap = backup.Snapshot("20261207T053327-000000", str(tmp_path), 1796621607.75, 1796621608.0, True, 10, 1, 0, "abc")
    restic.upload(None, "web-1", snap)
    assert "started=1796621607.75" in got[0] and got[0][-1] == str(tmp_path), got


def test_a_dead_repository_still_lets_retention_delete_what_it_already_has(tmp_path, monkeypatch):
    """While the copy fails, the snapshots already in the repository are
    deleted as usual and only those not yet off the host stay (before:
    retention was off, and a dead repository filled the disk)."""
    from fabops.host import backup, restic

    host, paths = repo_host(tmp_path, keep={"daily": 0, "weekly": 0, "monthly": 0})  # only the newest is kept
    snaps, up = [], {"ok": True}

    def ready(repo):
        if not up["ok"]:
            raise restic.ResticError("restic snapshots exited 1: connection refused")

    def upload(repo, name, *rest):
        run_id = rest[0] if isinstance(rest[0], str) else rest[0].run_id
        snaps.append({"id": run_id[-6:], "tags": [f"run={run_id}", "ok=yes"]})
        return run_id[-6:]

    monkeypatch.setattr(restic, "ready", ready)
    monkeypatch.setattr(restic, "remote_runs", lambda repo, name: list(snaps))
    monkeypatch.setattr(restic, "call", lambda repo, *args, **kw: "")
    monkeypatch.setattr(restic, "upload", upload)
    monkeypatch.setattr(backup, "lower_priority", lambda: "nice 19")
    monkeypatch.setattr(backup, "notify_once", lambda host, paths, done: [])
    first = backup.locked_run(host, paths)
    up["ok"] = False
    second = backup.locked_run(host, paths)
    third = backup.locked_run(host, paths)
    assert second["offsite"]["error"] and second["deleted"] == [first["run_id"]], second
    assert third["deleted"] == [] and {s.run_id for s in backup.snapshots(paths)} == {second["run_id"],
                                                                                      third["run_id"]}


def test_list_reads_the_repository_with_one_restic_call(tmp_path, monkeypatch):
    """The size comes from the local snapshot's manifest (None once it is
    gone from the host), never a `restic stats` per snapshot (before: one
    each, every one loading the repository's index)."""
    from fabops.host import restic
    from fabops.tasks.backup import list_lines

    host, _ = repo_host(tmp_path)
    calls = []
    snaps = [{"id": "a" * 64, "short_id": "aaaaaaaa", "tags": ["run=20261201T030000-aaaaaa", "commit=none"]},
             {"id": "b" * 64, "short_id": "bbbbbbbb", "tags": ["run=20261202T030000-bbbbbb", "commit=abc"]}]
    monkeypatch.setattr(restic, "ready", lambda repo: None)
    monkeypatch.setattr(restic, "call", lambda repo, *args, **kw: calls.append(args[0]) or json.dumps(snaps))
    off = restic.listing(host, time.time(), {"20261202T030000-bbbbbb": 2048})
    assert calls == ["snapshots"], calls
    assert [(s["run_id"], s["size"], s["commit"]) for s in off["snapshots"]] == [
        ("20261202T030000-bbbbbb", 2048, "abc"), ("20261201T030000-aaaaaa", None, None)]
    lines = list_lines({"snapshots": [], "offsite_snapshots": off})
    assert lines[-2].endswith("2.0 KiB") and lines[-1].endswith("size ? (not on the host)"), lines


def test_a_failed_copy_never_says_nothing_new_to_copy():
    """Trial 5: 'nothing new to copy' beside 'off-host FAILED' was untrue:
    this run's snapshot had not gone up."""
    from fabops.host.report import backup_offsite_lines as offsite_lines

    failed = offsite_lines({"error": "off-host copy: restic snapshots exited 1", "uploaded": []})
    assert failed[1] == "  the local snapshot is kept; nothing was copied; the next run copies what is missing"
    part = offsite_lines({"error": "off-host copy: restic backup exited 1",
                          "uploaded": [{"run_id": "20261207T010000-aaaaaa", "id": "1a2b3c4d"}]})
    assert "1 snapshot up (20261207T010000-aaaaaa as 1a2b3c4d) before it failed" in part[1]
    assert "nothing new to copy" not in " ".join(failed + part)


def test_a_restores_save_survives_the_next_runs_daily_rule():
    """Trial: the next plain backup deleted the snapshot that undoes a
    restore (the daily rule keeps one per day). It is kept for keep.daily
    days, then goes by the rule like any other."""
    from fabops.host.backup import kept_undo
    from fabops.inventory import Keep

    day = 86400.0
    base = 1_800_000_000.0
    old = Snapshot("20270115T080000-aaaaaa", "/b/a", base, base + 1, True, 1, 1, 0)
    undo = Snapshot("20270115T090000-bbbbbb", "/b/b", base + 3600, base + 3601, True, 1, 1, 0, undo_of=old.run_id)
    keep = Keep(daily=2, weekly=0, monthly=0)
    # a new run the same day: the day's newest is the new one; the save stays
    assert to_delete([undo, old], keep, new=base + 7200) == [old.run_id]
    assert kept_undo(undo, base + 7200, keep) and not kept_undo(undo, base + 3600 + 2 * day, keep)
    # keep.daily days later it is one more snapshot of its day, under the rule
    one = Keep(daily=1, weekly=0, monthly=0)
    assert to_delete([undo, old], one, new=base + 3 * day) == sorted([old.run_id, undo.run_id])


def test_a_persons_backup_is_recorded_under_the_laptops_actor(tmp_path, monkeypatch, capsys):
    """Review 3: the host recorded every backup under its own deploy user;
    who runs it is the laptop's to say (DESIGN §8), as for a deploy. The
    task passes its actor; the host's `run ACTOR` records it; without one
    (cron's line) the process's own user."""
    from fabops.host import backup as hb
    from fabops.tasks.backup import _action

    monkeypatch.setenv("USER", "alice")
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    action, extra = _action(False, False, False, None, None, None, False)
    assert action == "run" and len(extra) == 1 and extra[0].startswith("alice@"), extra
    host, paths = local(tmp_path, {})
    monkeypatch.setattr(hb, "lower_priority", lambda: "nice 19")
    for argv, actor in ((["run", "alice@laptop"], "alice@laptop"), (["run"], extra[0])):
        monkeypatch.setattr(sys, "stdin", io.StringIO(host_yml(host)))
        assert hb.main(argv) == 0, capsys.readouterr()
        capsys.readouterr()
        last = json.loads(open(paths.history).read().splitlines()[-1])
        assert (last["trigger"], last["actor"]) == ("backup", actor), last


def test_the_dry_run_fails_an_item_as_the_run_does(tmp_path):
    """#26's trial: `--dry-run` said `would copy sqlite-missing.db` and
    exited 0 where the run failed it (exit 2). One check (cannot_copy)
    for both: the dry run's `would fail` says the run's own error."""
    from fabops.host.backup import exit_code, result
    from fabops.host.report import item_label

    (tmp_path / "app" / "data").mkdir(parents=True)
    host, paths = local(tmp_path, {"files": ["data", "nowhere"], "sqlite": ["data/missing.db"],
                                   "dump": [{"name": "db", "command": "true"}]})
    dry = result("plan", host, paths)
    failing = {w["target"]: w["why"] for w in dry["would"] if w["action"] == "fail"}
    done = run(plan(host, paths), paths)
    # named as the run's rows name them (#24: the dry run said the file alone)
    assert failing == {item_label(i): i["error"] for i in done["items"] if not i["ok"]}, (failing, done["items"])
    app = tmp_path / "app"
    assert failing == {"files (files.tar)": f"not found: {app}/nowhere", "sqlite-missing.db": f"not found: {app}/data/missing.db"}
    assert exit_code("plan", dry) == exit_code("run", done) == 2
    (app / "data" / "missing.db").write_bytes(b"")  # an empty file is an empty database
    (app / "nowhere").mkdir()
    ok = result("plan", host, paths)
    assert not [w for w in ok["would"] if w["action"] == "fail"] and exit_code("plan", ok) == 0


def test_the_dry_run_fails_an_unreadable_database_and_a_dump_without_its_app_directory(tmp_path, monkeypatch):
    from fabops.host.backup import cannot_copy

    host, paths = local(tmp_path, {"sqlite": ["app.db"], "dump": [{"name": "db", "command": "true"}]})
    db = tmp_path / "app" / "app.db"
    db.write_bytes(b"")
    # unreadable to this user (chmod 0 is readable to root, who may run the tests)
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(db))
    by = {it.kind: it for it in items(host, paths)}
    assert cannot_copy(by["sqlite"], "") == f"not readable: {db}"
    assert cannot_copy(by["dump"], str(tmp_path / "gone")) == \
        f"the app directory {tmp_path}/gone is not there: the dump runs in it"
    assert cannot_copy(by["env"], "") is None  # a missing .env is skipped, never failed
