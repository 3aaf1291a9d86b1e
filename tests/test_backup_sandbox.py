"""`backup` on the sandbox host (connection: local), real parts (issue #26):
a SQLite database written continuously by another process while the
backup runs, files and excludes, a failing dump beside good items,
--list, --dry-run, the snapshot's modes, and the warning that there is no
off-host copy yet."""
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import json_schema, one, run_cli

WRITER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute("PRAGMA journal_mode=" + sys.argv[2])
db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body BLOB)")
db.commit()
while True:
    db.execute("INSERT INTO rows (body) VALUES (randomblob(512))")
    db.commit()
"""


def _inventory(sandbox, backup: dict) -> str:
    import yaml

    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["backup"] = backup
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(sandbox.inventory)


def _rows(db: Path) -> int:
    """The newest row id; 0 while the writer has not committed its table
    (the file exists before CREATE TABLE is in: "no such table")."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
            return c.execute("SELECT COALESCE(MAX(id), 0) FROM rows").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _snapshot(sandbox, run_id: str) -> Path:
    return sandbox.home / "backups" / run_id


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_sqlite_written_while_the_backup_runs_is_whole_and_consistent(sandbox, journal):
    db = sandbox.app / "data" / "app.db"
    db.parent.mkdir()
    inv = _inventory(sandbox, {"sqlite": ["data/app.db"]})
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), journal])
    try:
        deadline = time.monotonic() + 60
        while not db.exists() or _rows(db) < 2000:  # a database of some size, being written
            assert writer.poll() is None and time.monotonic() < deadline, "the writer did not write"
            time.sleep(0.05)
        before = _rows(db)  # committed before the backup started
        r = run_cli("backup", "-i", inv, "--json")
        assert writer.poll() is None, "the writer must still be writing: the backup ran under load"
    finally:
        writer.kill()
        writer.wait()
    assert r.returncode == 0, r.stderr
    data = one(r.stdout)
    (item,) = [i for i in data["items"] if i["kind"] == "sqlite"]
    assert item["ok"] and item["error"] is None, item
    copy = _snapshot(sandbox, data["run_id"]) / item["file"]
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == item["sha256"] and copy.stat().st_size == item["size"]
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {row[0] for row in c.execute("SELECT id FROM rows WHERE id <= ?", (before,))}
    assert ids == set(range(1, before + 1)), f"rows committed before the backup are missing: {before - len(ids)}"


def test_files_excludes_a_failing_dump_and_the_modes(sandbox):
    data_dir = sandbox.app / "data"
    (data_dir / "cache").mkdir(parents=True)
    (data_dir / "keep.txt").write_text("kept")
    (data_dir / "noise.log").write_text("left out")
    (data_dir / "cache" / "big.bin").write_bytes(b"x" * 100)
    shared = sandbox.app.parent / "shared" / "uploads"  # the usual layout: uploads -> ../shared/uploads
    shared.mkdir(parents=True)
    (shared / "photo.jpg").write_bytes(b"jpeg")
    (sandbox.app / "uploads").symlink_to(os.path.relpath(shared, sandbox.app))
    inv = _inventory(sandbox, {
        "files": ["data", "uploads"], "exclude": ["*.log", "cache"],
        "dump": [{"name": "broken", "command": "echo half; echo 'no such database' >&2; exit 3"},
                 {"name": "good", "command": "printf 'dump of %s' \"$PWD\""}],
    })
    r = run_cli("backup", "-i", inv)
    assert r.returncode == 2, (r.stdout, r.stderr)  # a failed item: FAILED (docs/errors.md)
    assert "no off-host copy: backup.repository is not set" in r.stdout
    failed = [ln.split() for ln in r.stdout.splitlines() if "dump-broken.out" in ln]
    assert failed and failed[0][1:5] == ["dump-broken", "(dump-broken.out)", "FAILED", "exited"], r.stdout
    assert "exited 3: no such database" in r.stdout
    snaps = [p for p in (sandbox.home / "backups").iterdir()]
    assert [p.name for p in snaps if p.name.startswith(".")] == []  # no partial left behind
    (snap,) = snaps
    manifest = json.loads((snap / "manifest.json").read_text())
    by = {i["name"]: i for i in manifest["items"]}
    assert not manifest["ok"] and not by["dump-broken"]["ok"]
    assert by["files"]["ok"] and by["dump-good"]["ok"] and by["env"]["ok"], by
    assert (snap / "dump-good.out").read_text() == f"dump of {sandbox.app}"
    assert (snap / "env").read_text() == (sandbox.app / ".env").read_text()
    with tarfile.open(snap / "files.tar") as tar:
        names = tar.getnames()
    base = str(data_dir).lstrip("/")
    assert f"{base}/keep.txt" in names
    assert not [n for n in names if n.endswith(".log") or "/cache" in n], names
    # a listed symlink is followed: the files it points to, under the listed name
    assert f"{str(sandbox.app / 'uploads').lstrip('/')}/photo.jpg" in names, names
    # 0700 directories, 0600 files
    for d in (sandbox.home / "backups", snap):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in snap.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for i in manifest["items"]:
        if not i.get("skipped"):
            assert hashlib.sha256((snap / i["file"]).read_bytes()).hexdigest() == i["sha256"], i["name"]


