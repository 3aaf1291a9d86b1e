"""The trust boundary on a booted host (docs/security.md): neither a value
in hosts.yml (which a pusher may edit) nor a shell as the deploy user
reaches root or a root-only file. Each case is the hostile value or the
deploy user's move, and the assertion that root was not reached, on
Debian bookworm and bullseye (systemd 247, Python 3.9).

The deploy user (ec2-user) starts with cloud-init's NOPASSWD: ALL, as on
EC2, so that setup can run; before the deploy user's own moves that rule is
removed, leaving exactly fabops' drop-in. Root's own steps in the container
(planting a root-only secret, a legacy unit) go through nsenter.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import require, run_cli
from tests.harness import container
from tests.harness.sandbox import Origin

pytestmark = pytest.mark.systemd
APP = "/home/ec2-user/voice-meeting-bot"
BOT = "voice-meeting-discord-bot.service"
PROBE = "trust-probe.service"
LEGACY = "legacy-root.service"
PLUS = "plus-probe.service"  # User= the deploy user, but an ExecStartPre=+ runs as root
SECRET = "rootsecret-7f3a"
# What systemd would rewrite in a unit line (%h, ${HOME}, \x) and sh's $$:
# the probe must print these characters exactly.
LITERAL = r"%h ${HOME} \x $$"
# one program (the launcher execs the command): env, then a shell of its own
PROBE_COMMAND = (f"env LIT='{LITERAL}' sh -c 'printf \"%s|%s|%s\\n\" \"$LIT\" \"$PROBE\" \"$(id -u)\" "
                 "> /home/ec2-user/probe.out; exec sleep 600'")
ENV_LINE = r'PROBE="a $b \"q\""'  # systemd's reading: a $b "q"


@pytest.fixture(scope="module", params=container.SUITES)
def box(request, tmp_path_factory, client_key):
    why = container.usable()
    require(why is None, why or "")
    origin = Origin(tmp_path_factory.mktemp(f"trust-origin-{request.param}"))
    with container.booted(request.param, tmp_path_factory, client_key, {str(origin.bare): "/srv/origin.git"}) as c:
        yield c


def entry() -> dict:
    return {
        "user": "ec2-user",
        "app": {"path": "~/voice-meeting-bot"},
        "services": [
            {"name": BOT, "unit": True, "command": "python3 app.py", "port": 3003},
            {"name": PROBE, "unit": True, "command": PROBE_COMMAND},
            {"name": LEGACY},
            {"name": "legacy-root"},  # the same unit, by the name systemctl completes (.service)
            {"name": PLUS},
        ],
        # an existing root-only log in a directory the deploy user cannot search
        "logs": {"update": "/var/log/vmb/update.log", "health": "/var/log/private0/health.log"},
    }


class Host:
    """The booted find-to-do, from the laptop (ssh as ec2-user, `fabops`)
    and from inside (root through nsenter)."""

    def __init__(self, box, home: Path, work: Path, client_key):
        self.box = box
        ssh = home / ".ssh"
        (ssh / "config").write_text(f"Host find-to-do\n  HostName {box.address}\n  User ec2-user\n"
                                    f"  IdentityFile {client_key}\n")
        (ssh / "known_hosts").write_text(f"{box.address} {box.host_key}\n")
        self.ssh = ssh
        self.inv = work / "hosts.yml"
        self.write(entry())

    def write(self, host: dict) -> None:
        self.inv.write_text(yaml.safe_dump({"default": "find-to-do", "hosts": {"find-to-do": host}}, sort_keys=False))

    def user(self, command: str, check=True) -> subprocess.CompletedProcess:
        r = subprocess.run(["ssh", "-F", str(self.ssh / "config"), "-o", "BatchMode=yes",
                            "-o", f"UserKnownHostsFile={self.ssh / 'known_hosts'}", "find-to-do", command],
                           capture_output=True, text=True, timeout=120)
        assert not check or r.returncode == 0, (command, r.stdout, r.stderr)
        return r

    def root(self, command: str, check=True) -> subprocess.CompletedProcess:
        return self.box.as_root(command, check)

    def fab(self, *args):
        return run_cli(*args, "-i", str(self.inv), timeout=600)

    def wait(self, command: str, what: str, timeout: float = 30) -> str:
        """Poll a root command until it prints something."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.root(command, check=False).stdout.strip()
            if out:
                return out
            time.sleep(0.2)
        raise AssertionError(f"{what}: nothing after {timeout} s")


