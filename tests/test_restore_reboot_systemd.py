"""A restore cut off while putting items back keeps its unit down on the
booted bookworm container (issue #26, docs/backups.md "The hold";
tests/test_systemd_tier.py's host: systemd, journald, sudo and ec2-user for
real). A reboot starts enabled units with `systemctl start`; the container
runs on a volatile overlay, so a real reboot would lose the mark, and the
test starts the unit as boot does instead. The mark and the hold are
written as a restore killed in its put back leaves them (the host's own
fabops: host/restore.write_hold, host/state.merge_state_file), the unit
stopped as that restore had stopped it: `systemctl start` is skipped by
the unit's ExecCondition= (inactive, not failed, never retried: NRestarts
stays 0 and the journal says why once), and after the take-over the unit
runs. The
tier's module fixtures stop the container even when the test fails."""
import json
import time

import pytest

from tests import test_systemd_tier as tier
from tests.test_port_held_systemd import _until
from tests.test_systemd_tier import UNIT, fab, first_deploy, on_host

# the tier's booted bookworm host, its origin and its find-to-do alias
base, box, origin, alias = tier.base, tier.box, tier.origin, tier.alias

pytestmark = pytest.mark.systemd
HOME = "~/.fabops/voice-meeting-bot"

# what a restore killed in its put back leaves (host/restore.Underway.hold), written by the host's own fabops
CUT_OFF = """
import sys, time
from fabops.host.plan import restore_cut_off_text
from fabops.host.restore import write_hold
from fabops.host.state import merge_state_file
from fabops.paths import HostPaths
paths, run = HostPaths.for_home(sys.argv[1]), sys.argv[2]
merge_state_file(paths.state, {"in_progress": {"run_id": run, "trigger": "restore", "step": "restore: put back",
                                               "since": time.time(), "pin": False}})
write_hold(paths, restore_cut_off_text(run, "find-to-do"))
"""


def _active() -> bool:
    return on_host(f"systemctl is-active {UNIT}", check=False).stdout.strip() == "active"


def test_a_unit_does_not_start_on_half_restored_data_until_the_restore_is_taken_over(alias, box):
    inv = alias
    first_deploy(inv)
    r = fab(inv, "backup", "--json")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    run = json.loads(r.stdout)["hosts"]["find-to-do"]["run_id"]
    on_host(f"sudo -n systemctl stop {UNIT}")
    py = f"{HOME}/venv/bin/python"
    on_host(f"{py} -I -c '{CUT_OFF}' {HOME} {run}")
    take = f"`fabops backup -H find-to-do --restore {run} --yes` takes it over"
    assert take in on_host(f"cat {HOME}/restore-cut-off").stdout

    since = on_host("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    on_host(f"sudo -n systemctl start {UNIT}", check=False)  # what boot does for an enabled unit
    time.sleep(10)  # five RestartSec=2 periods: a held start is skipped (ExecCondition=), never retried
    show = dict(ln.split("=", 1) for ln in on_host(f"systemctl show -p NRestarts -p ActiveState -p Result {UNIT}")
                .stdout.split())
    assert show == {"NRestarts": "0", "ActiveState": "inactive", "Result": "exec-condition"}, show
    assert not _active()
    journal = box.as_root(f"journalctl -u {UNIT} --since '{since}' --no-pager -o cat").stdout
    said = [ln for ln in journal.splitlines() if ln.startswith("fabops: not starting: ")]
    assert len(said) == 1 and take in said[0] and "half-restored data" in said[0], journal
    on_host(f"sudo -n systemctl restart {UNIT}", check=False)  # a person's restart: skipped the same way
    assert not _active()

    r = fab(inv, "backup", "--json")  # a scheduled backup refuses meanwhile (exit 5)
    assert r.returncode == 5 and take in json.loads(r.stdout)["hosts"]["find-to-do"]["error"], r.stdout

    r = fab(inv, "backup", "--restore", run, "--yes", "--json")
    done = json.loads(r.stdout)["hosts"]["find-to-do"]
    assert r.returncode == 0 and done["restore"]["ok"], r.stdout + r.stderr
    assert on_host(f"test -e {HOME}/restore-cut-off", check=False).returncode != 0
    assert _until(_active)
    state = json.loads(on_host(f"cat {HOME}/state.json").stdout)
    assert state.get("in_progress") is None, state
