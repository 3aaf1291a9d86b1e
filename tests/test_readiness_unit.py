"""The readiness gate and the watch with a fake clock, manager and probe:
pure logic, no processes. The same behaviour on real systemd is in
tests/test_truthful_deploy.py."""
from fabops.host import readiness
from fabops.host.listeners import OTHER, OWN, PortOwner
from fabops.host.services import ServiceStatus
from fabops.inventory import Check, Service


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


class Manager:
    def __init__(self, script):
        self.script = script  # t -> (active, pid)

    def status(self, services):
        return {s.name: self.script(s) for s in services}


def up(pid=100):
    return lambda svc: ServiceStatus(svc.name, True, "active", pid)


class Probe:
    def __init__(self, answers):
        self.answers = answers  # callable(n) -> status
        self.calls = 0

    def port_open(self, port):
        return True

    def port_owner(self, port, pid, systemd, unit=""):
        return PortOwner(port, OWN)

    def http(self, check):
        self.calls += 1
        status = self.answers(self.calls)
        return status, f"HTTP {status}" if status else "no answer", 0.001


def svc(**kw):
    base = dict(name="bot", manager="systemd", port=3003, timeout=60.0, settle=0.5, watch=8.0,
                check=Check(url="http://127.0.0.1:3003/x", method="POST"))
    base.update(kw)
    return Service(**base)


def test_a_constant_500_fails_the_gate_early_with_few_requests():
    clock, probe = Clock(), Probe(lambda n: 500)
    r = readiness.wait_ready(Manager(up()), svc(), clock=clock, sleep=clock.sleep, probe=probe)
    assert not r.ok and "deterministic" in r.message and "HTTP 500" in r.message
    assert r.requests == probe.calls <= 7 and clock.t < 20  # not the 60 s timeout


def test_a_slow_start_is_not_a_deterministic_failure():
    # no answer (still starting), then 200: never failed early
    clock, probe = Clock(), Probe(lambda n: None if n < 6 else 200)
    r = readiness.wait_ready(Manager(up()), svc(), clock=clock, sleep=clock.sleep, probe=probe)
    assert r.ok and r.requests == 6


def test_the_check_backs_off_to_about_15_a_minute():
    clock, probe = Clock(), Probe(lambda n: 503 if n % 2 else 502)  # changing errors: never "the same"
    r = readiness.wait_ready(Manager(up()), svc(), clock=clock, sleep=clock.sleep, probe=probe)
    assert not r.ok and "gave" in r.message and clock.t >= 60
    assert probe.calls <= 20


def test_the_fail_fast_rule_is_configurable():
    clock, probe = Clock(), Probe(lambda n: 500)
    check = Check(url="http://127.0.0.1:3003/x", fail_count=3, fail_window=2.0)
    r = readiness.wait_ready(Manager(up()), svc(check=check), clock=clock, sleep=clock.sleep, probe=probe)
    assert not r.ok and r.requests == 4  # t = 0, 0.5, 1.5 (1.5 s < 2 s), 3.5: fails


def test_the_watch_catches_a_restart_behind_our_back():
    clock = Clock()
    manager = Manager(lambda s: ServiceStatus(s.name, True, "active", 100 if clock.t < 3 else 200))
    r = readiness.watch(manager, [svc()], clock=clock, sleep=clock.sleep, probe=Probe(lambda n: 200))
    assert not r.ok and "restarted on its own" in r.message and 3 <= clock.t < 4


def test_the_watch_catches_a_death_and_two_failed_checks():
    clock = Clock()
    manager = Manager(lambda s: ServiceStatus(s.name, clock.t <= 5, "failed" if clock.t > 5 else "active", 100))
    r = readiness.watch(manager, [svc()], clock=clock, sleep=clock.sleep, probe=Probe(lambda n: 200))
    assert not r.ok and "died" in r.message
    clock = Clock()
    probe = Probe(lambda n: 200 if n == 1 else 500)
    r = readiness.watch(Manager(up()), [svc(watch=30.0)], clock=clock, sleep=clock.sleep, probe=probe)
    assert not r.ok and "twice in a row" in r.message and probe.calls == 3


def test_a_healthy_service_passes_its_watch_with_few_requests():
    clock, probe = Clock(), Probe(lambda n: 200)
    r = readiness.watch(Manager(up()), [svc(watch=30.0), svc(name="api", watch=0.0)], clock=clock,
                        sleep=clock.sleep, probe=probe)
    assert r.ok and 30 <= clock.t < 31 and probe.calls == 5 == r.requests


def test_the_gate_uses_the_one_http_check_and_no_proxy(monkeypatch):
    """LocalProbe is host/httpcheck.py, the check the agentless path runs
    too (tests/test_http_check.py): with a proxy variable pointing at a dead
    port, the gate still reaches the service, and a redirect is the answer."""
    import http.server
    import threading

    from fabops.host import httpcheck

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 301)
            self.send_header("Location", "/health")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    calls = []
    real = httpcheck.run
    monkeypatch.setattr(httpcheck, "run", lambda check: calls.append(check) or real(check))
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        ok = readiness.quick_health(Manager(up()), [svc(port=None, check=Check(url=base + "/health"))], probe=readiness.LocalProbe())
        moved = readiness.quick_health(Manager(up()), [svc(port=None, check=Check(url=base + "/old"))], probe=readiness.LocalProbe())
    finally:
        srv.shutdown()
        srv.server_close()
    assert [r.ok for r in ok] == [True] and len(calls) == 2
    assert (moved[0].ok, moved[0].http_status, moved[0].message) == (False, 301, "bot: check gave HTTP 301")


