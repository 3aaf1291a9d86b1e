"""The Prometheus and Grafana files shipped in examples/ (docs/metrics.md,
"Wiring it up"): promtool checks the scrape config and the alert rules
and runs the rules' unit tests (promtool is Debian's `prometheus`
package, which .ci/run installs: a skip here, a failure under
FABOPS_REQUIRE_ALL=1); every metric the rules and the dashboard use is
one fabops writes (fabops/host/prom.py) or node_exporter's own; the
dashboard is checked structurally."""
import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT, require

pytestmark = pytest.mark.unit

EXAMPLES = ROOT / "examples"
PROM = EXAMPLES / "prometheus"
RULES = PROM / "rules" / "fabops.rules.yml"
RULE_TESTS = PROM / "rules" / "fabops.rules.test.yml"
DASHBOARD = EXAMPLES / "grafana" / "fabops-dashboard.json"
# The alerts issue #27 asks for, by the names the rules give them
ALERTS = {"FabopsCronStalled", "FabopsBehindOrigin", "FabopsServiceDown", "FabopsRolledBack", "FabopsBackupTooOld"}
# node_exporter's own series about the textfile collector (docs/metrics.md, "Turning it on")
NODE_METRICS = {"node_textfile_mtime_seconds", "node_textfile_scrape_error"}


def fabops_metrics() -> set:
    """Every metric family fabops writes: the names host/prom.py gives its
    families, read from the source (what the textfile and `fabops metrics` hold)."""
    source = (ROOT / "fabops" / "host" / "prom.py").read_text()
    return set(re.findall(r'\(\s*"(fabops_[a-z_]+)",\s*"(?:gauge|counter)"', source))


def metric_names(expr: str) -> set:
    """The metric names in a PromQL expression: label matchers, grouping
    clauses, quoted strings and Grafana's $variables taken out first, so
    `fabops_host` (a label) is never read as a metric."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    return set(re.findall(r"\b((?:fabops|node)_[a-zA-Z0-9_]*)\b", expr))


def rule_exprs() -> list:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r["alert"], r["expr"]) for g in groups for r in g["rules"]]


def dashboard_exprs(board: dict) -> list:
    """(where, expr) of every query the dashboard runs: panels' targets and annotations."""
    found = [(f"panel {p['id']} {p['title']!r}", t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    found += [(f"annotation {a['name']!r}", a["expr"]) for a in board["annotations"]["list"] if "expr" in a]
    return found


@pytest.fixture
def promtool():
    path = shutil.which("promtool")
    require(path is not None, "promtool not installed (Debian's prometheus package; .ci/run installs it)")
    return path


def _run(args, cwd):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_promtool_checks_the_scrape_config(promtool, tmp_path):
    """Offline: the config names a targets file that is not here (it says
    so as a warning), and its rule file, which it checks too."""
    shutil.copytree(PROM, tmp_path / "prometheus")
    r = _run([promtool, "check", "config", "prometheus.yml"], tmp_path / "prometheus")
    assert "SUCCESS: 1 rule files found" in r.stdout + r.stderr, r.stdout + r.stderr
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    sd = config["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert sd == ["/etc/prometheus/targets/fabops.json"]
    assert "inv prometheus-targets -H all --output /etc/prometheus/targets/fabops.json" in \
        (PROM / "prometheus.yml").read_text()  # how the file is made, said where it is read


def test_promtool_checks_the_rules(promtool):
    r = _run([promtool, "check", "rules", str(RULES)], ROOT)
    assert f"SUCCESS: {len(ALERTS)} rules found" in r.stdout, r.stdout


def test_promtool_runs_the_rules_unit_tests(promtool):
    r = _run([promtool, "test", "rules", RULE_TESTS.name], RULE_TESTS.parent)
    assert "SUCCESS" in r.stdout, r.stdout


def test_each_alert_fires_in_a_test_and_stays_quiet_in_another():
    assert {name for name, _ in rule_exprs()} == ALERTS
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    for alert in ALERTS:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert} never fires in {RULE_TESTS.name}"
        assert any(not c["exp_alerts"] for c in mine), f"{alert} is never quiet in {RULE_TESTS.name}"


def test_the_metric_names_are_read_from_prom_py():
    known = fabops_metrics()
    assert {"fabops_runs_total", "fabops_service_up", "fabops_backup_success_timestamp_seconds",
            "fabops_behind_origin_since_timestamp_seconds", "fabops_last_run_timestamp_seconds"} <= known
    assert metric_names('sum by (fabops_host) (fabops_service_up{fabops_host=~"a", x="fabops_pinned"})') == \
        {"fabops_service_up"}


def test_the_rules_use_only_metrics_fabops_writes():
    known = fabops_metrics() | NODE_METRICS
    for alert, expr in rule_exprs():
        assert metric_names(expr), (alert, expr)
        assert metric_names(expr) <= known, f"{alert}: {metric_names(expr) - known} is no metric fabops writes"


def test_the_dashboard_uses_only_metrics_fabops_or_node_exporter_writes():
    known = fabops_metrics() | NODE_METRICS
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    assert len(exprs) >= 8
    for where, expr in exprs:
        assert metric_names(expr), (where, expr)
        assert metric_names(expr) <= known, f"{where}: {metric_names(expr) - known} is no metric fabops writes"


def test_the_dashboard_queries_parse(promtool, tmp_path):
    """Each query as Prometheus would get it (Grafana's variables given
    values), checked by promtool's own PromQL parser as recording rules."""
    board = json.loads(DASHBOARD.read_text())
    rules = [{"record": f"fabops:dashboard_query_{i}",
              "expr": expr.replace("$__rate_interval", "5m").replace("$host", ".*")}
             for i, (_, expr) in enumerate(dashboard_exprs(board))]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _run([promtool, "check", "rules", str(path)], tmp_path)


def test_the_dashboard_is_well_formed():
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {ids}"
    cells = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, (p["title"], g)
        assert g["x"] + g["w"] <= 24, f"{p['title']!r} is past Grafana's 24 columns: {g}"
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']!r} overlaps another panel"
        cells |= mine
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), p["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["host"]["type"] == "query" and variables["host"]["multi"] and variables["host"]["includeAll"]
    assert "fabops_host" in variables["host"]["definition"]
    # every fabops query follows the host variable (node_exporter's own are per file)
    for where, expr in dashboard_exprs(board):
        if any(n.startswith("fabops_") for n in metric_names(expr)):
            assert 'fabops_host=~"$host"' in expr, where
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for wanted in ("deploys", "service up", "latency", "backup", "behind origin"):
        assert wanted in titles, wanted
    assert {a["name"] for a in board["annotations"]["list"]} >= {"Deployed", "Rolled back"}
