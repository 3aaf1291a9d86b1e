"""`reset` decides first, then asks (#24: a person answered "yes" and was
then told that nothing could be done). Every host's plan is read before
the question (ResetPlan.refusal: a held port, exit 2; a run holding the
host lock without --force, exit 4): when every selected host refuses, the
refusals are printed and the task exits with their code without asking;
when some refuse, the question names only the hosts that would be reset,
and only those are reset. docs/maintenance.md, "reset"."""
import json
import sys

import pytest

from fabops.errors import FAILED, LOCKED
from fabops.maintenance.reset import ResetPlan, ResetResult, reset_would
from tests.conftest import run_cli, write_inventory

HELD = ("port 3013 is held by another process (pid 4242: python3 -m http.server), not bot (stopped): stop that "
        "process or give bot another port, then run again")


def _plan(**kw) -> ResetPlan:
    return ResetPlan("a" * 40, "b" * 40, [], True, **kw)


@pytest.mark.parametrize("plan, force, code, said", [
    (_plan(), False, None, None),
    (_plan(held=[HELD]), False, FAILED, [HELD]),
    (_plan(lock="locked", holder="deploy by ops@ci (pid 77)", holder_pid=77), False, LOCKED,
     ["locked: deploy by ops@ci (pid 77) (reset --force stops it, after confirmation)"]),
    (_plan(lock="locked", holder="deploy by ops@ci (pid 77)", holder_pid=77), True, None, None),
    (_plan(lock="locked", holder="deploy by ops@ci", holder_pid=None), True, FAILED,
     ["the lock holder recorded no pid; stop it by hand"]),
    # without --force a holder with no pid is not said to be --force's to stop (trial)
    (_plan(lock="locked", holder="another process (no details recorded)", holder_pid=None), False, LOCKED,
     ["locked: another process (no details recorded) (it recorded no pid: stop it by hand)"]),
    (_plan(lock="end_watch", holder="deploy by ops@ci (pid 77)", holder_pid=77), False, None, None),
    # the lock is taken first: a locked host is LOCKED whatever else, and says both
    (_plan(held=[HELD], lock="locked", holder="cron by root", holder_pid=9), False, LOCKED,
     ["locked: cron by root (reset --force stops it, after confirmation)", HELD]),
])
def test_a_plan_says_whether_the_real_reset_would_refuse(plan, force, code, said):
    refused = plan.refusal(force)
    assert (refused[0] if refused else None, refused[1] if refused else None) == (code, said)
    host = _host()
    would = reset_would(host, plan, force)
    if refused:  # the dry run says the refusal and nothing else
        assert [(w.action, w.why) for w in would] == [("stop", why) for why in said]
    else:
        assert would[-1].action == "record" and "stop" not in [w.action for w in would[:1]]
    if plan.lock == "locked" and not refused:
        assert (would[0].action, would[0].target) == ("kill", "pid 77") and "--force" in would[0].why
    if plan.lock == "end_watch":
        assert would[0].action == "end watch" and "deploy by ops@ci (pid 77) only watches" in would[0].why


def _host(name="web1"):
    from fabops import inventory

    return inventory.from_data({"hosts": {name: {"app": {"path": "~/app"},
                                                 "services": [{"name": "bot", "manager": "process", "command": "true"}]}}}).hosts[name]


