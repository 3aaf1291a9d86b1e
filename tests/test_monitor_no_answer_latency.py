"""Trial #24: `monitor --json` gave `http_latency` 0.0069 beside
`http_status` null (no answer): a latency is the time to an answer."""
import json

import yaml

from fabops import inventory, monitor
from tests.conftest import ROOT


def _parse(http_line: str):
    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    output = case["output"].replace("@@fabops:http\n200 0.000638 HTTP 200\n", f"@@fabops:http\n{http_line}\n")
    assert http_line in output
    return monitor.parse(output, host, case["now"])["services"][0]


def test_no_answer_has_no_latency():
    svc = _parse("0 0.006900 connection refused")
    assert (svc["http_status"], svc["http_latency"]) == (None, None), svc
    svc = _parse("200 0.000638 HTTP 200")  # the control: an answer keeps its time
    assert (svc["http_status"], svc["http_latency"]) == (200, 0.000638), svc
