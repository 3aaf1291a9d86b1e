"""The managed crontab block on a real host: install, run under cron's
minimal environment, remove; and one test with the real cron daemon (ssh tier)."""
import json
import os
import shlex
import shutil
import subprocess
import time

import pytest
import yaml

from tests.conftest import REQUIRE_ALL, require, run_cli
from tests.harness.apps import RemoteApp

pytestmark = pytest.mark.ssh
FOREIGN = "# mine\n17 3 * * * /usr/local/bin/nightly --flag  \n"


@pytest.fixture
def deployed(ssh_host, tmp_path, deploy_env):
    app = RemoteApp(ssh_host, tmp_path, seed_venv=True)
    assert app.deploy_json()[0] == 0
    return app


def crontab(app):
    return app.host.ssh("crontab -l 2>/dev/null; true").stdout


def test_block_install_show_run_remove(deployed):
    h = deployed.host
    h.ssh(f"printf '%s' {shlex.quote(FOREIGN)} | crontab -")
    r = run_cli("cron", "-i", str(deployed.inventory), "--install", "--dry-run")
    assert r.returncode == 0 and "+# >>> fabops app >>>" in r.stdout, r.stdout + r.stderr
    assert r.stdout.startswith("[h1] would change crontab: fabops' block from hosts.yml\n"), r.stdout
    assert crontab(deployed) == FOREIGN
    r = run_cli("cron", "-i", str(deployed.inventory), "--install")
    assert r.returncode == 0 and "changed" in r.stdout
    text = crontab(deployed)
    assert text.startswith(FOREIGN) and "# >>> fabops app >>>" in text
    r = run_cli("cron", "-i", str(deployed.inventory), "--install")
    assert "crontab: ok" in r.stdout  # idempotent
    r = run_cli("cron", "-i", str(deployed.inventory))
    assert "local-update --trigger cron --splay 30" in r.stdout

    # run the managed update line exactly as cron would: minimal environment
    line = next(ln for ln in text.splitlines() if "local-update" in ln)
    command = line.split(" ", 5)[5]
    v2 = deployed.origin.good("2")
    command = command.replace("--splay 30", "--splay 0")
    r = h.ssh(f"env -i HOME=/root LOGNAME=root SHELL=/bin/sh PATH=/usr/bin:/bin sh -c {shlex.quote(command)}", check=False)
    assert r.returncode == 0, r.stderr
    assert deployed.state["deployed"] == v2 and deployed.version() == "2"
    assert deployed.history()[-1]["trigger"] == "cron"
    assert "deployed" in h.path("~/.fabops/app/cron.log").read_text()
    health_line = next(ln for ln in text.splitlines() if "health --fix" in ln).split(" ", 5)[5]
    r = h.ssh(f"env -i HOME=/root PATH=/usr/bin:/bin sh -c {shlex.quote(health_line)}", check=False)
    assert r.returncode == 0, r.stderr

    r = run_cli("cron", "-i", str(deployed.inventory), "--remove", "--dry-run")
    assert r.stdout.startswith("[h1] would change crontab: fabops' block removed; every other line stays\n"), r.stdout
    assert "fabops" in crontab(deployed)
    r = run_cli("cron", "-i", str(deployed.inventory), "--remove")
    assert r.returncode == 0 and crontab(deployed) == FOREIGN


def test_real_cron_daemon_deploys_a_pushed_commit(deployed, tmp_path):
    """cron itself, in the test host's private mount namespace, with its own
    spool, /etc/crontab, /etc/cron.d and /run: it can neither run nor touch
    this machine's jobs."""
    cron_bin = shutil.which("cron") or "/usr/sbin/cron"
    require(os.path.exists(cron_bin), "cron is not installed (apt-get install cron)")
    h = deployed.host
    inv = yaml.safe_load(deployed.inventory.read_text())
    inv["hosts"]["h1"]["schedule"] = {"update": "* * * * *", "health": "off", "clean": "off", "backup-env": "off"}
    inv["hosts"]["h1"]["backup"] = {"schedule": "off"}  # its line comes from backup.schedule
    # a value cron reads as syntax: an unescaped % ends a cron command (and
    # a line break, refused at load, would start a second job)
    inv["hosts"]["h1"]["env"] = {"PATH": "/usr/local/bin:/usr/bin:/bin:/opt/100%node/bin"}
    deployed.inventory.write_text(yaml.safe_dump(inv))
    r = run_cli("cron", "-i", str(deployed.inventory), "--install", "--splay", "0")
    assert r.returncode == 0, r.stderr
    jobs = [ln for ln in crontab(deployed).splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(jobs) == 1 and "100\\%node" in jobs[0], jobs
    v2 = deployed.origin.good("2")
    empty = tmp_path / "empty-crontab"
    empty.write_text("")
    script = (
        "mount -t tmpfs fabops-test /run && mount -t tmpfs fabops-test /etc/cron.d "
        f"&& mount --bind {empty} /etc/crontab && exec {cron_bin} -f -L 15"
    )
    proc = subprocess.Popen(
        ["nsenter", f"--mount=/proc/{h.pid}/ns/mnt", "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 150  # the next minute boundary, plus the run
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"cron exited with {proc.returncode}")
            try:
                if deployed.state.get("deployed") == v2:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(1)
        assert deployed.state["deployed"] == v2
        assert deployed.version() == "2"
        assert deployed.history()[-1]["trigger"] == "cron"
    finally:
        # what this cron started (the app, restarted by its local-update)
        # lives in cron's own mount namespace, which the sshd harness's
        # sweep of its namespace does not reach: end it here
        try:
            ns = os.readlink(f"/proc/{proc.pid}/ns/mnt")
        except OSError:
            ns = None
        proc.terminate()
        proc.wait(timeout=10)
        for entry in os.listdir("/proc") if ns else ():
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                        os.kill(int(entry), 9)
                except OSError:
                    pass
