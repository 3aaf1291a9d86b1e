"""hosts.yml validation: every error names the file, the key path and the problem."""
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from fabops import inventory
from fabops.errors import CONFIG, ConfigError, UsageError
from tests.conftest import ROOT, run_cli

GOOD = """
defaults:
  user: ec2-user
  app: {path: /srv/app}
hosts:
  web1: {}
  web2: {port: 2222, app: {branch: release/2}}
  sandbox: {connection: local, app: {path: sand/app}}
groups:
  web: [web1, web2]
default: web1
"""


def load_text(text, tmp_path, name="hosts.yml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return inventory.load(str(path))


def test_shipped_inventory_describes_the_real_system():
    inv = inventory.load(str(ROOT / "hosts.yml"))
    host = inv.hosts["find-to-do"]
    assert inv.default == "find-to-do"
    assert host.user == "ec2-user"
    assert host.app.path == "/home/ec2-user/voice-meeting-bot"
    assert [s.name for s in host.services] == ["voice-meeting-python-api.service", "voice-meeting-discord-bot.service"]
    bot = host.service("voice-meeting-discord-bot.service")
    assert bot.port == 3003 and bot.check.method == "POST" and bot.check.url.endswith("/webhook/meeting-completed")
    assert host.deps[0].when == ("node-bot/package.json", "node-bot/package-lock.json")
    assert host.logs["update"] == "/var/log/voice-meeting-bot-update.log"
    assert host.cleanup[0].glob == "*.pcm" and host.cleanup[0].older_than == 86400
    assert host.thresholds == {"cpu": 10, "memory": 15, "disk": 80}
    assert inv.hosts["local"].connection == "local"
    assert inv.hosts["local"].services[0].manager == "process"
    assert inv.groups["production"] == ("find-to-do",)


def test_defaults_merge_and_host_wins(tmp_path):
    inv = load_text(GOOD, tmp_path)
    assert inv.hosts["web1"].user == "ec2-user"
    assert inv.hosts["web2"].port == 2222
    assert inv.hosts["web2"].app.path == "/srv/app"  # merged map: path from defaults
    assert inv.hosts["web2"].app.branch == "release/2"
    assert inv.hosts["web1"].home == "~/.fabops/app"
    assert inv.hosts["sandbox"].app.path == str(tmp_path / "sand/app")  # relative: local only
    assert inv.hosts["web1"].schedule["update"] == "*/5 * * * *"


def test_host_roundtrips_through_host_yml(tmp_path):
    import yaml

    inv = inventory.load(str(ROOT / "hosts.yml"))
    host = inv.hosts["find-to-do"]
    text = yaml.safe_dump({"hosts": {host.name: host.to_dict()}})
    again = inventory.loads(text, str(tmp_path / "host.yml")).hosts[host.name]
    assert again == host


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("hosts: {a: {app: {path: /x}, prot: 22}}", "hosts.a.prot", "unknown key (did you mean 'port'?)"),
        ("hosts: {a: {app: {path: /x}, port: 70000}}", "hosts.a.port", "70000 is out of range 1-65535"),
        ("hosts: {a: {app: {path: /x}, port: '22'}}", "hosts.a.port", "must be a whole number, not a string"),
        ("hosts: {a: {app: {path: /x}, port: true}}", "hosts.a.port", "must be a whole number, not a boolean"),
        ("hosts: {a: {app: {path: /x}}}\ngroups: {g: [a, b]}", "groups.g[1]", "unknown host 'b'"),
        ("hosts: {a: {app: {path: /x}, services: [{name: 'bot;rm -rf /'}]}}", "hosts.a.services[0].name",
         "may only contain letters"),
        ("hosts: {a: {app: {path: /x, branch: 'main..x'}}}", "hosts.a.app.branch", "not a valid branch name"),
        ("hosts: {a: {app: {path: /x, branch: '$(reboot)'}}}", "hosts.a.app.branch", "not a valid branch name"),
        ("hosts: {a: {}}", "hosts.a.app.path", "is required"),
        ("hosts: {a: {app: {path: x}}}", "hosts.a.app.path", "relative paths are only for connection: local"),
        ("hosts: {a: {app: {path: /x}, services: [{name: s, port: 0}]}}", "hosts.a.services[0].port", "out of range"),
        ("hosts: {a: {app: {path: /x}, services: [{name: s, manager: docker}]}}", "hosts.a.services[0].manager",
         "'docker' is not one of: systemd, process"),
        ("hosts: {a: {app: {path: /x}, services: [{name: s, manager: process}]}}", "hosts.a.services[0].command",
         "required for manager: process"),
        ("hosts: {a: {app: {path: /x}, services: [{name: s}, {name: s}]}}", "hosts.a.services[1].name", "duplicate"),
        ("hosts: {a: {app: {path: /x}, services: [{name: s, check: {url: http://x, methd: GET}}]}}",
         "hosts.a.services[0].check.methd", "did you mean 'method'"),
        ("hosts: {a: {app: {path: /x}, deps: [{run: npm ci}]}}", "hosts.a.deps[0].when", "is required"),
        ("hosts: {a: {app: {path: /x}, deps: [{when: ../x, run: y}]}}", "hosts.a.deps[0].when[0]", "'..'"),
        ("hosts: {a: {app: {path: /x}, cleanup: [{path: /t, glob: '*.pcm', older_than: soon}]}}",
         "hosts.a.cleanup[0].older_than", "not a duration"),
        ("hosts: {a: {app: {path: /x}, cleanup: [{path: /t, glob: '../*', older_than: 1d}]}}",
         "hosts.a.cleanup[0].glob", "file name pattern"),
        ("hosts: {a: {app: {path: /x}, schedule: {update: '*/5 * *'}}}", "hosts.a.schedule.update", "needs 5 fields"),
        ("hosts: {a: {app: {path: /x}, schedule: {upgrade: '@daily'}}}", "hosts.a.schedule.upgrade", "unknown key"),
        ("hosts: {a: {app: {path: /x}, thresholds: {cpu: 150}}}", "hosts.a.thresholds.cpu", "out of range 0-100"),
        ("hosts: {a: {app: {path: /x}, env: {'1BAD': x}}}", "hosts.a.env.1BAD", "not a valid environment variable"),
        ("hosts: {a: {app: {path: /x}, connection: telnet}}", "hosts.a.connection", "not one of: ssh, local"),
        ("defaults: {port: -1}\nhosts: {a: {app: {path: /x}}}", "defaults.port", "out of range"),
        ("hosts: {a: {app: {path: /x}}}\ndefault: b", "default", "unknown host or group 'b'"),
        ("hosts: {}", "hosts", "at least one host"),
        ("hosts: [a, b]", "hosts", "must be a mapping, not a list"),
        ("defaults: {}", "hosts", "is required"),
        ("hots: {}", "hots", "did you mean 'hosts'"),
        ("hosts: {'a b': {app: {path: /x}}}", "hosts.a b", "not a valid host or group name"),
        ("hosts: {a: {app: {path: /x}, user: 'root; id'}}", "hosts.a.user", "not a valid user name"),
        ("hosts: {a: {app: {path: /x}}}\ngroups: {a: [a]}", "groups.a", "same name as a host"),
    ],
)
def test_bad_inventory_names_key_and_problem(tmp_path, text, key, problem):
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        inventory.load(str(path))
    err = info.value
    assert err.exit_code == CONFIG
    assert err.path == str(path)
    assert err.key == key
    assert problem in err.problem
    assert str(err).startswith(f"{path}: {key}: ")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("hosts: {a: 1", "not valid YAML at line 1"),
        ("hosts:\n  a: {}\n  a: {}\n", "duplicate key 'a'"),
        ("", "is empty"),
        ("- just\n- a list\n", "must be a mapping"),
        ("hosts: !!python/object:os.system {}", "not valid YAML"),
    ],
)
def test_unparseable_files(tmp_path, text, problem):
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        inventory.load(str(path))
    assert problem in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        inventory.load(str(tmp_path / "nope.yml"))


