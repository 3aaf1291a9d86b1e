"""Promotion decided once (docs/architecture.md, "Plans"): what a deploy
that passed its gate and watch writes to state is state.promoted, which
the real run (Pipeline._promote) writes and the dry run (held_state) plans
from when it meets a watch. Before, held_state restated the promotion
without the pin: a dry run behind a `deploy --ref` in its watch planned as
if the host stayed unpinned, so it missed the pin the real run then met."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict

from fabops.host.dry_run import actions, held_state
from fabops.host.plan import Facts, Health, Opts, plan
from fabops.host.state import State, pin_reason, promoted
from tests.conftest import ROOT
from tests.test_plan import HOST
from tests.test_watch_lock import long_watch

A, B, C = "a" * 40, "b" * 40, "c" * 40


def test_promoted_is_the_target_deployed_over_the_planned_commit():
    before = State(deployed=A, previous=C, bad={B: {"reason": "gate"}, C: {"reason": "x"}},
                   in_progress={"run_id": "r1", "to": B}, pin=None)
    snapshot = asdict(before)
    after = promoted(before, A, B, False, 123.0)
    assert asdict(before) == snapshot  # pure: the state it was given is as it was
    assert (after.deployed, after.previous, after.deployed_at, after.in_progress) == (B, A, 123.0, None)
    assert after.bad == {C: {"reason": "x"}}  # B passed its watch: no longer bad
    assert (after.pin, after.pin_reason) == (None, None)
    # the same commit again, and a first deploy: `previous` stays
    assert promoted(before, B, B, False, 1.0).previous == C
    assert promoted(before, None, B, False, 1.0).previous == C


def test_promoted_pins_the_target_for_a_deploy_ref_and_keeps_a_pin_otherwise():
    before = State(deployed=A, pin=A, pin_reason="rollback by bob")
    pinned = promoted(before, A, B, True, 1.0, pin_reason("deploy", "alice@laptop"))
    assert (pinned.pin, pinned.pin_reason) == (B, "deploy by alice@laptop")
    kept = promoted(before, A, B, False, 1.0)
    assert (kept.pin, kept.pin_reason) == (A, "rollback by bob")


def watching(pin: bool):
    """A `deploy` (with --ref when `pin`) from A to B in its watch, as
    state.json and the lock's holder record say it."""
    state = State(deployed=A, in_progress={"run_id": "r1", "trigger": "deploy", "from": A, "to": B, "pin": pin,
                                           "step": "checkout", "since": 1.0})
    holder = {"run_id": "r1", "trigger": "deploy", "actor": "alice@laptop", "phase": "watch",
              "watch_ends": time.time() + 600}
    return state, holder


def test_a_dry_run_behind_a_watch_plans_from_the_real_promotion():
    for pin in (False, True):
        state, holder = watching(pin)
        held = held_state(state, holder, "wait")
        real = promoted(state, A, B, pin, held.deployed_at, pin_reason("deploy", "alice@laptop"))
        assert asdict(held) == asdict(real), pin


def test_a_dry_run_behind_a_deploy_ref_knows_the_host_will_be_pinned():
    """The pinned case: once the watch passes the host is pinned to B, so
    a deploy without --ref clears that pin, and `deploy --ref B` has
    nothing to pin. The old held_state left the pin out: its dry run said
    neither (it planned from an unpinned host)."""
    state, holder = watching(pin=True)
    held = held_state(state, holder, "wait")
    assert (held.pin, held.pin_reason, held.deployed) == (B, "deploy by alice@laptop", B)
    healthy = (Health("bot", True, "ok"), Health("api", True, "ok"))
    facts = Facts(origin=C, head=B, health=healthy, problems=(), changed=())
    p = plan(HOST, held, facts, Opts(trigger="deploy", clear_pin=True))
    assert (p.kind, p.target, p.clear_pin) == ("deploy", C, True), p
    assert [w.action for w in actions(HOST, p, "deploy")][-1] == "clear pin"  # as it promotes
    again = plan(HOST, held, Facts(origin=C, head=B, ref_commit=B, health=healthy), Opts(trigger="deploy", ref=B))
    assert (again.kind, again.pin) == ("noop", None), again
    assert "pin" not in [w.action for w in actions(HOST, again, "deploy")]


def in_its_watch(sandbox, run_id: str) -> bool:
    """Whether the lock's holder record says run `run_id` watches."""
    try:
        holder = json.loads((sandbox.home / "lock").read_text() or "{}")
    except (OSError, ValueError):
        return False
    return holder.get("run_id") == run_id and holder.get("phase") == "watch"


def test_a_real_deploy_ref_in_its_watch_and_the_dry_run_behind_it(sandbox):
    """Real runs: `deploy --ref v2` watches; a dry-run deploy behind it
    says it would clear the pin that the watch leaves, and plans from v2."""
    sandbox.result()
    long_watch(sandbox, "120s")  # outlasts the dry run; the run is ended below
    v2 = sandbox.origin.good("2")
    sandbox.origin.good("3")
    run = subprocess.Popen(
        [sys.executable, "-m", "fabops.cli", "local-update", "-i", str(sandbox.inventory), "--json",
         "--trigger", "deploy", "--actor", "alice@laptop", "--run-id", "pinning", "--ref", v2],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not in_its_watch(sandbox, "pinning"):
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.05)
        assert sandbox.state["in_progress"]["pin"] is True
        code, res = sandbox.result("--trigger", "deploy", "--clear-pin", "--actor", "bob@laptop", "--dry-run")
        assert (code, res["result"], res["from"], res["plan"]["pin"]) == (0, "would_deploy", v2, v2), res
        assert "clear pin" in [w["action"] for w in res["plan"]["would"]], res["plan"]["would"]
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
