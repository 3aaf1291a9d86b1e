"""A healthy `reset` ends the `failing` record (#24's trial): cron's run
aborted on v2 for a person's local changes; origin moved on to v3, and the
person reset the host to it (their changes saved aside). The reset recorded
`deployed` v3, but state.json's `failing` still held the aborted run's
streak for v2, so `status` went on saying `updates failing … for v2: local
changes …` and exited 1, a reason no run had since. A reset that deployed
ends it as a pipeline run that deployed does (host/state.failing_after)."""
from tests.conftest import run_cli


def test_a_healthy_reset_ends_the_failing_streak_before_it(sandbox):
    sandbox.result()
    sandbox.origin.good("2")
    mine = sandbox.app / "requirements.txt"
    mine.write_text(mine.read_text() + "\n# mine\n")
    code, res = sandbox.result()
    assert (code, res["result"]) == (2, "aborted") and "local changes" in res["message"], res
    assert sandbox.state["failing"]["reason"].startswith("local changes")
    v3 = sandbox.origin.good("3")
    r = run_cli("reset", "-i", str(sandbox.inventory), "-H", "local", "--yes", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    state = sandbox.state
    assert (state["deployed"], state["last_result"], state["failing"]) == (v3, "deployed", None), state
    r = run_cli("status", "-i", str(sandbox.inventory), env={"COLUMNS": "80"})
    assert r.returncode == 0 and "updates failing" not in r.stdout and "local changes" not in r.stdout, r.stdout
    assert "reset by " in r.stdout and f"-> {v3[:10]}" in r.stdout, r.stdout
