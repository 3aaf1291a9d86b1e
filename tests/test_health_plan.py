"""health's decision table (#23; docs/architecture.md, "Plans"): one row per
case, facts x --fix -> plan, without SSH, a lock or a service. The real run
(`run_health`) and `--dry-run` (`plan_only`) both ask `plan_health`, so
these rows are what either does.

A row is `options | facts | expected`, with tokens:
- options: fix, or - (a plain check);
- facts: sick=SVC,SVC (failing now); prev=ok|down|down! (the status last
  reported; down!: the backoff was reported too); r=N (automatic restarts
  in the last hour), old=N (older ones); lock=free|held (the lock,
  gathered; absent: not gathered yet); did=SVC,SVC (this run restarted
  them: the look is the one after), was=MSG (before them); broken (the
  last run ended broken, DEPLOYED deployed), running (a run in progress),
  head=D|X|- (the checkout's commit, gathered: the deployed one, another,
  unreadable); held=SVC,SVC (failing services whose port another process
  holds: the preflight's refusal, readiness.held_among); prev=held (down,
  the held port notified);
- expected: need=lock|head, or kind/status/code, then svc=S,S, budget=N (the
  restart budget's record to write), notify=EVENT, +health (state.json's
  health written), health=STATUS, +since (since kept from prev), +record
  (the verdict recorded: no longer broken, host/record.healthy_again).
The host has three services, in this order: bot, api, worker.
"""
from __future__ import annotations

import pytest

from fabops import errors, inventory
from fabops.host.health import HealthFacts, HealthPlan, actions, plan_health, said, said_would
from fabops.host.plan import Need
from fabops.host.state import RESTART_LIMIT
from fabops.notify import EVENT_WORDS
from fabops.shortsha import short_sha

NOW = 1_800_000_000.0
DEPLOYED, OTHER = "d" * 40, "e" * 40
SINCE = NOW - 500
HOST = inventory.loads("""
hosts:
  h:
    connection: local
    app: {path: /srv/app}
    services:
      - {name: bot, manager: process, command: "node bot.js"}
      - {name: api, manager: process, command: "python3 api.py"}
      - {name: worker, manager: process, command: "python3 worker.py"}
""").hosts["h"]

