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
