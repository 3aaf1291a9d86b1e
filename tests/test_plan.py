"""The planner's decision table (#23; docs/architecture.md, "Plans"): one
row per case, state x facts x options -> plan, without git, SSH or
systemd. Then properties over generated inputs.

A row is `trigger [options] | state | facts | expected`, with tokens:
- state: dep=X (deployed; dep=- none), pin=X, bad=X (a failed target, not
  yet reported), bad*=X (reported), retry=X (its retry is due later),
  retry.=X (due already), int (a run was interrupted, from the deployed
  commit), r2 / r3 (automatic restarts in the last hour), broken (the last
  run ended BROKEN), fixed (a person's restart or health --fix found the
  host healthy since the last update check: its verdict stands);
- facts: o=X (the branch's head; o=- none), ref=X (what --ref names, and
  the run has --ref), h=X (HEAD; h=- none), sick=SVC, nohealth / nopre (not
  gathered yet), disk, env (preflight problems), local (a person's change),
  kept (an untracked file fabops keeps), chg=F,F (files deployed..target),
  old=X,X (rollback: good commits deployed before, older than the deployed one),
  ended (this run ended the interrupted run's watch);
- options after the trigger: stash, clear (a deploy without --ref);
- expected: kind/result, then tgt=X, rules=I,I, svc=S,S, and flags +adopt
  +notify +full +stash +clear +finish +warn; or need=FACT.
Commits are single letters; the host has two rules (0: package.json,
1: requirements.txt) and two services (bot watches bot/, api all files).
"""
from __future__ import annotations

import pytest

from fabops import inventory
from fabops.host.dry_run import actions, dry_result
from fabops.host.dry_run import said as dry_said
from fabops.host.plan import FOLLOWERS, Facts, Health, Need, Opts, Plan, failed_before, failed_check, plan
from fabops.host.record import RESULT_CODES
from fabops.host.state import State
from fabops.host.would import Would

NOW = 1_800_000_000.0
HOST = inventory.loads("""
hosts:
  h:
    connection: local
    app: {path: /srv/app}
    services:
      - {name: bot, manager: process, command: "node bot.js", paths: [bot/]}
      - {name: api, manager: process, command: "python3 api.py"}
    deps:
      - {when: [package.json], run: npm ci}
      - {when: [requirements.txt], run: pip install -r requirements.txt}
""", "h.yml").hosts["h"]

