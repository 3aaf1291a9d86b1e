"""The dead-man's switch (docs/monitor.md, "Heartbeat"): which URL each of
cron's runs pings, that the URL is a secret nothing shows, and, on the
sandbox host, that a sink sees one ping per cron run, the fail URL on a
failed run, and that a failing sink changes nothing in the run's result."""
import json

import pytest

from fabops import inventory
from fabops.errors import ConfigError
from fabops.host import heartbeat
from fabops.inventory import Heartbeat
from tests.conftest import one, run_cli

HC = "https://hc-ping.com/5e1f0c3a-secret-uuid"
KUMA_UP = "https://kuma.example/api/push/PUSHKEYsecret?status=up&msg=OK"
KUMA_DOWN = "https://kuma.example/api/push/PUSHKEYsecret?status=down&msg=failed"


@pytest.mark.unit
@pytest.mark.parametrize("run,result,kind", [
    ("update", "noop", "ok"), ("update", "deployed", "ok"), ("update", "skipped_bad", "ok"),
    ("update", "deferred", "ok"), ("update", "superseded", "ok"),
    ("update", "skipped_unverified", "ok"),  # an unsigned target held: the host serves its good commit
    ("update", "aborted", "fail"), ("update", "rolled_back", "fail"), ("update", "broken", "fail"),
    ("update", "something new", "fail"),  # a result this table does not know is no success
    ("update", "locked", None),
    ("health", "ok", "ok"), ("health", "recovered", "ok"),
    ("health", "down", "fail"), ("health", "backoff", "fail"), ("health", "held", "fail"),
    ("health", "busy", None),
])
def test_which_url_each_result_pings(run, result, kind):
    assert heartbeat.kind_of(run, result) == kind


@pytest.mark.unit
def test_the_fail_url_is_healthchecks_convention_unless_named():
    assert heartbeat.urls(Heartbeat(HC)) == (HC, HC + "/fail")
    assert heartbeat.urls(Heartbeat(HC + "/")) == (HC + "/", HC + "/fail")
    assert heartbeat.urls(Heartbeat(KUMA_UP, KUMA_DOWN)) == (KUMA_UP, KUMA_DOWN)


@pytest.mark.unit
def test_a_ping_is_recorded_with_no_url_and_failures_counted(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"deployed": "abc"}))
    sent = []

    def refused(url, timeout):
        sent.append((url, timeout))
        return False, f"no answer (could not reach {url})"  # a reason that ever named the URL is cut

    rec = heartbeat.beat(Heartbeat(HC, timeout=2.0), str(state), "update", "aborted", now=100.0, send=refused)
    assert sent == [(HC + "/fail", 2.0)]
    assert rec["url"] == "fail" and rec["ok"] is False and rec["failures"] == 1
    heartbeat.beat(Heartbeat(HC), str(state), "health", "down", now=200.0, send=refused)
    saved = json.loads(state.read_text())
    assert saved["deployed"] == "abc"  # the record is merged, never a whole new file
    assert saved["heartbeat"]["failures"] == 2 and saved["heartbeat"]["run"] == "health"
    assert "5e1f0c3a" not in state.read_text()
    heartbeat.beat(Heartbeat(HC), str(state), "health", "ok", now=300.0, send=lambda u, t: (True, "HTTP 200"))
    assert json.loads(state.read_text())["heartbeat"] == {
        "at": 300.0, "run": "health", "result": "ok", "url": "ok", "ok": True, "detail": "HTTP 200", "failures": 0}


@pytest.mark.unit
def test_no_ping_without_a_heartbeat_or_for_a_locked_run(tmp_path):
    def never(url, timeout):
        raise AssertionError("pinged")

    assert heartbeat.beat(None, str(tmp_path / "s.json"), "update", "deployed", send=never) is None
    assert heartbeat.beat(Heartbeat(HC), str(tmp_path / "s.json"), "update", "locked", send=never) is None
    assert not (tmp_path / "s.json").exists()


@pytest.mark.unit
def test_a_sender_that_raises_is_a_failed_ping_not_the_runs_failure(tmp_path):
    def boom(url, timeout):
        raise RuntimeError(url)

    rec = heartbeat.beat(Heartbeat(HC), str(tmp_path / "s.json"), "update", "noop", send=boom)
    assert rec["ok"] is False and rec["detail"] == "not sent (RuntimeError)"


