"""A one-shot monitor through OpenSSH's client (fabops/openssh.py) against a
real sshd on loopback: the same output and exit codes as through paramiko
(FABOPS_OPENSSH=0), for a good host, an unknown key with and without
--accept-new, a changed key, a closed port and an SSH config alias (ssh tier).

An `ssh` wrapper first on PATH logs each use, so every test also proves which
path ran."""
import json
import os
import re
import stat
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_inventory
from tests.harness.sshd import free_port, keygen

pytestmark = pytest.mark.ssh

PARAMIKO = {"FABOPS_OPENSSH": "0"}


@pytest.fixture
def logged_ssh(tmp_path):
    """(env, log): PATH with an `ssh` that notes its argv, then runs the real one."""
    bindir, log = tmp_path / "bin", tmp_path / "ssh.log"
    bindir.mkdir()
    real = "/usr/bin/ssh"
    (bindir / "ssh").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (bindir / "ssh").chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}, log


def runs(log: Path) -> list:
    """The ssh runs that carried a command (not `ssh -G`); the script's own lines are left out."""
    return [line for line in log.read_text().splitlines() if "-o BatchMode=yes" in line] if log.exists() else []


def both(args, env, log):
    """The same monitor through paramiko, then through ssh: (paramiko, ssh)."""
    before = len(runs(log))
    first = run_cli(*args, env={**env, **PARAMIKO})
    assert len(runs(log)) == before  # FABOPS_OPENSSH=0: never ssh
    second = run_cli(*args, env=env)
    return first, second


def steady(text: str) -> str:
    """A rendered dashboard without the figures that move between two looks
    (and the padding their widths change)."""
    return re.sub(r"[ ─]+", " ", re.sub(r"\d+(\.\d+)?", "N", text))


def test_good_host_same_dashboard_and_json(ssh_host, inventory_for, logged_ssh):
    env, log = logged_ssh
    path = inventory_for(h1=ssh_host)
    p, o = both(["monitor", "-i", str(path)], env, log)
    assert len(runs(log)) == 1 and "StrictHostKeyChecking=yes" in runs(log)[0]
    assert o.returncode == p.returncode and o.stderr == p.stderr
    assert steady(o.stdout) == steady(p.stdout) and "h1" in o.stdout
    p, o = both(["monitor", "-i", str(path), "--json"], env, log)
    assert o.returncode == p.returncode
    a, b = json.loads(p.stdout)["hosts"]["h1"], json.loads(o.stdout)["hosts"]["h1"]
    assert sorted(a) == sorted(b) and a["status"] == b["status"] and a["findings"] == b["findings"]


def test_unknown_key_refused_then_accepted(ssh_host, inventory_for, logged_ssh, isolated_home):
    env, log = logged_ssh
    known = isolated_home / ".ssh" / "known_hosts"
    known.unlink()
    path = inventory_for(h1=ssh_host)
    p, o = both(["monitor", "-i", str(path)], env, log)
    assert p.returncode == o.returncode == 3
    assert (o.stdout, o.stderr) == (p.stdout, p.stderr) and "unknown host key for [127.0.0.1]:" in o.stdout
    assert not known.exists() or known.read_text() == ""
    r = run_cli("monitor", "-i", str(path), "--accept-new", env=env)
    assert "StrictHostKeyChecking=accept-new" in runs(log)[-1]
    assert r.returncode == p.returncode or r.returncode != 3, r.stderr
    assert known.read_text() == ssh_host.known_hosts_line  # as connection.record_host_key writes it
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    again = run_cli("monitor", "-i", str(path), env=env)  # trusted now, without the flag
    assert again.returncode == r.returncode and known.read_text() == ssh_host.known_hosts_line


