"""Put this exact fabops on a host: a venv under the host home holding the
wheel built here, identified by version + wheel sha256 (so a development build
reinstalls). Used by `inv deploy` (repair a missing or outdated install) and
`inv setup`.

Dependencies are the host target's pins (fabops/constraints/host-cpXY-ARCH.txt,
shipped in the wheel, written by constraints/update): installed with
`--require-hashes --no-deps` from the package index on the host, or with
`--offline` from a wheelhouse downloaded here from the same file for the host's
own platform and Python (a macOS laptop cannot ship its own wheels to a Linux
host; the cache holds only whole downloads). A target without a file resolves from fabops' requirements as before,
and says so, unless FABOPS_REQUIRE_PINNED=1 (exit 78, nothing changed).
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from . import __version__
from .errors import CommandFailed, ConfigError, FabopsError, UsageError
from .host.files import sha256_file
from .inventory import Host
from .probe import MARK, split_sections
from .remote import home_dir_cmd
from .shell import Cmd, path, raw, sh
from .target import Target

MIN_HOST_PYTHON = (3, 9)
MARKER = "fabops-install.json"
# the hashed pins of each host target, package data of fabops (constraints/update)
PINS_DIR = Path(__file__).resolve().parent / "constraints"
_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


@dataclass
class Wheel:
    path: str
    sha256: str
    version: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass
class HostPython:
    version: tuple
    machine: str
    installed: Optional[dict]  # the marker of the current install, if any

    @property
    def tag(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}-{_MACHINES.get(self.machine, self.machine)}"


@dataclass(frozen=True)
class Pins:
    """One host target's hashed pins: the file and its sha256 (the install
    marker records it, so new pins reinstall)."""
    path: str
    sha256: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def pins_for(py: HostPython) -> Optional[Pins]:
    """The pins file of the host's Python and machine, or None (no such target)."""
    f = PINS_DIR / f"host-{py.tag}.txt"
    return Pins(str(f), sha256_file(str(f))) if f.is_file() else None


def require_pinned() -> bool:
    return os.environ.get("FABOPS_REQUIRE_PINNED") == "1"


def unpinned_error(py: HostPython, host: Host) -> ConfigError:
    err = ConfigError("FABOPS_REQUIRE_PINNED=1", "", f"no pinned dependencies for {py.tag}: run constraints/update "
                      "with that target (nothing was changed on the host)")
    err.host = host.name
    return err


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "fabops"


def local_wheel() -> Wheel:
    """The wheel of the fabops running here: $FABOPS_WHEEL, or rebuilt from
    the installed package (fabops.selfwheel: deterministic bytes, so its
    sha256 is the same on every run of the same code)."""
    explicit = os.environ.get("FABOPS_WHEEL")
    if explicit:
        if not os.path.isfile(explicit):
            raise UsageError(f"FABOPS_WHEEL={explicit} does not exist")
        return Wheel(explicit, sha256_file(explicit), __version__)
    from . import selfwheel

    try:
        path, sha = selfwheel.write(cache_dir() / "wheels")
    except OSError as exc:
        raise CommandFailed(f"writing the fabops wheel to {cache_dir() / 'wheels'} failed: {exc}") from None
    return Wheel(str(path), sha, __version__)


def runtime_requirements() -> List[str]:
    from .selfwheel import runtime_requirements as reqs

    return reqs()


def venv_dir(host: Host) -> str:
    return host.paths.venv


def probe_cmd(host: Host) -> Cmd:
    # -x, not `fabops --version`: that costs a host interpreter start (~250 ms)
    # on every deploy; the marker is written only after a verified install.
    return sh(
        "echo {m}python; python3 -c 'import sys, platform; "
        'print("%d %d %s" % (sys.version_info[0], sys.version_info[1], platform.machine()))\' 2>/dev/null\n'
        "echo {m}marker; cat {marker} 2>/dev/null\n"
        "echo {m}fabops; [ -x {fabops} ] && echo yes\n"
        "echo {m}end\n",
        m=MARK, marker=path(venv_dir(host) + "/" + MARKER), fabops=path(venv_dir(host) + "/bin/fabops"))


def parse_probe(output: str) -> HostPython:
    s = split_sections(output)
    parts = (s.get("python") or "").split()
    version: tuple = ()
    machine = ""
    if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
        version = (int(parts[0]), int(parts[1]))
        machine = parts[2]
    installed = None
    try:
        data = json.loads(s.get("marker") or "null")
        # a marker without a working fabops (a half-done install) counts as none
        if isinstance(data, dict) and (s.get("fabops") or "").strip():
            installed = data
    except ValueError:
        pass
    return HostPython(version, machine, installed)


