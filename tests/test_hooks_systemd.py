"""Lifecycle hooks (#29; docs/pipeline.md, "Hooks") on the booted bookworm
container (tests/test_systemd_tier.py's host: systemd, sudo and the
non-root ec2-user for real), deployed from this machine over SSH: a hook
runs as the deploy user and cannot become root (no sudo beyond fabops'
drop-in, no root-only file: docs/security.md, "Hooks add no power"); a
failing before_restart aborts with the unit not restarted and the checkout
put back; a failing after_deploy rolls back and marks the commit bad;
on_failure runs once per failed run, on_rollback after the rollback."""
import json

import pytest
import yaml

from tests import test_systemd_tier as tier
from tests.test_systemd_tier import UNIT, fab, first_deploy, on_host

# the tier's booted bookworm host, its origin and its find-to-do alias
base, box, origin, alias = tier.base, tier.box, tier.origin, tier.alias

pytestmark = pytest.mark.systemd

BEFORE = """id -u > ~/hook-user
id -un >> ~/hook-user
if sudo -n true 2>/dev/null; then echo SUDO >> ~/hook-user; fi
if cat /etc/shadow >/dev/null 2>&1; then echo SHADOW >> ~/hook-user; fi
if [ -f NOMIGRATE ]; then echo 'migration 7 failed' >&2; exit 3; fi
echo migrated
"""


def _main_pid() -> str:
    return on_host(f"systemctl show -p MainPID --value {UNIT}").stdout.strip()


def _head() -> str:
    return on_host("git -C ~/voice-meeting-bot rev-parse HEAD").stdout.strip()


def _lines(path: str) -> list:
    return on_host(f"cat {path} 2>/dev/null || true").stdout.split("\n")[:-1]


def test_hooks_on_a_booted_host_run_as_the_deploy_user_and_stop_or_roll_back(alias, origin):
    inv = alias
    data = yaml.safe_load(inv.read_text())
    data["hosts"]["find-to-do"]["hooks"] = {
        "before_restart": BEFORE,
        "after_deploy": {"run": "if [ -f BADSMOKE ]; then echo 'smoke: 500'; exit 1; fi", "timeout": "20s"},
        "on_rollback": 'echo "$FABOPS_RESULT $FABOPS_TO" >> ~/rolled',
        "on_failure": 'echo "$FABOPS_RESULT $FABOPS_RUN_ID" >> ~/failures',
    }
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    first_deploy(inv)
    uid, name = _lines("~/hook-user")[:2]
    assert name == "ec2-user" and uid != "0", (uid, name)  # the deploy user
    # ec2-user starts with cloud-init's NOPASSWD: ALL, as on EC2, so that
    # setup can run (its app could then be root too); from here on it has
    # only fabops' drop-in, as docs/security.md asks of a deploy user
    on_host("sudo -n rm -f /etc/sudoers.d/90-cloud-init-users")
    good, pid = _head(), _main_pid()
    # a failing before_restart: aborted, the unit not restarted, the checkout back
    origin.push("v2 whose migration fails", {"VERSION": "2\n", "NOMIGRATE": "x\n"})
    r = fab(inv, "deploy", "--json")
    res = json.loads(r.stdout)["hosts"]["find-to-do"]
    assert (r.returncode, res["result"]) == (2, "aborted"), r.stdout + r.stderr
    assert "the before_restart hook failed (exit 3: migration 7 failed)" in res["message"], res["message"]
    assert _main_pid() == pid and _head() == good
    # the hook had the deploy user's rights and no more: no sudo, no root-only file
    assert _lines("~/hook-user") == [uid, "ec2-user"]
    (failed,) = _lines("~/failures")
    assert failed == f"aborted {res['run_id']}", failed
    # a failing after_deploy: rolled back as a failed gate, the commit marked bad
    bad = origin.push("v3 fails its smoke test", {"VERSION": "3\n", "NOMIGRATE": None, "BADSMOKE": "x\n"})
    r = fab(inv, "deploy", "--json")
    res = json.loads(r.stdout)["hosts"]["find-to-do"]
    assert (r.returncode, res["result"]) == (2, "rolled_back"), r.stdout + r.stderr
    assert "the after_deploy hook failed: exit 1: smoke: 500" in res["message"], res["message"]
    state = json.loads(on_host("cat ~/.fabops/voice-meeting-bot/state.json").stdout)
    assert bad in state["bad"] and state["deployed"] == good and _head() == good, state
    assert _lines("~/rolled") == [f"rolled_back {bad}"]
    assert [line.split()[0] for line in _lines("~/failures")] == ["aborted", "rolled_back"]  # once per failed run
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    assert _lines("~/hook-user") == [uid, "ec2-user"]  # again: no sudo, no /etc/shadow
