"""Builders and parsers of the maintenance tasks (pure)."""
import pytest

from fabops.errors import CommandFailed
from fabops.maintenance import check_updates_cmd, clean_cmd, parse_check, update_cmd

M = "@@fabops:"


def test_clean_deletes_only_old_matching_files_in_a_dir_with_a_space(tmp_path):
    """The clean command run by a real sh and a real find: old *.pcm in the
    rule's directory go (or are only counted with dry_run); new ones, other
    names, links and subdirectories stay."""
    import os
    import subprocess
    import time

    rec = tmp_path / "rec dir"
    (rec / "sub").mkdir(parents=True)
    old = time.time() - 3 * 86400
    for name, size in (("old.pcm", 1000), ("old2.pcm", 500), ("new.pcm", 10), ("old.txt", 10), ("sub/deep.pcm", 10)):
        (rec / name).write_bytes(b"x" * size)
        if name != "new.pcm":
            os.utime(rec / name, (old, old))
    (tmp_path / "victim.pcm").write_bytes(b"v")
    os.utime(tmp_path / "victim.pcm", (old, old))
    (rec / "link.pcm").symlink_to(tmp_path / "victim.pcm")

    def run(dry_run):
        cmd = clean_cmd("~/rec dir", "*.pcm", 86400, dry_run=dry_run)
        return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, env={"HOME": str(tmp_path),
                              "PATH": "/usr/bin:/bin"}, check=True).stdout.split()

    assert run(dry_run=True) == ["2", "1500"] and (rec / "old.pcm").exists()
    assert run(dry_run=False) == ["2", "1500"]
    assert sorted(p.name for p in rec.iterdir()) == ["link.pcm", "new.pcm", "old.txt", "sub"]
    assert (tmp_path / "victim.pcm").exists() and (rec / "sub" / "deep.pcm").exists()


def test_dnf_check_update_exit_codes():
    body = "\nopenssl.x86_64  3.0.8-1.amzn2023  amazonlinux\nLast metadata expiration check: 0:01:00 ago\n"
    assert parse_check("dnf", body + f"\n{M}rc 100\n") == ["openssl.x86_64 3.0.8-1.amzn2023"]
    assert parse_check("dnf", f"\n{M}rc 0\n") == []
    with pytest.raises(CommandFailed, match="exit 1"):
        parse_check("dnf", f"Error: Failed to download metadata\n{M}rc 1\n")



def test_dnf_check_update_through_the_shell(tmp_path):
    """dnf's "updates available" is exit 100: the command reports the code
    for parse_check instead of failing on it."""
    from tests.harness.stubs import run_with_stubs

    listing = "echo; echo 'openssl.x86_64  3.0.8-1.amzn2023  amazonlinux'; exit 100"
    r, calls = run_with_stubs(check_updates_cmd("dnf"), tmp_path, {"dnf": listing})
    assert calls == [["dnf", "-q", "check-update"]]
    assert parse_check("dnf", r.stdout) == ["openssl.x86_64 3.0.8-1.amzn2023"]


def test_apt_upgradable():
    out = "bash/stable 5.2.15-2+b9 amd64 [upgradable from: 5.2.15-2+b8]\n" + f"{M}rc 0\n"
    assert parse_check("apt-get", out) == ["bash 5.2.15-2+b9"]


def test_update_uses_sudo_n_with_an_absolute_path():
    assert update_cmd("dnf", "/usr/bin/dnf").startswith("sudo -n /usr/bin/dnf -y -q upgrade")
    assert update_cmd("apt-get", "/usr/bin/apt-get").startswith("sudo -n /usr/bin/apt-get -y -q upgrade")


