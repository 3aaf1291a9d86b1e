"""Hostile inventory values either fail validation (exit 78) or reach the real
shell of a real sshd as data: a canary file is never created (ssh tier)."""
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from fabops import inventory, maintenance, monitor, remote
from fabops.errors import ConfigError
from fabops.logs import log_command
from fabops.shell import with_env

pytestmark = pytest.mark.ssh
# In the test host's private home (a tmpfs in its own mount namespace).
CANARY = "/root/fabops-canary-{pid}"


def payloads(canary):
    cmd = f"touch {canary}"
    return st.one_of(
        st.sampled_from([
            f"$({cmd})", f"`{cmd}`", f"; {cmd}", f"&& {cmd}", f"| {cmd}", f"\n{cmd}\n", f"'; {cmd}; '",
            f'"; {cmd}; "', f"$({cmd})/x", f"x/$({cmd})", "-rf", "--help", "*", "?", "[a-z]", "~root",
            "ünïcødé/パス", "a" * 300, f"\\'$({cmd})", f"%s{cmd}%n",
        ]),
        st.builds(lambda a, b, c: a + b + c, st.text(max_size=8), st.sampled_from([f"$({cmd})", f"`{cmd}`", f";{cmd}"]),
                  st.text(max_size=8)),
    )


@pytest.fixture
def conn(ssh_host, tmp_path):
    from fabops.connection import connect

    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"hosts": {"h1": {**ssh_host.inventory_entry(), "app": {"path": "~/app"}}}}))
    inv = inventory.load(str(path))
    cxn = connect(inv.hosts["h1"], inv)
    cxn.run("mkdir -p ~/app", hide=True)
    yield ssh_host, cxn
    cxn.close()


def host_with(entry_update):
    entry = {"address": "h", "app": {"path": "~/app"}}
    for k, v in entry_update.items():
        if isinstance(v, dict) and isinstance(entry.get(k), dict):
            entry[k] = {**entry[k], **v}
        else:
            entry[k] = v
    return inventory.loads(yaml.safe_dump({"hosts": {"h1": entry}}), "fuzz.yml").hosts["h1"]


def check(conn, build, value):
    ssh_host, cxn = conn
    canary = CANARY.format(pid=os.getpid())
    try:
        cmd = build(value)
    except ConfigError:
        return  # refused by validation: exit 78
    cxn.run(cmd, hide=True, warn=True, timeout=20)
    assert not ssh_host.path(canary).exists(), (value, cmd)


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(value=payloads(CANARY.format(pid=os.getpid())))
def test_app_path_in_status_monitor_and_reset_plan(conn, value):
    def build(v):
        h = host_with({"app": {"path": "~/" + v.replace("\x00", "")}})
        return "\n".join([remote.status_cmd(h), maintenance.reset_plan_cmd(h), monitor.monitor_script(h)])

    check(conn, build, value)


@FUZZ
@given(value=payloads(CANARY.format(pid=os.getpid())))
def test_cleanup_path_and_glob(conn, value):
    def build(v):
        h = host_with({"cleanup": [{"path": "/tmp/" + v, "glob": v, "older_than": "1d"}]})
        return "\n".join(maintenance.clean_cmd(r.path, r.glob, r.older_than, dry_run=True) for r in h.cleanup)

    check(conn, build, value)


@FUZZ
@given(value=payloads(CANARY.format(pid=os.getpid())))
def test_log_paths_backup_dir_and_env_values(conn, value):
    def build(v):
        h = host_with({"logs": {"update": "/tmp/" + v}, "backup_dir": "~/" + v, "env": {"X": v}})
        return "\n".join([log_command(h, "update", None, 5, True, None, False),
                          maintenance.list_env_cmd(h), with_env("true", h.env)])

    check(conn, build, value)


@FUZZ
@given(value=payloads(CANARY.format(pid=os.getpid())))
def test_http_check_url_and_headers(conn, value):
    def build(v):
        h = host_with({"services": [{"name": "s", "manager": "process", "command": "true", "port": 9,
                                     "check": {"url": "http://127.0.0.1:9/" + v.replace(" ", ""), "headers": {"X": v.replace("\n", "")}}}]})
        return remote.http_check_cmd(h.services[0].check) + "; " + remote.port_listening_cmd(9)

    check(conn, build, value)


SHELL = "$`;|&'\"\n "


@given(value=payloads("/tmp/x"))
@settings(max_examples=60, deadline=None)
def test_refs_and_service_names_with_shell_characters_are_refused(value):
    from fabops.errors import UsageError
    from fabops.host.git import check_ref

    if any(ch in value for ch in SHELL):
        with pytest.raises(UsageError):
            check_ref(value)
        with pytest.raises(ConfigError):
            host_with({"services": [{"name": value}]})


def test_negative_control_an_unquoted_builder_does_trip_the_canary(conn):
    """The canary check can fail: an unquoted interpolation creates it."""
    ssh_host, cxn = conn
    canary = CANARY.format(pid=os.getpid()) + "-control"
    cxn.run(f"echo $(touch {canary})", hide=True, warn=True)
    assert ssh_host.path(canary).exists()


@FUZZ
@given(value=payloads(CANARY.format(pid=os.getpid())))
def test_git_service_cron_and_deploy_builders(conn, value):
    from fabops import cron, deploy
    from fabops.host import git, services

    def build(v):
        clean = v.replace("\x00", "")
        h = host_with({"app": {"path": "~/" + clean}, "home": "~/" + clean,
                       "services": [{"name": "s", "manager": "process", "command": "true", "workdir": clean or "x"}]})
        svc = h.services[0]
        cmds = [git.status_cmd(h.app.path), git.diff_names_cmd(h.app.path, "HEAD", "HEAD"),
                services.process_status_cmd(h.home, [svc]), services.process_stop_cmd(h.home, svc, grace=0.1),
                # the crontab line's command part, as cron's sh would run it (fabops is absent there: it fails)
                cron.job_line(h, "* * * * *", ["local-update"]).split(" ", 5)[5].replace("\\%", "%"),
                maintenance.rule_cmd(h, "true", clean or "x"),
                deploy.start_detached_cmd(h, "run1", [h.home + "/venv/bin/fabops", "local-update", "--actor", clean],
                                          h.home + "/runs/run1.host.yml", "hosts: {}\n").replace(" &\n", "\n")]
        return "\n".join(f"( {c} ) >/dev/null 2>&1" for c in cmds)

    check(conn, build, value)


def test_very_large_and_deep_inventories_never_traceback(tmp_path):
    big = "hosts:\n" + "".join(f"  h{i}: {{app: {{path: /srv/a{i}}}, port: {i % 65535 + 1}}}\n" for i in range(20000))
    inv = inventory.loads(big, "big.yml")
    assert len(inv.hosts) == 20000
    deep = "hosts: " + "[" * 5000 + "]" * 5000
    with pytest.raises(ConfigError):
        inventory.loads(deep, "deep.yml")