class _Fake:
    """Two hosts whose plans are given; connect and the reset itself faked
    (the plan and the question are what is tested), the questions kept."""

    def __init__(self, monkeypatch, tmp_path, plans, capsys=None):
        self.asked, self.reset = [], []
        self.capsys, self.err_at_question = capsys, []
        self.inventory = str(write_inventory(tmp_path / "hosts.yml", {
            name: {"address": "127.0.0.1", "services": [{"name": "bot", "manager": "process", "command": "true"}]} for name in plans}))
        monkeypatch.setattr("fabops.connection.connect", lambda host, inv, **kw: object())
        monkeypatch.setattr("fabops.connection.close_quietly", lambda cxn: None)
        monkeypatch.setattr("fabops.maintenance.reset_plan", lambda c, host, *_: plans[host.name])
        monkeypatch.setattr("fabops.maintenance.reset", self._reset)
        monkeypatch.setattr("fabops.tasks.maintenance.confirm", self._confirm)

    def _confirm(self, question, yes):
        """The question kept, with what stderr held when it was asked (read
        and written back, so the test still sees the whole output)."""
        self.asked.append(question)
        if self.capsys is not None:
            said = self.capsys.readouterr()
            self.err_at_question.append(said.err)
            sys.stdout.write(said.out)
            sys.stderr.write(said.err)

    def _reset(self, c, host, plan, actor, force=False, progress=None):
        self.reset.append((host.name, force))
        return ResetResult("deployed", "reset to bbbbbbbbbb; services healthy", "~/backup/reset-x", plan.head,
                           plan.target)

    def run(self, *flags):
        from invoke.exceptions import Exit

        from fabops.tasks.maintenance import reset

        kw = {"hosts": "web1,web2", "inventory": self.inventory, **{f: True for f in flags}}
        try:
            reset.body(None, **kw)
        except Exit as exc:
            return exc.code
        return 0


def test_when_every_host_refuses_nothing_is_asked(monkeypatch, tmp_path, capsys):
    fake = _Fake(monkeypatch, tmp_path, {"web1": _plan(held=[HELD]),
                                         "web2": _plan(lock="locked", holder="deploy by ops@ci", holder_pid=5)})
    assert fake.run() == FAILED  # the worst of 2 and 4 (docs/architecture.md, "Exit codes")
    out, err = capsys.readouterr()
    assert fake.asked == [] and fake.reset == [], fake.asked
    assert out == "" and f"fabops: web1: {HELD}" in err and "fabops: web2: locked: deploy by ops@ci" in err, err
    fake.asked.clear()
    assert fake.run("json") == FAILED and fake.asked == []
    doc = json.loads(capsys.readouterr().out)
    assert doc["hosts"] == {"web1": {"error": HELD, "code": FAILED}, "web2": {
        "error": "locked: deploy by ops@ci (reset --force stops it, after confirmation)", "code": LOCKED}}


def test_when_some_refuse_the_question_names_only_the_hosts_it_resets(monkeypatch, tmp_path, capsys):
    fake = _Fake(monkeypatch, tmp_path, {"web1": _plan(held=[HELD]), "web2": _plan()}, capsys)
    assert fake.run() == FAILED  # web2 reset, web1 refused: the refusal's code counts
    out, err = capsys.readouterr()
    assert fake.asked == ["Reset web2?"] and fake.reset == [("web2", False)], (fake.asked, fake.reset)
    assert "[web2] plan: save .env" in out and "[web1] plan" not in out and "[web2] deployed: reset to" in out
    assert err.count(HELD) == 1, err  # said once, and before the question:
    assert f"fabops: web1: {HELD}" in fake.err_at_question[0], fake.err_at_question


def test_force_asks_to_stop_only_the_holders_the_plan_found(monkeypatch, tmp_path, capsys):
    fake = _Fake(monkeypatch, tmp_path, {"web1": _plan(lock="locked", holder="deploy by ops@ci", holder_pid=5),
                                         "web2": _plan()})
    assert fake.run("force") == 0
    assert fake.asked == ["Reset web1, web2?", "Stop the run that holds the host lock on web1?"], fake.asked
    assert fake.reset == [("web1", True), ("web2", False)]
    fake.asked.clear()
    fake.reset.clear()
    monkeypatch.setattr("fabops.maintenance.reset_plan", lambda c, host, *_: _plan())
    assert fake.run("force") == 0 and fake.asked == ["Reset web1, web2?"] and fake.reset == [("web1", False),
                                                                                           ("web2", False)]