def test_changed_key_refused_same_words(ssh_host, inventory_for, logged_ssh, isolated_home):
    env, log = logged_ssh
    known = isolated_home / ".ssh" / "known_hosts"
    impostor = keygen(ssh_host.workdir.parent / "impostor")
    kind, blob = Path(str(impostor) + ".pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{ssh_host.port} {kind} {blob}\n")
    before = known.read_text()
    path = inventory_for(h1=ssh_host)
    for flags in ([], ["--accept-new"]):  # --accept-new never overwrites a changed key
        p, o = both(["monitor", "-i", str(path), *flags], env, log)
        assert p.returncode == o.returncode == 3
        assert (o.stdout, o.stderr) == (p.stdout, p.stderr)
        assert "HOST KEY CHANGED" in o.stdout and o.stdout.count("SHA256:") == 2
        assert known.read_text() == before


def test_closed_port_exit_3_same_words(tmp_path, logged_ssh):
    env, log = logged_ssh
    path = write_inventory(tmp_path / "hosts.yml", {"gone": {"address": "127.0.0.1", "port": free_port()}})
    p, o = both(["monitor", "-i", str(path), "--connect-timeout", "2"], env, log)
    assert p.returncode == o.returncode == 3
    assert len(runs(log)) == 1
    assert o.stdout == p.stdout and o.stderr == p.stderr


def test_ssh_config_alias_port_user_identity(ssh_host, tmp_path, logged_ssh):
    env, log = logged_ssh
    config = tmp_path / "ssh_config"
    config.write_text(f"Host find-to-do\n  HostName {ssh_host.address}\n  Port {ssh_host.port}\n"
                      f"  User root\n  IdentityFile {ssh_host.client_key}\n")
    env = {**env, "FABOPS_SSH_CONFIG": str(config)}
    path = write_inventory(tmp_path / "hosts.yml", {"find-to-do": {}})
    p, o = both(["monitor", "-i", str(path), "--json"], env, log)
    assert len(runs(log)) == 1 and f"-F {config}" in runs(log)[0]
    assert o.returncode == p.returncode and o.returncode != 3, o.stderr
    assert json.loads(o.stdout)["hosts"]["find-to-do"]["status"] == json.loads(p.stdout)["hosts"]["find-to-do"]["status"]


def test_wrong_key_is_the_same_auth_failure(ssh_host, tmp_path, logged_ssh):
    """ssh says `Permission denied`: paramiko connects once more and words it (openssh.Redo)."""
    env, log = logged_ssh
    wrong = keygen(tmp_path / "wrong_key")
    path = write_inventory(tmp_path / "hosts.yml", {"h1": ssh_host.inventory_entry(identity_file=str(wrong))})
    p, o = both(["monitor", "-i", str(path)], env, log)
    assert p.returncode == o.returncode == 3 and len(runs(log)) == 1
    assert (o.stdout, o.stderr) == (p.stdout, p.stderr) and "authentication failed for root@127.0.0.1" in o.stdout


def test_hung_sshd_exit_3_same_words(ssh_host, inventory_for, logged_ssh):
    """TCP accepted, no SSH banner (a SIGSTOPped sshd): exit 3 and _open_one's
    words; the part in parentheses is each client's own."""
    import signal

    env, log = logged_ssh
    path = inventory_for(h1=ssh_host)
    os.kill(ssh_host.pid, signal.SIGSTOP)
    try:
        p, o = both(["monitor", "-i", str(path), "--connect-timeout", "2"], env, log)
    finally:
        os.kill(ssh_host.pid, signal.SIGCONT)
    assert p.returncode == o.returncode == 3 and len(runs(log)) == 1
    said = f"cannot connect to root@127.0.0.1:{ssh_host.port}: no SSH answer within 2 s ("
    assert said in p.stdout and said in o.stdout


def words(text: str) -> str:
    """A rendered message without its box, its wrapping and the part in
    parentheses, which is each client's own (paramiko's or ssh's cause)."""
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())
    return re.sub(r"\([^)]*\)", "(…)", flat)


