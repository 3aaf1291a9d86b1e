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
