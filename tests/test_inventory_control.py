"""No inventory value, in any section, may hold a control character
(docs/security.md, "One line, printable"): a line break in a value that
setup writes into a unit, the sudoers drop-in or the crontab starts a new
directive there, whatever the shell quoting says. This fuzzes every string
of an inventory that uses every key of validate.SCHEMA, keys included, and
proves each hostile copy is refused at load, naming that key (exit 78 from
the CLI)."""
import copy
import re

import pytest
import yaml

from fabops import inventory
from fabops.errors import CONFIG, ConfigError
from fabops.validate import HOOKS, SCHEMA
from tests.conftest import run_cli

pytestmark = pytest.mark.unit

CHECK = {"url": "http://127.0.0.1:3003/health", "method": "POST", "headers": {"Authorization": "Bearer t0ken"},
         "expect": 200, "timeout": "5s", "fail_count": 3, "fail_window": "10s"}
HOST = {
    "address": "10.0.0.5", "user": "deploy", "setup_user": "admin", "port": 22, "connection": "ssh", "identity_file": "~/.ssh/id_ed25519",
    "app": {"path": "/srv/app", "remote": "origin", "branch": "main", "url": "https://example.invalid/app.git"},
    "env": {"NODE_ENV": "production"},
    "services": [
        {"name": "bot.service", "manager": "systemd", "command": "node bot.js", "workdir": "node-bot", "port": 3003,
         "paths": ["node-bot/"], "check": {**copy.deepcopy(CHECK), "json": {"test": ["health"]}}, "timeout": "60s",
         "settle": "2s", "watch": "30s", "unit": True},
        {"name": "api", "manager": "process", "command": "python3 api.py", "check": {**copy.deepcopy(CHECK), "body": "ping"}},
    ],
    "deps": [{"when": ["package.json"], "run": "npm ci --omit=dev", "cwd": "node-bot"}],
    "logs": {"update": "/var/log/app/update.log", "health": "/var/log/app/health.log", "app": "~/app.log"},
    "thresholds": {"cpu": 10, "memory": 15, "disk": 80},
    "cleanup": [{"path": "/tmp/app", "glob": "*.pcm", "older_than": "1d"}],
    "schedule": {"update": "*/5 * * * *", "health": "*/10 * * * *", "clean": "@daily", "backup-env": "@weekly"},
    "env_file": "node-bot/.env", "env_template": "node-bot/.env.example", "backup_dir": "~/backup",
    "home": "~/.fabops/app", "metrics_dir": "/var/lib/prometheus/node-exporter", "node_exporter": "10.0.0.5:9100",
    "setup_command": "sh setup.sh",
    "backup": {"files": ["uploads", "/etc/app"], "exclude": ["*.tmp"], "sqlite": ["data/app.db"],
               "dump": [{"name": "pg", "command": "pg_dump app"}], "schedule": "@daily",
               "keep": {"daily": 7, "weekly": 4, "monthly": 6}, "repository_keep": {"monthly": 24},
               "repository": {"url": "sftp:backup@10.0.0.9:/srv/restic", "password_file": "~/.restic-password"}},
    # lifecycle hooks: shell code, written as {run, timeout} or as the script alone
    "hooks": {"before_restart": {"run": "./manage.py migrate\n./manage.py check", "timeout": "2m"},
              "after_deploy": "curl -fsS http://127.0.0.1:3003/health", "on_rollback": {"run": "echo rolled"},
              "on_failure": "echo failed"},
    "heartbeat": {"url": "https://hc-ping.com/0f3c", "fail_url": "https://hc-ping.com/0f3c/fail", "timeout": "5s"},
    # both kinds of signer: an SSH key's .pub line, an OpenPGP key's `openpgp BASE64 [comment]`
    "verify": {"signers": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example",
                           "openpgp mDMEaxcR6xYJKwYBBAHaRw8BAQdApCF4pqh5GQiL3XmkrzdxDPemVST8tNVoflGslT+67Yy0CUJvYiA8YkB4PoiQ"
                           "BBMWCAA4FiEEfDpkZYdV/CFbAXq1KoPavpCg190FAmsXEesCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AACgkQKoPa"
                           "vpCg193DagEAo4SXQ79BXwagLYP4Ee1lGJBS0aydHgYVUg1NwjzWqTQBAMyVkxk27n4u1p/m07t3AghnCiAbzvIlak06"
                           "urLJ2eQD bob@example"]},
    "promote_after": "30m",  # how long staging keeps a commit healthy before promote takes it (docs/environments.md)
}
# the demo's kind of host: `sandbox` is only valid with `connection: local`
BOX = {"connection": "local", "sandbox": True, "app": {"path": "/srv/box"}}
# a group with settings (docs/hosts.md, "Groups") sets every key a group may,
# so each goes through the fuzzing too (../shared threat model: a group's
# value is checked as a host's); its member is the local box, which its
# sandbox key needs
GROUP = {"hosts": ["box"], **{k: copy.deepcopy(v) for k, v in HOST.items() if k != "address"},
         "connection": "local", "sandbox": True, "environment": True}
