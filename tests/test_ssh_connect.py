"""Real connections through a real OpenSSH sshd on loopback (ssh tier)."""
import json
import os
import signal
from pathlib import Path

import pytest

from fabops import inventory
from fabops.connection import connect
from fabops.errors import HostKeyError, UnreachableError
from tests.conftest import run_cli, write_inventory
from tests.harness.sshd import free_port

pytestmark = pytest.mark.ssh


def test_ping_over_real_sshd(ssh_host, inventory_for):
    path = inventory_for(h1=ssh_host)
    r = run_cli("ping", "-H", "h1", "--json", "-i", str(path))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)["hosts"]
    assert data["h1"]["user"] == "root"
    assert data["h1"]["kernel"].startswith("Linux")
    assert data["h1"]["python"]


def test_host_runs_in_its_own_world(ssh_host, inventory_for):
    """Writes to the host's home land in its private tmpfs, not on this machine."""
    inv = inventory.load(str(inventory_for(h1=ssh_host)))
    cxn = connect(inv.hosts["h1"], inv)
    try:
        marker = f"fabops-world-{os.getpid()}"
        cxn.run(f"echo hi > ~/{marker}; crontab -l 2>/dev/null | wc -l", hide=True)
    finally:
        cxn.close()
    assert ssh_host.path(f"~/{marker}").read_text() == "hi\n"
    assert not Path(f"/root/{marker}").exists()


def test_unknown_host_key_is_refused(ssh_host, inventory_for, isolated_home):
    (isolated_home / ".ssh" / "known_hosts").unlink()
    path = inventory_for(h1=ssh_host)
    r = run_cli("ping", "-H", "h1", "-i", str(path))
    assert r.returncode == 3
    assert "unknown host key for [127.0.0.1]:" in r.stderr
    assert "SHA256:" in r.stderr and "--accept-new" in r.stderr
    assert "Traceback" not in r.stderr


def test_accept_new_records_then_trusts(ssh_host, inventory_for, isolated_home):
    known = isolated_home / ".ssh" / "known_hosts"
    known.unlink()
    path = inventory_for(h1=ssh_host)
    r = run_cli("ping", "-H", "h1", "--accept-new", "-i", str(path))
    assert r.returncode == 0, r.stderr
    text = known.read_text()
    assert text == ssh_host.known_hosts_line
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    r = run_cli("ping", "-H", "h1", "-i", str(path))  # now trusted without the flag
    assert r.returncode == 0, r.stderr
    assert known.read_text() == text  # recorded once


def test_changed_host_key_is_refused_with_both_fingerprints(ssh_host, inventory_for, isolated_home):
    import paramiko

    known = isolated_home / ".ssh" / "known_hosts"
    other = paramiko.Ed25519Key.from_private_key_file  # noqa: F841 - keep import honest
    impostor_key = ssh_host.workdir.parent / "impostor"
    from tests.harness.sshd import keygen

    keygen(impostor_key)
    fake = (Path(str(impostor_key) + ".pub").read_text().split())
    known.write_text(f"[127.0.0.1]:{ssh_host.port} {fake[0]} {fake[1]}\n")
    before = known.read_text()
    path = inventory_for(h1=ssh_host)
    for flags in ([], ["--accept-new"]):  # --accept-new never overwrites a changed key
        r = run_cli("ping", "-H", "h1", "-i", str(path), *flags)
        assert r.returncode == 3, r.stderr
        assert "HOST KEY CHANGED" in r.stderr
        assert r.stderr.count("SHA256:") == 2
        assert known.read_text() == before


def test_inventory_known_hosts_file_is_honoured(ssh_host, tmp_path, isolated_home):
    (isolated_home / ".ssh" / "known_hosts").unlink()
    (tmp_path / "known_hosts").write_text(ssh_host.known_hosts_line)
    path = write_inventory(tmp_path / "hosts.yml", {"h1": ssh_host.inventory_entry()}, known_hosts="known_hosts")
    r = run_cli("ping", "-H", "h1", "-i", str(path))
    assert r.returncode == 0, r.stderr


def test_ssh_config_alias_is_honoured(ssh_host, tmp_path, isolated_home):
    (isolated_home / ".ssh" / "config").write_text(
        f"Host find-to-do\n  HostName {ssh_host.address}\n  Port {ssh_host.port}\n"
        f"  User root\n  IdentityFile {ssh_host.client_key}\n"
    )
    path = write_inventory(tmp_path / "hosts.yml", {"find-to-do": {}})
    r = run_cli("ping", "--json", "-i", str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hosts"]["find-to-do"]["user"] == "root"


def test_unreachable_closed_port_exits_3(tmp_path):
    port = free_port()
    path = write_inventory(tmp_path / "hosts.yml", {"gone": {"address": "127.0.0.1", "port": port}})
    r = run_cli("ping", "-H", "gone", "--connect-timeout", "2", "-i", str(path))
    assert r.returncode == 3
    assert f"gone: cannot connect to" in r.stderr and "refused" in r.stderr.lower()
    assert "Traceback" not in r.stderr


def test_hung_sshd_times_out_exit_3(ssh_host, inventory_for):
    """A host that accepts TCP but never speaks (SIGSTOPped sshd)."""
    path = inventory_for(h1=ssh_host)
    os.kill(ssh_host.pid, signal.SIGSTOP)
    r = run_cli("ping", "-H", "h1", "--connect-timeout", "2", "-i", str(path))
    assert r.returncode == 3
    assert r.stderr.startswith("fabops: h1: cannot connect to root@127.0.0.1:") and "no SSH answer within 2 s" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_bad_identity_is_an_auth_failure(ssh_host, tmp_path):
    from tests.harness.sshd import keygen

    wrong = keygen(tmp_path / "wrong_key")
    path = write_inventory(tmp_path / "hosts.yml", {"h1": ssh_host.inventory_entry(identity_file=str(wrong))})
    r = run_cli("ping", "-H", "h1", "-i", str(path))
    assert r.returncode == 3
    assert "authentication failed for root@127.0.0.1" in r.stderr


def test_library_errors_are_typed(ssh_host, inventory_for, isolated_home):
    (isolated_home / ".ssh" / "known_hosts").unlink()
    inv = inventory.load(str(inventory_for(h1=ssh_host)))
    with pytest.raises(HostKeyError):
        connect(inv.hosts["h1"], inv)
    with pytest.raises(UnreachableError):
        connect(inv.hosts["h1"].__class__(**{**inv.hosts["h1"].__dict__, "port": free_port()}), inv, connect_timeout=2)


def test_many_hosts_one_down(sshd_factory, tmp_path):
    """One failing host does not hide the others; the worst code wins."""
    h1 = sshd_factory("127.0.0.1")
    h2 = sshd_factory("127.0.0.2")
    hosts = {"h1": h1.inventory_entry(), "h2": h2.inventory_entry(), "down": {"address": "127.0.0.3", "port": free_port("127.0.0.3")}}
    path = write_inventory(tmp_path / "hosts.yml", hosts, groups={"all3": ["h1", "h2", "down"]})
    r = run_cli("ping", "-H", "all3", "--json", "--connect-timeout", "2", "-i", str(path))
    assert r.returncode == 3
    data = json.loads(r.stdout)
    assert data["code"] == 3
    data = data["hosts"]
    assert data["h1"]["user"] == "root" and data["h2"]["user"] == "root"
    assert data["down"]["code"] == 3
    r = run_cli("ping", "-H", "all3", "--connect-timeout", "2", "-i", str(path))
    assert "fabops: down: cannot connect" in r.stderr
    assert "h1" in r.stdout and "h2" in r.stdout
