"""`backup --restore RUN_ID --dry-run` (#24: every task that changes a host
has a dry run, rendered from the decision the real run acts on; docs/backups.md,
"Restore"): on the sandbox host, the drill's dry run says what would be
stopped, saved first, put back where and left alone, writes nothing and
asks nothing (no TTY, no --yes); the real restore then does what it said.
A snapshot whose files.tar holds a member outside its tree: the dry run
refuses that item (exit 2, the real restore's code) and the real restore
refuses the same item with the same words."""
import io
import json
import os
import shutil
import tarfile

import jsonschema
import pytest

from tests.conftest import json_schema, one, run_cli
from tests.test_backup_restore import deployed  # noqa: F401 (a fixture)

WIDE = {"COLUMNS": "1000"}


def _tree(*roots) -> dict:
    """Every entry under `roots` as it is: type, mode, size and mtime (a
    link's target), so any write shows."""
    out = {}
    for root in roots:
        for top, dirs, files in os.walk(root):
            for name in dirs + files:
                p = os.path.join(top, name)
                st = os.lstat(p)
                out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, os.readlink(p) if os.path.islink(p) else None)
    return out


def _quiet(tree: dict) -> dict:
    """Without the running app's own log, which it appends to meanwhile."""
    return {p: v for p, v in tree.items() if not p.endswith(".log")}


def test_the_dry_run_says_what_the_restore_then_does_and_writes_nothing(deployed):  # noqa: F811
    box, inv = deployed, str(deployed.inventory)
    data, env = box.app / "data", box.app / ".env"
    r = run_cli("backup", "-i", inv, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = one(r.stdout)["run_id"]
    shutil.rmtree(data)
    env.unlink()
    before, pid = _quiet(_tree(box.app, box.home)), box.pid()

    # no TTY, no --yes: nothing is asked (one line each: wide)
    dry = run_cli("backup", "-i", inv, "--restore", run_id, "--dry-run", env=WIDE)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    said = dry.stdout.splitlines()
    snap = f"snapshot {run_id}"
    for line in (f"[local] would restore {snap}: from the local snapshot in place",
                 "[local] would stop bot: nothing writes while the snapshot is put back",
                 f"[local] would replace {data}: with its tree from files.tar of {snap}",
                 f"[local] would replace {env}: with env of {snap}, whole (0600)",
                 "[local] would skip state (state.json): not put back in place: fabops' state belongs to the deploys "
                 "(--to DIR gives the file)",
                 "[local] would start bot: then its readiness gate",
                 "[local] would record history.jsonl: the restore (trigger restore); a failed one notifies"):
        assert line in said, dry.stdout
    saving = [ln for ln in said if ln.startswith("[local] would save ")]
    assert len(saving) == 1 and f"{box.home}/backups/YYYYMMDDTHHMMSS-xxxxxx: what is there now (files.tar, env, " \
        "state.json, history.jsonl), after the stop" in saving[0], said
    js = run_cli("backup", "-i", inv, "--restore", run_id, "--dry-run", "--json")
    doc = json.loads(js.stdout)
    assert js.returncode == 0 == doc["code"] and doc["dry_run"] is True, js.stdout
    value = doc["hosts"]["local"]
    jsonschema.validate(value, json_schema("backup"))
    plan = value["restore_plan"]
    assert (plan["from"], plan["to"], plan["stop"]) == ("local", None, ["bot"]), plan
    # each line's verb is its JSON action; a `log` entry reads `would append
    # to the … log` (host/would.py), its action staying `log`
    verbs = ["log" if ln.split()[2] == "append" else ln.split()[2] for ln in said]
    assert [w["action"] for w in value["would"]] == verbs, value["would"]
    # nothing written, nothing stopped
    assert _quiet(_tree(box.app, box.home)) == before and box.pid() == pid and not data.exists()

    real = run_cli("backup", "-i", inv, "--restore", run_id, "--yes", "--json")
    assert real.returncode == 0, real.stdout + real.stderr
    res = one(real.stdout)["restore"]
    assert res["ok"] and [s["service"] for s in res["services"]] == plan["stop"], res
    put = {i["file"] for i in plan["items"] if i["put"]}
    assert {i["file"] for i in res["items"] if i["ok"] and not i["skipped"]} == put == {"files.tar", "env"}
    assert {i["file"] for i in res["items"] if i["skipped"]} == {i["file"] for i in plan["items"] if i["skipped"]}
    assert all(os.path.exists(dest) for i in plan["items"] for _, dest in i["put"])
    assert os.path.dirname(plan["save"]) == str(box.home / "backups") and (box.home / "backups" / res["saved"]).is_dir()
    assert box.health()


def test_a_member_outside_its_tree_is_refused_by_the_dry_run_and_then_by_the_restore(deployed, tmp_path):  # noqa: F811
    box, inv = deployed, str(deployed.inventory)
    r = run_cli("backup", "-i", inv, "--json")
    run_id = one(r.stdout)["run_id"]
    with tarfile.open(box.home / "backups" / run_id / "files.tar", "a") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"evil\n"))
    into = tmp_path / "look"
    why = "files.tar member '../evil.txt' is a path outside its tree"

    dry = run_cli("backup", "-i", inv, "--restore", run_id, "--to", str(into), "--dry-run", env=WIDE)
    said = dry.stdout.splitlines()
    assert dry.returncode == 2, dry.stdout + dry.stderr
    assert f"[local] would refuse files (files.tar): {why.removeprefix('files.tar ')}: nothing of it would be put back" in said
    for name in ("env", "state.json", "history.jsonl"):
        assert f"[local] would write {into}/{name}: {name} of snapshot {run_id} (0600)" in said, said
    assert f"[local] would restore snapshot {run_id}: from the local snapshot into {into}: nothing is stopped" in said
    assert not into.exists()

    real = run_cli("backup", "-i", inv, "--restore", run_id, "--to", str(into), "--json")
    assert real.returncode == 2, real.stdout + real.stderr
    items = {i["file"]: i for i in one(real.stdout)["restore"]["items"]}
    assert not items["files.tar"]["ok"] and f"{why}: nothing of it was put back" in items["files.tar"]["error"]
    assert items["env"]["ok"] and (into / "env").is_file()
    assert sorted(p.name for p in into.iterdir()) == ["env", "history.jsonl", "state.json"]
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("flags", [(True, False), (False, True)])
def test_dry_run_goes_with_restore_not_with_list_or_verify_and_asks_nothing(flags):
    from fabops.errors import UsageError
    from fabops.tasks.backup import _action

    with pytest.raises(UsageError, match="--restore RUN_ID --dry-run: that restore's plan"):
        _action(*flags, True, None, None, None, False)
    # no TTY here and no --yes: a restore would refuse to ask; its dry run asks nothing
    assert _action(False, True, False, "20200101T000000-abcdef", None, None, False) == (
        "restore-plan", ("20200101T000000-abcdef", "", ""))
