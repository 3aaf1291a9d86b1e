"""Static guarantees: Python 3.9 on the host, lazy imports on the cron path."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT


VERMIN = [str(Path(sys.executable).parent / "vermin"), "-t=3.9-", "--no-tips", "--violations",
          "--eval-annotations", "--no-parse-comments"]


def test_vermin_catches_3_10_only_code(tmp_path):
    """Negative control: the 3.9 check below can fail."""
    (tmp_path / "m.py").write_text("def f(x):\n    match x:\n        case 1:\n            return 2\n")
    r = subprocess.run([*VERMIN, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0 and "3.10" in r.stdout


def test_package_is_valid_python_3_9():
    """The host side runs on Amazon Linux 2023's Python 3.9, which cannot be
    installed here; vermin checks the minimum version statically. The whole
    package is checked, because `fabops local-update` loads the task tree."""
    r = subprocess.run(
        [*VERMIN, str(ROOT / "fabops")],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


HEAVY = ("paramiko", "fabric", "cryptography", "rich", "nacl", "bcrypt")


@pytest.mark.parametrize("argv", [["--list"], ["hosts", "--check"], ["local-update", "--verbose"], ["local-update"],
                                  ["health"], ["health", "--fix"]])
def test_cron_path_imports_no_paramiko_fabric_or_rich(argv, tmp_path):
    """`fabops local-update` runs under cron every few minutes for the life of
    the host: it must not pay for paramiko (~135 ms, ~40 MiB) or rich."""
    inv = tmp_path / "host.yml"
    inv.write_text(
        "hosts:\n  me:\n    connection: local\n    app: {path: app}\n    home: home\n"
        "    services: [{name: bot, manager: process, command: 'true', port: 9}]\n"
    )
    if argv[0] != "--list":
        argv = argv + ["-i", str(inv)]
    code = textwrap.dedent(
        f"""
        import sys
        from fabops import cli
        try:
            cli.main(["fabops", *{argv!r}])
        except SystemExit:
            pass
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        print("HEAVY:", ",".join(heavy))
        print("PIPELINE:", "fabops.host.pipeline" in sys.modules)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("HEAVY:")][-1]
    assert line == "HEAVY: ", r.stdout + r.stderr
    if argv[0] == "local-update":  # the pipeline really ran in that process
        assert "PIPELINE: True" in r.stdout
