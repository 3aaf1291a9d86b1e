"""The restore drill on booted find-to-do hosts (systemd tier, issue #26;
docs/backups.md, "The drill"), on bookworm and on bullseye (Python 3.9 on
the host side).

One test per image does it all in sequence (booting is the expensive part):

- the app set up and deployed as the tier does (its unit under systemd),
  with a `backup:` section: the data directory (a tar), its SQLite
  database (SQLite's online backup) and a restic repository;
- the repository is a real one and not on the host's disk: restic's SFTP
  backend, as the deploy user, against an sshd on this machine listening
  on our end of the container's veth pair (the container reaches this
  machine at its subnet's .1 address); its password in a 0600 file;
- a writer (the deploy user's process) commits rows to the SQLite
  database all through `backup`;
- the drill: the data directory, `.env` and the local snapshot deleted
  (the host's disk lost them), `backup --restore RUN_ID --yes` fetches the
  snapshot from the repository and puts it back in place, the unit comes
  back through its health gate, every file has its bytes again (its sha256
  is the manifest's and the original's), the database passes `PRAGMA
  integrity_check` and holds every row committed before the backup
  started;
- the secrets sweep: the repository's password is in no argv (ps, sampled
  all through the backup and the restore), no output, and no file fabops
  writes (history, state, the update log, cron.log).

A second test on the same booted host (the module's, deployed once) does
on it what tests/test_backup_restic.py does on the ssh tier: the SFTP
repository's sshd stopped is a failed run with exactly one notification
(a webhook on our side of the veth), its local snapshot written; the run
after it comes back copies the snapshots it missed; and both rules leave
exactly what they keep: the host's `keep` its snapshots, restic forget
--prune the repository's by `repository_keep`, over real runs and copies
of one dated back months (AGED: fabops has no fake clock).

restic on the host: the images have none, and this machine's Debian
package is bound in from here, as the host would get it (docs/backups.md,
"Getting restic on the host"). On bookworm that is what `apt install
restic` gives (Debian's 0.14, bound at /usr/bin/restic). Bullseye's own
package is 0.11, which docs/backups.md rules out (it cannot read the
version-2 repositories 0.14 makes), so a bullseye host takes a 0.14 binary
into /usr/local/bin; this machine's binary needs glibc 2.34 (`objdump -T`:
GLIBC_2.34) and bullseye has 2.31, so it is bound in with its own loader
and libc (/opt/fabops-restic) behind a /usr/local/bin/restic wrapper,
self-contained as the static release binary is. Adding restic to the
image recipe would give bullseye the 0.11 the docs rule out, and rebuild
every image.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Optional

import pytest
import yaml

from tests import test_systemd_tier as tier
from tests.conftest import one, require
from tests.harness import container
from tests.harness.sandbox import Origin
from tests.test_secrets_argv import ArgvWatch
from tests.test_systemd_tier import UNIT, fab, on_host

pytestmark = pytest.mark.systemd
APP = "/home/ec2-user/voice-meeting-bot"
HOME = "/home/ec2-user/.fabops/voice-meeting-bot"
PASSWORD_FILE = "/home/ec2-user/.config/fabops/restic-password"
LOGS = "/var/log/voice-meeting-bot-update.log /var/log/voice-meeting-bot-health.log"
# this machine's restic and what it runs with, bound into a bullseye host (above)
BUNDLE = "/opt/fabops-restic"
WRAPPER = f'#!/bin/sh\nexec {BUNDLE}/ld-linux-x86-64.so.2 --library-path {BUNDLE}/lib {BUNDLE}/restic "$@"\n'

WRITER = '''\
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, at REAL NOT NULL, pad BLOB)")
db.commit()
while True:
    with db:  # one committed row a transaction
        db.execute("INSERT INTO t (at, pad) VALUES (?, randomblob(1024))", (time.time(),))
    time.sleep(0.002)
'''
# what the host's python3 says of the database (argv: its path, then an id
# and two times, 0 when not asked): the highest id, integrity_check, the
# rows up to that id, those written before the first time, and between the two
QUERY = '''\
import json, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=30)
top, start, end = (sys.argv[2:] + ["0", "0", "0"])[:3]
one = lambda q, *a: db.execute(q, a).fetchone()[0]
print(json.dumps({"max": one("SELECT COALESCE(MAX(id), 0) FROM t"), "integrity": one("PRAGMA integrity_check"),
                  "upto": one("SELECT COUNT(*) FROM t WHERE id <= ?", int(top)),
                  "before": one("SELECT COUNT(*) FROM t WHERE at < ?", float(start)),
                  "between": one("SELECT COUNT(*) FROM t WHERE at BETWEEN ? AND ?", float(start), float(end))}))
'''


def _restic_binds(suite: str) -> dict:
    if suite == "bookworm":  # glibc 2.36: this machine's binary runs as it is
        return {"/usr/bin/restic": "/usr/bin/restic"}
    return {"/usr/bin/restic": f"{BUNDLE}/restic",
            os.path.realpath("/lib64/ld-linux-x86-64.so.2"): f"{BUNDLE}/ld-linux-x86-64.so.2",
            os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"): f"{BUNDLE}/lib/libc.so.6"}


@pytest.fixture(scope="module", params=container.SUITES)
def drill_box(request, tmp_path_factory, client_key):
    why = container.usable()
    require(why is None, why or "")
    require(shutil.which("restic") is not None, "restic is not installed on this machine (apt-get install restic)")
    origin = Origin(tmp_path_factory.mktemp(f"drill-origin-{request.param}"))
    binds = {str(origin.bare): "/srv/origin.git", **_restic_binds(request.param)}
    with container.booted(request.param, tmp_path_factory, client_key, binds) as box:
        if request.param != "bookworm":
            box.as_root(f"cat > /usr/local/bin/restic <<'EOF'\n{WRAPPER}EOF\nchmod 755 /usr/local/bin/restic")
        yield request.param, box


def _write_as_deploy_user(box, path: str, text: str, mode: int) -> None:
    """A file for ec2-user, written through the container's root from here:
    its content is in no argv (the password file's is a secret)."""
    box.as_root(f"runuser -u ec2-user -- mkdir -p -m 700 {os.path.dirname(path)}")  # its own, parents too
    where = Path(f"/proc/{box.init_pid()}/root") / path.lstrip("/")
    fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(where, mode)
    box.as_root(f"chown ec2-user:ec2-user {path}")


def _repository(box, sshd_factory, client_key, tmp_path) -> tuple:
    """An sshd on this machine at the container's gateway address (its veth
    end), which the deploy user's ssh reaches as `fabops-repo` (_reach).
    The repository's URL, and the sshd (the backup machine: stop() kills it)."""
    sshd = sshd_factory(box.address.rsplit(".", 1)[0] + ".1", trust=False)
    _write_as_deploy_user(box, "/home/ec2-user/.ssh/repo_key", client_key.read_text(), 0o600)
    _reach(box, sshd)
    repo = tmp_path / "backup-machine" / "restic"  # the backup machine's disk: only sftp writes it
    repo.parent.mkdir()
    return f"sftp:fabops-repo:{repo}", sshd


def _reach(box, sshd) -> None:
    """The deploy user's ~/.ssh/config names `sshd` `fabops-repo`, its host
    key pinned (a restarted backup machine is a new port and key)."""
    _write_as_deploy_user(box, "/home/ec2-user/.ssh/repo_known_hosts", sshd.known_hosts_line, 0o600)
    _write_as_deploy_user(box, "/home/ec2-user/.ssh/config", (
        f"Host fabops-repo\n  HostName {sshd.address}\n  Port {sshd.port}\n  User {sshd.user}\n"
        "  IdentityFile ~/.ssh/repo_key\n  IdentitiesOnly yes\n  BatchMode yes\n"
        "  UserKnownHostsFile ~/.ssh/repo_known_hosts\n  StrictHostKeyChecking yes\n  ConnectTimeout 10\n"), 0o600)


# the drill's backup: the database is the sqlite item's (online backup): a
# tar of a file being written is no consistent copy, so the files item leaves it out
DRILL_BACKUP = {"files": ["data"], "exclude": ["app.db", "app.db-wal", "app.db-shm"], "sqlite": ["data/app.db"]}


def _inventory(path: Path, url: str, backup: Optional[dict] = None) -> Path:
    """find-to-do with `backup` (the drill's by default), its repository at `url`."""
    path.write_text(yaml.safe_dump({"default": "find-to-do", "hosts": {"find-to-do": {
        "user": "ec2-user",
        "app": {"path": APP},
        "services": [tier.bot_service("60s", "1s")],
        "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
        "logs": {"update": "/var/log/voice-meeting-bot-update.log", "health": "/var/log/voice-meeting-bot-health.log"},
        "backup": {**(backup or DRILL_BACKUP), "schedule": "off",
                   "repository": {"url": url, "password_file": PASSWORD_FILE}},
    }}}, sort_keys=False))
    return path


def _deployed(inv: Path) -> None:
    """The app cloned, set up and deployed, once per booted host: this
    module's tests share the host (booting one and a first deploy are the
    expensive part; the CI suite is near its time budget)."""
    if on_host(f"test -d {APP}/.git", check=False).returncode != 0:
        tier.first_deploy(inv)


def _db(path: str, *args, check: bool = True) -> dict:
    r = on_host(f"python3 /tmp/drill-query.py {path} {' '.join(map(str, args))}", check=check)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def _sums(directory: str) -> dict:
    """sha256 of every file under `directory` on the host, by path."""
    out = on_host(f"cd {directory} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum").stdout
    return {name: digest for digest, name in (line.split(None, 1) for line in out.splitlines())}


class Writer:
    """The writer, the deploy user's own process on the host; stop() ends it by its PID."""

    def __init__(self, box):
        self.box = box
        _write_as_deploy_user(box, "/home/ec2-user/drill/writer.py", WRITER, 0o644)
        # one simple command in the background: $! is the writer's own PID
        # (setsid in a non-interactive shell execs without a fork), and
        # none of its descriptors is the SSH session's, which ends at once
        self.pid = int(on_host(f"cd {APP} || exit 1; setsid nohup python3 /home/ec2-user/drill/writer.py data/app.db "
                               "> /tmp/drill-writer.log 2>&1 < /dev/null & echo $!").stdout)

    def wait_rows(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if on_host(f"kill -0 {self.pid}", check=False).returncode != 0:
                pytest.fail(f"the writer died: {on_host('cat /tmp/drill-writer.log', check=False).stdout}")
            if _db(f"{APP}/data/app.db", check=False).get("max", 0) >= n:  # {} before its table exists
                return
            time.sleep(0.2)
        pytest.fail(f"the writer did not commit {n} rows in 60 s")

    def stop(self) -> None:
        self.box.as_root(f"kill {self.pid} 2>/dev/null; "
                         f"for i in $(seq 100); do kill -0 {self.pid} 2>/dev/null || exit 0; sleep 0.1; done; "
                         f"kill -9 {self.pid}", check=False)


@pytest.fixture
def drill(drill_box, sshd_factory, client_key, isolated_home, deploy_env, tmp_path):
    """The deployed host with its data, a repository and a running writer;
    the writer is ended in the end, whatever happened."""
    suite, box = drill_box
    tier.find_to_do_alias(box, client_key, isolated_home)
    password = f"drill-pw-{secrets.token_hex(8)}"
    _write_as_deploy_user(box, PASSWORD_FILE, password + "\n", 0o600)
    inv = _inventory(tmp_path / "hosts.yml", _repository(box, sshd_factory, client_key, tmp_path)[0])
    _deployed(inv)
    on_host(f"mkdir -p {APP}/data/uploads && head -c 65536 /dev/urandom > {APP}/data/uploads/photo.bin && "
            f"echo kept > {APP}/data/notes.txt && ln -s notes.txt {APP}/data/latest")
    _write_as_deploy_user(box, "/tmp/drill-query.py", QUERY, 0o644)
    writer = Writer(box)
    try:
        yield suite, box, inv, password, writer
    finally:
        writer.stop()


def _restore_drill(inv, run_id: str, watch_for: str) -> tuple:
    """The data directory, .env and the local snapshot deleted; the
    snapshot restored in place from the repository. (The restore's JSON
    value, the outputs, the argv watch.)"""
    on_host(f"rm -r {APP}/data {APP}/.env {HOME}/backups/{run_id}")
    with ArgvWatch(watch_for) as watch:
        r = fab(inv, "backup", "--restore", run_id, "--yes", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return one(r.stdout)["restore"], r.stdout + r.stderr, watch


@pytest.mark.timeout(600)  # a cold image build on a busy machine; the drill itself well under 2 minutes
def test_the_drill_on_a_booted_host(drill):
    _, _, inv, password, writer = drill
    assert on_host("restic version").stdout.startswith("restic 0.14"), "the host's restic is not the one bound in"
    writer.wait_rows(200)
    outputs = []
    committed = _db(f"{APP}/data/app.db")["max"]  # every row committed before the backup starts
    with ArgvWatch(password) as backup_watch:
        r = fab(inv, "backup", "--json")
    outputs.append(r.stdout + r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    res = one(r.stdout)
    run_id = res["run_id"]
    assert res["ok"] and res["offsite"]["ok"], res
    assert [u["run_id"] for u in res["offsite"]["uploaded"]] == [run_id], res["offsite"]
    manifest = json.loads(on_host(f"cat {HOME}/backups/{run_id}/manifest.json").stdout)
    live = _db(f"{APP}/data/app.db", 0, manifest["started"], manifest["ended"])
    assert live["between"] > 0, f"the writer committed no row while the backup ran: {live}"
    writer.stop()
    data_before = {k: v for k, v in _sums(f"{APP}/data").items() if not k.startswith("./app.db")}
    env_before = _sums(APP)["./.env"]
    by = {i["name"]: i for i in manifest["items"]}

    restored, said, restore_watch = _restore_drill(inv, run_id, password)
    outputs.append(said)
    assert restored["ok"] and restored["from"].startswith("off-host"), restored
    assert restored["saved"] not in (None, run_id), restored
    assert [s["ok"] for s in restored["services"]] == [True], restored["services"]
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    r = fab(inv, "health")
    outputs.append(r.stdout + r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    # the same bytes: the files as they were, the database and .env as the manifest has them
    after = _sums(f"{APP}/data")
    assert {k: v for k, v in after.items() if k != "./app.db"} == data_before
    assert after["./app.db"] == by["sqlite-app.db"]["sha256"]
    assert _sums(APP)["./.env"] == env_before == by["env"]["sha256"]
    assert on_host(f"readlink {APP}/data/latest").stdout.strip() == "notes.txt"
    # every row committed before the backup started: those up to the highest
    # id read just before it, and all the live database had from before its start
    db = _db(f"{APP}/data/app.db", committed, manifest["started"])
    assert db["integrity"] == "ok" and db["upto"] == committed and db["before"] == live["before"], (committed, live, db)

    # the secrets sweep: no argv, no output, no file fabops writes
    assert backup_watch.count > 0 and restore_watch.count > 0
    assert not backup_watch.hits + restore_watch.hits, backup_watch.hits + restore_watch.hits
    assert not [o for o in outputs if password in o]
    # grep reads the password from its file (it is in no argv here either);
    # exit 1 is "read them all, found nowhere", 0 a file that has it, 2 an error
    there = on_host(f"ls -d {HOME} {LOGS} 2>/dev/null", check=False).stdout.split()
    assert HOME in there and "/var/log/voice-meeting-bot-update.log" in there, there
    r = on_host(f"grep -rlF -f {PASSWORD_FILE} {' '.join(there)}", check=False)
    assert r.returncode == 1, f"the repository's password is written in {r.stdout} {r.stderr}"


# Copies of a snapshot dated back (argv: backups/, the run id copied, then
# MONTHS_BACK:DAY each): that day of the month that many months ago, at noon
# in the host's local time (retention's days and months are the host's).
# Retention reads a snapshot's time from its manifest (`started`) and the
# repository's from the started= tag its upload took from that manifest:
# with no fake clock in fabops (and a container shares this machine's
# clock), a copy whose manifest says an earlier start is a run of that day.
AGED = '''\
import datetime, json, os, shutil, sys, time
backups, source = sys.argv[1], sys.argv[2]
today, out = datetime.date.today(), {}
for spec in sys.argv[3:]:
    back, day = map(int, spec.split(":"))
    year, month = divmod(today.year * 12 + today.month - 1 - back, 12)
    started = time.mktime((year, month + 1, day, 12, 0, 0, 0, 0, -1))
    run_id = time.strftime("%Y%m%dT%H%M%S", time.localtime(started)) + "-" + os.urandom(3).hex()
    shutil.copytree(os.path.join(backups, source), os.path.join(backups, run_id))
    path = os.path.join(backups, run_id, "manifest.json")
    with open(path, encoding="utf-8") as fh:
        manifest = json.load(fh)
    manifest.update(run_id=run_id, started=started, ended=started + 1)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh)
    out[spec] = run_id
print(json.dumps(out))
'''
# keep: the host's newest 2 days (today's newest, the aged 2:15); the
# repository's (repository_keep) those and the newest of each of the last 3
# months with one (today's, 2:15's, and 3:15 over 3:10; not 4:15): which
# snapshots each keeps does not depend on today's date (the four real runs
# are today's: a test crossing the host's midnight would fail, once). Each
# aged copy is one more restic backup in the catch-up run (about a second)
KEEP = {"daily": 2, "weekly": 0, "monthly": 0}
REPOSITORY_KEEP = {"daily": 2, "weekly": 0, "monthly": 3}


@pytest.fixture
def offsite(drill_box, sshd_factory, client_key, isolated_home, deploy_env, tmp_path):
    """The deployed host (the drill's, when it ran first), its snapshots
    removed; a new repository behind a new sshd, a small keep, and a
    webhook on our side of the veth for the host's notifications."""
    from tests.harness.webhook import Hook

    _, box = drill_box
    tier.find_to_do_alias(box, client_key, isolated_home)
    _write_as_deploy_user(box, PASSWORD_FILE, f"offsite-pw-{secrets.token_hex(8)}\n", 0o600)
    url, sshd = _repository(box, sshd_factory, client_key, tmp_path)
    inv = _inventory(tmp_path / "hosts.yml", url, {"files": ["data/offsite.txt"], "keep": KEEP,
                                                  "repository_keep": REPOSITORY_KEEP})
    _deployed(inv)
    on_host(f"rm -rf {HOME}/backups && mkdir -p {APP}/data && echo kept > {APP}/data/offsite.txt")
    _write_as_deploy_user(box, "/tmp/drill-aged.py", AGED, 0o644)
    hook = Hook(sshd.address)
    on_host(f"umask 077; echo FABOPS_DISCORD_WEBHOOK={hook.url} > {HOME}/notify.env")
    try:
        yield box, inv, url, sshd, hook
    finally:
        hook.close()
        on_host(f"rm -f {HOME}/notify.env", check=False)


def _runs(url: str) -> list:
    """The run ids of the repository's snapshots, read with the host's restic."""
    r = on_host(f"RESTIC_REPOSITORY={url} restic --password-file {PASSWORD_FILE} snapshots --json --host find-to-do",
                check=False)
    assert r.returncode == 0, r.stderr
    return sorted(t[len("run="):] for s in json.loads(r.stdout) for t in s["tags"] if t.startswith("run="))


def _local() -> list:
    return sorted(on_host(f"ls {HOME}/backups").stdout.split())


def _backup(inv) -> dict:
    r = fab(inv, "backup", "--json")
    assert r.returncode in (0, 2), r.stdout + r.stderr
    return {**one(r.stdout), "code": r.returncode}


@pytest.mark.timeout(600)
def test_dead_repository_catch_up_and_retention_on_a_booted_host(offsite, sshd_factory):
    box, inv, url, sshd, hook = offsite
    first = _backup(inv)
    assert first["code"] == 0 and [u["run_id"] for u in first["offsite"]["uploaded"]] == [first["run_id"]], first
    # the backup machine goes away: each run fails, its local snapshot written, one notification for both
    sshd.stop()
    r = fab(inv, "backup")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "off-host FAILED: off-host copy: restic snapshots exited" in r.stdout, r.stdout
    assert "the local snapshot is kept" in r.stdout and f"retention deleted 1: {first['run_id']}" in r.stdout, r.stdout
    again = _backup(inv)
    assert again["code"] == 2 and "restic snapshots exited" in again["offsite"]["error"] and not again["notified"]
    assert len(hook.got) == 1 and "backup failed" in hook.texts()[0] and "off-host copy" in hook.texts()[0], hook.got
    # the first run's snapshot is in the repository, so retention deleted it; the two it lacks stay for the catch-up
    dead = [r.stdout.split("snapshot ", 1)[1].split(":", 1)[0], again["run_id"]]
    assert _local() == sorted(dead), (_local(), dead)  # two runs in one second: ids sort by their random tail
    aged = json.loads(on_host(f"python3 /tmp/drill-aged.py {HOME}/backups {dead[-1]} "
                              "2:15 3:15 3:10 4:15").stdout)
    # it comes back (a new port and host key): the next run copies what it missed, oldest first, then both rules
    _reach(box, sshd_factory(sshd.address, trust=False))
    last = _backup(inv)
    assert last["code"] == 0, last
    order = [aged[s] for s in ("4:15", "3:10", "3:15", "2:15")] + dead + [last["run_id"]]
    assert [u["run_id"] for u in last["offsite"]["uploaded"]] == order, last["offsite"]
    # restic forget --prune by repository_keep, the local retention by keep
    gone = [first["run_id"], *dead, aged["3:10"], aged["4:15"]]
    assert last["offsite"]["pruned"] and last["offsite"]["forgotten"] == sorted(gone), last["offsite"]
    assert _runs(url) == sorted([aged["2:15"], aged["3:15"], last["run_id"]])
    assert _local() == sorted([aged["2:15"], last["run_id"]]) and not last["notified"]
    assert json.loads(on_host(f"cat {HOME}/state.json").stdout)["backup_notified"] == []
