"""The metrics wiring of docs/metrics.md, end to end, on booted find-to-do
hosts (systemd tier, issue #27): bookworm, and bullseye (the host side on
Python 3.9).

- The container runs Debian's `prometheus-node-exporter` as a systemd
  unit (a transient one, as user nobody, as the package's runs as a user of
  its own), listening on the container's end of the veth pair, its textfile
  collector pointed at hosts.yml's `metrics_dir`, which `setup` makes.
- A real `prometheus` on this machine (a temp config and storage,
  127.0.0.1 and a free port) scrapes it every second over the veth link,
  and evaluates the alert rules fabops ships (examples/prometheus), with
  their behind-origin rule again, its hour cut to a second. Its scrape
  list is a file_sd file that `inv prometheus-targets --output` writes
  from hosts.yml (docs/metrics.md, "Prometheus: targets from hosts.yml").
- The test deploys a good commit, runs cron's `health --fix` line on the
  host, then deploys a commit that crashes on boot (its gate fails, it is
  rolled back), and reads everything back through Prometheus' HTTP API:
  the deployed commit's info metric (the good one, before and after), the
  runs counted by result, the service up, the bad target, the alerts firing
  (the shipped rollback alert, the behind-origin one; no other),
  and node_exporter's own word that the textfile parsed
  (`node_textfile_scrape_error 0`), and `promtool check metrics` passes
  the file as the host's fabops wrote it. The directory holds only the
  host's file: each write is a temp file renamed over it (docs/metrics.md,
  "Written atomically"), and none is left behind.

node_exporter on the host: the images have none, and this machine's
Debian package is bound in, as the host would get it from apt (`apt
install prometheus-node-exporter`; .ci/run installs it here). Its binary
is built with cgo against glibc 2.34 (`objdump -T`), which bookworm has
and bullseye (2.31) has not: on bullseye it runs with this machine's own
loader and libc, bound in beside it (as tests/test_backup_systemd.py runs
restic). Binding it costs nothing; adding the package to the images'
recipe would rebuild every image on every CI machine.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, List

import pytest
import yaml

from fabops.shortsha import short_sha
from tests import test_systemd_tier as tier
from tests.conftest import ROOT, require
from tests.harness import container
from tests.harness.sandbox import Origin
from tests.test_prom import promtool_check
from tests.test_systemd_tier import UNIT, fab, on_host

pytestmark = pytest.mark.systemd
APP = "/home/ec2-user/voice-meeting-bot"
HOME = "/home/ec2-user/.fabops/voice-meeting-bot"
# the directory Debian's package reads (docs/metrics.md, "Turning it on")
METRICS_DIR = "/var/lib/prometheus/node-exporter"
PROM_FILE = "fabops-find-to-do.prom"
EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS = "/usr/bin/prometheus"
BUNDLE = "/opt/fabops-node-exporter"  # bullseye: the binary with this machine's loader and libc
PYTHON = {"bookworm": "3.11", "bullseye": "3.9"}  # the host's python3, as fabops_build_info labels it
EXPORTER_PORT = 9100
DEADLINE = 60  # seconds for a series to show in Prometheus (a scrape every second)
SHIPPED = ROOT / "examples" / "prometheus" / "rules" / "fabops.rules.yml"  # the alert rules fabops ships
HOUR = "> 3600"  # the shipped behind-origin rule's threshold, which the test cuts to a second


def _exporter(suite: str) -> tuple:
    """The binds that bring this machine's node_exporter into a `suite`
    host, and the argv that runs it there (module docstring)."""
    if suite == "bookworm":  # glibc 2.36: the binary runs as it is
        return {EXPORTER: EXPORTER}, [EXPORTER]
    binds = {EXPORTER: f"{BUNDLE}/prometheus-node-exporter",
             os.path.realpath("/lib64/ld-linux-x86-64.so.2"): f"{BUNDLE}/ld-linux-x86-64.so.2",
             os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"): f"{BUNDLE}/lib/libc.so.6"}
    return binds, [f"{BUNDLE}/ld-linux-x86-64.so.2", "--library-path", f"{BUNDLE}/lib",
                   f"{BUNDLE}/prometheus-node-exporter"]


def _start_exporter(box, argv: List[str]) -> str:
    """node_exporter as a transient systemd unit in the container, as user
    nobody (it reads the textfile as another user than the one writing it),
    only its textfile collector; its address, once it answers."""
    address = f"{box.address}:{EXPORTER_PORT}"
    args = argv + [f"--web.listen-address={address}", f"--collector.textfile.directory={METRICS_DIR}",
                   "--collector.disable-defaults", "--collector.textfile"]
    box.as_root("systemd-run --quiet --unit=fabops-node-exporter -p User=nobody -p Restart=no "
                + " ".join(shlex.quote(a) for a in args))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as r:
                if r.status == 200:
                    return address
        except OSError:
            time.sleep(0.2)
    unit = box.as_root("systemctl status --no-pager fabops-node-exporter; "
                       "journalctl --no-pager -n 20 -u fabops-node-exporter", check=False)
    pytest.fail(f"node_exporter in the container did not answer at {address} within 30 s: {unit.stdout[-1500:]}")


def _rules(work: Path) -> List[str]:
    """The rule files Prometheus loads: the shipped ones as they are, and
    their behind-origin rule again as FabopsBehindOriginShort, its hour cut
    to a second and held for 2 s (the test cannot wait an hour)."""
    shipped = yaml.safe_load(SHIPPED.read_text())
    rule = next(r for g in shipped["groups"] for r in g["rules"] if r.get("alert") == "FabopsBehindOrigin")
    assert HOUR in rule["expr"], f"{SHIPPED}'s FabopsBehindOrigin has no {HOUR!r} to cut: {rule['expr']}"
    short = {**rule, "alert": "FabopsBehindOriginShort", "expr": rule["expr"].replace(HOUR, "> 1"), "for": "2s"}
    (work / "short.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "short", "rules": [short]}]}))
    return [str(SHIPPED), str(work / "short.rules.yml")]


class Prometheus:
    """A real Prometheus server on this machine: a temp config, rules and
    storage, 127.0.0.1 and a free port; its output in a file for failure
    messages. stop() ends it by its PID."""

    def __init__(self, work: Path):
        work.mkdir(parents=True, exist_ok=True)
        self.targets = work / "targets" / "fabops.json"  # prometheus-targets writes it
        self.targets.parent.mkdir()
        (work / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": _rules(work),
            "scrape_configs": [{"job_name": "node", "file_sd_configs": [{
                "files": [str(self.targets)], "refresh_interval": "1s"}]}],
        }, sort_keys=False))
        with socket.socket() as s:  # a free port: closed again right before Prometheus takes it
            s.bind(("127.0.0.1", 0))
            self.url = "http://127.0.0.1:%d" % s.getsockname()[1]
        self.log = work / "prometheus.log"
        argv = [PROMETHEUS, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address={self.url[len('http://'):]}"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())["data"]

    def series(self, expr: str) -> list:
        """The instant query's samples as (labels, value)."""
        return [(s["metric"], float(s["value"][1])) for s in self.api("query", query=expr)["result"]]

    def until(self, what: str, seen: Callable[[], object], want: Callable[[object], bool]):
        """Poll `seen()` until `want` holds for it (a scrape every second);
        past DEADLINE, fail naming what was last seen, the scrape target's
        state and the end of Prometheus' own log."""
        deadline, last = time.monotonic() + DEADLINE, None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited {self.proc.returncode}: {self.log.read_text()[-1500:]}")
            try:
                last = seen()
            except OSError as exc:  # not listening yet
                last = exc
            else:
                if want(last):
                    return last
            time.sleep(0.25)
        try:
            targets = self.api("targets")["activeTargets"]
        except OSError as exc:
            targets = exc
        pytest.fail(f"{what}: not within {DEADLINE} s; last seen {last!r}; targets {targets!r}; "
                    f"prometheus said: {self.log.read_text()[-1500:]}")

    def value(self, expr: str, want: float, what: str) -> None:
        """Wait until `expr` is exactly one sample of value `want`."""
        self.until(what, lambda: self.series(expr), lambda s: len(s) == 1 and s[0][1] == want)


