"""Tier 3: a booted Debian container playing `find-to-do` (docs/testing.md).

- The rootfs is built once with `debootstrap --variant=minbase`, its
  signatures checked against debian-archive-keyring, from this machine's own
  Debian mirror on Debian, else deb.debian.org (pick_mirror), and cached as a
  tar.zst under ~/.cache/fabops-tests, keyed by a hash of its recipe.
- It is extracted once per session and prepared like a fresh EC2 host: user
  `ec2-user` (passwordless sudo, as cloud-init sets it up), our client key,
  a generated host key, hostname `find-to-do`.
- Each boot is `systemd-nspawn -b --register=no --keep-unit --volatile=overlay`
  (a fresh overlay: containers share nothing) in a network namespace of its
  own, joined to this machine by a veth pair on 10.231.N.0/30. Teardown stops
  nspawn by PID and deletes the namespace.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence, Tuple

PACKAGES = ("systemd,systemd-sysv,dbus,openssh-server,cron,curl,git,python3,python3-venv,"
            "iproute2,procps,sudo,logrotate")
SUITE = "bookworm"
# The images the user-journey tier runs on: bookworm (Python 3.11) and
# bullseye (Python 3.9 and systemd 247, the nearest Debian to Amazon Linux 2023).
SUITES = ("bookworm", "bullseye")
NETNS_PREFIX = "fabops-t"


DEBIAN_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "FABOPS_DEBIAN_MIRROR"  # a mirror of your choice wins over both
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"  # .ci/run installs it
# Debian's suite names besides the codename (os-release's VERSION_CODENAME)
DEBIAN_SUITES = {"stable", "oldstable", "oldoldstable", "testing", "unstable", "sid"}


def pick_mirror(os_release: str, sources: Sequence[Tuple[str, str]], mirror_lists: Mapping[str, str],
                override: str = "") -> str:
    """The Debian mirror to debootstrap from: `override` if set, else this
    machine's own Debian archive mirror if it runs Debian, else Debian's own
    mirror (an Ubuntu machine's, such as GitHub's runners', serves no Debian).
    `sources` are apt's files as (name, text), `mirror_lists` the texts of the
    files their `mirror+file:` URIs name; tests/test_mirror.py."""
    if override.strip():
        return override.strip()
    release = _os_release(os_release)
    if release.get("ID") != "debian":
        return DEBIAN_MIRROR
    return apt_archive(os_release, sources, mirror_lists) or DEBIAN_MIRROR


def apt_archive(os_release: str, sources: Sequence[Tuple[str, str]], mirror_lists: Mapping[str, str]) -> Optional[str]:
    """The mirror this machine's apt uses for its own distribution's main
    archive, or None. Not security, nor a third party's repository: one whose
    suite is not this release's, without `main`, or whose signed-by names
    another keyring (Docker's, Adoptium's) is never taken; of the rest, one
    the distribution vouches for (its keyring, its own host, a path ending in
    its name) before any other (Microsoft's, with an apt-key key)."""
    release = _os_release(os_release)
    distro = release.get("ID", "debian")
    own = {release.get("VERSION_CODENAME", "")} | DEBIAN_SUITES
    found = []
    for name, text in sources:
        entries = _deb822(text) if name.endswith(".sources") else _one_line(text)
        for uris, suites, components, signed_by in entries:
            if "main" not in components or not any(_base_suite(s) in own for s in suites):
                continue
            if signed_by and f"{distro}-archive-keyring" not in signed_by:
                continue
            for uri in filter(None, (_resolve(u, mirror_lists) for u in uris)):
                vouched = signed_by or re.match(rf"^https?://([^/]*\.)?{re.escape(distro)}\.(org|com)/", uri) \
                    or uri.rstrip("/").endswith(f"/{distro}")
                found.append((0 if vouched else 1, len(found), uri))
    return min(found)[2] if found else None


def _os_release(text: str) -> dict:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip().strip("\"'") for k, v in pairs}


def _base_suite(suite: str) -> str:
    """bookworm-updates -> bookworm; bookworm-security and buster/updates
    (the security archive) -> '' (never a base archive)."""
    if suite.endswith("-security") or "/" in suite:
        return ""
    return re.sub(r"-(updates|backports|proposed-updates|proposed)$", "", suite)


def _one_line(text: str) -> Iterator[Tuple[list, list, list, str]]:
    """`deb [options] URI SUITE COMPONENT...` lines of a sources.list."""
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        options = " ".join(re.findall(r"\[([^]]*)\]", line))
        words = re.sub(r"\[[^]]*\]", " ", line).split()
        if len(words) >= 3 and words[0] == "deb":
            signed = re.search(r"signed-by=(\S+)", options)
            yield [words[1]], [words[2]], words[3:], signed.group(1) if signed else ""


def _deb822(text: str) -> Iterator[Tuple[list, list, list, str]]:
    """The stanzas of a deb822 .sources file (Types: deb, Enabled not no)."""
    kept = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    for stanza in re.split(r"\n\s*\n", kept):
        fields = {}
        for m in re.finditer(r"^([\w-]+):[ \t]*(.*(?:\n[ \t].*)*)", stanza, re.M):
            fields[m.group(1).lower()] = m.group(2).split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"])[0].lower() != "no":
            yield (fields.get("uris", []), fields.get("suites", []), fields.get("components", []),
                   " ".join(fields.get("signed-by", [])))


def _resolve(uri: str, mirror_lists: Mapping[str, str]) -> Optional[str]:
    """A plain http(s) URI as is; `mirror+file:PATH` (GitHub's runners) as
    the best-priority entry of that file's list; any other (a remote mirror
    list, cdrom:, file:) None: debootstrap cannot use it."""
    if uri.startswith("mirror+file:"):
        ranked = []
        for n, line in enumerate(mirror_lists.get(uri[len("mirror+file:"):], "").splitlines()):
            parts = line.split("#", 1)[0].split()
            if parts:
                prio = re.search(r"(?:^|\s)priority:(\d+)", line)
                ranked.append((int(prio.group(1)) if prio else 1000 + n, n, parts[0]))
        return _resolve(min(ranked)[2], {}) if ranked else None
    return uri if re.match(r"^https?://", uri) else None


def apt_files(root: Path = Path("/")) -> Tuple[str, list, dict]:
    """The texts pick_mirror reads, from the machine under `root`: os-release;
    apt's sources in apt's order (sources.list, then sources.list.d/*.list
    and *.sources by name); each file a `mirror+file:` URI names."""
    def text(p: Path) -> str:
        try:
            return p.read_text()
        except (OSError, UnicodeDecodeError):
            return ""

    os_release = text(root / "etc/os-release") or text(root / "usr/lib/os-release")
    apt = root / "etc/apt"
    d = apt / "sources.list.d"
    files = [apt / "sources.list"] + sorted(f for f in (d.iterdir() if d.is_dir() else ())
                                            if f.suffix in (".list", ".sources"))
    sources = [(f.name, text(f)) for f in files if f.is_file()]
    named = {m for _, t in sources for m in re.findall(r"mirror\+file:(\S+)", t)}
    return os_release, sources, {m: text(root / m.lstrip("/")) for m in named}


def mirror() -> str:
    """The Debian mirror the images are built from (pick_mirror on this
    machine's files, $FABOPS_DEBIAN_MIRROR first)."""
    return pick_mirror(*apt_files(), override=os.environ.get(MIRROR_ENV, ""))


def recipe(suite: str = SUITE) -> str:
    return f"debootstrap --variant=minbase --include={PACKAGES} {suite} {mirror()}"


def cached_rootfs(cache: Path, suite: str = SUITE) -> Path:
    key = hashlib.sha256(recipe(suite).encode()).hexdigest()[:12]
    tarball = cache / f"rootfs-{suite}-{key}.tar.zst"
    if tarball.exists():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    build = cache / f"rootfs-build-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    if not Path(KEYRING).is_file():  # explicit: without it debootstrap would go on unchecked
        raise RuntimeError(f"no {KEYRING} to check the {suite} image's signatures against: "
                           "install debian-archive-keyring (.ci/run does)")
    r = subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", f"--keyring={KEYRING}", suite,
                        str(build), mirror()], capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(build, ignore_errors=True)
        raise RuntimeError(f"debootstrap {suite} failed ({r.returncode}): {(r.stdout + r.stderr)[-1500:]}")
    tmp = tarball.with_suffix(".tmp")
    subprocess.run(["tar", "--zstd", "-cf", str(tmp), "-C", str(build), "."], check=True)
    os.replace(tmp, tarball)
    shutil.rmtree(build, ignore_errors=True)
    return tarball


