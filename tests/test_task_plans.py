"""The small tasks' decisions as tables (#23; docs/architecture.md, "Plans"):
restart (its services and the lock verdict), unpin (the pin) and setup
--check (its items), each a pure function that the real run and the dry
run share, tested without SSH. Plus the one human line form (host/would.py).
"""
from __future__ import annotations

import json
import time

import pytest

from fabops import inventory
from fabops.errors import CommandFailed, UsageError
from fabops.host.would import Would, as_json, lines
from fabops.probe import MARK
from fabops.remote import restart_plan, restart_would, unpin_plan

from tests.test_health_plan import HOST as ONE  # bot, api, worker

HOST = {"h": ONE, "bare": inventory.loads("hosts:\n  bare:\n    connection: local\n    app: {path: /srv/app}\n").hosts["bare"]}


def holder(kind: str) -> dict:
    """free, or a run holding the lock: mid-change (cron, deploy, ci, reset,
    health), watching (watch, promote: its watch ends in 20 s) or one whose
    watch is long over (stale-watch)."""
    if kind == "free":
        return {}
    base = {"actor": "alice@laptop", "target": "abc123", "pid": 42, "since": time.time() - 5, "run_id": "r1"}
    if kind in ("watch", "promote"):
        return {**base, "trigger": "cron", "phase": kind, "watch_ends": time.time() + 20}
    if kind == "stale-watch":
        return {**base, "trigger": "cron", "phase": "watch", "watch_ends": time.time() - 3600}
    return {**base, "trigger": kind, "phase": "change"}


# service (- all) | lock | expected: the would list as action:target, or stop
RESTART_ROWS = [
    ("-", "free", "restart:bot restart:api restart:worker record:state.json"),
    ("bot", "free", "restart:bot"),
    ("api", "free", "restart:api"),
    ("worker", "free", "restart:worker"),
    ("-", "cron", "stop"),
    ("-", "deploy", "stop"),
    ("-", "ci", "stop"),
    ("-", "reset", "stop"),
    ("-", "health", "stop"),
    ("bot", "cron", "stop"),
    ("api", "deploy", "stop"),
    # the phase decides, as remote_lock_script's grep does: a watch past its
    # end (the run is promoting late) is still asked to end
    ("-", "stale-watch", "end watch:- restart:bot restart:api restart:worker"),
    ("-", "watch", "end watch:- restart:bot restart:api restart:worker"),
    ("-", "promote", "end watch:- restart:bot restart:api restart:worker"),
    ("bot", "watch", "end watch:- restart:bot"),
    ("worker", "promote", "end watch:- restart:worker"),
]


@pytest.mark.parametrize("service, lock, expected", RESTART_ROWS)
def test_restart_decision_table(service, lock, expected):
    p = restart_plan(HOST["h"], None if service == "-" else service, holder(lock))
    said = restart_would(HOST["h"], p)
    if expected == "stop":
        assert p.verdict == "locked" and [w.action for w in said] == ["stop"], p
        assert said[0].why.startswith("locked: ") and "alice@laptop" in said[0].why, said
        assert "--wait" not in said[0].why  # restart takes no --wait: no hint to use one
        return
    assert " ".join(f"{w.action}:{w.target}" for w in said) == expected, said
    assert p.verdict == ("end_watch" if "watch" in lock or lock == "promote" else "take"), p
    assert p.services == tuple(w.target for w in said if w.action == "restart")
    if p.verdict == "end_watch":
        assert "cron by alice@laptop" in said[0].why and "at once" in said[0].why, said


def test_restart_refuses_what_it_cannot_do():
    with pytest.raises(UsageError, match="unknown service 'nope' \\(known: bot, api, worker\\)"):
        restart_plan(HOST["h"], "nope", {})
    with pytest.raises(CommandFailed, match="no services configured"):
        restart_plan(HOST["bare"], None, {})


@pytest.mark.parametrize("pin, expected", [
    (None, []),
    ("", []),
    ("0123456789abcdef0123", [Would("clear pin", "0123456789", "cron follows the branch again")]),
    ("abc", [Would("clear pin", "abc", "cron follows the branch again")]),
])
def test_unpin_decision_table(pin, expected):
    assert unpin_plan(pin) == expected


@pytest.mark.parametrize("would, prefix, none, expected", [
    ([], "h: ", "", []),
    ([], "h: ", "not pinned: nothing to unpin", ["h: not pinned: nothing to unpin"]),
    ([Would("restart", "bot", "then poll it until ready")], "[h] ", "", ["[h] would restart bot: then poll it until ready"]),
    ([Would("stop", "-", "locked: x")], "", "", ["would stop: locked: x"]),
    ([Would("change", "", "")], "", "", ["would change"]),
    ([{"action": "notify", "target": "health_down", "why": "bot is down"}], "h: ", "", ["h: would notify health_down: bot is down"]),
    ([("run", "npm ci", "a file it watches changed"), ("restart", "api", "its files changed")], "", "nothing",
     ["would run npm ci: a file it watches changed", "would restart api: its files changed"]),
])
def test_one_human_line_form(would, prefix, none, expected):
    assert lines(would, prefix, none=none) == expected


