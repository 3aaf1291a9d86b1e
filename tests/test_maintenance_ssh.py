"""reset, backup-env, restore-env, clean and system-update over a real sshd (ssh tier)."""
import json
import os
import subprocess
import tarfile
import time

import pytest
import yaml

from tests.conftest import run_cli
from tests.harness.apps import RemoteApp

pytestmark = pytest.mark.ssh
SECRET = "s3cr3t-token-value"
REPO_SECRET = "r3p0-t0ken-value"


@pytest.fixture
def deployed(ssh_host, tmp_path, deploy_env):
    app = RemoteApp(ssh_host, tmp_path, seed_venv=True)
    assert app.deploy_json()[0] == 0
    return app


def cli(app, *args, **kw):
    return run_cli(*args, "-i", str(app.inventory), **kw)


def no_secret(*texts):
    for t in texts:
        assert SECRET not in t


def test_reset_saves_everything_then_restores_exact_bytes(deployed, tmp_path):
    h = deployed.host
    h.ssh("cd ~/app && printf 'local hotfix\\n' >> app.py && printf '\\x00\\x01binary' > data.bin && mkdir -p notes && echo n > notes/a.txt")
    before_app = h.path("~/app/app.py").read_bytes()
    before_bin = h.path("~/app/data.bin").read_bytes()
    r = cli(deployed, "reset")
    assert r.returncode == 64 and "no TTY" in r.stderr  # no TTY, no --yes: refused
    assert h.path("~/app/data.bin").exists()
    r = cli(deployed, "reset", "--yes", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)["hosts"]["h1"]
    assert res["result"] == "deployed"
    no_secret(r.stdout, r.stderr)
    # the tree is clean at origin, .env (ignored) kept
    status = h.ssh("cd ~/app && git status --porcelain && git rev-parse HEAD").stdout.split()
    assert status == [deployed.origin.head]
    assert SECRET in h.path("~/app/.env").read_text()
    saved = h.path(res["saved"])
    assert oct(saved.stat().st_mode & 0o777) == "0o700"
    for f in saved.iterdir():
        assert oct(f.stat().st_mode & 0o777) == "0o600", f
    assert SECRET in (saved / "env").read_text()
    # re-apply: exact bytes come back
    h.ssh(f"cd ~/app && git apply {res['saved']}/tracked.patch && tar -xzf {res['saved']}/untracked.tar.gz")
    assert h.path("~/app/app.py").read_bytes() == before_app
    assert h.path("~/app/data.bin").read_bytes() == before_bin
    assert h.path("~/app/notes/a.txt").read_text() == "n\n"
    hist = deployed.history()
    assert hist[-1]["trigger"] == "reset" and hist[-1]["saved"] == res["saved"]
    assert deployed.version() == "1"
    no_secret(h.path("~/.fabops/app/history.jsonl").read_text())


