"""`inv prometheus-targets` (docs/metrics.md, "Prometheus: targets from
hosts.yml"): Prometheus' file_sd JSON from hosts.yml, each selected host's
node_exporter labelled host, groups and environment; hosts.yml's
`node_exporter` checked at load like every other value; `--output`
written atomically, 0644."""
import json
import os
from dataclasses import replace

import pytest
import yaml

from fabops import inventory
from fabops.errors import ConfigError
from fabops.prometheus_targets import document, exporter, targets, write
from tests.conftest import run_cli
from tests.test_golden import WIDTHS, check

pytestmark = pytest.mark.unit

INV = {
    "defaults": {"app": {"path": "/srv/app"}, "user": "deploy"},
    "hosts": {
        "web1": {"address": "10.0.0.5"},
        "web2": {"address": "web2.example.org", "node_exporter": ":9200"},
        "db": {"address": "db-alias", "node_exporter": "metrics.example.org"},
        "v6": {"address": "2001:db8::7"},
        "box": {"connection": "local", "app": {"path": "/tmp/box"}},
        # a second app on web1's machine: one node_exporter, one target
        "web1-api": {"address": "10.0.0.5", "app": {"path": "/srv/api"}},
    },
    "groups": {"web": ["web1", "web2", "web1-api"], "webhooks": ["web2"],
               "production": {"hosts": ["web1", "db"], "environment": True}},
}


def _inv(data=INV, path="hosts.yml"):
    return inventory.loads(yaml.safe_dump(data, sort_keys=False), path)


def same(address: str) -> str:
    return address


def test_each_host_is_its_node_exporter_with_its_labels():
    inv = _inv()
    found = targets(inv, inv.select("all"), resolve=same)
    assert found == [
        {"targets": ["10.0.0.5:9100"],
         "labels": {"host": "web1,web1-api", "groups": ",web,production,", "environment": "production",
                    "environments": ",production,"}},
        {"targets": ["web2.example.org:9200"], "labels": {"host": "web2", "groups": ",web,webhooks,"}},
        {"targets": ["metrics.example.org:9100"],
         "labels": {"host": "db", "groups": ",production,", "environment": "production",
                    "environments": ",production,"}},
        {"targets": ["[2001:db8::7]:9100"], "labels": {"host": "v6"}},
        {"targets": ["localhost:9100"], "labels": {"host": "box"}},
    ]


def test_one_exporter_in_two_environments_names_no_one_environment():
    """#29's trial: web1 (staging) and web1-api (production) on one machine
    made `"environment": "staging,production"`, which
    `environment="production"` misses. Still one target (two would scrape
    every series twice), with no `environment` and both in `environments`,
    as `groups` lists its names."""
    data = {**INV, "groups": {**INV["groups"], "staging": {"hosts": ["web1"], "environment": True},
                              "production": {"hosts": ["web1-api", "db"], "environment": True}}}
    inv = _inv(data)
    found = targets(inv, inv.select("web1,web1-api,db"), resolve=same)
    assert found[0] == {"targets": ["10.0.0.5:9100"],
                        "labels": {"host": "web1,web1-api", "groups": ",web,production,staging,",
                                   "environments": ",staging,production,"}}
    assert found[1]["labels"]["environment"] == "production", found


def test_the_selection_is_minus_h_as_every_task_takes_it():
    inv = _inv()
    assert [t["labels"]["host"] for t in targets(inv, inv.select("web2,db"), resolve=same)] == ["web2", "db"]
    assert [t["targets"] for t in targets(inv, inv.select("production"), resolve=same)] == [
        ["10.0.0.5:9100"], ["metrics.example.org:9100"]]


def test_a_group_or_defaults_may_give_the_port_alone():
    data = {**INV, "defaults": {**INV["defaults"], "node_exporter": ":9101"}}
    inv = _inv(data)
    found = {t["labels"]["host"]: t["targets"][0] for t in targets(inv, inv.select("all"), resolve=same)}
    assert found["web1,web1-api"] == "10.0.0.5:9101" and found["box"] == "localhost:9101"
    assert found["web2"] == "web2.example.org:9200"  # the host's own wins, as every setting's does