def test_reset_dry_run_json_prints_the_envelope_only(sandbox):
    """trial #10: `reset --dry-run --json` also wrote the human would lines
    to stderr; --json is the envelope and nothing else."""
    import json

    from tests.conftest import run_cli

    r = run_cli("reset", "-i", str(sandbox.inventory), "--dry-run", "--json", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    assert [w["action"] for w in json.loads(r.stdout)["hosts"]["local"]["would"]][:1] == ["save"]
    r = run_cli("reset", "-i", str(sandbox.inventory), "--dry-run")
    assert "[local] would save .env and local changes" in r.stdout  # the human form keeps its lines


def test_restore_env_of_a_backup_equal_to_the_env_changes_nothing(sandbox):
    """trial #20: a dry run of a backup that matches the current .env said
    `keys added: -; removed: -; changed: -` twice and planned a restart.
    Now it says once that nothing would change, and the real run restores
    and restarts nothing; a backup that differs names its keys once."""
    import json

    from tests.conftest import run_cli

    inv = str(sandbox.inventory)
    name = json.loads(run_cli("backup-env", "-i", inv, "--json").stdout)["hosts"]["local"]["name"]
    r = run_cli("restore-env", "-i", inv, "-b", name, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[local] would change nothing: the backup matches the current .env\n", r.stdout
    r = run_cli("restore-env", "-i", inv, "-b", name, "--dry-run", "--json")
    assert json.loads(r.stdout)["hosts"]["local"]["would"] == []
    r = run_cli("restore-env", "-i", inv, "-b", name, "--yes")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[local] nothing to restore: the backup matches the current .env\n", r.stdout
    assert not list(sandbox.home.glob("services/*.pid")), "a service was (re)started"

    env = sandbox.app / ".env"
    env.write_text(env.read_text() + "NEW_KEY=zzz\n")
    r = run_cli("restore-env", "-i", inv, "-b", name, "--dry-run")
    assert r.stdout.count("keys added") == 1 and "removed: NEW_KEY" in r.stdout, r.stdout
    assert "[local] would restart" in r.stdout and "zzz" not in r.stdout


def test_restore_env_says_the_keys_before_the_verdict(sandbox):
    """#24: a real restore-env printed its services' `✓ … ready` and only
    then the key diff; the keys restored come first, then the restarts'
    verdict."""
    import json

    from tests.conftest import run_cli

    sandbox.result()  # deployed: its bot runs, and restarts
    inv = str(sandbox.inventory)
    name = json.loads(run_cli("backup-env", "-i", inv, "--json").stdout)["hosts"]["local"]["name"]
    env = sandbox.app / ".env"
    env.write_text(env.read_text() + "NEW_KEY=zzz\n")
    r = run_cli("restore-env", "-i", inv, "-b", name, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    said = r.stdout.splitlines()
    keys = [i for i, line in enumerate(said) if line.startswith(f"[local] restored {name}: keys added: -; "
                                                                 "removed: NEW_KEY; changed: -")]
    verdicts = [i for i, line in enumerate(said) if line.startswith(("[local] ✓", "[local] ✗"))]
    assert len(keys) == 1 and verdicts and keys[0] < min(verdicts), r.stdout
    assert "zzz" not in r.stdout and r.stdout.count("NEW_KEY") == 1, r.stdout
    # #29: recorded in the host's history as a run, key names only
    rec = sandbox.history()[-1]
    assert (rec["trigger"], rec["result"], rec["exit_code"], rec["backup"]) == ("restore-env", "restored", 0, name)
    assert rec["message"] == f"{name}: removed NEW_KEY" and rec["to"] == sandbox.state["deployed"], rec


@pytest.mark.parametrize("stop, code", [(KeyboardInterrupt(), 130), (OSError(28, "No space left on device"), 70)])
def test_an_env_run_stopped_by_ctrl_c_or_an_oserror_is_recorded(monkeypatch, stop, code):
    """#29: a Ctrl-C or an OSError (not a FabopsError) stopped env-set's or
    restore-env's apply() and left no history record. Before the .env was
    written it is `failed`; once it holds the change (wrote) and was not
    put back, `broken`; once the old one is back again, `failed`. Raised
    again either way, with the exit code the run ends with."""
    from types import SimpleNamespace

    from fabops.maintenance import common
    from fabops.maintenance.envrun import EnvRun

    records = []
    monkeypatch.setattr(common, "record_run", lambda c, host, rec, extra: records.append(rec))
    host = SimpleNamespace(name="web", env_file=".env")

    def apply(run, *marks):
        def go():
            for changed in marks:
                run.wrote(changed)
            raise stop
        return go

    for marks, result in (((), "failed"), ((True,), "broken"), ((True, False), "failed")):
        run = EnvRun(None, host, "env-set", "me", "abc123", lambda _m: None)
        with pytest.raises(type(stop)):
            run.recorded(apply(run, *marks))
        assert (records[-1]["result"], records[-1]["exit_code"], records[-1]["trigger"]) == (result, code, "env-set")
    run = EnvRun(None, host, "restore-env", "me", "abc123", lambda _m: None)
    with pytest.raises(type(stop)):
        run.restored(apply(run, True), "env-1")
    assert (records[-1]["result"], records[-1]["backup"]) == ("broken", "env-1")
    assert records[-1]["message"].startswith("stopped after .env was changed, not put back: ")
    assert len(records) == 4


# ------------------------------------------- restore-env and the required keys

REQUIRED = ("1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d", ["DISCORD_TOKEN", "PORT"])


def _restore_host():
    from fabops.inventory import App, Host, Service

    return Host(name="h", address="x", app=App(path="/srv/app"), services=(Service("bot", command="x"),))


def test_restoring_a_backup_that_lacks_a_required_key_is_refused_unless_forced():
    """A backup older than the checkout may lack a key its .env.example
    names: the restore would leave a host the next deploy refuses (as
    env-unset of it: required.required_gone). Refused, exit 2, naming the
    keys, the commit and the backup; --force plans a warning first."""
    from fabops.maintenance.env import restore_would

    host, name = _restore_host(), "20261128T101500-123456.env"
    diff = {"added": [], "removed": ["DISCORD_TOKEN", "OLD"], "changed": [], "same": False}
    with pytest.raises(CommandFailed) as err:
        restore_would(host, name, diff, REQUIRED)
    assert err.value.exit_code == 2 and str(err.value).endswith(
        f".env.example of 1a2b3c4d5e needs DISCORD_TOKEN: restoring {name} without it would make the next deploy "
        "refuse this host; --force restores it anyway"), str(err.value)
    would = restore_would(host, name, diff, REQUIRED, force=True)
    assert [w.action for w in would] == ["warn", "save", "restore", "restart"]
    assert would[0].why == (f".env.example of 1a2b3c4d5e needs DISCORD_TOKEN: {name} restored without it anyway "
                            "(--force); the next deploy refuses this host until it is set again")
    # two keys: named both, `them`
    with pytest.raises(CommandFailed, match="needs DISCORD_TOKEN, PORT: restoring .* without them would"):
        restore_would(host, name, {**diff, "removed": ["PORT", "DISCORD_TOKEN"]}, REQUIRED)
    # a key the current .env lacks too (not removed), another key, no checkout, the same file: no refusal
    assert restore_would(host, name, {**diff, "removed": ["OLD"]}, REQUIRED)[0].action == "save"
    assert restore_would(host, name, diff, (None, []))[0].action == "save"
    assert restore_would(host, name, {**diff, "same": True}, REQUIRED) == []


def test_the_key_diff_and_the_required_keys_come_from_one_output():
    """restore-env's key diff carries the checkout's commit and its
    .env.example (required.required_cmd) in the same round trip: the diff's
    lines come first, the sections after them."""
    from fabops.maintenance.env import parse_env_diff
    from fabops.maintenance.envset import required_keys

    out = (f"same no\nadded NEW\nremoved DISCORD_TOKEN\nchanged \n{M}head\n{REQUIRED[0]}\n{M}example\n"
           "|# needed\n|DISCORD_TOKEN=\n|export PORT=3000\n|added X=1\n|\n")
    assert parse_env_diff(out) == {"added": ["NEW"], "removed": ["DISCORD_TOKEN"], "changed": [], "same": False}
    assert required_keys(out) == REQUIRED
    assert required_keys("same yes\nadded \nremoved \nchanged \n" + f"{M}head\n{M}example\n|\n") == (None, [])


@pytest.mark.parametrize("width", [80, 200])
def test_a_forced_restore_of_a_backup_without_a_required_key_says_so_first(width, capsys, monkeypatch):
    from fabops.host.would import lines
    from fabops.inventory import App, Host, Service
    from fabops.maintenance.env import restore_would
    from fabops.tasks._base import print_text
    from tests.test_golden import check, render

    host = Host(name="find-to-do", address="x", app=App(path="/srv/app"),
                services=(Service("voice-meeting-discord-bot", unit=True, command="x"),))
    diff = {"added": [], "removed": ["DISCORD_TOKEN"], "changed": [], "same": False}
    would = restore_would(host, "20261128T101500-123456.env", diff, ("da7f7c64ce" + "0" * 30, ["DISCORD_TOKEN"]),
                          force=True)
    check("restore-env-forced-dry-run", width, render(capsys, monkeypatch, width,
                                                      lambda: [print_text(x) for x in lines(would, "[find-to-do] ")]))


def test_restore_env_of_a_backup_without_a_required_key_is_refused_unless_forced(sandbox):
    """The sample app's .env.example names DISCORD_TOKEN: a backup made
    before it was set would make the next deploy refuse the host. Refused
    with exit 2 (its dry run, --yes, and the question's plan alike), the
    .env and the backups unchanged, the bot not restarted; --force
    restores it and says so first."""
    import json

    from tests.conftest import run_cli

    sandbox.result()  # deployed: a checkout whose .env.example names DISCORD_TOKEN
    inv, env, pid = str(sandbox.inventory), sandbox.app / ".env", sandbox.pid()
    before = env.read_text()
    assert "DISCORD_TOKEN=" in before, before
    env.write_text("".join(ln for ln in before.splitlines(True) if not ln.startswith("DISCORD_TOKEN=")))
    name = json.loads(run_cli("backup-env", "-i", inv, "--json").stdout)["hosts"]["local"]["name"]
    env.write_text(before)
    backups = sorted(p.name for p in (sandbox.home.parent / "backup" / "env").iterdir())
    said = (f".env.example of {sandbox.state['deployed'][:10]} needs DISCORD_TOKEN: restoring {name} without it "
            "would make the next deploy refuse this host; --force restores it anyway")
    for extra in (["--dry-run"], ["--yes"], []):
        r = run_cli("restore-env", "-i", inv, "-b", name, *extra)
        assert r.returncode == 2 and said in r.stderr, (extra, r.stdout, r.stderr)
    assert env.read_text() == before and sandbox.pid() == pid, "nothing changed, nothing restarted"
    assert sorted(p.name for p in (sandbox.home.parent / "backup" / "env").iterdir()) == backups
    r = run_cli("restore-env", "-i", inv, "-b", name, "--force", "--dry-run", "--json")
    assert r.returncode == 0 and [w["action"] for w in json.loads(r.stdout)["hosts"]["local"]["would"]][:2] == [
        "warn", "save"], r.stdout + r.stderr
    r = run_cli("restore-env", "-i", inv, "-b", name, "--force", "--yes")
    assert r.returncode == 1, r.stdout + r.stderr  # done, with a warning that stays (the record's)
    said = r.stdout.splitlines()
    assert said[0].startswith("[local] warning: .env.example of") and "restored without it anyway" in said[0], said
    assert "DISCORD_TOKEN=" not in env.read_text()
    rec = sandbox.history()[-1]
    assert (rec["result"], rec["exit_code"]) == ("restored", 1) and "anyway (--force)" in rec["warnings"][0], rec
