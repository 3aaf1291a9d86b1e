"""Group settings in hosts.yml (docs/hosts.md, "Groups"; issue #28's first
slice): `defaults` < each group, in order < the host, maps merged key by key
as defaults and hosts always were; two groups that disagree for one host
are exit 78 naming both, unless `group_order` says which wins; `hosts
--show` tells where every value came from."""
import json

import pytest
import yaml

from fabops import inventory
from fabops.errors import CONFIG, USAGE, ConfigError
from tests.conftest import run_cli
from tests.test_golden import WIDTHS, check

pytestmark = pytest.mark.unit

FIXTURE = "tests/fixtures/golden/hosts-groups.yml"


def load(data: dict) -> inventory.Inventory:
    return inventory.loads(yaml.safe_dump(data, sort_keys=False), "g.yml")


def problems(data: dict) -> list:
    with pytest.raises(ConfigError) as info:
        load(data)
    return info.value.problems


BASE = {"defaults": {"app": {"path": "/srv/a"}, "thresholds": {"cpu": 80, "memory": 70}},
        "hosts": {"w1": {}, "w2": {"thresholds": {"disk": 50}}}}


def test_plain_list_groups_load_exactly_as_before():
    with_groups = load({**BASE, "groups": {"web": ["w1", "w2"], "one": ["w2"]}})
    without = load(BASE)
    assert with_groups.hosts == without.hosts
    assert with_groups.groups == {"web": ("w1", "w2"), "one": ("w2",)}
    assert with_groups.select("web") == [without.hosts["w1"], without.hosts["w2"]]


def test_defaults_then_group_then_host_key_by_key():
    inv = load({**BASE, "groups": {"staging": {"hosts": ["w1", "w2"], "thresholds": {"cpu": 90, "disk": 60},
                                               "app": {"branch": "develop"}, "env": {"A": "1"}}}})
    w1, w2 = inv.hosts["w1"], inv.hosts["w2"]
    # the group's cpu over defaults' 80, memory kept from defaults: one merge rule, key by key
    assert w1.thresholds == {"cpu": 90.0, "memory": 70.0, "disk": 60.0}
    assert w2.thresholds == {"cpu": 90.0, "memory": 70.0, "disk": 50.0}  # the host's own disk wins
    assert w1.app.branch == "develop" and w1.app.path == "/srv/a" and w1.env == {"A": "1"}
    assert inv.origins["w2"] == {"app.path": "defaults", "thresholds.cpu": "group staging",
                                 "thresholds.memory": "defaults", "thresholds.disk": "host",
                                 "app.branch": "group staging", "env.A": "group staging"}


def test_a_host_outside_the_group_does_not_get_its_settings():
    inv = load({**BASE, "groups": {"staging": {"hosts": ["w1"], "app": {"branch": "develop"}}}})
    assert inv.hosts["w1"].app.branch == "develop" and inv.hosts["w2"].app.branch == "main"


def test_lists_replace_whole_and_two_agreeing_groups_are_fine():
    svc = [{"name": "bot", "port": 3003}]
    inv = load({**BASE, "defaults": {**BASE["defaults"], "services": [{"name": "old"}]},
                "groups": {"a": {"hosts": ["w1"], "services": svc, "thresholds": {"cpu": 90}},
                           "b": {"hosts": ["w1"], "thresholds": {"cpu": 90}}}})
    assert [s.name for s in inv.hosts["w1"].services] == ["bot"]
    # equal values are no conflict; the later-listed group is named as their source
    assert inv.origins["w1"]["thresholds.cpu"] == "group b"


def test_two_groups_disagreeing_for_a_host_name_both():
    data = {**BASE, "groups": {"web": {"hosts": ["w1", "w2"], "thresholds": {"cpu": 85}},
                               "staging": {"hosts": ["w1"], "thresholds": {"cpu": 90}}}}
    (key, problem), = problems(data)
    assert key == "groups.staging.thresholds.cpu"
    # the values as hosts.yml wrote them, not as read (90.0)
    assert "90 here, 85 in groups.web" in problem and "w1 is in groups web and staging" in problem
    assert "group_order" in problem


