"""Issue #24 on the host side: the laptop spelled a commit with 10 hex
characters (fabops/shortsha.py) while the host's lines said 12 (a dry
run's `would checkout …`, `origin/main is …`, `rolled back to …`, the
lock holder's `target …`), so one screen showed both. The host's lines
now use the same helper; its data (state, history, --json) keeps the full
SHA."""
import re

from fabops.shortsha import SHORT
from tests.conftest import one, run_cli

SHA = "9b8c7d6e5f4a3b2c1d0e" * 2


def test_the_host_helpers_spell_a_commit_as_the_laptop_does():
    from fabops.host import plan, record
    from fabops.host.git import Git
    from fabops.host.lock import describe_holder

    # each keeps its own word for no commit
    assert (record.short(SHA), record.short(None), record.short("")) == (SHA[:SHORT], "none", "none")
    assert (plan.short(SHA), plan.short(None)) == (SHA[:SHORT], "-")
    said = describe_holder({"trigger": "cron", "actor": "c@h", "target": SHA, "pid": 7})
    assert said == f"cron by c@h (target {SHA[:SHORT]}, pid 7)", said
    labels = []
    git = Git.__new__(Git)  # only its step label is read here: no checkout runs
    git.path, git.run = "/srv/app", lambda cmd, what, warn=False: labels.append(what)
    git.checkout("main", SHA)
    assert labels == [f"git checkout {SHA[:SHORT]}"], labels


def _spelled(text, commits):
    """Each commit's runs of hex characters in `text`, by length."""
    return {len(m) for sha in commits for m in re.findall(re.escape(sha[:7]) + "[0-9a-f]*", text)}


def test_a_real_runs_lines_spell_every_commit_with_ten_characters(sandbox):
    """A deploy's dry run and its progress, a rollback's dry run: the
    host's own words, as the laptop prints them (wide, so that nothing
    wraps inside a SHA), never a longer or shorter cut; --json keeps 40."""
    assert sandbox.result()[0] == 0
    v1 = sandbox.origin.head
    sandbox.origin.good("2")
    v2 = sandbox.origin.head
    inv, wide = str(sandbox.inventory), {"COLUMNS": "200"}

    dry = run_cli("deploy", "-i", inv, "--dry-run", env=wide)
    assert dry.returncode == 0 and f"would checkout {v2[:SHORT]}: deploy {v1[:SHORT]} -> {v2[:SHORT]}" in dry.stdout, \
        dry.stdout + dry.stderr
    assert _spelled(dry.stdout, [v1, v2]) == {SHORT}, dry.stdout
    data = one(run_cli("deploy", "-i", inv, "--dry-run", "--json").stdout)
    assert (data["from"], data["to"]) == (v1, v2), data

    assert sandbox.result()[0] == 0
    sandbox.origin.crash("3")
    v3 = sandbox.origin.head
    live = run_cli("deploy", "-i", inv, env=wide)
    assert live.returncode == 2 and f"origin/main is {v3[:SHORT]}" in live.stdout, live.stdout + live.stderr
    assert f"rolled back to {v2[:SHORT]}" in live.stdout, live.stdout
    assert _spelled(live.stdout + live.stderr, [v1, v2, v3]) == {SHORT}, live.stdout + live.stderr
    last = sandbox.history()[-1]
    assert (last["from"], last["to"], last["result"]) == (v2, v3, "rolled_back"), last
    assert f"{v3[:SHORT]} failed" in last["message"] and v3[:SHORT + 1] not in last["message"], last

    back = run_cli("rollback", "-i", inv, "--dry-run", env=wide)
    assert back.returncode == 0 and f"would pin {v1[:SHORT]}" in back.stdout, back.stdout + back.stderr
    assert _spelled(back.stdout, [v1, v2, v3]) == {SHORT}, back.stdout