def prepare(tarball: Path, dest: Path, client_pub: str) -> str:
    """Extract and make it look like a fresh EC2 host; returns the host key line."""
    dest.mkdir(parents=True)
    subprocess.run(["tar", "--zstd", "-xf", str(tarball), "-C", str(dest)], check=True)

    def chroot(*argv):
        subprocess.run(["chroot", str(dest), *argv], check=True, capture_output=True)

    chroot("useradd", "-m", "-s", "/bin/bash", "-u", "1000", "ec2-user")
    (dest / "etc/sudoers.d/90-cloud-init-users").write_text("ec2-user ALL=(ALL) NOPASSWD:ALL\n")
    os.chmod(dest / "etc/sudoers.d/90-cloud-init-users", 0o440)
    ssh = dest / "home/ec2-user/.ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(client_pub)
    (dest / "home/ec2-user/.gitconfig").write_text("[safe]\n\tdirectory = *\n")
    chroot("chown", "-R", "ec2-user:ec2-user", "/home/ec2-user")
    for f in (dest / "etc/ssh").glob("ssh_host_*"):
        f.unlink()
    chroot("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/etc/ssh/ssh_host_ed25519_key")
    (dest / "etc/hostname").write_text("find-to-do\n")
    (dest / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 find-to-do\n")
    (dest / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (dest / "etc/ssh/sshd_config.d/fabops-test.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nUseDNS no\nMaxStartups 100:30:200\n")
    pub = (dest / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    return f"{pub[0]} {pub[1]}"


def sweep_stale() -> None:
    """Remove namespaces left by killed test runs (their pid is gone)."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"^{NETNS_PREFIX}(\d+)-\d+$", name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@dataclass
class Container:
    proc: subprocess.Popen
    netns: str
    address: str
    host_key: str
    log: Path
    host_if: str = ""  # our side of the veth pair (set it down to cut the link)

    def init_pid(self) -> int:
        """The container's PID 1 (its systemd), as this machine numbers it:
        the nspawn process's child."""
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            kids = (task / "children").read_text().split()
            if kids:
                return int(kids[0])
        raise RuntimeError("no container init found")

    def as_root(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `command` as root inside the container (its mount, pid, net,
        ipc and uts namespaces): root's own steps, whatever sudo rules the
        users have at the time."""
        r = subprocess.run(["nsenter", "-t", str(self.init_pid()), "-m", "-u", "-i", "-n", "-p", "--",
                            "sh", "-c", command], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"as root in the container: {command!r} exited {r.returncode}: {r.stderr[-500:]}")
        return r

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)


_counter = [0]


def _free_subnet(n: int) -> str:
    """A 10.231.N/30 that no interface here has yet, from the Nth on: two
    test runs side by side whose pids end alike took the same one, and the
    second box's boot met the first box's sshd at its address and went on
    before its own container was up (its first as_root found no ec2-user).
    Two boots in the same instant may still pick one: rare, and it fails loudly."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    for k in range(250):
        subnet = f"10.231.{(n + k) % 250}"
        if f" {subnet}.1/" not in used:
            return subnet
    raise RuntimeError("no free 10.231.N subnet for a test container: `ip -4 addr` lists all 250 as taken")


def boot(base: Path, binds: dict, workdir: Path) -> Container:
    _counter[0] += 1
    n = (os.getpid() % 200) + _counter[0]
    netns = f"{NETNS_PREFIX}{os.getpid()}-{_counter[0]}"
    host_if, cont_if = f"fo{os.getpid() % 100000}h{_counter[0]}"[:15], f"fo{os.getpid() % 100000}c{_counter[0]}"[:15]
    subnet = _free_subnet(n)
    ip = ["ip"]
    subprocess.run(ip + ["netns", "add", netns], check=True)
    subprocess.run(ip + ["link", "add", host_if, "type", "veth", "peer", "name", cont_if], check=True)
    subprocess.run(ip + ["link", "set", cont_if, "netns", netns], check=True)
    subprocess.run(ip + ["addr", "add", f"{subnet}.1/30", "dev", host_if], check=True)
    subprocess.run(ip + ["link", "set", host_if, "up"], check=True)
    subprocess.run(ip + ["netns", "exec", netns, "ip", "addr", "add", f"{subnet}.2/30", "dev", cont_if], check=True)
    subprocess.run(ip + ["netns", "exec", netns, "ip", "link", "set", cont_if, "up"], check=True)
    subprocess.run(ip + ["netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
    log = workdir / f"nspawn-{netns}.log"
    argv = ["systemd-nspawn", "-D", str(base), "-b", "--register=no", "--keep-unit", "--volatile=overlay",
            "--console=passive", f"--network-namespace-path=/run/netns/{netns}", "-M", "find-to-do"]
    for src, dst in binds.items():
        argv.append(f"--bind={src}:{dst}")
    proc = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    address = f"{subnet}.2"
    pub = (base / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    c = Container(proc, netns, address, f"{pub[0]} {pub[1]}", log, host_if)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            c.stop()
            raise RuntimeError(f"systemd-nspawn exited {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            with socket.create_connection((address, 22), timeout=1) as s:
                s.settimeout(2)
                if s.recv(4).startswith(b"SSH-"):
                    return c
        except OSError:
            time.sleep(0.2)
    c.stop()
    raise RuntimeError(f"the container's sshd did not answer within 90 s: {log.read_text()[-1500:]}")


# Each suite's prepared rootfs, once per session: a boot never writes to it
# (--volatile=overlay keeps every change in the container's own tmpfs, and
# tests/test_promote_systemd.py boots two at once from one), so extracting
# and preparing it again for every module only cost time (2-3 s, and its
# removal up to half a minute on a busy disk). Removed at the session's end
# (remove_prepared, from conftest's pytest_sessionfinish).
_PREPARED: dict = {}


def prepared(suite: str, client_pub: str) -> Path:
    """`suite`'s rootfs, extracted and prepared (prepare) on first use in
    this session, for `client_pub`; shared read-only by every boot."""
    from tests.conftest import TEST_CACHE

    key = (suite, client_pub)
    if key not in _PREPARED:
        dest = Path(tempfile.mkdtemp(prefix=f"fabops-rootfs-{suite}-")) / "rootfs"
        try:
            prepare(cached_rootfs(TEST_CACHE, suite), dest, client_pub)
        except BaseException:
            shutil.rmtree(dest.parent, ignore_errors=True)
            raise
        _PREPARED[key] = dest
    return _PREPARED[key]


def remove_prepared() -> None:
    for dest in _PREPARED.values():
        shutil.rmtree(dest.parent, ignore_errors=True)
    _PREPARED.clear()


@contextmanager
def booted(suite: str, tmp_path_factory, client_key: Path, binds: dict) -> Iterator[Container]:
    """A fresh find-to-do of `suite`, booted for the duration of the block,
    then stopped (also when the block fails); its changes die with it."""
    sweep_stale()
    dest = prepared(suite, Path(str(client_key) + ".pub").read_text())
    box = boot(dest, binds, tmp_path_factory.mktemp("nspawn"))
    try:
        yield box
    finally:
        box.stop()


def usable() -> Optional[str]:
    """None if this machine can run the tier, else why not."""
    if os.geteuid() != 0:
        return "the systemd tier needs root (debootstrap, systemd-nspawn, network namespaces)"
    for tool in ("systemd-nspawn", "debootstrap", "zstd", "ip", "chroot"):
        if not shutil.which(tool):
            return f"{tool} is not installed (.ci/run installs systemd-container, debootstrap, zstd, iproute2)"
    return None


def boots(cache: Path) -> None:
    """Boot the cached bookworm image once, as the tier does, until its sshd
    answers, then stop it and remove its files: whether systemd-nspawn can
    boot a container on this machine (.ci/check-capabilities, before pytest).
    Raises RuntimeError saying why not."""
    import tempfile

    if usable() is not None:
        raise RuntimeError(usable())
    sweep_stale()
    work = Path(tempfile.mkdtemp(prefix="fabops-boot-check-"))
    try:
        prepare(cached_rootfs(cache), work / "rootfs", "")
        boot(work / "rootfs", {}, work).stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prebuild() -> None:
    """Build and cache every image the tests boot (for .ci/run); a no-op where
    the tier cannot run, which the tier itself then reports."""
    if usable() is not None:
        print(f"container images: not built ({usable()})")
        return
    from tests.conftest import TEST_CACHE

    for suite in SUITES:
        print(f"container image {suite}: {cached_rootfs(TEST_CACHE, suite).name}")
