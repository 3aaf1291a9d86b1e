"""Trial (issue #24's Done-when trial, item 1): `reset` onto a commit that
failed its gate said nothing of it, in its dry run or its real run, while
deploy's said so. The one check (host/plan.known_bad) decides for both
tasks and words one line, which a run and its dry run both say: `X failed
its gate before (REASON), so cron skips it; this deploy tries it again`,
and for reset, which deploys nothing, what it does (its --json said
`deploying it again because reset asked`). On the local sandbox through the
real `fabops` console script."""
import json

from tests.conftest import run_cli


def _crashed_and_remembered(sandbox):
    """v1 deployed; origin at a commit that crashes on boot, which a deploy
    rolled back and state.json remembers as bad."""
    sandbox.result()
    good = sandbox.origin.head
    bad = sandbox.origin.crash("8")
    r = run_cli("deploy", "-i", str(sandbox.inventory), "-H", "local", "--json")
    res = json.loads(r.stdout)["hosts"]["local"]
    assert res["result"] == "rolled_back" and bad in sandbox.state["bad"], r.stdout + r.stderr
    assert sandbox.head() == good
    return good, bad


def test_reset_says_a_known_bad_target_as_deploy_does(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    good, bad = _crashed_and_remembered(sandbox)
    inv = str(sandbox.inventory)
    said = f"{bad[:10]} failed its gate before (bot died after starting"
    deploy = run_cli("deploy", "-i", inv, "-H", "local", "--dry-run")
    joined = " ".join(deploy.stdout.split())
    assert said in joined and "), so cron skips it; this deploy tries it again" in joined, deploy.stdout
    for cols in ("80", "200"):
        r = run_cli("reset", "-i", inv, "-H", "local", "--dry-run", env={"COLUMNS": cols})
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith(f"[local] plan: {said}"), r.stdout
        assert RESET_DOES in " ".join(r.stdout.split()), r.stdout
        assert f"would reset {good[:10]} -> {bad[:10]}" in r.stdout, r.stdout
    r = run_cli("reset", "-i", inv, "-H", "local", "--dry-run", "--json")
    res = json.loads(r.stdout)["hosts"]["local"]
    assert res["known_bad"].startswith(said) and res["deployed"] == good, res
    assert res["known_bad"].endswith(RESET_DOES) and "deploying" not in res["known_bad"], res
    # the real reset goes ahead as a deploy does, and says so first, in the
    # same line, once: in its plan, before the confirmation (a trial read it
    # in the plan and again as a `·` step line)
    r = run_cli("reset", "-i", inv, "-H", "local", "--yes", timeout=180)
    joined = " ".join(r.stdout.split())
    assert joined.startswith("[local] plan: ") and joined.count("failed its gate before") == 1, r.stdout
    assert joined.index(f"; {res['known_bad']}") < joined.index("✓ save"), r.stdout
    assert r.returncode == 5 and "broken: reset to" in r.stdout, r.stdout + r.stderr


# what reset does with a known-bad target (host/plan.AGAIN): it deploys nothing
RESET_DOES = ("), so cron skips it; this reset moves the checkout onto it anyway; it leaves the known-bad list "
              "only if its services come up healthy")


def test_a_deploy_onto_a_known_bad_commit_warns_it_in_its_json(sandbox, monkeypatch):
    """#24: a real deploy onto a known-bad commit said so in its lines but
    not in --json's `warnings`; its dry run said another line. Now one line
    (Plan.known_bad): the dry run's plan and warnings, the real run's
    warnings and lines."""
    monkeypatch.delenv("CI", raising=False)
    good, bad = _crashed_and_remembered(sandbox)
    inv = str(sandbox.inventory)
    r = run_cli("deploy", "-i", inv, "-H", "local", "--dry-run", "--json")
    dry = json.loads(r.stdout)["hosts"]["local"]
    assert r.returncode == 0 and dry["exit_code"] == 0, dry  # warned; the person asked: not exit 1
    line = dry["plan"]["known_bad"]
    assert line.startswith(f"{bad[:10]} failed its gate before (bot died") and line.endswith(
        "), so cron skips it; this deploy tries it again"), dry
    assert line in dry["warnings"] and dry["plan"]["bad"] is True, dry
    r = run_cli("deploy", "-i", inv, "-H", "local", "--json", timeout=180)
    res = json.loads(r.stdout)["hosts"]["local"]
    assert res["result"] == "rolled_back" and line in res["warnings"], r.stdout + r.stderr


def test_a_known_bad_warning_alone_is_no_exit_1():
    """A person's run onto a known-bad commit that comes up healthy exits 0
    (they asked for it), though --json warns it; any other warning still
    makes it 1 (record.RunResult.exit_code)."""
    from fabops.host.record import RunResult

    line = "b failed its gate before (bot died), so cron skips it; this deploy tries it again"
    res = RunResult("deployed", "r1", "deploy", "alice", warnings=[line], known_bad=line)
    assert res.exit_code == 0 and res.to_dict()["warnings"] == [line], res.to_dict()
    res.warnings.append("keeping 1 untracked file that the repository does not have: x")
    assert res.exit_code == 1


def test_reset_onto_a_commit_not_known_bad_says_nothing_of_it(sandbox):
    """The negative: a reset whose target never failed its gate has no such line."""
    sandbox.result()
    sandbox.origin.good("2")
    r = run_cli("reset", "-i", str(sandbox.inventory), "-H", "local", "--dry-run")
    assert r.returncode == 0 and "failed its gate" not in r.stdout, r.stdout + r.stderr
    r = run_cli("reset", "-i", str(sandbox.inventory), "-H", "local", "--dry-run", "--json")
    assert json.loads(r.stdout)["hosts"]["local"]["known_bad"] is None, r.stdout


def test_reset_reads_a_state_json_without_a_final_newline(tmp_path):
    """A state.json written without a final newline (a hand edit, another
    tool) put reset's end marker on its `}` line: the JSON failed, and reset
    lost what is deployed and known bad without a word. reset_plan_cmd run
    by a real sh on such a file."""
    import subprocess

    import yaml

    from fabops import inventory
    from fabops.maintenance.reset import parse_reset_plan, reset_plan_cmd
    from fabops.probe import MARK

    good, bad = "a" * 40, "b" * 40
    home = tmp_path / "home"
    home.mkdir()
    (home / "state.json").write_text(json.dumps({"deployed": good, "bad": {bad: {"reason": "bot died"}}}))
    host = inventory.loads(yaml.safe_dump({"hosts": {"h1": {
        "address": "h", "home": str(home), "app": {"path": str(tmp_path / "app"), "remote": "origin"}}}}),
        "t.yml").hosts["h1"]
    out = subprocess.run(["sh", "-c", reset_plan_cmd(host)], capture_output=True, text=True).stdout
    plan = parse_reset_plan(out)
    assert plan.deployed == good, out
    # the bad commit as a target: the check reads the same file
    plan = parse_reset_plan(out.replace(f"{MARK}target\n", f"{MARK}target\n{bad}\n"))
    assert plan.known_bad and plan.known_bad.startswith(f"{bad[:10]} failed its gate before (bot died)"), out


def test_a_healthy_reset_clears_the_commit_from_bad(sandbox, monkeypatch):
    """A reset onto a commit state.json lists as bad that comes up healthy
    clears it from `bad`, as a deploy's promotion does: status no longer
    calls the running commit bad, and rollback may pick it again. The
    other bad commits stay."""
    monkeypatch.delenv("CI", raising=False)
    sandbox.result()
    fixed = sandbox.origin.good("2")  # failed once for the host's reason, since fixed
    other = "c" * 40
    state_file = sandbox.home / "state.json"
    state = json.loads(state_file.read_text())
    state["bad"] = {fixed: {"at": 1.0, "reason": "port taken", "notified": True},
                    other: {"at": 2.0, "reason": "bot died", "notified": True}}
    state_file.write_text(json.dumps(state))
    r = run_cli("reset", "-i", str(sandbox.inventory), "-H", "local", "--yes", timeout=180)
    assert r.returncode == 0 and f"{fixed[:10]} failed its gate before (port taken)" in r.stdout, r.stdout + r.stderr
    after = sandbox.state
    assert after["deployed"] == fixed and fixed not in after["bad"] and other in after["bad"], after
    status = run_cli("status", "-i", str(sandbox.inventory), "-H", "local", "--json")
    assert fixed not in json.loads(status.stdout)["hosts"]["local"]["bad"], status.stdout


def test_a_reset_whose_service_dies_remembers_the_commit_bad(sandbox, monkeypatch):
    """Trial 3 (#24, item 2): a reset onto a commit that crashes ended
    BROKEN but left it out of `bad`, so deploy's dry run planned it with no
    warning and cron would deploy it again. A service that fails to start
    marks the commit bad, as a deploy's failed gate does."""
    monkeypatch.delenv("CI", raising=False)
    sandbox.result()
    crash = sandbox.origin.crash("8")
    inv = str(sandbox.inventory)
    r = run_cli("reset", "-i", inv, "-H", "local", "--yes", timeout=180)
    assert r.returncode == 5 and "broken: reset to" in r.stdout, r.stdout + r.stderr
    bad = sandbox.state["bad"]
    assert crash in bad and bad[crash]["reason"].startswith("bot died"), bad
    deploy = run_cli("deploy", "-i", inv, "-H", "local", "--dry-run")
    assert f"{crash[:10]} failed its gate before (bot died" in " ".join(deploy.stdout.split()), deploy.stdout


def test_each_trigger_says_its_run_in_words():
    """The known-bad line names the run that goes ahead: a CI deploy's is
    `this CI deploy`, not the trigger's name (`this ci tries it again`, a
    new user's trial)."""
    from fabops.host.plan import known_bad

    bad = {"b": {"reason": "bot died"}}
    said = {t: known_bad(bad, "b", "a", t).split("; ", 1)[1] for t in ("deploy", "ci", "rollback", "promote")}
    assert said == {"deploy": "this deploy tries it again", "ci": "this CI deploy tries it again",
                    "rollback": "this rollback tries it again", "promote": "this promote tries it again"}
