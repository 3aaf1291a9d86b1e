"""Put this exact fabops on a host: a venv under the host home holding the
wheel built here, identified by version + wheel sha256 (so a development build
reinstalls). Used by `inv deploy` (repair a missing or outdated install) and
`inv setup`.

Dependencies come from the package index on the host, or with `--offline`
from a wheelhouse downloaded here for the host's own platform and Python
(`pip download --only-binary=:all: --platform ... --python-version ...`): a
macOS laptop cannot ship its own wheels to a Linux host.
"""
from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from . import __version__
from .errors import CommandFailed, FabopsError, UsageError
from .host.files import sha256_file
from .inventory import Host
from .probe import MARK, split_sections
from .remote import home_dir_cmd
from .shell import Cmd, path, raw, sh
from .target import Target

MIN_HOST_PYTHON = (3, 9)
MARKER = "fabops-install.json"


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
        return f"cp{self.version[0]}{self.version[1]}-{self.machine}"


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


def wheelhouse_for(py: HostPython, offline: bool) -> Optional[str]:
    """A directory of dependency wheels for the host, or None to use the index."""
    if not offline:
        return None
    env = os.environ.get("FABOPS_WHEELHOUSE")
    if env:
        # may name one dir, or a parent holding wheelhouse-cpXY dirs
        candidate = os.path.join(env, f"wheelhouse-cp{py.version[0]}{py.version[1]}")
        return candidate if os.path.isdir(candidate) else env
    dest = cache_dir() / "wheelhouse" / py.tag
    if not any(dest.glob("*.whl")):
        download_wheelhouse(py, str(dest))
    return str(dest)


def download_wheelhouse(py: HostPython, dest: str) -> None:
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(py.machine, py.machine)
    platforms = [f"manylinux2014_{machine}", f"manylinux_2_17_{machine}", f"manylinux_2_28_{machine}"]
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--implementation", "cp",
            "--python-version", f"{py.version[0]}.{py.version[1]}", "-d", dest]
    for plat in platforms:
        argv += ["--platform", plat]
    argv += runtime_requirements()
    r = subprocess.run(argv, capture_output=True, text=True)
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
    """Install this fabops into <host home>/venv unless exactly it is there."""
    wheel = wheel or local_wheel()
    t = Target.of(c, host)
    py = parse_probe(t.output(probe_cmd(host)))
    if not py.version:
        raise FabopsError(f"no usable python3 on the host (fabops needs Python {MIN_HOST_PYTHON[0]}.{MIN_HOST_PYTHON[1]}+)", host=host.name)
    pyver = f"{py.version[0]}.{py.version[1]}"
    if py.version < MIN_HOST_PYTHON:
        raise FabopsError(f"the host's python3 is {pyver}; fabops needs 3.9 or newer", host=host.name)
    if py.installed and py.installed.get("sha256") == wheel.sha256:
        return InstallResult(False, wheel.version, wheel.sha256, pyver, f"fabops {wheel.version} already installed")
    what = "install" if not py.installed else f"upgrade from {py.installed.get('version')}"
    if dry_run:
        return InstallResult(True, wheel.version, wheel.sha256, pyver, f"would {what} fabops {wheel.version}")

    dist = host.paths.dist
    t.run(sh("{home_dir} && mkdir -p {dist}", home_dir=home_dir_cmd(host), dist=path(dist)), "making fabops' directory")
    put = t.put
    put(wheel.path, posixpath.join(_sftp_path(dist), wheel.name))
    find_links = raw("")
    house = wheelhouse_for(py, offline)
    if house:
        remote_house = dist + "/wheelhouse"
        t.run(sh("mkdir -p {house}", house=path(remote_house)), "making the wheelhouse")
        for name in sorted(os.listdir(house)):
            if name.endswith(".whl"):
                put(os.path.join(house, name), posixpath.join(_sftp_path(remote_house), name))
        find_links = sh("--no-index --find-links {house} ", house=path(remote_house))
    marker = json.dumps({"version": wheel.version, "sha256": wheel.sha256, "python": pyver})
    # a venv from before the rename holds the distribution `fabops`: it is
    # dropped so that one distribution owns the package's files
    script = sh(
        "set -e\n"
        "[ -x {venv}/bin/python ] || python3 -m venv {venv}\n"
        "rm -f {venv}/{marker_file}\n"
        "if ls {venv}/lib/python3*/site-packages 2>/dev/null | grep -q '^fabops-[0-9].*dist-info$'; then "
        "{venv}/bin/python -m pip uninstall --quiet --yes fabops >/dev/null; fi\n"
        "{venv}/bin/python -m pip install --quiet --disable-pip-version-check {links}--force-reinstall --no-deps {wheel}\n"
        "{venv}/bin/python -m pip install --quiet --disable-pip-version-check {links}{wheel}\n"
        "{venv}/bin/fabops --version >/dev/null\n"
        "printf '%s\\n' {marker} > {venv}/{marker_file}\n",
        venv=path(venv_dir(host)), marker_file=MARKER, links=find_links, wheel=path(dist + "/" + wheel.name),
        marker=marker)
    r = t.run(script, check=False, timeout=1800)  # pip from the index may be slow
    if not r.ok:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise CommandFailed("installing fabops on the host failed: " + " | ".join(tail), host=host.name)
    return InstallResult(True, wheel.version, wheel.sha256, pyver, f"{what} fabops {wheel.version} (python {pyver})")

