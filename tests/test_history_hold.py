"""Trial (issue #24's Done-when trial, item 3): after a person's
`fabops local-update` held on a commit that failed its gate, `history` at
80 columns printed `origin is at 7c4027e8cd, which…; staying on cc247af77a
until origin moves`: the SHA the facts line shows was kept and the reason
(`failed its gate (bot died after starting…)`) cut; since #29 the
hold's reason is shown whole, wrapped at spaces. On the local sandbox
through the real `fabops` console script; the golden form is
tests/test_golden.py's test_history_keeps_a_holds_reason."""
import re

from tests.conftest import one, run_cli
from tests.test_reset_known_bad import _crashed_and_remembered


def test_a_holds_row_keeps_its_reason_at_80_columns(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    good, bad = _crashed_and_remembered(sandbox)
    code, res = sandbox.result("--trigger", "manual")
    assert (code, res["result"]) == (1, "skipped_bad"), res
    assert res["message"].startswith(f"origin is at {bad[:10]}, which failed its gate (bot died"), res
    r = run_cli("history", "-i", str(sandbox.inventory), "-H", "local", "-n", "3", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), r.stdout
    row = [i for i, line in enumerate(lines) if "skipped_bad" in line]
    assert row and f"{good[:10]}→{bad[:10]}" in lines[row[-1]], r.stdout
    # #29: the hold's reason whole, wrapped at spaces under its row
    what = " ".join(line.strip() for line in lines[row[-1] + 1:])
    assert what.endswith(": " + res["message"]), r.stdout
    assert re.search(r"failed its gate \(bot died after starting: its process is gone\); staying on "
                     + good[:10] + " until origin moves", what), r.stdout
    # the --json record keeps the whole message
    r = run_cli("history", "-i", str(sandbox.inventory), "-H", "local", "-n", "1", "--json")
    assert one(r.stdout)[-1]["message"] == res["message"], r.stdout