@pytest.fixture
def accept_and_close():
    """A port that accepts each TCP connection and closes it at once: no banner."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue  # the accept's timeout: look at `stop` again

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


def test_accept_and_close_exit_3_same_words(tmp_path, logged_ssh, accept_and_close, isolated_home):
    """ssh says kex_exchange_identification (closed or reset), paramiko that
    it read no banner: both `no SSH answer`, exit 3; --accept-new creates no
    ~/.ssh for a host that never answered (paramiko does not)."""
    import getpass
    import shutil

    env, log = logged_ssh
    shutil.rmtree(isolated_home / ".ssh")
    path = write_inventory(tmp_path / "hosts.yml", {"gone": {"address": "127.0.0.1", "port": accept_and_close}})
    p, o = both(["monitor", "-i", str(path), "--connect-timeout", "2", "--accept-new"], env, log)
    assert p.returncode == o.returncode == 3 and len(runs(log)) == 1
    user = getpass.getuser()  # fabric's user when neither the inventory nor a config names one
    assert f"cannot connect to {user}@127.0.0.1:{accept_and_close}: no SSH answer within 2 s (…)" in words(p.stdout)
    assert words(o.stdout) == words(p.stdout) and o.stderr == p.stderr
    assert "kex_exchange_identification" in o.stdout
    assert not (isolated_home / ".ssh").exists()


def test_config_cannot_widen_trust_or_open_forwards(ssh_host, tmp_path, logged_ssh, isolated_home):
    """An ssh config entry with KnownHostsCommand (a key fabops' known_hosts
    does not hold) and RemoteForward (a port back into this machine; with
    ExitOnForwardFailure onto sshd's own port, ssh fails if it asks): the
    ssh path turns both off, and says what paramiko says. SetEnv: paramiko."""
    env, log = logged_ssh
    known = isolated_home / ".ssh" / "known_hosts"
    offered = tmp_path / "offered"
    offered.write_text(ssh_host.known_hosts_line)
    entry = (f"Host find-to-do\n  HostName {ssh_host.address}\n  Port {ssh_host.port}\n  User root\n"
             f"  IdentityFile {ssh_host.client_key}\n  RemoteForward 127.0.0.1:{ssh_host.port} 127.0.0.1:22\n"
             f"  ExitOnForwardFailure yes\n  KnownHostsCommand /bin/cat {offered}\n")
    config = tmp_path / "ssh_config"
    config.write_text(entry)
    env = {**env, "FABOPS_SSH_CONFIG": str(config)}
    path = write_inventory(tmp_path / "hosts.yml", {"find-to-do": {}})
    plain = ["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "find-to-do", "true"]
    import subprocess

    # without fabops' options the entry would work: the command's key is trusted...
    cleared = subprocess.run(plain[:-2] + ["-o", "ClearAllForwardings=yes"] + plain[-2:], capture_output=True,
                             text=True, timeout=60)
    assert cleared.returncode == 0, cleared.stderr
    known.unlink()
    p, o = both(["monitor", "-i", str(path)], env, log)  # ...fabops trusts only its known_hosts
    assert len(runs(log)) == 1 and "KnownHostsCommand=none" in runs(log)[0]
    assert p.returncode == o.returncode == 3 and (o.stdout, o.stderr) == (p.stdout, p.stderr)
    assert "unknown host key for [127.0.0.1]:" in o.stdout
    ssh_host.trust(known)
    # ...and asks for the forward, which fails (sshd's own port is taken)
    forwarded = subprocess.run(plain, capture_output=True, text=True, timeout=60)
    assert forwarded.returncode == 255 and "forwarding failed" in forwarded.stderr, forwarded.stderr
    p, o = both(["monitor", "-i", str(path), "--json"], env, log)
    assert len(runs(log)) == 2 and "ClearAllForwardings=yes" in runs(log)[1]
    assert o.returncode == p.returncode != 3, o.stdout + o.stderr
    assert json.loads(o.stdout)["hosts"]["find-to-do"]["status"] == json.loads(p.stdout)["hosts"]["find-to-do"]["status"]
    config.write_text(entry + "  SetEnv FABOPS_FROM_LAPTOP=1\n")
    p, o = both(["monitor", "-i", str(path), "--json"], env, log)
    assert len(runs(log)) == 2  # SetEnv: ssh would send it, paramiko never does; paramiko connects
    assert o.returncode == p.returncode != 3
