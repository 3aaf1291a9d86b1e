"""Issue #24: `fabops --version` names fabops' version and what it runs on
(Invoke, Fabric, Paramiko, Python); `inv --version` is Invoke's own,
answered before tasks.py is loaded, so fabops cannot change it (said in
docs/tasks.md, which this checks stays true)."""
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from fabops import __version__
from tests.conftest import ROOT, run_cli


def test_fabops_version_names_what_it_runs_on():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout == (f"fabops {__version__} (Invoke {metadata.version('invoke')}, Fabric {metadata.version('fabric')}, "
                        f"Paramiko {metadata.version('paramiko')}, Python {platform.python_version()})\n"), r.stdout
    assert len(r.stdout.rstrip("\n")) <= 80


def test_a_missing_distribution_is_said(monkeypatch):
    from fabops.tasks import program

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda d: raise_missing() if d == "fabric" else real(d))
    assert "Fabric not installed, Paramiko " in program.version_line("1.2.3")


def raise_missing():
    raise metadata.PackageNotFoundError("fabric")


def test_inv_answers_version_before_it_loads_tasks_py(tmp_path):
    """The limitation docs/tasks.md states: a tasks.py that would say it
    was loaded is never imported by `inv --version`."""
    (tmp_path / "tasks.py").write_text(f"open({str(tmp_path / 'loaded')!r}, 'w').close()\n"
                                       "from invoke import task\n\n@task\ndef x(c):\n    pass\n")
    inv = str(Path(sys.executable).with_name("inv"))
    r = subprocess.run([inv, "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("Invoke "), r.stdout + r.stderr
    assert not (tmp_path / "loaded").exists()
    subprocess.run([inv, "--list"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert (tmp_path / "loaded").exists()  # the same tasks.py, loaded for anything else
    said = (ROOT / "docs" / "tasks.md").read_text()
    assert "`inv --version` prints Invoke's version only" in said and "KeyboardInterrupt" in said
