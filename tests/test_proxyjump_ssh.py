"""ProxyJump hops are checked like the host itself (#22), through real sshds
on loopback (ssh tier).

Fabric opens a jump host with paramiko's auto-add policy and no known_hosts,
so a man in the middle on the jump host was accepted silently; and it visits
`ProxyJump a,b` as b, then a. fabops builds the hops itself: the same
known_hosts files, the same --accept-new, the same refusal of a changed key,
with the hop named, in OpenSSH's order."""
import json
import time
from pathlib import Path

import pytest

from fabops import inventory
from fabops.connection import connect
from tests.conftest import _need_sshd, run_cli, write_inventory
from tests.harness.sshd import free_port, keygen, start_sshd

pytestmark = pytest.mark.ssh


@pytest.fixture
def sshd(tmp_path, client_key):
    """Start test hosts by name; every one is stopped at teardown, pass or fail."""
    _need_sshd()
    started = []

    def start(name: str, extra_config=(), address="127.0.0.1"):
        host = start_sshd(tmp_path / f"sshd-{name}", client_key, address=address, extra_config=extra_config)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


def entry(alias: str, h, **options) -> str:
    """One ~/.ssh/config entry for test host `h`, with more `options`."""
    lines = [f"Host {alias}", f"HostName {h.address}", f"Port {h.port}", f"User {h.user}",
             f"IdentityFile {h.client_key}", *(f"{k} {v}" for k, v in options.items())]
    return "\n  ".join(lines) + "\n"


def ssh_config(home: Path, target, jumps: dict, **options) -> None:
    """~/.ssh/config: an alias per jump host ({alias: host or (host, options)}),
    and `target` with `options` (its ProxyJump or ProxyCommand)."""
    blocks = [entry(alias, h[0], **h[1]) if isinstance(h, tuple) else entry(alias, h) for alias, h in jumps.items()]
    (home / ".ssh" / "config").write_text("\n".join(blocks + [entry("target", target, **options)]))


def refused_until_trusted(path: Path, host, naming: str, name: str = "") -> None:
    """`ping` is refused for `host`'s unknown key, the message saying
    `naming`; then the key is pinned in ~/.ssh/known_hosts."""
    r = ping(path)
    assert r.returncode == 3, r.stderr
    assert f"unknown host key for {name or f'[127.0.0.1]:{host.port}'} ({naming}" in r.stderr
    assert "Traceback" not in r.stderr
    host.trust()


def ping(path: Path, *flags):
    """`ping` of the host `target`; errors are on stderr (no --json)."""
    return run_cli("ping", "-H", "target", "-i", str(path), *flags)


@pytest.fixture
def one_jump(sshd, tmp_path, isolated_home):
    """target behind `jump`; the jump host may open a channel to target only."""
    target = sshd("target")
    jump = sshd("jump", extra_config=[f"PermitOpen {target.address}:{target.port}"])
    ssh_config(isolated_home, target, {"jump": jump}, ProxyJump="jump")
    return target, jump, write_inventory(tmp_path / "hosts.yml", {"target": {}})


