"""Verified commits need git 2.34 (docs/security.md, "Verified commits"):
on the booted bullseye container (git 2.30, no SSH signatures), `setup`
refuses `verify:` with exit 78 and a message naming the git version, and
writes no allowed-signers file, so the host never looks protected when
it cannot be. Bookworm's side is tests/test_verify_systemd.py."""
import json

import pytest

from tests import test_journey as journey
from tests import test_systemd_tier as tier
from tests.test_systemd_tier import fab, on_host

pytestmark = pytest.mark.systemd

# the tier's find-to-do alias on each journey image; only bullseye's git is too old
alias, image = tier.alias, journey.image
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example"


@pytest.fixture(scope="module")
def box(image):
    return image[1]


# bullseye's image only (the journey's image fixture takes the suite as its
# param): a bookworm boot that the test would skip costs CI half a minute
@pytest.mark.parametrize("image", ["bullseye"], indirect=True)
def test_setup_refuses_verify_where_git_cannot_check_ssh_signatures(alias, box):
    import yaml

    inv = alias
    assert on_host("git --version").stdout.startswith("git version 2.30")
    on_host("git clone --quiet /srv/origin.git ~/voice-meeting-bot && "
            "printf 'DISCORD_TOKEN=x\\nPORT=3003\\n' > ~/voice-meeting-bot/.env")
    data = yaml.safe_load(inv.read_text())
    data["hosts"]["find-to-do"]["verify"] = {"signers": [KEY]}
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    r = fab(inv, "setup", "--yes", "--offline", "--json")
    assert r.returncode == 78, r.stdout + r.stderr
    items = json.loads(r.stdout)["hosts"]["find-to-do"]["items"]
    (item,) = [i for i in items if i["name"] == "verified commits"]
    assert item["status"] == "refused" and "git 2.30 cannot check SSH signatures" in item["message"], item
    assert on_host("test -e /etc/fabops/voice-meeting-bot/allowed_signers", check=False).returncode != 0
