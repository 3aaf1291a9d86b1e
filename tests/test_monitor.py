"""monitor: the fact parser against recorded outputs, thresholds, exit codes."""
import json
from pathlib import Path

import pytest
import yaml

from fabops import errors, inventory, monitor
from fabops.probe import MARK

CASES = sorted((Path(__file__).parent / "fixtures" / "parse_monitor").glob("*.json"))


def host_of(entry):
    return inventory.loads(yaml.safe_dump({"hosts": {"h": entry}}), "x.yml").hosts["h"]


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_parse_monitor(case):
    data = json.loads(case.read_text())
    host = host_of(data["host"])
    facts = monitor.parse(data["output"], host, data["now"])
    for key, want in data["expected"].items():
        got = facts["deploy"]["deployed"] if key == "deployed" else facts[key]
        assert got == want, key
    code, findings = monitor.evaluate(facts, host, data["now"])
    assert code == data["code"]
    if "findings" in data:
        assert [m for _, m in findings] == data["findings"]


def test_script_is_posix_sh_and_reads_no_env_file(tmp_path):
    import subprocess

    host = host_of(json.loads(CASES[-1].read_text())["host"])
    script = monitor.monitor_script(host)
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    assert "PYTHON_API_URL" not in script and host.env_file not in script and "cat " + host.app.path not in script
    # every check in one python3, running the one HTTP check's own source,
    # which also says whose every port is (host/listeners.py, the gate's
    # fact): one interpreter's start (docs/benchmarks.md)
    assert script.count("python3 -I -S -c '") == 1 and "def request(s: dict)" in script
    assert "def port_owner(" in script


def test_the_checks_run_on_the_host_and_no_env_value_is_read(tmp_path):
    """Two services' checks through the monitor's script, against a real
    server: each gets its own answer, in order; the app's .env (a secret, and
    the PYTHON_API_URL the monitor once read) is not read, and there is no
    `api` fact: the Python API's /health is a service's check like any other."""
    import http.server
    import subprocess
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text(f"DISCORD_TOKEN=s3cr3t\nPYTHON_API_URL='{base}/'\n")
    services = [{"name": "api", "manager": "process", "command": "true", "check": {"url": f"{base}/health"}},
                {"name": "bot", "manager": "process", "command": "true", "check": {"url": f"{base}/bad"}},
                {"name": "quiet", "manager": "process", "command": "true"}]
    host = host_of({"connection": "local", "app": {"path": str(app)}, "home": str(tmp_path / "home"),
                    "services": services})
    try:
        out = subprocess.run(["sh", "-c", monitor.monitor_script(host, window=0)], capture_output=True, text=True,
                             input=monitor.monitor_input(host), timeout=60).stdout
    finally:
        srv.shutdown()
    assert "s3cr3t" not in out
    facts = monitor.parse(out, host)
    assert "api" not in facts
    got = {s["name"]: (s["http_status"], s["http_expect"]) for s in facts["services"]}
    assert got == {"api": (200, 200), "bot": (500, 200), "quiet": (None, None)}
    assert all(s["http_latency"] is not None for s in facts["services"][:2])
    for svc in facts["services"]:
        svc["active"] = True  # as if they ran (they are `true`): judge only the checks
    _code, findings = monitor.evaluate(facts, host)
    assert "bot: check gave HTTP 500, expected 200" in [m for _, m in findings]
    assert not any("api" in m and "check" in m for _, m in findings)


def test_find_to_do_declares_the_python_api_health_as_a_check():
    """The legacy PYTHON_API_URL /health probe is the python-api service's
    own check in the example inventory (issue #23)."""
    from pathlib import Path as P

    host = inventory.load(str(P(__file__).parent.parent / "hosts.yml")).hosts["find-to-do"]
    api = next(s for s in host.services if "python-api" in s.name)
    assert api.check is not None and api.check.url.endswith("/health") and api.check.expect == 200


@pytest.mark.parametrize(
    "expr, seconds", [("*/5 * * * *", 300), ("* * * * *", 60), ("@hourly", 3600), ("0 3 * * *", 86400), ("0,30 * * * *", 1800)]
)
def test_update_interval(expr, seconds):
    assert monitor.update_interval(expr) == seconds


def test_thresholds_come_from_the_host():
    data = json.loads((CASES[0].parent / "systemd_bot_down.json").read_text())
    entry = dict(data["host"], thresholds={"cpu": 50, "disk": 90})
    host = host_of(entry)
    facts = monitor.parse(data["output"], host, data["now"])
    code, findings = monitor.evaluate(facts, host, data["now"])
    msgs = [m for _, m in findings]
    assert not any("CPU" in m for m in msgs) and not any("disk" in m for m in msgs)
    assert code == errors.FAILED  # the failed bot unit is still critical


