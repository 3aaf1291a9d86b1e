"""Review (#24, item 4): `reset` threw away its gate's phase, so a reset
whose service could not start because another process holds its port
marked the commit bad (the host's failure, not the commit's, by the
pipeline's rule); and it stopped the services before looking at the
ports. Now it refuses up front, before anything is saved or stopped, when
another process holds a declared port of a service that is not running
(its dry run says the same, exit 2), and a gate that fails `held` marks
nothing bad. On the sandbox (`connection: local`, the process back end),
with a real `python3 -m http.server` started and stopped by PID here."""
import json
import subprocess

from tests.conftest import run_cli
from tests.test_port_held_sandbox import _held_words, _pidfile_of, other_process  # noqa: F401 (a fixture)


def test_reset_refuses_up_front_while_another_process_holds_a_stopped_services_port(sandbox, other_process,
                                                                                     monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    code, first = sandbox.result()
    assert (code, first["result"]) == (0, "deployed"), first
    good = sandbox.head()
    sandbox.origin.good("2")
    sandbox.stop()
    other = other_process(sandbox.port)
    held = _held_words(sandbox, other)
    inv = str(sandbox.inventory)
    dry = run_cli("reset", "-i", inv, "-H", "local", "--dry-run")
    assert dry.returncode == 2 and f"[local] would stop: {held}" in dry.stdout, dry.stdout + dry.stderr
    assert "would reset" not in dry.stdout and "not bot (its process is gone)" in " ".join(dry.stdout.split()), dry.stdout
    js = run_cli("reset", "-i", inv, "-H", "local", "--dry-run", "--json")
    res = json.loads(js.stdout)
    assert js.returncode == 2 == res["code"], js.stdout
    assert [w["action"] for w in res["hosts"]["local"]["would"]] == ["stop"], res
    real = run_cli("reset", "-i", inv, "-H", "local", "--yes", timeout=180)
    assert real.returncode == 2 and held in " ".join(real.stderr.split()), real.stdout + real.stderr
    assert "✓ save" not in real.stdout, real.stdout  # nothing saved, stopped or reset
    assert sandbox.head() == good and not list(sandbox.home.glob("**/reset-*")), sandbox.head()
    assert not sandbox.state.get("bad") and other.poll() is None, sandbox.state


def test_a_reset_whose_gate_finds_the_port_held_marks_nothing_bad(sandbox, other_process, monkeypatch):
    """The service looks running (its pidfile names a live stand-in), so
    the up-front look passes; after the stop, its start cannot bind: the
    gate fails `held`, the reset ends broken, and the commit is not bad."""
    monkeypatch.delenv("CI", raising=False)
    code, first = sandbox.result()
    assert (code, first["result"]) == (0, "deployed"), first
    new = sandbox.origin.good("2")
    sandbox.stop()
    other = other_process(sandbox.port)
    stand_in = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (sandbox.home / "services" / "bot.pid").write_text(_pidfile_of(stand_in.pid))
        r = run_cli("reset", "-i", str(sandbox.inventory), "-H", "local", "--yes", timeout=180)
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
        stand_in.wait(10)
    assert r.returncode == 5 and "broken: reset to" in r.stdout, r.stdout + r.stderr
    assert _held_words(sandbox, other) in " ".join(r.stdout.split()), r.stdout
    assert sandbox.head() == new and not sandbox.state.get("bad"), sandbox.state


def test_the_plan_reads_the_held_port_in_its_one_round_trip(sandbox, other_process, monkeypatch):
    """The ports' facts (the service's status, whose the listener is) ride
    in the plan's one script beside the checkout and state.json (before: a
    status call, then one /proc read a port, each a round trip over SSH)."""
    from invoke import Context

    from fabops import inventory
    from fabops.maintenance.reset import held, reset_plan
    from fabops.target import Target

    code, _ = sandbox.result()
    assert code == 0
    sandbox.stop()
    other = other_process(sandbox.port)
    host = inventory.load(str(sandbox.inventory)).hosts["local"]
    ran, original = [], Target.run

    def counted(self, cmd, what="", **kwargs):
        ran.append(what)
        return original(self, cmd, what, **kwargs)

    monkeypatch.setattr(Target, "run", counted)
    plan = reset_plan(Context(), host)
    assert ran == ["reading the checkout, the ports and the host lock"], ran
    (said,) = plan.held
    assert said.startswith(_held_words(sandbox, other)) and "not bot (its process is gone)" in said, said
    assert held(Context(), host) == plan.held and ran[1:] == ["reading the declared ports"], ran
