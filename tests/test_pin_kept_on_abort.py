"""Trial (#24, a new user's trial of the deploy, item 1): a deploy that
changes nothing leaves the host's pin. After `inv rollback` pinned the host
to X, a person's edit left in the checkout made `inv deploy` say
`clearing pin X`, then stop at its preflight (`aborted`, exit 2): and the
pin was gone, so the next cron run went after origin's head. A deploy
without --ref clears the pin only by acting on its plan (docs/pipeline.md,
step 3): its dry run lists `clear pin` only then, after the preflight."""
from fabops.host.dry_run import actions
from fabops.host.plan import Facts, Opts, Plan, plan
from fabops.host.state import State
from tests.conftest import one, run_cli
from tests.test_plan import HOST

A, B = "a" * 40, "b" * 40


def test_the_planner_clears_a_pin_only_in_a_plan_that_acts():
    pinned = State(deployed=A, pin=A)
    facts = Facts(origin=B, head=A, problems=(), local_changes=("M app.py",), changed=())
    p = plan(HOST, pinned, facts, Opts(trigger="deploy", clear_pin=True))
    assert isinstance(p, Plan) and (p.kind, p.result, p.clear_pin) == ("abort", "aborted", False), p
    assert not any("pin" in line for line in p.says), p.says
    assert [w.action for w in actions(HOST, p, "deploy")] == ["stop"]
    # the same deploy, clean: it acts, and clears the pin after its preflight, before its checkout
    p = plan(HOST, pinned, Facts(origin=B, head=A, problems=(), changed=()), Opts(trigger="deploy", clear_pin=True))
    assert (p.kind, p.clear_pin) == ("deploy", True), p
    assert [w.action for w in actions(HOST, p, "deploy")][:2] == ["clear pin", "checkout"]


def test_an_aborted_deploy_leaves_the_rollbacks_pin(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    inv = str(sandbox.inventory)
    assert sandbox.result()[0] == 0
    v1 = sandbox.origin.head
    v2 = sandbox.origin.good("2")
    assert sandbox.result()[0] == 0 and sandbox.state["deployed"] == v2
    r = run_cli("rollback", "-i", inv, "-H", "local", "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sandbox.state["pin"] == v1 and sandbox.head() == v1
    (sandbox.app / "app.py").write_text((sandbox.app / "app.py").read_text() + "# a person's edit\n")
    # the dry run: it would stop, and lists no pin cleared
    r = run_cli("deploy", "-i", inv, "-H", "local", "--dry-run", "--json", timeout=180)
    assert r.returncode == 2, r.stdout + r.stderr
    res = one(r.stdout)
    got = res["hosts"]["local"] if "hosts" in res else res
    would = [w["action"] for w in got["plan"]["would"]]
    assert would == ["stop"], got
    r = run_cli("deploy", "-i", inv, "-H", "local", timeout=180, env={"COLUMNS": "200"})
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "local changes (M app.py)" in out, out
    assert "clearing pin" not in out, out
    assert sandbox.state["pin"] == v1, sandbox.state
    # cron stays on the pin
    code, res = sandbox.result()
    assert (code, res["result"]) == (0, "noop") and sandbox.head() == v1, res
