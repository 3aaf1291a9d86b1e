"""Environments in hosts.yml (docs/environments.md; issue #28's second
slice): a group with `environment: true` is one. A host is in at most one
(two is exit 78 naming both); `-H staging` selects it as any group; the
host knows its environment's name (hosts, hosts --show, --json, host.yml)
and its notifications name it."""
import json

import pytest
import yaml

from fabops import inventory
from fabops.deploy import host_yml
from fabops.errors import CONFIG, ConfigError
from tests.conftest import run_cli

pytestmark = pytest.mark.unit

# docs/environments.md's example, on addresses nothing listens at (status
# then fails fast per host, which is all a selection test needs)
INVENTORY = {
    "defaults": {"app": {"path": "/srv/app"}},
    "hosts": {"stg1": {"address": "127.0.0.1", "port": 1}, "prod1": {"address": "127.0.0.1", "port": 1},
              "prod2": {"address": "127.0.0.1", "port": 1}, "tools": {"address": "127.0.0.1", "port": 1}},
    "groups": {
        "web": ["stg1", "prod1", "prod2"],
        "staging": {"environment": True, "hosts": ["stg1"], "app": {"branch": "develop"},
                    "schedule": {"update": "*/5 * * * *"}},
        "production": {"environment": True, "hosts": ["prod1", "prod2"], "app": {"branch": "main"}},
    },
}


def load(data: dict) -> inventory.Inventory:
    return inventory.loads(yaml.safe_dump(data, sort_keys=False), "e.yml")


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "hosts.yml"
    p.write_text(yaml.safe_dump(INVENTORY, sort_keys=False))
    return str(p)


def test_each_host_knows_its_environment_and_its_settings_follow_it():
    inv = load(INVENTORY)
    assert {n: h.environment for n, h in inv.hosts.items()} == {
        "stg1": "staging", "prod1": "production", "prod2": "production", "tools": None}
    assert inv.hosts["stg1"].app.branch == "develop" and inv.hosts["stg1"].schedule["update"] == "*/5 * * * *"
    assert inv.hosts["prod1"].app.branch == "main" and inv.hosts["tools"].app.branch == "main"
    assert [h.name for h in inv.select("production")] == ["prod1", "prod2"]
    assert [h.name for h in inv.select("staging,tools")] == ["stg1", "tools"]


def test_environment_marks_the_group_and_sets_nothing():
    """`environment: true` alone is no setting: no group_order is asked
    for, and the hosts resolve as they would without it."""
    groups = {"staging": {"environment": True, "hosts": ["stg1"]},
              "production": {"environment": True, "hosts": ["prod1", "prod2"]}, "all": {"hosts": ["stg1", "prod1"]}}
    marked = load({**INVENTORY, "groups": groups})
    plain = load({**INVENTORY, "groups": {g: v["hosts"] for g, v in groups.items()}})
    assert {n: h.environment for n, h in marked.hosts.items()} == {
        "stg1": "staging", "prod1": "production", "prod2": "production", "tools": None}
    assert all(h.environment is None for h in plain.hosts.values())
    assert {n: inventory.replace(h, environment=None) for n, h in marked.hosts.items()} == plain.hosts
    unmarked = load({**INVENTORY, "groups": {"staging": {"environment": False, "hosts": ["stg1"]}}})
    assert unmarked.hosts["stg1"].environment is None


def test_a_host_in_two_environments_is_exit_78_naming_both():
    data = json.loads(json.dumps(INVENTORY))
    data["groups"]["production"]["hosts"].append("stg1")
    data["group_order"] = ["web", "staging", "production"]  # the branches' clash is not what this test is about
    with pytest.raises(ConfigError) as info:
        load(data)
    assert info.value.exit_code == CONFIG == 78
    assert [(k, p) for k, p in info.value.problems if "environment" in p] == [
        ("groups.production.hosts", "stg1 is in environments staging and production: a host is in at most one "
                                    "environment; take it out of one of them")]


@pytest.mark.parametrize("bad, key, words", [
    ({"groups": {"staging": {"environment": "yes", "hosts": ["stg1"]}}}, "groups.staging.environment",
     "must be true or false"),
    ({"hosts": {"stg1": {"environment": "staging"}}}, "hosts.stg1.environment", "unknown key"),
])
def test_environment_is_a_groups_boolean_and_no_hosts_key(bad, key, words):
    with pytest.raises(ConfigError) as info:
        load({**INVENTORY, **bad})
    assert [k for k, p in info.value.problems if words in p] == [key], info.value.problems


def test_host_yml_carries_the_environment_to_the_host():
    """The host side reads host.yml with this loader (cron's health and
    update lines notify from there): the environment comes back with it."""
    for name, host in load(INVENTORY).hosts.items():
        text = host_yml(host)
        back = inventory.loads(text, "host.yml").hosts[name]
        assert back.environment == host.environment
        assert ("environment" in text) == (host.environment is not None)
        assert "environment" not in host.to_dict()  # a group's, never a host key


def test_hosts_show_and_json_name_the_environment(path):
    r = run_cli("hosts", "-i", path, "--show", "production", "--json")  # run_cli checks the schema
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert list(doc["hosts"]) == ["prod1", "prod2"]
    rows = {row["key"]: (row["value"], row["from"]) for row in doc["hosts"]["prod1"]["settings"]}
    assert rows["environment"] == ("production", "group production")
    assert rows["app.branch"] == ("main", "group production")
    r = run_cli("hosts", "-i", path, "--json")
    assert r.returncode == 0, r.stderr
    assert {n: h["environment"] for n, h in json.loads(r.stdout)["hosts"].items()} == {
        "stg1": "staging", "prod1": "production", "prod2": "production", "tools": None}
    r = run_cli("hosts", "-i", path, env={"COLUMNS": "80"})
    assert "stg1  127.0.0.1:1  groups: web, staging (environment)" in r.stdout
    r = run_cli("hosts", "-i", path, "--show", "tools")
    assert [ln.split() for ln in r.stdout.splitlines() if ln.startswith("environment")] == [
        ["environment", "none", "built-in"]]


@pytest.mark.parametrize("env, hosts", [("staging", ["stg1"]), ("production", ["prod1", "prod2"])])
def test_status_selects_an_environment_as_a_group(path, env, hosts):
    r = run_cli("status", "-i", path, "-H", env, "--json")
    doc = json.loads(r.stdout)
    assert list(doc["hosts"]) == hosts  # unreachable here (exit 3), but these and only these
    assert r.returncode == doc["code"] == 3


def test_the_docs_example_is_what_it_says(tmp_path):
    """docs/environments.md's hosts.yml loads as written: staging follows
    develop every 5 minutes, production main."""
    import re

    from tests.conftest import ROOT

    # the first yaml block (the second is the one-machine recipe for promote,
    # loaded by tests/test_readme_trial.py)
    block = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "environments.md").read_text(), re.S)[0]
    inv = inventory.loads(block, "environments.md")
    assert [(h.name, h.environment, h.app.branch, h.schedule["update"]) for h in inv.select("staging,production")] == [
        ("stg1", "staging", "develop", "*/5 * * * *"), ("prod1", "production", "main", "*/15 * * * *"),
        ("prod2", "production", "main", "*/15 * * * *")]
