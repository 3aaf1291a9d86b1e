"""A real OpenSSH sshd on loopback, each one its own little world.

As root, every sshd runs in a private mount namespace (`unshare -m`) with
tmpfs over the home directory, the cron spool, /etc/cron.d, /etc/sudoers.d,
/etc/logrotate.d and /var/log: whatever a test makes fabops do on "the host"
lands there, never on the machine running the tests. Tests read the host's
files through /proc/<sshd pid>/root/... (see `SshHost.path`).
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

SSHD = "/usr/sbin/sshd"

# Directories hidden behind a private tmpfs inside each test host.
PRIVATE_DIRS = (
    "/root",
    "/home",
    "/var/spool/cron",
    "/etc/cron.d",
    "/etc/sudoers.d",
    "/etc/logrotate.d",
    "/var/log",
)


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def keygen(path: Path, comment: str = "fabops-test") -> Path:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
        )
    return path


def wait_for_port(address: str, port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Poll until sshd accepts and sends its banner (it may be slow to bind)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited early with {proc.returncode}")
        try:
            with socket.create_connection((address, port), timeout=0.5) as s:
                s.settimeout(1.0)
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"sshd on {address}:{port} did not answer within {timeout} s")


@dataclass
class SshHost:
    address: str
    port: int
    user: str
    proc: subprocess.Popen
    workdir: Path
    client_key: Path
    host_pubkey: str  # "ssh-ed25519 AAAA..."

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def root(self) -> Path:
        """The host's filesystem as its own processes see it."""
        return Path(f"/proc/{self.pid}/root")

    def path(self, host_path: str) -> Path:
        """A host path ('~' is the login user's home) seen from the tests."""
        home = "/root" if self.user == "root" else f"/home/{self.user}"
        if host_path.startswith("~"):
            host_path = home + host_path[1:]
        return self.root / host_path.lstrip("/")

    @property
    def known_hosts_line(self) -> str:
        name = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{name} {self.host_pubkey}\n"

    def trust(self, known_hosts: Optional[Path] = None) -> None:
        """Pin this host's key in the (isolated) ~/.ssh/known_hosts."""
        path = known_hosts or Path(os.path.expanduser("~/.ssh/known_hosts"))
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(self.known_hosts_line)

    def inventory_entry(self, **extra) -> dict:
        entry = {
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.client_key),
        }
        entry.update(extra)
        return entry

    def ssh(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command on the host with the OpenSSH client (a second opinion
        independent of fabops/paramiko)."""
        return subprocess.run(
            [
                "ssh", "-q", "-i", str(self.client_key), "-p", str(self.port),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                f"{self.user}@{self.address}", command,
            ],
            capture_output=True, text=True, check=check, timeout=60,
        )

    def namespace_pids(self) -> list:
        """Every process living in this host's mount namespace (sshd, sessions,
        and whatever they started), so teardown can end them all."""
        try:
            ns = os.readlink(f"/proc/{self.pid}/ns/mnt")
        except OSError:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                    pids.append(int(entry))
            except OSError:
                continue
        return pids

    def stop(self) -> None:
        # A test may have SIGSTOPped sshd to simulate a hung host.
        members = self.namespace_pids() if os.geteuid() == 0 else []
        for pid in [self.pid] + members:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for pid in members:
            if pid != self.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def _test_cache() -> Path:
    from tests.conftest import TEST_CACHE

    return TEST_CACHE


def _pip_conf(wheels: Path) -> str:
    houses = " ".join(str(wheels / f"wheelhouse-cp3{minor}") for minor in range(9, 14))
    return f"[global]\nno-index = true\nfind-links = {houses}\n"


def start_sshd(workdir: Path, client_key: Path, address: str = "127.0.0.1",
               extra_config: Sequence[str] = ()) -> SshHost:
    """Start sshd on `address` and a free port; return once it answers.
    `extra_config`: more sshd_config lines (e.g. a jump host's `PermitOpen`).
    TCP forwarding is sshd's default (on), so any test host can be a jump host."""
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = keygen(workdir / "ssh_host_ed25519_key", comment="fabops-test-host")
    auth = workdir / "authorized_keys"
    auth.write_text(Path(str(client_key) + ".pub").read_text())
    auth.chmod(0o600)
    port = free_port(address)
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {address}",
                f"Port {port}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {auth}",
                f"PidFile {workdir / 'sshd.pid'}",
                "UsePAM no",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "MaxStartups 100:30:200",
                "MaxSessions 10",
                "UseDNS no",
                "PrintMotd no",
                "LogLevel ERROR",
                "Subsystem sftp internal-sftp",
                *extra_config,
                "",
            ]
        )
    )
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    log = open(workdir / "sshd.log", "ab")
    argv = [SSHD, "-D", "-e", "-f", str(config)]
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        mounts = " && ".join(
            f"{{ [ -d {d} ] || mkdir -p {d}; }} && mount -t tmpfs -o mode=0755 fabops-test {d}"
            for d in PRIVATE_DIRS
        )
        # The spool layout cron expects, created inside the private tmpfs.
        mounts += " && mkdir -p -m 1730 /var/spool/cron/crontabs && chmod 0700 /root"
        # pip on the host (fabops' install without --offline) reads the
        # pre-built wheelhouses, bound in before /root turns private, never the
        # index: the tests never reach the network
        wheels = workdir / "wheelhouses"
        wheels.mkdir(exist_ok=True)
        cache = shlex.quote(str(_test_cache()))
        mounts = (f"{{ ! [ -d {cache} ] || mount --bind {cache} {shlex.quote(str(wheels))}; }} && " + mounts
                  + " && mkdir -p /root/.config/pip && printf '%s' " + shlex.quote(_pip_conf(wheels))
                  + " > /root/.config/pip/pip.conf")
        script = f"{mounts} && exec {' '.join(argv)}"
        # unshare execs (no fork), so the Popen pid is sshd's own pid.
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(address, port, proc)
    except Exception:
        proc.kill()
        proc.wait()
        raise RuntimeError((workdir / "sshd.log").read_text()[-2000:])
    host_pub = Path(str(host_key) + ".pub").read_text().split()
    return SshHost(
        address=address,
        port=port,
        user=user,
        proc=proc,
        workdir=workdir,
        client_key=client_key,
        host_pubkey=f"{host_pub[0]} {host_pub[1]}",
    )
