"""The off-host copy (issue #26, docs/backups.md): `backup` on the sandbox
host (connection: local) copies its snapshot to a real restic repository
reached over SFTP through a second sshd on loopback, never the host's own
disk. The password never reaches an argv or the output; a dead repository
(that sshd stopped) is a failed run, notified once, with the local
snapshot still written; the next run after it comes back catches up and
restic's forget --prune applies the keep policy."""
import json
import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import one, require, run_cli
from tests.harness.webhook import Hook
from tests.test_secrets_argv import ArgvWatch

pytestmark = pytest.mark.ssh
PASSWORD = "restic-pw-marker-7d1e55"


class Repo:
    """An SFTP restic repository behind a loopback sshd, the deploy user's
    ssh reaching it as `fabops-repo` through its own ssh config (a wrapper
    `ssh` first on PATH: the isolated test HOME has no ~/.ssh/config, and
    OpenSSH reads the password database's home, never $HOME)."""

    def __init__(self, tmp_path, sshd_factory, client_key):
        self.factory, self.key = sshd_factory, client_key
        self.dir = tmp_path / "backup-machine" / "restic"  # the backup machine's disk: only sftp writes it
        self.dir.parent.mkdir()
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.config = tmp_path / "ssh_config"
        (self.bin / "ssh").write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {self.config} "$@"\n')
        (self.bin / "ssh").chmod(0o755)
        self.url = f"sftp:fabops-repo:{self.dir}"
        self.env = {"PATH": f"{self.bin}:{os.environ['PATH']}"}
        self.sshd = None
        self.start()

    def start(self) -> None:
        self.sshd = self.factory("127.0.0.1")
        self.config.write_text(
            f"Host fabops-repo\n  HostName 127.0.0.1\n  Port {self.sshd.port}\n  User {self.sshd.user}\n"
            f"  IdentityFile {self.key}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  ConnectTimeout 10\n")

    def runs(self, password_file) -> list:
        """The run ids of the repository's snapshots, read with restic itself."""
        r = subprocess.run(["restic", "--repo", self.url, "--password-file", str(password_file), "snapshots",
                            "--json"], capture_output=True, text=True, env={**os.environ, **self.env}, timeout=120)
        assert r.returncode == 0, r.stderr
        return sorted(t[len("run="):] for s in json.loads(r.stdout) for t in s["tags"] if t.startswith("run="))


def _inventory(sandbox, repo_url, password_file, **backup) -> str:
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["backup"] = {"files": ["data"], **backup,
                                        "repository": {"url": repo_url, "password_file": str(password_file)}}
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(sandbox.inventory)


def _ready(sandbox, repo, mode=0o600, **backup):
    """data/a.txt in the app, a password file of `mode`, the inventory: (its path, the password file)."""
    (sandbox.app / "data").mkdir()
    (sandbox.app / "data" / "a.txt").write_text("kept\n")
    pw = sandbox.base / "restic-password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(mode)
    return _inventory(sandbox, repo.url, pw, **backup), pw