@pytest.mark.unit
def test_the_urls_are_secrets_in_every_output():
    inv = inventory.loads(f"""
defaults:
  heartbeat: {{url: "{HC}", timeout: 3s}}
hosts:
  a: {{app: {{path: /srv/a}}}}
  k: {{app: {{path: /srv/k}}, heartbeat: {{url: "{KUMA_UP}", fail_url: "{KUMA_DOWN}"}}}}
  quiet: {{app: {{path: /srv/quiet}}, heartbeat: {{url: off}}}}
""")
    a, k, off = inv.hosts["a"], inv.hosts["k"], inv.hosts["quiet"]
    assert a.heartbeat == Heartbeat(HC, None, 3.0) and off.heartbeat is None
    assert a.to_dict()["heartbeat"] == {"url": HC, "timeout": 3.0}  # host.yml (0600) keeps it whole
    assert a.shown_dict()["heartbeat"] == {"url": "https://hc-ping.com/***", "timeout": 3.0}
    assert k.shown_dict()["heartbeat"]["fail_url"] == "https://kuma.example/***"
    shown = json.dumps([h.shown_dict() for h in inv.hosts.values()] + [inv.settings(h) for h in inv.hosts.values()])
    assert "secret" not in shown.lower(), shown


@pytest.mark.unit
@pytest.mark.parametrize("value,problem", [
    ('{url: "ftp://hc-ping.com/secret-x"}', "url: '***' must be an http:// or https:// URL"),
    ('{url: "https://hc-ping.com/secret x"}', "url: '***' is not a valid URL"),
    ('{url: "https://k.example/push/secret?status=up"}', "fail_url: is required when url has a query string"),
    ("{timeout: 3s}", "url: is required"),
    ('{url: "https://hc-ping.com/secret", timeout: 1m}', "timeout: 60s is out of range 0.5-30s"),
])
def test_a_wrong_heartbeat_is_refused_without_its_url(value, problem):
    with pytest.raises(ConfigError) as err:
        inventory.loads(f"hosts:\n  a: {{app: {{path: /srv/a}}, heartbeat: {value}}}\n")
    assert problem in str(err.value) and "secret" not in str(err.value)


@pytest.mark.unit
def test_two_groups_that_disagree_on_the_url_are_told_without_it():
    text = ("groups:\n  g1: {hosts: [a], heartbeat: {url: 'https://h.io/secret1'}}\n"
            "  g2: {hosts: [a], heartbeat: {url: 'https://h.io/secret2'}}\n"
            "hosts:\n  a: {app: {path: /srv/a}}\n")
    with pytest.raises(ConfigError) as err:
        inventory.loads(text)
    assert "heartbeat.url" in str(err.value) and "secret" not in str(err.value)


# ------------------------------------------------------------------ sandbox


def test_a_sink_sees_one_ping_per_cron_run_and_the_fail_url_on_a_failed_one(tmp_path):
    from tests.harness.apps import Sandbox
    from tests.harness.webhook import Hook

    sink = Hook()
    box = Sandbox(tmp_path, heartbeat={"url": sink.url + "/secret-uuid", "timeout": "2s"})
    try:
        assert box.result()[1]["result"] == "deployed"
        assert sink.gets == ["/hook/secret-uuid"]
        assert box.result()[1]["result"] == "noop"
        assert sink.gets == ["/hook/secret-uuid"] * 2
        hb = box.state["heartbeat"]
        assert (hb["run"], hb["url"], hb["ok"], hb["detail"], hb["failures"]) == ("update", "ok", True, "HTTP 200", 0)

        # a person's deploy and any dry run ping nothing: the heartbeat is cron's
        box.origin.good("2")
        assert box.result("--dry-run")[1]["result"] == "would_deploy"
        assert box.result("--trigger", "deploy")[1]["result"] == "deployed"
        assert len(sink.gets) == 2

        box.origin.crash("3")
        code, res = box.result()
        assert (code, res["result"]) == (2, "rolled_back")
        assert sink.gets[2:] == ["/hook/secret-uuid/fail"]
        code, res = box.result()  # the known-bad commit held: the host serves its good one
        assert (code, res["result"]) == (1, "skipped_bad") and sink.gets[3:] == ["/hook/secret-uuid"]

        # a person's health --fix on the host pings nothing (trial: it did); cron's line pings for its own run
        r = run_cli("health", "--fix", "--quiet", "-i", str(box.inventory))
        assert r.returncode == 0 and len(sink.gets) == 4, r.stdout + r.stderr
        r = run_cli("health", "--fix", "--quiet", "--trigger", "cron", "-i", str(box.inventory))
        assert r.returncode == 0, r.stdout + r.stderr
        assert sink.gets[4:] == ["/hook/secret-uuid"] and box.state["heartbeat"]["run"] == "health"

        # a failing sink changes nothing in the run's result, its exit code or its output
        sink.status = 500
        r = box.update()
        assert r.returncode == 1 and one(r.stdout)["result"] == "skipped_bad", r.stdout
        assert sink.gets[5:] == ["/hook/secret-uuid"]
        hb = box.state["heartbeat"]
        assert (hb["ok"], hb["detail"], hb["failures"]) == (False, "HTTP 500", 1)
        sink.close()  # and one that does not answer at all
        r = run_cli("health", "--fix", "--quiet", "--trigger", "cron", "-i", str(box.inventory))
        assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
        hb = box.state["heartbeat"]
        assert hb["ok"] is False and hb["detail"].startswith("no answer") and hb["failures"] == 2
        seen = r.stdout + r.stderr + (box.home / "state.json").read_text() + (box.home / "history.jsonl").read_text()
        assert "secret-uuid" not in seen
    finally:
        box.stop()
        sink.close()