@pytest.fixture(scope="module", params=container.SUITES)
def scraped(request, tmp_path_factory, client_key):
    """A booted host running node_exporter, and a Prometheus here scraping
    it: both stopped at the end, also when a test failed."""
    why = container.usable()
    require(why is None, why or "")
    for tool, package in ((EXPORTER, "prometheus-node-exporter"), (PROMETHEUS, "prometheus")):
        require(os.access(tool, os.X_OK), f"{tool} is not installed on this machine (apt-get install {package})")
    origin = Origin(tmp_path_factory.mktemp(f"prom-origin-{request.param}"))
    binds, argv = _exporter(request.param)
    with container.booted(request.param, tmp_path_factory, client_key,
                          {str(origin.bare): "/srv/origin.git", **binds}) as box:
        # the directory above metrics_dir, root's as a package leaves it: setup makes the last one
        box.as_root("install -d -m 0755 /var/lib/prometheus")
        exporter = _start_exporter(box, argv)
        prom = Prometheus(tmp_path_factory.mktemp(f"prometheus-{request.param}"))
        try:
            yield request.param, box, origin, prom, exporter
        finally:
            prom.stop()


def _inventory(path: Path) -> Path:
    """find-to-do with metrics_dir; cron's update poll off and its health
    line kept but never due (@yearly), so every run counted is the test's."""
    path.write_text(yaml.safe_dump({"default": "find-to-do", "hosts": {"find-to-do": {
        "user": "ec2-user",
        "app": {"path": APP},
        "services": [tier.bot_service("30s", "1s")],
        "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
        "logs": {"update": "/var/log/voice-meeting-bot-update.log", "health": "/var/log/voice-meeting-bot-health.log"},
        "metrics_dir": METRICS_DIR,
        "node_exporter": f":{EXPORTER_PORT}",  # at the address ~/.ssh/config gives find-to-do
        "schedule": {"update": "off", "health": "@yearly", "clean": "off", "backup-env": "off"},
    }}}, sort_keys=False))
    return path


