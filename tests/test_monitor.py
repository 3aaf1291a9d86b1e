"""monitor: the fact parser against recorded outputs, thresholds, exit codes."""
import json
from pathlib import Path

import pytest
import yaml

from fabops import errors, inventory, monitor

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


def test_script_is_posix_sh_and_reads_only_one_env_key(tmp_path):
    import subprocess

    host = host_of(json.loads(CASES[-1].read_text())["host"])
    script = monitor.monitor_script(host)
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    assert "PYTHON_API_URL" in script and "cat " + host.app.path not in script


def test_api_url_from_env_never_prints_the_file(tmp_path):
    import http.server
    import subprocess
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text(f"DISCORD_TOKEN=s3cr3t\nPYTHON_API_URL='http://127.0.0.1:{srv.server_address[1]}/'\n")
    host = host_of({"connection": "local", "app": {"path": str(app)}, "home": str(tmp_path / "home")})
    out = subprocess.run(["sh", "-c", monitor.monitor_script(host)], capture_output=True, text=True).stdout
    srv.shutdown()
    assert "s3cr3t" not in out
    facts = monitor.parse(out, host)
    assert facts["api"]["status"] == 200


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
    metrics.record(str(path))
    assert len(metrics.series(path.read_text().splitlines())["cpu"]) == 1