def test_a_missing_listed_path_fails_its_item_only(sandbox):
    (sandbox.app / "data").mkdir()
    (sandbox.app / "data" / "a.txt").write_text("a")
    inv = _inventory(sandbox, {"files": ["data", "nowhere"], "sqlite": ["missing.db"]})
    r = run_cli("backup", "-i", inv, "--json")
    assert r.returncode == 2
    data = one(r.stdout)
    by = {i["name"]: i for i in data["items"]}
    assert by["files"]["error"] == f"not found: {sandbox.app}/nowhere"
    assert by["sqlite-missing.db"]["error"] == f"not found: {sandbox.app}/missing.db"
    assert not (sandbox.app / "missing.db").exists()  # never created by the backup
    assert by["env"]["ok"] and data["warnings"] and "off-host" in data["warnings"][0]


def test_the_dry_run_says_an_item_the_run_fails_and_exits_as_it_does(sandbox):
    """#26's trial: `--dry-run` said `would copy sqlite-missing.db: SQLite
    online backup` and exited 0; the run failed it, exit 2."""
    inv = _inventory(sandbox, {"sqlite": ["data/missing.db"]})
    r = run_cli("backup", "-i", inv, "-H", "local", "--dry-run")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"would fail sqlite-missing.db: not found: {sandbox.app}/data/missing.db" in r.stdout, r.stdout
    assert "would copy sqlite-missing.db" not in r.stdout and not (sandbox.home / "backups").exists()
    r = run_cli("backup", "-i", inv, "-H", "local", "--dry-run", "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["code"] == 2, r.stdout
    import jsonschema

    jsonschema.validate(one(r.stdout), json_schema("backup"))
    ran = run_cli("backup", "-i", inv, "-H", "local")
    assert ran.returncode == 2 and f"not found: {sandbox.app}/data/missing.db" in ran.stdout, ran.stdout


def test_dry_run_changes_nothing_and_shows_what_the_run_copies(sandbox):
    (sandbox.app / "data").mkdir(exist_ok=True)  # there: the run copies it (a missing one: `would fail`, above)
    inv = _inventory(sandbox, {"files": ["data"], "dump": [{"name": "db", "command": "touch dumped"}]})
    r = run_cli("backup", "-i", inv, "--dry-run")
    assert r.returncode == 0, r.stderr
    # each item named as the run's rows name it (#24: the dry run said `files.tar`, the run `files (files.tar)`)
    assert "would copy files (files.tar)" in r.stdout and "would copy dump-db (dump-db.out): stdout of backup.dump db" \
        in r.stdout, r.stdout
    assert "touch dumped" not in r.stdout  # a dump's command is not shown in plain output (docs/backups.md)
    assert "no off-host copy: backup.repository is not set" in r.stdout
    assert not (sandbox.home / "backups").exists() and not (sandbox.app / "dumped").exists()
    r = run_cli("backup", "-i", inv, "--dry-run", "--json")
    plan = json.loads(r.stdout)
    assert plan["dry_run"] is True
    planned = [i["name"] for i in one(r.stdout)["items"]]
    assert not (sandbox.home / "backups").exists()
    # the real run copies exactly the items the plan named
    ran = one(run_cli("backup", "-i", inv, "--json").stdout)
    assert [i["name"] for i in ran["items"]] == planned


def test_list_shows_each_snapshot_and_retention_prunes_after_an_ok_run(sandbox):
    import jsonschema

    from fabops.host.backup import NO_OFF_HOST

    inv = _inventory(sandbox, {"keep": {"daily": 1, "weekly": 0, "monthly": 0}})
    r = run_cli("backup", "-i", inv, "--list")
    # none yet: nothing is on the host's disk to warn about, only that no off-host copy is configured (trial)
    assert r.returncode == 0 and "no snapshots yet" in r.stdout, r.stdout
    assert "host's own disk" not in r.stdout and "no off-host copy is configured" in r.stdout, r.stdout
    assert r.stdout.count("\n") == 2, r.stdout  # the two lines, nothing else
    first = one(run_cli("backup", "-i", inv, "--json").stdout)
    listed = one(run_cli("backup", "-i", inv, "--list", "--json").stdout)
    assert [s["run_id"] for s in listed["snapshots"]] == [first["run_id"]]
    assert listed["warnings"] == [NO_OFF_HOST]  # one is on the host's disk now: the disk's warning
    snap = listed["snapshots"][0]
    assert snap["ok"] and snap["items"] == 1 and snap["size"] == first["items"][0]["size"]  # .env only
    jsonschema.validate(listed, json_schema("backup"))
    jsonschema.validate(first, json_schema("backup"))
    # keep one a day: the first snapshot is from two days ago (its manifest says so: not the wall
    # clock's day, which a run across midnight would change), so the second run's day keeps the second only
    manifest = sandbox.home / "backups" / first["run_id"] / "manifest.json"
    m = json.loads(manifest.read_text())
    m["started"] -= 2 * 86400
    manifest.write_text(json.dumps(m))
    second = one(run_cli("backup", "-i", inv, "--json").stdout)
    assert second["deleted"] == [first["run_id"]]
    r = run_cli("backup", "-i", inv, "--list")
    assert second["run_id"] in r.stdout and first["run_id"] not in r.stdout
    assert os.listdir(sandbox.home / "backups") == [second["run_id"]]


@pytest.mark.unit
@pytest.mark.parametrize("width", (80, 200))
def test_an_empty_list_without_a_repository_at_both_widths(width, capsys, monkeypatch):
    """`backup --list` with no snapshot and no repository, as `inv backup`
    prints it (trial: it warned of snapshots on the host's disk, and there were none)."""
    from fabops.host.backup import NO_REPOSITORY
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import list_lines
    from tests.test_golden import check, render

    value = {"snapshots": [], "warnings": [NO_REPOSITORY]}
    text = render(capsys, monkeypatch, width, lambda: [print_text(f"[local] {ln}") for ln in list_lines(value) + [
        f"warning: {w}" for w in value["warnings"]]])
    check("backup-list-empty", width, text)
