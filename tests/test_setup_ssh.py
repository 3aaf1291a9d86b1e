"""inv setup on a fresh test host seeded with the legacy system's leftovers (ssh tier)."""
import json
import os
import shlex
import subprocess

import pytest
import yaml

from tests.conftest import run_cli
from tests.harness.apps import RemoteApp

pytestmark = pytest.mark.ssh
LEGACY_CRON = "*/5 * * * * /home/ec2-user/voice-meeting-bot/scripts/auto-update.sh >> /var/log/voice-meeting-bot-update.log 2>&1\n"


@pytest.fixture
def fresh(ssh_host, tmp_path, deploy_env):
    app = RemoteApp(ssh_host, tmp_path)
    inv = yaml.safe_load(app.inventory.read_text())
    h = inv["hosts"]["h1"]
    h["services"].insert(0, {"name": "voice-meeting-python-api.service"})  # a systemd unit: sudoers rules
    h["logs"] = {"update": "/var/log/bot-update.log", "health": "/var/log/bot-health.log"}
    app.inventory.write_text(yaml.safe_dump(inv))
    # the legacy system: its cron line, its logrotate file, its /etc/sudoers lines
    ssh_host.ssh(f"printf '%s' {shlex.quote('# team job' + chr(10) + LEGACY_CRON)} | crontab -")
    ssh_host.path("/etc/logrotate.d/voice-meeting-bot").write_text("/var/log/bot-update.log {\n  daily\n}\n")
    sudoers = tmp_path / "sudoers"
    sudoers.write_text(open("/etc/sudoers").read() + "root ALL=(ALL) NOPASSWD: /usr/bin/systemctl restart voice-meeting-discord-bot.service\n")
    os.chmod(sudoers, 0o440)
    # only inside the test host's mount namespace: the real /etc/sudoers is never touched
    subprocess.run(["nsenter", f"--mount=/proc/{ssh_host.pid}/ns/mnt", "mount", "--bind", str(sudoers), "/etc/sudoers"],
                   check=True)
    return app


def setup(app, *args):
    r = run_cli("setup", "-i", str(app.inventory), "--json", *args, timeout=300)
    try:
        app.last = json.loads(r.stdout)["hosts"]["h1"]  # the whole value: --check's `would` too
        return r.returncode, {i["name"]: i for i in app.last["items"]}
    except (ValueError, KeyError):
        raise AssertionError(r.stdout + r.stderr)


def would(items):
    """What `would` must say for these items: each one that would change, in order."""
    return [{"action": "change", "target": n, "why": i["message"]} for n, i in items.items() if i["status"] == "would change"]