TABLE = """
# --- cron, nothing recorded yet: adopt a healthy HEAD, else a first deploy
cron | dep=-          | o=A h=A                 | noop/noop tgt=A +adopt
cron | dep=-          | o=A h=A nohealth        | need=health
cron | dep=-          | o=A h=A sick=bot        | deploy tgt=A +full rules=0,1 svc=bot,api
cron | dep=-          | o=A h=A sick=api        | deploy tgt=A +full rules=0,1 svc=bot,api
cron | dep=-          | o=B h=A                 | deploy tgt=B +adopt rules= svc=api chg=
cron | dep=-          | o=B h=A chg=bot/x.js    | deploy tgt=B +adopt rules= svc=bot,api
cron | dep=-          | o=B h=A chg=package.json | deploy tgt=B +adopt rules=0 svc=api
cron | dep=-          | o=B h=A sick=bot        | deploy tgt=B +full rules=0,1 svc=bot,api
cron | dep=-          | o=A h=-                 | deploy tgt=A +full rules=0,1 svc=bot,api
cron | dep=-          | o=A h=- nopre           | need=preflight
cron | dep=-          | o=A h=- disk            | abort/aborted tgt=A
cron | dep=-          | o=A h=- env             | abort/aborted tgt=A
cron | dep=-          | o=A h=- local           | abort/aborted tgt=A
cron stash | dep=-    | o=A h=- local           | deploy tgt=A +full +stash rules=0,1 svc=bot,api
cron | dep=-          | o=- h=A                 | abort/aborted
cron | dep=- int      | o=A h=A                 | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
cron | dep=- int      | o=A h=A nohealth        | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
# --- cron on the deployed commit
cron | dep=A          | o=A h=A                 | noop/noop tgt=A
cron | dep=A          | o=A h=A nohealth        | need=health
cron | dep=A          | o=A h=A nopre           | noop/noop tgt=A
cron | dep=A          | o=A h=A sick=bot        | restart tgt=A +warn svc=bot
cron | dep=A          | o=A h=A sick=api        | restart tgt=A +warn svc=api
cron | dep=A          | o=A h=A sick=bot,api    | restart tgt=A +warn svc=bot,api
cron | dep=A r2       | o=A h=A sick=bot        | restart tgt=A +warn svc=bot
cron | dep=A r3       | o=A h=A sick=bot        | abort/broken tgt=A
cron | dep=A r3       | o=A h=A                 | noop/noop tgt=A
cron | dep=A          | o=A h=B                 | deploy tgt=A +full rules=0,1 svc=bot,api
cron | dep=A          | o=A h=B chg=          | deploy tgt=A +full rules=0,1 svc=bot,api
cron | dep=A          | o=A h=-                 | deploy tgt=A +full rules=0,1 svc=bot,api
cron | dep=A int      | o=A h=A                 | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
cron | dep=A int ended | o=A h=A                | deploy tgt=A +full +finish rules=0,1 svc=bot,api
cron | dep=A int      | o=A h=A local           | abort/aborted tgt=A +finish +warn
cron stash | dep=A int | o=A h=A local          | deploy tgt=A +full +finish +warn +stash rules=0,1 svc=bot,api
# --- cron, origin moved
cron | dep=A          | o=B h=A                 | deploy tgt=B rules= svc=api
cron | dep=A          | o=B h=A chg=bot/x.js    | deploy tgt=B rules= svc=bot,api
cron | dep=A          | o=B h=A chg=package.json | deploy tgt=B rules=0 svc=api
cron | dep=A          | o=B h=A chg=requirements.txt | deploy tgt=B rules=1 svc=api
cron | dep=A          | o=B h=A chg=package.json,requirements.txt,bot/i | deploy tgt=B rules=0,1 svc=bot,api
cron | dep=A          | o=B h=A chg=docs/readme | deploy tgt=B rules= svc=api
cron | dep=A          | o=B h=A chg=bot          | deploy tgt=B rules= svc=bot,api
cron | dep=A          | o=B h=A chg=robot/x     | deploy tgt=B rules= svc=api
cron | dep=A          | o=B h=A sick=bot        | deploy tgt=B rules= svc=api
cron | dep=A          | o=B h=A nopre           | need=preflight
cron | dep=A          | o=B h=A nohealth        | deploy tgt=B rules= svc=api
cron | dep=A          | o=B h=A disk            | abort/aborted tgt=B
cron | dep=A          | o=B h=A env             | abort/aborted tgt=B
cron | dep=A          | o=B h=A disk env        | abort/aborted tgt=B
cron | dep=A          | o=B h=A local           | abort/aborted tgt=B
cron stash | dep=A    | o=B h=A local           | deploy tgt=B +stash rules= svc=api
cron stash | dep=A    | o=B h=A local disk      | abort/aborted tgt=B
cron stash | dep=A    | o=B h=A                 | deploy tgt=B rules= svc=api
cron | dep=A          | o=B h=A kept            | deploy tgt=B +warn rules= svc=api
cron | dep=A          | o=B h=A kept local      | abort/aborted tgt=B +warn
cron | dep=A          | o=B h=C                 | deploy tgt=B +full rules=0,1 svc=bot,api
cron | dep=A          | o=B h=B                 | deploy tgt=B +full rules=0,1 svc=bot,api
cron | dep=A int      | o=B h=A                 | deploy tgt=B +full +finish +warn rules=0,1 svc=bot,api
cron | dep=A int      | o=B h=B                 | deploy tgt=B +full +finish +warn rules=0,1 svc=bot,api
cron | dep=A int      | o=B h=A env             | abort/aborted tgt=B +finish +warn
cron | dep=A int ended | o=B h=B                | deploy tgt=B +full +finish rules=0,1 svc=bot,api
# --- cron and a bad target
cron | dep=A bad=B    | o=B h=A                 | hold/skipped_bad tgt=B +notify
cron | dep=A bad*=B   | o=B h=A                 | hold/skipped_bad tgt=B
cron | dep=A bad=B    | o=B h=A sick=bot        | restart tgt=A +warn svc=bot
cron | dep=A bad=B    | o=B h=A nohealth        | need=health
cron | dep=A bad=B r3 | o=B h=A sick=bot        | abort/broken tgt=A +warn
cron | dep=A bad=B    | o=B h=B sick=bot        | hold/skipped_bad tgt=B +notify
cron | dep=A bad=B broken | o=B h=B              | abort/broken tgt=B
cron | dep=A bad*=B broken | o=B h=B             | abort/broken tgt=B
cron | dep=A bad=B broken | o=B h=A              | hold/skipped_bad tgt=B +notify
cron | dep=A bad=B broken | o=B h=A sick=bot     | restart tgt=A +warn svc=bot
cron | dep=A retry=B broken | o=B h=C            | abort/broken tgt=B
# a verdict since the broken run (a person's restart, health --fix) found the host healthy:
# the planner decides on it (State.result), as status and monitor do, not on the stale BROKEN
cron | dep=A bad=B broken fixed | o=B h=B        | hold/skipped_bad tgt=B +notify
cron | dep=A retry=B broken fixed | o=B h=C      | hold/deferred tgt=B
cron | dep=A bad=B    | o=B h=A nopre           | hold/skipped_bad tgt=B +notify
cron | dep=A bad=B    | o=B h=B                 | hold/skipped_bad tgt=B +notify
cron | dep=A bad=C    | o=B h=A                 | deploy tgt=B rules= svc=api
cron | dep=A bad=B    | o=C h=A                 | deploy tgt=C rules= svc=api
cron | dep=A bad=A    | o=A h=A                 | noop/noop tgt=A
cron | dep=A bad=B int | o=B h=B                | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
cron | dep=A bad=B int | o=B h=A                | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
cron | dep=- bad=B int | o=B h=B                | hold/skipped_bad tgt=B +notify +finish +warn
cron | dep=- bad=B    | o=B h=A                 | hold/skipped_bad tgt=B +notify +adopt
cron | dep=- bad=B    | o=B h=A sick=bot        | hold/skipped_bad tgt=B +notify
cron | dep=A bad=B retry=B | o=B h=A            | hold/skipped_bad tgt=B +notify
# --- cron and a retry
cron | dep=A retry=B  | o=B h=A                 | hold/deferred tgt=B
cron | dep=A retry.=B | o=B h=A                 | deploy tgt=B rules= svc=api
cron | dep=A retry=C  | o=B h=A                 | deploy tgt=B rules= svc=api
cron | dep=A retry=B int | o=B h=A             | deploy tgt=B +full +finish +warn rules=0,1 svc=bot,api
cron | dep=A retry=B  | o=B h=A nopre           | hold/deferred tgt=B
cron | dep=A retry=B  | o=B h=A sick=api        | restart tgt=A +warn svc=api
cron | dep=A retry=A  | o=A h=A                 | noop/noop tgt=A
cron | dep=A retry=A  | o=A h=A sick=api        | restart tgt=A +warn svc=api
# --- cron and a pin: never moved by cron
cron | dep=A pin=A    | o=B h=A                 | noop/noop tgt=A
cron | dep=A pin=A    | o=B h=A sick=bot        | restart tgt=A +warn svc=bot
cron | dep=A pin=A    | o=B h=A nohealth        | need=health
cron | dep=A pin=A    | o=- h=A                 | noop/noop tgt=A
cron | dep=A pin=P    | o=B h=A                 | deploy tgt=P rules= svc=api
cron | dep=A pin=A bad=B | o=B h=A              | noop/noop tgt=A
cron | dep=A pin=A int | o=B h=A                | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
cron | dep=- pin=A    | o=B h=A                 | noop/noop tgt=A +adopt
cron | dep=A pin=A    | o=A h=A                 | noop/noop tgt=A
cron | dep=A pin=P bad=P | o=B h=A              | hold/skipped_bad tgt=P +notify
# --- manual: a person's local-update follows the branch as cron does
manual | dep=A        | o=A h=A                 | noop/noop tgt=A
manual | dep=A        | o=B h=A                 | deploy tgt=B rules= svc=api
manual | dep=A bad=B  | o=B h=A                 | hold/skipped_bad tgt=B +notify
manual | dep=A bad=B  | o=B h=A sick=bot        | restart tgt=A +warn svc=bot
manual | dep=A bad*=B | o=B h=A                 | hold/skipped_bad tgt=B
manual | dep=A retry=B | o=B h=A                | hold/deferred tgt=B
manual | dep=A pin=A  | o=B h=A                 | noop/noop tgt=A
manual | dep=A        | o=A h=A sick=bot        | restart tgt=A +warn svc=bot
manual | dep=A r3     | o=A h=A sick=bot        | abort/broken tgt=A
manual | dep=- int    | o=A h=A                 | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
manual | dep=A        | o=B h=A local           | abort/aborted tgt=B
# --- deploy from a laptop (it clears a pin unless it has --ref)
deploy clear | dep=A  | o=A h=A                 | noop/noop tgt=A
deploy clear | dep=A pin=A | o=B h=A            | deploy tgt=B +clear rules= svc=api
deploy clear | dep=A pin=A | o=A h=A            | noop/noop tgt=A +clear
deploy clear | dep=A  | o=B h=A                 | deploy tgt=B rules= svc=api
deploy clear | dep=A bad=B | o=B h=A            | deploy tgt=B +warn rules= svc=api
deploy clear | dep=A bad*=B | o=B h=A           | deploy tgt=B +warn rules= svc=api
deploy clear | dep=A retry=B | o=B h=A          | deploy tgt=B rules= svc=api
deploy clear | dep=A  | o=A h=A sick=bot        | restart tgt=A +warn svc=bot
deploy clear | dep=A r3 | o=A h=A sick=bot      | restart tgt=A +warn svc=bot
deploy clear | dep=-  | o=A h=A                 | noop/noop tgt=A +adopt
deploy clear | dep=-  | o=A h=A sick=api        | deploy tgt=A +full rules=0,1 svc=bot,api
deploy clear | dep=-  | o=A h=-                 | deploy tgt=A +full rules=0,1 svc=bot,api
deploy clear | dep=A int | o=B h=A             | deploy tgt=B +full +finish +warn rules=0,1 svc=bot,api
deploy clear | dep=A int | o=A h=A             | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
deploy clear | dep=A  | o=B h=A local           | abort/aborted tgt=B
deploy clear stash | dep=A | o=B h=A local      | deploy tgt=B +stash rules= svc=api
deploy clear | dep=A  | o=B h=A env             | abort/aborted tgt=B
deploy clear | dep=A  | o=B h=A disk            | abort/aborted tgt=B
deploy clear | dep=A  | o=B h=A nopre           | need=preflight
deploy clear | dep=A  | o=B h=A chg=package.json,bot/x | deploy tgt=B rules=0 svc=bot,api
deploy clear | dep=A  | o=- h=A                 | abort/aborted
deploy | dep=A        | o=B h=A ref=C           | deploy tgt=C rules= svc=api
deploy | dep=A pin=A  | o=B h=A ref=C           | deploy tgt=C rules= svc=api
deploy | dep=A        | o=B h=A ref=A           | noop/noop tgt=A
deploy | dep=A bad=C  | o=B h=A ref=C           | deploy tgt=C +warn rules= svc=api
deploy | dep=A        | o=- h=A ref=C           | deploy tgt=C rules= svc=api
deploy | dep=-        | o=B h=A ref=C           | deploy tgt=C +adopt rules= svc=api
# --- ci behaves as deploy
ci clear | dep=A      | o=A h=A                 | noop/noop tgt=A
ci clear | dep=A      | o=B h=A                 | deploy tgt=B rules= svc=api
ci clear | dep=A bad=B | o=B h=A                | deploy tgt=B +warn rules= svc=api
ci clear | dep=A pin=A | o=B h=A                | deploy tgt=B +clear rules= svc=api
ci clear | dep=A retry=B | o=B h=A              | deploy tgt=B rules= svc=api
ci clear | dep=A      | o=B h=A local           | abort/aborted tgt=B
ci clear | dep=A int  | o=B h=A                 | deploy tgt=B +full +finish +warn rules=0,1 svc=bot,api
ci clear | dep=A      | o=A h=A sick=api        | restart tgt=A +warn svc=api
ci clear | dep=A r3   | o=A h=A sick=api        | restart tgt=A +warn svc=api
ci | dep=A          | o=B h=A ref=C             | deploy tgt=C rules= svc=api
ci clear | dep=-      | o=A h=A                 | noop/noop tgt=A +adopt
# --- rollback: --ref the last good commit, pins it
rollback | dep=B      | o=B h=B ref=A           | deploy tgt=A rules= svc=api
rollback | dep=B pin=B | o=B h=B ref=A          | deploy tgt=A rules= svc=api
rollback | dep=A      | o=B h=A ref=A           | noop/noop tgt=A
rollback | dep=A      | o=B h=A ref=A sick=bot  | restart tgt=A +warn svc=bot
rollback | dep=A      | o=B h=B ref=A           | deploy tgt=A +full rules=0,1 svc=bot,api
rollback | dep=A int  | o=B h=B ref=A           | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
rollback | dep=A int ended | o=B h=B ref=A      | deploy tgt=A +full +finish rules=0,1 svc=bot,api
rollback | dep=A bad=A | o=B h=B ref=A          | deploy tgt=A +full rules=0,1 svc=bot,api
rollback | dep=B bad=A | o=B h=B ref=A          | deploy tgt=A +warn rules= svc=api
rollback | dep=B      | o=B h=B ref=A local     | abort/aborted tgt=A
rollback stash | dep=B | o=B h=B ref=A local    | deploy tgt=A +stash rules= svc=api
rollback | dep=B      | o=B h=B ref=A env       | abort/aborted tgt=A
rollback | dep=B      | o=B h=B ref=A chg=package.json | deploy tgt=A rules=0 svc=api
rollback | dep=B retry=A | o=B h=B ref=A        | deploy tgt=A rules= svc=api
rollback | dep=- int  | o=B h=B ref=A           | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
rollback | dep=B r3   | o=B h=B ref=B sick=bot  | restart tgt=B +warn svc=bot
# --- rollback without --to: the last commit deployed before that is older
# (old=, plan.rollback_target), never a newer one; none: refused
rollback | dep=B      | o=C h=B old=A           | deploy tgt=A rules= svc=api
rollback | dep=B      | o=C h=B old=A,C         | deploy tgt=A rules= svc=api
rollback | dep=B bad=A | o=C h=B old=A,C        | deploy tgt=C rules= svc=api
rollback | dep=A      | o=B h=A                 | abort/aborted tgt=
rollback | dep=A bad=C | o=B h=A old=C          | abort/aborted tgt=
rollback | dep=-      | o=B h=A old=A           | abort/aborted tgt=
rollback | dep=A int  | o=B h=B                 | deploy tgt=A +full +finish +warn rules=0,1 svc=bot,api
rollback | dep=A int ended | o=B h=B old=C      | deploy tgt=A +full +finish rules=0,1 svc=bot,api
rollback | dep=A      | o=B h=B old=C           | deploy tgt=A +full rules=0,1 svc=bot,api
rollback | dep=A pin=A | o=B h=A old=C          | deploy tgt=C rules= svc=api
# --- reset (an emergency deploy of origin)
reset | dep=A         | o=B h=A                 | deploy tgt=B rules= svc=api
reset | dep=A bad=B   | o=B h=A                 | deploy tgt=B +warn rules= svc=api
reset | dep=A pin=A   | o=B h=A                 | deploy tgt=B rules= svc=api
reset | dep=A int ended | o=B h=B               | deploy tgt=B +full +finish rules=0,1 svc=bot,api
reset | dep=A         | o=A h=A                 | noop/noop tgt=A
"""


