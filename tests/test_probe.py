"""Fact parsers against recorded outputs (tests/fixtures/<function>/<case>.json)."""
import json
from pathlib import Path

import pytest

from fabops import probe

CASES = sorted((Path(__file__).parent / "fixtures" / "parse_probe").glob("*.json"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_parse_probe(case):
    data = json.loads(case.read_text())
    assert data["command"] == "PROBE_SCRIPT"
    assert probe.parse_probe(data["output"]).to_dict() == data["expected"]


def test_probe_script_runs_under_posix_sh():
    import subprocess

    out = subprocess.run(["sh", "-c", probe.PROBE_SCRIPT], capture_output=True, text=True, check=True).stdout
    found = probe.parse_probe(out)
    assert found.kernel.startswith("Linux") and found.uptime_seconds > 0


def test_probe_uses_one_round_trip(mocker):
    from invoke import MockContext, Result

    output = json.loads((CASES[0].parent / "linux.json").read_text())["output"]
    c = MockContext(run={probe.PROBE_SCRIPT: Result(output)})
    spy = mocker.spy(c, "run")
    found = probe.probe(c)
    assert found.user == "ec2-user"
    assert spy.call_count == 1
