"""health (cron path, local) and notifications to a local recording server."""
import http.server
import json
import os
import threading

import pytest

from fabops import notify
from tests.conftest import run_cli
from tests.harness.apps import Sandbox


class Recorder:
    def __init__(self, status=204):
        self.requests = []
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                rec.requests.append((self.path, json.loads(self.rfile.read(n) or b"null")))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def texts(self):
        return [body.get("content") or body.get("text") for _, body in self.requests]


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.srv.shutdown()


@pytest.fixture
def box(tmp_path):
    b = Sandbox(tmp_path, timeout="5s")
    yield b
    b.stop()


def health(box, *args, env=None):
    r = run_cli("health", "-i", str(box.inventory), "--json", *args, env=env)
    return r.returncode, json.loads(r.stdout)["hosts"]["local"]


def test_health_notifies_on_change_only_and_fix_recovers(box, recorder):
    """A plain `health` is a read: it reports down and writes and sends
    nothing. `health --fix` (cron's line) restarts, records and notifies."""
    env = {"FABOPS_DISCORD_WEBHOOK": recorder.url + "/discord", "FABOPS_SLACK_WEBHOOK": recorder.url + "/slack"}
    assert box.result()[0] == 0
    recorder.requests.clear()
    code, rep = health(box, env=env)
    assert (code, rep["status"]) == (0, "ok") and recorder.requests == []
    box.stop()
    state = (box.home / "state.json").read_text()
    code, rep = health(box, env=env)
    assert (code, rep["status"]) == (2, "down") and "bot is" in rep["message"]
    assert recorder.requests == [] and (box.home / "state.json").read_text() == state
    assert not (box.home / "health.log").exists()
    code, rep = health(box, "--fix", env=env)
    assert (code, rep["status"]) == (1, "recovered") and rep["restarted"] == ["bot"]
    assert box.health()["version"] == "1"
    assert sorted(p for p, _ in recorder.requests) == ["/discord", "/slack"] and "recovered" in recorder.texts()[-1]
    code, rep = health(box, "--fix", env=env)  # healthy and recorded so: nothing new
    assert code == 0 and len(recorder.requests) == 2
    log = (box.home / "health.log").read_text().splitlines()
    assert len(log) == 2 and "WARNING: restarted bot" in log[0] and log[1].endswith(" OK: all services healthy"), log
    assert "s3cr3t" not in "".join(log) + json.dumps(recorder.requests)
    # the webhook URL never appears in output or logs
    assert recorder.url not in "".join(log)


def test_fix_never_restarts_during_a_deploy(box, recorder):
    from fabops.host.lock import HostLock

    env = {"FABOPS_DISCORD_WEBHOOK": recorder.url}
    box.result()
    box.stop()
    recorder.requests.clear()
    with HostLock(str(box.home / "lock"), {"actor": "ci", "trigger": "deploy", "target": "x"}).acquire():
        code, rep = health(box, "--fix", env=env)
    assert (code, rep["status"]) == (3, "busy") and "the host is busy (locked: deploy by ci" in rep["message"]
    assert rep["restarted"] == [] and recorder.requests == []