def parse_row(line: str):
    left, state_s, facts_s, expect_s = (part.split() for part in line.split("|"))
    trigger, flags = left[0], set(left[1:])
    st = State()
    now = NOW
    for tok in state_s:
        key, _, val = tok.partition("=")
        if key == "dep":
            st.deployed = None if val == "-" else val
        elif key == "pin":
            st.pin = val
        elif key in ("bad", "bad*"):
            st.bad[val] = {"reason": "gate", "notified": key == "bad*", "at": now - 60}
        elif key in ("retry", "retry."):
            st.retry = {"target": val, "next_at": now + (600 if key == "retry" else -1), "attempts": 1,
                        "reason": "npm ci failed"}
        elif key == "int":
            st.in_progress = {"run_id": "r0", "trigger": "cron", "from": st.deployed, "to": "B", "step": "watch"}
        elif key in ("r2", "r3"):
            st.restarts = [now - 60 * i for i in range(int(key[1]))]
        elif key == "broken":
            st.last_result = "broken"
        elif key == "fixed":  # host/record.healthy_again's verdict, written after the last check
            st.last_check = now - 120
            st.verdict = {"result": "deployed", "check": st.last_check, "trigger": "restart"}
        elif key != "ended":
            raise ValueError(tok)
    ended = "ended" in state_s
    facts = dict(origin=None, head=None, now=now, app="/srv/app", ended_watch=ended,
                 health=(Health("bot", True, "bot healthy"), Health("api", True, "api healthy")),
                 problems=(), changed=())
    ref = None
    for tok in facts_s:
        key, _, val = tok.partition("=")
        if key == "o":
            facts["origin"] = None if val == "-" else val
        elif key == "h":
            facts["head"] = None if val == "-" else val
        elif key == "ref":
            ref = facts["ref_commit"] = val
        elif key == "sick":
            facts["health"] = tuple(Health(h.service, h.service not in val.split(","), f"{h.service} is stopped")
                                    for h in facts["health"])
        elif tok == "nohealth":
            facts["health"] = None
        elif tok == "nopre":
            facts["problems"] = None
        elif tok in ("disk", "env"):
            facts["problems"] += (f"{tok} problem",)
        elif tok == "local":
            facts["local_changes"] = ("M app.js",)
        elif tok == "kept":
            facts["kept"] = ("notes.txt",)
        elif key == "chg":
            facts["changed"] = tuple(f for f in val.split(",") if f)
        elif key == "old":
            facts["older"] = tuple(f for f in val.split(",") if f)
        else:
            raise ValueError(tok)
    opts = Opts(trigger=trigger, ref=ref, stash="stash" in flags, clear_pin="clear" in flags)
    return st, Facts(**facts), opts, expect_s