ROWS = [
    # a plain check is a read: it reports, and records, notifies, restarts
    # and locks nothing (cron's `health --fix --quiet` keeps the record)
    "- | - | nothing/ok/0",
    "- | prev=ok | nothing/ok/0",
    "- | prev=down | nothing/ok/0",
    "- | prev=down! | nothing/ok/0",
    "- | prev=ok! | nothing/ok/0",
    "- | sick=bot | nothing/down/2",
    "- | sick=bot prev=ok | nothing/down/2",
    "- | sick=bot prev=down | nothing/down/2",
    "- | sick=bot prev=down! | nothing/down/2",
    "- | sick=bot,api | nothing/down/2",
    "- | sick=bot r=3 | nothing/down/2",
    "- | sick=bot lock=held | nothing/down/2",
    "- | sick=worker prev=down | nothing/down/2",
    # --fix on a healthy host: no lock needed, same as a check
    "fix | - | nothing/ok/0 +health health=ok",  # the first look records ok
    "fix | prev=ok | nothing/ok/0",
    "fix | prev=down | nothing/ok/0 notify=health_recovered +health health=ok",
    "fix | prev=down! | nothing/ok/0 notify=health_recovered +health health=ok",
    "fix | r=3 | nothing/ok/0 +health health=ok",  # the first look records ok
    "fix | lock=held | nothing/ok/0 +health health=ok",  # the first look records ok
    # --fix on a sick host: the lock first
    "fix | sick=bot | need=lock",
    "fix | sick=bot prev=down | need=lock",
    "fix | sick=bot r=3 | need=lock",
    "fix | sick=bot,api r=5 prev=down! | need=lock",
    # ... held by a deploy: busy, nothing restarted, nothing notified, nothing recorded
    "fix | sick=bot lock=held | busy/busy/3",
    "fix | sick=bot lock=held prev=ok | busy/busy/3",
    "fix | sick=bot lock=held prev=down | busy/busy/3",
    "fix | sick=bot lock=held r=3 | busy/busy/3",
    "fix | sick=bot,api lock=held r=3 prev=down! | busy/busy/3",
    # ... free, within the budget: restart the sick ones, in inventory order
    "fix | sick=bot lock=free | restart/would_restart/2 svc=bot budget=1",
    "fix | sick=api lock=free | restart/would_restart/2 svc=api budget=1",
    "fix | sick=worker lock=free | restart/would_restart/2 svc=worker budget=1",
    "fix | sick=api,bot lock=free | restart/would_restart/2 svc=bot,api budget=1",
    "fix | sick=worker,bot lock=free | restart/would_restart/2 svc=bot,worker budget=1",
    "fix | sick=worker,api,bot lock=free | restart/would_restart/2 svc=bot,api,worker budget=1",
    "fix | sick=bot lock=free r=1 | restart/would_restart/2 svc=bot budget=2",
    "fix | sick=bot lock=free r=2 | restart/would_restart/2 svc=bot budget=3",
    "fix | sick=bot lock=free prev=down | restart/would_restart/2 svc=bot budget=1",
    "fix | sick=bot lock=free prev=ok | restart/would_restart/2 svc=bot budget=1",
    "fix | sick=bot lock=free prev=down! | restart/would_restart/2 svc=bot budget=1",
    # restarts older than the hour no longer count
    "fix | sick=bot lock=free old=5 | restart/would_restart/2 svc=bot budget=1",
    "fix | sick=bot lock=free old=5 r=2 | restart/would_restart/2 svc=bot budget=3",
    # ... past the budget: backoff, reported once
    "fix | sick=bot lock=free r=3 | backoff/backoff/2 notify=health_backoff +health health=down",
    "fix | sick=bot lock=free r=4 | backoff/backoff/2 notify=health_backoff +health health=down",
    "fix | sick=bot lock=free r=3 old=2 | backoff/backoff/2 notify=health_backoff +health health=down",
    "fix | sick=bot lock=free r=3 prev=ok | backoff/backoff/2 notify=health_backoff +health health=down",
    "fix | sick=bot lock=free r=3 prev=down | backoff/backoff/2 notify=health_backoff +health health=down +since",
    "fix | sick=bot lock=free r=3 prev=down! | backoff/backoff/2 +since",
    "fix | sick=bot,api lock=free r=3 prev=down! | backoff/backoff/2 +since",
    # after the restart: the second look decides; never a second restart
    "fix | did=bot was=bot-down lock=free | nothing/recovered/1 notify=health_recovered +health health=ok",
    "fix | did=bot was=bot-down lock=free prev=down | nothing/recovered/1 notify=health_recovered +health health=ok",
    "fix | did=bot was=bot-down lock=free prev=ok | nothing/recovered/1 notify=health_recovered +health health=ok",
    "fix | did=bot,api was=bot-down lock=free | nothing/recovered/1 notify=health_recovered +health health=ok",
    "fix | did=bot was=bot-down lock=free r=2 | nothing/recovered/1 notify=health_recovered +health health=ok",
    "fix | sick=bot did=bot was=bot-down lock=free | nothing/down/2 notify=health_down +health health=down",
    "fix | sick=bot did=bot was=bot-down lock=free prev=down | nothing/down/2 +since",
    "fix | sick=bot did=bot was=bot-down lock=free prev=ok | nothing/down/2 notify=health_down +health health=down",
    "fix | sick=api did=bot was=bot-down lock=free | nothing/down/2 notify=health_down +health health=down",
    "fix | sick=bot did=bot was=bot-down lock=free r=3 | nothing/down/2 notify=health_down +health health=down",
    "fix | sick=bot,api did=bot was=x lock=free prev=down! | nothing/down/2 +since",
    # the last run ended broken: healthy on the deployed commit, under the
    # lock, with no run in progress, is recorded (once: the record says
    # `deployed`); a plain check is still a read. The checkout's commit is
    # read first: the lock only when it is the deployed one
    "- | broken prev=ok | nothing/ok/0",
    "- | broken prev=ok lock=free head=D | nothing/ok/0",
    "fix | prev=ok lock=free head=D | nothing/ok/0",  # not broken: nothing to record
    "fix | broken prev=ok | need=head",
    "fix | broken prev=ok head=D | need=lock",
    "fix | broken prev=ok head=X | nothing/ok/0",  # never locked: cron's run would hold off a person's deploy
    "fix | broken prev=ok head=- | nothing/ok/0",
    "fix | broken prev=ok lock=held head=D | nothing/ok/0",  # a run holds it: its own verdict follows
    "fix | broken prev=ok lock=free | need=head",  # under the lock (_RunLock.take forgot it): read again
    "fix | broken prev=ok lock=free head=D | nothing/ok/0 +record",
    "fix | broken prev=ok lock=free head=X | nothing/ok/0",  # a broken reset left the checkout elsewhere
    "fix | broken prev=ok lock=free head=- | nothing/ok/0",  # no checkout to read: not verified
    "fix | broken prev=ok running | nothing/ok/0",  # an interrupted run: the next run says its verdict
    "fix | broken prev=ok running lock=free head=D | nothing/ok/0",
    "fix | broken prev=down lock=free head=D | nothing/ok/0 notify=health_recovered +health health=ok +record",
    "fix | broken sick=bot | need=lock",  # sick: the restart first
    "fix | broken sick=bot lock=free | need=head",  # the record after the restart needs the checkout (review 2)
    "fix | broken sick=bot lock=free head=D | restart/would_restart/2 svc=bot budget=1",
    # a broken reset left the checkout elsewhere: a restart would start it again (review 3): down, no restart
    "fix | broken sick=bot lock=free head=X | nothing/down/2 notify=health_down +health health=down",
    "fix | broken sick=bot lock=free | need=head",
    "fix | broken sick=bot lock=free r=3 | backoff/backoff/2 notify=health_backoff +health health=down",
    "fix | broken did=bot was=bot-down | need=head",  # after the restart the lock was released: again
    "fix | broken did=bot was=bot-down head=D | need=lock",
    "fix | broken did=bot was=bot-down lock=free | need=head",
    "fix | broken did=bot was=bot-down lock=free head=D | nothing/recovered/1 notify=health_recovered +health "
    "health=ok +record",
    "fix | broken sick=bot did=bot was=x lock=free head=D | nothing/down/2 notify=health_down +health health=down",
    # a failing service's port another process holds (#24: --fix restarted
    # into it, "still failing", and spent the budget run after run): under
    # the lock, refused in the preflight's words, nothing restarted, no
    # budget spent, notified once while it stays held
    "- | sick=bot held=bot | nothing/down/2",  # a plain check is a read
    "fix | sick=bot held=bot | need=lock",
    "fix | sick=bot held=bot lock=held | busy/busy/3",
    "fix | sick=bot held=bot lock=free | held/held/2 notify=health_held +health health=down",
    "fix | sick=bot held=bot lock=free prev=ok | held/held/2 notify=health_held +health health=down",
    # down already (notified so), now for this reason: notified once more
    "fix | sick=bot held=bot lock=free prev=down | held/held/2 notify=health_held +health health=down +since",
    "fix | sick=bot held=bot lock=free prev=held | held/held/2 +since",  # still held: said already
    "fix | sick=bot held=bot lock=free r=3 | held/held/2 notify=health_held +health health=down",  # before the budget
    "fix | sick=bot,api held=bot lock=free | held/held/2 notify=health_held +health health=down",  # api waits too
    "fix | broken sick=bot held=bot lock=free | held/held/2 notify=health_held +health health=down",
    # the port freed: restarted as before; any other outcome ends the mark, so held again is said again
    "fix | sick=bot lock=free prev=held | restart/would_restart/2 svc=bot budget=1",
    "fix | sick=bot did=bot was=x lock=free prev=held | nothing/down/2 +health health=down +since",
    "fix | did=bot was=x lock=free prev=held | nothing/recovered/1 notify=health_recovered +health health=ok",
    "fix | prev=held | nothing/ok/0 notify=health_recovered +health health=ok",
]