def test_known_keys_for_both_connects_through_the_jump(one_jump):
    target, jump, path = one_jump
    target.trust()
    jump.trust()
    r = ping(path, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hosts"]["target"]["user"] == target.user


def test_the_session_goes_through_the_jump_and_close_ends_it(one_jump):
    """While connected, the jump host serves our session (a second sshd
    process in its namespace); closing the connection closes the hop too."""
    target, jump, path = one_jump
    target.trust()
    jump.trust()
    # by identity, not by count: a process of the trust() probe may still be
    # ending while the session's starts (a busy machine)
    before = set(jump.namespace_pids())
    inv = inventory.load(str(path))
    cxn = connect(inv.hosts["target"], inv)
    try:
        assert cxn.run("echo ok", hide=True).stdout == "ok\n"
        ours = set(jump.namespace_pids()) - before
        assert ours, "no sshd process of our session on the jump host"
    finally:
        cxn.close()
    deadline = time.monotonic() + 30
    while ours & set(jump.namespace_pids()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ours & set(jump.namespace_pids())


def test_unknown_jump_host_key_is_refused_then_recorded_with_accept_new(one_jump, isolated_home):
    target, jump, path = one_jump
    target.trust()
    known = isolated_home / ".ssh" / "known_hosts"
    r = ping(path)
    assert r.returncode == 3, r.stderr
    assert f"unknown host key for [127.0.0.1]:{jump.port} (jump host jump, ProxyJump hop 1 of 1)" in r.stderr
    assert "SHA256:" in r.stderr and "--accept-new" in r.stderr and "Traceback" not in r.stderr
    assert jump.host_pubkey not in known.read_text()

    r = ping(path, "--accept-new")
    assert r.returncode == 0, r.stderr
    assert known.read_text() == target.known_hosts_line + jump.known_hosts_line
    r = ping(path)  # trusted now, without the flag
    assert r.returncode == 0, r.stderr
    assert known.read_text() == target.known_hosts_line + jump.known_hosts_line


def test_unknown_target_key_behind_a_known_jump_is_refused_naming_the_target(one_jump):
    target, jump, path = one_jump
    jump.trust()
    refused_until_trusted(path, target, "ssh-ed25519 SHA256:")
    r = ping(path)
    assert r.returncode == 0, r.stderr


def test_changed_jump_host_key_is_refused_with_both_fingerprints(one_jump, isolated_home):
    target, jump, path = one_jump
    target.trust()
    impostor = keygen(jump.workdir.parent / "impostor")
    fake = Path(str(impostor) + ".pub").read_text().split()
    known = isolated_home / ".ssh" / "known_hosts"
    known.write_text(known.read_text() + f"[127.0.0.1]:{jump.port} {fake[0]} {fake[1]}\n")
    before = known.read_text()
    for flags in ([], ["--accept-new"]):  # --accept-new never overwrites a changed key
        r = ping(path, *flags)
        assert r.returncode == 3, r.stderr
        assert f"HOST KEY CHANGED for [127.0.0.1]:{jump.port} (jump host jump, ProxyJump hop 1 of 1)" in r.stderr
        assert r.stderr.count("SHA256:") == 2 and "Traceback" not in r.stderr
        assert known.read_text() == before


def test_inventory_known_hosts_file_covers_the_jump_host(one_jump, tmp_path, isolated_home):
    target, jump, _ = one_jump
    (isolated_home / ".ssh" / "known_hosts").unlink(missing_ok=True)
    (tmp_path / "known_hosts").write_text(target.known_hosts_line + jump.known_hosts_line)
    path = write_inventory(tmp_path / "hosts.yml", {"target": {}}, known_hosts="known_hosts")
    r = ping(path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("nested", [False, True], ids=["ProxyJump j1,j2", "j2 has its own ProxyJump j1"])
def test_two_jump_hosts_go_in_openssh_order_and_each_is_checked(sshd, tmp_path, isolated_home, nested):
    """`ProxyJump j1,j2`, or `ProxyJump j2` where j2's own entry says
    `ProxyJump j1`: both are this machine -> j1 -> j2 -> target, as OpenSSH
    reads them. Each jump host may open a channel only to the next one, so
    the reverse order (Fabric's) fails."""
    target = sshd("target")
    j2 = sshd("j2", extra_config=[f"PermitOpen {target.address}:{target.port}"])
    j1 = sshd("j1", extra_config=[f"PermitOpen {j2.address}:{j2.port}"])
    jumps = {"j1": j1, "j2": (j2, {"ProxyJump": "j1"}) if nested else j2}
    ssh_config(isolated_home, target, jumps, ProxyJump="j2" if nested else "j1,j2")
    path = write_inventory(tmp_path / "hosts.yml", {"target": {}})
    target.trust()
    refused_until_trusted(path, j1, "jump host j1, ProxyJump hop 1 of 2)")
    refused_until_trusted(path, j2, "jump host j2, ProxyJump hop 2 of 2)")
    r = ping(path)
    assert r.returncode == 0, r.stderr


def test_a_jump_host_that_is_down_is_named(sshd, tmp_path, isolated_home):
    target = sshd("target")
    target.trust()
    port = free_port()
    ssh_config(isolated_home, target, {}, ProxyJump=f"{target.user}@127.0.0.1:{port}")
    path = write_inventory(tmp_path / "hosts.yml", {"target": {}})
    r = ping(path, "--connect-timeout", "2")
    assert r.returncode == 3, r.stderr
    assert f"cannot connect to {target.user}@127.0.0.1:{port} (jump host 127.0.0.1, ProxyJump hop 1 of 1)" in r.stderr
    assert "Traceback" not in r.stderr


def test_proxycommand_only_pipes_and_the_target_key_is_still_checked(sshd, tmp_path, isolated_home):
    """ProxyCommand: paramiko runs the command and speaks SSH through its
    pipes; the target's key is checked by fabops as for a direct connection.
    (The command here is OpenSSH's `ssh -W`, which checks the jump host's
    key itself, against the file it is given.)"""
    target = sshd("target")
    jump = sshd("jump", extra_config=[f"PermitOpen {target.address}:{target.port}"])
    jump_known = tmp_path / "jump_known_hosts"
    jump_known.write_text(jump.known_hosts_line)
    ssh_config(isolated_home, target, {}, ProxyCommand=(
        f"ssh -F /dev/null -q -i {jump.client_key} -p {jump.port} -o BatchMode=yes -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={jump_known} -W %h:%p {jump.user}@{jump.address}"))
    path = write_inventory(tmp_path / "hosts.yml", {"target": {}})
    refused_until_trusted(path, target, "ssh-ed25519 SHA256:")
    r = ping(path)
    assert r.returncode == 0, r.stderr


def test_an_ssh_uri_hop_to_an_ipv6_jump_host_is_reached_and_checked(sshd, tmp_path, isolated_home):
    """`ProxyJump ssh://user@[::1]:PORT`, a form ssh(1) documents: Fabric's
    own split read the user as `ssh://user` and `[::1]:PORT` as a name."""
    target = sshd("target")
    jump = sshd("jump6", address="::1", extra_config=[f"PermitOpen {target.address}:{target.port}"])
    ssh_config(isolated_home, target, {}, ProxyJump=f"ssh://{jump.user}@[::1]:{jump.port}")
    (isolated_home / ".ssh" / "config").write_text((isolated_home / ".ssh" / "config").read_text()
                                                   + f"\nHost ::1\n  IdentityFile {jump.client_key}\n")
    path = write_inventory(tmp_path / "hosts.yml", {"target": {}})
    target.trust()
    refused_until_trusted(path, jump, "jump host ::1, ProxyJump hop 1 of 1)", name=f"[::1]:{jump.port}")
    r = ping(path)
    assert r.returncode == 0, r.stderr
