"""New-user trial (#24): monitor's panel wrapped a long line to its left
edge (`│ remembered bad targets: 0ec1626963, …, d6923dd448,` went on as
`│ e0276b0fc6`), where `status` continues the same line two columns in
(render.print_hanging). Every wrapped line of the panel now continues as
status' does (render.Unbroken with `hang`), at 80 and 200 columns; a
finding still continues under its own text, past its bullet."""
import json
import re

import pytest
import yaml

from tests import test_golden as golden
from tests.conftest import ROOT
from tests.test_golden import NOW, WIDTHS, check, render

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still
BAD = ["0ec1626963a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5", "3b5d7f9a1c3e5a7c9e1b3d5f7a9c1e3b5d7f9a1c",
       "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f", "8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d",
       "a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e", "d6923dd448f1e2d3c4b5a69788796a5b4c3d2e1f",
       "e0276b0fc6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1"]


def _facts(bad=BAD, origin=None):
    """A process host's facts (parse_monitor/process_recorded.json) with
    `bad` on state's known-bad list and `origin` as the branch's head the
    checkout last fetched, judged."""
    from fabops import errors, inventory, monitor

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    known = {sha: {"at": NOW - 600 - i, "reason": "bot died after starting", "notified": True, "run_id": "r"}
             for i, sha in enumerate(bad)}
    assert '"bad": {}' in case["output"] and "\n@@fabops:last\n" in case["output"]
    output = case["output"].replace('"bad": {}', '"bad": ' + json.dumps(known))
    if origin:
        output = output.replace("\n@@fabops:last\n", f"\n@@fabops:origin\n{origin}\n\n@@fabops:last\n")
    facts = monitor.parse(output, host, case["now"])
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    return facts, host


def _continued(text: str, start: str) -> list:
    """The lines after the one that starts with `start` (a panel's `│ `
    taken off), up to the next that is no continuation of it."""
    lines = [ln[2:] if ln.startswith("│ ") else ln for ln in text.splitlines()]
    at = next(i for i, ln in enumerate(lines) if ln.startswith(start))
    return lines[at + 1:at + 2]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_panel_continues_a_long_line_two_columns_in(width, frozen, capsys, monkeypatch):
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console, status_panel

    facts, host = _facts()
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    said = " ".join(text.replace("│", " ").split())
    assert "remembered bad targets: " + ", ".join(sha[:10] for sha in sorted(BAD)) in said, text
    data = {"services": [], "deployed": facts["deploy"]["deployed"], "deployed_at": NOW - 60,
            "head": facts["deploy"]["deployed"], "last_check": NOW - 60, "last_result": "deployed",
            "bad": sorted(BAD)}
    status = render(capsys, monkeypatch, width, status_panel, "sandbox", data)
    if width == 80:  # too long for a line at 80: both continue it two columns in, as status always did
        assert re.match(r"  [0-9a-f]{10}", _continued(text, "remembered bad targets:")[0]), text
        assert re.match(r"  [0-9a-f]{10}", _continued(status, "remembered bad targets:")[0]), status
    check("monitor-bad-targets", width, text + status)


def test_a_finding_still_continues_under_its_text(frozen, capsys, monkeypatch):
    """Past its bullet, not two columns in: the findings keep their hang."""
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console

    facts, host = _facts()
    facts["findings"] = [{"level": "WARNING", "message": "word " * 30}]
    text = render(capsys, monkeypatch, 80, lambda: console().print(render_host(facts, host)))
    bullet = [ln for ln in text.splitlines() if "• word" in ln]
    assert bullet and text.splitlines()[text.splitlines().index(bullet[0]) + 1].startswith("│   word"), text