@pytest.fixture(scope="module")
def prepared(box):
    """Root's side of the host before fabops: a root-only secret and marker,
    a legacy unit without User= that starts the deploy user's code, an
    existing log directory and a root-only file at a log path."""
    box.as_root(f"umask 077; printf 'PROBE={SECRET}\\n' > /root/trust-secret; printf 'marker\\n' > /root/marker")
    box.as_root("mkdir -m 0711 /var/log/vmb && mkdir -m 0700 /var/log/private0 && "
                "printf 'root-only\\n' > /var/log/private0/health.log && chmod 0600 /var/log/private0/health.log")
    box.as_root(f"printf '[Service]\\nUser=ec2-user\\nExecStartPre=+/home/ec2-user/prep.sh\\nExecStart=/bin/sleep 600\\n'"
                f" > /etc/systemd/system/{PLUS} && systemctl daemon-reload")
    box.as_root(f"printf '[Service]\\nExecStart=/usr/bin/python3 {APP}/app.py\\n' > /etc/systemd/system/{LEGACY} "
                 "&& systemctl daemon-reload")
    box.as_root("printf '#!/bin/sh\\n### BEGIN INIT INFO\\n# Provides: fabops-sysv\\n# Default-Start: 2 3 4 5\\n"
                "# Default-Stop: 0 1 6\\n### END INIT INFO\\nexit 0\\n' > /etc/init.d/fabops-sysv && "
                "chmod 0755 /etc/init.d/fabops-sysv && mkdir -p /usr/local/lib/systemd/system && "
                "printf '[Service]\\nExecStart=/bin/sleep 600\\n' > /usr/local/lib/systemd/system/fabops-local.service "
                "&& systemctl daemon-reload")
    return box


@pytest.fixture
def host(prepared, isolated_home, deploy_env, tmp_path, client_key):
    work = tmp_path / "ops"
    work.mkdir()
    return Host(prepared, isolated_home, work, client_key)


def marker_state(host) -> str:
    return host.root("stat -c '%U %a %Y' /root/marker /etc/shadow; sha256sum /root/marker /etc/shadow").stdout


def items(r) -> dict:
    return {i["name"]: i for i in json.loads(r.stdout)["hosts"]["find-to-do"]["items"]}