def _cron_health() -> None:
    """cron's `health --fix` line, run on the host as cron runs it (the
    service metrics are its: docs/metrics.md)."""
    line = next(ln for ln in on_host("crontab -l").stdout.splitlines() if "health --fix" in ln)
    command = line.split(" ", 1 if line.startswith("@") else 5)[-1]  # after its schedule: @yearly, or 5 fields
    r = on_host(f"env -i HOME=/home/ec2-user LOGNAME=ec2-user PATH=/usr/bin:/bin sh -c {shlex.quote(command)}",
                check=False)
    log = on_host(f"tail -n 5 {HOME}/cron.log", check=False).stdout
    assert r.returncode == 0, (line, r.stdout, r.stderr, log)


def _runs(prom: Prometheus, trigger: str) -> Callable[[], dict]:
    """fabops_runs_total of `trigger`, by result."""
    return lambda: {m["result"]: v for m, v in prom.series(f'fabops_runs_total{{trigger="{trigger}"}}')}


def _leftovers() -> List[str]:
    return sorted(on_host(f"ls -A {METRICS_DIR}").stdout.split())


@pytest.mark.timeout(600)  # a cold image build on a busy machine; the test itself about a minute
def test_prometheus_scrapes_a_deploy_and_a_rollback(scraped, isolated_home, deploy_env, tmp_path, client_key,
                                                     monkeypatch):
    # a person's deploys, counted under trigger="deploy": under CI=true, as
    # .ci/run sets it, they would be trigger="ci" runs
    monkeypatch.delenv("CI", raising=False)
    suite, box, origin, prom, exporter = scraped
    tier.find_to_do_alias(box, client_key, isolated_home)
    inv = _inventory(tmp_path / "hosts.yml")
    good = origin.head
    tier.first_deploy(inv)  # setup (which makes metrics_dir), then the deploy of the good commit
    assert box.as_root(f"stat -c '%U %a' {METRICS_DIR}").stdout.split() == ["ec2-user", "755"]
    r = fab(inv, "prometheus-targets", "--output", str(prom.targets))
    assert r.returncode == 0, r.stdout + r.stderr
    prom.until("the container's node_exporter, from hosts.yml, as an up target", lambda: [
        (t["labels"]["instance"], t["labels"].get("host"), t["health"]) for t in prom.api("targets")["activeTargets"]],
        lambda found: found == [(exporter, "find-to-do", "up")])
    info = f'fabops_deployed_commit_info{{fabops_host="find-to-do",commit="{short_sha(good)}"}}'
    prom.value(info, 1, "the good commit's info metric")
    prom.until("the good deploy counted", _runs(prom, "deploy"), lambda r: r == {"deployed": 1})
    prom.value(f'fabops_build_info{{python="{PYTHON[suite]}"}}', 1, "the host's own fabops and Python")
    _cron_health()
    prom.value(f'fabops_service_up{{service="{UNIT}"}}', 1, "the service up, from cron's health --fix")

    bad = origin.crash("2")
    r = fab(inv, "deploy")
    assert r.returncode == 2, r.stdout + r.stderr  # its gate failed: rolled back (docs/errors.md)
    assert on_host(f"git -C {APP} rev-parse HEAD").stdout.strip() == good
    prom.until("the bad deploy counted as rolled back", _runs(prom, "deploy"),
               lambda r: r == {"deployed": 1, "rolled_back": 1})
    # still the good commit, and only it: the bad one never became the deployed commit's series
    assert prom.series("fabops_deployed_commit_info") and \
        {m["commit"] for m, _ in prom.series("fabops_deployed_commit_info")} == {short_sha(good)}
    prom.value(info, 1, "the good commit's info metric after the rollback")
    assert short_sha(bad) != short_sha(good)
    prom.value("fabops_bad_targets", 1, "the crashing commit marked bad")
    _cron_health()
    prom.value(f'fabops_service_up{{service="{UNIT}"}}', 1, "the service up after the rollback")
    # the shipped rollback alert, and the behind-origin one past its for:; nothing else (the service is up)
    prom.until("the rollback and behind-origin alerts firing", lambda: sorted(
        (a["labels"]["alertname"], a["labels"].get("trigger", "")) for a in prom.api("alerts")["alerts"]
        if a["state"] == "firing"), lambda found: found == [("FabopsBehindOriginShort", ""), ("FabopsRolledBack", "deploy")])

    # node_exporter parsed the file (no error, its mtime seen), and the writes left no temp file
    prom.value("node_textfile_scrape_error", 0, "node_exporter's textfile parse error")
    # its `file` label: the file's path since node_exporter 1.3 (bookworm's is 1.5), its name before
    mtime = f'node_textfile_mtime_seconds{{file=~"(.*/)?{PROM_FILE.replace(".", "[.]")}"}}'
    prom.until("the textfile's mtime", lambda: prom.series(mtime),
               lambda s: len(s) == 1 and s[0][1] > 0)
    assert _leftovers() == [PROM_FILE], _leftovers()
    assert box.as_root(f"stat -c '%U %a' {METRICS_DIR}/{PROM_FILE}").stdout.split() == ["ec2-user", "644"]
    promtool_check(on_host(f"cat {METRICS_DIR}/{PROM_FILE}").stdout)