class HeldProbe(Probe):
    """Another process holds `port` (pid 4242); the rest is the service's."""

    def __init__(self, port):
        super().__init__(lambda n: 200)
        self.port = port

    def port_owner(self, port, pid, systemd, unit=""):
        if port == self.port:
            return PortOwner(port, OTHER, 4242, "python3 -m http.server 3013")
        return PortOwner(port, OWN)


def test_a_port_another_process_holds_fails_the_gate_at_once_without_a_request():
    clock, probe = Clock(), HeldProbe(3003)
    r = readiness.wait_ready(Manager(up()), svc(), clock=clock, sleep=clock.sleep, probe=probe)
    assert (r.ok, r.phase, r.requests, probe.calls) == (False, "held", 0, 0) and clock.t == 0
    assert r.message == "port 3003 is held by another process (pid 4242: python3 -m http.server 3013), not bot"


def test_a_checks_own_port_held_by_another_process_fails_the_gate_too():
    clock, probe = Clock(), HeldProbe(3013)
    service = svc(port=None, check=Check(url="http://localhost:3013/health"))
    r = readiness.wait_ready(Manager(up()), service, clock=clock, sleep=clock.sleep, probe=probe)
    assert (r.ok, r.phase, probe.calls) == (False, "held", 0) and "(its check's port)" in r.message
    # a check elsewhere than this host's loopback is not this host's port
    elsewhere = svc(port=None, check=Check(url="http://10.0.0.5:3013/health"))
    assert readiness.wait_ready(Manager(up()), elsewhere, clock=clock, sleep=clock.sleep, probe=probe).ok


def test_the_watch_fails_on_a_port_another_process_took():
    clock, probe = Clock(), HeldProbe(3003)
    seen = readiness.watch(Manager(up()), [svc()], clock=clock, sleep=clock.sleep, probe=probe, gated={"bot": 100})
    assert (seen.ok, seen.phase) == (False, "held") and "held by another process (pid 4242" in seen.message


def test_loopback_ports():
    assert readiness.loopback_port("http://127.0.0.1:3013/x") == 3013
    assert readiness.loopback_port("http://[::1]:8080/") == 8080
    assert readiness.loopback_port("http://localhost/health") == 80
    assert readiness.loopback_port("https://example.com:3013/") is None
    assert readiness.loopback_port("http://127.0.0.1:99999/") is None


class OwnProbe(Probe):
    """Port 3003's listener is pid `own()`'s (the service's restarted
    instance), in the systemd unit `bot`: asked with that PID or that unit
    it is the service's; asked with neither (an old PID of the process back
    end), another process's, as listeners.port_owner would answer."""

    def __init__(self, own):
        super().__init__(lambda n: 200)
        self.own, self.asked = own, []

    def port_owner(self, port, pid, systemd, unit=""):
        self.asked.append((pid, unit))
        if pid == self.own() or unit == "bot":
            return PortOwner(port, OWN)
        return PortOwner(port, OTHER, self.own(), "bot")


def test_a_crash_loop_whose_new_instance_listens_is_the_commits_failure_not_held():
    """pid 99999 -> 11111, which listens on the service's port: a crash loop
    (phase watch, the commit marked bad), not "held by another process"."""
    clock = Clock()
    probe = OwnProbe(lambda: 99999 if clock.t < 3 else 11111)
    manager = Manager(lambda s: ServiceStatus(s.name, True, "active", probe.own()))
    process = svc(manager="process")
    seen = readiness.watch(manager, [process], clock=clock, sleep=clock.sleep, probe=probe, gated={"bot": 99999})
    assert (seen.ok, seen.phase) == (False, "watch") and "crash loop" in seen.message, seen
    assert "held" not in seen.message and (11111, "") in probe.asked
    # the gate's own "restarted on its own" and a death between restarts
    clock = Clock()
    probe = OwnProbe(lambda: 99999 if clock.t < 1 else 11111)
    manager = Manager(lambda s: ServiceStatus(s.name, True, "active", probe.own()))
    gate = readiness.wait_ready(manager, svc(manager="process", settle=5.0), clock=clock, sleep=clock.sleep, probe=probe)
    assert (gate.ok, gate.phase) == (False, "settle") and "crash loop" in gate.message, gate
    clock = Clock()
    dead = Manager(lambda s: ServiceStatus(s.name, False, "activating", None))
    seen = readiness.watch(dead, [svc()], clock=clock, sleep=clock.sleep, probe=probe, gated={"bot": 99999})
    assert seen.phase == "watch" and "died" in seen.message, seen


def test_quick_health_measures_each_check(monkeypatch):
    """#27's trial: health --json said `"seconds": 0.0` and
    fabops_service_check_duration_seconds 0 for a check monitor timed at
    7-49 ms. Each result carries how long its status read, port and HTTP
    check took."""
    import time

    class Slow(Probe):
        def http(self, check):
            time.sleep(0.02)
            return super().http(check)

    [r] = readiness.quick_health(Manager(up()), [svc()], probe=Slow(lambda n: 200))
    assert r.ok and 0.02 <= r.seconds < 5, r.seconds
    assert r.to_dict()["seconds"] >= 0.02