def _facts(tokens):
    sick, prev, restarts, lock, did, was, held = (), {}, [], None, (), (), ()
    verdict: dict = {}
    for tok in tokens:
        key, _, value = tok.partition("=")
        if key == "sick":
            sick = tuple((name, f"{name} is not running") for name in value.split(","))
        elif key == "prev" and value == "held":
            prev = {"status": "down", "since": SINCE, "backoff_notified": False, "held_notified": True}
        elif key == "prev":
            prev = {"status": value.rstrip("!"), "since": SINCE, "backoff_notified": value.endswith("!")}
        elif key == "held":
            held = tuple((name, _held_words(name)) for name in value.split(","))
        elif key == "r":
            restarts += [NOW - 60 * (i + 1) for i in range(int(value))]
        elif key == "old":
            restarts += [NOW - 3600 - 60 * (i + 1) for i in range(int(value))]
        elif key == "lock":
            lock = "" if value == "free" else "locked: deploy by alice@laptop"
        elif key == "did":
            did = tuple(value.split(","))
        elif key == "was":
            was = (value,)
        elif key == "broken":
            verdict.update(last_result="broken", deployed=DEPLOYED)
        elif key == "running":
            verdict["in_progress"] = True
        elif key == "head":
            verdict["head"] = {"D": DEPLOYED, "X": OTHER, "-": ""}[value]
        else:
            raise ValueError(f"unknown fact {tok!r}")
    return HealthFacts(sick=sick, prev=prev, restarts=tuple(sorted(restarts)), now=NOW, lock=lock, restarted=did,
                       before=was, held=held, **verdict)


