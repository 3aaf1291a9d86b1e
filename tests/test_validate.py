import subprocess

import pytest
import yaml
from hypothesis import given, strategies as st

from fabops.validate import SHELL_META, cron_problem, parse_duration, ref_problem, relpath_problem, unit_problem


def git_accepts(ref: str) -> bool:
    r = subprocess.run(["git", "check-ref-format", "--allow-onelevel", ref], capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize(
    "ref, ok",
    [
        ("main", True), ("release/1.2", True), ("v1.0", True), ("feature/x-y_z", True),
        ("", False), ("-rf", False), ("a..b", False), ("a b", False), ("a~1", False), ("a^", False),
        ("a:b", False), ("a?", False), ("a*", False), ("a[", False), ("a\\b", False), ("/a", False),
        ("a/", False), ("a//b", False), ("a.", False), (".a", False), ("a/.b", False), ("a.lock", False),
        ("a/b.lock/c", False), ("a@{1}", False), ("@", False), ("$(touch x)", False), ("a\nb", False),
        ("a;rm", False), ("$(id)", False),  # legal to git, refused by us as defence in depth
    ],
)
def test_ref_problem_examples(ref, ok):
    assert (ref_problem(ref) is None) is ok


@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=12))
def test_ref_problem_agrees_with_git(ref):
    # Our pure check is at least as strict as git's, and only stricter for a
    # leading '-' and shell metacharacters.
    ours = ref_problem(ref) is None
    if ours:
        assert git_accepts(ref), ref
    elif ref and not ref.startswith("-") and not any(ch in SHELL_META for ch in ref):
        assert not git_accepts(ref), ref


@pytest.mark.parametrize(
    "expr, ok",
    [
        ("*/5 * * * *", True), ("0 3 * * 1-5", True), ("@daily", True), ("15,45 */2 1 jan mon", True),
        ("* * * *", False), ("@sometimes", False), ("61 * * * *", False), ("* * * * * %", False),
        ("* * * * 8", False), ("*/x * * * *", False), ("", False), ("* * * * *\nrm -rf /", False),
    ],
)
def test_cron_problem(expr, ok):
    assert (cron_problem(expr) is None) is ok


@pytest.mark.parametrize(
    "text, seconds",
    [("1d", 86400), ("90s", 90), ("15m", 900), ("2h", 7200), ("1w", 604800), ("250ms", 0.25), (30, 30), ("12", 12)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-1d", "1y", True, [], None])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    "name, ok",
    [("voice-meeting-discord-bot.service", True), ("app@1.service", True), ("bot", True),
     ("bot;rm -rf /", False), ("-bot", False), ("a b", False), ("$(id)", False), ("", False), ("a`b`", False)],
)
def test_unit_problem(name, ok):
    assert (unit_problem(name) is None) is ok


@pytest.mark.parametrize("path, ok", [("node-bot/", True), ("a/b.txt", True), ("/etc", False), ("../x", False), ("-x", False)])
def test_relpath_problem(path, ok):
    assert (relpath_problem(path) is None) is ok


PATH_FIELDS = {
    # field: (where it goes in a host entry, a good value)
    "app.path": (lambda v: {"app": {"path": v}}, "/home/ec2-user/voice-meeting-bot"),
    "home": (lambda v: {"home": v}, "~/.fabops/bot"),
    "env_file": (lambda v: {"env_file": v}, "node-bot/.env"),
    "env_template": (lambda v: {"env_template": v}, "node-bot/.env.example"),
    "backup_dir": (lambda v: {"backup_dir": v}, "~/backup"),
    "logs.update": (lambda v: {"logs": {"update": v}}, "/var/log/bot-update.log"),
    "logs.app": (lambda v: {"logs": {"app": v}}, "/var/log/bot.log"),
    "cleanup[0].path": (lambda v: {"cleanup": [{"path": v, "glob": "*.pcm", "older_than": "1d"}]}, "/tmp/bot/temp"),
    "deps[0].cwd": (lambda v: {"deps": [{"when": ["package.json"], "run": "npm ci", "cwd": v}]}, "node-bot"),
    "services[0].workdir": (lambda v: {"services": [{"name": "bot.service", "workdir": v}]}, "node-bot"),
}
HOSTILE_PATHS = ["bot$(id>&2)x", "x'$(id>&2)'", "a b", "a;b", "a|b", "a`id`", "a\\b", "a*", "a?", "a%b", "a\"b",
                 "a\nb", "a&b", "a>b", "a<b", "a(b)", "a{b}", "a#b", "a!b", "../etc", "-rf"]


@pytest.mark.parametrize("field", sorted(PATH_FIELDS))
def test_every_path_field_is_strict(field):
    """Each path-like field takes letters, digits and . _ - / + @ , = only
    (and a leading ~/ for host paths); the file's problems name the field."""
    from fabops import inventory
    from fabops.errors import ConfigError

    place, good = PATH_FIELDS[field]

    def load(value):
        entry = {"address": "h", "app": {"path": "/srv/app"}}
        for k, v in place(value).items():
            entry[k] = {**entry[k], **v} if isinstance(v, dict) and isinstance(entry.get(k), dict) else v
        return inventory.loads(yaml.safe_dump({"hosts": {"h1": entry}}), "hosts.yml")

    load(good)  # the good value loads
    for bad in HOSTILE_PATHS:
        value = bad if bad.startswith("-") else (
            ("/srv/" + bad) if good.startswith("/") else (("~/" + bad) if good.startswith("~/") else bad))
        with pytest.raises(ConfigError) as err:
            load(value)
        assert f"hosts.h1.{field}" in str(err.value), (field, value, str(err.value))


def test_the_reviewed_app_path_is_refused_by_hosts_check(tmp_path):
    """The review's example: `hosts --check` said OK, and setup ran `id`."""
    from tests.conftest import run_cli

    inv = tmp_path / "hosts.yml"
    inv.write_text('hosts:\n  h1: {address: h, app: {path: "/home/ec2-user/bot$(id>&2)x"}}\n')
    r = run_cli("hosts", "--check", "-i", str(inv))
    assert r.returncode == 78 and "hosts.h1.app.path" in r.stderr and "'$'" in r.stderr, r.stdout + r.stderr