def test_select_hosts_groups_default_and_unknown(tmp_path):
    inv = load_text(GOOD, tmp_path)
    assert [h.name for h in inv.select(None)] == ["web1"]
    assert [h.name for h in inv.select("web")] == ["web1", "web2"]
    assert [h.name for h in inv.select("web2,web,sandbox")] == ["web2", "web1", "sandbox"]
    assert [h.name for h in inv.select("all")] == ["web1", "web2", "sandbox"]
    with pytest.raises(UsageError) as info:
        inv.select("wbe1")
    assert "did you mean 'web1'" in str(info.value) and "known: web1, web2, sandbox, web" in str(info.value)


def test_known_lists_name_all_which_works(tmp_path):
    """`-H all` selects every host and completion offers it: every "known:"
    list says so (trial #20: it was left out)."""
    inv = load_text(GOOD, tmp_path)
    for spec in ("wbe1", "nope*", " "):
        with pytest.raises(UsageError) as info:
            inv.select(spec)
        assert str(info.value).rstrip(")").endswith("known: web1, web2, sandbox, web, all"), str(info.value)
    with pytest.raises(UsageError, match="did you mean 'all'"):
        inv.select("al")
    # a host (or group) of that name is listed once, as itself
    named = load_text("hosts:\n  all: {connection: local, app: {path: a}}\n  b: {connection: local, app: {path: b}}\n",
                      tmp_path)
    with pytest.raises(UsageError, match=r"known: all, b$"):
        named.select("c")