@pytest.mark.parametrize("key, one, two", [
    ("env", {"DB_URL": "postgres://a:pw1@db/x"}, {"DB_URL": "postgres://a:pw2@db/x"}),
    ("env", {"MODE": "s3cr3t-one"}, {"MODE": "s3cr3t-two"}),
    ("backup", {"repository": {"url": "rest:http://h/r1", "password_file": "~/p"}},
     {"repository": {"url": "rest:http://h/r2", "password_file": "~/p"}}),
    ("heartbeat", {"url": "https://hc/1"}, {"url": "https://hc/2"}),
])
def test_a_conflict_never_quotes_a_value_that_may_be_a_secret(key, one, two):
    """A short value is quoted in a conflict's message (90 here, 85 in
    groups.web), but never an env value, a backup repository's or a
    heartbeat's (docs/security.md: no secret in any output)."""
    data = {**BASE, "groups": {"web": {"hosts": ["w1"], key: one}, "staging": {"hosts": ["w1"], key: two}}}
    (where, problem), = problems(data)
    assert where.startswith(f"groups.staging.{key}.") and "w1 is in groups web and staging" in problem
    for value in (one, two):
        for leaf in _leaves(value):
            assert leaf not in problem


def _leaves(value):
    return [x for v in value.values() for x in (_leaves(v) if isinstance(v, dict) else [v])]


def test_a_key_the_host_sets_itself_is_no_conflict_between_its_groups():
    """The host's own value wins over both groups, so neither group's
    applies (#28's trial: exit 78 while local set thresholds.cpu itself)."""
    groups = {"team": {"hosts": ["w1", "w2"], "thresholds": {"cpu": 70}, "services": [{"name": "x"}]},
              "stage": {"hosts": ["w1", "w2"], "thresholds": {"cpu": 50}, "services": [{"name": "y"}]}}
    hosts = {"w1": {"thresholds": {"cpu": 10}, "services": [{"name": "z"}]}, "w2": {"thresholds": {"cpu": 10}}}
    (key, problem), = problems({**BASE, "groups": groups, "hosts": hosts})
    assert key == "groups.stage.services" and problem.startswith("w2 is in groups team and stage")
    hosts["w2"]["services"] = []
    inv = load({**BASE, "groups": groups, "hosts": hosts})
    assert inv.hosts["w1"].thresholds["cpu"] == 10.0 and inv.origins["w1"]["thresholds.cpu"] == "host"


def test_the_cli_exits_78_on_a_conflict(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({**BASE, "groups": {
        "a": {"hosts": ["w1"], "services": [{"name": "x"}]}, "b": {"hosts": ["w1"], "services": [{"name": "y"}]}}}))
    r = run_cli("hosts", "--check", "-i", str(path))
    assert r.returncode == CONFIG and "Traceback" not in r.stderr
    assert f"{path}: groups.b.services: w1 is in groups a and b" in r.stderr


@pytest.mark.parametrize("order, cpu, source", [(["web", "staging"], 90.0, "group staging"),
                                                (["staging", "web"], 85.0, "group web")])
def test_group_order_says_which_wins_the_last(order, cpu, source):
    inv = load({**BASE, "groups": {"web": {"hosts": ["w1", "w2"], "thresholds": {"cpu": 85}},
                                   "staging": {"hosts": ["w1"], "thresholds": {"cpu": 90}},
                                   "plain": ["w1"]}, "group_order": order})
    assert inv.hosts["w1"].thresholds["cpu"] == cpu and inv.origins["w1"]["thresholds.cpu"] == source
    assert inv.hosts["w2"].thresholds["cpu"] == 85.0  # only in web


@pytest.mark.parametrize("order, key, words", [
    (["web"], "group_order", "does not name group 'staging'"),
    (["web", "staging", "zz"], "group_order[2]", "unknown group 'zz'"),
    (["web", "staging", "web"], "group_order[2]", "names 'web' twice"),
])
def test_a_bad_group_order_is_refused(order, key, words):
    found = problems({**BASE, "groups": {"web": {"hosts": ["w1"], "thresholds": {"cpu": 85}},
                                         "staging": {"hosts": ["w1"], "thresholds": {"cpu": 90}}},
                      "group_order": order})
    assert [(k, words in p) for k, p in found] == [(key, True)], found


@pytest.mark.parametrize("group, key, words", [
    ({"hosts": ["w1"], "address": "10.0.0.1"}, "groups.g.address", "a group may not set address"),
    ({"hosts": ["w1"], "backup_dir": "~/b$(id)"}, "groups.g.backup_dir", "may hold letters"),
    ({"hosts": ["w1"], "app": {"branch": "dev\nExecStart=/bin/sh"}}, "groups.g.app.branch", "line break"),
    ({"hosts": ["w1"], "thresholds": {"cpu": 150}}, "groups.g.thresholds.cpu", "out of range"),
    ({"hosts": ["w1", "zz"]}, "groups.g.hosts[1]", "unknown host 'zz'"),
    ({"thresholds": {"cpu": 1}}, "groups.g.hosts", "is required"),
    ({"hosts": ["w1"], "brnach": "x"}, "groups.g.brnach", "unknown key"),
])
def test_a_groups_values_pass_the_hosts_checks(group, key, words):
    found = problems({**BASE, "groups": {"g": group}})
    assert [k for k, p in found if words in p] == [key], found