class _Locked:
    """RemoteLock on a host whose lock is held: the first take fails as
    RemoteLock's does (exit 4), the one after the stop succeeds."""

    def __init__(self, taken):
        self.taken = taken

    def __call__(self, c, host, info):
        return self

    def __enter__(self):
        from fabops.errors import LockedError

        self.taken.append("try")
        if len(self.taken) == 1:
            raise LockedError("locked: deploy by ops@ci", host="web1")
        return self


@pytest.mark.parametrize("now, stops", [
    ({"actor": "ops@ci", "trigger": "deploy", "pid": 77, "run_id": "r-77"}, True),  # the plan's holder
    ({"actor": "ops@ci", "trigger": "deploy", "pid": 99, "run_id": "r-99"}, False),  # a new run took it
    ({"actor": "ops@ci", "trigger": "deploy", "pid": 77, "run_id": "r-other"}, False),  # the pid reused
])
def test_force_stops_only_the_holder_the_plan_named(monkeypatch, now, stops):
    """The question said `would kill pid 77`: --force stops that run, and
    a run that took the lock since (another pid or run id) is exit 4 with
    the holder named, nothing stopped (#26 review)."""
    from fabops.errors import LockedError
    mod = sys.modules["fabops.maintenance.reset"]
    taken, stopped = [], []
    monkeypatch.setattr("fabops.remote.RemoteLock", _Locked(taken))
    monkeypatch.setattr(mod, "_remote_holder", lambda c, host: now)
    monkeypatch.setattr(mod, "stop_holder", lambda c, host, holder: stopped.append(holder["pid"]))
    plan = _plan(lock="locked", holder="deploy by ops@ci (pid 77, run r-77)", holder_pid=77, holder_run_id="r-77")
    said = []
    if stops:
        assert mod._take_lock(None, _host(), {}, plan, said.append) is not None
        assert stopped == [77] and taken == ["try", "try"] and "pid 77" in said[0], said
        return
    with pytest.raises(LockedError) as exc:
        mod._take_lock(None, _host(), {}, plan, said.append)
    assert stopped == [] and said == [] and taken == ["try"]
    msg = str(exc.value)
    assert f"pid {now['pid']}" in msg and "the holder changed since the plan" in msg and "run reset again" in msg, msg
    assert "(it named deploy by ops@ci (pid 77, run r-77))" in msg and exc.value.exit_code == LOCKED


@pytest.mark.parametrize("plan, now, said", [
    # the plan found the lock free: --force was agreed for no one (review 2)
    (_plan(), {"pid": 99, "run_id": "r-99", "trigger": "deploy", "actor": "ops@ci"}, "the plan found the lock free"),
    # a holder with no pid matches a plan that named none: still nothing to stop
    (_plan(lock="locked", holder="another process (no details recorded)"), {"recorded": False},
     "the holder changed since the plan"),
])
def test_force_stops_no_one_the_plan_did_not_name(monkeypatch, plan, now, said):
    from fabops.errors import LockedError
    mod = sys.modules["fabops.maintenance.reset"]
    taken, stopped, lines = [], [], []
    monkeypatch.setattr("fabops.remote.RemoteLock", _Locked(taken))
    monkeypatch.setattr(mod, "_remote_holder", lambda c, host: now)
    monkeypatch.setattr(mod, "stop_holder", lambda c, host, holder: stopped.append(holder))
    with pytest.raises(LockedError) as exc:
        mod._take_lock(None, _host(), {}, plan, lines.append)
    assert stopped == [] and lines == [] and said in str(exc.value) and "pid None" not in str(exc.value), exc.value