def wheelhouse_for(py: HostPython, offline: bool, pins: Optional[Pins] = None) -> Optional[str]:
    """A directory of dependency wheels for the host, or None to use the index.
    With pins, the wheels of exactly that file, cached by its sha256 (new pins,
    a new wheelhouse); without, resolved from fabops' requirements."""
    if not offline:
        return None
    env = os.environ.get("FABOPS_WHEELHOUSE")
    if env:
        # may name one dir, or a parent holding wheelhouse-cpXY dirs
        candidate = os.path.join(env, f"wheelhouse-cp{py.version[0]}{py.version[1]}")
        if os.path.isdir(candidate):
            return candidate
        if not os.path.isdir(env):
            # said here, by name, not as pip's or os' FileNotFoundError later
            raise UsageError(f"FABOPS_WHEELHOUSE={env}: no such directory (it names the dependency wheels "
                                     "for --offline: a directory of wheels, or one holding wheelhouse-cpXY)")
        return env
    dest = cache_dir() / "wheelhouse" / (pins.sha256 if pins else py.tag)
    if dest.is_dir() and not wheelhouse_complete(dest, pins):
        shutil.rmtree(dest, ignore_errors=True)  # a partial one of an older fabops
    if not dest.is_dir():
        fill_wheelhouse(py, dest, pins)
    return str(dest)


def wheelhouse_complete(house: Path, pins: Optional[Pins]) -> bool:
    """Every pinned name has its wheel in `house` (without pins: any wheel)."""
    have = {_dist_name(f.name.split("-")[0]) for f in house.glob("*.whl")}
    if not pins:
        return bool(have)
    with open(pins.path) as f:
        want = {_dist_name(line.split("==")[0]) for line in f if "==" in line and not line.startswith("#")}
    return want <= have


def _dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def fill_wheelhouse(py: HostPython, dest: Path, pins: Optional[Pins]) -> None:
    """Download into a directory of this process next to `dest`, then rename
    it into place: `dest` exists only once whole, so a killed download is
    fetched again on the next run, which removes its directory."""
    part = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        for stale in dest.parent.glob(f"{dest.name}.part-*"):
            if not _pid_alive(stale.name[len(dest.name) + len(".part-"):].split("-")[0]):
                shutil.rmtree(stale, ignore_errors=True)
        part = tempfile.mkdtemp(prefix=f"{dest.name}.part-{os.getpid()}-", dir=dest.parent)
        download_wheelhouse(py, part, pins)
        os.rename(part, dest)
    except OSError as exc:
        if not dest.is_dir():  # else another host's install filled it first
            raise CommandFailed(f"filling the wheelhouse {dest} failed: {exc}") from None
    finally:
        if part:
            shutil.rmtree(part, ignore_errors=True)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return True


def download_argv(py: HostPython, dest: str, pins: Optional[Pins] = None) -> List[str]:
    """pip download for the host's Python and platform: the best wheels for
    glibc 2.28 (whose hashes every pins file lists), in pip's order of
    preference (it expands manylinux2014 to older tags, never manylinux_2_X)."""
    machine = _MACHINES.get(py.machine, py.machine)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
            "--implementation", "cp", "--python-version", f"{py.version[0]}.{py.version[1]}", "-d", dest]
    for glibc in range(28, 16, -1):
        argv += ["--platform", f"manylinux_2_{glibc}_{machine}"]
    argv += ["--platform", f"manylinux2014_{machine}"]
    if pins:
        return argv + ["--require-hashes", "--no-deps", "-r", pins.path]
    return argv + runtime_requirements()


def download_wheelhouse(py: HostPython, dest: str, pins: Optional[Pins] = None) -> None:
    r = subprocess.run(download_argv(py, dest, pins), capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-2:]
        raise CommandFailed(f"downloading wheels for the host ({py.tag}) failed: " + " | ".join(tail))


def _sftp_path(path: str) -> str:
    """sftp paths are relative to the login home; `~/x` becomes `x`."""
    if path == "~":
        return "."
    return path[2:] if path.startswith("~/") else path


@dataclass
class InstallResult:
    changed: bool
    version: str
    sha256: str
    python: str
    message: str


def ensure_installed(c, host: Host, *, offline: bool = False, dry_run: bool = False, wheel: Optional[Wheel] = None) -> InstallResult:
    """Install this fabops into <host home>/venv unless exactly it is there,
    with the same pins (docs/ci.md, "Pinning the host's install")."""
    wheel = wheel or local_wheel()
    t = Target.of(c, host)
    py = parse_probe(t.output(probe_cmd(host)))
    if not py.version:
        raise FabopsError(f"no usable python3 on the host (fabops needs Python {MIN_HOST_PYTHON[0]}.{MIN_HOST_PYTHON[1]}+)", host=host.name)
    pyver = f"{py.version[0]}.{py.version[1]}"
    if py.version < MIN_HOST_PYTHON:
        raise FabopsError(f"the host's python3 is {pyver}; fabops needs 3.9 or newer", host=host.name)
    pins = pins_for(py)
    if pins is None and require_pinned():
        raise unpinned_error(py, host)
    pins_sha = pins.sha256 if pins else None
    if py.installed and py.installed.get("sha256") == wheel.sha256 and py.installed.get("pins") == pins_sha:
        return InstallResult(False, wheel.version, wheel.sha256, pyver, f"fabops {wheel.version} already installed")
    what = "install" if not py.installed else f"upgrade from {py.installed.get('version')}"
    if py.installed and py.installed.get("sha256") == wheel.sha256:
        what = "reinstall (new pins)"
    source = "the --offline wheelhouse" if offline else "the index"
    deps = f"pinned {pins.name}" if pins else f"no pinned dependencies for {py.tag}: resolved from {source}"
    if dry_run:
        return InstallResult(True, wheel.version, wheel.sha256, pyver, f"would {what} fabops {wheel.version} ({deps})")
    _install(t, host, py, wheel, pins, offline)
    return InstallResult(True, wheel.version, wheel.sha256, pyver, f"{what} fabops {wheel.version} (python {pyver}, {deps})")


