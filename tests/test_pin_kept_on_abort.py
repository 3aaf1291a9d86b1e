"""Trial (#24, a new user's trial of the deploy, item 1): a deploy that
changes nothing leaves the host's pin. After `inv rollback` pinned the host
to X, a person's edit left in the checkout made `inv deploy` say
`clearing pin X`, then stop at its preflight (`aborted`, exit 2): and the
pin was gone, so the next cron run went after origin's head. A deploy
without --ref clears the pin only by acting on its plan (docs/pipeline.md,
step 3): its dry run lists `clear pin` only then, after the preflight."""
import pytest

from fabops.host.dry_run import actions
from fabops.host.plan import Facts, Opts, Plan, plan
from fabops.host.state import State, promoted
from tests.conftest import one, run_cli
from tests.test_hooks_sandbox import with_hooks
from tests.test_plan import HOST

A, B = "a" * 40, "b" * 40


def test_the_planner_clears_a_pin_only_in_a_plan_that_acts():
    pinned = State(deployed=A, pin=A)
    facts = Facts(origin=B, head=A, problems=(), local_changes=("M app.py",), changed=())
    p = plan(HOST, pinned, facts, Opts(trigger="deploy", clear_pin=True))
    assert isinstance(p, Plan) and (p.kind, p.result, p.clear_pin) == ("abort", "aborted", False), p
    assert not any("pin" in line for line in p.says), p.says
    assert [w.action for w in actions(HOST, p, "deploy")] == ["stop"]
    # the same deploy, clean: it acts, and clears the pin last, as it promotes B
    p = plan(HOST, pinned, Facts(origin=B, head=A, problems=(), changed=()), Opts(trigger="deploy", clear_pin=True))
    assert (p.kind, p.clear_pin) == ("deploy", True), p
    would = list(actions(HOST, p, "deploy"))
    assert would[0].action == "checkout" and would[-1].action == "clear pin", would
    assert would[-1].why.startswith(f"once the deploy of {B[:10]} passes"), would[-1]


def test_promotion_alone_clears_the_pin():
    """state.promoted decides it for the real run and the dry run behind it."""
    pinned = State(deployed=A, pin=A, pin_reason="rollback by alice@laptop")
    done = promoted(pinned, A, B, False, 1.0, unpin=True)
    assert (done.pin, done.pin_reason, done.deployed) == (None, None, B), done
    assert promoted(pinned, A, B, False, 1.0).pin == A


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


def _break(box, how: str) -> str:
    """A new commit on origin whose deploy stops (`aborted`) or fails its
    gate (`rolled_back`), by `how`; returns the result it ends with."""
    if how == "hook":  # a before_restart hook past its timeout
        with_hooks(box, before_restart={"run": "sleep 5", "timeout": "1s"})
        box.origin.good("3")
        return "aborted"
    if how == "deps":  # a dependency rule that fails
        box.origin.push("v3 whose rule fails", {"VERSION": "3\n", "requirements.txt": "fail\n"})
        return "aborted"
    box.origin.crash("3")
    return "rolled_back"


@pytest.mark.parametrize("how", ["hook", "deps", "crash"])
def test_a_deploy_that_stops_or_rolls_back_leaves_the_pin(sandbox, monkeypatch, how):
    """The repro of #24/#29's trial: a host pinned by `deploy --ref OLD`,
    then a plain deploy whose run aborts (a before_restart hook's timeout,
    a failed dependency rule) or rolls back: it said `clearing pin OLD` and
    state.json had no pin, so cron went after the branch. Only a deploy
    that promotes the branch's head clears it (docs/pipeline.md, step 3)."""
    monkeypatch.delenv("CI", raising=False)
    box, inv = sandbox, str(sandbox.inventory)
    assert box.result()[0] == 0
    old = box.state["deployed"]
    code, res = box.result("--trigger", "deploy", "--ref", old)  # the checkout is there: pinned at once
    assert code == 0 and box.state["pin"] == old, res
    result = _break(box, how)
    r = run_cli("deploy", "-i", inv, "-H", "local", "--dry-run", "--json", timeout=180)
    got = one(r.stdout)
    got = got["hosts"]["local"] if "hosts" in got else got
    would = got["plan"]["would"]
    assert would[-1]["action"] == "clear pin" and would[-1]["why"].startswith("once the deploy of "), would
    r = run_cli("deploy", "-i", inv, "-H", "local", timeout=180, env={"COLUMNS": "200"})
    out = r.stdout + r.stderr
    assert r.returncode == 2 and box.history()[-1]["result"] == result, out
    assert "clearing pin" not in out, out
    assert box.state["pin"] == old and box.state["deployed"] == old, box.state
    code, res = box.result()  # cron stays on the pin
    assert (code, res["result"]) == (0, "noop") and box.head() == old, res
    # a fixed head deploys, and only that clears the pin, said as it promotes
    with_hooks(box)
    new = box.origin.push("v4 fixed", {"VERSION": "4\n", "BEHAVIOUR": "ok\n", "requirements.txt": "http-server==1.1\n"})
    r = run_cli("deploy", "-i", inv, "-H", "local", timeout=180, env={"COLUMNS": "200"})
    out = r.stdout + r.stderr
    assert r.returncode in (0, 1) and f"clearing pin {old[:10]}: {new[:10]} passed" in out, out
    assert box.state["pin"] is None and box.state["deployed"] == new, box.state
