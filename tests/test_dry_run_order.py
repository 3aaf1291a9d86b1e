"""A deploy's or a rollback's --dry-run (issue #24's trial): its summary row
came between the progress's fetch line and its plan lines. The plan lines
follow the progress, and the summary row comes after every one of them, on
the sandbox's real output (in a pipe, at 80 columns as a CI log)."""
from tests.conftest import run_cli


def _order(sandbox, task: str) -> list:
    r = run_cli(task, "-i", str(sandbox.inventory), "--dry-run", env={"COLUMNS": "80"})
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    fetch = [i for i, ln in enumerate(lines) if "✓ fetch" in ln]
    plan = [i for i, ln in enumerate(lines) if "] would " in ln or "] plan: " in ln]
    row = [i for i, ln in enumerate(lines) if ln.startswith("local ") and "would_deploy" in ln]
    assert fetch and plan and len(row) == 1, r.stdout
    assert max(fetch) < min(plan) and max(plan) < row[0], r.stdout
    return lines


def test_a_deploy_dry_runs_summary_row_follows_its_plan(sandbox):
    sandbox.result()
    sandbox.origin.good("2")
    _order(sandbox, "deploy")


def test_a_rollback_dry_runs_summary_row_follows_its_plan(sandbox):
    sandbox.result()
    sandbox.origin.good("2")
    sandbox.result()
    lines = _order(sandbox, "rollback")
    assert any("would pin" in ln for ln in lines), lines