def test_cpu_percent():
    assert monitor.cpu_percent("cpu 0 0 0 100 0", "cpu 50 0 0 150 0") == 50.0
    assert monitor.cpu_percent("junk", "cpu 1 2 3 4") is None


def test_history_series_and_sparkline(tmp_path):
    from fabops.host import metrics
    from fabops.tasks.observe import sparkline

    lines = [json.dumps({"t": i, "cpu": [10 * i, 0, 0, 100 * i, 0], "memory": 10.0 + i, "disk": 50.0}) for i in range(1, 5)]
    lines.insert(2, "{torn line")
    s = metrics.series(lines)
    assert s["cpu"] == [9.1, 9.1, 9.1] and s["memory"] == [11.0, 12.0, 13.0, 14.0] and s["since"] == 1
    assert sparkline([0, 50, 100]) == "▁▅█" and sparkline([]) == "not available yet"
    path = tmp_path / "metrics.jsonl"
    metrics.record(str(path))
    first = Path("/proc/stat").read_text().splitlines()[0]
    while Path("/proc/stat").read_text().splitlines()[0] == first:  # the next clock tick
        pass
    metrics.record(str(path))
    assert len(metrics.series(path.read_text().splitlines())["cpu"]) == 1
    # a pair across a reboot (counters went back) or with no time between gives no point
    rebooted = ['{"t":1,"cpu":[900,0,100,1000,0]}', '{"t":2,"cpu":[10,0,5,20,0]}', '{"t":3,"cpu":[10,0,5,20,0]}']
    assert metrics.series(rebooted)["cpu"] == []


def test_process_cpu_is_sampled_over_a_window_on_real_processes():
    """Two real /proc reads: a busy loop is busy, a sleeper is idle, and a
    process started after the first read gets no figure (not judged)."""
    import subprocess
    import time

    idle = subprocess.Popen(["sleep", "600"])
    busy = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    late = None
    try:
        # let `sleep` finish starting up: its exec and loading are CPU time
        # that must fall before the window, not in it
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f"/proc/{idle.pid}/stat").read_text().split(") ")[1][0] != "S":
            time.sleep(0.01)
        time.sleep(0.1)
        pids = f"{busy.pid} {idle.pid}"
        first = subprocess.run(["sh", "-c", f"PIDS='{pids}'; " + monitor.PROC_STAT],
                               capture_output=True, text=True, check=True).stdout
        late = subprocess.Popen(["sleep", "600"])
        deadline = time.monotonic() + monitor.CPU_WINDOW
        while time.monotonic() < deadline:  # the window, as the script's own run would take it
            time.sleep(0.05)
        second = subprocess.run(["sh", "-c", f"PIDS='{pids} {late.pid}'; " + monitor.PROC_STAT],
                                capture_output=True, text=True, check=True).stdout
    finally:
        for p in (busy, idle, late):
            if p:
                p.kill()
                p.wait()
    _, cpu, window = monitor.cpu_rates(pid_point(first), pid_point(second))
    assert window and window >= monitor.CPU_WINDOW - 0.01
    assert cpu[busy.pid] > 5, cpu
    assert cpu[idle.pid] == 0.0
    assert late.pid not in cpu


def pid_point(text):
    """One end of a window (monitor._point's shape) with every process the
    PROC_STAT text lists as a service named by its PID."""
    uptime, hz, procs, _ = monitor.parse_end(text)
    svc = {pid: {"pid": pid, "ticks": ticks, "start": start} for pid, (ticks, start) in procs.items()}
    return {"boot": None, "clock": uptime, "hz": hz, "cpu": [], "svc": svc}


def test_process_cpu_parsing_edge_cases():
    def line(pid, comm, ticks, start):
        return f"{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {start} 1 1"

    first = "100.00 100\n" + line(7, "a) b", 10, 500) + "\n" + line(8, "x", 10, 600) + "\n" + line(9, "y", 50, 700)
    second = "101.00 100\n" + line(7, "a) b", 30, 500) + "\n" + line(8, "x", 90, 999) + "\n" + line(9, "y", 10, 700)
    _, cpu, window = monitor.cpu_rates(pid_point(first), pid_point(second))
    assert window == 1.0
    assert cpu == {7: 20.0}  # 8: the PID was reused (other start time); 9: counters went back
    assert monitor.cpu_rates(pid_point(""), pid_point(second)) == (None, {}, None)
    assert monitor.cpu_rates(pid_point(second), pid_point(first)) == (None, {}, None)  # no time between them