def test_setup_refuses_what_would_reach_root(host):
    before = marker_state(host)
    host.user(f"test -d {APP} || git clone --quiet /srv/origin.git {APP}")
    host.user(f"printf '%s\\n' PORT=3003 {shlex.quote(ENV_LINE)} > {APP}/.env")

    # a control character is refused at load, naming the key (exit 78)
    bad = entry()
    bad["services"][1]["command"] = "sleep 600\nUser=root\nExecStartPre=+/bin/sh -c 'id > /root/pwned'"
    host.write(bad)
    r = host.fab("setup", "--check")
    assert r.returncode == 78 and "hosts.find-to-do.services[1].command" in r.stderr, r.stdout + r.stderr
    # a log path setup would hand to the deploy user outside /var/log or ~/
    bad = entry()
    bad["logs"]["update"] = "/etc/shadow"
    host.write(bad)
    r = host.fab("setup", "--check")
    assert r.returncode == 78 and "hosts.find-to-do.logs.update" in r.stderr, r.stdout + r.stderr
    host.write(entry())

    # the legacy unit runs the deploy user's checkout as root: refused
    # (exit 78, naming it and the fix), and it gets no sudo rule
    r = host.fab("setup", "--yes", "--offline", "--json")
    assert r.returncode == 78, r.stdout + r.stderr
    found = items(r)
    for unit in (LEGACY, "legacy-root", PLUS):
        assert found[f"root unit {unit}"]["status"] == "refused", (unit, found.get(f"root unit {unit}"))
        assert "--allow-root-unit" in found[f"root unit {unit}"]["message"]
    assert found[f"unit {PROBE}"]["status"] == "changed" and found["sudoers"]["status"] == "changed"
    assert found["broad sudo"]["status"] == "warning" and "90-cloud-init-users" in found["broad sudo"]["message"]
    dropin = host.root("cat /etc/sudoers.d/fabops-voice-meeting-bot").stdout
    assert "legacy-root" not in dropin and PLUS not in dropin and f"restart {PROBE}" in dropin
    r = host.fab("setup", "--check", "--allow-root-unit", LEGACY, "--json")
    assert items(r)[f"root unit {LEGACY}"]["status"] == "warning", r.stdout
    assert items(r)["sudoers"]["status"] == "would change" and LEGACY in items(r)["sudoers"]["diff"]

    # logs: an existing directory keeps its mode, an existing root file is
    # neither chowned nor rewritten, a new log belongs to the deploy user
    assert host.root("stat -c '%U %a' /var/log/vmb").stdout.split() == ["root", "711"]
    assert host.root("stat -c '%U %a' /var/log/private0/health.log; cat /var/log/private0/health.log"
                     ).stdout.split() == ["root", "600", "root-only"]
    assert found["log health"]["status"] == "warning"
    assert host.root("stat -c '%U %a' /var/log/vmb/update.log").stdout.split() == ["ec2-user", "640"]
    # monitor shows the same finding
    r = host.fab("monitor", "--json")
    facts = json.loads(r.stdout)["hosts"]["find-to-do"]
    assert [u["unit"] for u in facts["root_units"]] == [LEGACY, "legacy-root", PLUS], facts["root_units"]
    assert any(LEGACY in f["message"] and f["level"] == "WARNING" for f in facts["findings"]), facts["findings"]
    assert marker_state(host) == before


def test_a_metrics_dir_gives_the_deploy_user_nothing_root_reads(host):
    """metrics_dir (docs/security.md, "The metrics directory"): a place
    systemd runs programs or reads settings from is refused at load; a link
    on the way to node_exporter's directory is reported and nothing is made
    through it; the real place gets only its last directory, the deploy
    user's, and nothing else on the path changes owner or mode."""
    before, paths = marker_state(host), ("/etc/systemd/system-generators /etc/systemd/system/x.service.d "
                                         "/etc/systemd/system.conf.d /etc/systemd/textfile_collector /var/lib")
    look = f"for p in {paths}; do stat -c '%n %U %a' $p 2>/dev/null || echo $p absent; done"
    seen = host.root(look).stdout
    host.user(f"test -d {APP} || git clone --quiet /srv/origin.git {APP}")
    base = {"user": "ec2-user", "app": {"path": "~/voice-meeting-bot"}}
    for hostile in ("/etc/systemd/system-generators", "/etc/systemd/system/x.service.d", "/etc/systemd/system.conf.d"):
        host.write({**base, "metrics_dir": hostile})
        r = host.fab("setup", "--yes", "--offline")
        assert r.returncode == 78 and "hosts.find-to-do.metrics_dir" in r.stderr, r.stdout + r.stderr
    textfile = "/var/lib/node_exporter/textfile_collector"
    host.write({**base, "metrics_dir": textfile})
    host.root("ln -sfn /etc/systemd /var/lib/node_exporter")
    found = items(host.fab("setup", "--yes", "--offline", "--json"))["metrics dir"]
    assert found["status"] == "warning" and "/var/lib/node_exporter is a symbolic link" in found["message"], found
    host.root("rm /var/lib/node_exporter && install -d -m 0755 /var/lib/node_exporter")
    found = items(host.fab("setup", "--yes", "--offline", "--json"))["metrics dir"]
    assert found["status"] == "changed", found
    assert host.root(f"stat -c '%U %a' {textfile} /var/lib/node_exporter").stdout.split() == \
        ["ec2-user", "755", "root", "755"]
    host.root("rm -r /var/lib/node_exporter")
    assert host.root(look).stdout == seen and marker_state(host) == before


