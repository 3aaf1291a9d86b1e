"""The wheel of the fabops that is running here, rebuilt from its own files.

Why not `pip wheel <source tree>`: a fabops installed from a wheel, with pipx
or from a git URL has no source tree, no setuptools and no `wheel` package,
yet it must install itself on hosts (docs/architecture.md, "Host install").
Every install does have the `fabops` package directory and its distribution
metadata, and a wheel is only a zip with a fixed layout (PEP 427), so we
write that zip ourselves with the standard library.

The zip is deterministic: entries sorted, fixed timestamps and modes, no
`__pycache__`. The same installed code gives the same bytes on every run, so
its sha256 identifies it and the host's install check stays one `cat` of a
marker file.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Tuple

from . import DIST_NAME, __version__
from .errors import UsageError

# A fixed time for every entry: zip's epoch (1980-01-01), as reproducible
# builds do; a file's own mtime would change the bytes on every checkout.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class BuiltWheel:
    name: str      # the PEP 427 file name
    data: bytes
    sha256: str


def package_dir() -> Path:
    return Path(__file__).resolve().parent


def _package_files(root: Path) -> List[Tuple[str, bytes]]:
    """(archive name, bytes) of every file of the package, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(_SKIP_SUFFIXES) or name.startswith("."):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root.parent).as_posix()
            out.append((rel, path.read_bytes()))
    return sorted(out)


def _normalized(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


def _distribution():
    from importlib import metadata

    try:
        return metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError:
        raise UsageError(
            f"fabops is not installed as the distribution {DIST_NAME!r}, so it cannot build the wheel it "
            "installs on hosts; install it with pip or pipx (see the README), or set FABOPS_WHEEL to a fabops wheel"
        ) from None


def runtime_requirements(dist=None) -> List[str]:
    """fabops' own runtime requirements (no extras), from its installed metadata."""
    dist = dist or _distribution()
    return [r.split(";")[0].strip() for r in (dist.requires or []) if "extra ==" not in r]


def _metadata_text(dist) -> str:
    meta = dist.metadata
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DIST_NAME}",
        f"Version: {__version__}",
        f"Summary: {meta.get('Summary') or 'fabops'}",
    ]
    if meta.get("Requires-Python"):
        lines.append(f"Requires-Python: {meta['Requires-Python']}")
    lines += [f"Requires-Dist: {r}" for r in runtime_requirements(dist)]
    return "\n".join(lines) + "\n"


def _entry_points_text(dist) -> str:
    scripts = sorted((ep.name, ep.value) for ep in dist.entry_points if ep.group == "console_scripts")
    if not scripts:  # the host's cron needs the console script whatever the metadata says
        scripts = [("fabops", "fabops.cli:main")]
    return "[console_scripts]\n" + "".join(f"{n} = {v}\n" for n, v in scripts)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _zip(entries: Iterable[Tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the laptop's OS
            zf.writestr(info, data, compresslevel=6)
    return buf.getvalue()


def build() -> BuiltWheel:
    """Build the wheel of the running fabops in memory (deterministic bytes)."""
    dist = _distribution()
    files = _package_files(package_dir())
    info_dir = f"{_normalized(DIST_NAME)}-{__version__}.dist-info"
    meta = [
        (f"{info_dir}/METADATA", _metadata_text(dist).encode()),
        (f"{info_dir}/WHEEL", b"Wheel-Version: 1.0\nGenerator: fabops.selfwheel\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info_dir}/entry_points.txt", _entry_points_text(dist).encode()),
        (f"{info_dir}/top_level.txt", b"fabops\n"),
    ]
    entries = files + meta
    record_name = f"{info_dir}/RECORD"
    record = "".join(_record_line(n, d) + "\n" for n, d in entries) + f"{record_name},,\n"
    data = _zip(entries + [(record_name, record.encode())])
    name = f"{_normalized(DIST_NAME)}-{__version__}-py3-none-any.whl"
    return BuiltWheel(name, data, hashlib.sha256(data).hexdigest())


def _stat_key(root: Path) -> str:
    """A cheap key for "the same files as last time": names, sizes and mtimes.
    Stat-ing the package takes a few ms; reading the metadata and zipping it
    takes tens, on every deploy."""
    digest = hashlib.sha256(f"{DIST_NAME} {__version__}".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(_SKIP_SUFFIXES) and not name.startswith("."):
                st = os.stat(os.path.join(dirpath, name))
                digest.update(f"{dirpath}/{name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def write(out_dir: Path) -> Tuple[Path, str]:
    """The wheel of the running fabops, stored under out_dir; returns (path, sha256).

    Built once per change of the package's files; a stat key finds it again.
    The sha256 is of the bytes, so a rebuild of unchanged code (a new
    checkout, other mtimes) still gives the same identity."""
    index = out_dir / "by-stat" / _stat_key(package_dir())
    try:
        path_text, sha = index.read_text().split("\n")[:2]
        if Path(path_text).is_file():
            return Path(path_text), sha
    except (OSError, ValueError):
        pass
    wheel = build()
    dest = out_dir / wheel.sha256[:16] / wheel.name
    if not dest.is_file():
        _atomic_write(dest, wheel.data)
    _atomic_write(index, f"{dest}\n{wheel.sha256}\n".encode())
    return dest, wheel.sha256


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # unique per thread too: parallel deploys build the same wheel at once
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}.{threading.get_ident()}")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