def test_a_file_resets_own_rules_write_is_no_warning_at_the_next_deploy(deployed):
    """reset runs every dependency rule; what they leave untracked (npm
    install's package-lock.json) is fabops' own, so the next deploy neither
    warns about it nor exits 1 (#23)."""
    writes_lock = "#!/bin/sh\nset -e\nmkdir -p vendor\ncp requirements.txt vendor/installed.txt\necho 1 > deps.lock\n"
    deployed.origin.push("the rule writes a lock file", {"install-deps.sh": writes_lock})
    assert deployed.deploy_json()[0] == 0  # requirements.txt did not change: the rule did not run
    assert not deployed.host.path("~/app/deps.lock").exists()
    r = cli(deployed, "reset", "--yes", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert deployed.host.path("~/app/deps.lock").exists()  # reset ran every rule
    deployed.origin.good("3")
    code, res = deployed.deploy_json()
    assert (code, res["result"], res["warnings"]) == (0, "deployed", []), res


def test_reset_dry_run_changes_nothing(deployed):
    deployed.host.ssh("echo x > ~/app/untracked.txt")
    r = cli(deployed, "reset", "--dry-run")
    assert r.returncode == 0 and "?? untracked.txt" in r.stdout, r.stdout + r.stderr
    said = [ln for ln in r.stdout.splitlines() if ln.startswith("[h1] would ")]
    assert said[0].startswith("[h1] would save .env and local changes: 1 local change; saved to ") and \
        said[1] == "[h1] would stop bot: nothing runs while the checkout is reset", said
    # already at origin's head: it says so, and what clean -fd removes (5aae2f3)
    assert said[2].startswith(f"[h1] would reset the checkout at {deployed.origin.head[:10]}: already origin/main; "
                              "git reset --hard, then git clean -fd removes the 1 untracked file listed above "
                              "from the app directory, saved to ~/backup/reset-<time>/"), said
    assert said[-2:] == ["[h1] would start bot: then poll it until ready",
                         "[h1] would record state.json: deployed (when healthy)"], said  # no pin to clear
    r = cli(deployed, "reset", "--dry-run", "--json")
    value = json.loads(r.stdout)["hosts"]["h1"]
    assert [w["action"] for w in value["would"]] == ["save", "stop", "reset", "run", "start", "record"], value
    assert value["dirty"] == ["?? untracked.txt"]
    assert deployed.host.path("~/app/untracked.txt").exists()


def test_dry_runs_of_restart_unpin_health_fix_and_rollback_change_nothing(deployed):
    """Every task that changes a host takes --dry-run, says what the real run
    would do, with its exit code, and changes nothing: no restart, no state,
    no lock, no log line, no notification."""
    from fabops.host.lock import HostLock

    h = deployed.host
    pid = h.path("~/.fabops/app/services/bot.pid").read_text()
    state = h.path("~/.fabops/app/state.json").read_text()
    r = cli(deployed, "restart", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hosts"]["h1"] == {"dry_run": True, "would": [
        {"action": "restart", "target": "bot", "why": "then poll it until ready"},
        {"action": "record", "target": "state.json",
         "why": "once all are ready on the deployed commit, replacing the last run's result"}]}
    r = cli(deployed, "restart", "--dry-run")
    assert (r.returncode, r.stdout) == (0, "[h1] would restart bot: then poll it until ready\n[h1] would record "
                                           "state.json: once all are ready on the deployed commit, replacing the "
                                           "last run's result\n"), r.stderr
    with HostLock(str(h.path("~/.fabops/app/lock")), {"actor": "alice@laptop", "trigger": "cron"}).acquire():
        r = cli(deployed, "restart", "--dry-run")
        assert r.returncode == 4 and "would stop: locked: cron by alice@laptop" in r.stderr, r.stderr
    assert h.path("~/.fabops/app/services/bot.pid").read_text() == pid  # nothing restarted
    assert h.path("~/.fabops/app/state.json").read_text() == state
    # a pin from a rollback dry run? none: the dry run pins nothing
    first = deployed.origin.head
    deployed.origin.good("2")
    assert deployed.deploy_json()[0] == 0
    code, res = deployed.deploy_json("--dry-run", "--ref", first)  # what rollback --to would plan
    assert (code, res["result"]) == (0, "would_deploy") and res["to"] == first, res
    r = cli(deployed, "rollback", "--to", first, "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["hosts"]["h1"]["result"] == "would_deploy", r.stdout + r.stderr
    assert deployed.version() == "2" and not deployed.state.get("pin")
    r = cli(deployed, "unpin", "--dry-run")
    assert r.returncode == 0 and "not pinned: nothing to unpin" in r.stdout
    assert cli(deployed, "rollback", "--to", first).returncode == 0  # now really pinned
    r = cli(deployed, "unpin", "--dry-run", "--json")
    assert json.loads(r.stdout)["hosts"]["h1"] == {"was_pinned_to": first, "dry_run": True, "would": [
        {"action": "clear pin", "target": first[:10], "why": "cron follows the branch again"}]}
    r = cli(deployed, "unpin", "--dry-run")
    assert r.stdout == f"h1: would clear pin {first[:10]}: cron follows the branch again\n"
    assert deployed.state["pin"] == first
    # health --fix --dry-run on a dead service: names what --fix would do
    pid = h.path("~/.fabops/app/services/bot.pid").read_text()
    os.kill(int(pid.split()[0]), 9)
    log = h.path("~/.fabops/app/health.log")
    before = log.read_text() if log.exists() else ""
    state = h.path("~/.fabops/app/state.json").read_text()
    r = cli(deployed, "health", "--fix", "--dry-run", "--json")
    report = json.loads(r.stdout)["hosts"]["h1"]
    assert r.returncode == 2 and report["status"] == "would_restart" and "--fix would restart bot" in report["message"]
    assert [(w["action"], w["target"]) for w in report["would"]] == [
        ("record", "state.json"), ("restart", "bot"), ("log", "health log")]
    assert h.path("~/.fabops/app/state.json").read_text() == state
    assert (log.read_text() if log.exists() else "") == before
    assert deployed.version() is None  # still down: nothing was restarted
    assert cli(deployed, "health", "--fix").returncode == 1  # the real one recovers it


def test_backup_env_rotation_modes_download_and_no_secret(deployed, tmp_path):
    names = []
    for i in range(4):
        r = cli(deployed, "backup-env", "--keep", "3", "--json")
        assert r.returncode == 0, r.stderr
        names.append(json.loads(r.stdout)["hosts"]["h1"]["name"])
        no_secret(r.stdout, r.stderr)
    d = deployed.host.path("~/backup/env")
    assert sorted(p.name for p in d.iterdir()) == sorted(names[-3:])
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in d.iterdir())
    r = cli(deployed, "backup-env", "--download", str(tmp_path / "dl"))
    assert r.returncode == 0, r.stderr
    no_secret(r.stdout, r.stderr)
    local = next((tmp_path / "dl" / "h1").iterdir())
    assert oct(local.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "dl" / "h1").stat().st_mode & 0o777) == "0o700"
    assert SECRET in local.read_text()
    r = cli(deployed, "backup-env", "--list")
    assert r.stdout.count("sha256") == 4  # the download run kept the default 20
    no_secret(r.stdout)


