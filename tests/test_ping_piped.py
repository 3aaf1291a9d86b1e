"""#24: piped `ping` (not a terminal) cut a row at the width of the terminal
the pipe ran in: a pipe, a file or a CI log has no width, so its rows come
whole (never cut, never wrapped); a terminal still cuts them at its width
(the control: FORCE_COLOR makes rich's console a terminal)."""
import pytest

from fabops.errors import UnreachableError
from fabops.fanout import HostResult
from fabops.probe import Probe
from fabops.tasks.ping import ping_table

ROW = ("production-eu-west-1a", "ec2-user-deployer", "3.9.16")
KERNEL = "Linux 6.1.115-126.197.amzn2023.x86_64 x86_64 #1 SMP PREEMPT_DYNAMIC Tue Nov  5 21:48:09 UTC 2024"


def _printed(capsys, monkeypatch, columns, terminal):
    monkeypatch.setenv("COLUMNS", str(columns))
    if terminal:
        monkeypatch.setenv("FORCE_COLOR", "1")
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    capsys.readouterr()
    ping_table([HostResult(ROW[0], value=Probe(kernel=KERNEL, uptime_seconds=600, python=ROW[2], user=ROW[1],
                                               seconds=0.084)),
                HostResult("staging-bastion-host-eu", error=UnreachableError("cannot connect"), code=3,
                           seconds=10.0)])
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [40, 60, 80])
def test_piped_rows_are_whole(capsys, monkeypatch, columns):
    out = _printed(capsys, monkeypatch, columns, terminal=False)
    lines = out.splitlines()
    assert "…" not in out, out
    (row,) = [line for line in lines if line.startswith(ROW[0])]
    assert row.split()[-2:] == [ROW[2], ROW[1]], out  # the whole row on its one line
    assert f"    {KERNEL}" in lines and "    kernel" in lines, out
    assert all(line == line.rstrip() for line in lines), out


def test_a_terminal_still_cuts_at_its_width(capsys, monkeypatch):
    out = _printed(capsys, monkeypatch, 60, terminal=True)
    assert "…" in out and ROW[1] not in out, out
