"""rollback after a force-push (issue #24): its refusal said "no good commit
older than X was deployed" when good commits were deployed that are not
ancestors of the current one. The host's fact gathering says how each good
commit stands to the deployed one (git.lineage: older, newer or apart, one
git each, as the ancestor check it replaces), and the planner's refusal
says what is true: the history was rewritten; --to picks one."""
from fabops.host.plan import Facts, Opts, plan
from fabops.host.state import State
from fabops.shortsha import short_sha
from tests.conftest import one, run_cli
from tests.harness.sandbox import git

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)


def _host():
    from fabops import inventory

    return inventory.loads("hosts:\n  h:\n    app: {path: /srv/app}\n    services:\n"
                           "      - {name: app.service}\n", "h.yml").hosts["h"]


def _refusal(**facts) -> str:
    p = plan(_host(), State(deployed=D, previous=A), Facts(origin=D, head=D, **facts), Opts(trigger="rollback"))
    assert (p.kind, p.result, p.record) == ("abort", "aborted", False), p
    return p.message


def test_the_refusal_tells_a_rewritten_history_from_none_deployed():
    assert _refusal().startswith(f"no good commit older than {short_sha(D)} was deployed on this host")
    said = _refusal(apart=(A,))
    assert said == (f"the good commit deployed on this host before ({short_sha(A)}) is not an ancestor of "
                    f"{short_sha(D)} (history was rewritten), so rollback picks none; give the one to roll back "
                    "to with --to SHA"), said
    said = _refusal(apart=(A, B, C, "e" * 40))
    assert f"before ({short_sha(A)}, {short_sha(B)}, {short_sha(C)}, …) are not ancestors of" in said, said


def test_a_known_bad_commit_is_not_offered():
    p = plan(_host(), State(deployed=D, bad=[A]), Facts(origin=D, head=D, apart=(A,)), Opts(trigger="rollback"))
    assert p.message.startswith("no good commit older than"), p.message


def test_after_a_force_push_the_dry_run_and_the_real_run_say_the_history_was_rewritten(sandbox):
    sandbox.result()
    v1 = sandbox.origin.head
    work = sandbox.origin.work
    git("commit", "--quiet", "--amend", "-m", "v1, rewritten", cwd=work)  # a new root: v1 is no ancestor
    git("push", "--quiet", "--force", "origin", sandbox.origin.branch, cwd=work)
    rewritten = sandbox.origin.head
    code, res = sandbox.result()
    assert (code, res["to"], sandbox.state["deployed"]) == (0, rewritten, rewritten), res
    why = (f"the good commit deployed on this host before ({short_sha(v1)}) is not an ancestor of "
           f"{short_sha(rewritten)} (history was rewritten)")
    r = run_cli("rollback", "-i", str(sandbox.inventory), "--json", "--dry-run")
    res = one(r.stdout)
    assert (r.returncode, res["result"]) == (2, "would_abort") and why in res["message"], res
    def _without_metrics(state):
        return {k: v for k, v in state.items() if k != "metrics"}

    before = (_without_metrics(sandbox.state), len(sandbox.history()))
    r = run_cli("rollback", "-i", str(sandbox.inventory), "--json")
    res = one(r.stdout)
    assert (r.returncode, res["result"]) == (2, "aborted") and why in res["message"], res
    # refused: nothing moved or recorded in history; the metrics count the
    # refused attempt (docs/metrics.md, "Which runs count")
    assert (_without_metrics(sandbox.state), len(sandbox.history())) == before
    assert sandbox.state["metrics"]["runs"].get("rollback aborted") == 1, sandbox.state["metrics"]
    # --to picks it, as the refusal says
    r = run_cli("rollback", "-i", str(sandbox.inventory), "--json", "--to", v1)
    assert (r.returncode, one(r.stdout)["to"]) == (0, v1), r.stdout
