"""#27: `monitor --prometheus` prints the selected hosts' metrics in
Prometheus' text format, read in monitor's one round trip per host (its
script reads state.json already, and the install marker with the flag):
the same families `fabops metrics` prints (prometheus.found_families,
one path), every host's samples under one HELP and TYPE, and
fabops_monitor_success per host, 0 after a comment line for a host that
did not answer. docs/monitor.md, docs/metrics.md."""
from __future__ import annotations

import json
import os

import yaml

from fabops import errors, inventory
from fabops.fanout import HostResult
from fabops.host import prom
from fabops.probe import MARK
from fabops.prometheus import ANSWERED, monitor_exposition
from tests.conftest import run_cli
from tests.test_golden import GOLDEN, NOW
from tests.test_prom import parsed, promtool_check

ANSWERED_HELP = f"# HELP {ANSWERED} 1 when the host answered monitor's script, 0 when it did not.\n# TYPE {ANSWERED} gauge\n"


def samples(text: str) -> dict:
    """parsed() of the exposition without its plain comment lines."""
    return parsed("\n".join(ln for ln in text.splitlines() if not ln.startswith("# host ")))


def unreachable(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"nope": {"address": "127.0.0.1", "port": 1, "user": "nobody",
                                                      "app": {"path": "/srv/app"}}}}))
    return inv


def test_monitor_prometheus_prints_what_metrics_prints_from_one_round_trip(sandbox, tmp_path):
    rc, result = sandbox.result()
    assert (rc, result["result"]) == (0, "deployed"), result
    inv = str(sandbox.inventory)
    r = run_cli("monitor", "--prometheus", "-i", inv, "--debug")
    looked = run_cli("monitor", "--json", "-i", inv)
    # monitor's own exit code: the verdict of the same facts
    assert r.returncode == json.loads(looked.stdout)["code"] == looked.returncode, (r.stderr, looked.stdout)
    # one command on the host: monitor's script, nothing after it
    ran = [ln for ln in r.stderr.splitlines() if ln.startswith("fabops: debug: local: ")]
    assert len(ran) == 1, r.stderr
    metrics = run_cli("metrics", "-i", inv)
    assert metrics.returncode == 0, metrics.stderr
    assert r.stdout == metrics.stdout + ANSWERED_HELP + f'{ANSWERED}{{fabops_host="local"}} 1\n'
    assert samples(r.stdout)["fabops_runs_total"]["samples"] == [
        ('fabops_host="local",trigger="cron",result="deployed"', 1)]
    promtool_check(r.stdout)


def test_a_host_that_does_not_answer_is_a_comment_and_a_zero(tmp_path):
    r = run_cli("monitor", "--prometheus", "-i", str(unreachable(tmp_path)), "--connect-timeout", "2")
    assert r.returncode == errors.UNREACHABLE, r
    assert r.stdout == "# host nope: unreachable (exit 3)\n" + ANSWERED_HELP + f'{ANSWERED}{{fabops_host="nope"}} 0\n'
    assert r.stderr.startswith("fabops: nope: cannot connect to nobody@127.0.0.1:1"), r.stderr
    promtool_check(r.stdout)


def test_prometheus_refuses_json_watch_and_history_before_connecting(tmp_path):
    inv = str(unreachable(tmp_path))
    for flags, named in ((["--json"], "--json"), (["--watch", "5"], "--watch"), (["--history"], "--history"),
                         (["--json", "--history"], "--json and --history")):
        r = run_cli("monitor", "--prometheus", *flags, "-i", inv, "--connect-timeout", "2")
        assert r.returncode == errors.USAGE, (flags, r)
        # with --json, the task layer's error envelope (docs/json.md) on stdout
        assert json.loads(r.stdout)["code"] == errors.USAGE if "--json" in flags else r.stdout == "", r.stdout
        assert r.stderr == ("fabops: monitor --prometheus prints the metrics once, in Prometheus' text format: "
                            f"give it without {named}\n"), r.stderr


def test_several_hosts_one_exposition_golden(tmp_path):
    """Two hosts that answered (one with no fabops installed: no build
    info) and one that did not: one HELP and TYPE per family, each host's
    samples under it, labelled fabops_host as in the textfile. One golden
    file, not one per width: the exposition is a scraper's text, never
    wrapped or padded, so 80 and 200 columns print the same bytes (and
    its HELP lines pass 80)."""
    hosts = inventory.loads(yaml.safe_dump({"hosts": {
        name: {"address": f"{name}.example", "app": {"path": "/srv/app"}} for name in ("web1", "web2", "db")}})).hosts
    kept: dict = {}
    prom.counted(kept, "deploy", "deployed", 0, 31.5, NOW - 3600)
    prom.counted(kept, "cron", "noop", 0, 0.4, NOW - 60)
    state = {"deployed": "a" * 40, "deployed_at": NOW - 3600, prom.KEY: {**kept, "subject": ["a" * 40, 'Say "hi"']}}
    marker = {"version": "0.1.0", "python": "3.11"}

    def output(state: dict, marker: dict) -> str:
        return f"{MARK}state\n{json.dumps(state, indent=2)}\n{MARK}marker\n{json.dumps(marker) if marker else ''}\n"

    results = [HostResult("web1", value={}), HostResult("web2", value={}),
               HostResult("db", error=errors.UnreachableError("cannot connect"), code=errors.UNREACHABLE)]
    text = monitor_exposition(results, hosts, {"web1": output(state, marker), "web2": output({}, {})}, now=NOW)
    assert text.startswith("# host db: unreachable (exit 3)\n# HELP ")
    found = samples(text)
    assert [n for n in found if found[n]["help"]] == list(found)  # every family has its HELP and TYPE once
    assert sum(ln.startswith("# TYPE fabops_pinned ") for ln in text.splitlines()) == 1
    assert found[ANSWERED]["samples"] == [('fabops_host="web1"', 1), ('fabops_host="web2"', 1), ('fabops_host="db"', 0)]
    assert found["fabops_build_info"]["samples"] == [('fabops_host="web1",version="0.1.0",python="3.11"', 1)]
    path = GOLDEN / "monitor-prometheus.txt"
    if os.environ.get("FABOPS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs (FABOPS_UPDATE_GOLDEN=1 to accept an intended change)"
    promtool_check(text)
