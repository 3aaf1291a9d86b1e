"""The restore drill on the sandbox host (issue #26, docs/backups.md,
"Restore"): the data directory and .env deleted, `backup --restore` puts
the snapshot back in place (what was there saved first, the service
stopped, restored, started and through its readiness gate), the service is
healthy and every file has its sha256 again; `--to DIR` restores beside the
live data without stopping anything."""
import hashlib
import os
import shutil
import stat

import pytest
import yaml

from tests.conftest import one, run_cli


def _sums(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def deployed(sandbox):
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["backup"] = {"files": ["data"]}
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    code, res = sandbox.result()
    assert code == 0 and res["result"] == "deployed", res
    d = sandbox.app / "data"
    (d / "uploads").mkdir(parents=True)
    (d / "uploads" / "photo.jpg").write_bytes(os.urandom(4096))
    (d / "notes.txt").write_text("kept\n")
    (d / "latest").symlink_to("notes.txt")
    return sandbox


def test_the_drill_delete_data_and_env_restore_and_the_service_is_healthy(deployed):
    box, inv = deployed, str(deployed.inventory)
    data, env = box.app / "data", box.app / ".env"
    before, env_sum = _sums(data), hashlib.sha256(env.read_bytes()).hexdigest()
    r = run_cli("backup", "-i", inv, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = one(r.stdout)["run_id"]
    shutil.rmtree(data)
    env.unlink()
    (box.app / "stray.txt").write_text("not in the snapshot, untouched\n")
    # no TTY and no --yes: refused, nothing touched
    r = run_cli("backup", "-i", inv, "--restore", run_id)
    assert r.returncode == 64 and "pass --yes" in r.stderr and not data.exists()
    r = run_cli("backup", "-i", inv, "--restore", run_id, "--yes", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    res = one(r.stdout)["restore"]
    assert res["ok"] and res["from"] == "local" and res["to"] is None and res["saved"] not in (None, run_id)
    assert [s["service"] for s in res["services"] if s["ok"]] == ["bot"], res["services"]
    assert box.health()  # the service answers on the port the restored .env gives it
    assert os.getpriority(os.PRIO_PROCESS, box.pid()) == os.getpriority(os.PRIO_PROCESS, 0)  # not a backup's nice 19
    assert _sums(data) == before and os.readlink(data / "latest") == "notes.txt"
    assert hashlib.sha256(env.read_bytes()).hexdigest() == env_sum and stat.S_IMODE(env.stat().st_mode) == 0o600
    assert (box.app / "stray.txt").exists()
    # what was there before the restore (no data, no .env) is a snapshot of its own: it can be put back
    saved = box.home / "backups" / res["saved"] / "manifest.json"
    assert saved.is_file()
    assert yaml.safe_load(saved.read_text())["undo_of"] == run_id
    # and the next backup's daily rule (one per day) does not delete it (trial)
    r = run_cli("backup", "-i", inv, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert res["saved"] not in one(r.stdout)["deleted"] and saved.is_file()


def test_restore_to_a_directory_stops_nothing_and_only_picks_one_item(deployed, tmp_path):
    box, inv = deployed, str(deployed.inventory)
    r = run_cli("backup", "-i", inv, "--json")
    run_id = one(r.stdout)["run_id"]
    pid = box.pid()
    into = tmp_path / "look"
    r = run_cli("backup", "-i", inv, "--restore", run_id, "--to", str(into), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    res = one(r.stdout)["restore"]
    assert res["ok"] and res["saved"] is None and res["services"] == [] and box.pid() == pid
    copy = into / str(box.app / "data").lstrip("/")
    assert _sums(copy) == _sums(box.app / "data") and (into / "env").read_bytes() == (box.app / ".env").read_bytes()
    # each item says where it went (trial: `files.tar ok`, its files under DIR's copy of the source's path)
    assert {i["file"]: i["put"] for i in res["items"]}["files.tar"] == [str(copy)], res["items"]
    assert {i["file"]: i["put"] for i in res["items"]}["env"] == [str(into / "env")], res["items"]
    only = tmp_path / "only"
    r = run_cli("backup", "-i", inv, "--restore", run_id, "--only", "env", "--to", str(only))
    assert r.returncode == 0 and os.listdir(only) == ["env"], r.stdout + r.stderr
    assert f"into {only / 'env'}" in r.stdout, r.stdout
    r = run_cli("backup", "-i", inv, "--restore", run_id, "--only", "nope", "--to", str(only))
    assert r.returncode == 64 and "the snapshot has no item 'nope': it has files (files.tar), env, state (state.json), history (history.jsonl)" in r.stderr, r.stderr
    r = run_cli("backup", "-i", inv, "--restore", "20200101T000000-abcdef", "--to", str(only))
    assert r.returncode == 64 and "no snapshot 20200101T000000-abcdef on the host, and no repository" in r.stderr


@pytest.mark.unit
@pytest.mark.parametrize("width", (80, 200))
def test_a_restore_to_a_directory_says_where_each_item_went(width, capsys, monkeypatch):
    """Trial: `files.tar ok`, while the files were under DIR/tmp/trial7/...:
    with --to each item's paths are said, as `inv backup` prints them."""
    from fabops.tasks._base import print_text
    from fabops.tasks.backup import restore_lines
    from tests.test_golden import check, render

    look, data = "/tmp/look", "/tmp/trial7/.fabops-demo/host/app/data"
    value = {"restore": {"run_id": "20261201T030000-a1b2c3", "from": "local", "to": look, "ok": True,
                         "saved": None, "services": [],
                         "items": [{"name": "files", "file": "files.tar", "ok": True, "skipped": None, "error": None,
                                    "put": [look + data]},
                                   {"name": "env", "file": "env", "ok": True, "skipped": None, "error": None,
                                    "put": [look + "/env"]}]}}
    text = render(capsys, monkeypatch, width,
                  lambda: [print_text(f"[local] {ln}") for ln in restore_lines(value, len("[local] "))])
    # an item put in one place says it on its row when that fits (#24's fresh-clone trial)
    assert "[local]   env                ok, into /tmp/look/env\n" in text, text
    check("restore-to-dir", width, text)
