"""fabops rebuilds its own wheel from any install (docs/architecture.md, "Host install")."""
import base64
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fabops import DIST_NAME, __version__, selfwheel


def test_the_wheel_is_byte_stable_and_well_formed():
    a, b = selfwheel.build(), selfwheel.build()
    assert a.data == b.data and a.sha256 == b.sha256
    assert a.name == f"fabops_ssh-{__version__}-py3-none-any.whl"
    zf = zipfile.ZipFile(io.BytesIO(a.data))
    names = zf.namelist()
    assert names == sorted(names[:-1]) + [names[-1]] and names[-1].endswith("/RECORD")
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    pkg = Path(selfwheel.__file__).parent
    files = [p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts] + list(pkg.glob("constraints/*.txt"))
    want = sorted(f"fabops/{p.relative_to(pkg).as_posix()}" for p in files)
    assert [n for n in want if n.startswith("fabops/constraints/host-")], "the host pins ship in the wheel"
    assert sorted(n for n in names if n.startswith("fabops/")) == want
    assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    info = f"fabops_ssh-{__version__}.dist-info"
    meta = zf.read(f"{info}/METADATA").decode()
    assert f"Name: {DIST_NAME}\n" in meta and f"Version: {__version__}\n" in meta
    assert "Requires-Dist: fabric" in meta and "pytest" not in meta  # runtime requirements only
    assert "fabops = fabops.cli:main" in zf.read(f"{info}/entry_points.txt").decode()
    for row in zf.read(f"{info}/RECORD").decode().splitlines():
        name, digest, size = row.split(",")
        if name.endswith("/RECORD"):
            continue
        data = zf.read(name)
        assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert int(size) == len(data)


def test_write_caches_by_stat_and_keeps_the_identity_across_mtimes(tmp_path, monkeypatch):
    path, sha = selfwheel.write(tmp_path)
    assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha
    built = []
    real = selfwheel.build
    monkeypatch.setattr(selfwheel, "build", lambda: built.append(1) or real())
    assert selfwheel.write(tmp_path) == (path, sha) and not built  # found by the stat key
    monkeypatch.setattr(selfwheel, "_stat_key", lambda root: "another-checkout")
    assert selfwheel.write(tmp_path) == (path, sha) and built == [1]  # rebuilt: the same bytes


def _venv(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(dest)], check=True)
    subprocess.run([str(dest / "bin/python"), "-m", "pip", "uninstall", "-q", "-y", "setuptools", "wheel"],
                   check=True, capture_output=True)
    return dest / "bin/python"


def test_a_wheel_install_without_setuptools_builds_an_installable_wheel(tmp_path, fabops_wheel):
    """The first release's failure: installed from a wheel, fabops could not
    build the wheel it installs on hosts. Here the built wheel and only its
    runtime dependencies (from the pre-built wheelhouse) go into a venv with
    no setuptools and no `wheel`; the wheel that install builds is the same
    on every run, installs again and runs."""
    from tests.conftest import TEST_CACHE, require

    house = TEST_CACHE / f"wheelhouse-cp{sys.version_info[0]}{sys.version_info[1]}"
    require(house.is_dir(), f"no wheelhouse in {house}: run .ci/prebuild-wheelhouses (bash .ci/run does)")
    laptop = _venv(tmp_path / "laptop")
    r = subprocess.run([str(laptop), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(house),
                        str(fabops_wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    probe = subprocess.run([str(laptop), "-c", "import importlib.util as u; print(u.find_spec('setuptools'), "
                            "u.find_spec('wheel'))"], capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["None", "None"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FABOPS_", "PYTHON"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path))
    code = "from fabops.install import local_wheel; w = local_wheel(); print(w.path); print(w.sha256)"
    runs = [subprocess.run([str(laptop), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert runs[0].stdout == runs[1].stdout
    built, sha = runs[0].stdout.split()
    assert str(tmp_path / "cache") in built and hashlib.sha256(Path(built).read_bytes()).hexdigest() == sha

    host = _venv(tmp_path / "host")
    r = subprocess.run([str(host), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(house), built],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(tmp_path / "host/bin/fabops"), "--version"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and __version__ in r.stdout, r.stdout + r.stderr


def test_without_an_installed_distribution_the_error_says_what_to_do(monkeypatch):
    from importlib import metadata

    from fabops.errors import UsageError

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(UsageError) as err:
        selfwheel.build()
    assert "FABOPS_WHEEL" in str(err.value) and "pip install fabops" not in str(err.value)