def test_a_groups_relative_path_is_refused_for_an_ssh_host_as_a_hosts_is():
    found = problems({**BASE, "groups": {"g": {"hosts": ["w1"], "backup_dir": "relative/b"}}})
    assert [k for k, _ in found] == ["hosts.w1.backup_dir"], found


@pytest.mark.parametrize("width", WIDTHS)
def test_show_says_where_each_value_came_from(width):
    r = run_cli("hosts", "-i", FIXTURE, "--show", "web1", env={"COLUMNS": str(width)})
    assert r.returncode == 0, r.stderr
    check("hosts-show", width, r.stdout)
    assert all(len(ln) <= width for ln in r.stdout.splitlines())
    # a value too long for its column is whole on a line of its own, never
    # broken mid-word (#28's trial: `.../host/back` | `up`)
    assert "    /home/ec2-user/voice-meeting-bot/.fabops-demo/host/backup\n" in r.stdout \
        or "/home/ec2-user/voice-meeting-bot/.fabops-demo/host/backup   " in r.stdout
    assert "s3cret" not in r.stdout  # masked as hosts --json masks it
    assert [ln.split() for ln in r.stdout.splitlines() if ln.startswith("schedule.clean")] == [
        ["schedule.clean", "off", "group", "staging"]]


@pytest.mark.parametrize("width", WIDTHS)
def test_show_says_a_multi_line_hook_as_its_lines(width, tmp_path):
    """#29's trial: `hosts --show local` joined a hook's script of several
    lines into one wrapped line, read as one command. Its lines go under
    the row, indented, one a line; a long one continues two columns in."""
    script = ("set -e\nnpm ci --omit=dev\nif [ -f migrate.js ]; then\n  node migrate.js --to latest --lock-timeout 30"
              " --notify-channel deploys\nfi\n")
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"web1": {"address": "10.20.30.41", "app": {"path": "/srv/a"},
                                                     "hooks": {"before_restart": {"run": script}}}}}))
    r = run_cli("hosts", "-i", str(inv), "--show", "web1", env={"COLUMNS": str(width)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = lines.index("    set -e")
    assert lines[at + 1:at + 3] == ["    npm ci --omit=dev", "    if [ -f migrate.js ]; then"], r.stdout
    assert "    fi" in lines and not [ln for ln in lines if "set -e npm" in ln], r.stdout
    check("hosts-show-script", width, r.stdout.replace(str(inv), "hosts.yml"))


def test_show_json_is_the_same_rows_and_valid():
    r = run_cli("hosts", "-i", FIXTURE, "--show", "web", "--json")  # run_cli validates it against the schema
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert list(doc["hosts"]) == ["web1", "web2"]
    rows = {row["key"]: (row["value"], row["from"]) for row in doc["hosts"]["web1"]["settings"]}
    assert rows["app.branch"] == ("develop", "group staging")
    assert rows["app.path"] == ("/home/ec2-user/voice-meeting-bot", "defaults")
    assert rows["thresholds.cpu"] == (90.0, "group staging") and rows["thresholds.memory"] == (70.0, "defaults")
    assert rows["thresholds.disk"] == (90.0, "host") and rows["address"] == ("10.20.30.41", "host")
    assert rows["services[0].port"] == (8000, "group staging") and rows["schedule.health"][1] == "built-in"
    assert rows["schedule.clean"] == (None, "group staging")  # turned off there, and said so
    assert rows["env.API_TOKEN"] == ("***", "host")
    web2 = {row["key"]: row["from"] for row in doc["hosts"]["web2"]["settings"]}
    assert web2["thresholds.cpu"] == "defaults" and web2["app.branch"] == "built-in"


def test_show_refuses_check_and_an_unknown_host():
    r = run_cli("hosts", "-i", FIXTURE, "--show", "web1", "--check")
    assert r.returncode == USAGE and "--show and --check" in r.stderr
    r = run_cli("hosts", "-i", FIXTURE, "--show", "nope")
    assert r.returncode == USAGE and "unknown host or group 'nope'" in r.stderr


def test_hosts_json_says_what_each_group_sets_beside_its_members():
    """#28's trial: `groups` was only {"staging": ["web1"]}. Its lists stay
    as consumers read them; group_settings and environments are beside."""
    r = run_cli("hosts", "-i", FIXTURE, "--json")  # run_cli validates it against the schema
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["groups"] == {"web": ["web1", "web2"], "staging": ["web1"]}
    assert data["group_settings"]["web"] == [] and "app.branch" in data["group_settings"]["staging"]
    assert "environment" not in data["group_settings"]["staging"]  # a mark, not a setting
    assert data["environments"] == ["staging"]
