"""Untracked files in the app directory (#24's trial; docs/pipeline.md,
"Untracked files"): a run that keeps them warns in the planner's words and
exits 1 (docs/errors.md, WARNING), whichever way it is run: the real
deploy, its dry run (which prints the warning its JSON has: it printed a
clean plan and exited 1 in silence), `--no-watch` (exit 0 before) and a
deploy that waited for that run (exit 0 while the run it reported exited
1). Its preflight says the files were kept, not `clean`. Real runs on the
sandbox host, the process back end."""
import json

from tests.conftest import run_cli
from tests.test_watch_lock import CronRun, long_watch

KEPT = "keeping 2 untracked files that the repository does not have: data/b.txt, data/notes.txt"


def _untracked(sandbox) -> None:
    (sandbox.app / "data").mkdir()
    for name in ("b.txt", "notes.txt"):
        (sandbox.app / "data" / name).write_text(name)


def _flat(text: str) -> str:
    """The output with its wrapped lines joined back (80 columns, as CI's log)."""
    return " ".join(ln.strip() for ln in text.splitlines())


def _run(sandbox, *args):
    return run_cli(*args, "-i", str(sandbox.inventory), env={"COLUMNS": "80"})


def test_every_dry_run_says_the_warning_it_exits_1_for(sandbox):
    _, first = sandbox.result()
    sandbox.origin.good("2")
    sandbox.result()
    _untracked(sandbox)
    v3 = sandbox.origin.good("3")
    for args in (("deploy",), ("deploy", "--ref", v3[:10]), ("rollback", "--to", first["to"][:10])):
        r = _run(sandbox, *args, "--dry-run")
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert f"[local] warning: {KEPT}" in _flat(r.stdout), (args, r.stdout)
        data = json.loads(_run(sandbox, *args, "--dry-run", "--json").stdout)["hosts"]["local"]
        assert data["exit_code"] == 1 and any(w.startswith(KEPT) for w in data["warnings"]), data


def test_the_real_deploy_and_no_watch_exit_1_and_the_preflight_says_what_it_kept(sandbox):
    sandbox.result()
    _untracked(sandbox)
    sandbox.origin.good("2")
    r = _run(sandbox, "deploy")
    assert r.returncode == 1, (r.stdout, r.stderr)
    flat = _flat(r.stdout)
    # said once, as the run's log line where it happens (71b3824: a warning
    # the run already said is not said again under its result)
    assert f"· {KEPT}" in flat and flat.count(KEPT) == 1 and "✓ preflight" in flat, flat
    assert "no local changes; 2 untracked files kept; 1 file changed" in flat and " clean" not in flat, flat
    sandbox.origin.good("3")
    r = _run(sandbox, "deploy", "--no-watch", "--json")
    data = json.loads(r.stdout)["hosts"]["local"]
    assert r.returncode == 1 and data["exit_code"] == 1 and data["watching"], data
    assert any(w.startswith(KEPT) for w in data["warnings"]), data


def test_a_deploy_that_waited_for_the_run_it_reports_exits_as_that_run_does(sandbox):
    sandbox.result()
    _untracked(sandbox)
    long_watch(sandbox, "4s")
    v2 = sandbox.origin.good("2")
    cron = CronRun(sandbox)
    try:
        cron.wait_for_watch()
        code, res = sandbox.result("--trigger", "deploy", "--actor", "alice@laptop", "--run-id", "dep1")
        theirs_code, theirs = cron.result()
    finally:
        cron.end()
    assert (theirs_code, theirs["result"]) == (1, "deployed"), theirs
    assert (code, res["result"], res["to"]) == (1, "deployed", v2), res
    assert res["message"].startswith("waited for run cronrun") and res["warnings"] == theirs["warnings"], res
