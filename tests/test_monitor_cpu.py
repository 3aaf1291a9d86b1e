"""monitor's CPU figures (#25): a one-shot monitor reports CPU as the rate
since the newest cron sample when it is young enough, read in the same
script; else it takes its own window; --watch starts at its previous
refresh. Every figure says the window it covers. No test here asserts a
timing: what the script did is read from its own output (`cpuwin`)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from fabops import errors, inventory, monitor
from fabops.host import metrics
from fabops.probe import MARK, split_sections

HZ = os.sysconf("SC_CLK_TCK")


def local_host(tmp_path, services, **extra):
    entry = {"connection": "local", "app": {"path": str(tmp_path / "app")}, "home": str(tmp_path / "home"),
             "services": services}
    entry.update(extra)
    return inventory.loads(yaml.safe_dump({"hosts": {"h": entry}}), str(tmp_path / "x.yml")).hosts["h"]


def point(clock, cpu=None, svc=None, boot="b1", hz=100):
    return {"boot": boot, "clock": clock, "hz": hz, "cpu": cpu or [0, 0, 0, 0, 0], "svc": svc or {}}


# ---------------------------------------------------------------- the rate


def test_service_rate_from_a_cgroup_and_from_a_main_pid():
    a = {"inv": "i1", "cg": "/system.slice/bot.service", "usec": 1_000_000}
    b = dict(a, usec=3_000_000)
    assert monitor.service_rate(a, b, 100, 10.0) == 20.0  # 2 s of CPU in 10 s
    p = {"pid": 7, "start": 500, "ticks": 100}
    assert monitor.service_rate(p, dict(p, ticks=600), 100, 10.0) == 50.0
    # a unit on cgroup v1 (no usage): its main PID, as a process service
    assert monitor.service_rate(dict(p, inv="i1"), dict(p, inv="i1", ticks=200), 100, 10.0) == 10.0


@pytest.mark.parametrize("a, b, why", [
    ({"inv": "i1", "cg": "/s/bot.service", "usec": 10}, {"inv": "i2", "cg": "/s/bot.service", "usec": 900},
     "the unit restarted between them: a new invocation"),
    ({"inv": "", "cg": "/s/bot.service", "usec": 10}, {"inv": "", "cg": "/s/bot.service", "usec": 900},
     "no invocation ID: a restart could not be told"),
    ({"inv": "i1", "cg": "/s/bot.service", "usec": 900}, {"inv": "i1", "cg": "/s/bot.service", "usec": 10},
     "the counter was reset (went back)"),
    ({"pid": 7, "start": 500, "ticks": 10}, {"pid": 7, "start": 900, "ticks": 400},
     "the PID was reused: another start time"),
    ({"pid": 7, "start": 500, "ticks": 10}, {"pid": 8, "start": 900, "ticks": 400},
     "the process restarted: another PID"),
    ({"pid": 7, "start": 500, "ticks": 400}, {"pid": 7, "start": 500, "ticks": 10}, "the counter went back"),
    ({"inv": "i1", "cg": "/s/bot.service", "usec": 10}, {"pid": 7, "start": 500, "ticks": 10},
     "the sample has the cgroup, this look only the PID"),
    (None, {"pid": 7, "start": 500, "ticks": 10}, "not in the sample (a service added since)"),
])
def test_a_restart_or_a_reset_between_samples_gives_no_figure(a, b, why):
    assert monitor.service_rate(a, b, 100, 60.0) is None, why


def test_cpu_rates_across_a_reboot_or_a_counter_reset_give_nothing():
    start = point(100.0, [100, 0, 100, 800, 0], {"bot": {"pid": 7, "start": 5, "ticks": 0}})
    end = point(110.0, [300, 0, 100, 1600, 0], {"bot": {"pid": 7, "start": 5, "ticks": 250}})
    assert monitor.cpu_rates(start, end) == (20.0, {"bot": 25.0}, 10.0)
    assert monitor.cpu_rates(start, dict(end, boot="b2")) == (None, {}, None)  # another boot
    assert monitor.cpu_rates(end, start) == (None, {}, None)  # no time between them
    # host counters that went back with the same boot ID cannot happen; if
    # they do, no host figure (the services' counters are judged on their own)
    reset = dict(end, cpu=[50, 0, 50, 100, 0])
    assert monitor.cpu_rates(start, reset) == (None, {"bot": 25.0}, 10.0)


# ---------------------------------------------------------------- parsing a look


def _look(tmp_path, sample_line, src, end_clock, end_ticks, pid=4242, start=777):
    """A script output with `cpuwin` saying `src`, the sample as the last
    metrics line, and one process service `bot` at `pid`."""
    stat = lambda ticks: f"{pid} (python3) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {start} 1 1"  # noqa: E731
    out = "\n".join([
        f"{MARK}cpu0", "cpu  1000 0 0 9000 0",
        f"{MARK}process", f"bot active {pid} 1700000000",
        f"{MARK}pstat0", f"{end_clock - 0.1:.2f} 100", stat(end_ticks - 1),
        f"{MARK}metrics", sample_line,
        f"{MARK}cpuwin", f"{src} 0 b1",
        f"{MARK}pstat1", f"{end_clock:.2f} 100", stat(end_ticks),
        f"{MARK}cpu1", "cpu  1500 0 0 9500 0",
        f"{MARK}end", ""])
    host = local_host(tmp_path, [{"name": "bot", "manager": "process", "command": "x"}])
    return out, host


def test_a_young_sample_opens_the_window_and_the_output_names_it(tmp_path):
    line = json.dumps({"boot": "b1", "up_cs": 100000, "hz": 100, "t": 1.0, "cpu": [1000, 0, 0, 1000, 0],
                       "svc": {"bot": {"pid": 4242, "start": 777, "ticks": 100}}})
    out, host = _look(tmp_path, line, "sample", 1047.0, 1040)
    facts = monitor.parse(out, host)
    assert (facts["cpu_source"], facts["cpu_window"]) == ("sample", 47.0)
    assert facts["services"][0]["cpu"] == 20.0  # 9.4 s of CPU over 47 s
    assert facts["cpu"] == 5.6  # 500 busy ticks of 9000 since the sample
    # the same output with the script's own window: its own opening samples
    own = monitor.parse(out.replace("sample 0 b1", "window 0 b1"), host)
    assert (own["cpu_source"], own["cpu_window"], own["services"][0]["cpu"]) == ("window", 0.1, 10.0)


def test_a_sample_that_does_not_parse_gives_no_figure_not_the_scripts_run_time(tmp_path):
    """The script chose the sample and so waited for nothing: falling back
    to its own opening samples measured its run time (0.1 s here), where a
    tick reads as 10 %, judged against the thresholds (review finding)."""
    out, host = _look(tmp_path, '{"boot": "b1", "up_cs": 1000', "sample", 1047.0, 1040)  # a torn append
    facts = monitor.parse(out, host)
    assert (facts["cpu"], facts["cpu_window"], facts["services"][0]["cpu"]) == (None, None, None), facts
    assert not [m for _, m in monitor.evaluate(facts, host)[1] if "CPU" in m]


def test_a_service_restarted_since_the_sample_gets_no_figure_and_is_not_judged(tmp_path):
    line = json.dumps({"boot": "b1", "up_cs": 100000, "hz": 100, "cpu": [1000, 0, 0, 1000, 0],
                       "svc": {"bot": {"pid": 4242, "start": 111, "ticks": 100}}})
    out, host = _look(tmp_path, line, "sample", 1047.0, 99999)  # a huge count, from another process
    facts = monitor.parse(out, host)
    assert facts["cpu_source"] == "sample" and facts["services"][0]["cpu"] is None
    assert not [m for _, m in monitor.evaluate(facts, host)[1] if "CPU" in m]


def test_thresholds_judge_a_figure_from_the_sample(tmp_path):
    line = json.dumps({"boot": "b1", "up_cs": 100000, "hz": 100, "cpu": [1000, 0, 0, 1000, 0],
                       "svc": {"bot": {"pid": 4242, "start": 777, "ticks": 100}}})
    out, host = _look(tmp_path, line, "sample", 1047.0, 1040)
    host.thresholds["cpu"] = 15
    facts = monitor.parse(out, host)
    code, findings = monitor.evaluate(facts, host)
    assert code == errors.WARNING and "bot: CPU 20% ≥ 15%" in [m for _, m in findings]
    host.thresholds["cpu"] = 25
    assert not [m for _, m in monitor.evaluate(facts, host)[1] if "CPU" in m]


def test_the_panel_states_the_window_of_its_cpu_figures():
    from fabops.tasks.observe import _system_line

    th = {"cpu": 10, "memory": 15, "disk": 80}
    facts = {"cpu": 12.0, "memory": 30.0, "disk": 20.0, "load": 0.1, "uptime": 100.0}
    line = lambda w: _system_line(dict(facts, cpu_window=w), th)  # noqa: E731
    assert "host CPU 12% (last 47 s)" in line(47.2)
    assert "host CPU 12% (last 0.52 s)" in line(0.52)
    assert "host CPU 12% (last 4m 10s)" in line(250.0)
    assert "host CPU 12%  memory" in line(None)


# ---------------------------------------------------------------- the script


def _clock():
    with open("/proc/uptime") as fh:
        cs = int(round(float(fh.read().split()[0]) * 100))
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip(), cs


def _run(host, **kw):
    out = subprocess.run(["sh", "-c", monitor.monitor_script(host, **kw)], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("age_s, boot, want", [
    (1.0, None, "sample"),  # young: no window of its own
    (11 * 60.0, None, "window"),  # older than two intervals (*/5: 10 min)
    (1.0, "another-boot", "window"),  # recorded before a reboot
])
def test_the_script_takes_its_own_window_only_without_a_young_sample(tmp_path, age_s, boot, want):
    host = local_host(tmp_path, [], schedule={"update": "*/5 * * * *"})
    assert monitor.sample_max_age(host) == 600
    this_boot, now_cs = _clock()
    Path(host.paths.home).mkdir(parents=True)
    line = json.dumps({"boot": boot or this_boot, "up_cs": now_cs - int(age_s * 100), "hz": HZ, "t": 1.0,
                       "cpu": [1, 0, 1, 1, 0], "svc": {}}, separators=(",", ":"))
    older = '{"t":0,"cpu":[0,0,0,0,0]}'
    Path(host.paths.metrics).write_text(older + "\n" + line + "\n")
    out = _run(host)
    src, slept, seen_boot = split_sections(out)["cpuwin"].split()
    assert (src, seen_boot) == (want, this_boot)
    if want == "sample":
        assert slept == "0"  # no sleep was taken: the sample is older than the window
    facts = monitor.parse(out, host)
    assert facts["cpu_source"] == want
    if want == "sample":
        assert facts["cpu_window"] >= age_s  # since the sample, to the script's end
    else:
        assert slept != "0" or facts["cpu_window"] >= monitor.CPU_WINDOW - 0.01  # its own window, waited out
    assert split_sections(out)["metrics"].splitlines() == [older, line]  # --history's lines, from the same read


def test_a_services_memory_and_age_agree_with_ps(tmp_path):
    """The script reads a service's VmRSS and start time with builtins (no
    ps): its memory share and age match `ps -o pmem=,etimes=` on the same
    real process (a python3 holding 40 MB, started a moment before)."""
    hold = subprocess.Popen([sys.executable, "-c", "import sys; b = bytearray(40 << 20); b[::4096] = b'x' * len(b[::4096]); "
                             "print('ready', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline() == "ready\n"
        start = Path(f"/proc/{hold.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        host = local_host(tmp_path, [{"name": "bot", "manager": "process", "command": "x"}])
        Path(host.paths.services).mkdir(parents=True)
        Path(host.paths.service_pid("bot")).write_text(f"{hold.pid} {start}\n")
        out = _run(host, window=0, sample_age=0)
        pmem, etimes = subprocess.run(["ps", "-o", "pmem=,etimes=", "-p", str(hold.pid)], capture_output=True,
                                      text=True, check=True).stdout.split()
        (bot,) = monitor.parse(out, host)["services"]
        assert bot["pid"] == hold.pid and bot["state"] == "active"
        assert bot["memory"] > 0 and abs(bot["memory"] - float(pmem)) <= 0.2, (bot["memory"], pmem)
        assert abs(bot["uptime"] - float(etimes)) <= 1, (bot["uptime"], etimes)
        assert "ps " not in monitor.monitor_script(host)  # builtins, no fork of ps
    finally:
        hold.kill()
        hold.wait()


def test_watch_refreshes_and_hosts_without_an_update_schedule_never_read_the_sample(tmp_path):
    host = local_host(tmp_path, [], schedule={"update": None})
    assert monitor.sample_max_age(host) == 0
    script = monitor.monitor_script(host, window=0, sample_age=0)
    assert "MAXAGE=0" in script and "sleep" not in script
    assert "MAXAGE=60000" in monitor.monitor_script(local_host(tmp_path, [], schedule={"update": "*/5 * * * *"}))


# ---------------------------------------------------------------- the cron sample


def test_record_stores_each_services_counters_with_the_clock_first(tmp_path, monkeypatch):
    """A process service: its main PID, start time and ticks (a pidfile whose
    start time is another process's is not used). A systemd unit: its
    cgroup's usage and invocation ID, two reads; one outside the default
    place (a template instance) or without a readable cgroup goes through
    one systemctl, then its main PID."""
    idle = subprocess.Popen(["sleep", "600"])
    try:
        start = Path(f"/proc/{idle.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        host = local_host(tmp_path, [{"name": "bot", "manager": "process", "command": "x"},
                                     {"name": "stale", "manager": "process", "command": "x"},
                                     {"name": "api", "manager": "systemd"},
                                     {"name": "work@1.service", "manager": "systemd"},
                                     {"name": "gone", "manager": "systemd"}])
        services = Path(host.paths.services)
        services.mkdir(parents=True)
        (services / "bot.pid").write_text(f"{idle.pid} {start}\n")
        (services / "stale.pid").write_text(f"{idle.pid} 12345\n")
        cg = tmp_path / "cg"
        (cg / "system.slice" / "api.service").mkdir(parents=True)
        (cg / "system.slice" / "api.service" / "cpu.stat").write_text("usage_usec 123456\nuser_usec 1\n")
        run = tmp_path / "run"
        run.mkdir()
        (run / "invocation:api.service").symlink_to("a" * 32)
        asked = []

        def show(units):
            asked.append(units)
            return {"work@1.service": {"Id": "work@1.service", "ControlGroup": "/elsewhere/work@1.service",
                                       "InvocationID": "b" * 32, "MainPID": str(idle.pid)},
                    "gone.service": {"Id": "gone.service", "ControlGroup": "", "InvocationID": "", "MainPID": "0"}}

        monkeypatch.setattr(metrics, "CGROUP_ROOTS", (str(tmp_path / "v2-elsewhere"), str(cg)))
        monkeypatch.setattr(metrics, "INVOCATIONS", str(run))
        monkeypatch.setattr(metrics, "_systemctl_show", show)
        metrics.record(host.paths.metrics, host.services, host.paths)
    finally:
        idle.kill()
        idle.wait()
    text = Path(host.paths.metrics).read_text()
    assert text.startswith('{"boot":"' + _clock()[0] + '","up_cs":')  # what the script reads
    rec = json.loads(text)
    assert rec["svc"] == {
        "bot": {"pid": idle.pid, "start": int(start), "ticks": rec["svc"]["bot"]["ticks"]},
        "api": {"inv": "a" * 32, "cg": "/system.slice/api.service", "usec": 123456},
        "work@1.service": {"inv": "b" * 32, "pid": idle.pid, "start": int(start), "ticks": rec["svc"]["bot"]["ticks"]},
    }
    assert asked == [["work@1.service", "gone.service"]]
    assert metrics.series(text.splitlines())["memory"]  # --history reads the same line


def test_record_without_services_and_the_trim_bound(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    metrics.record(str(path))
    assert "svc" not in json.loads(path.read_text())
    monkeypatch.setattr(metrics, "MAX_LINES", 5)
    monkeypatch.setattr(metrics, "TRIM_TO", 3)
    for _ in range(6):
        metrics.record(str(path))
    assert 3 <= len(path.read_text().splitlines()) <= 5


# ---------------------------------------------------------------- on this machine


SPIN = """import os, sys, time
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.05)
while True:
    pass