def test_a_dry_run_says_the_plan_the_real_run_then_carries_out(box, recorder):
    """`--dry-run` asks plan_health as the real run does (#23): it names the
    restart, the notification and the state write, and does none of them;
    the real run then does exactly those."""
    env = {"FABOPS_DISCORD_WEBHOOK": recorder.url}
    box.result()
    assert health(box, "--fix", env=env)[0] == 0  # records ok
    box.stop()
    recorder.requests.clear()
    state = (box.home / "state.json").read_text()
    log = (box.home / "health.log").read_text()
    code, rep = health(box, "--dry-run", env=env)
    assert (code, rep["status"], rep["would"]) == (2, "down", []), rep  # a plain check is a read
    code, rep = health(box, "--fix", "--dry-run", env=env)
    assert (code, rep["status"]) == (2, "would_restart"), rep
    assert [(w["action"], w["target"]) for w in rep["would"]] == [
        ("record", "state.json"), ("restart", "bot"), ("log", "health log")]
    r = run_cli("health", "-i", str(box.inventory), "--fix", "--dry-run", env=env)
    assert r.returncode == 2 and "local: would restart bot: failing its check" in r.stdout, r.stdout + r.stderr
    assert recorder.requests == []
    with pytest.raises(OSError):  # still down: nothing restarted it
        box.health()
    assert (box.home / "state.json").read_text() == state and (box.home / "health.log").read_text() == log
    code, rep = health(box, "--fix", env=env)
    assert (code, rep["status"], rep["restarted"]) == (1, "recovered", ["bot"]) and "would" not in rep, rep
    assert len(json.loads((box.home / "state.json").read_text())["restarts"]) == 1
    code, rep = health(box, "--dry-run", env=env)
    assert (code, rep["status"], rep["would"]) == (0, "ok", []), rep


def test_restart_backoff_stops_and_notifies_once(box, recorder):
    env = {"FABOPS_DISCORD_WEBHOOK": recorder.url}
    box.result()
    state = json.loads((box.home / "state.json").read_text())
    import time

    state["restarts"] = [time.time() - 60] * 3
    (box.home / "state.json").write_text(json.dumps(state))
    box.stop()
    recorder.requests.clear()
    code, rep = health(box, "--fix", env=env)
    assert (code, rep["status"]) == (2, "backoff") and "restart backoff" in rep["message"]
    code, rep = health(box, "--fix", env=env)
    assert code == 2 and len(recorder.requests) == 1 and "backoff" in recorder.texts()[0]


def test_webhooks_from_env_or_a_private_file(tmp_path):
    f = tmp_path / "notify.env"
    f.write_text("FABOPS_SLACK_WEBHOOK=https://hooks.example/slack\n")
    f.chmod(0o644)
    assert notify.webhooks(str(tmp_path), environ={}) == {}  # readable by others: ignored
    f.chmod(0o600)
    assert notify.webhooks(str(tmp_path), environ={}) == {"slack": "https://hooks.example/slack"}
    assert notify.webhooks(str(tmp_path), environ={"FABOPS_DISCORD_WEBHOOK": "u"}) == {
        "discord": "u", "slack": "https://hooks.example/slack"}


def test_notification_failure_never_raises():
    out = notify.notify("h", "health_down", "x", environ={"FABOPS_DISCORD_WEBHOOK": "http://127.0.0.1:9/nothing"})
    assert len(out) == 1 and not out[0].ok and "127.0.0.1" not in out[0].detail


def test_a_message_names_the_hosts_environment(recorder):
    """`[production] find-to-do`: a shared channel's reader asks which
    environment first (docs/environments.md); a host in none is named alone."""
    assert notify.format_message("find-to-do", "deployed", "abc") == "**find-to-do**: ✅ deployed: abc"
    assert notify.format_message("find-to-do", "deployed", "abc", "production") == (
        "**[production] find-to-do**: ✅ deployed: abc")
    out = notify.notify("find-to-do", "health_down", "bot is down", environ={"FABOPS_SLACK_WEBHOOK": recorder.url},
                        environment="staging")
    assert [d.ok for d in out] == [True]
    assert recorder.texts() == ["**[staging] find-to-do**: ❌ service down: bot is down"]


def test_payload_shapes():
    assert json.loads(notify.payload("discord", "hi")) == {"content": "hi", "allowed_mentions": {"parse": []}}
    assert json.loads(notify.payload("slack", "hi")) == {"text": "hi"}


def test_deploy_results_are_notified(box, recorder):
    env = {"FABOPS_DISCORD_WEBHOOK": recorder.url}
    r = run_cli("local-update", "-i", str(box.inventory), env=env)
    assert r.returncode == 0
    box.origin.crash("2")
    r = run_cli("local-update", "-i", str(box.inventory), env=env)
    assert r.returncode == 2
    texts = recorder.texts()
    assert "deployed" in texts[0] and "rolled back" in texts[1]