def _held_words(name: str) -> str:
    """readiness.held_among's refusal for `name`, stopped, its port held."""
    from fabops.host.listeners import OTHER, PortOwner

    return PortOwner(3013, OTHER, 4242, "python3 -m http.server 3013").refusal(name, "stopped")


def parse(row):
    opts, facts, expected = (part.split() for part in row.split("|"))
    return opts == ["fix"], _facts([t for t in facts if t != "-"]), expected


@pytest.mark.parametrize("row", ROWS)
def test_decision_table(row):
    fix, facts, expected = parse(row)
    got = plan_health(HOST, facts, fix)
    head, *flags = expected
    if head.startswith("need="):
        assert got == Need(head[5:], DEPLOYED if head == "need=head" else ""), got
        return
    assert isinstance(got, HealthPlan), got
    kind, status, code = head.split("/")
    assert (got.kind, got.status, got.code) == (kind, status, int(code)), got
    want = dict(f.split("=", 1) if "=" in f else (f, True) for f in flags)
    assert got.services == tuple(want["svc"].split(",")) if "svc" in want else got.services == (), got
    if "budget" in want:
        assert got.restarts is not None and len(got.restarts) == int(want["budget"]) and got.restarts[-1] == NOW
    else:
        assert got.restarts is None, got
    assert (got.notify or (None,))[0] == want.get("notify"), got
    if "+health" in want:
        assert got.health is not None and got.health["status"] == want["health"], got
        assert got.health["since"] == (SINCE if "+since" in want else NOW), got
    elif "+since" in want:  # the record would be what state.json holds already: no write
        assert got.health is None or got.health["since"] == SINCE, got
    else:
        assert got.health is None, got
    assert got.record == ("+record" in want), got


def test_the_table_covers_every_kind_and_status():
    seen = set()
    for row in ROWS:
        fix, facts, _ = parse(row)
        got = plan_health(HOST, facts, fix)
        seen.add(got.fact if isinstance(got, Need) else (got.kind, got.status))
    assert seen == {"lock", "head", ("nothing", "ok"), ("nothing", "down"), ("nothing", "recovered"),
                    ("restart", "would_restart"), ("backoff", "backoff"), ("held", "held"), ("busy", "busy")}


def test_a_backoff_already_reported_writes_only_its_log_line():
    """Trial #24: its dry run said `would write nothing`, but the real run
    appends `FAILED: … (restart backoff)` to the health log."""
    fix, facts, _ = parse("fix | sick=bot lock=free r=3 prev=down! | -")
    got = plan_health(HOST, facts, fix)
    assert got.kind == "backoff" and got.notify is None and got.health is None
    said = list(actions(got))
    assert [(w.action, w.target) for w in said] == [("log", "health log")], said
    assert said[0].why == "FAILED: " + got.message and "(restart backoff)" in said[0].why, said


