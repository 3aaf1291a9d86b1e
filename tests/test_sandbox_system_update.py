"""system-update on the `local` sandbox host (#24's trial): setup and cron
keep inside the sandbox, but an OS upgrade cannot, and `--check` offered
`inv system-update -H local --yes`, which would upgrade this machine's own
packages. --yes is refused there (64) before anything runs."""
from tests.conftest import run_cli


def test_system_update_yes_is_refused_on_a_local_host(sandbox, tmp_path):
    spy = tmp_path / "bin"
    spy.mkdir()
    ran = tmp_path / "ran"
    for name in ("sudo", "apt-get", "dnf", "yum"):  # nothing of an upgrade may run
        (spy / name).write_text(f"#!/bin/sh\necho {name} >> {ran}\nexit 1\n")
        (spy / name).chmod(0o755)
    import os

    env = {"PATH": f"{spy}:{os.environ['PATH']}", "COLUMNS": "80"}
    r = run_cli("system-update", "-i", str(sandbox.inventory), "-H", "local", "--yes", env=env)
    assert r.returncode == 64, (r.stdout, r.stderr)
    said = " ".join(r.stderr.split())
    assert "system-update --yes would upgrade this machine's own packages" in said, r.stderr
    assert "Traceback" not in r.stderr and not ran.exists()
    r = run_cli("system-update", "-i", str(sandbox.inventory), "-H", "local", "--yes", "--json", env=env)
    import json

    assert r.returncode == 64 and json.loads(r.stdout)["hosts"]["local"]["code"] == 64, (r.stdout, r.stderr)