def test_no_default_with_several_hosts_is_a_usage_error(tmp_path):
    inv = load_text("hosts: {a: {app: {path: /x}}, b: {app: {path: /y}}}", tmp_path)
    with pytest.raises(UsageError, match="use -H NAME"):
        inv.select(None)
    single = load_text("hosts: {a: {app: {path: /x}}}", tmp_path, "one.yml")
    assert [h.name for h in single.select(None)] == ["a"]


def test_find_inventory_prefers_flag_then_env_then_parents(tmp_path, monkeypatch):
    (tmp_path / "hosts.yml").write_text("hosts: {}")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert inventory.find_inventory(None, str(sub)) == str(tmp_path / "hosts.yml")
    monkeypatch.setenv("FABOPS_INVENTORY", "/env.yml")
    assert inventory.find_inventory(None, str(sub)) == "/env.yml"
    assert inventory.find_inventory("/flag.yml", str(sub)) == "/flag.yml"


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)
keys = st.sampled_from(["hosts", "defaults", "groups", "default", "known_hosts", "app", "services", "port", "x"])


@given(st.dictionaries(keys, yaml_values, max_size=4))
def test_random_structures_never_traceback(data):
    import yaml

    text = yaml.safe_dump(data)
    try:
        inventory.loads(text, "fuzz.yml")
    except ConfigError as exc:
        assert exc.exit_code == CONFIG and str(exc).startswith("fuzz.yml")


@given(st.text(max_size=200))
def test_random_text_never_tracebacks(text):
    try:
        inventory.loads(text, "fuzz.yml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yml")


