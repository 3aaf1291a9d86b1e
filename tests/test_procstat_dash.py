r"""The /proc reads monitor and status make (procstat.PROC_STAT) under dash,
Debian's /bin/sh, whose echo reads backslashes: a process named `a\cb`
(its comm in /proc/PID/stat) cut the section at `\c` and the pid's ticks
were lost. printf '%s\n' prints what the host holds as it is."""
import shutil
import subprocess

import pytest

from fabops.procstat import PROC_STAT, parse_end


@pytest.mark.skipif(not shutil.which("dash") or not shutil.which("sleep"), reason="needs dash and sleep")
def test_a_process_name_with_a_backslash_keeps_its_ticks_under_dash(tmp_path):
    named = tmp_path / "a\\cb"
    shutil.copy(shutil.which("sleep"), named)
    proc = subprocess.Popen([str(named), "30"])
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            assert "(a\\cb)" in f.read()
        out = subprocess.run(["dash", "-c", f"PIDS={proc.pid}; CGS=; {PROC_STAT}; echo after"],
                             capture_output=True, text=True, timeout=30).stdout
    finally:
        proc.kill()
        proc.wait()
    assert out.endswith("after\n") and proc.pid in parse_end(out)[2], out
