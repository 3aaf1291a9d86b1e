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
    assert f"run `fabops setup -i {sandbox.inventory} -H local`" in r.stderr, r.stderr
    assert not Path(host_of(sandbox).paths.file("crontab")).exists()
    # a dry run says the install would refuse, as every dry run says a refusal
    # (#24's trial: a WARNING label on a run that exits 2), then the block
    r = run_cli("cron", "-i", str(sandbox.inventory), "--install", "--dry-run", env=env)
    # and exits as the install would (trial: it exited 0 after its WARNING)
    assert r.returncode == 2 and "+# >>> fabops app >>>" in r.stdout, (r.stdout, r.stderr)
    said = " ".join(r.stdout.replace(" \\\n", " ").split())  # a command's lines joined (_base._continued)
    assert (f"[local] would stop: {fabops} is not installed (the block's lines run it): run `fabops setup -i "
            f"{sandbox.inventory} -H local` (it installs fabops there and this block) instead") in said, r.stdout
    assert "WARNING" not in r.stdout and "would change crontab" not in r.stdout, r.stdout
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


def plain_local(sandbox) -> Path:
    """The same host as `sandbox`, without `sandbox: true`: this machine
    for real (a team running fabops on the host itself)."""
    import yaml

    data = yaml.safe_load(Path(sandbox.inventory).read_text())
    del data["hosts"]["local"]["sandbox"]
    path = Path(sandbox.inventory).with_name("plain.yml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_plain_local_host_is_this_machine_for_real(sandbox, tmp_path, monkeypatch):
    """Review: every `connection: local` host was taken for the sandbox, so a
    real local host's cron block went to a file nothing runs (monitor then
    reports cron stalled) and a block in the real crontab could no longer be
    removed. Only `sandbox: true` keeps setup and cron inside home."""
    from invoke import Context

    from fabops import setup
    from fabops.cron import sandbox_table
    from fabops.target import Target

    host = inventory.load(str(plain_local(sandbox))).hosts["local"]
    assert not host.sandbox and sandbox_table(host) is None and host_of(sandbox).sandbox
    env = spy_crontab(tmp_path)
    monkeypatch.setenv("PATH", env["PATH"])
    person = tmp_path / "person"
    person.mkdir()
    monkeypatch.setenv("HOME", str(person))
    Path(host.paths.home).mkdir(parents=True)
    run = setup._Setup(Target(Context(), host.name, host.home), host, check=False, yes=False, offline=True,
                       replace_units=False, splay=30)
    results = list(setup._crontab(run)) + list(setup._wrappers(run))
    assert all(r.status == "changed" for r in results), [(r.name, r.status, r.message) for r in results]
    written = (tmp_path / "spy-bin" / "written").read_text()
    assert MINE in written and "local-update" in written, written  # the real table, the person's line kept
    assert os.access(person / ".local" / "bin" / "bot-status", os.X_OK)
    assert not Path(host.paths.file("crontab")).exists()


def test_sandbox_needs_a_local_connection(tmp_path):
    from fabops import errors

    inv = tmp_path / "hosts.yml"
    inv.write_text("hosts:\n  web: {address: 10.0.0.1, sandbox: true, app: {path: /srv/app}}\n")
    try:
        inventory.load(str(inv))
    except errors.ConfigError as exc:
        assert "hosts.web.sandbox" in str(exc) and "connection: local" in str(exc), str(exc)
    else:
        raise AssertionError("sandbox: true on an ssh host was accepted")


def test_the_demos_host_is_a_sandbox_whatever_hosts_yml_says(tmp_path):
    from fabops.demo import sandbox_entry

    entry = sandbox_entry({"connection": "local", "app": {"path": ".fabops-demo/host/app"}}, tmp_path, 3013)
    assert entry["sandbox"] is True


def test_setup_warns_where_backups_would_stay_on_the_host(sandbox, tmp_path):
    """Issue #26: no repository is a warning (a backup on the host's own
    disk is not a backup); with one, restic missing from cron's PATH or a
    password file open to others is a warning in host/restic.ready's words,
    and a usable one is ok, its URL's password masked. Read for real on
    the sandbox host (the deploy user's shell)."""
    import yaml
    from invoke import Context

    from fabops import setup
    from fabops.host.backup import NO_OFF_HOST
    from fabops.host.restic import NO_RESTIC
    from fabops.target import Target

    def item(backup=None, path=None):
        data = yaml.safe_load(Path(sandbox.inventory).read_text())
        entry = data["hosts"]["local"]
        if backup:
            entry["backup"] = backup
        if path:
            entry["env"] = {"PATH": path}
        inv = tmp_path / "b.yml"
        inv.write_text(yaml.safe_dump(data, sort_keys=False))
        host = inventory.load(str(inv)).hosts["local"]
        run = setup._Setup(Target(Context(), host.name, host.home), host, check=True, yes=False, offline=True,
                           replace_units=False, splay=30)
        (got,) = setup._backups(run)
        return got.status, got.message

    assert item() == ("warning", NO_OFF_HOST)
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(0o644)
    repo = {"repository": {"url": "rest:https://u:hunter2@127.0.0.1:1/r", "password_file": str(pw)}}
    bindir = tmp_path / "restic-bin"
    bindir.mkdir()
    (bindir / "restic").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "restic").chmod(0o755)
    status, said = item(repo, f"{bindir}:/usr/bin:/bin")
    assert status == "warning" and said.startswith(f"the repository's password file {pw} is open to others "
                                                   "(mode 0644): chmod 600 it"), said
    pw.chmod(0o600)
    assert item(repo, f"{bindir}:/usr/bin:/bin") == ("ok", "off the host to rest:https://u:***@127.0.0.1:1/r")
    status, said = item(repo, "/nonexistent")
    assert (status, said) == ("warning", f"{NO_RESTIC}: backups would stay on the host"), said
    pw.unlink()
    status, said = item(repo, f"{bindir}:/usr/bin:/bin")
    assert status == "warning" and f"password file {pw} is not there" in said, said