def test_messages_say_what_and_why():
    _, facts, _ = parse("fix | sick=bot,api lock=free | -")
    got = plan_health(HOST, facts, True)
    assert got.message == "bot is not running; api is not running; --fix would restart bot, api"
    _, facts, _ = parse("fix | sick=bot lock=held | -")
    assert plan_health(HOST, facts, True).message == \
        "the host is busy (locked: deploy by alice@laptop); not restarting"
    _, facts, _ = parse("fix | sick=bot lock=free r=3 | -")
    assert plan_health(HOST, facts, True).message == \
        f"bot is not running; {RESTART_LIMIT} automatic restarts in the last hour: not restarting again " \
        "(restart backoff)"
    _, facts, _ = parse("fix | did=bot was=bot-down lock=free | -")
    assert plan_health(HOST, facts, True).message == "restarted bot; healthy again (bot-down)"
    # a held port: the preflight's words (restart's, reset's, deploy's), the holder and the advice
    _, facts, _ = parse("fix | sick=bot held=bot lock=free | -")
    assert plan_health(HOST, facts, True).message == \
        "port 3013 is held by another process (pid 4242: python3 -m http.server 3013), not bot (stopped): " \
        "stop that process or give bot another port, then run again"
    _, facts, _ = parse("fix | sick=bot,api held=bot lock=free | -")
    assert plan_health(HOST, facts, True).message == \
        f"{_held_words('bot')}; api is not running: not restarting api either"
    _, facts, _ = parse("fix | sick=bot did=bot was=x lock=free | -")
    assert plan_health(HOST, facts, True).message == "bot is not running (restarted bot, still failing)"
    _, facts, _ = parse("fix | broken prev=ok lock=free head=D | -")
    got = plan_health(HOST, facts, True)
    assert said(got) == f"all services healthy; the host is no longer broken (on the deployed {short_sha(DEPLOYED)})"
    # the dry run's words: status still says broken then
    assert said_would(got) == \
        f"all services healthy; the host would no longer be broken (on the deployed {short_sha(DEPLOYED)})"


@pytest.mark.parametrize("row, would", [
    ("- | prev=ok | -", []),
    ("- | prev=down | -", []),  # a plain check is a read
    ("- | sick=bot | -", []),
    ("fix | prev=down | -", [("notify", "the recovery"), ("record", "state.json"), ("log", "health log")]),
    ("fix | sick=bot lock=free r=3 prev=ok | -", [("notify", "the restart backoff"), ("record", "state.json"), ("log", "health log")]),
    ("- | sick=bot prev=down | -", []),
    ("fix | sick=bot lock=held | -", [("stop", "-"), ("log", "health log")]),
    # a held port: no restart and no budget, the notification, state and log
    ("fix | sick=bot held=bot lock=free | -", [("notify", "the held port"), ("record", "state.json"),
                                               ("log", "health log")]),
    ("fix | sick=api,bot lock=free | -", [("record", "state.json"), ("restart", "bot"), ("restart", "api"), ("log", "health log")]),
    ("fix | sick=bot lock=free r=3 | -", [("notify", "the restart backoff"), ("record", "state.json"), ("log", "health log")]),
    ("fix | did=bot was=x lock=free | -", [("notify", "the recovery"), ("record", "state.json"), ("log", "health log")]),
    ("fix | broken prev=ok lock=free head=D | -", [("record", "history"), ("log", "health log")]),
    ("fix | broken prev=ok lock=free head=X | -", [("log", "health log")]),
    # a restart on a broken host: the real run's second look records it if every service recovers there
    ("fix | broken sick=bot lock=free head=D | -", [("record", "state.json"), ("restart", "bot"),
                                                    ("record", "history"), ("log", "health log")]),
    # ... and only there: off the deployed commit a restart would start that commit again (review 3): no
    # restart, the host down (notified once)
    ("fix | broken sick=bot lock=free head=X | -", [("notify", "the service down"), ("record", "state.json"),
                                                    ("log", "health log")]),
    ("fix | broken running sick=bot lock=free | -", [("record", "state.json"), ("restart", "bot"),
                                                     ("log", "health log")]),
    ("- | broken prev=ok lock=free head=D | -", []),
])
def test_the_dry_run_names_exactly_the_plans_writes(row, would):
    fix, facts, _ = parse(row)
    got = plan_health(HOST, facts, fix)
    said = list(actions(got))
    assert [(w.action, w.target) for w in said] == would, said
    assert all(w.why for w in said), said


def test_a_notification_is_named_only_where_a_channel_would_carry_it():
    """#24: the dry run said `would notify health_recovered` on a host with
    no channel, and the real run sent nothing (`"notified": []`). With the
    channels the real run's notify would use, it names them; with none, it
    says the event is only recorded, and where a channel is set."""
    from fabops.host.health import Channels

    _, facts, _ = parse("fix | prev=down | -")
    got = plan_health(HOST, facts, True)
    sent = [w for w in actions(got, Channels(("discord", "slack"), "X")) if w.target == "the recovery"]
    assert [(w.action, w.why) for w in sent] == [("notify", "all services healthy again (to discord, slack)")]
    kept = [w for w in actions(got, Channels((), "FABOPS_DISCORD_WEBHOOK ...")) if w.target == "the recovery"]
    assert [w.action for w in kept] == ["record"] and "notify" not in [w.action for w in actions(
        got, Channels((), "X"))]
    # the event in a reader's words, never its key (#24: `would record only health_held: not sent: …`)
    assert kept[0].line() == "would record the recovery: in the health log; no notification would be sent, as " \
        "no notification channel is configured (FABOPS_DISCORD_WEBHOOK ...)", kept