def test_the_deploy_user_is_pinned_against_a_hosts_yml_edit(host):
    """A pusher who edits `user:` to root (or to the setup user) gets
    exit 78 before anything is written; the operator's --change-user is
    the one way to move it."""
    tab = host.root("crontab -l -u root 2>/dev/null || true").stdout
    bad = entry()
    bad["user"], bad["setup_user"] = "root", "ec2-user"  # setup still logs in as the operator's user
    host.write(bad)
    try:
        r = host.fab("setup", "--yes", "--offline", "--json")
        assert r.returncode == 78, r.stdout + r.stderr
        found = items(r)
        assert found["deploy user"]["status"] == "refused" and "--change-user" in found["deploy user"]["message"]
        assert list(found) == ["deploy user"], found  # nothing else ran
        assert "User=ec2-user\n" in host.root(f"cat /etc/systemd/system/{PROBE}").stdout
        assert host.root("crontab -l -u root 2>/dev/null || true").stdout == tab
    finally:
        host.write(entry())


def test_system_units_and_a_namesake_app_are_refused(host):
    """hosts.yml cannot make setup replace a package's unit (the SSH server,
    by `unit: true`) or grant a right to stop the units logins need; a
    package unit an app relies on (cron) gets its rights. A second app whose
    directory has the same name cannot take over the first one's drop-in,
    launchers and logrotate file."""
    bad = entry()
    bad["services"] += [{"name": "ssh.service", "unit": True, "command": "sleep 600"},
                        # the system's units that are no package's: a SysV
                        # script's (generated at boot) and a local install's
                        {"name": "fabops-sysv.service", "unit": True, "command": "sleep 600"},
                        {"name": "fabops-local.service", "unit": True, "command": "sleep 600"},
                        {"name": "dbus.service"}, {"name": "cron.service"}]
    host.write(bad)
    try:
        r = host.fab("setup", "--yes", "--offline", "--json")
        assert r.returncode == 78, r.stdout + r.stderr
        found = items(r)
        assert found["unit ssh.service"]["status"] == "refused", found["unit ssh.service"]
        assert "a unit the system already has (" in found["unit ssh.service"]["message"]
        for name, source in (("fabops-sysv.service", "/etc/init.d/fabops-sysv"),
                             ("fabops-local.service", "/usr/local/lib/systemd/system/fabops-local.service")):
            assert found[f"unit {name}"]["status"] == "refused", found[f"unit {name}"]
            assert source in found[f"unit {name}"]["message"], found[f"unit {name}"]
            assert host.root(f"test -e /etc/systemd/system/{name}", check=False).returncode == 1
        assert found["unit dbus.service"]["status"] == "refused", found["unit dbus.service"]
        assert found["unit cron.service"]["status"] == "ok", found["unit cron.service"]
        assert host.root("test -e /etc/systemd/system/ssh.service", check=False).returncode == 1
        assert host.root("systemctl is-active ssh.service").stdout.strip() == "active"
        dropin = host.root("cat /etc/sudoers.d/fabops-voice-meeting-bot").stdout
        assert "ssh.service" not in dropin and "dbus.service" not in dropin, dropin
        assert "restart cron.service" in dropin and f"# fabops app: {APP}\n" in dropin, dropin
    finally:
        host.write(entry())
    r = host.fab("setup", "--yes", "--offline", "--json")  # back to the module's drop-in
    assert items(r)["sudoers"]["status"] == "changed", r.stdout

    twin = entry()
    twin["app"] = {"path": "~/other/voice-meeting-bot"}
    host.write(twin)
    try:
        r = host.fab("setup", "--check", "--json")
        assert r.returncode == 78, r.stdout + r.stderr
        found = items(r)
        for name in ("sudoers", f"launcher {PROBE}"):
            assert found[name]["status"] == "refused", (name, found[name])
            assert f"the app at {APP}" in found[name]["message"], found[name]
        # a drop-in from a release before the app line: whose it is cannot
        # be known, so the twin may take it, but never silently
        host.root("sed -i '/^# fabops app: /d' /etc/sudoers.d/fabops-voice-meeting-bot")
        r = host.fab("setup", "--check", "--json")
        sudoers = items(r)["sudoers"]
        assert sudoers["status"] == "would change", sudoers
        assert "adopted: an earlier fabops wrote it without naming its app" in sudoers["message"], sudoers
        assert "it now names /home/ec2-user/other/voice-meeting-bot" in sudoers["message"], sudoers
    finally:
        host.write(entry())
    r = host.fab("setup", "--yes", "--offline", "--json")  # the module's own app takes it back, saying so
    assert "adopted" in items(r)["sudoers"]["message"], items(r)["sudoers"]
    assert f"# fabops app: {APP}\n" in host.root("cat /etc/sudoers.d/fabops-voice-meeting-bot").stdout


