"""Builders and parsers of the maintenance tasks (pure)."""
import pytest

from fabops.errors import CommandFailed
from fabops.maintenance import check_updates_cmd, clean_cmd, parse_check, update_cmd

M = "@@fabops:"


def test_clean_cmd_is_exact_and_safe():
    cmd = clean_cmd("~/rec dir", "*.pcm", 86400, dry_run=False)
    assert cmd == (
        "[ -d \"$HOME\"/'rec dir' ] && [ ! -L \"$HOME\"/'rec dir' ] || { echo 0 0; exit 0; }\n"
        "find \"$HOME\"/'rec dir' -mindepth 1 -maxdepth 1 -type f -name '*.pcm' -mmin +1440 -printf '%s\\n' -delete "
        "| awk '{n++; b+=$1} END {printf \"%d %d\\n\", n, b}'\n"
    )
    assert "-delete" not in clean_cmd("/t", "*.pcm", 60, dry_run=True)


def test_dnf_check_update_exit_codes():
    body = "\nopenssl.x86_64  3.0.8-1.amzn2023  amazonlinux\nLast metadata expiration check: 0:01:00 ago\n"
    assert parse_check("dnf", body + f"\n{M}rc 100\n") == ["openssl.x86_64 3.0.8-1.amzn2023"]
    assert parse_check("dnf", f"\n{M}rc 0\n") == []
    with pytest.raises(CommandFailed, match="exit 1"):
        parse_check("dnf", f"Error: Failed to download metadata\n{M}rc 1\n")
    assert check_updates_cmd("dnf") == f"dnf -q check-update; rc=$?; echo; echo {M}rc $rc"


def test_apt_upgradable():
    out = "bash/stable 5.2.15-2+b9 amd64 [upgradable from: 5.2.15-2+b8]\n" + f"{M}rc 0\n"
    assert parse_check("apt-get", out) == ["bash 5.2.15-2+b9"]


def test_update_uses_sudo_n_with_an_absolute_path():
    assert update_cmd("dnf", "/usr/bin/dnf").startswith("sudo -n /usr/bin/dnf -y -q upgrade")
    assert update_cmd("apt-get", "/usr/bin/apt-get").startswith("sudo -n /usr/bin/apt-get -y -q upgrade")