@pytest.mark.parametrize("row", ROWS)
def test_every_write_of_a_plan_is_named(row):
    """The property the dry run rests on, over every row: a restart, a
    notification and a state.json write each appear in `would`, and
    nothing else does."""
    fix, facts, _ = parse(row)
    got = plan_health(HOST, facts, fix)
    if isinstance(got, Need):
        return
    said = [(w.action, w.target) for w in actions(got)]
    expect = [("stop", "-")] if got.kind == "busy" else []
    if got.restarts is not None:
        expect.append(("record", "state.json"))
    expect += [("restart", s) for s in got.services]
    if got.record or got.may_record:
        expect.append(("record", "history"))
    if got.notify:
        expect.append(("notify", EVENT_WORDS[got.notify[0]]))  # the event in words (#24)
    if got.health is not None:
        expect.append(("record", "state.json"))
    if got.log:
        expect.append(("log", "health log"))
    assert said == expect, (got, said)


# Properties over generated facts (hypothesis, in the test extra): what
# must hold whatever the look, the record, the budget and the lock say.
# Without the extra the table above still runs.
try:
    import hypothesis
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    hypothesis = None
NAMES = [s.name for s in HOST.services]

if hypothesis is not None:
    @st.composite
    def health_cases(draw):
        sick = draw(st.lists(st.sampled_from(NAMES), unique=True))
        status = draw(st.sampled_from([None, "ok", "down"]))
        prev = {} if status is None else {"status": status, "since": SINCE, "backoff_notified": draw(st.booleans())}
        restarts = draw(st.lists(st.floats(min_value=NOW - 7200, max_value=NOW), max_size=6))
        lock = draw(st.sampled_from([None, "", "locked: deploy by alice@laptop"]))
        did = tuple(draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=2)))
        held = tuple((n, _held_words(n)) for n in NAMES if n in sick and draw(st.booleans()))
        facts = HealthFacts(sick=tuple((n, f"{n} is not running") for n in NAMES if n in sick), prev=prev,
                            restarts=tuple(sorted(restarts)), now=NOW, lock=lock, restarted=did,
                            before=("was down",) if did else (),
                            last_result=draw(st.sampled_from([None, "deployed", "broken", "rolled_back"])),
                            deployed=draw(st.sampled_from([None, DEPLOYED])), in_progress=draw(st.booleans()),
                            head=draw(st.sampled_from([None, "", DEPLOYED, OTHER])), held=held)
        return facts, draw(st.booleans())


    @hypothesis.settings(max_examples=400, deadline=None)
    @hypothesis.given(health_cases())
    def test_health_invariants(case):
        from fabops.host.state import recent_restarts

        facts, fix = case
        got = plan_health(HOST, facts, fix)
        if isinstance(got, Need):  # asked for only when --fix would restart, or record a broken host healthy
            restart = facts.sick and not facts.restarted
            assert fix and (restart or (not facts.sick and facts.last_result == "broken"))
            # the checkout's commit first; the lock for a record only with it on the deployed commit
            # (a restart on a deployed host, under the free lock, asks for the checkout too: review 3)
            assert (got.fact == "lock" and facts.lock is None and (restart or facts.head == facts.deployed)) \
                or (got.fact == "head" and facts.head is None and (not restart or (
                    facts.lock == "" and facts.deployed and not facts.in_progress)))
            return
        # recorded no longer broken: --fix, every service healthy on the deployed commit, the lock ours
        assert got.record == (fix and not facts.sick and facts.last_result == "broken" and not facts.in_progress
                              and bool(facts.deployed) and facts.lock == "" and facts.head == facts.deployed)
        if got.kind == "restart":  # under a free lock, within the budget, only the sick, once, no port held
            assert fix and facts.lock == "" and not facts.restarted and not facts.held
            # never a checkout off the deployed commit (review 3)
            assert not facts.deployed or facts.in_progress or facts.head in ("", facts.deployed), facts
            assert set(got.services) == {n for n, _ in facts.sick}
            assert len(got.restarts) <= RESTART_LIMIT
            assert len(recent_restarts(facts.restarts, NOW)) < RESTART_LIMIT
        if got.kind == "held":  # refused: no restart, no budget spent, said once while held
            assert fix and facts.held and facts.lock == "" and got.restarts is None and not got.services
            assert (got.notify is None) == bool(facts.prev.get("held_notified"))
        if facts.lock:  # a held lock: never a restart, a notification or a write
            assert got.kind != "restart"
            if got.kind == "busy":
                assert got.notify is None and got.health is None and got.restarts is None
        if not fix:
            assert got.kind == "nothing"
        # a notification only on a change of what was last reported
        if got.notify and got.notify[0] == "health_down":
            assert facts.prev.get("status") != "down"
        if got.notify and got.notify[0] == "health_backoff":
            assert not facts.prev.get("backoff_notified")
        if got.status == "ok":
            assert not facts.sick and got.code == errors.OK
        if facts.sick and got.kind == "nothing":
            assert got.status == "down" and got.code == errors.FAILED