def test_a_unit_runs_its_command_as_written_and_as_the_deploy_user(host):
    unit = f"/etc/systemd/system/{PROBE}"
    r = host.root(f"systemd-analyze verify {unit} 2>&1", check=False)
    assert r.returncode == 0, r.stdout
    text = host.root(f"cat {unit}").stdout
    assert "EnvironmentFile" not in text and "%" not in text and "User=ec2-user\n" in text
    host.user("rm -f ~/probe.out")
    host.user(f"sudo -n systemctl restart {PROBE}")  # the drop-in's rule
    out = host.wait("cat /home/ec2-user/probe.out 2>/dev/null", "the probe's output")
    assert out == f'{LITERAL}|a $b "q"|1000', out
    # every process of the unit runs as the deploy user
    cgroup = host.root(f"systemctl show -p ControlGroup --value {PROBE}").stdout.strip()
    pids = host.root(f"cat /sys/fs/cgroup{cgroup}/cgroup.procs 2>/dev/null || "
                     f"cat /sys/fs/cgroup/systemd{cgroup}/cgroup.procs").stdout.split()
    assert pids
    uids = {host.root(f"awk '/^Uid:/ {{print $2}}' /proc/{pid}/status").stdout.strip() for pid in pids}
    assert uids == {"1000"}, uids


def test_the_deploy_user_gets_nothing_from_a_root_only_env_file(host):
    host.root("rm -f /etc/sudoers.d/90-cloud-init-users")  # from here on: only fabops' drop-in
    try:
        allowed = host.user("sudo -n -l").stdout
        rules = re.findall(r"\(root\) NOPASSWD: (.+)", allowed)
        dropin = sorted(f"/usr/bin/systemctl {verb} {unit}" for unit in (BOT, PROBE)
                        for verb in ("start", "stop", "restart", "reset-failed"))
        assert sorted(r.strip() for rule in rules for r in rule.split(", ")) == dropin, allowed
        assert host.user(f"sudo -n systemctl restart {LEGACY}", check=False).returncode != 0
        assert host.user("sudo -n systemctl edit " + PROBE, check=False).returncode != 0

        before = marker_state(host)
        host.user(f"mv {APP}/.env {APP}/.env.real && ln -s /root/trust-secret {APP}/.env && rm -f ~/probe.out")
        since = host.root("date +%s").stdout.strip()
        host.user(f"sudo -n systemctl restart {PROBE}", check=False)
        # the start ends one way or the other: the launcher's refusal, or a
        # probe that got an environment (what systemd's root read gave it)
        host.wait(f"journalctl -u {PROBE} --since @{since} --no-pager | grep 'cannot read'; "
                  "cat /home/ec2-user/probe.out 2>/dev/null", "the probe's start")
        out = host.root("cat /home/ec2-user/probe.out 2>/dev/null", check=False).stdout
        leaked = host.root(f"grep -l {SECRET} /proc/[0-9]*/environ 2>/dev/null || true").stdout.split()
        assert SECRET not in out and leaked == [], (out, leaked)
        said = host.root(f"journalctl -u {PROBE} --since @{since} --no-pager").stdout
        assert "cannot read" in said and "Permission denied" in said, said
        assert marker_state(host) == before
    finally:
        host.user(f"test -e {APP}/.env.real && mv -f {APP}/.env.real {APP}/.env || true", check=False)
        host.root("printf 'ec2-user ALL=(ALL) NOPASSWD:ALL\\n' > /etc/sudoers.d/90-cloud-init-users && "
                  "chmod 0440 /etc/sudoers.d/90-cloud-init-users")


