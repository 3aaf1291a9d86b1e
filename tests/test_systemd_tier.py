"""Tier 3: the whole story on a booted systemd container named find-to-do,
reached through an ~/.ssh/config alias as the non-root ec2-user (systemd,
journald, cron and sudo for real)."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_CACHE, require, run_cli
from tests.harness import container
from tests.harness.sandbox import Origin

pytestmark = pytest.mark.systemd
UNIT = "voice-meeting-discord-bot.service"


@pytest.fixture(scope="module")
def base(tmp_path_factory, client_key):
    why = container.usable()
    require(why is None, why or "")
    container.sweep_stale()
    tarball = container.cached_rootfs(TEST_CACHE)
    dest = tmp_path_factory.mktemp("find-to-do") / "rootfs"
    container.prepare(tarball, dest, Path(str(client_key) + ".pub").read_text())
    yield dest
    shutil_rmtree(dest)


def shutil_rmtree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    d = tmp_path_factory.mktemp("origin")
    # root-owned: the container's ec2-user trusts it through safe.directory in
    # its global git config (set up by the harness), as a shared repo would be
    return Origin(d)


@pytest.fixture(scope="module")
def box(base, origin, tmp_path_factory):
    c = container.boot(base, {str(origin.bare): "/srv/origin.git"}, tmp_path_factory.mktemp("nspawn"))
    yield c
    c.stop()


@pytest.fixture
def alias(box, client_key, isolated_home, deploy_env, tmp_path):
    ssh = isolated_home / ".ssh"
    (ssh / "config").write_text(f"Host find-to-do\n  HostName {box.address}\n  User ec2-user\n  IdentityFile {client_key}\n")
    (ssh / "known_hosts").write_text(f"{box.address} {box.host_key}\n")
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"default": "find-to-do", "hosts": {"find-to-do": {
        "user": "ec2-user",
        "app": {"path": "/home/ec2-user/voice-meeting-bot"},
        "services": [{"name": UNIT, "unit": True, "command": "python3 app.py", "port": 3003, "timeout": "30s",
                      "settle": "500ms", "check": {"url": "http://127.0.0.1:3003/webhook/meeting-completed",
                                                   "method": "POST", "json": {"test": "health"}}}],
        "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
        "logs": {"update": "/var/log/voice-meeting-bot-update.log", "health": "/var/log/voice-meeting-bot-health.log"},
    }}}, sort_keys=False))
    return inv


def on_host(command, check=True):
    # OpenSSH reads the passwd home, not $HOME: point it at the test's files
    home = Path(os.environ["HOME"]) / ".ssh"
    return subprocess.run(["ssh", "-F", str(home / "config"), "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={home / 'known_hosts'}", "find-to-do", command],
                          capture_output=True, text=True, check=check, timeout=120)


def fab(inv, *args):
    return run_cli(*args, "-i", str(inv), timeout=600)


def test_find_to_do_lifecycle(alias, origin):
    inv = alias
    on_host("git clone --quiet /srv/origin.git ~/voice-meeting-bot && printf 'DISCORD_TOKEN=x\\nPORT=3003\\n' > ~/voice-meeting-bot/.env")

    r = fab(inv, "setup", "--yes", "--offline", "--json")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    items = {i["name"]: i for i in json.loads(r.stdout)["find-to-do"]["items"]}
    assert items[f"unit {UNIT}"]["status"] == "changed"
    assert items["sudoers"]["status"] == "changed" and items["crontab"]["status"] == "changed"
    assert "ExecStart=/bin/sh -c 'exec python3 app.py'" in on_host(f"cat /etc/systemd/system/{UNIT}").stdout
    assert on_host(f"systemctl is-enabled {UNIT}").stdout.strip() == "enabled"
    assert "local-update --splay 30" in on_host("crontab -l").stdout
    assert on_host("sudo -n visudo -cf /etc/sudoers.d/fabops-voice-meeting-bot").returncode == 0

    r = fab(inv, "deploy", "--offline", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["find-to-do"]["result"] == "deployed"
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"

    r = fab(inv, "monitor", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    svc = json.loads(r.stdout)["hosts"]["find-to-do"]["services"][0]
    assert svc["manager"] == "systemd" and svc["active"] and svc["pid"] and svc["http_status"] == 200

    r = fab(inv, "logs", "-n", "20")
    assert r.returncode == 0 and "listening on 3003" in r.stdout, r.stdout + r.stderr

    on_host(f"sudo -n systemctl stop {UNIT}")
    assert fab(inv, "health").returncode == 2
    r = fab(inv, "health", "--fix")
    assert r.returncode == 1, r.stdout + r.stderr
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"

    origin.crash("2")
    r = fab(inv, "deploy", "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    assert json.loads(r.stdout)["find-to-do"]["result"] == "rolled_back"
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    assert '"version": "1"' in on_host("curl -s http://127.0.0.1:3003/health").stdout.replace("'", '"')
    assert "ROLLED_BACK" in on_host("cat /var/log/voice-meeting-bot-update.log").stdout