"""


def _ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _spinning_sandbox(tmp_path):
    """The sandbox host with one process service, `bot`: idle until the file
    `go` appears, then a busy loop. Its first cron-style run starts it and
    records a sample."""
    from tests.harness.apps import Sandbox

    (tmp_path / "spin.py").write_text(SPIN)
    go = tmp_path / "go"
    box = Sandbox(tmp_path, services=[{"name": "bot", "manager": "process", "timeout": "20s", "settle": "300ms",
                                       "watch": "1s", "command": f"{sys.executable} {tmp_path / 'spin.py'} {go}"}])
    return box, go


def _wait_busy(pid, cpu_s, wall_s):
    """Poll until the process used `cpu_s` of CPU and `wall_s` passed."""
    began, deadline = time.monotonic(), time.monotonic() + 60
    while _ticks(pid) < cpu_s * HZ or time.monotonic() - began < wall_s:
        assert time.monotonic() < deadline, "the busy loop never got the CPU"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process back end needs Linux")
def test_a_one_shot_monitor_reports_a_busy_loop_since_the_cron_sample(tmp_path):
    from tests.conftest import one, run_cli

    box, go = _spinning_sandbox(tmp_path)
    try:
        code, data = box.result()
        assert code == 0, data
        sample = json.loads((box.home / "metrics.jsonl").read_text().splitlines()[-1])
        pid = box.pid()
        assert sample["svc"]["bot"]["pid"] == pid  # the cron run recorded the service's counters
        go.touch()
        _wait_busy(pid, 1.0, 0)
        facts = one(run_cli("monitor", "-i", str(box.inventory), "--json").stdout)
        bot = facts["services"][0]
        assert facts["cpu_source"] == "sample", facts
        assert facts["cpu_window"] >= 1.0  # from the sample: at least the busy second
        assert bot["cpu"] is not None and bot["cpu"] >= 10, bot  # the loop's share of a core, over the window
        assert any(f["message"].startswith("bot: CPU") for f in facts["findings"])
        human = run_cli("monitor", "-i", str(box.inventory), env={"COLUMNS": "80"})
        assert "host CPU" in human.stdout and "(last " in human.stdout, human.stdout
    finally:
        box.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process back end needs Linux")
def test_a_busy_loop_started_after_the_sample_is_reported_by_watch_within_two_refreshes(tmp_path):
    """The newest sample is 5 min old (its clock moved back: still younger
    than two */5 intervals), the loop started 2 s before monitor: the
    one-shot figure is the average since the sample (too small to cross the
    threshold); --watch's next refresh measures from the first one."""
    box, go = _spinning_sandbox(tmp_path)
    watch = None
    try:
        code, data = box.result()
        assert code == 0, data
        path = box.home / "metrics.jsonl"
        rec = json.loads(path.read_text().splitlines()[-1])
        rec["up_cs"] -= 300 * 100
        path.write_text(json.dumps(rec, separators=(",", ":")) + "\n")
        go.touch()
        _wait_busy(box.pid(), 0.5, 2.0)
        env = dict(os.environ, COLUMNS="200")
        watch = subprocess.Popen([sys.executable, "-m", "fabops.cli", "monitor", "-i", str(box.inventory),
                                  "--json", "--watch", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, env=env, stdin=subprocess.DEVNULL)
        guard = threading.Timer(120, watch.kill)  # a hung monitor fails the test, never hangs it
        guard.start()
        try:
            refreshes = [json.loads(watch.stdout.readline())["hosts"]["local"] for _ in range(2)]
        finally:
            guard.cancel()
    finally:
        if watch is not None:
            watch.send_signal(signal.SIGINT)
            try:
                watch.wait(timeout=30)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait()
        box.stop()
    first, second = refreshes
    assert first["cpu_source"] == "sample" and first["cpu_window"] >= 300, first
    assert first["services"][0]["cpu"] < 10  # a few seconds of spinning over 5 min
    assert second["cpu_source"] == "window" and second["cpu_window"] < 60
    assert second["services"][0]["cpu"] >= 10, second["services"]
    assert any(f["message"].startswith("bot: CPU") for f in second["findings"])