def test_the_json_form_round_trips():
    said = [Would("restart", "bot", "down"), ("record", "state.json", "budget")]
    data = as_json(said)
    assert data == [{"action": "restart", "target": "bot", "why": "down"},
                    {"action": "record", "target": "state.json", "why": "budget"}]
    assert lines(data) == lines(said)


def test_setup_check_would_names_each_item_that_would_change():
    from fabops.setup import ItemResult, SetupReport, would

    items = [ItemResult("env.sh", "ok", "~/.fabops/app/env.sh"),
             ItemResult("crontab", "would change", "# >>> fabops app >>>", "+line\n"),
             ItemResult("journal access", "would change", "add deploy to systemd-journal"),
             ItemResult("broad sudo", "warning", "deploy still has NOPASSWD: ALL"),
             ItemResult("host.yml", "changed", "~/.fabops/app/host.yml", "-a\n+b\n"),
             ItemResult("log bot", "would change", "create /var/log/bot.log (0640, deploy)")]
    assert would(items) == [Would("change", "crontab", "# >>> fabops app >>>"),
                            Would("change", "journal access", "add deploy to systemd-journal"),
                            Would("change", "log bot", "create /var/log/bot.log (0640, deploy)")]
    assert would(items[:1]) == []
    checked = SetupReport("h", items, check=True).to_dict()
    assert checked["would"] == as_json(would(items)) and checked["items"][1]["diff"] == "+line\n"
    assert "would" not in SetupReport("h", items).to_dict()  # a real run reports what it did


RESET_HOST = inventory.loads("""
hosts:
  r:
    connection: local
    app: {path: /srv/app, remote: origin, branch: main}
    backup_dir: ~/backup
    setup_command: make setup
    services:
      - {name: bot, manager: process, command: "node bot.js"}
      - {name: api, manager: process, command: "python3 api.py"}
    deps:
      - {when: [package.json], run: npm ci}
      - {when: [requirements.txt], run: pip install -r requirements.txt}
""").hosts["r"]


STEPS = [("stop", "api"), ("stop", "bot")], [("run", "npm ci"), ("run", "pip install -r requirements.txt"),
                                              ("run", "make setup"), ("start", "bot"), ("start", "api"),
                                              ("record", "state.json")]


@pytest.mark.parametrize("head, target, dirty, reset", [
    ("a" * 40, "b" * 40, [], "aaaaaaaaaa -> bbbbbbbbbb"),
    (None, "b" * 40, ["?? x"], "none -> bbbbbbbbbb"),
    ("a" * 40, None, [" M y", "?? z"], "aaaaaaaaaa -> ?"),
])
def test_reset_names_every_step_it_takes_in_order(head, target, dirty, reset):
    from fabops.maintenance.reset import ResetPlan, reset_would

    said = reset_would(RESET_HOST, ResetPlan(head, target, dirty, True))
    assert [(w.action, w.target) for w in said] == \
        [("save", ".env and local changes")] + STEPS[0] + [("reset", reset)] + STEPS[1], said
    assert said[0].why.startswith(f"{len(dirty)} local change{'' if len(dirty) == 1 else 's'}; saved to ~/backup/reset-<time>/"), said


@pytest.mark.parametrize("pin, why", [
    (None, "deployed (when healthy)"),
    ("c" * 40, "deployed (when healthy); the pin cccccccccc cleared"),
])
def test_reset_says_it_clears_a_pin_only_when_there_is_one(pin, why):
    """Trial #24: `would record state.json: ...; the pin cleared` on a host
    with no pin."""
    from fabops.maintenance.reset import ResetPlan, parse_reset_plan, reset_would

    said = reset_would(RESET_HOST, ResetPlan("a" * 40, "b" * 40, [], True, pin=pin))
    assert (said[-1].action, said[-1].why) == ("record", why), said
    state = json.dumps({"pin": pin} if pin else {})
    assert parse_reset_plan(f"{MARK}head\n{'a' * 40}\n{MARK}state\n{state}\n{MARK}end\n").pin == pin


def test_a_reset_without_rules_or_setup_command_runs_none():
    from fabops.maintenance.reset import ResetPlan, reset_would

    bare = inventory.loads("hosts:\n  b:\n    connection: local\n    app: {path: /srv/app}\n").hosts["b"]
    assert [w.action for w in reset_would(bare, ResetPlan("a", "b", [], False))] == ["save", "reset", "record"]