def test_a_watch_refresh_measures_cpu_from_the_previous_refresh(tmp_path):
    """`monitor --watch` refreshes run the script without its CPU wait: the
    previous refresh's closing samples open the window. Run for real against
    `connection: local`, with a busy process as the service."""
    import subprocess
    import time

    from invoke import Context

    busy = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    home = tmp_path / "home"
    (home / "services").mkdir(parents=True)
    start = Path(f"/proc/{busy.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    (home / "services" / "bot.pid").write_text(f"{busy.pid} {start}\n")
    host = inventory.loads(yaml.safe_dump({"hosts": {"h": {
        "connection": "local", "app": {"path": str(tmp_path / "app")}, "home": str(home),
        "services": [{"name": "bot", "manager": "process", "command": "x"}]}}}), str(tmp_path / "x.yml")).hosts["h"]
    try:
        no_wait = monitor.monitor_script(host, window=0, sample_age=0)
        assert "sleep" not in no_wait and "sleep" in monitor.monitor_script(host)
        c = Context()
        first = c.run(no_wait, hide=True, warn=True, in_stream=False).stdout
        t = time.monotonic()
        while time.monotonic() - t < 0.3:
            time.sleep(0.05)
        second = c.run(no_wait, hide=True, warn=True, in_stream=False).stdout
    finally:
        busy.kill()
        busy.wait()
    alone = monitor.parse(second, host)  # its own samples: no time between them
    watched = monitor.parse(second, host, previous=first)
    assert watched["cpu_window"] and watched["cpu_window"] >= 0.3
    assert watched["services"][0]["cpu"] is not None and watched["services"][0]["cpu"] > 5, watched["services"]
    assert watched["cpu"] is not None
    assert (alone["cpu_window"] or 0) < watched["cpu_window"]


@pytest.mark.parametrize("names, labels", [
    (["voice-meeting-discord-bot.service", "voice-meeting-python-api.service"], ["discord-bot", "python-api"]),
    (["bot"], ["bot"]),
    (["bot.service"], ["bot"]),
    (["app-web", "app-worker", "redis.service"], ["app-web", "app-worker", "redis"]),  # nothing shared by all
    (["a-x", "a-x-y"], ["x", "x-y"]),
    (["same-x", "same-x"], ["same-x", "same-x"]),  # would merge: left as they are
])
def test_service_labels_drop_the_shared_prefix_and_suffix(names, labels):
    from fabops.tasks.render import service_labels

    got = service_labels(names)
    assert [got[n] for n in names] == labels


def test_the_find_to_do_panel_tells_both_services_apart_at_80_columns():
    """At 80 columns (CI logs, pipes) the two find-to-do services used to
    read `voice-meeti…` twice."""
    import io

    from rich.console import Console

    from fabops.tasks.observe import render_host

    case = next(c for c in CASES if "systemd" in c.stem or "find" in c.stem)
    data = json.loads(case.read_text())
    host = host_of(data["host"])
    facts = monitor.parse(data["output"], host, data["now"])
    code, findings = monitor.evaluate(facts, host, data["now"])
    facts.update(status=errors.NAMES[code], code=code, findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    buf = io.StringIO()
    Console(file=buf, width=80, force_terminal=False, color_system=None).print(render_host(facts, host))
    text = buf.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    labels = [s["name"] for s in facts["services"]]
    from fabops.tasks.render import service_labels

    for label in service_labels(labels).values():
        assert label in text, text


def test_a_unit_running_as_root_from_the_checkout_is_a_warning():
    from fabops import inventory as inv_mod
    from fabops.monitor import evaluate, root_units

    host = inv_mod.loads("hosts:\n  h:\n    user: ec2-user\n    app: {path: ~/bot}\n"
                         "    services: [{name: legacy.service}, {name: ours.service}]\n", "x.yml").hosts["h"]
    text = ("Home=/home/ec2-user\n\nId=legacy.service\nLoadState=loaded\nUser=\nExecStartEx={ path=/usr/bin/node ; "
            "argv[]=/usr/bin/node /home/ec2-user/bot/index.js ; flags= ; start_time=[n/a] }\nWorkingDirectory=\n\n"
            "Id=ours.service\nLoadState=loaded\nUser=ec2-user\nExecStartEx={ path=/usr/bin/node ; argv[]=/usr/bin/node "
            "/home/ec2-user/bot/index.js ; flags= ; start_time=[n/a] }\nWorkingDirectory=/home/ec2-user/bot\n")
    found = root_units(text, host)
    assert found == [{"unit": "legacy.service", "problem": "runs as root from /home/ec2-user/bot, which the deploy "
                                                           "user can write"}]
    facts = {"services": [], "root_units": found}
    code, findings = evaluate(facts, host)
    assert code == 1 and "legacy.service" in findings[0][1]
    assert root_units("", host) == [] and root_units(None, host) == []


def test_the_dashboard_reads_only_facts_the_monitor_produces():
    """render_host (and its helpers) draw from the facts the monitor's parser gives, which the
    JSON Schema lists (it allows no other key): a key it reads that the schema
    lacks is a line that can never be drawn (#24: the `api` fact was removed
    in #23, and its 'Python API /health (PYTHON_API_URL)' line stayed)."""
    import ast
    import inspect

    from fabops.tasks import observe
    from tests.conftest import json_schema

    known = set(json_schema()["$defs"]["facts"]["properties"])
    # the panel and the helpers it draws with (every `facts` in the module)
    tree = ast.parse(inspect.getsource(observe))
    read = set()
    for node in ast.walk(tree):
        is_facts = lambda n: isinstance(n, ast.Name) and n.id == "facts"  # noqa: E731
        if isinstance(node, ast.Subscript) and is_facts(node.value) and isinstance(node.slice, ast.Constant):
            read.add(node.slice.value)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and is_facts(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)):
            read.add(node.args[0].value)
    assert len(read) > 5, read  # the walk found the reads at all
    assert read <= known, sorted(read - known)


def test_a_moved_aside_state_json_is_parsed_and_warned_about():
    """#24: a merge that found state.json corrupt moved it aside as
    state.json.corrupt-<ns>; monitor lists every copy (oldest first, the time
    from its name) and warns with the newest one's path and time."""
    import time as _time

    host = host_of({"app": {"path": "/srv/app"}, "home": "~/.fabops/app",
                    "services": [{"name": "bot", "manager": "process", "command": "x"}]})
    out = (f"{MARK}aside\nstate.json.corrupt-1795960000000000000\nstate.json.corrupt-1795950000123456789\n"
           "state.json.corrupt-junk\nsomething-else\n")
    facts = monitor.parse(out, host, now=1795960100.0)
    assert facts["state_moved_aside"] == [
        {"file": "~/.fabops/app/state.json.corrupt-junk", "moved_at": None},
        {"file": "~/.fabops/app/state.json.corrupt-1795950000123456789", "moved_at": 1795950000.1234567},
        {"file": "~/.fabops/app/state.json.corrupt-1795960000000000000", "moved_at": 1795960000.0},
    ]
    _code, findings = monitor.evaluate(facts, host, now=1795960100.0)
    lost = [(c, m) for c, m in findings if m.startswith("state lost")]
    when = _time.strftime("%m-%d %H:%M %Z", _time.localtime(1795960000.0))
    assert lost == [(errors.WARNING, f"state lost: a corrupt state.json was moved aside on {when} to "
                                     "~/.fabops/app/state.json.corrupt-1795960000000000000 (and 2 earlier); "
                                     "read it, then delete it to clear this warning")]
    # none there: an empty list and no finding; the section not read: null
    assert monitor.parse(f"{MARK}aside\n", host)["state_moved_aside"] == []
    assert monitor.parse("", host)["state_moved_aside"] is None
    assert not [m for _, m in monitor.evaluate(monitor.parse("", host), host)[1] if "state lost" in m]


def test_monitor_shows_a_state_json_a_merge_moved_aside(sandbox):
    """Agentless, on this machine: state.json corrupted by hand, a run's merge
    moves it aside and starts over, and monitor (human and --json) names the
    copy; deleting it clears the warning."""
    from fabops.host.state import merge_state_file
    from tests.conftest import one, run_cli

    assert sandbox.result()[0] == 0
    state = sandbox.home / "state.json"
    state.write_text('{"deployed": "abc",')  # a hand edit's typo
    merge_state_file(str(state), {"last_check": 1.0})  # any writer's merge: here the one every writer uses
    kept = list(sandbox.home.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"deployed": "abc",'
    r = run_cli("monitor", "-i", str(sandbox.inventory), "--json")
    facts = one(r.stdout)
    assert [x["file"] for x in facts["state_moved_aside"]] == [str(kept[0])], facts["state_moved_aside"]
    assert abs(facts["state_moved_aside"][0]["moved_at"] - kept[0].stat().st_mtime) < 60
    assert any(f["level"] == "WARNING" and str(kept[0]) in f["message"] for f in facts["findings"])
    assert r.returncode >= errors.WARNING
    human = run_cli("monitor", "-i", str(sandbox.inventory), env={"COLUMNS": "200"})
    assert "state lost: a corrupt state.json was moved aside on" in human.stdout and kept[0].name in human.stdout
    kept[0].unlink()
    again = one(run_cli("monitor", "-i", str(sandbox.inventory), "--json").stdout)
    assert again["state_moved_aside"] == [] and not [f for f in again["findings"] if "state lost" in f["message"]]
