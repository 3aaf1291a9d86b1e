"""Two defects a new-user trial of #24 found in `health --fix`, on the
local sandbox (`connection: local`, the process back end) through the real
`fabops` console script: cron's own path (host/fastpath.py) and the full
program (tasks/health.py, as from a laptop).

1. With bot stopped and `python3 -m http.server PORT` on its port, `health
   --fix` restarted bot into the held port (`FAILED: port … is held by
   another process …, not bot (restarted bot, still failing)`, `"restarted":
   ["bot"]`), and three such runs spent the automatic restart budget. It now
   refuses as restart, reset and deploy do (the preflight's words,
   readiness.held_among): nothing restarted, no budget spent, exit 2,
   notified once; its --dry-run says the same decision.
2. `health --fix --dry-run` promised `would notify health_recovered` on a
   host with no notification channel, and the real run sent nothing. It
   names a notification only where a channel would carry it."""
import json

import pytest

from tests.conftest import one, run_cli
from tests.test_health_notify import recorder  # noqa: F401 (a fixture)
from tests.test_port_held_sandbox import _held_words, other_process  # noqa: F401 (a fixture)

PATHS = [pytest.param({}, id="cron-fastpath"), pytest.param({"FABOPS_FASTPATH": "0"}, id="full-program")]
ADVICE = "stop that process or give bot another port, then run again"


def _no_channel(monkeypatch):
    for key in ("FABOPS_DISCORD_WEBHOOK", "FABOPS_SLACK_WEBHOOK"):
        monkeypatch.delenv(key, raising=False)


def _health(sandbox, *args, env=None):
    r = run_cli("health", "-i", str(sandbox.inventory), "-H", "local", *args, env=env)
    return r.returncode, r


@pytest.mark.parametrize("env", PATHS)
def test_fix_refuses_a_held_port_before_restarting_and_spends_no_budget(sandbox, other_process, recorder, env,
                                                                        monkeypatch):
    _no_channel(monkeypatch)
    code, first = sandbox.result()
    assert (code, first["result"]) == (0, "deployed"), first
    sandbox.stop()
    other = other_process(sandbox.port)
    held = _held_words(sandbox, other)
    hook = {**env, "FABOPS_DISCORD_WEBHOOK": recorder.url + "/discord"}

    # the dry run: the same decision, no restart promised
    code, r = _health(sandbox, "--fix", "--dry-run", "--json", env=hook)
    dry = one(r.stdout)
    assert (code, dry["status"]) == (2, "held"), dry
    assert held in dry["message"] and ADVICE in dry["message"], dry
    assert [(w["action"], w["target"]) for w in dry["would"]] == [
        ("notify", "the held port"), ("record", "state.json"), ("log", "health log")], dry["would"]
    code, r = _health(sandbox, "--fix", "--dry-run", env=hook)
    said = " ".join(r.stdout.split())
    assert code == 2 and f"local: FAILED: {held}" in said and "would restart" not in said, r.stdout
    assert recorder.requests == [] and not (sandbox.home / "health.log").exists()

    # the real run, three times (the budget's size): refused each time, nothing restarted, said once
    for _ in range(3):
        code, r = _health(sandbox, "--fix", "--json", env=hook)
        rep = one(r.stdout)
        assert (code, rep["status"], rep["restarted"]) == (2, "held", []), rep
        assert rep["message"] == dry["message"], (rep, dry)  # one decision, said alike
        assert "still failing" not in rep["message"], rep
    assert len(recorder.requests) == 1 and held in recorder.texts()[0] and ADVICE in recorder.texts()[0]
    state = sandbox.state
    assert not state.get("restarts"), state  # no budget spent
    assert state["health"]["status"] == "down", state
    log = (sandbox.home / "health.log").read_text().splitlines()
    assert len(log) == 3 and all(f"local FAILED: {held}" in line for line in log), log
    assert other.poll() is None, "the other process was not touched"
    code, r = _health(sandbox, "--fix", env={**hook, "COLUMNS": "80"})
    said = " ".join(r.stdout.split())
    assert code == 2 and held in said and ADVICE in said, r.stdout

    # the port freed: the next run restarts bot, within the budget, and says it recovered
    other_process.stop()
    code, r = _health(sandbox, "--fix", "--json", env=hook)
    rep = one(r.stdout)
    assert (code, rep["status"], rep["restarted"]) == (1, "recovered", ["bot"]), rep
    assert len(sandbox.state["restarts"]) == 1 and "recovered" in recorder.texts()[-1]


def test_a_dry_run_names_a_notification_only_where_a_channel_carries_it(sandbox, recorder, monkeypatch):
    _no_channel(monkeypatch)
    code, _ = sandbox.result()
    assert code == 0
    inv = str(sandbox.inventory)
    state = sandbox.state
    state["health"] = {"status": "down", "since": state["last_check"], "backoff_notified": False}
    (sandbox.home / "state.json").write_text(json.dumps(state))  # a run found bot down; it is up again

    # no channel: the dry run says the event is recorded only, and where a channel is set
    r = run_cli("health", "-i", inv, "-H", "local", "--fix", "--dry-run", "--json")
    would = one(r.stdout)["would"]
    assert ("notify", "the recovery") not in [(w["action"], w["target"]) for w in would], would
    kept = [w for w in would if w["target"] == "the recovery"]  # the event in words, never its key (#24)
    assert [w["action"] for w in kept] == ["record"], would
    assert "no notification channel is configured" in kept[0]["why"] and "FABOPS_DISCORD_WEBHOOK" in kept[0]["why"]
    r = run_cli("health", "-i", inv, "-H", "local", "--fix", "--dry-run", env={"COLUMNS": "80"})
    said = " ".join(r.stdout.split())
    assert "would notify" not in said and "would record the recovery: in the health log; no notification would " \
        "be sent, as no notification channel is configured" in said and "health_" not in said, r.stdout

    # a channel: named, and the real run then sends to it
    hook = {"FABOPS_DISCORD_WEBHOOK": recorder.url + "/discord"}
    r = run_cli("health", "-i", inv, "-H", "local", "--fix", "--dry-run", "--json", env=hook)
    sent = [w for w in one(r.stdout)["would"] if w["target"] == "the recovery"]
    assert [(w["action"], w["why"]) for w in sent] == [("notify", "all services healthy again (to discord)")], sent
    assert recorder.requests == []
    r = run_cli("health", "-i", inv, "-H", "local", "--fix", "--json", env=hook)
    assert [d["channel"] for d in one(r.stdout)["notified"]] == ["discord"], r.stdout
    assert len(recorder.requests) == 1


def test_without_a_channel_the_real_run_sends_nothing_as_its_dry_run_said(sandbox, monkeypatch):
    _no_channel(monkeypatch)
    assert sandbox.result()[0] == 0
    state = sandbox.state
    state["health"] = {"status": "down", "since": state["last_check"], "backoff_notified": False}
    (sandbox.home / "state.json").write_text(json.dumps(state))
    r = run_cli("health", "-i", str(sandbox.inventory), "-H", "local", "--fix", "--json")
    rep = one(r.stdout)
    assert (r.returncode, rep["status"], rep["notified"]) == (0, "ok", []), rep