@pytest.mark.parametrize("diff, why", [
    ({"added": [], "removed": [], "changed": []}, "keys added: -; removed: -; changed: -"),
    ({"added": ["A", "B"], "removed": ["C"], "changed": []}, "keys added: A, B; removed: C; changed: -"),
    ({"added": [], "removed": [], "changed": ["TOKEN"]}, "keys added: -; removed: -; changed: TOKEN"),
])
def test_restore_env_names_keys_never_values(diff, why):
    from fabops.maintenance.env import restore_would

    said = restore_would(RESET_HOST, "20261128T101500.env", diff)
    assert said == [Would("save", ".env", "the current one, as a new backup first"),
                    Would("restore", "20261128T101500.env", why),
                    Would("restart", "bot", "then poll it until ready"), Would("restart", "api", "then poll it until ready")]


@pytest.mark.parametrize("counts, expected", [
    ([], []),
    ([("~/rec", "*.pcm", 0, 0, 60)], []),
    # sizes as backup says them (trial 4: 10 000 bytes read "0.0 MiB"); the rule's own age (it read "the rule's age")
    ([("~/rec", "*.pcm", 2, 1500, 86400)], ["would delete ~/rec/*.pcm: 2 files, 1.5 KiB, older than 1d"]),
    ([("~/rec", "*.pcm", 3, 3 * 1048576, 7200), ("~/tmp", "*.wav", 0, 0, 60), ("~/tmp", "*.log", 1, 524288, 90)],
     ["would delete ~/rec/*.pcm: 3 files, 3.0 MiB, older than 2h",
      "would delete ~/tmp/*.log: 1 file, 512.0 KiB, older than 90s"]),
])
def test_clean_would_delete_what_its_count_found(counts, expected):
    from fabops.maintenance.clean import CleanResult, clean_would

    results = [CleanResult(*c[:4], dry_run=True, older_than=c[4]) for c in counts]
    assert lines(clean_would(results)) == expected
    assert all(set(r.to_dict()) == {"path", "glob", "files", "bytes", "dry_run"} for r in results)


def test_restart_and_unpin_dry_runs_on_a_sandbox_read_the_real_lock_and_state(tmp_path):
    """The local path (the sandbox host, `connection: local`): restart
    --dry-run reads the lock's holder as the real restart meets it: a run
    in its watch is ended first, one mid-change stops it (exit 4); nothing
    is restarted and the lock is never taken."""
    import json

    from fabops.host.lock import HostLock
    from tests.conftest import run_cli
    from tests.harness.apps import Sandbox

    box = Sandbox(tmp_path, timeout="5s")
    try:
        assert box.result()[0] == 0
        pid, inv = box.pid(), str(box.inventory)
        watching = {"actor": "cron@host", "trigger": "cron", "phase": "watch", "run_id": "r9",
                    "watch_ends": time.time() + 30}
        with HostLock(str(box.home / "lock"), watching).acquire():
            r = run_cli("restart", "-i", inv, "--dry-run", "--json")
            would = json.loads(r.stdout)["hosts"]["local"]["would"]
            assert r.returncode == 0 and [(w["action"], w["target"]) for w in would] == [
                ("end watch", "-"), ("restart", "bot")], r.stdout + r.stderr
            assert not (box.home / "watch-end").exists()  # a dry run asks nothing of the watching run
        with HostLock(str(box.home / "lock"), {**watching, "phase": "change"}).acquire():
            r = run_cli("restart", "-i", inv, "--dry-run")
            assert r.returncode == 4 and "would stop: locked: cron by cron@host" in r.stderr, r.stdout + r.stderr
        r = run_cli("unpin", "-i", inv, "--dry-run")
        assert (r.returncode, r.stdout) == (0, "local: not pinned: nothing to unpin\n"), r.stdout + r.stderr
        assert box.pid() == pid  # nothing restarted
    finally:
        box.stop()


def test_a_deploy_dry_run_prints_its_plans_writes_in_the_one_line_form(tmp_path):
    """deploy --dry-run: after the facts line, one `[HOST] would ...` line per
    entry of the plan's `would` (what --json carries), in order."""
    import json

    from tests.conftest import run_cli
    from tests.harness.apps import Sandbox

    box = Sandbox(tmp_path, timeout="5s")
    try:
        assert box.result()[0] == 0
        box.origin.good("2")
        inv = str(box.inventory)
        r = run_cli("deploy", "-i", inv, "--dry-run", "--json")
        would = json.loads(r.stdout)["hosts"]["local"]["plan"]["would"]
        # then the watch the real run keeps after the gate (#24: host/would.watched)
        assert [w["action"] for w in would] == ["checkout", "restart", "watch"], would
        r = run_cli("deploy", "-i", inv, "--dry-run")
        said = [ln for ln in r.stdout.splitlines() if ln.startswith("[local] would ")]
        assert said == lines(would, "[local] "), r.stdout + r.stderr
        assert box.state["deployed"] != box.origin.head  # a plan, not a deploy
    finally:
        box.stop()