def test_cli_bad_inventory_exits_78_without_traceback(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("hosts:\n  find-to-do:\n    app: {path: /x}\n    services:\n      - {name: bot, port: 99999}\n")
    r = run_cli("hosts", "--check", "--inventory", str(path))
    assert r.returncode == 78
    assert r.stderr.strip() == f"fabops: {path}: hosts.find-to-do.services[0].port: 99999 is out of range 1-65535"
    assert "Traceback" not in r.stderr + r.stdout


def test_cli_env_var_selects_inventory(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(GOOD)
    r = run_cli("hosts", "--check", env={"FABOPS_INVENTORY": str(path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{path}: OK (3 hosts, 1 group)"  # counted in words (#24)


def test_every_problem_in_the_file_is_reported_not_only_the_first(tmp_path):
    from tests.conftest import run_cli

    path = tmp_path / "hosts.yml"
    path.write_text(
        "hosts:\n"
        "  a: {port: 99999, app: {path: /srv/a}, prot: 2}\n"
        "  b: {app: {path: relative}, services: [{name: 'x y'}]}\n"
        "groups:\n  g: [a, zz]\n"
        "default: nope\n")
    r = run_cli("hosts", "--check", "-i", str(path))
    assert r.returncode == 78 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    keys = [ln.split(": ")[2] for ln in lines]
    assert keys == ["hosts.a.prot", "hosts.a.port", "hosts.b.services[0].name", "hosts.b.app.path",
                    "groups.g[1]", "default"], lines
    assert all(ln.startswith(f"fabops: {path}: ") for ln in lines)


def test_every_problem_inside_one_service_is_reported(tmp_path):
    from fabops.errors import ConfigError

    path = tmp_path / "hosts.yml"
    path.write_text("hosts:\n  a:\n    app: {path: /srv/a}\n    services:\n"
                    "      - {name: bot, manager: sistemd, port: 99999, check: {url: 'ftp://x'}, watch: soon}\n")
    with pytest.raises(ConfigError) as info:
        inventory.load(str(path))
    keys = [k for k, _ in info.value.problems]
    assert keys == ["hosts.a.services[0].manager", "hosts.a.services[0].port", "hosts.a.services[0].check.url",
                    "hosts.a.services[0].watch"]
    assert "http:// or https://" in dict(info.value.problems)["hosts.a.services[0].check.url"]


def test_host_paths_are_the_one_way_to_a_file_in_fabops_home():
    """fabops/paths.py spells every file of the home; nothing else names
    them (#23: the names appeared as literals 15 times, and Host.at_home
    was a second way)."""
    import re

    from fabops import inventory
    from fabops.paths import HostPaths

    host = inventory.loads("hosts:\n  h: {address: h, app: {path: /srv/app}, home: '~/.fabops/app/'}\n", "x.yml").hosts["h"]
    assert host.paths.home == "~/.fabops/app" and host.paths.state == "~/.fabops/app/state.json"
    assert host.paths.run_file("r1", "out") == "~/.fabops/app/runs/r1.out"
    assert host.paths.venv_bin("fabops") == "~/.fabops/app/venv/bin/fabops"
    assert HostPaths.as_spelled("/").home == "/" and HostPaths.as_spelled("/srv/x//").home == "/srv/x"
    assert not hasattr(host, "at_home")
    names = ("state.json", "history.jsonl", "metrics.jsonl", "watch-end", "env.sh", "host.yml", "update.log",
             "health.log", "cron.log")
    found = []
    for p in (ROOT / "fabops").rglob("*.py"):
        if p.name == "paths.py":
            continue
        for n, line in enumerate(p.read_text().splitlines(), 1):
            # a path built from a name: join(..., "state.json") or "/state.json"
            if re.search(r'(join\([^)]*|/)(%s)"' % "|".join(re.escape(x) for x in names), line):
                found.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, found
    source = "\n".join(p.read_text() for p in (ROOT / "fabops").rglob("*.py") if p.name != "inventory.py")
    assert 'home.rstrip("/")' not in source and "home.rstrip('/')" not in source


def _with_extra(section: str) -> dict:
    """A valid inventory with an unknown key `zzz` in `section`."""
    svc = {"name": "bot", "manager": "process", "command": "python3 app.py",
           "check": {"url": "http://127.0.0.1:1/health"}}
    host = {"app": {"path": "/srv/app"}, "services": [svc], "deps": [{"when": ["a"], "run": "true"}],
            "cleanup": [{"path": "/tmp/x", "glob": "*.pcm", "older_than": "1d"}], "logs": {},
            "thresholds": {}, "schedule": {},
            "backup": {"dump": [{"name": "db", "command": "true"}], "keep": {},
                       "repository": {"url": "/srv/restic", "password_file": "/etc/pw"}},
            "hooks": {"on_failure": {"run": "true"}}, "heartbeat": {"url": "https://hc-ping.com/x"},
            "verify": {"signers": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]}}
    group = {"hosts": ["h"], "thresholds": {"cpu": 50}}
    data = {"hosts": {"h": host}, "groups": {"g": group}}
    where = {"top": data, "host": host, "group": group, "app": host["app"], "services[]": svc, "check": svc["check"],
             "deps[]": host["deps"][0], "cleanup[]": host["cleanup"][0], "logs": host["logs"],
             "thresholds": host["thresholds"], "schedule": host["schedule"], "backup": host["backup"],
             "dump[]": host["backup"]["dump"][0], "keep": host["backup"]["keep"],
             "repository": host["backup"]["repository"], "hooks": host["hooks"],
             "hook": host["hooks"]["on_failure"], "heartbeat": host["heartbeat"],
             "verify": host["verify"]}
    where[section]["zzz"] = 1
    return data


@pytest.mark.parametrize("section", sorted(__import__("fabops.validate", fromlist=["SCHEMA"]).SCHEMA))
def test_the_validator_reads_with_the_schema_table_docgen_documents(section):
    """One table: the keys a section accepts (named in its "unknown key"
    message) are exactly validate.SCHEMA's, which is what docgen documents."""
    import yaml

    from fabops.docgen import hosts_keys
    from fabops.validate import SCHEMA

    assert hosts_keys()[section] == tuple(SCHEMA[section])
    with pytest.raises(ConfigError) as info:
        inventory.loads(yaml.safe_dump(_with_extra(section)), "x.yml")
    assert "zzz: unknown key" in str(info.value)
    if len(", ".join(SCHEMA[section])) <= inventory.LISTED:
        assert "allowed: " + ", ".join(SCHEMA[section]) in str(info.value)
    else:  # a long list goes to the docs (#24), which test_docs checks against SCHEMA
        assert "unknown key (see docs/hosts.md)" in str(info.value) and "allowed" not in str(info.value)


def test_empty_values_mean_the_default_and_unit_needs_a_real_command():
    """`manager: ""`, `cwd: ""` and null values read as not given (as before
    the schema table); `unit: true` with an empty command is refused: it
    would install a unit with an empty ExecStart."""
    text = textwrap.dedent("""\
        hosts:
          h:
            app: {path: /srv/app}
            logs: {update: null}
            services: [{name: bot.service, manager: ""}]
            deps: [{when: [a], run: "true", cwd: ""}]
        """)
    host = inventory.loads(text, "x.yml").hosts["h"]
    assert host.services[0].manager == "systemd" and host.deps[0].cwd == "."
    assert "update" not in host.logs
    bad = text.replace('manager: ""', 'unit: true, command: ""')
    with pytest.raises(ConfigError, match=r"services\[0\]\.command: is required for unit: true"):
        inventory.loads(bad, "x.yml")


@pytest.mark.parametrize("value", ["$HOME/.nvm/bin:$PATH", "${PATH}:/opt/bin", "~/bin:/usr/bin", "/usr/bin:~/bin"])
def test_an_env_value_that_expects_expansion_is_refused(value):
    """Values are literal on the host and over SSH (Fabric's own inline env
    is quoted): `$PATH` would be those five characters."""
    text = f"hosts:\n  h:\n    app: {{path: /srv/app}}\n    env: {{PATH: '{value}'}}\n"
    with pytest.raises(ConfigError, match=r"hosts\.h\.env\.PATH: .*is not expanded"):
        inventory.loads(text, "x.yml")
    assert inventory.loads(text.replace(value, "/usr/local/bin:/usr/bin:/bin"), "x.yml").hosts["h"].env


def test_a_literal_dollar_elsewhere_is_fine():
    text = "hosts:\n  h:\n    app: {path: /srv/app}\n    env: {GREETING: 'costs $5', NODE_OPTIONS: '--a --b'}\n"
    assert inventory.loads(text, "x.yml").hosts["h"].env["GREETING"] == "costs $5"