def _send(t: Target, host: Host, py: HostPython, wheel: Wheel, pins: Optional[Pins], offline: bool) -> Optional[str]:
    """Put the wheel, the pins and (--offline) the wheelhouse in the host's
    dist directory; the host path of that wheelhouse, or None (the index)."""
    dist = host.paths.dist
    t.run(sh("{home_dir} && mkdir -p {dist}", home_dir=home_dir_cmd(host), dist=path(dist)), "making fabops' directory")
    t.put(wheel.path, posixpath.join(_sftp_path(dist), wheel.name))
    if pins:
        t.put(pins.path, posixpath.join(_sftp_path(dist), pins.name))
    house = wheelhouse_for(py, offline, pins)
    if not house:
        return None
    remote_house = dist + "/wheelhouse"
    t.run(sh("rm -rf {house} && mkdir -p {house}", house=path(remote_house)), "making the wheelhouse")
    for name in sorted(os.listdir(house)):
        if name.endswith(".whl"):
            t.put(os.path.join(house, name), posixpath.join(_sftp_path(remote_house), name))
    return remote_house


def install_script(host: Host, wheel_name: str, marker: str, pins_name: Optional[str], house: Optional[str]) -> Cmd:
    """The host's install from its dist directory (the wheel, the pins file,
    the wheelhouse if any): the pinned dependencies first, every wheel
    hash-checked, even of a version already there (--force-reinstall: pip
    checks them all before it changes anything, so a mismatch stops here with
    the old install untouched), then the wheel alone and `pip check`; without
    pins, the wheel resolves its requirements."""
    dist, venv = host.paths.dist, path(venv_dir(host))
    links = sh("--no-index --find-links {house} ", house=path(house)) if house else raw("")
    pip = sh("{venv}/bin/python -m pip install --quiet --disable-pip-version-check {links}", venv=venv, links=links)
    wheel = path(dist + "/" + wheel_name)
    if pins_name:
        deps = sh("{pip}--require-hashes --only-binary=:all: --no-deps --force-reinstall -r {pins}\n",
                  pip=pip, pins=path(dist + "/" + pins_name))
        own = sh("{pip}--force-reinstall --no-deps {wheel}\n{venv}/bin/python -m pip check --disable-pip-version-check\n",
                 pip=pip, wheel=wheel, venv=venv)
    else:
        deps = raw("")
        own = sh("{pip}--force-reinstall --no-deps {wheel}\n{pip}{wheel}\n", pip=pip, wheel=wheel)
    # a venv from before the rename holds the distribution `fabops`: it is
    # dropped so that one distribution owns the package's files
    return sh(
        "set -e\n"
        "[ -x {venv}/bin/python ] || python3 -m venv {venv}\n"
        "{deps}"
        "rm -f {venv}/{marker_file}\n"
        "if ls {venv}/lib/python3*/site-packages 2>/dev/null | grep -q '^fabops-[0-9].*dist-info$'; then "
        "{venv}/bin/python -m pip uninstall --quiet --yes fabops >/dev/null; fi\n"
        "{own}"
        "{venv}/bin/fabops --version >/dev/null\n"
        "printf '%s\\n' {marker} > {venv}/{marker_file}\n",
        venv=venv, marker_file=MARKER, deps=deps, own=own, marker=marker)


def _install(t: Target, host: Host, py: HostPython, wheel: Wheel, pins: Optional[Pins], offline: bool) -> None:
    house = _send(t, host, py, wheel, pins, offline)
    marker = json.dumps({"version": wheel.version, "sha256": wheel.sha256, "python": f"{py.version[0]}.{py.version[1]}",
                         "pins": pins.sha256 if pins else None})
    script = install_script(host, wheel.name, marker, pins.name if pins else None, house)
    r = t.run(script, check=False, timeout=1800)  # pip from the index may be slow
    if not r.ok:
        raise CommandFailed(install_failure(r.stderr or r.stdout, pins), host=host.name)


def install_failure(output: str, pins: Optional[Pins]) -> str:
    """One line for a failed install; a hash mismatch names the packages."""
    if pins and "DO NOT MATCH THE HASHES" in output:
        names = sorted({line.split()[0] for line in output.splitlines()
                        if line.startswith("    ") and "==" in line.split()[0]})
        return (f"installing fabops on the host failed: a dependency's wheel does not match the hash in {pins.name} "
                f"({', '.join(names) or 'see pip'}); nothing was installed: a previous install is unchanged")
    tail = output.strip().splitlines()[-3:]
    return "installing fabops on the host failed: " + " | ".join(tail)
