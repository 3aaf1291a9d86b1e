"""Another process on a systemd service's port (issue #24), on the booted
bookworm container (tests/test_systemd_tier.py's host: systemd, sudo and
ec2-user for real). The unit is stopped, `python3 -m http.server 3003`
takes its port: the deploy refuses up front naming the holder (its pid and
command, read from /proc on the host), nothing is marked bad, monitor reads
the same fact, and once the other process is gone the deploy goes through."""
import json
import time

import pytest

from tests import test_systemd_tier as tier
from tests.test_systemd_tier import UNIT, fab, first_deploy, on_host

# the tier's booted bookworm host, its origin and its find-to-do alias
base, box, origin, alias = tier.base, tier.box, tier.origin, tier.alias

pytestmark = pytest.mark.systemd


def _until(what, seconds=30.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if what():
            return True
        time.sleep(0.2)
    return what()


def test_a_deploy_onto_a_port_another_process_holds_is_refused_on_systemd(alias, origin):
    inv = alias
    first_deploy(inv)
    good = on_host("git -C ~/voice-meeting-bot rev-parse HEAD").stdout.strip()
    on_host(f"sudo -n systemctl stop {UNIT}")
    assert _until(lambda: on_host("curl -s -o /dev/null http://127.0.0.1:3003/", check=False).returncode != 0)
    # started detached from the ssh session (every fd closed, a session of its own), its pid printed
    pid = on_host("cd /tmp && python3 -c 'import subprocess as s; print(s.Popen([\"python3\", \"-m\", "
                  "\"http.server\", \"3003\", \"--bind\", \"127.0.0.1\"], stdin=s.DEVNULL, stdout=s.DEVNULL, "
                  "stderr=s.DEVNULL, start_new_session=True).pid)'").stdout.strip()
    try:
        assert _until(lambda: on_host("curl -s -o /dev/null http://127.0.0.1:3003/", check=False).returncode == 0)
        new = origin.good("2")
        r = fab(inv, "deploy", "--json")
        res = json.loads(r.stdout)["hosts"]["find-to-do"]
        assert (r.returncode, res["result"]) == (2, "aborted"), r.stdout + r.stderr
        assert f"port 3003 is held by another process (pid {pid}: python3 -m http.server 3003" in res["message"], res
        assert f"not {UNIT}" in res["message"], res
        state = json.loads(on_host("cat ~/.fabops/voice-meeting-bot/state.json").stdout)
        assert not state.get("bad") and state["deployed"] == good, state
        assert on_host("git -C ~/voice-meeting-bot rev-parse HEAD").stdout.strip() == good  # nothing switched
        r = fab(inv, "monitor", "--json")
        svc = json.loads(r.stdout)["hosts"]["find-to-do"]["services"][0]
        assert (svc["active"], svc["port_owner"]) == (False, "other"), svc
        assert svc["port_holder"].startswith(f"pid {pid}: python3 -m http.server 3003"), svc
        # reset's plan reads the same fact in its one round trip (the unit's
        # status and the owners' python3 beside the checkout): refused up front
        r = fab(inv, "reset", "--dry-run", "--json")
        res = json.loads(r.stdout)
        assert r.returncode == 2 == res["code"], r.stdout + r.stderr
        (stop,) = res["hosts"]["find-to-do"]["would"]
        assert stop["action"] == "stop" and f"(pid {pid}: python3 -m http.server 3003" in stop["why"], stop
    finally:
        on_host(f"kill {int(pid)}", check=False)
    assert _until(lambda: on_host("curl -s -o /dev/null http://127.0.0.1:3003/", check=False).returncode != 0)
    r = fab(inv, "deploy", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["hosts"]["find-to-do"]["to"] == new
    r = fab(inv, "monitor", "--json")
    svc = json.loads(r.stdout)["hosts"]["find-to-do"]["services"][0]
    assert (svc["active"], svc["port_owner"], svc["port_holder"]) == (True, "own", None), svc
