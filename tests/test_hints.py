"""Every hint that names a command names the host(s) it was run for, and
`-i PATH` when the run used an inventory the usual lookup would not find
(new-user trial: `inv unpin`, `inv backup-env --list`, `--yes` alone
pointed at the default host, which may be production)."""
import stat

import pytest

from tests.conftest import run_cli


def _dnf(tmp_path, count):
    """A `dnf` on PATH whose check-update lists `count` packages (exit 100)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    lines = "".join(f"echo 'pkg{i}.x86_64  1.0-{i}  updates'\n" for i in range(count))
    stub = bin_dir / "dnf"
    stub.write_text(f"#!/bin/sh\n{lines}exit 100\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    import os

    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "COLUMNS": "200"}


def test_status_pin_hint_names_the_host_and_the_inventory(capsys, monkeypatch):
    from fabops.tasks.render import status_panel

    monkeypatch.setenv("COLUMNS", "200")
    data = {"services": [], "deployed": "a" * 40, "pin": "a" * 40, "pin_reason": "rollback by x@y"}
    status_panel("web-1", data, flag="/srv/ops/hosts.yml")
    out = capsys.readouterr().out
    assert "`fabops unpin -i /srv/ops/hosts.yml -H web-1` to follow the branch again" in out, out
    status_panel("web-1", data)
    assert "`fabops unpin -H web-1` to follow" in capsys.readouterr().out


def test_system_update_and_restore_env_hints(sandbox, tmp_path):
    inv = str(sandbox.inventory)
    r = run_cli("system-update", "-i", inv, "-H", "local", "--check", env=_dnf(tmp_path, 3))
    assert r.returncode == 1, r.stdout + r.stderr
    # the sandbox runs on this machine: no --yes is offered (test_sandbox_system_update refuses it)
    assert " 3 updates available (this machine's own: --yes is refused on a local host)" in r.stdout, r.stdout
    r = run_cli("restore-env", "-i", inv)
    assert r.returncode == 64, r.stderr
    assert f"(see `fabops backup-env -i {inv} -H local --list`)" in r.stderr.replace("\n        ", " "), r.stderr
    r = run_cli("restore-env", "-i", inv, "-b", "20990101T000000.env", "--dry-run")
    assert r.returncode == 64, r.stderr
    assert f"(see `fabops backup-env -i {inv} -H local --list`)" in r.stderr.replace("\n        ", " "), r.stderr


@pytest.mark.parametrize("count, more", [(50, None), (126, 76)])
def test_system_update_says_how_many_it_does_not_list(sandbox, tmp_path, count, more):
    """Trial: 126 updates available, then 50 package lines and no word of
    the other 76."""
    inv = str(sandbox.inventory)
    r = run_cli("system-update", "-i", inv, "-H", "local", "--check", env=_dnf(tmp_path, count))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert sum(1 for ln in lines if ln.startswith("[local]   pkg")) == 50, r.stdout
    tail = [ln for ln in lines if "more" in ln]
    if more is None:
        assert not tail, r.stdout
    else:
        assert tail == [f"[local]   … and {more} more: `fabops system-update -i {inv} -H local --check --json` "
                        "lists them all"], r.stdout