def test_an_ssh_alias_is_its_hostname_in_the_ssh_config(tmp_path, monkeypatch):
    """`ssh find-to-do` works through ~/.ssh/config's HostName; Prometheus
    knows no such alias, so the target is that HostName (HOME is a temp
    dir for every test: tests/conftest.py)."""
    ssh = tmp_path / "home-ssh"
    ssh.mkdir()
    (ssh / "config").write_text("Host db-alias\n    HostName 192.0.2.44\n    User ec2-user\n")
    monkeypatch.setenv("FABOPS_SSH_CONFIG", str(ssh / "config"))
    host = _inv({**INV, "hosts": {"db": {"address": "db-alias"}}, "groups": {}}).hosts["db"]
    assert exporter(host) == "192.0.2.44:9100"
    assert exporter(replace(host, address="unknown.example.org")) == "unknown.example.org:9100"


@pytest.mark.parametrize("value, said", [
    ("http://10.0.0.5:9100", "is not a node_exporter address"),
    ("10.0.0.5:9100/metrics", "is not a node_exporter address"),
    ("user@10.0.0.5:9100", "is not a node_exporter address"),
    ("10.0.0.5:0", "has a port outside 1-65535"),
    ("10.0.0.5:99999", "has a port outside 1-65535"),
    (9100, "is a number, not an address: write :PORT"),
    ("-oProxyCommand=x", "is not a node_exporter address"),
    ("a b:9100", "is not a node_exporter address"),
])
def test_a_bad_node_exporter_is_refused_at_load_naming_its_key(value, said):
    with pytest.raises(ConfigError) as e:
        _inv({**INV, "hosts": {"web1": {"address": "10.0.0.5", "node_exporter": value}}})
    assert e.value.key == "hosts.web1.node_exporter" and said in e.value.problem, e.value.message


def test_a_group_value_is_checked_as_a_hosts():
    with pytest.raises(ConfigError) as e:
        _inv({**INV, "groups": {"web": {"hosts": ["web1"], "node_exporter": "x:70000"}}})
    assert e.value.key == "groups.web.node_exporter", e.value.message


def test_the_file_is_replaced_whole_and_readable_by_prometheus(tmp_path):
    path = tmp_path / "targets" / "fabops.json"
    path.parent.mkdir()
    text = document([{"targets": ["10.0.0.5:9100"], "labels": {"host": "web1"}}])
    assert write(str(path), text) == (str(path), None)
    assert json.loads(path.read_text()) == [{"labels": {"host": "web1"}, "targets": ["10.0.0.5:9100"]}]
    assert path.stat().st_mode & 0o777 == 0o644
    assert write(str(path), text) == (str(path), text)
    assert os.listdir(path.parent) == ["fabops.json"]  # no temp file left beside it


def test_output_in_a_missing_directory_is_a_usage_error(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump(INV, sort_keys=False))
    r = run_cli("prometheus-targets", "-i", str(inv), "-H", "web2", "--output", str(tmp_path / "no" / "t.json"))
    assert r.returncode == 64 and r.stdout == "", (r.returncode, r.stdout)
    assert f"no directory {tmp_path / 'no'}" in r.stderr, r.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("width", WIDTHS)
def test_stdout_is_the_file_sd_json_as_it_is(width, tmp_path):
    # the addresses need no SSH config (web2 names a port only: its address
    # has no entry there, so it is itself)
    r = run_cli("prometheus-targets", "-i", _written(tmp_path), "-H", "web,production,box",
                env={"COLUMNS": str(width)})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert json.loads(r.stdout)[0]["labels"]["host"] == "web1,web1-api"
    check("prometheus-targets", width, r.stdout)


@pytest.mark.parametrize("width", WIDTHS)
def test_output_says_what_it_wrote(width, tmp_path):
    (tmp_path / "prometheus").mkdir()
    args = ("prometheus-targets", "-i", _written(tmp_path), "-H", "all", "--output",
            "prometheus/fabops-targets-of-the-whole-inventory.json")
    r = run_cli(*args, cwd=str(tmp_path), env={"COLUMNS": str(width)})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    again = run_cli(*args, cwd=str(tmp_path), env={"COLUMNS": str(width)})
    assert again.stdout.endswith("unchanged\n"), again.stdout
    check("prometheus-targets-output", width, r.stdout + again.stdout)
    assert len(json.loads((tmp_path / args[-1]).read_text())) == 5


def _written(tmp_path) -> str:
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump(INV, sort_keys=False))
    return str(inv)
