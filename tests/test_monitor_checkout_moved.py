"""monitor says where the checkout is when it is not on the deployed commit
(new-user trial, #24): after a `reset` onto a commit whose services did not
come up, `status` said `checkout is at X` and monitor's panel and --json
did not. The fact script reads the checkout's commit (as status does), its
--json gives it as `deploy.head`, and the panel says it in status's words
(tasks/render.checkout_moved), at 80 and 200 columns; on the sandbox, after
a real broken reset, both say it alike."""
import json
import re

import pytest
import yaml

from tests import test_golden as golden
from tests.conftest import ROOT, one, run_cli
from tests.test_golden import WIDTHS, check, render

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still
DEPLOYED = "9faf75dc81d6ccc9c0a8cf6ca23bc3e19101dfed"  # the recorded state's
MOVED = "c0ffee0123456789abcdef0123456789abcdef01"


def _facts(head, result="deployed"):
    from fabops import inventory, monitor
    from fabops.probe import MARK

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    output = case["output"].replace('"last_result": "deployed"', f'"last_result": "{result}"')
    if head is not None:  # as the script prints it: its own section, before the closing samples
        output = output.replace(f"\n{MARK}pstat1\n", f"\n{MARK}head\n{head}\n\n{MARK}pstat1\n")
    return monitor.judged(monitor.parse(output, host, case["now"]), host, case["now"]), host


def test_its_json_gives_the_checkouts_commit():
    import jsonschema

    from tests.conftest import json_schema

    for head, want in ((MOVED, MOVED), (DEPLOYED, DEPLOYED), ("", None), (None, None)):
        facts, _ = _facts(head)
        assert facts["deploy"]["head"] == want, (head, facts["deploy"])
        jsonschema.validate(facts, json_schema("facts"))


def _panel(capsys, monkeypatch, width, facts, host) -> str:
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console

    return render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))


@pytest.mark.parametrize("width", WIDTHS)
def test_its_panel_says_the_checkout_is_elsewhere(width, frozen, capsys, monkeypatch):
    text = _panel(capsys, monkeypatch, width, *_facts(MOVED, "broken"))
    said = " ".join(text.replace("│", " ").split())
    assert f"deployed {DEPLOYED[:10]} (19h 26m ago) checkout is at {MOVED[:10]};" in said, text
    check("monitor-checkout-moved", width, text)


def test_a_checkout_on_the_deployed_commit_is_not_mentioned(frozen, capsys, monkeypatch):
    for head in (DEPLOYED, None):
        text = _panel(capsys, monkeypatch, 80, *_facts(head))
        assert "checkout is at" not in text, text


def test_after_a_broken_reset_monitor_says_it_as_status_does(sandbox, monkeypatch):
    from tests.test_checkout_moved import _broken_reset

    monkeypatch.delenv("CI", raising=False)
    good, bad = _broken_reset(sandbox)
    inv = str(sandbox.inventory)
    words = f"checkout is at {bad[:10]}"
    status = run_cli("status", "-i", inv, "-H", "local")
    assert words in status.stdout, status.stdout
    facts = one(run_cli("monitor", "-i", inv, "-H", "local", "--json").stdout)
    assert (facts["deploy"]["deployed"], facts["deploy"]["head"]) == (good, bad), facts["deploy"]
    for width in ("80", "200"):
        r = run_cli("monitor", "-i", inv, "-H", "local", env={"COLUMNS": width})
        said = re.sub(r"\s+", " ", r.stdout.replace("│", " "))
        assert f"deployed {good[:10]} " in said and words in said, r.stdout
