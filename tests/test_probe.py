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
    # the version python3 -V gives is the one the interpreter itself reports
    ran = subprocess.run(["sh", "-c", "python3 -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert found.python == ran


def test_the_version_is_read_from_python3_v_and_bare():
    assert probe._version("Python 3.9.16") == "3.9.16" and probe._version("3.9.16") == "3.9.16"
    assert probe._version("") is None and probe._version(None) is None


def test_probe_uses_one_round_trip(mocker):
    from invoke import MockContext, Result

    output = json.loads((CASES[0].parent / "linux.json").read_text())["output"]
    c = MockContext(run={probe.PROBE_SCRIPT: Result(output)})
    spy = mocker.spy(c, "run")
    found = probe.probe(c)
    assert found.user == "ec2-user"
    assert spy.call_count == 1
