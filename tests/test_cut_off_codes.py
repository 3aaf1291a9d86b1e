"""A restore cut off putting items back, one state (#24, an outside
review): the codes each command gives for it, as docs/errors.md ("A
restore cut off putting items back") and docs/backups.md say. Every
command that would act on the host refuses with 5 (BROKEN: a person is
needed, and only the restore that takes it over gets out): deploy and
rollback (the planner's abort), reset, restart. The checks give the
host's health on Nagios' scale, which has no 5: health --fix and monitor
say 2 (CRITICAL). And a restore that is putting items back right now (it
holds the lock) is no cut-off restore: reset, with --force too, is 4
(LOCKED) in the live run's words, never "cut off"."""
import json

import pytest

from fabops import errors
from fabops.probe import MARK
from tests.conftest import ROOT

CUT = "20261201T000000-000001"
MARK_PUT_BACK = {"run_id": CUT, "trigger": "restore", "from": "A", "to": "A", "pin": False,
                 "step": "restore: put back"}
STATE = {"deployed": "a" * 40, "in_progress": MARK_PUT_BACK}  # the one state every command below meets
HOLDER = {"trigger": "restore", "actor": "ops@laptop", "pid": 4242, "run_id": CUT, "phase": "change"}


def _reset_plan(holder=None):
    from fabops.maintenance.reset import parse_reset_plan
    from tests.test_commands import _hostile_host

    lock = f"{MARK}lock\nHELD {json.dumps(holder)}\n" if holder is not None else ""
    return parse_reset_plan(f"{MARK}head\n{'a' * 40}\n{MARK}state\n{json.dumps(STATE)}\n{MARK}target\n{'b' * 40}\n"
                            f"{lock}{MARK}end\n", _hostile_host("x"))


def _planned(trigger: str) -> int:
    from fabops.host.plan import Plan, plan
    from fabops.host.record import RESULT_CODES
    from tests.test_plan import HOST, parse_row

    st, facts, opts, _ = parse_row(f"{trigger} | dep=A | o=B h=A sick=bot old=C | -")
    st.in_progress = dict(MARK_PUT_BACK)
    got = plan(HOST, st, facts, opts)
    assert isinstance(got, Plan) and got.kind == "abort", got
    return RESULT_CODES[got.result]


def _restart() -> int:
    from fabops.maintenance.restart import RestartDecision, parse_restart_facts, refused_error
    from fabops.remote import restart_plan
    from tests.test_commands import _hostile_host

    host = _hostile_host("x")
    _, _, moved, cut_off = parse_restart_facts(f"{MARK}head\n{'a' * 40}\n{MARK}state\n{json.dumps(STATE)}\n"
                                               f"{MARK}end\n", host, [])
    d = RestartDecision(restart_plan(host, None, {}), (), moved, cut_off)
    assert d.refusal()[0] == refused_error(host, d).exit_code  # the dry run's code is the real run's
    return d.refusal()[0]


def _health_fix() -> int:
    from fabops.host.health import HealthFacts, _stated, plan_health
    from tests.test_health_plan import HOST, NOW

    facts = HealthFacts(sick=(("bot", "bot is stopped"),), now=NOW, lock="", head="a" * 40, **_stated(STATE))
    got = plan_health(HOST, facts, True)
    assert got.services == (), got  # nothing restarted
    return got.code


def _monitor() -> int:
    import yaml

    from fabops import inventory, monitor

    entry = {"connection": "local", "sandbox": True, "app": {"path": "/tmp/app"},
             "services": [{"name": "bot", "manager": "process", "command": "true"}]}
    host = inventory.loads(yaml.safe_dump({"hosts": {"h": entry}}), "x.yml").hosts["h"]
    facts = monitor.parse(f"{MARK}state\n{json.dumps(STATE)}\n{MARK}end\n", host, 1_800_000_000.0)
    return monitor.evaluate(facts, host, 1_800_000_000.0)[0]


@pytest.mark.unit
def test_one_cut_off_state_gives_the_codes_the_docs_give():
    acting = {"deploy": _planned("deploy"), "rollback": _planned("rollback"), "local-update": _planned("cron"),
              "reset": _reset_plan().refusal(False)[0], "reset --force": _reset_plan().refusal(True)[0],
              "restart": _restart()}
    checks = {"health --fix": _health_fix(), "monitor": _monitor()}
    assert acting == dict.fromkeys(acting, errors.BROKEN), acting
    assert checks == dict.fromkeys(checks, errors.FAILED), checks  # Nagios' CRITICAL: 2
    assert _docs_miss((ROOT / "docs" / "errors.md").read_text(encoding="utf-8")) == []


ACTING = ("`deploy`", "`rollback`", "`local-update`", "`reset`", "`restart`")
CHECKS = ("`health --fix`", "`monitor`")


def _docs_miss(text: str) -> list:
    """What docs/errors.md's paragraph on a cut-off restore does not say:
    the acting commands in its 5 sentence, the checks in its 2 one, the
    live restore's 4. The paragraph is cut at its blank line before its
    whitespace is joined (joined first, nothing split it: the rest of the
    file was read as the paragraph; #24 review)."""
    para = text.split("**A restore cut off putting items back**", 1)[1].split("\n\n", 1)[0]
    acting, _, checks = " ".join(para.split()).partition("The checks give")
    checks, _, live = checks.partition("A restore that is putting items back right now")
    return ([n for n in ACTING if n not in acting] + [n for n in CHECKS if n not in checks]
            + [s for s, part in (("refuses with 5", acting), ("say 2", checks), ("4,", live)) if s not in part])


@pytest.mark.unit
def test_the_doc_check_reads_the_paragraph_alone():
    """A name the paragraph leaves out is missed though the next paragraph
    (or the rest of the file) says it."""
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    start = text.index("**A restore cut off putting items back**")
    end = text.index("\n\n", start)
    cut = text[:start] + text[start:end].replace("`monitor`", "the dashboard") + text[end:] + "\n`monitor`\n"
    joined_first = " ".join(cut.split()).split("**A restore cut off putting items back**", 1)[1]
    assert "`monitor`" in joined_first  # the old reading (the rest of the file) found it
    assert _docs_miss(cut) == ["`monitor`"]


@pytest.mark.unit
@pytest.mark.parametrize("force", (False, True))
def test_reset_meets_a_restore_putting_items_back_now_as_a_live_run(force):
    """The mark's restore holds the lock: it is changing the host now, so
    reset is LOCKED (4) in the holder's words and its step; --force does
    not stop it (killed there, it would leave half the data put back)."""
    p = _reset_plan(HOLDER)
    code, why = p.refusal(force)
    assert code == errors.LOCKED, why
    (line,) = why
    assert line.startswith(f"locked: restore by ops@laptop (pid 4242, run {CUT}) at step restore: put back: "
                           "it is putting items back now"), line
    assert "cut off" not in line and "--force stops it" not in line, line


@pytest.mark.unit
def test_a_mark_with_another_holder_is_still_cut_off():
    """A mark whose restore holds no lock (another run does) was cut off:
    without --force the lock is said first (4), with --force the cut-off
    refusal (5) stands."""
    other = dict(HOLDER, trigger="backup", run_id="20261201T010000-000002", pid=5151)
    p = _reset_plan(other)
    assert p.refusal(False)[0] == errors.LOCKED
    assert p.refusal(True) == (errors.BROKEN, [p.cut_off]) and "was cut off" in p.cut_off
