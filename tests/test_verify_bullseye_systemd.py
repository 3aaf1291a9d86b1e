"""Verified commits on the booted bullseye container (docs/security.md,
"Verified commits", "OpenPGP keys"): its git 2.30 cannot check SSH
signatures, so `setup` refuses SSH keys there (exit 78, naming the key,
no file written), and checks OpenPGP ones: with an OpenPGP key installed
(the keyring and gpgv wrapper root's), a commit signed by it ships, an
unsigned one and one signed by another key are held by cron
(skipped_unverified, the unit not restarted). gpgv is Debian's own (apt
depends on it), in the debootstrap minbase image. Bookworm's side is
tests/test_verify_systemd.py."""
import json

import pytest

from tests import test_journey as journey
from tests import test_systemd_tier as tier
from tests.test_systemd_tier import UNIT, fab, first_deploy, on_host
from tests.test_verify_sandbox import gnupg, push_gpg_signed  # noqa: F401 - the fixture, and gpg-signed commits
from tests.test_verify_systemd import CRON

pytestmark = pytest.mark.systemd

# the tier's find-to-do alias on each journey image; only bullseye's git is too old
alias, image = tier.alias, journey.image
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example"
DIR = "/etc/fabops/voice-meeting-bot"


@pytest.fixture(scope="module")
def box(image):
    return image[1]


@pytest.fixture(scope="module")
def origin(image):
    return image[2]


def _setup(inv, signers, *args):
    import yaml

    data = yaml.safe_load(inv.read_text())
    data["hosts"]["find-to-do"]["verify"] = {"signers": signers}
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    r = fab(inv, "setup", "--yes", "--offline", "--json", *args)
    items = json.loads(r.stdout)["hosts"]["find-to-do"]["items"]
    return r, [i for i in items if i["name"] == "verified commits"]


def _cron() -> dict:
    r = on_host(CRON, check=False)
    return json.loads(r.stdout)["hosts"]["find-to-do"] | {"code": r.returncode}


# bullseye's image only (the journey's image fixture takes the suite as its
# param): a bookworm boot that the test would skip costs CI half a minute
@pytest.mark.parametrize("image", ["bullseye"], indirect=True)
def test_bullseye_checks_openpgp_signatures_and_refuses_ssh_keys(alias, box, origin, gnupg, monkeypatch):
    monkeypatch.delenv("CI", raising=False)  # a person's deploys (test_verify_systemd says why)
    inv = alias
    assert on_host("git --version").stdout.startswith("git version 2.30")
    assert on_host("command -v gpgv", check=False).returncode == 0, "no gpgv in the bullseye image"
    first_deploy(inv)  # the origin's first commit is unsigned: deployed before the host asks for signatures
    alice, mallory = gnupg("alice"), gnupg("mallory")

    # an SSH key where git is 2.30: refused, named, exit 78, no file (the OpenPGP key beside it is not named)
    r, (item,) = _setup(inv, [KEY, alice], "--accept-signers")
    assert r.returncode == 78, r.stdout + r.stderr
    assert item["status"] == "refused" and "git 2.30 cannot check SSH signatures" in item["message"], item
    assert "1 SSH key (SHA256:" in item["message"] and "(alice@example)" in item["message"], item
    assert on_host(f"test -e {DIR}/allowed_signers", check=False).returncode != 0

    # OpenPGP keys only: installed, root's, the deploy user unable to change them
    r, items = _setup(inv, [alice], "--accept-signers")
    assert r.returncode in (0, 1) and [i["status"] for i in items] == ["changed"] * 3, r.stdout + r.stderr
    assert on_host(f"stat -c '%U:%G %a' {DIR}/allowed_signers.gpg {DIR}/gpgv-for-git").stdout.split("\n")[:2] == [
        "root:root 644", "root:root 755"]
    assert on_host(f"test -w {DIR}/allowed_signers.gpg || test -w {DIR}/gpgv-for-git", check=False).returncode != 0

    signed = push_gpg_signed(origin, "alice", "v2 signed by alice", "2")
    res = _cron()
    assert (res["code"], res["result"], res["to"]) == (0, "deployed", signed), res
    pid = on_host(f"systemctl show -p MainPID --value {UNIT}").stdout.strip()
    # what git 2.30 hands its gpg program, seen through a spy in front of the wrapper (which drops
    # --keyid-format and --verify, unknown to gpgv): gpgv's GOODSIG reached git, which said Good
    spy = (f"printf '#!/bin/sh\\necho \"$*\" > /tmp/gpg-args\\nexec {DIR}/gpgv-for-git \"$@\"\\n' > /tmp/gpg-spy && "
           f"chmod +x /tmp/gpg-spy && cd ~/voice-meeting-bot && /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C "
           f"git -c gpg.program=/tmp/gpg-spy verify-commit {signed} && cat /tmp/gpg-args")
    said = on_host(spy, check=False)
    assert said.returncode == 0 and "Good signature from \"alice <alice@example>\"" in said.stderr, said
    assert said.stdout.startswith("--keyid-format=long --status-fd=1 --verify /") and said.stdout.split()[-1] == "-", said

    unsigned = origin.push("v3 unsigned", {"VERSION": "3\n"})
    res = _cron()
    assert (res["code"], res["result"], res["to"]) == (1, "skipped_unverified", unsigned), res
    forged = push_gpg_signed(origin, "mallory", "v4 signed by mallory", "4")
    res = _cron()
    assert (res["code"], res["result"], res["to"]) == (1, "skipped_unverified", forged), res
    assert "signed by a key not in allowed_signers (" in res["message"], res
    assert on_host(f"systemctl show -p MainPID --value {UNIT}").stdout.strip() == pid  # nothing restarted