@pytest.fixture
def repo(tmp_path, sshd_factory, client_key):
    require(shutil.which("restic") is not None, "restic is not installed (apt-get install restic)")
    return Repo(tmp_path, sshd_factory, client_key)


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def test_offsite_copy_dead_repository_and_catch_up(sandbox, repo, hook):
    inv, pw = _ready(sandbox, repo)
    env = {**repo.env, "FABOPS_DISCORD_WEBHOOK": hook.url}
    # the first run creates the repository and copies its snapshot; the password is in no argv
    with ArgvWatch(PASSWORD) as watch:
        r = run_cli("backup", "-i", inv, "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    first = one(r.stdout)
    assert first["offsite"]["ok"] and first["offsite"]["error"] is None, first["offsite"]
    assert [u["run_id"] for u in first["offsite"]["uploaded"]] == [first["run_id"]]
    assert not [w for w in first["warnings"] if "off-host" in w] and first["priority"].startswith("nice 19")
    assert watch.count > 0 and not watch.hits, watch.hits
    assert PASSWORD not in r.stdout + r.stderr
    assert repo.runs(pw) == [first["run_id"]] and (repo.dir / "config").is_file()
    r = run_cli("backup", "-i", inv, "--list", "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (listed,) = one(r.stdout)["offsite_snapshots"]["snapshots"]
    assert listed["run_id"] == first["run_id"] and listed["size"] > 0 and 0 <= listed["age"] < 3600, listed
    r = run_cli("backup", "-i", inv, "--list", env=env, timeout=300)
    assert "off the host (restic): 1 snapshots" in r.stdout and f"{first['run_id']}  {listed['id']}" in r.stdout
    # the repository's machine goes away: a failed run, the local snapshot still written, one notification
    repo.sshd.stop()
    dead = []
    for _ in range(2):
        r = run_cli("backup", "-i", inv, env=env, timeout=300)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "off-host FAILED: off-host copy: restic snapshots exited" in r.stdout, r.stdout
        assert "the local snapshot is kept" in r.stdout and PASSWORD not in r.stdout + r.stderr
        dead.append(r.stdout.split("snapshot ", 1)[1].split(":", 1)[0])
        assert (sandbox.home / "backups" / dead[-1] / "manifest.json").is_file()
    assert len(hook.texts("backup failed")) == 1, hook.texts("backup failed")
    r = run_cli("backup", "-i", inv, "--list", env=env, timeout=300)
    assert r.returncode == 2 and "off the host FAILED: off-host: restic snapshots exited" in r.stdout, r.stdout
    assert dead[-1] in r.stdout  # the local snapshots are still listed
    assert "off-host copy" in hook.texts("backup failed")[0] and PASSWORD not in json.dumps(hook.got)
    # it comes back: the next run copies what it missed, then forget --prune keeps the newest of the day
    repo.start()
    r = run_cli("backup", "-i", inv, "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    last = one(r.stdout)
    assert [u["run_id"] for u in last["offsite"]["uploaded"]] == dead + [last["run_id"]], last["offsite"]
    assert last["offsite"]["pruned"] and repo.runs(pw) == [last["run_id"]]
    state = json.loads((sandbox.home / "state.json").read_text())
    assert state["backup_notified"] == []  # the next failure is news again


def test_a_password_file_open_to_others_fails_the_copy_not_the_snapshot(sandbox, repo):
    inv, _ = _ready(sandbox, repo, 0o644, files=[])
    r = run_cli("backup", "-i", inv, "--dry-run", env=repo.env)
    assert r.returncode == 0 and "would upload the snapshot: restic backup into backup.repository" in r.stdout, \
        r.stdout + r.stderr
    assert "would forget the repository's snapshots: restic forget --prune of those retention's rule does not keep (daily 7" in r.stdout
    r = run_cli("backup", "-i", inv, "--json", env=repo.env, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    data = one(r.stdout)
    assert data["ok"] and "is open to others (mode 0644): chmod 600 it" in data["offsite"]["error"]
    assert (sandbox.home / "backups" / data["run_id"] / "manifest.json").is_file()
    assert not (repo.dir / "config").exists()  # nothing reached the repository


def test_verify_checks_the_repository_and_restores_the_newest_snapshot(sandbox, repo):
    (sandbox.app / ".env").write_text(f"TOKEN={PASSWORD}\n")
    inv, pw = _ready(sandbox, repo)
    r = run_cli("backup", "-i", inv, "--json", env=repo.env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = one(r.stdout)["run_id"]
    r = run_cli("backup", "-i", inv, "--verify", "--json", env=repo.env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    v = one(r.stdout)["verify"]
    assert v["local"]["ok"] and v["local"]["run_id"] == run_id and v["local"]["items"] == 2  # files.tar, env
    assert v["offsite"]["ok"] and v["offsite"]["checked"] and v["offsite"]["run_id"] == run_id
    assert v["offsite"]["items"] == 2 and v["offsite"]["bad"] == []
    assert not [p for p in (sandbox.home / "backups").iterdir() if p.name.startswith(".verify-")]  # removed
    assert PASSWORD not in r.stdout + r.stderr
    r = run_cli("backup", "-i", inv, "--verify", env=repo.env, timeout=300)
    assert r.returncode == 0 and "verify off-host: restic check ok" in r.stdout, r.stdout + r.stderr
    # a local snapshot changed after the run, and a repository that lost a data file: both FAILED
    (sandbox.home / "backups" / run_id / "env").write_text("TOKEN=changed\n")
    packs = sorted(p for p in (repo.dir / "data").rglob("*") if p.is_file())
    packs[0].write_bytes(b"damaged")
    r = run_cli("backup", "-i", inv, "--verify", "--json", env=repo.env, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    v = one(r.stdout)["verify"]
    assert v["local"]["bad"] == ["env: sha256 differs from the manifest's"]
    assert not v["offsite"]["ok"] and "restic check exited" in v["offsite"]["error"], v["offsite"]


def test_a_snapshot_gone_from_the_host_is_restored_from_the_repository(sandbox, repo, tmp_path):
    inv, pw = _ready(sandbox, repo)
    r = run_cli("backup", "-i", inv, "--json", env=repo.env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = one(r.stdout)["run_id"]
    shutil.rmtree(sandbox.home / "backups" / run_id)  # the host's disk lost it
    into = tmp_path / "look"
    r = run_cli("backup", "-i", inv, "--restore", run_id, "--to", str(into), "--json", env=repo.env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    res = one(r.stdout)["restore"]
    assert res["ok"] and res["from"].startswith("off-host ") and PASSWORD not in r.stdout + r.stderr
    assert (into / str(sandbox.app / "data" / "a.txt").lstrip("/")).read_text() == "kept\n"
    assert not [p for p in (sandbox.home / "backups").iterdir() if p.name.startswith(".restore-")]
