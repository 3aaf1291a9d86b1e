"""`backup` over a real sshd (ssh tier, issue #26): one round trip runs the
host's own fabops (installed by a deploy) with the settings on stdin; the
snapshot is on the host, private, and the .env's secret is in it but never
in the output."""
import json
import sqlite3
import stat
import tarfile

import pytest
import yaml

from tests.conftest import one, run_cli
from tests.harness.apps import RemoteApp

pytestmark = pytest.mark.ssh
SECRET = "s3cr3t-token-value"


def test_backup_over_ssh_before_and_after_fabops_is_on_the_host(ssh_host, tmp_path, deploy_env):
    app = RemoteApp(ssh_host, tmp_path)
    data = yaml.safe_load(app.inventory.read_text())
    data["hosts"]["h1"]["backup"] = {"files": ["data"], "exclude": ["*.tmp"], "sqlite": ["data/app.db"],
                                     "dump": [{"name": "head", "command": "git rev-parse HEAD"}]}
    app.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    h = ssh_host
    # no fabops on the host yet: said so, with what installs it
    r = run_cli("backup", "-i", str(app.inventory))
    assert r.returncode == 2 and "a deploy or `setup` installs it" in r.stderr, (r.stdout, r.stderr)
    assert app.deploy_json()[0] == 0
    # the app's data, made after the deploy (untracked files before it are local changes it warns about)
    h.ssh("mkdir -p ~/app/data && echo kept > ~/app/data/a.txt && echo scratch > ~/app/data/b.tmp && "
          "python3 -c 'import sqlite3; c = sqlite3.connect(\"app/data/app.db\"); c.execute(\"CREATE TABLE t (x)\"); "
          "c.executemany(\"INSERT INTO t VALUES (?)\", [(i,) for i in range(100)]); c.commit()'")
    r = run_cli("backup", "-i", str(app.inventory), "--json")
    assert r.returncode == 0, [i for i in one(r.stdout)["items"] if not i["ok"]]
    assert SECRET not in r.stdout + r.stderr
    res = one(r.stdout)
    assert res["ok"] and res["commit"] == app.origin.head and "off-host" in res["warnings"][0]
    by = {i["name"]: i for i in res["items"]}
    assert by["dump-head"]["size"] == 41 and by["state"]["ok"] and not by["state"].get("skipped")
    snap = h.path(res["snapshot"])
    assert stat.S_IMODE(snap.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in snap.iterdir())
    assert SECRET in (snap / "env").read_text()
    assert (snap / "dump-head.out").read_text().strip() == app.origin.head
    copy = tmp_path / "copy.db"  # SQLite opens no file under /proc/PID/root/: read a copy here
    copy.write_bytes((snap / "sqlite-app.db").read_bytes())
    with sqlite3.connect(str(copy)) as c:
        assert c.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 100
    with tarfile.open(snap / "files.tar") as tar:  # ~/app/data, the app path's ~/ expanded on the host
        names = tar.getnames()
    assert "root/app/data/a.txt" in names and not [n for n in names if n.endswith(".tmp")], names
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["run_id"] == res["run_id"] and [i["name"] for i in manifest["items"]] == list(by)
    r = run_cli("backup", "-i", str(app.inventory), "--list")
    assert r.returncode == 0 and res["run_id"] in r.stdout and "no off-host copy: backup.repository is not set" in r.stdout