ROWS = [ln for ln in TABLE.splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_table_is_big_enough():
    assert len(ROWS) >= 150, len(ROWS)


@pytest.mark.parametrize("row", ROWS)
def test_decision_table(row):
    st, facts, opts, expect = parse_row(row)
    got = plan(HOST, st, facts, opts)
    head = expect[0]
    if head.startswith("need="):
        assert isinstance(got, Need) and got.fact == head[5:], got
        return
    assert isinstance(got, Plan), got
    kind, _, result = head.partition("/")
    assert (got.kind, got.result) == (kind, result or ""), got
    flags = {t for t in expect[1:] if t.startswith("+")}
    values = dict(t.split("=", 1) for t in expect[1:] if "=" in t)
    if "tgt" in values:
        assert got.target == values["tgt"], got
    assert bool(got.adopt) == ("+adopt" in flags), got
    assert got.notify == ("+notify" in flags), got
    assert got.full == ("+full" in flags), got
    assert got.stash == ("+stash" in flags), got
    assert got.clear_pin == ("+clear" in flags), got
    assert (got.finishing is not None) == ("+finish" in flags), got
    assert bool(got.warnings) == ("+warn" in flags), got
    if "rules" in values:
        assert got.rules == tuple(int(i) for i in values["rules"].split(",") if i), got
    if "svc" in values:
        assert got.services == tuple(s for s in values["svc"].split(",") if s), got


# ------------------------------------------------------------ properties
hypothesis = pytest.importorskip("hypothesis")
st_ = pytest.importorskip("hypothesis.strategies")
given = hypothesis.given

COMMITS = st_.sampled_from(["A", "B", "C"])
MAYBE = st_.one_of(st_.none(), COMMITS)


@st_.composite
def cases(draw):
    state = State(deployed=draw(MAYBE), pin=draw(MAYBE))
    for sha in draw(st_.lists(COMMITS, max_size=2, unique=True)):
        if sha != state.deployed:  # a promoted commit leaves the bad list (Pipeline._promote)
            state.bad[sha] = {"reason": "gate", "notified": draw(st_.booleans())}
    if draw(st_.booleans()):
        state.retry = {"target": draw(COMMITS), "next_at": NOW + draw(st_.sampled_from([-5, 600]))}
    if draw(st_.booleans()):
        state.in_progress = {"run_id": "r0", "trigger": "cron", "from": state.deployed, "to": draw(COMMITS)}
    state.restarts = [NOW - 10] * draw(st_.integers(0, 4))
    trigger = draw(st_.sampled_from(["cron", "manual", "deploy", "ci", "rollback", "reset"]))
    ref = draw(MAYBE) if trigger not in FOLLOWERS else None
    health = draw(st_.one_of(st_.none(), st_.tuples(st_.booleans(), st_.booleans())))
    facts = Facts(origin=draw(MAYBE), head=draw(MAYBE), ref_commit=ref, now=NOW,
                  health=None if health is None else (Health("bot", health[0], "bot"), Health("api", health[1], "api")),
                  problems=draw(st_.one_of(st_.none(), st_.sampled_from([(), ("disk full",)]))),
                  local_changes=draw(st_.sampled_from([(), ("M a.js",)])),
                  changed=draw(st_.sampled_from([(), ("package.json",), ("bot/x",)])),
                  ended_watch=draw(st_.booleans()))
    opts = Opts(trigger=trigger, ref=ref, stash=draw(st_.booleans()), clear_pin=trigger in ("deploy", "ci") and not ref)
    return state, facts, opts


def settle(state, facts, opts):
    """Ask until the planner decides, supplying what it needs as the
    pipeline would (healthy services, a clean preflight)."""
    for _ in range(3):
        got = plan(HOST, state, facts, opts)
        if isinstance(got, Plan):
            return got
        from dataclasses import replace

        facts = replace(facts, **({"health": (Health("bot", True, "ok"), Health("api", True, "ok"))}
                                  if got.fact == "health" else {"problems": ()}))
    raise AssertionError("the planner asked for the same fact twice")


@given(cases())
def test_a_bad_target_is_never_deployed_without_ref(case):
    state, facts, opts = case
    got = settle(state, facts, opts)
    if opts.trigger in FOLLOWERS and opts.ref is None and got.kind in ("deploy", "restart"):
        assert got.target not in state.bad, got


@given(cases())
def test_a_pin_is_never_moved_by_cron(case):
    state, facts, opts = case
    got = settle(state, facts, opts)
    if opts.trigger in FOLLOWERS and state.pin and got.kind in ("deploy", "restart", "noop"):
        assert got.target == state.pin or (state.in_progress and state.pin in state.bad), got


@given(cases())
def test_an_interrupted_run_is_finished_before_anything_new(case):
    state, facts, opts = case
    got = settle(state, facts, opts)
    if state.in_progress:
        assert got.finishing == state.in_progress, got
        assert got.kind != "noop" and got.kind != "restart", got
        if got.kind == "deploy":
            assert got.full and got.rules == (0, 1) and got.services == ("bot", "api"), got


@given(cases())
def test_what_a_dry_run_says_is_exactly_what_the_plan_writes(case):
    """The dry run renders the plan itself (dry_run.actions): every action
    it names is in the plan, and a plan that writes nothing shows none."""
    state, facts, opts = case
    got = settle(state, facts, opts)
    said = list(actions(HOST, got))
    assert all(isinstance(w, Would) for w in said), said
    names = {(w.action, w.target) for w in said}
    assert bool(said) == got.writes or got.kind == "abort", (got, said)
    for name in got.services if got.kind in ("deploy", "restart") else ():
        assert ("restart", name) in names, (got, said)
    for w in said:
        if w.action == "restart":
            assert w.target in got.services and got.kind in ("deploy", "restart")
        if w.action == "run":
            assert w.target in [HOST.deps[i].run for i in got.rules]


@given(cases())
def test_a_dry_run_exits_as_the_real_run_of_its_plan(case):
    """Decide once (docs/architecture.md, "Plans"): a plan that decides
    the result by itself (a noop, a hold, an abort) gives the dry run the
    real run's exit code: an abort whose verdict is `broken` (the restart
    budget spent) is `would_break`, exit 5, as the real run's `broken`
    (#24's trial: `would_abort`, exit 2)."""
    got = settle(*case)
    if got.result:
        assert RESULT_CODES[dry_result(got)] == RESULT_CODES[got.result], got


@pytest.mark.parametrize("row", [
    "cron | dep=A r3 | o=A h=A sick=bot | abort/broken",  # the automatic restart budget is spent
    "manual | dep=A r3 | o=A h=A sick=bot | abort/broken",
    "cron | dep=A bad=B broken | o=B h=B | abort/broken",  # a reset left the checkout on a known-bad commit
])
def test_a_broken_verdict_is_the_dry_runs_too(row):
    """#24's trial: `local-update --dry-run` on a host whose verdict stands
    said `would_abort: would stop: …`, exit 2, while the real run said
    `broken: …`, exit 5, and recorded it. The dry run says that record."""
    st, facts, opts, _ = parse_row(row)
    got = plan(HOST, st, facts, opts)
    assert (got.kind, got.result, dry_result(got)) == ("abort", "broken", "would_break"), got
    assert dry_said(got) == f"would record broken: {got.message}"
    # a history line only where the real run writes one: not for the reset's BROKEN that stands (it was
    # recorded), nor for a poll that finds the budget's BROKEN again (plan.said_already)
    history = [("record", "history")] if "r3" in row else []
    assert [(w.action, w.target) for w in actions(HOST, got)] == [("record", "state.json")] + history
    assert got.record == bool(history)
    if "r3" in row:  # the same BROKEN again: no second line
        st.last_result, st.broken_said = "broken", got.message
        again = plan(HOST, st, facts, opts)
        assert not again.record and [w.target for w in actions(HOST, again)] == ["state.json"], again
        # unless a verdict since found the host healthy (a person's restart): broken again is news
        st.last_check, st.verdict = NOW - 120, {"result": "deployed", "check": NOW - 120}
        news = plan(HOST, st, facts, opts)
        assert news.record and [(w.action, w.target) for w in actions(HOST, news)] == [
            ("record", "state.json"), ("record", "history")], news


@pytest.mark.parametrize("reason, check", [
    ("bot died after starting: its process is gone", "gate"),  # host/readiness.py's gate
    ("bot: check gave HTTP 500 (expected 200)", "gate"),
    ("bot died 1 s after passing its gate: its process is gone", "watch"),  # its watch's
    ("bot died right after passing its gate: its process is gone", "watch"),
    ("bot restarted on its own 3 s after its gate (pid 1 -> 2): crash loop", "watch"),
    ("bot: check gave HTTP 500 twice in a row, 12 s after its gate, expected 200", "watch"),
    (None, "gate"),
])
def test_a_known_bad_commit_is_said_with_the_check_it_failed(reason, check):
    """#24's trial read `X failed its gate before (bot died 1 s after
    passing its gate (state stale))`: it failed its watch."""
    said = f"BBBBBBBBBB failed its {check} before" + (f" ({reason})" if reason else "")
    assert failed_before("B" * 40, reason) == said
    st = State(deployed="A" * 40, bad={"B" * 40: {"reason": reason or "?", "notified": True}})
    hold = plan(HOST, st, Facts(origin="B" * 40, head="A" * 40, now=NOW, health=()), Opts(trigger="cron"))
    assert f"which failed its {check if reason else 'gate'} (" in hold.message, hold


def test_every_watch_failure_says_it_was_the_watch():
    """The watch's own words (readiness._watch_look) are what
    plan.failed_check reads: each of its failures names the watch."""
    from types import SimpleNamespace

    from fabops.host.readiness import _watch_look

    svc = SimpleNamespace(name="bot", port=None, check=None)
    # died (its process gone), and restarted behind the watch's back (a crash loop)
    for st in (SimpleNamespace(active=False, pid=None, state="stale"),
               SimpleNamespace(active=True, pid=9, state="active")):
        problem = _watch_look(svc, st, 8, 3.0, None, False, {"bot": 0})[0]
        assert failed_check(problem) == "watch", problem


@pytest.mark.parametrize("row, said", [
    ("deploy | dep=A bad=B | o=B h=A | deploy", True),  # a person tries the failed commit again: said
    ("rollback | dep=A bad=B | ref=B o=C h=A | deploy", True),
    ("deploy | dep=A bad=C | o=B h=A | deploy", False),  # another commit failed: nothing to say
    ("cron | dep=A bad=B | o=B h=A | hold/skipped_bad", False),  # cron holds instead (its own message)
])
def test_deploying_a_known_bad_commit_again_is_said(row, said):
    st, facts, opts, _ = parse_row(row)
    got = plan(HOST, st, facts, opts)
    # one line (Plan.known_bad): the run says it and its --json warns it (#24: only said before)
    assert any("failed its gate before" in line for line in got.warnings) is said, got.warnings
    assert (got.known_bad in got.warnings if said else got.known_bad is None), got
    assert not any("failed its gate before" in line for line in got.says), got.says  # said once


@pytest.mark.parametrize("row, pin, said", [
    ("deploy | dep=A | ref=B o=C h=A | -", "B", ("pin", "B")),  # pinned on promotion
    ("rollback | dep=A | ref=A o=B h=A | -", "A", ("pin", "A")),  # already deployed: pinned at once (a noop)
    ("rollback | dep=A pin=A | ref=A o=B h=A | -", None, None),  # pinned there already: nothing to write
    ("rollback | dep=B | o=C h=B old=A | -", "A", ("pin", "A")),  # without --to: its own pick, pinned too
    ("deploy | dep=A | o=B h=A | -", None, None),  # no --ref: no pin
    ("deploy | dep=A | ref=B o=C h=A env | -", None, None),  # an abort pins nothing
])
def test_ref_pins_and_the_dry_run_says_so(row, pin, said):
    """--ref pins the host; the dry run named the checkout and the restarts
    but not the pin (review of #23), and a rollback to the deployed commit
    was a noop that did not pin."""
    st, facts, opts, _ = parse_row(row)
    got = plan(HOST, st, facts, opts)
    assert got.pin == pin, got
    named = [(w.action, w.target) for w in actions(HOST, got) if w.action == "pin"]
    assert named == ([said] if said else []), named
    # the reason is the run's: a rollback pins by itself, --to or not (trial #12)
    why = [w.why.split(":")[0] for w in actions(HOST, got, opts.trigger) if w.action == "pin"]
    assert why == ([opts.trigger if opts.trigger == "rollback" else "--ref"] if said else []), why


@pytest.mark.parametrize("row, checkout, words", [
    # trial (#24's, item 4): a reset left the checkout on B, the deployed commit is A
    ("rollback | dep=A | ref=A o=B h=B | deploy", "B",
     "roll back B -> A (back to the deployed commit; the checkout had moved)"),
    # trial #24 item 7: a rollback's plan (its dry run: `would roll back B -> A`) says rollback
    ("rollback | dep=B | o=B h=B ref=A | deploy", None, "roll back B -> A"),
    ("deploy | dep=A | o=B h=B | deploy", "B", "deploy B where the checkout already is (not the deployed A)"),
    ("deploy | dep=A | o=C h=B | deploy", "B", "deploy B -> C (the checkout, not the deployed A)"),
    ("deploy | dep=A | o=B h=A | deploy", None, "deploy A -> B"),  # the checkout where the deploy left it
    ("deploy | dep=- | o=B h=- | deploy", None, "deploy B (first deploy)"),
])
def test_a_run_goes_from_where_the_checkout_is(row, checkout, words):
    st, facts, opts, _ = parse_row(row)
    got = plan(HOST, st, facts, opts)
    assert (got.kind, got.checkout, got.from_, got.message) == ("deploy", checkout, checkout or st.deployed, words), got


@pytest.mark.parametrize("row, counted", [
    ("cron | dep=A r2 | o=A h=A sick=bot | restart", 3),
    ("manual | dep=A r2 | o=A h=A sick=bot | restart", 3),
    ("deploy clear | dep=A r3 | o=A h=A sick=bot | restart", 3),
    ("rollback | dep=A r3 | o=B h=A ref=A sick=bot | restart", 3),
    ("deploy clear | dep=A | o=A h=A sick=bot | restart", 0),
])
def test_only_automatic_restarts_spend_the_budget(row, counted):
    """Trial #24: a person's deploy met a spent restart budget and was told
    `a person is needed`. The budget limits automatic restarts: a person's
    deploy or rollback restarts (and is not one of them); its record keeps
    the automatic restarts only."""
    st, facts, opts, _ = parse_row(row)
    got = plan(HOST, st, facts, opts)
    assert (got.kind, len(got.restarts)) == ("restart", counted), got
    if opts.trigger not in FOLLOWERS:
        assert got.restarts == tuple(st.restarts), got


def test_a_deferred_hold_names_the_hook_or_the_rule_that_failed():
    """Trial: a failed before_restart hook was said `whose dependency rule
    failed (the before_restart hook failed (...))`; a rule's words stay."""
    st, facts, opts, _ = parse_row("cron | dep=A retry=B | o=B h=A | hold/deferred tgt=B")
    assert "whose dependency rule failed (npm ci failed); next try " in plan(HOST, st, facts, opts).message
    st.retry["reason"] = "the before_restart hook failed (timed out after 2 s)"
    got = plan(HOST, st, facts, opts).message
    assert "whose before_restart hook failed (timed out after 2 s); next try " in got and "dependency" not in got
