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


@pytest.mark.parametrize("argv", [["--list"], ["hosts", "--check"]])
def test_cron_path_imports_no_paramiko_fabric_or_rich(argv):
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
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("HEAVY:")][-1]
    assert line == "HEAVY: ", r.stdout + r.stderr