FULL = {"defaults": {"user": "deploy"}, "hosts": {"web1": HOST, "box": BOX},
        "groups": {"web": ["web1"], "boxes": GROUP}, "group_order": ["boxes"], "default": "web1",
        "known_hosts": "known_hosts"}
# One of each kind: the line breaks that end a unit, sudoers or cron line,
# NUL, a tab, an escape that takes over a terminal, DEL and a plain C0.
CONTROLS = ["\n", "\r", "\x00", "\t", "\x1b", "\x7f", "\x01"]


def strings(data, key=""):
    """(path to the string, the key path an error names, is it a mapping
    key) for every string in `data`: values and mapping keys alike."""
    if isinstance(data, dict):
        for k, v in data.items():
            sub = f"{key}.{k}" if key else k
            yield (key, k), sub, True
            yield from ((p, kk, isk) for p, kk, isk in strings(v, sub))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from strings(v, f"{key}[{i}]")
    elif isinstance(data, str):
        yield key, key, False


def every_key(data, section="top"):
    """Which SCHEMA keys FULL uses, as (section, key)."""
    used = set()

    def walk(d, sec):
        for k, v in d.items():
            used.add((sec, k))
            sub = {"app": "app", "services": "services[]", "deps": "deps[]", "cleanup": "cleanup[]", "logs": "logs",
                   "thresholds": "thresholds", "schedule": "schedule", "check": "check", "backup": "backup",
                   "dump": "dump[]", "keep": "keep", "repository_keep": "keep",
                   "repository": "repository", "heartbeat": "heartbeat", "verify": "verify"}.get(k)
            sub = sub or {"hooks": "hooks", **{h: "hook" for h in HOOKS}}.get(k)
            if sec == "top" and k in ("hosts", "groups"):
                for h in v.values():
                    if isinstance(h, dict):
                        walk(h, "host" if k == "hosts" else "group")
            elif sub and isinstance(v, dict):
                walk(v, sub)
            elif sub and isinstance(v, list):
                for item in v:
                    walk(item, sub)

    walk(data, section)
    return used


def test_the_fuzzed_inventory_uses_every_key_of_every_section():
    inventory.loads(yaml.safe_dump(FULL), "full.yml")  # valid as it is
    wanted = {(sec, k) for sec, table in SCHEMA.items() for k in table}
    assert wanted - every_key(FULL) == set()


def poisoned(path, is_key, ch):
    data = copy.deepcopy(FULL)
    if is_key:
        parent_key, name = path
        node = lookup(data, parent_key)
        node[name[:1] + ch + name[1:]] = node.pop(name)
    else:
        parent, last = split(path)
        node = lookup(data, parent)
        node[last] = node[last][:1] + ch + node[last][1:]
    return data


def split(path):
    if path.endswith("]"):
        head, _, idx = path.rpartition("[")
        return head, int(idx[:-1])
    head, _, last = path.rpartition(".")
    return head, last


def lookup(data, path):
    node = data
    if not path:
        return node
    for part in path.replace("[", ".[").split("."):
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


CASES = [(p, k, isk) for p, k, isk in strings(FULL)]
# A hook's script is lines of text (validate.script_problem): a line break
# and a tab are its own; every other control character is refused in it too
SCRIPT = re.compile(r"\.hooks\.\w+(\.run)?$")
SCRIPT_ALLOWS = ("\n", "\t")


@pytest.mark.parametrize("ch", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_a_control_character_in_any_value_or_key_is_refused_naming_it(ch):
    assert len(CASES) > 70, "the fuzzed inventory lost its strings"
    for path, key, is_key in CASES:
        data = poisoned(path, is_key, ch)
        if not is_key and SCRIPT.search(key) and ch in SCRIPT_ALLOWS:
            inventory.loads(yaml.safe_dump(data), "script.yml")  # a script's own characters
            continue
        try:
            inventory.loads(yaml.safe_dump(data), "hostile.yml")
        except ConfigError as exc:
            err = exc
        else:
            pytest.fail(f"{key} (key: {is_key}) with {ch!r} was accepted")
        mine = [(k, p) for k, p in err.problems if "one line of printable text" in p
                or (SCRIPT.search(k) and "a hook is lines of printable text" in p)]
        assert mine, (key, repr(ch), err.problems)
        if is_key:
            # a poisoned key is named under its parent, shown repr'd
            assert all(p.startswith("key contains") for _, p in mine), (key, mine)
            assert any(k.startswith(path[0]) for k, _ in mine) or not path[0], (key, mine)
        else:
            assert [k for k, _ in mine] == [key], (key, repr(ch), err.problems)


def test_the_cli_exits_78_naming_the_key(tmp_path):
    data = copy.deepcopy(FULL)
    data["hosts"]["web1"]["services"][0]["command"] = "node bot.js\nUser=root"
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(data))
    r = run_cli("ping", cwd=tmp_path)
    assert r.returncode == CONFIG, r.stdout + r.stderr
    assert "hosts.web1.services[0].command" in r.stderr
    assert "line break" in r.stderr and "Traceback" not in r.stderr
