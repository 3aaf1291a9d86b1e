"""monitor's --json against docs/json.schema.json, the one schema (#23):
monitor no longer keeps a copy in code, so the file must be as strict as
that copy was: every key of a host's facts and of each service, typed, and
no key the docs do not list."""
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from fabops import errors, inventory, monitor
from fabops.errors import UnreachableError
from fabops.fanout import HostResult
from fabops.tasks._base import envelope
from tests.conftest import json_schema

CASES = sorted((Path(__file__).parent / "fixtures" / "parse_monitor").glob("*.json"))


def facts_of(case: Path) -> dict:
    """A recorded monitor output, parsed and judged as monitor.sample does."""
    data = json.loads(case.read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"h": data["host"]}}), "x.yml").hosts["h"]
    facts = monitor.parse(data["output"], host, data["now"])
    code, found = monitor.evaluate(facts, host, data["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in found])
    return facts


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_parsed_facts_match_the_published_schema(case):
    facts = json.loads(json.dumps(facts_of(case)))  # as --json prints them
    jsonschema.validate(facts, json_schema("facts"))
    gone = UnreachableError("cannot connect to h2: refused", host="h2")
    doc = envelope([HostResult("h", value=facts, code=facts["code"]), HostResult("h2", error=gone, code=3)])
    jsonschema.validate(json.loads(json.dumps(doc)), json_schema())


def _extra_service_key(f):
    f["services"][0]["colour"] = "red"


def _extra_host_key(f):
    f["colour"] = "red"


def _missing_fact(f):
    del f["root_units"]


def _missing_service_fact(f):
    del f["services"][0]["http_expect"]


def _pid_as_text(f):
    f["services"][0]["pid"] = "123"


def _active_unknown(f):
    f["services"][0]["active"] = None


def _cpu_as_text(f):
    f["cpu"] = "12%"


def _unknown_manager(f):
    f["services"][0]["manager"] = "docker"


def _finding_without_message(f):
    f["findings"] = [{"level": "WARNING"}]


def _root_unit_extra_key(f):
    f["root_units"] = [{"unit": "bot.service", "problem": "x", "fix": "y"}]


def _history_as_list(f):
    f["history"] = []


@pytest.mark.parametrize("spoil", [
    _extra_service_key, _extra_host_key, _missing_fact, _missing_service_fact, _pid_as_text, _active_unknown,
    _cpu_as_text, _unknown_manager, _finding_without_message, _root_unit_extra_key, _history_as_list,
], ids=lambda fn: fn.__name__.strip("_"))
def test_the_schema_refuses_what_monitor_never_prints(spoil):
    """What monitor's schema in code refused, the file refuses, as a host's
    facts and inside the envelope every task prints."""
    facts = json.loads(json.dumps(facts_of(CASES[0])))
    assert facts["services"], "the fixture has a service to spoil"
    spoil(facts)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(facts, json_schema("facts"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema": 1, "code": facts["code"], "hosts": {"h": facts}}, json_schema())


@pytest.mark.parametrize("dry_run", [True, False])
def test_clean_gives_one_shape_with_and_without_dry_run(dry_run, monkeypatch, capsys):
    """#24's trial: `clean --json` gave `"local": []` while `--dry-run --json`
    gave `{dry_run, rules, would}`. Both are `{dry_run, rules}` now (each
    rule applied with what it deleted, or would), the dry run with its
    `would`; the schema's `clean` validates both, and the envelope."""
    from types import SimpleNamespace

    from fabops.maintenance.clean import CleanResult
    from fabops.tasks import maintenance

    rules = [CleanResult("/tmp/voice-meeting-bot/temp", "*.pcm", 3, 3145728, dry_run),
             CleanResult("/var/tmp/bot", "*.wav", 0, 0, dry_run)]
    outcome = SimpleNamespace(results=[HostResult("h", value=rules, code=errors.OK)], code=errors.OK)
    monkeypatch.setattr(maintenance, "each_host", lambda *a: outcome)
    maintenance.clean.body(None, dry_run=dry_run, json=True)
    doc = json.loads(capsys.readouterr().out)
    value = doc["hosts"]["h"]
    assert value["dry_run"] is dry_run and [(r["path"], r["files"], r["bytes"]) for r in value["rules"]] == [
        ("/tmp/voice-meeting-bot/temp", 3, 3145728), ("/var/tmp/bot", 0, 0)], value
    assert ("would" in value) is dry_run, value
    if dry_run:
        assert [w["target"] for w in value["would"]] == ["/tmp/voice-meeting-bot/temp/*.pcm"], value
    jsonschema.validate(value, json_schema("clean"))
    jsonschema.validate(doc, json_schema())
    with pytest.raises(jsonschema.ValidationError):  # the old real run's bare list is not a clean value
        jsonschema.validate([r.to_dict() for r in rules], json_schema("clean"))
