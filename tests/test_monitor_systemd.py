"""monitor's CPU from the cron sample on the booted find-to-do container
(systemd tier, #25): what the sample reads of a real unit (its invocation
ID, and its cgroup v2 usage or, on a cgroup v1 machine, its main PID's
counters) is what the monitor's script reads through systemctl, so a
one-shot monitor gets the unit's figure from the sample; a restart since
the sample gives no figure."""
import json

import pytest

from tests import test_journey as journey
from tests import test_systemd_tier as tier
from tests.test_systemd_tier import UNIT, fab, on_host

# the tier's find-to-do alias on each journey image: bookworm, and bullseye
# (Python 3.9 for the host side, systemd 247)
alias, image = tier.alias, journey.image


@pytest.fixture(scope="module")
def box(image):
    return image[1]


def _cron_update():
    """The crontab's local-update line, run now as cron would run it (no splay)."""
    line = next(x for x in on_host("crontab -l").stdout.splitlines() if "local-update" in x)
    command = line.split(None, 5)[5].replace("--splay 30", "--splay 0").replace("\\%", "%")
    on_host(command)


def test_a_one_shot_monitor_takes_the_units_cpu_from_the_cron_sample(alias):
    inv = alias
    tier.first_deploy(inv)
    _cron_update()
    sample = json.loads(on_host("tail -n 1 ~/.fabops/voice-meeting-bot/metrics.jsonl").stdout)
    unit = on_host(f"systemctl show -p ControlGroup,InvocationID,MainPID {UNIT}").stdout
    props = dict(line.split("=", 1) for line in unit.splitlines())
    counters = sample["svc"][UNIT]
    # what the sample read names what systemctl names: the invocation, and
    # the cgroup's usage (cgroup v2) or else the main PID's counters
    assert counters["inv"] == props["InvocationID"], (counters, props)
    cg = props["ControlGroup"]
    if on_host(f"test -r /sys/fs/cgroup{cg}/cpu.stat -o -r /sys/fs/cgroup/unified{cg}/cpu.stat", check=False).returncode == 0:
        assert counters["cg"] == props["ControlGroup"] and counters["usec"] > 0, (counters, props)
    else:
        assert counters["pid"] == int(props["MainPID"]) and "cg" not in counters, (counters, props)
    r = fab(inv, "monitor", "--json")
    facts = json.loads(r.stdout)["hosts"]["find-to-do"]
    assert facts["cpu_source"] == "sample" and facts["cpu_window"] > 0, facts
    svc = facts["services"][0]
    assert svc["active"] and svc["cpu"] is not None, svc
    # what the host's python3 reads (host/monitorfacts.py; bullseye's is 3.9), and its port's owner
    assert None not in (facts["disk"], facts["utc_offset"], facts["errors_last_hour"], facts["deploy"]["last_run"]), facts
    assert all(s["port_open"] and s["port_owner"] == "own" for s in facts["services"] if s["port"]), facts["services"]
    assert "(last " in fab(inv, "monitor").stdout

    on_host(f"sudo -n systemctl restart {UNIT}")
    facts = json.loads(fab(inv, "monitor", "--json").stdout)["hosts"]["find-to-do"]
    assert facts["cpu_source"] == "sample" and facts["services"][0]["cpu"] is None, facts["services"]
    _cron_update()  # the next sample knows the new invocation
    facts = json.loads(fab(inv, "monitor", "--json").stdout)["hosts"]["find-to-do"]
    assert facts["cpu_source"] == "sample" and facts["services"][0]["cpu"] is not None, facts["services"]
