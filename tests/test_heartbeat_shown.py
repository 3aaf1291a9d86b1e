"""The last heartbeat ping as monitor and `setup --check` show it (docs/
monitor.md, "Heartbeat"): its age, run, which URL and its answer, never the
URL; a failed one is a WARNING finding. Goldens at 80 and 200 columns, and
monitor --json's `heartbeat` against docs/json.schema.json."""
import json

import pytest
import yaml

from fabops import errors, inventory, monitor
from fabops.host import heartbeat
from tests.conftest import ROOT, json_schema
from tests.test_golden import WIDTHS, check, frozen, render  # noqa: F401 - frozen is a fixture

pytestmark = pytest.mark.unit

URL = "https://hc-ping.com/5e1f0c3a-secret-uuid"


def _panel(capsys, monkeypatch, width, record, hb=True):
    """monitor's panel of the sandbox fixture's host with `record` as
    state.json's heartbeat (None: none), and its facts."""
    from fabops.probe import MARK
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    entry = dict(case["host"], **({"heartbeat": {"url": URL}} if hb else {}))
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": entry}}), "x.yml").hosts["sandbox"]
    head, _, rest = case["output"].partition(f"{MARK}state\n")
    body, sep, tail = rest.partition(f"\n{MARK}")
    state = json.loads(body)
    if record is not None:
        state["heartbeat"] = record
    output = f"{head}{MARK}state\n{json.dumps(state)}{sep}{tail}"
    facts = monitor.parse(output, host, case["now"])
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    return text, facts


def _record(now, ok, failures=0, url="ok", run="update"):
    return {"at": now - 125, "run": run, "result": "noop" if url == "ok" else "aborted", "url": url, "ok": ok,
            "detail": "HTTP 200" if ok else "HTTP 500", "failures": failures}


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_shows_a_failed_ping_and_warns(width, frozen, capsys, monkeypatch):
    from tests.test_golden import NOW

    text, facts = _panel(capsys, monkeypatch, width, _record(NOW, False, failures=3))
    assert "heartbeat: last ping 2m 5s ago (update: the success URL): FAILED (HTTP 500," in text, text
    assert "heartbeat ping failed 3 times in a row (HTTP 500)" in text and "hc-ping" not in text
    assert facts["code"] == errors.WARNING
    check("monitor-heartbeat-failed", width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_shows_a_good_ping_and_no_finding(width, frozen, capsys, monkeypatch):
    from tests.test_golden import NOW

    text, facts = _panel(capsys, monkeypatch, width, _record(NOW, True, url="fail", run="health"))
    assert "heartbeat: last ping 2m 5s ago (health: the fail URL): ok" in text, text
    assert not [f for f in facts["findings"] if "heartbeat" in f["message"]]
    check("monitor-heartbeat-ok", width, text)


def test_the_json_fact_validates_and_holds_no_url(frozen, capsys, monkeypatch):
    import jsonschema

    from tests.test_golden import NOW

    schema = json_schema("facts")
    for record, hb in ((_record(NOW, False, failures=1), True), (None, True), (None, False),
                       (_record(NOW, True), False), ({"at": "junk"}, True)):
        _, facts = _panel(capsys, monkeypatch, 200, record, hb)
        jsonschema.validate(facts, schema)
        assert URL not in json.dumps(facts)
    assert facts["heartbeat"] == {"configured": True, "last": None}  # a hand edit's junk is no ping
    _, facts = _panel(capsys, monkeypatch, 200, None, False)
    assert facts["heartbeat"] is None


def test_the_words_for_no_ping_yet_and_a_heartbeat_turned_off():
    assert heartbeat.line({"configured": True, "last": None}, 0.0) == (
        "heartbeat: no ping yet (cron's next update or health run pings it)", True)
    rec = _record(1000.0, True)
    assert heartbeat.line({"configured": False, "last": rec}, 1000.0) == (
        "heartbeat: not set in hosts.yml; the last ping 2m 5s ago (update: the success URL) was ok", True)
    assert heartbeat.findings({"configured": False, "last": _record(1000.0, False, 2)}) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_setup_check_says_the_last_ping(width, capsys, monkeypatch):
    """setup --check's heartbeat item, read from the host's state.json as
    monitor reads it (setup._heartbeat), in setup's own lines."""
    from types import SimpleNamespace

    from fabops import setup
    from fabops.tasks.setup import item_lines

    host = inventory.loads(yaml.safe_dump({"hosts": {"find-to-do": {"app": {"path": "/srv/app"},
                                                                    "heartbeat": {"url": URL}}}})).hosts["find-to-do"]
    now = 1795960000.0
    monkeypatch.setattr("time.time", lambda: now)
    lines = []
    for record in (_record(now, True), _record(now, False, failures=4, url="fail", run="health"), None):
        state = json.dumps({"deployed": "abc", **({"heartbeat": record} if record else {})})
        run = SimpleNamespace(host=host, dt=SimpleNamespace(output=lambda cmd, _s=state: _s))
        for item in setup._heartbeat(run):
            lines += item_lines("find-to-do", item, width, diff=False)
    text = "".join(ln + "\n" for ln in lines)
    assert "hc-ping" not in text and "FAILED (HTTP 500, 4 in a row)" in " ".join(text.split()), text
    check("setup-heartbeat", width, text)
    host_off = inventory.loads(yaml.safe_dump({"hosts": {"h": {"app": {"path": "/srv/app"}}}})).hosts["h"]
    assert list(setup._heartbeat(SimpleNamespace(host=host_off, dt=None))) == []
