"""#24: monitor's panel showed `-` for a stale service's CPU, MEM and up
(the PID its stale pid file names may be another process by now:
observe._service_cells), but `monitor --json` still gave that process's
figures. Both come from one rule (monitor.own_figures): null in the JSON."""
import json
import re

from fabops import inventory, monitor
from tests.conftest import ROOT


def _parsed(state_line: str):
    import yaml

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    output = re.sub(r"(?m)^bot active 20393 \d+$", state_line, case["output"])
    assert state_line in output.splitlines()
    return monitor.parse(output, host, case["now"])["services"][0]


def test_a_stale_services_json_has_no_figures_of_the_pid_its_file_names():
    # the pid file's 20393 is still in the rss and /proc/<pid>/stat sections: another process's by now
    svc = _parsed("bot stale 20393 -")
    assert svc["state"] == "stale" and svc["pid"] == 20393, svc
    assert (svc["cpu"], svc["memory"], svc["uptime"]) == (None, None, None), svc


def test_a_running_services_json_keeps_its_figures():  # the control: the same sections, its own PID
    svc = _parsed("bot active 20393 1795890574")
    assert svc["active"] and svc["memory"] is not None and svc["uptime"] is not None, svc
