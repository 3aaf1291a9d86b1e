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


CUT = "20261201T030000-a1b2c3"
CUT_OFF = {"run_id": CUT, "trigger": "restore", "from": "A", "to": "A", "pin": False, "step": "restore: put back",
           "started": NOW - 300}


def test_a_restore_cut_off_putting_items_back_is_critical_in_the_planners_words():
    """#26 follow-up: the panel showed the interrupted line, but the
    findings and the exit code did not say it: services down on purpose,
    data half put back. CRITICAL (2, as a service down), in
    host/plan.restore_cut_off_text's words, and --json's
    deploy.restore_cut_off names the run; at a step a restart resumes
    (restore: save) none of it."""
    from tests.conftest import json_schema
    import jsonschema
    from fabops.host.plan import restore_cut_off_text

    facts, host = _facts(CUT_OFF)
    assert facts["deploy"]["restore_cut_off"] == CUT and facts["code"] == 2, facts["findings"]
    said = [f for f in facts["findings"] if restore_cut_off_text(CUT, host.name) in f["message"]]
    assert [f["level"] for f in said] == ["FAILED"], facts["findings"]
    assert said[0]["message"].startswith("if no restore is running now: a restore of") and "-H sandbox" in said[0][
        "message"]
    jsonschema.validate(facts, json_schema("facts"))
    saved, _ = _facts({**CUT_OFF, "step": "restore: save"})
    assert saved["deploy"]["restore_cut_off"] is None and saved["code"] == 0, saved["findings"]


def test_its_broken_update_and_spent_budget_name_no_way_that_refuses():
    """The planner's abort records broken and cron's restarts may have
    spent the budget: the broken finding points at the cut-off one's way
    out, and no `restart` (which refuses) is advised."""
    from fabops import monitor

    facts, host = _facts(CUT_OFF)
    facts["deploy"].update(last_result="broken", restart_backoff_until=NOW + 600)
    facts["services"][0]["active"] = False
    messages = [m for _, m in monitor.evaluate(facts, host, NOW)[1]]
    assert "the last update ended BROKEN: a person is needed: the way out is above" in messages, messages
    assert not [m for m in messages if "restart backoff" in m or "rollback" in m], messages


@pytest.mark.parametrize("width", WIDTHS)
def test_its_panel_lists_the_cut_off_restore_as_critical(width, frozen, capsys, monkeypatch):
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console

    facts, host = _facts(CUT_OFF)
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    said = " ".join(text.replace("│", " ").split())
    assert "not starting them on half-restored data" in said and "❌ FAILED" in said, text
    # said once: the findings' line, not also the in-progress line (#24)
    assert said.count("half-restored") == 1 and said.count("takes it over") == 1, text
    check("monitor-restore-cut-off", width, text)