def test_the_plan_reads_the_lock_in_the_checkout_script(tmp_path):
    """One round trip (docs/architecture.md, "Plans"): reset_plan_cmd's
    `lock` section names the holder, as remote.lock_holder did, run here
    with sh and flock(1) against a lock that a HostLock holds."""
    import shutil
    import subprocess

    from fabops.host.lock import HostLock
    from fabops.inventory import from_data
    from fabops.maintenance.reset import parse_reset_plan, reset_plan_cmd
    from fabops.probe import MARK

    if not shutil.which("flock"):
        pytest.skip("no flock(1)")
    home = tmp_path / "fabops"
    host = from_data({"hosts": {"web1": {"app": {"path": str(tmp_path / "app")}, "home": str(home),
                                         "services": [{"name": "bot", "manager": "process", "command": "true"}]}}}).hosts["web1"]
    home.mkdir(parents=True)
    lock = host.paths.lock
    free = subprocess.run(["sh", "-c", reset_plan_cmd(host)], capture_output=True, text=True)
    assert free.returncode == 0 and parse_reset_plan(free.stdout).lock == "take", free
    info = {"actor": "ops@ci", "trigger": "deploy", "pid": 77, "run_id": "r-77", "phase": "checkout"}
    with HostLock(lock, info).acquire(wait=0):
        held = subprocess.run(["sh", "-c", reset_plan_cmd(host)], capture_output=True, text=True)
    plan = parse_reset_plan(held.stdout)
    assert held.returncode == 0 and (plan.lock, plan.holder_pid, plan.holder_run_id) == ("locked", 77, "r-77"), held
    assert plan.holder.startswith("deploy by ops@ci (pid 77") and plan.head is None
    assert f"{MARK}lock" not in reset_plan_cmd(host, lock=False)


def test_the_sandbox_refuses_a_locked_host_without_asking(sandbox, monkeypatch):
    """A run holding the host lock (mid-change, not watching): reset exits
    4 with the holder, on a terminal without a question and without a TTY
    without `pass --yes`; its dry run says the same."""
    from fabops.host.lock import HostLock
    from fabops.paths import HostPaths
    from tests.test_monitor_pty import Session

    monkeypatch.delenv("CI", raising=False)
    code, first = sandbox.result()
    assert (code, first["result"]) == (0, "deployed"), first
    inv = str(sandbox.inventory)
    info = {"actor": "ops@ci", "trigger": "deploy", "run_id": "r-held", "phase": "checkout"}
    with HostLock(HostPaths.for_home(str(sandbox.home)).lock, info).acquire(wait=0):
        r = run_cli("reset", "-i", inv, "-H", "local")
        dry = run_cli("reset", "-i", inv, "-H", "local", "--dry-run")
        session = Session([sys.executable, "-m", "fabops.cli", "reset", "-i", inv, "-H", "local"], background=False)
        try:
            tty = session.wait(90)
        finally:
            session.close()
    said = " ".join(r.stderr.split())
    assert r.returncode == 4 and "fabops: local: locked: deploy by ops@ci" in said, r.stdout + r.stderr
    assert "pass --yes" not in said and "(reset --force stops it, after confirmation)" in said, said
    assert dry.returncode == 4 and "[local] would stop: locked: deploy by ops@ci" in dry.stdout, dry.stdout
    text = session.out.decode("utf-8", "replace")
    assert tty == 4 and "[y/N]" not in text and "locked: deploy by ops@ci" in text, text
    assert not list(sandbox.home.glob("**/reset-*"))


def test_a_holder_that_wrote_nothing_is_another_process_not_question_marks(tmp_path):
    from fabops.host.lock import describe_holder

    import fcntl

    from fabops.host.lock import peek_holder
    from fabops.remote import parse_lock_holder

    # what the two readers make of a lock held with no record (review 2:
    # both returned {"actor": "?", "trigger": "?"}, so `? by ?` stayed)
    assert describe_holder(parse_lock_holder("HELD\n")) == "another process (no details recorded)"
    lock = tmp_path / "lock"
    lock.write_text("")
    with open(lock) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # as `flock lock sleep 20` holds it
        assert describe_holder(peek_holder(str(lock))) == "another process (no details recorded)"
    assert describe_holder({"run_id": "r1"}) == "another process (no details recorded) (run r1)"
    assert describe_holder({"trigger": "deploy", "actor": "ops@ci"}) == "deploy by ops@ci"