def test_a_separate_setup_user_leaves_the_deploy_user_only_the_drop_in(host):
    """setup_user: setup logs in as ec2-user (cloud-init's NOPASSWD: ALL)
    and sets up `deploy`, which has no sudo rule of its own: its venv,
    host.yml and crontab are its own files, and afterwards sudo lets it do
    exactly what the drop-in lists, and deploys work as it."""
    host.root("id deploy >/dev/null 2>&1 || (useradd -m -s /bin/bash deploy && install -d -m 0700 -o deploy -g deploy "
              "/home/deploy/.ssh && install -m 0600 -o deploy -g deploy /home/ec2-user/.ssh/authorized_keys "
              "/home/deploy/.ssh/ && install -m 0644 -o deploy -g deploy /home/ec2-user/.gitconfig /home/deploy/)")
    host.root("rm -rf /home/deploy/voice-meeting-bot && su deploy -c 'git clone --quiet /srv/origin.git "
              "/home/deploy/voice-meeting-bot && printf \"DISCORD_TOKEN=x\\nPORT=3013\\n\" > /home/deploy/voice-meeting-bot/.env'")
    bot = "deploy-bot.service"
    host.write({"user": "deploy", "setup_user": "ec2-user", "app": {"path": "~/voice-meeting-bot"},
                "services": [{"name": bot, "unit": True, "command": "python3 app.py", "port": 3013, "timeout": "30s",
                              "settle": "300ms", "watch": "1s",
                              "check": {"url": "http://127.0.0.1:3013/health"}}],
                "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
                "logs": {"update": "/var/log/deploy-bot/update.log"}})
    login_tab = host.root("crontab -l -u ec2-user 2>/dev/null || true").stdout
    r = host.fab("setup", "--yes", "--offline", "--json")
    assert r.returncode == 78 and "deploy user" in items(r), r.stdout  # pinned to ec2-user by the earlier setup
    r = host.fab("setup", "--yes", "--offline", "--json", "--change-user")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    found = items(r)
    assert "broad sudo" not in found, found.get("broad sudo")
    assert found["fabops install"]["status"] == "changed" and found["crontab"]["status"] == "changed"
    home = "/home/deploy/.fabops/voice-meeting-bot"
    owners = host.root(f"stat -c '%U %a' {home} {home}/host.yml /var/log/deploy-bot/update.log; "
                       f"find {home}/venv ! -user deploy | head -n 3").stdout
    assert owners.split() == ["deploy", "700", "deploy", "600", "deploy", "640"], owners
    assert "local-update" in host.root("crontab -l -u deploy").stdout
    assert host.root("crontab -l -u ec2-user 2>/dev/null || true").stdout == login_tab  # the setup user's is not touched
    assert "User=deploy\n" in host.root(f"cat /etc/systemd/system/{bot}").stdout
    again = host.fab("setup", "--json")
    assert not [i for i in items(again).values() if i["status"] in ("changed", "would change", "refused")], \
        again.stdout

    listed = host.root("sudo -l -U deploy").stdout
    rules = sorted(r.strip() for rule in re.findall(r"\(root\) NOPASSWD: (.+)", listed) for r in rule.split(", "))
    assert rules == sorted(f"/usr/bin/systemctl {verb} {bot}" for verb in ("start", "stop", "restart", "reset-failed")), \
        listed
    assert "ALL" not in listed.split("may run the following commands")[-1], listed

    # the team deploys as `deploy` itself: same inventory, its login
    r = host.fab("deploy", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert host.root(f"systemctl show -p MainPID --value {bot} | xargs -I{{}} stat -c %U /proc/{{}}").stdout.strip() \
        == "deploy"
    host.root(f"systemctl stop {bot}")