def test_restore_env_round_trip_shows_key_names_only(deployed):
    r = cli(deployed, "backup-env", "--json")
    name = json.loads(r.stdout)["hosts"]["h1"]["name"]
    deployed.host.ssh("cd ~/app && sed -i 's/^DISCORD_TOKEN=.*/DISCORD_TOKEN=rotated-value/' .env && echo NEW_KEY=zzz >> .env")
    r = cli(deployed, "restore-env", "--backup", name, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "removed: NEW_KEY" in r.stdout and "changed: DISCORD_TOKEN" in r.stdout
    assert "rotated-value" not in r.stdout and "zzz" not in r.stdout
    assert f"[h1] would restore {name}: keys added: -; removed: NEW_KEY; changed: DISCORD_TOKEN\n" in r.stdout
    assert "[h1] would restart bot: then poll it until ready" in r.stdout
    r = cli(deployed, "restore-env", "--backup", name, "--dry-run", "--json")
    assert [(w["action"], w["target"]) for w in json.loads(r.stdout)["hosts"]["h1"]["would"]] == [
        ("save", ".env"), ("restore", name), ("restart", "bot")]
    assert "NEW_KEY" in deployed.host.path("~/app/.env").read_text()  # the dry runs restored nothing
    r = cli(deployed, "restore-env", "--backup", name)
    assert r.returncode == 64  # no TTY, no --yes
    r = cli(deployed, "restore-env", "--backup", name, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    no_secret(r.stdout, r.stderr)
    assert SECRET in deployed.host.path("~/app/.env").read_text()
    assert "NEW_KEY" not in deployed.host.path("~/app/.env").read_text()
    assert deployed.version() == "1"  # restarted and healthy
    # the replaced .env was backed up first
    listing = cli(deployed, "backup-env", "--list").stdout
    assert listing.count("sha256") == 2
    r = cli(deployed, "restore-env", "--backup", "../../etc/passwd", "--yes")
    assert r.returncode == 64


def test_clean_only_old_matching_files_and_never_outside(deployed, tmp_path):
    h = deployed.host
    inv = yaml.safe_load(deployed.inventory.read_text())
    inv["hosts"]["h1"]["cleanup"] = [{"path": "~/rec", "glob": "*.pcm", "older_than": "1d"}]
    deployed.inventory.write_text(yaml.safe_dump(inv))
    h.ssh(
        "mkdir -p ~/rec ~/outside && cd ~/rec && "
        "head -c 1000 /dev/zero > old.pcm && head -c 500 /dev/zero > old2.pcm && touch -d '3 days ago' old.pcm old2.pcm && "
        "head -c 10 /dev/zero > new.pcm && head -c 10 /dev/zero > old.txt && touch -d '3 days ago' old.txt && "
        "head -c 10 /dev/zero > ~/outside/victim.pcm && touch -d '3 days ago' ~/outside/victim.pcm && "
        "ln -s ~/outside/victim.pcm link.pcm && touch -h -d '3 days ago' link.pcm && "
        "mkdir -p dir.pcm && touch -d '3 days ago' dir.pcm"
    )
    r = cli(deployed, "clean", "--dry-run", "--json")
    assert json.loads(r.stdout)["hosts"]["h1"] == {
        "dry_run": True, "rules": [{"path": "~/rec", "glob": "*.pcm", "files": 2, "bytes": 1500, "dry_run": True}],
        "would": [{"action": "delete", "target": "~/rec/*.pcm", "why": "2 files, 1.5 KiB, older than 1d"}]}
    r = cli(deployed, "clean", "--dry-run")
    assert r.stdout == "[h1] would delete ~/rec/*.pcm: 2 files, 1.5 KiB, older than 1d\n", r.stdout
    assert h.path("~/rec/old.pcm").exists()
    r = cli(deployed, "clean")
    assert r.returncode == 0 and "deleted 2 files" in r.stdout
    left = sorted(p.name for p in h.path("~/rec").iterdir())
    assert left == ["dir.pcm", "link.pcm", "new.pcm", "old.txt"]
    assert h.path("~/outside/victim.pcm").exists()
    # a rule whose path is itself a symlink is never descended
    h.ssh("ln -s ~/outside ~/reclink")
    inv["hosts"]["h1"]["cleanup"] = [{"path": "~/reclink", "glob": "*.pcm", "older_than": "1d"}]
    deployed.inventory.write_text(yaml.safe_dump(inv))
    assert cli(deployed, "clean").returncode == 0
    assert h.path("~/outside/victim.pcm").exists()
    # a traversal glob never gets past validation
    inv["hosts"]["h1"]["cleanup"] = [{"path": "~/rec", "glob": "../*", "older_than": "1d"}]
    deployed.inventory.write_text(yaml.safe_dump(inv))
    r = cli(deployed, "clean")
    assert r.returncode == 78 and "cleanup[0].glob" in r.stderr


STUB_DNF = """#!/bin/sh
# A stand-in for dnf with its exit-code semantics: check-update exits 100 when
# updates exist, 0 when none; upgrade applies them.
list=$HOME/stub-updates
for a in "$@"; do
  case $a in
    check-update) if [ -s "$list" ]; then echo; cat "$list"; exit 100; fi; exit 0;;
    upgrade) : > "$list"; echo upgraded; exit 0;;
  esac
done
echo "stub dnf: unsupported $*" >&2; exit 1
"""


def test_system_update_check_with_a_stub_dnf(deployed):
    h = deployed.host
    stub = h.path("~/stubbin")
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "dnf").write_text(STUB_DNF)
    (stub / "dnf").chmod(0o755)
    h.path("~/stub-updates").write_text("openssl.x86_64   3.0.8-1.amzn2023   amazonlinux\nkernel.x86_64   6.1.1-1   amazonlinux\n")
    inv = yaml.safe_load(deployed.inventory.read_text())
    inv["hosts"]["h1"]["env"] = {"PATH": "/root/stubbin:/usr/bin:/bin"}
    deployed.inventory.write_text(yaml.safe_dump(inv))
    # SSH commands take the env from the host's env.sh, as setup (or the
    # next deploy) writes it
    from fabops.shell import env_file_text

    h.path("~/.fabops/app/env.sh").write_text(env_file_text(inv["hosts"]["h1"]["env"]))
    r = cli(deployed, "system-update", "--check", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    data = json.loads(r.stdout)["hosts"]["h1"]
    assert data["manager"] == "dnf" and data["updates"] == ["openssl.x86_64 3.0.8-1.amzn2023", "kernel.x86_64 6.1.1-1"]
    r = cli(deployed, "system-update", "--yes", "--json")  # applies through `sudo -n /abs/path/dnf`
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["hosts"]["h1"]["applied"] is True
    r = cli(deployed, "system-update", "--check")
    assert r.returncode == 0 and "0 updates available" in r.stdout


def test_secret_marker_never_leaks_from_any_task(deployed):
    """One sweep over every task that can see the host, with the marker in .env."""
    h = deployed.host
    h.ssh(f"echo 'PYTHON_API_URL=http://127.0.0.1:1/{SECRET}' >> ~/app/.env; echo 'ERROR {SECRET[:3]}' >> ~/.fabops/app/services/bot.log")
    deployed.origin.good("2")
    # a restic repository whose URL holds a marker of its own: never in backup's output (nor in restic's
    # argv: test_backup_unit); `hosts --json` shows the inventory as written, so only backup is checked
    home = h.ssh("umask 077 && echo pw > ~/restic-pw && echo ~").stdout.strip()
    data = yaml.safe_load(deployed.inventory.read_text())
    data["hosts"]["h1"]["backup"] = {"repository": {"url": f"local:{home}/{REPO_SECRET}-repo",
                                                    "password_file": "~/restic-pw"}}
    deployed.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    name = json.loads(cli(deployed, "backup-env", "--json").stdout)["hosts"]["h1"]["name"]
    v1 = deployed.origin.head
    runs = [
        ("deploy",), ("deploy", "--dry-run"), ("status",), ("history",), ("monitor",), ("monitor", "--json"),
        ("rollback", "--to", v1), ("unpin",), ("hosts", "--json"), ("system-update", "--check"), ("deploy", "--json"),
        ("logs",), ("logs", "--errors"), ("logs", "--source", "update"), ("logs", "--source", "health"),
        ("health",), ("health", "--json"), ("backup-env", "--list"), ("restore-env", "--backup", name, "--dry-run"),
        ("cron",), ("setup", "--check"), ("reset", "--dry-run"), ("clean", "--dry-run"), ("ping",), ("restart",),
    ]
    summary = deployed.base / "summary.md"
    env = {"FABOPS_DISCORD_WEBHOOK": f"http://127.0.0.1:1/{SECRET}", "FABOPS_SLACK_WEBHOOK": f"http://127.0.0.1:1/{SECRET}",
           "SOME_TOKEN": SECRET, "GITHUB_STEP_SUMMARY": str(summary)}
    # every task's JSON envelope, the dry runs, and runs that abort, retry
    # or roll back inside the watch window
    runs += [
        ("status", "--json"), ("history", "--json"), ("logs", "--json"), ("logs", "--errors", "--json"),
        ("cron", "--json"), ("ping", "--json"), ("restart", "--json"), ("restart", "--dry-run"),
        ("rollback", "--dry-run", "--json"), ("unpin", "--dry-run", "--json"), ("health", "--fix", "--dry-run"),
        ("health", "--fix", "--json"), ("backup-env", "--list", "--json"), ("clean", "--dry-run", "--json"),
        ("system-update", "--check", "--json"), ("setup", "--check", "--json"), ("reset", "--dry-run", "--json"),
        ("restore-env", "--backup", name, "--dry-run", "--json"), ("deploy", "--no-watch", "--json"),
        # backup copies the .env into its snapshot: never into its output
        ("backup",), ("backup", "--json"), ("backup", "--list"), ("backup", "--verify", "--json"),
        ("backup", "--dry-run", "--json"), ("backup", "--list", "--json"), ("backup", "--verify"),
    ]
    for args in runs:
        r = cli(deployed, *args, env=env)
        assert SECRET not in r.stdout + r.stderr, args
        assert args[0] != "backup" or REPO_SECRET not in r.stdout + r.stderr, args
    assert REPO_SECRET in h.ssh("ls ~").stdout  # the repository was made: restic had the URL
    # an abort: the next commit needs a key .env lacks (named, never valued)
    deployed.origin.push("needs a key", {".env.example": "DISCORD_TOKEN=\nPYTHON_API_URL=\nANOTHER_KEY=\n"})
    for args in (("deploy", "--dry-run", "--json"), ("deploy", "--json"), ("deploy",)):
        r = cli(deployed, *args, env=env)
        assert r.returncode == 2 and "ANOTHER_KEY" in r.stdout + r.stderr, (args, r.stdout, r.stderr)
        assert SECRET not in r.stdout + r.stderr, args
    # a commit that dies after its gate: rolled back inside the watch window,
    # remembered as bad, then skipped by cron (its retry path)
    h.ssh("echo ANOTHER_KEY=x >> ~/app/.env")
    deployed.origin.crash("3")
    for args in (("deploy", "--json"), ("deploy",), ("history", "--json"), ("status", "--json"), ("monitor", "--json")):
        r = cli(deployed, *args, env=env)
        assert SECRET not in r.stdout + r.stderr, args
    r = h.ssh("~/.fabops/app/venv/bin/fabops local-update --json -i ~/.fabops/app/host.yml", check=False)
    assert SECRET not in r.stdout + r.stderr
    assert summary.exists() and SECRET not in summary.read_text()
    r = h.ssh("~/.fabops/app/venv/bin/fabops local-update --verbose -i ~/.fabops/app/host.yml", check=False)
    assert SECRET not in r.stdout + r.stderr
    for path in ("~/.fabops/app/history.jsonl", "/var/log/bot-update.log", "~/.fabops/app/health.log",
                 "~/.fabops/app/state.json", "~/.fabops/app/host.yml", "~/.fabops/app/metrics.jsonl",
                 "~/.fabops/app/cron.log", "~/.fabops/app/update.log"):
        p = h.path(path)
        if p.exists():
            assert SECRET not in p.read_text(), path
    for run in h.path("~/.fabops/app/runs").iterdir():
        assert SECRET not in run.read_text(), run
