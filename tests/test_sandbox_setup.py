"""Issue #24 (what a new user meets after the demo): `setup` and `cron
--install/--remove` on the `local` sandbox host (`connection: local`) wrote
the person's REAL crontab and ~/.local/bin. On a sandbox host they write
inside the sandbox: the table is `<home>/crontab`, the wrappers are in
`<home>/bin`, no logrotate file under /etc. And `cron --install` refuses
while the fabops its lines run is not installed (setup installs it)."""
import os
from pathlib import Path

from fabops import inventory
from tests.conftest import run_cli

MINE = "0 3 * * * /usr/local/bin/nightly-report\n"


def spy_crontab(tmp_path) -> dict:
    """A `crontab` first on PATH that lists MINE for `-l` and records any
    other use (a write) in `written`: the person's crontab as a test sees it."""
    bindir = tmp_path / "spy-bin"
    bindir.mkdir()
    (bindir / "table").write_text(MINE)
    script = bindir / "crontab"
    script.write_text(f'#!/bin/sh\n[ "$1" = -l ] && cat {bindir / "table"} && exit 0\n'
                      f'cat > {bindir / "written"}\nexit 0\n')
    script.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}


def host_of(sandbox):
    return inventory.load(str(sandbox.inventory)).hosts["local"]


def fake_fabops(sandbox) -> Path:
    """The fabops setup installs, as far as `cron --install` looks at it."""
    path = Path(host_of(sandbox).paths.venv_bin("fabops"))
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_cron_install_and_remove_on_the_sandbox_write_its_own_table(sandbox, tmp_path):
    env = spy_crontab(tmp_path)
    fake_fabops(sandbox)
    table = Path(host_of(sandbox).paths.file("crontab"))
    r = run_cli("cron", "-i", str(sandbox.inventory), "--install", env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert not (tmp_path / "spy-bin" / "written").exists(), "the person's crontab was written"
    assert "local-update --trigger cron" in table.read_text() and MINE not in table.read_text()
    assert f"[local] crontab: changed ({table}: the sandbox's table; your own crontab is untouched)" in r.stdout
    assert f"+++ {table} (after)" in r.stdout, r.stdout
    shown = run_cli("cron", "-i", str(sandbox.inventory), env=env)
    assert "managed block:" in shown.stdout and "local-update" in shown.stdout, shown.stdout
    r = run_cli("cron", "-i", str(sandbox.inventory), "--remove", env=env)
    assert r.returncode == 0 and "fabops" not in table.read_text(), (r.stdout, r.stderr)
    assert not (tmp_path / "spy-bin" / "written").exists(), "the person's crontab was written"


def test_cron_install_refuses_before_setup_installed_fabops(sandbox, tmp_path):
    env = spy_crontab(tmp_path)
    fabops = host_of(sandbox).paths.venv_bin("fabops")
    r = run_cli("cron", "-i", str(sandbox.inventory), "--install", env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == "", (r.stdout, r.stderr)
    # the way out names the run's inventory, so it works as printed
    assert f"{fabops} is not installed" in r.stderr, r.stderr
    assert f"run `inv setup -i {sandbox.inventory} -H local`" in r.stderr, r.stderr
    assert not Path(host_of(sandbox).paths.file("crontab")).exists()
    # a dry run shows the block and says the install would refuse
    r = run_cli("cron", "-i", str(sandbox.inventory), "--install", "--dry-run", env=env)
    # and exits as the install would (trial: it exited 0 after its WARNING)
    assert r.returncode == 2 and "+# >>> fabops app >>>" in r.stdout, (r.stdout, r.stderr)
    assert "WARNING: " + fabops + " is not installed" in r.stdout, r.stdout
    for width in ("80", "200"):  # piped: the new lines too end in no space
        r = run_cli("cron", "-i", str(sandbox.inventory), "--install", "--dry-run", env={**env, "COLUMNS": width})
        assert r.returncode == 2 and not [ln for ln in r.stdout.splitlines() if ln != ln.rstrip()], r.stdout


def test_setup_check_on_the_sandbox_shows_its_own_table(sandbox, tmp_path):
    env = spy_crontab(tmp_path)
    r = run_cli("setup", "-i", str(sandbox.inventory), "--check", env={**env, "COLUMNS": "200"}, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    table = host_of(sandbox).paths.file("crontab")
    assert f"in {table} (the sandbox's table: your own crontab is not read or changed)" in r.stdout, r.stdout
    assert "nightly-report" not in r.stdout, r.stdout  # the person's crontab is not even read
    assert "~/.local/bin" not in r.stdout and host_of(sandbox).paths.file("bin", "bot-status") in r.stdout, r.stdout


def test_setup_items_write_inside_the_sandbox(sandbox, tmp_path, monkeypatch):
    """setup's crontab and wrapper items, run for real on the sandbox host
    (the rest of setup installs fabops, which is the sandbox's own venv)."""
    from invoke import Context

    from fabops import setup
    from fabops.target import Target

    env = spy_crontab(tmp_path)
    monkeypatch.setenv("PATH", env["PATH"])
    person = tmp_path / "person"
    person.mkdir()
    monkeypatch.setenv("HOME", str(person))
    host = host_of(sandbox)
    Path(host.paths.home).mkdir(parents=True)  # setup's host.yml item makes it, before the crontab's
    run = setup._Setup(Target(Context(), host.name, host.home), host, check=False, yes=False, offline=True,
                       replace_units=False, splay=30)
    results = list(setup._crontab(run)) + list(setup._wrappers(run)) + list(setup._logrotate(run))
    assert all(r.status == "changed" for r in results), [(r.name, r.status, r.message) for r in results]
    assert not (tmp_path / "spy-bin" / "written").exists(), "the person's crontab was written"
    assert not (person / ".local").exists(), "wrappers went to the person's ~/.local/bin"
    assert "local-update" in Path(host.paths.file("crontab")).read_text()
    assert os.access(host.paths.file("bin", "bot-status"), os.X_OK)
