"""Tier 3: the whole story on a booted systemd container named find-to-do,
reached through an ~/.ssh/config alias as the non-root ec2-user (systemd,
journald, cron and sudo for real)."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require, run_cli
from tests.harness import container
from tests.harness.sandbox import Origin

pytestmark = pytest.mark.systemd
UNIT = "voice-meeting-discord-bot.service"


@pytest.fixture(scope="module")
def base(tmp_path_factory, client_key):
    why = container.usable()
    require(why is None, why or "")
    container.sweep_stale()
    # the session's bookworm rootfs, shared read-only (container.prepared)
    return container.prepared(container.SUITE, Path(str(client_key) + ".pub").read_text())


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


def find_to_do_alias(box, client_key, isolated_home) -> None:
    """`ssh find-to-do` as the team has it: an ~/.ssh/config alias for
    ec2-user on the booted container, its host key already known."""
    ssh = isolated_home / ".ssh"
    (ssh / "config").write_text(f"Host find-to-do\n  HostName {box.address}\n  User ec2-user\n  IdentityFile {client_key}\n")
    (ssh / "known_hosts").write_text(f"{box.address} {box.host_key}\n")


def bot_service(timeout: str, watch: str) -> dict:
    """The bot's service entry in hosts.yml: a unit fabops installs, its
    port and the POST check the legacy health script made."""
    return {"name": UNIT, "unit": True, "command": "python3 app.py", "port": 3003, "timeout": timeout,
            "settle": "500ms", "watch": watch,
            "check": {"url": "http://127.0.0.1:3003/webhook/meeting-completed", "method": "POST",
                      "json": {"test": "health"}}}


@pytest.fixture
def alias(box, client_key, isolated_home, deploy_env, tmp_path, request):
    schedule = getattr(request, "param", None)
    find_to_do_alias(box, client_key, isolated_home)
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"default": "find-to-do", "hosts": {"find-to-do": {
        "user": "ec2-user",
        "app": {"path": "/home/ec2-user/voice-meeting-bot"},
        "services": [bot_service("30s", "2s")],
        "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
        "logs": {"update": "/var/log/voice-meeting-bot-update.log", "health": "/var/log/voice-meeting-bot-health.log"},
        **({"schedule": schedule} if schedule else {}),
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


def first_deploy(inv):
    """The app cloned on the host, `setup` and a first `deploy` (offline):
    the bot's unit running its origin's head."""
    on_host("git clone --quiet /srv/origin.git ~/voice-meeting-bot && "
            "printf 'DISCORD_TOKEN=x\\nPORT=3003\\n' > ~/voice-meeting-bot/.env")
    r = fab(inv, "setup", "--yes", "--offline", "--json")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    r = fab(inv, "deploy", "--offline", "--json")
    assert r.returncode == 0, r.stdout + r.stderr


def test_find_to_do_lifecycle(alias, origin):
    inv = alias
    on_host("git clone --quiet /srv/origin.git ~/voice-meeting-bot && printf 'DISCORD_TOKEN=x\\nPORT=3003\\n' > ~/voice-meeting-bot/.env")

    r = fab(inv, "setup", "--yes", "--offline", "--json")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    items = {i["name"]: i for i in json.loads(r.stdout)["hosts"]["find-to-do"]["items"]}
    again = fab(inv, "setup", "--json")
    assert not [i for i in json.loads(again.stdout)["hosts"]["find-to-do"]["items"] if i["status"] in ("changed", "would change")]
    assert items[f"unit {UNIT}"]["status"] == "changed"
    assert items["sudoers"]["status"] == "changed" and items["crontab"]["status"] == "changed"
    launcher = f"/usr/local/libexec/fabops/voice-meeting-bot/{UNIT}"
    assert f"ExecStart={launcher}\n" in on_host(f"cat /etc/systemd/system/{UNIT}").stdout
    assert on_host(f"stat -c '%U %a' {launcher} $(dirname {launcher})").stdout.split() == ["root", "755", "root", "755"]
    assert "'python3 app.py'" in on_host(f"cat {launcher}").stdout
    assert on_host(f"systemctl is-enabled {UNIT}").stdout.strip() == "enabled"
    assert "local-update --trigger cron --splay 30" in on_host("crontab -l").stdout
    assert on_host("sudo -n visudo -cf /etc/sudoers.d/fabops-voice-meeting-bot").returncode == 0

    r = fab(inv, "deploy", "--offline", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["hosts"]["find-to-do"]["result"] == "deployed"
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"

    r = fab(inv, "monitor", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    svc = json.loads(r.stdout)["hosts"]["find-to-do"]["services"][0]
    assert svc["manager"] == "systemd" and svc["active"] and svc["pid"] and svc["http_status"] == 200

    st = json.loads(fab(inv, "status", "--json").stdout)["hosts"]["find-to-do"]
    assert st["deployed"] == on_host("git -C ~/voice-meeting-bot rev-parse HEAD").stdout.strip()

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
    assert json.loads(r.stdout)["hosts"]["find-to-do"]["result"] == "rolled_back"
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    assert '"version": "1"' in on_host("curl -s http://127.0.0.1:3003/health").stdout.replace("'", '"')
    assert "ROLLED_BACK" in on_host("cat /var/log/voice-meeting-bot-update.log").stdout


@pytest.mark.parametrize("alias", [{"update": "* * * * *", "health": "off", "clean": "off", "backup-env": "off"}],
                         indirect=True)
def test_real_cron_in_the_container_deploys_a_push(alias, origin):
    import time

    inv = alias
    assert fab(inv, "cron", "--install", "--splay", "0").returncode == 0
    new = origin.good("3")
    deadline = time.monotonic() + 150
    state = {}
    while time.monotonic() < deadline:
        out = on_host("cat ~/.fabops/voice-meeting-bot/state.json", check=False).stdout
        try:
            state = json.loads(out)
        except ValueError:
            state = {}
        if state.get("deployed") == new:
            break
        time.sleep(2)
    assert state.get("deployed") == new
    last = json.loads(on_host("tail -n 1 ~/.fabops/voice-meeting-bot/history.jsonl").stdout)
    assert last["trigger"] == "cron" and last["result"] == "deployed"
    # back to the normal schedule for the next tests
    assert fab(inv, "cron", "--remove").returncode == 0


def test_concurrent_deploys_from_laptop_ci_and_cron(alias, origin):
    import subprocess as sp
    import sys

    inv = alias
    new = origin.good("4")
    laptop = sp.Popen([sys.executable, "-m", "fabops.cli", "deploy", "-i", str(inv), "--json"], stdout=sp.PIPE, stderr=sp.PIPE,
                      text=True)
    ci = sp.Popen([sys.executable, "-m", "fabops.cli", "deploy", "-i", str(inv), "--json"], stdout=sp.PIPE, stderr=sp.PIPE,
                  text=True, env=dict(os.environ, CI="true"), stdin=sp.DEVNULL)
    cron = on_host("~/.fabops/voice-meeting-bot/venv/bin/fabops local-update -i ~/.fabops/voice-meeting-bot/host.yml --json",
                   check=False)
    outs = [laptop.communicate(timeout=300), ci.communicate(timeout=300)]
    codes = [laptop.returncode, ci.returncode, cron.returncode]
    # CI waits for whoever holds the lock (the laptop sends --trigger ci; SSH
    # does not forward $CI); a person's deploy and the hand-run local-update
    # may find it held (exit 4)
    assert ci.returncode == 0, (codes, outs, cron.stdout, cron.stderr)
    assert set(codes) <= {0, 4}, (codes, outs, cron.stdout, cron.stderr)
    history = [json.loads(x) for x in on_host("cat ~/.fabops/voice-meeting-bot/history.jsonl").stdout.splitlines()]
    assert len([h for h in history if h["to"] == new and h["result"] == "deployed"]) == 1
    assert on_host("git -C ~/voice-meeting-bot status --porcelain && git -C ~/voice-meeting-bot fsck --no-progress").returncode == 0


def test_link_cut_mid_deploy_host_finishes_on_its_own(alias, origin, box):
    import subprocess as sp
    import sys
    import time

    inv = alias
    slow = "#!/bin/sh\nset -e\nrm -rf vendor\nmkdir -p vendor\nsleep 6\ncp requirements.txt vendor/installed.txt\n"
    new = origin.push("v5 slow deps", {"VERSION": "5\n", "requirements.txt": "slow==5\n", "install-deps.sh": slow})
    proc = sp.Popen([sys.executable, "-u", "-m", "fabops.cli", "deploy", "-i", str(inv), "--liveness", "1"],
                    stdout=sp.PIPE, stderr=sp.PIPE, text=True, env=dict(os.environ, COLUMNS="200"))
    for line in proc.stdout:
        if "✓ checkout" in line:
            break
    sp.run(["ip", "link", "set", box.host_if, "down"], check=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        sp.run(["ip", "link", "set", box.host_if, "up"], check=True)
    assert proc.returncode == 3, (out, err)
    assert "lost contact" in err
    deadline = time.monotonic() + 120
    state = {}
    while time.monotonic() < deadline:
        r = on_host("cat ~/.fabops/voice-meeting-bot/state.json", check=False)
        try:
            state = json.loads(r.stdout)
        except ValueError:
            state = {}
        if state.get("deployed") == new and not state.get("in_progress"):
            break
        time.sleep(1)
    assert state.get("deployed") == new
    assert on_host("flock -n ~/.fabops/voice-meeting-bot/lock true").returncode == 0  # no stale lock
    last = json.loads(on_host("tail -n 1 ~/.fabops/voice-meeting-bot/history.jsonl").stdout)
    assert last["to"] == new and last["result"] == "deployed"


def test_bad_commit_rolls_back_and_notifies_once(alias, origin, box):
    from tests.harness.webhook import Hook

    hook = Hook(box.address.rsplit(".", 1)[0] + ".1")  # our side of the veth
    try:
        on_host(f"umask 077; echo FABOPS_DISCORD_WEBHOOK={hook.url} > ~/.fabops/voice-meeting-bot/notify.env")
        good = on_host("git -C ~/voice-meeting-bot rev-parse HEAD").stdout.strip()
        origin.crash("6")
        r = fab(alias, "deploy")
        assert r.returncode == 2, r.stdout + r.stderr
        assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
        assert on_host("git -C ~/voice-meeting-bot rev-parse HEAD").stdout.strip() == good
        assert len(hook.got) == 1 and "rolled back" in hook.got[0]["content"]
    finally:
        hook.close()
        on_host("rm -f ~/.fabops/voice-meeting-bot/notify.env")
    origin.good("7")  # the next tests start from a good head
    assert fab(alias, "deploy").returncode == 0


def test_self_healing_by_health_fix_and_by_the_cron_line(alias):
    inv = alias
    on_host(f"sudo -n kill -9 $(systemctl show -p MainPID --value {UNIT})")
    # Restart=on-failure brings a killed process back by itself; a stop does not
    on_host(f"sudo -n systemctl stop {UNIT}")
    assert fab(inv, "monitor").returncode == 2
    assert fab(inv, "health", "--fix").returncode == 1
    assert fab(inv, "monitor").returncode == 0
    on_host(f"sudo -n systemctl stop {UNIT}")
    fab(inv, "cron", "--install")
    line = next(ln for ln in on_host("crontab -l").stdout.splitlines() if "health --fix" in ln)
    command = line.split(" ", 5)[5]
    import shlex

    r = on_host(f"env -i HOME=/home/ec2-user LOGNAME=ec2-user PATH=/usr/bin:/bin sh -c {shlex.quote(command)}", check=False)
    active = on_host(f"systemctl is-active {UNIT}", check=False).stdout.strip()
    log = on_host("tail -n 5 ~/.fabops/voice-meeting-bot/cron.log", check=False).stdout
    assert active == "active", (r.returncode, r.stderr, log)
    assert fab(inv, "monitor").returncode == 0
    fab(inv, "cron", "--remove")


def test_emergency_reset_on_a_dirty_tree(alias):
    inv = alias
    on_host("cd ~/voice-meeting-bot && echo '# hotfix' >> app.py && echo notes > notes.txt")
    r = fab(inv, "reset", "--yes", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)["hosts"]["find-to-do"]
    assert on_host("git -C ~/voice-meeting-bot status --porcelain").stdout == ""
    saved = res["saved"]
    assert "# hotfix" in on_host(f"cat {saved}/tracked.patch").stdout
    assert fab(inv, "monitor").returncode == 0


def test_sudo_without_a_rule_fails_at_once_naming_it(alias, box):
    inv = alias
    on_host("sudo -n mv /etc/sudoers.d/fabops-voice-meeting-bot /tmp/dropin.bak && "
            "sudo -n mv /etc/sudoers.d/90-cloud-init-users /tmp/broad.bak")
    try:
        r = fab(inv, "restart")
        assert r.returncode == 3, r.stdout + r.stderr
        assert "sudo needs a password for `systemctl restart voice-meeting-discord-bot.service`" in r.stderr
    finally:
        # put the rules back as root, from inside the container (no sudo left for ec2-user)
        box.as_root("mv /tmp/dropin.bak /etc/sudoers.d/fabops-voice-meeting-bot; "
                    "mv /tmp/broad.bak /etc/sudoers.d/90-cloud-init-users", check=False)


ALLOWED = [f"/usr/bin/systemctl {verb} {UNIT}" for verb in ("start", "stop", "restart", "reset-failed")]
DENIED = [
    "/usr/bin/journalctl --vacuum-size=1K", "/usr/bin/journalctl --rotate", "/usr/bin/journalctl -D /etc",
    "/usr/bin/journalctl --file /var/log/journal", f"/usr/bin/journalctl -u {UNIT}",
    f"/usr/bin/journalctl -u {UNIT} --vacuum-size=1K", f"/usr/bin/systemctl status {UNIT}",
    f"/usr/bin/systemctl edit {UNIT}", "/usr/bin/systemctl set-environment EVIL=1",
    "/usr/bin/systemctl restart ssh.service", f"/usr/bin/systemctl restart {UNIT} ssh.service",
    f"/usr/bin/systemctl restart {UNIT} --no-block", "/usr/bin/systemctl daemon-reload",
    f"/usr/bin/systemctl enable {UNIT}", "/bin/sh", "/usr/bin/id", "/usr/bin/tee /etc/sudoers",
]


def test_the_drop_in_alone_allows_exactly_what_fabops_runs(alias, box):
    """With cloud-init's `NOPASSWD: ALL` moved aside, the drop-in is the only
    rule for ec2-user: sudo itself answers for every command fabops runs
    (allowed) and for a deny-list (refused), and the tasks that need root
    (restart) or the journal (logs, without sudo) still work."""
    inv = alias
    groups = on_host("id -nG").stdout.split()
    assert "systemd-journal" in groups, groups  # setup added it (lifecycle test)
    on_host("sudo -n mv /etc/sudoers.d/90-cloud-init-users /tmp/broad.bak")
    try:
        script = "; ".join(f"sudo -n -l {c} >/dev/null 2>&1; echo \"$? {c}\"" for c in ALLOWED + DENIED)
        answers = dict(line.split(" ", 1)[::-1] for line in on_host(script, check=False).stdout.splitlines())
        assert {c: answers[c] for c in ALLOWED} == {c: "0" for c in ALLOWED}, answers
        assert {c: answers[c] for c in DENIED} == {c: "1" for c in DENIED}, answers
        # the whole listing: the drop-in's four rules and nothing else
        listing = on_host("sudo -n -l", check=False).stdout
        rules = [ln.strip() for ln in listing.splitlines() if "NOPASSWD" in ln]
        assert sorted(r.split("NOPASSWD: ", 1)[1] for r in rules) == sorted(ALLOWED), listing

        r = fab(inv, "restart")
        assert r.returncode in (0, 1), r.stdout + r.stderr
        # the unit's journal, read as ec2-user (sudo journalctl is refused above)
        r = fab(inv, "logs", "-n", "50")
        assert r.returncode == 0 and "listening on 3003" in r.stdout, r.stdout + r.stderr
    finally:
        box.as_root("mv /tmp/broad.bak /etc/sudoers.d/90-cloud-init-users", check=False)


def test_a_regenerated_host_key_is_refused_by_every_task(alias):
    inv = alias
    on_host("sudo -n rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub && "
            "sudo -n ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && "
            "(sudo -n systemctl restart ssh >/dev/null 2>&1 &)")
    import time

    time.sleep(0.5)  # sshd restarts in the background after our session ends; the tasks below poll nothing
    for task in (("status",), ("monitor",), ("deploy",), ("logs", "-n", "1"), ("health",)):
        for _ in range(50):
            r = fab(inv, *task)
            if "HOST KEY CHANGED" in r.stderr + r.stdout:
                break
            time.sleep(0.2)
        assert r.returncode == 3, (task, r.stdout, r.stderr)
        text = r.stderr + r.stdout
        assert "HOST KEY CHANGED" in text and text.count("SHA256:") >= 2, task
