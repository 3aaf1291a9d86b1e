"""New-user trial (#24): `restart --dry-run` said "would restart bot: then
poll it until ready", exit 0, while another process held bot's port and
the real restart then failed its gate (exit 2) without the advice deploy
and reset give. A restart decides before it acts, as they do: the
declared ports of the services it restarts are read first (the deploy
preflight's rule, host/readiness.held_among, and its words), a held one
refuses it (exit 2, nothing restarted), and its dry run renders that same
decision. On the sandbox (`connection: local`, the process back end),
with a real `python3 -m http.server` started and stopped by PID here."""
import json

from tests.conftest import run_cli
from tests.test_port_held_sandbox import _held_words, other_process  # noqa: F401 (a fixture)


def test_restart_refuses_up_front_while_another_process_holds_a_stopped_services_port(sandbox, other_process,
                                                                                       monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    code, first = sandbox.result()
    assert (code, first["result"]) == (0, "deployed"), first
    before = sandbox.pid()
    sandbox.stop()
    other = other_process(sandbox.port)
    held = _held_words(sandbox, other)
    advice = "stop that process or give bot another port, then run again"
    inv = str(sandbox.inventory)
    dry = run_cli("restart", "-i", inv, "-H", "local", "--dry-run")
    said = " ".join(dry.stdout.split())
    assert dry.returncode == 2 and f"[local] would stop: {held}" in said, dry.stdout + dry.stderr
    assert "would restart" not in said and advice in said, dry.stdout
    js = run_cli("restart", "-i", inv, "-H", "local", "--dry-run", "--json")
    res = json.loads(js.stdout)
    assert js.returncode == 2 == res["code"], js.stdout
    assert [w["action"] for w in res["hosts"]["local"]["would"]] == ["stop"], res
    real = run_cli("restart", "-i", inv, "-H", "local")
    words = " ".join((real.stdout + real.stderr).split())
    assert real.returncode == 2 and held in words and advice in words, real.stdout + real.stderr
    assert "✗" not in real.stdout and sandbox.pid() == before, real.stdout  # nothing restarted
    assert other.poll() is None
    rj = run_cli("restart", "-i", inv, "-H", "local", "--json")
    assert rj.returncode == 2 == json.loads(rj.stdout)["code"], rj.stdout
    # the other process gone, the same restart goes through
    other_process.stop()
    again = run_cli("restart", "-i", inv, "-H", "local")
    assert again.returncode == 0 and "✓" in again.stdout, again.stdout + again.stderr


def test_the_decision_reads_its_facts_in_one_round_trip_and_only_the_restarted_services_ports():
    """Over SSH the ports and the lock's holder ride in one script; the
    ports looked at are those of the services the restart names."""
    from fabops.maintenance.restart import RestartDecision, parse_restart_facts, restart_facts_cmd, restart_would
    from fabops.remote import restart_plan
    from tests.test_commands import _hostile_host

    host = _hostile_host("x")
    unit, proc = host.services
    with_lock = str(restart_facts_cmd(host, [proc]))
    assert "flock -n -s" in with_lock and "lock_rc" in with_lock and "9" in with_lock
    assert "flock" not in str(restart_facts_cmd(host, [proc], lock=False))
    assert "owners" not in str(restart_facts_cmd(host, [unit]))  # no port named: none read
    held, holder, moved, cut_off = parse_restart_facts("\n", host, [proc])
    assert (held, holder, moved, cut_off) == ([], None, None, None)
    free = RestartDecision(restart_plan(host, None, {}), ("port 9 is held ...",))
    assert free.refusal()[0] == 2 and [w.action for w in restart_would(host, free)] == ["stop"]
    locked = RestartDecision(restart_plan(host, None, {"actor": "a@b", "trigger": "cron", "phase": "change"}),
                             ("port 9 is held ...",))
    assert locked.refusal() == (4, ["locked: cron by a@b"])
    assert RestartDecision(restart_plan(host, None, {})).refusal() is None


def test_a_checkout_off_the_deployed_commit_is_refused_with_the_way_out():
    """#24: after a reset onto a commit that did not come up, a restart
    restarted that checkout (exit 2 'bot died after starting') while status
    and monitor advised it. The decision reads where the checkout is beside
    state.json's deployed commit; off it, the restart refuses (exit 2) in
    monitor.checkout_moved_text's words, as its dry run does."""
    from fabops.maintenance.restart import RestartDecision, parse_restart_facts, restart_would
    from fabops.monitor import checkout_moved_text
    from fabops.probe import MARK
    from fabops.remote import restart_plan
    from tests.test_commands import _hostile_host

    host = _hostile_host("x")
    good, bad = "a" * 40, "b" * 40
    out = f"{MARK}head\n{bad}\n{MARK}state\n{{\"deployed\": \"{good}\"}}\n{MARK}end\n"
    _, _, moved, _ = parse_restart_facts(out, host, [])
    assert moved == checkout_moved_text(good, bad, host.name)
    assert moved.startswith(f"the checkout is at {bad[:10]}, not the deployed {good[:10]}, so a restart")
    assert f"rollback -H {host.name} --to {good[:10]}` goes back" in moved and "deploys the branch's head" in moved
    d = RestartDecision(restart_plan(host, None, {}), (), moved)
    assert d.refusal() == (2, [moved]) and [w.action for w in restart_would(host, d)] == ["stop"]
    on = f"{MARK}head\n{good}\n{MARK}state\n{{\"deployed\": \"{good}\"}}\n{MARK}end\n"
    assert parse_restart_facts(on, host, [])[2] is None


def test_a_run_in_progress_is_not_a_moved_checkout():
    """A run in its watch has the checkout on its target, not yet deployed:
    a restart ends the watch and restarts (tests/test_watch_lock.py), so
    nothing is refused or advised there."""
    from fabops.maintenance.restart import parse_restart_facts
    from fabops.probe import MARK
    from tests.test_commands import _hostile_host

    host = _hostile_host("x")
    state = '{"deployed": "%s", "in_progress": {"run_id": "r1"}}' % ("a" * 40)
    out = f"{MARK}head\n{'b' * 40}\n{MARK}state\n{state}\n{MARK}end\n"
    assert parse_restart_facts(out, host, [])[2] is None