def test_check_then_setup_then_all_ok(fresh):
    h = fresh.host
    before = h.ssh("crontab -l").stdout
    code, items = setup(fresh, "--check")
    assert code == 1  # legacy leftovers are warnings
    assert items["legacy cron lines"]["status"] == "warning" and "auto-update.sh" in items["legacy cron lines"]["message"]
    assert items["legacy /etc/sudoers lines"]["status"] == "warning"
    assert items["legacy logrotate"]["status"] == "warning"
    assert items["crontab"]["status"] == "would change" and "+# >>> fabops app >>>" in items["crontab"]["diff"]
    assert items["sudoers"]["status"] == "would change" and "NOPASSWD" in items["sudoers"]["diff"]
    assert items["fabops install"]["status"] == "would change"
    # the dry run's one shape (#23): each item that would change, the diff kept in the item
    assert fresh.last["would"] == would(items)
    assert {"crontab", "sudoers", "fabops install"} <= {w["target"] for w in fresh.last["would"]}
    # --check changed nothing
    assert h.ssh("crontab -l").stdout == before
    assert not h.path("/etc/sudoers.d/fabops-app").exists()
    assert not h.path("~/.fabops/app/venv").exists()

    code, items = setup(fresh, "--yes")
    assert items["crontab"]["status"] == "changed" and items["sudoers"]["status"] == "changed"
    assert items["legacy cron lines"]["status"] == "changed" and items["legacy logrotate"]["status"] == "changed"
    tab = h.ssh("crontab -l").stdout
    assert tab.startswith("# team job\n# disabled by fabops setup: */5 * * * *")
    assert "local-update --trigger cron --splay 30" in tab
    assert h.path("~/.fabops/app/crontab.before-fabops").read_text() == before
    sud = h.path("/etc/sudoers.d/fabops-app")
    assert oct(sud.stat().st_mode & 0o777) == "0o440"
    assert "root ALL=(root) NOPASSWD: /usr/bin/systemctl restart voice-meeting-python-api.service" in sud.read_text()
    assert "voice-meeting-discord-bot" not in sud.read_text()  # process-managed: no rule
    assert not h.path("/etc/logrotate.d/voice-meeting-bot").exists()
    assert "rotate 8" in h.path("/etc/logrotate.d/fabops-app").read_text()
    assert h.path("/var/log/bot-update.log").exists()
    assert json.loads(h.path("~/.fabops/app/venv/fabops-install.json").read_text())["python"] == "3.11"

    code, items = setup(fresh)
    assert not [n for n, i in items.items() if i["status"] in ("changed", "would change")], items
    assert "would" not in fresh.last  # a real run says what it did, not a plan
    setup(fresh, "--check")
    assert fresh.last["would"] == []  # converged: nothing would change
    assert items["legacy /etc/sudoers lines"]["status"] == "warning"  # reported, never edited

    # a changed inventory: --check shows the diff and changes nothing
    inv = yaml.safe_load(fresh.inventory.read_text())
    inv["hosts"]["h1"]["schedule"] = {"update": "*/2 * * * *"}
    fresh.inventory.write_text(yaml.safe_dump(inv))
    tab = h.ssh("crontab -l").stdout
    code, items = setup(fresh, "--check")
    assert items["crontab"]["status"] == "would change"
    assert "+*/2 * * * * cd &&" in items["crontab"]["diff"] and "-*/5 * * * * cd &&" in items["crontab"]["diff"]
    assert items["host.yml"]["status"] == "would change"
    assert {"crontab", "host.yml"} <= {w["target"] for w in fresh.last["would"]} and fresh.last["would"] == would(items)
    assert h.ssh("crontab -l").stdout == tab


def test_legacy_commands_work_on_the_host(fresh):
    inv = yaml.safe_load(fresh.inventory.read_text())
    inv["hosts"]["h1"]["services"] = inv["hosts"]["h1"]["services"][1:]  # no systemd on this test host
    fresh.inventory.write_text(yaml.safe_dump(inv))
    setup(fresh, "--yes")
    r = fresh.host.ssh("export PATH=$HOME/.local/bin:$PATH; bot-update >/dev/null && monitor-bot --json", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    bot = next(s for s in data["hosts"]["h1"]["services"] if s["name"] == "bot")
    assert bot["active"] and bot["http_status"] == 200


def test_a_bad_sudoers_file_never_reaches_sudoers_d(fresh):
    from fabops import inventory
    from fabops.connection import connect
    from fabops.errors import CommandFailed
    from fabops.setup import put_file

    inv = inventory.load(str(fresh.inventory))
    host = inv.hosts["h1"]
    cxn = connect(host, inv)
    try:
        put_file(cxn, host, "/etc/sudoers.d/fabops-app", "root ALL=(root) NOPASSWD: /usr/bin/true\n", mode="0440",
                 root=True, validate="visudo")
        with pytest.raises(CommandFailed, match="validation failed"):
            put_file(cxn, host, "/etc/sudoers.d/fabops-app", "this is ! not sudoers\n", mode="0440", root=True,
                     validate="visudo")
    finally:
        cxn.close()
    assert fresh.host.path("/etc/sudoers.d/fabops-app").read_text() == "root ALL=(root) NOPASSWD: /usr/bin/true\n"