@pytest.mark.parametrize("task", ["local-update", "health"])
def test_cron_lines_with_a_heartbeat_import_only_it_beyond_the_list(sandbox, tmp_path, task):
    """The cron fast path with a heartbeat set (docs/architecture.md, "The
    cron fast path"): host/heartbeat.py is the one module more, and the ping
    is the HTTP check's own request (no urllib.request, no SSH stack)."""
    import yaml

    from tests.harness.webhook import Hook
    from tests.test_fastpath import beyond_the_list, cron_args, run_fabops

    sink = Hook()
    try:
        data = yaml.safe_load(sandbox.inventory.read_text())
        data["hosts"]["local"]["heartbeat"] = {"url": sink.url + "/secret-uuid"}
        sandbox.inventory.write_text(yaml.safe_dump(data))
        assert sandbox.result()[1]["result"] == "deployed"
        for _ in range(2):  # the first local-update writes host.yml's JSON copy, the second reads it
            r, loaded = run_fabops(cron_args(task, sandbox.inventory), tmp_path)
            assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r
            assert "fabops.host.heartbeat" in loaded and "urllib.request" not in loaded
            assert not beyond_the_list(task, loaded - {"fabops.host.heartbeat"})
        assert sink.gets == ["/hook/secret-uuid"] * 3
    finally:
        sink.close()


@pytest.mark.unit
def test_health_is_crons_only_when_its_line_says_so():
    """Who runs health is said by the caller (cron's line: fabops/cron.py),
    never guessed on the host; only cron's --fix pings (docs/monitor.md)."""
    from fabops.cron import JOBS
    from fabops.errors import UsageError
    from fabops.host.health import health_trigger

    assert dict(JOBS)["health"][-2:] == ["--trigger", "cron"]
    assert (health_trigger(None), health_trigger("cron"), health_trigger("manual")) == ("manual", "cron", "manual")
    with pytest.raises(UsageError, match="cron or manual"):
        health_trigger("deploy")


@pytest.mark.unit
def test_a_deploy_whose_inventory_has_no_heartbeat_keeps_the_hosts():
    """host/settings.installed (docs/hosts.md, "What a deploy keeps"): CI's
    hosts.yml without the secret URL keeps the host's, named in a warning
    without its URL; an inventory that sets its own wins, silently."""
    import yaml

    from fabops.host.settings import installed

    def text(**extra):
        return yaml.safe_dump({"hosts": {"web1": {"app": {"path": "/srv/app"}, **extra}}})

    old = text(heartbeat={"url": HC})
    new_text, warnings = installed(old, text(), "web1")
    assert yaml.safe_load(new_text)["hosts"]["web1"]["heartbeat"] == {"url": HC}
    assert len(warnings) == 1 and "kept the host's heartbeat" in warnings[0] and "5e1f0c3a" not in warnings[0]
    other = text(heartbeat={"url": KUMA_UP, "fail_url": KUMA_DOWN})
    assert installed(old, other, "web1") == (other, [])