class _Store:
    """A Store that counts: what run_health locked, recorded and logged."""

    def __init__(self, state):
        self.state, self.calls = state, []

    def load(self):
        return dict(self.state)

    def update(self, updates):
        self.calls.append(("update", tuple(updates)))

    def record(self, updates, record):
        self.calls.append(("record", record["result"]))

    def lock(self, info):
        self.calls.append(("lock",))
        store = self

        class Held:
            def release(self):
                store.calls.append(("release",))
        return Held()

    def log(self, line):
        self.calls.append(("log",))


@pytest.mark.parametrize("head, calls", [
    # elsewhere than the deployed commit: never locked (cron's run every few
    # minutes held the lock against a person's deploy: exit 4), nothing recorded
    (OTHER, [("log",)]),
    # on it: the lock, the commit read again under it, then the record
    (DEPLOYED, [("lock",), ("record", "deployed"), ("release",), ("log",)]),
])
def test_a_broken_host_is_locked_only_with_its_checkout_on_the_deployed_commit(monkeypatch, head, calls):
    from fabops.host import health

    heads = []
    monkeypatch.setattr(health, "_look", lambda manager, host, probe: ([], ()))  # every service healthy
    monkeypatch.setattr(health, "_checkout_head", lambda manager: heads.append(head) or head)
    store = _Store({"last_result": "broken", "deployed": DEPLOYED, "health": {"status": "ok", "since": SINCE,
                                                                              "backoff_notified": False}})
    report = health.run_health(None, HOST, fix=True, actor="cron", store=store, manager=None)
    assert store.calls == calls, store.calls
    assert len(heads) == (2 if head == DEPLOYED else 1), heads  # read again under the lock
    assert ("no longer broken" in report.message) == (head == DEPLOYED), report.message


@pytest.mark.parametrize("width", (80, 200))
def test_the_held_port_dry_run_names_the_event_in_words(capsys, monkeypatch, width):
    """#24's trial: with another process on the port, `health --fix
    --dry-run` said `would record only health_held: not sent: …`. The
    event is named as a person reads it, and why nothing would be sent;
    rendered as the task prints it (report.health_lines through
    print_text), golden at 80 and 200 columns."""
    from types import SimpleNamespace

    from fabops.host import report
    from fabops.host.health import Channels
    from fabops.tasks._base import print_text
    from tests.test_golden import check, render

    _, facts, _ = parse("fix | sick=bot held=bot lock=free | -")
    got = plan_health(HOST, facts, True)
    where = "FABOPS_DISCORD_WEBHOOK or FABOPS_SLACK_WEBHOOK in the environment, or /home/ann/.fabops/app/notify.env"
    dry = SimpleNamespace(code=got.code, message=said_would(got), would=list(actions(got, Channels((), where))))

    def show():
        for line in report.health_lines("h", dry, False):
            print_text(line)

    out = render(capsys, monkeypatch, width, show)
    assert "health_" not in out and "would record the held port: in the health log; no notification would be " \
        "sent, as no notification channel is configured" in " ".join(out.split()), out
    check("health-fix-dry-run-held", width, out)
