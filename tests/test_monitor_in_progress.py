"""monitor names the step a run under way (or killed) is in (issue #24):
the host records it in state.json's in_progress (host/pipeline.py,
Pipeline._note_step) and `status` said it, monitor did not. Its panel says
it as status does, at 80 and 200 columns, and its --json has
`in_progress_run` and `in_progress_step` (docs/monitor.md). A real killed
run: tests/test_step_record.py."""
import json

import pytest
import yaml

from tests import test_golden as golden
from tests.conftest import ROOT
from tests.test_golden import NOW, WIDTHS, check, render

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still
STEP = "deps: npm ci --omit=dev"


def _facts(in_progress):
    from fabops import errors, inventory, monitor

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    assert '"in_progress": null' in case["output"]
    output = case["output"].replace('"in_progress": null', '"in_progress": ' + json.dumps(in_progress))
    facts = monitor.parse(output, host, case["now"])
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    return facts, host


def test_its_json_names_the_run_and_its_step():
    from tests.conftest import json_schema
    import jsonschema

    facts, _ = _facts({"run_id": "20261129T114640-4f2e1a", "trigger": "cron", "step": STEP, "started": NOW - 30})
    dep = facts["deploy"]
    assert (dep["in_progress"], dep["in_progress_run"], dep["in_progress_step"]) == (
        True, "20261129T114640-4f2e1a", STEP), dep
    jsonschema.validate(facts, json_schema("facts"))
    dep = _facts(None)[0]["deploy"]
    assert (dep["in_progress"], dep["in_progress_run"], dep["in_progress_step"]) == (False, None, None), dep


@pytest.mark.parametrize("width", WIDTHS)
def test_its_panel_names_the_step(width, frozen, capsys, monkeypatch):
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console

    facts, host = _facts({"run_id": "20261129T114640-4f2e1a", "trigger": "cron", "step": STEP,
                          "started": NOW - 30})
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    said = " ".join(text.replace("│", " ").split())
    assert f"run 20261129T114640-4f2e1a in progress or interrupted at step {STEP}" in said, text
    check("monitor-in-progress", width, text)
